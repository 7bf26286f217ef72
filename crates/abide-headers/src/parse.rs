//! Placeholder dispatcher; replaced by the dialect readers.
use crate::RateLimitSnapshot;
use http::HeaderMap;
use std::time::SystemTime;

pub(crate) fn extract(_headers: &HeaderMap, _now: Option<SystemTime>) -> RateLimitSnapshot {
    RateLimitSnapshot::new()
}
