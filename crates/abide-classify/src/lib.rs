//! abide-classify
