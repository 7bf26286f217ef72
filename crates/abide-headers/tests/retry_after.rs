//! The explicit wait: `Retry-After` and its millisecond relatives.

mod common;

use abide_headers::RateLimitHeaders;
use common::{headers, millis, parse, secs};

// RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds.
#[test]
fn retry_after_delay_seconds() {
    assert_eq!(parse(&[("Retry-After", "120")]).retry_after(), secs(120));
}

// Some servers send fractional seconds (Discord, Shopify `2.0`); tolerated.
#[test]
fn retry_after_tolerates_fractional_seconds() {
    assert_eq!(parse(&[("Retry-After", "1.5")]).retry_after(), millis(1500));
}

// RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients
// must accept. NOW is Tue, 14 Nov 2023 22:13:20 GMT.
#[test]
fn retry_after_http_date_in_all_three_forms() {
    for date in [
        "Tue, 14 Nov 2023 22:13:50 GMT",
        "Tuesday, 14-Nov-23 22:13:50 GMT",
        "Tue Nov 14 22:13:50 2023",
    ] {
        assert_eq!(
            parse(&[("Retry-After", date)]).retry_after(),
            secs(30),
            "{date}"
        );
    }
}

#[test]
fn retry_after_date_in_the_past_means_no_wait() {
    let s = parse(&[("Retry-After", "Tue, 14 Nov 2023 22:00:00 GMT")]);
    assert_eq!(s.retry_after(), secs(0));
}

#[test]
fn retry_after_negative_nan_infinite_and_words_are_ignored() {
    for bad in ["-1", "NaN", "inf", "soon", "1e9", ""] {
        assert_eq!(
            parse(&[("Retry-After", bad)]).retry_after(),
            None,
            "{bad:?}"
        );
    }
}

#[test]
fn absurd_retry_after_is_capped_not_overflowed() {
    let s = parse(&[("Retry-After", "99999999999999999999999999")]);
    let wait = s.retry_after().unwrap();
    assert!(
        wait <= std::time::Duration::from_secs(10 * 366 * 86_400),
        "{wait:?}"
    );
}

// The OpenAI and Anthropic SDKs read `retry-after-ms` before `retry-after`
// (openai-python `_base_client.py` `_parse_retry_after_header`); Azure sends
// `x-ms-retry-after-ms` (azure-core `RetryPolicy`).
#[test]
fn millisecond_fields_win_over_retry_after() {
    let s = parse(&[("retry-after", "2"), ("retry-after-ms", "1250")]);
    assert_eq!(s.retry_after(), millis(1250));
    let s = parse(&[("Retry-After", "2"), ("x-ms-retry-after-ms", "300")]);
    assert_eq!(s.retry_after(), millis(300));
    let s = parse(&[("retry-after-ms", "5"), ("x-ms-retry-after-ms", "300")]);
    assert_eq!(s.retry_after(), millis(5));
}

#[test]
fn a_malformed_millisecond_field_falls_back_to_retry_after() {
    let s = parse(&[("retry-after-ms", "soon"), ("Retry-After", "3")]);
    assert_eq!(s.retry_after(), secs(3));
}

// Traefik's rate limiter (traefik/traefik#8573: "Retry-After: 0 / X-Retry-In:
// 105.712425ms") sends a precise Go duration beside a rounded Retry-After.
#[test]
fn traefik_x_retry_in_is_more_precise_than_its_retry_after() {
    let s = parse(&[("Retry-After", "1"), ("X-Retry-In", "105.712425ms")]);
    assert_eq!(
        s.retry_after(),
        Some(std::time::Duration::from_nanos(105_712_425))
    );
}

#[test]
fn the_date_header_is_the_reference_instant_when_no_now_is_given() {
    let map = headers(&[
        ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("Retry-After", "Tue, 14 Nov 2023 22:13:50 GMT"),
    ]);
    assert_eq!(
        RateLimitHeaders::new().extract(&map).retry_after(),
        secs(30)
    );
}

#[test]
fn a_caller_given_now_wins_over_the_date_header() {
    let map = headers(&[
        ("Date", "Tue, 14 Nov 2023 22:00:00 GMT"),
        ("Retry-After", "Tue, 14 Nov 2023 22:13:50 GMT"),
    ]);
    let s = RateLimitHeaders::new()
        .with_now(common::now())
        .extract(&map);
    assert_eq!(s.retry_after(), secs(30));
}

#[test]
fn conflicting_repeated_retry_after_lines_are_ignored_identical_ones_kept() {
    assert_eq!(
        parse(&[("Retry-After", "5"), ("Retry-After", "9")]).retry_after(),
        None
    );
    assert_eq!(
        parse(&[("Retry-After", "5"), ("Retry-After", " 5")]).retry_after(),
        secs(5)
    );
}

#[test]
fn explicit_retry_wins_over_exhausted_resets() {
    let s = parse(&[
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "20s"),
        ("retry-after", "3"),
    ]);
    assert_eq!(s.wait(), secs(3));
}
