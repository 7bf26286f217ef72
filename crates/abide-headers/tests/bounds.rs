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

#[test]
fn rendering_the_longest_waits_writes_headers_instead_of_overflowing() {
    use abide_headers::{render, Dialect, Limit, RateLimitSnapshot, Scope};
    let mut limit = Limit::new(Scope::Unspecified, Dialect::GitHub);
    limit.limit = Some(10);
    limit.remaining = Some(0);
    limit.reset = Some(Duration::MAX);
    for dialect in [
        Dialect::RetryAfter,
        Dialect::Ietf,
        Dialect::IetfDraft07,
        Dialect::IetfDraft06,
        Dialect::IetfDraft03,
        Dialect::XRateLimit,
        Dialect::OpenAi,
        Dialect::GitHub,
    ] {
        let mut l = limit.clone();
        l.dialect = dialect;
        let snapshot = RateLimitSnapshot::new()
            .with_limit(l)
            .with_retry_after(Duration::MAX);
        let mut map = http::HeaderMap::new();
        render(&snapshot, dialect, common::now(), &mut map).unwrap();
        let back = RateLimitHeaders::new()
            .with_now(common::now())
            .extract(&map);
        assert_eq!(back.retry_after(), Some(CAP), "{dialect:?}");
    }
}

#[test]
fn rendering_instants_past_what_the_clock_can_represent_is_an_error() {
    use abide_headers::{render, Dialect, Limit, RateLimitSnapshot, Scope};
    let end_of_time = UNIX_EPOCH + Duration::from_secs(i64::MAX as u64);
    for (dialect, scope) in [
        (Dialect::Anthropic, Scope::Requests),
        (Dialect::GitHub, Scope::Unspecified),
    ] {
        let mut l = Limit::new(scope, dialect);
        l.reset = Some(Duration::from_secs(60));
        let snapshot = RateLimitSnapshot::new().with_limit(l);
        let mut map = http::HeaderMap::new();
        let err = render(&snapshot, dialect, end_of_time, &mut map).unwrap_err();
        assert_eq!(err.dialect(), dialect);
    }
}
