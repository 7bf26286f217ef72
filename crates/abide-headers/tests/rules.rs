//! The rules every dialect follows: the wait, inventing nothing, malformed input, field
//! syntax (RFC 9110). The debug events for ignored fields are in `trace_events.rs`.

mod common;

use abide_headers::{Dialect, RateLimitHeaders, Scope};
use common::{headers, parse, secs};

#[test]
fn wait_is_the_latest_reset_among_exhausted_limits() {
    let s = parse(&[
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "2s"),
        ("x-ratelimit-remaining-tokens", "0"),
        ("x-ratelimit-reset-tokens", "9s"),
    ]);
    assert_eq!(s.wait(), secs(9));
}

#[test]
fn limits_with_something_left_imply_no_wait() {
    let s = parse(&[
        ("x-ratelimit-remaining-requests", "1"),
        ("x-ratelimit-reset-requests", "30s"),
    ]);
    assert_eq!(s.wait(), None);
}

#[test]
fn a_429_status_alone_implies_no_wait() {
    let response = http::Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let s = RateLimitHeaders::new().extract_response(&response);
    assert!(s.is_empty());
    assert_eq!(s.wait(), None);
}

#[test]
fn response_parts_are_read_like_the_response() {
    let (parts, ()) = http::Response::builder()
        .header("retry-after", "4")
        .body(())
        .unwrap()
        .into_parts();
    assert_eq!(
        RateLimitHeaders::new().extract_parts(&parts).retry_after(),
        secs(4)
    );
}

#[test]
fn nothing_is_invented_for_fields_the_headers_do_not_state() {
    let s = parse(&[("x-ratelimit-remaining-tokens", "10")]);
    let l = s.tokens().unwrap();
    assert_eq!(
        (l.limit, l.reset, l.window, l.unit.clone()),
        (None, None, None, None)
    );
    assert!(s.requests().is_none());
    assert_eq!(s.retry_after(), None);
}

#[test]
fn field_names_are_case_insensitive_and_values_tolerate_ows_and_tabs() {
    let s = parse(&[
        ("X-RATELIMIT-LIMIT-REQUESTS", " \t500\t "),
        ("X-RateLimit-Remaining-Requests", "\t0"),
        ("x-ratelimit-reset-requests", "1.5s "),
    ]);
    let r = s.requests().unwrap();
    assert_eq!(
        (r.limit, r.remaining, r.reset),
        (Some(500), Some(0), common::millis(1500))
    );
}

#[test]
fn malformed_fields_are_ignored_one_by_one_and_the_rest_parses() {
    let s = parse(&[
        ("x-ratelimit-limit-requests", "lots"),
        ("x-ratelimit-remaining-requests", "NaN"),
        ("x-ratelimit-reset-requests", "-3s"),
        ("x-ratelimit-limit-tokens", "1000"),
        ("x-ratelimit-remaining-tokens", "-5"),
        ("x-ratelimit-reset-tokens", "4s"),
    ]);
    assert!(s.requests().is_none(), "every requests field was malformed");
    let t = s.tokens().unwrap();
    assert_eq!((t.limit, t.remaining, t.reset), (Some(1000), None, secs(4)));
}

#[test]
fn twenty_digit_integers_are_capped_in_plain_fields_and_rejected_in_structured_ones() {
    let s = parse(&[("x-ratelimit-remaining-tokens", "99999999999999999999")]);
    assert_eq!(s.tokens().unwrap().remaining, Some(999_999_999_999_999));
    // RFC 9651 §3.3.1 allows at most 15 digits; the field fails to parse and is ignored.
    let s = parse(&[("RateLimit", "\"p\";r=99999999999999999999")]);
    assert!(s.limits().is_empty());
}

#[test]
fn values_that_are_not_visible_ascii_are_ignored() {
    let mut map = headers(&[("x-ratelimit-limit-requests", "10")]);
    map.insert(
        "x-ratelimit-remaining-requests",
        http::HeaderValue::from_bytes(b"\xff9").unwrap(),
    );
    let s = RateLimitHeaders::new()
        .with_now(common::now())
        .extract(&map);
    let r = s.requests().unwrap();
    assert_eq!((r.limit, r.remaining), (Some(10), None));
}

// RFC 9110 §5.3: field lines of a list-based field combine, in order, into one
// comma-separated value.
#[test]
fn repeated_lines_of_a_list_field_combine_in_order() {
    let s = parse(&[
        ("RateLimit-Policy", "\"a\";q=1"),
        ("RateLimit-Policy", "\"b\";q=2, \"c\";q=3"),
        ("RateLimit", "\"c\";r=0;t=3"),
        ("RateLimit", "\"a\";r=1"),
    ]);
    let names: Vec<_> = s
        .limits()
        .iter()
        .map(|l| l.scope.as_str().to_owned())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(s.get(&Scope::named("c")).unwrap().remaining, Some(0));
    assert_eq!(s.wait(), secs(3));
}

#[test]
fn a_repeated_singleton_field_with_conflicting_values_is_ignored() {
    let s = parse(&[
        ("x-ratelimit-limit", "100"),
        ("x-ratelimit-remaining", "5"),
        ("x-ratelimit-remaining", "7"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(
        (l.dialect, l.limit, l.remaining),
        (Dialect::XRateLimit, Some(100), None)
    );
}

#[test]
fn huge_inputs_are_bounded() {
    let policy = "\"p\";q=1, ".repeat(20_000) + "\"last\";q=2";
    let many_limits = "9, ".repeat(20_000);
    let s = parse(&[
        ("RateLimit-Policy", &policy),
        ("x-ratelimit-limit", &many_limits),
        ("retry-after", &"9".repeat(10_000)),
    ]);
    assert!(s.limits().len() <= abide_headers::MAX_LIMITS);
    assert!(s.is_truncated());
    assert_eq!(s.retry_after(), None, "a 10 000-digit number is not a wait");
}

#[test]
fn an_empty_header_map_is_an_empty_snapshot() {
    let s = RateLimitHeaders::new().extract(&http::HeaderMap::new());
    assert!(s.is_empty());
    assert!(s.most_constrained().is_none());
}
