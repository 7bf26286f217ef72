//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use abide_headers::{RateLimitHeaders, RateLimitSnapshot};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 2023-11-14T22:13:20Z: the reference instant of every test that needs one.
pub const NOW_SECS: u64 = 1_700_000_000;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// A header map from `(name, value)` pairs, repeats appended as separate field lines.
pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// Extracts with `now()` as the reference instant.
pub fn parse(pairs: &[(&str, &str)]) -> RateLimitSnapshot {
    RateLimitHeaders::new()
        .with_now(now())
        .extract(&headers(pairs))
}

pub fn secs(s: u64) -> Option<Duration> {
    Some(Duration::from_secs(s))
}

pub fn millis(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}
