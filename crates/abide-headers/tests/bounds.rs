//! Hostile and extreme inputs: whatever the headers or the reference instant say, reading
//! them never panics and every duration stays capped.

mod common;

use abide_headers::RateLimitHeaders;
use common::headers;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CAP: Duration = Duration::from_secs(10 * 366 * 86_400);

/// An instant far in the future, still representable (`SystemTime` holds i64 seconds).
fn far_future() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1 << 62)
}

#[test]
fn an_epoch_reset_beyond_what_the_clock_can_represent_is_capped_not_a_panic() {
    for name in ["X-RateLimit-Reset", "RateLimit-Reset", "X-Rate-Limit-Reset"] {
        let map = headers(&[
            ("X-RateLimit-Limit", "10"),
            ("RateLimit-Limit", "10"),
            ("X-Rate-Limit-Limit", "10"),
            (name, "18000000000000000000.5"),
        ]);
        let s = RateLimitHeaders::new().with_now(far_future()).extract(&map);
        for l in s.limits() {
            assert!(l.reset.is_none_or(|r| r <= CAP), "{name}: {l:?}");
        }
    }
}

#[test]
fn epoch_resets_far_past_the_reference_instant_are_capped_at_ten_years() {
    let map = headers(&[
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Reset", "9223372036854775807"),
    ]);
    let s = RateLimitHeaders::new()
        .with_now(UNIX_EPOCH + Duration::from_secs(1 << 58))
        .extract(&map);
    assert_eq!(s.limits()[0].reset, Some(CAP));
}
