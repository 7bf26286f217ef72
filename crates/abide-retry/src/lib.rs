//! abide-retry
