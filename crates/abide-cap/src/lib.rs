//! abide-cap
