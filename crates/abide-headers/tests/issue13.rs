//! Issue 13's header formats: the IETF draft-12 working spellings, parameters on every
//! draft-00-style field, windows stated in header names, milliseconds where a vendor says
//! so, numbers that break their grammar, and headers that carry no numbers.

mod common;

use abide_headers::{Dialect, PartitionKey, Scope};
use common::{millis, parse, secs};

// draft-12 working copy (github.com/ietf-wg-httpapi/ratelimit-headers PR #166: "r to a
// (available quota), t to w (effective window)", a cost parameter `c`; issue #158: policy
// ids as Token instead of String).
#[test]
fn draft12_available_effective_window_and_cost_are_read() {
    let s = parse(&[
        (
            "RateLimit-Policy",
            "burst;q=100;w=60, \"daily\";q=1000;w=86400",
        ),
        ("RateLimit", "burst;a=0;w=12;c=3, daily;a=600;w=50000"),
    ]);
    let burst = s.get(&Scope::named("burst")).unwrap();
    assert_eq!(burst.dialect, Dialect::Ietf);
    assert_eq!(
        (
            burst.limit,
            burst.remaining,
            burst.reset,
            burst.window,
            burst.cost
        ),
        (Some(100), Some(0), secs(12), secs(60), Some(3))
    );
    let daily = s.get(&Scope::named("daily")).unwrap();
    assert_eq!(
        (daily.limit, daily.remaining, daily.reset, daily.window),
        (Some(1000), Some(600), secs(50000), secs(86400))
    );
    assert_eq!(s.wait(), secs(12));
}

#[test]
fn draft11_spellings_still_read_beside_draft12() {
    let s = parse(&[
        ("RateLimit-Policy", "\"p\";q=10;w=1"),
        ("RateLimit", "\"p\";r=4;t=1"),
    ]);
    let l = s.get(&Scope::named("p")).unwrap();
    assert_eq!((l.remaining, l.reset, l.cost), (Some(4), secs(1), None));
}

// PR #166: "RateLimit-Partition header field - declares partition dimensions as
// parameters on policy identifiers"; "dimensions sorted alphabetically, UTF-8 values
// concatenated with 0x1F".
#[test]
fn draft12_partition_field_makes_the_key_from_fixed_dimension_values() {
    let s = parse(&[
        ("RateLimit-Policy", "burst;q=100;w=60, keyed;q=5;pk=:AQ==:"),
        ("RateLimit", "burst;a=50;w=30"),
        (
            "RateLimit-Partition",
            "burst;user_id=\"u1\";client_id=\"app\", keyed;user_id=\"u2\", unknown;user_id=\"x\"",
        ),
    ]);
    let burst = s.get(&Scope::named("burst")).unwrap();
    assert_eq!(burst.partition_key, Some(PartitionKey::new(b"app\x1fu1")));
    // A key the policy states itself is kept.
    let keyed = s.get(&Scope::named("keyed")).unwrap();
    assert_eq!(keyed.partition_key, Some(PartitionKey::new(&[1])));
    assert_eq!(s.limits().len(), 2);
}

#[test]
fn a_malformed_partition_field_is_ignored_and_the_limits_stand() {
    for bad in ["burst;user_id=\"unterminated", ";;;", "burst;user_id"] {
        let s = parse(&[
            ("RateLimit-Policy", "burst;q=100;w=60"),
            ("RateLimit", "burst;a=50;w=30"),
            ("RateLimit-Partition", bad),
        ]);
        let l = s.get(&Scope::named("burst")).unwrap();
        assert_eq!(
            (l.limit, l.remaining, l.partition_key.clone()),
            (Some(100), Some(50), None),
            "{bad}"
        );
    }
}

// draft-polli-ratelimit-headers-00 §3 lets every field carry parameters: the examples
// send `RateLimit-Remaining: 76;w=21600` beside `RateLimit-Limit: 100;w=21600`.
#[test]
fn draft00_parameters_on_remaining_and_reset_are_read() {
    let s = parse(&[
        ("RateLimit-Limit", "100"),
        ("RateLimit-Remaining", "76;w=21600"),
        ("RateLimit-Reset", "3600;w=21600"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(
        (l.limit, l.remaining, l.reset, l.window),
        (Some(100), Some(76), secs(3600), secs(21600))
    );
    // A malformed parameter is dropped on its own.
    let s = parse(&[
        ("RateLimit-Limit", "100"),
        ("RateLimit-Remaining", "76;w=soon"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(
        (l.limit, l.remaining, l.window),
        (Some(100), Some(76), None)
    );
}

// RFC 9651 §3.3.1: "Integers have a range of -999,999,999,999,999 to 999,999,999,999,999
// inclusive (i.e., up to fifteen decimal digits)". A longer one is not an sf-integer.
#[test]
fn an_sf_integer_over_15_digits_is_dropped_not_clamped() {
    let s = parse(&[
        ("RateLimit-Limit", "1000000000000000"),
        ("RateLimit-Remaining", "5"),
        ("RateLimit-Reset", "9999999999999999"),
    ]);
    let l = &s.limits()[0];
    assert_eq!((l.limit, l.remaining, l.reset), (None, Some(5), None));
    // Fifteen digits are fine.
    let s = parse(&[("RateLimit-Limit", "999999999999999")]);
    assert_eq!(s.limits()[0].limit, Some(999_999_999_999_999));
}

#[test]
fn a_header_that_carries_no_numbers_creates_no_limit() {
    for pairs in [
        &[("RateLimit-Policy", "\"burst\"")][..],
        &[
            ("RateLimit-Policy", "burst;comment=\"x\""),
            ("RateLimit", "burst"),
        ][..],
        &[("x-ratelimit-resource", "core")][..],
        &[
            ("x-ratelimit-limit", "many"),
            ("x-ratelimit-resource", "core"),
        ][..],
        &[("x-ratelimit-bucket", "abc")][..],
        &[("RateLimit-Name", "throttle_authenticated_api")][..],
        &[("x-ratelimit-limit-minute", "lots")][..],
    ] {
        let s = parse(pairs);
        assert!(s.limits().is_empty(), "{pairs:?}: {s:?}");
    }
}

// Kong rate-limiting plugin (docs.konghq.com/hub/kong-inc/rate-limiting/, "Headers sent
// to the client"): one pair per configured window, several at once.
#[test]
fn windows_in_header_names_give_one_limit_each() {
    let s = parse(&[
        ("X-RateLimit-Limit-Second", "5"),
        ("X-RateLimit-Remaining-Second", "4"),
        ("X-RateLimit-Limit-Minute", "100"),
        ("X-RateLimit-Remaining-Minute", "0"),
        ("X-RateLimit-Limit-Hour", "1000"),
        ("X-RateLimit-Remaining-Hour", "900"),
        ("X-RateLimit-Limit-Day", "10000"),
        ("X-RateLimit-Remaining-Day", "9000"),
        ("X-RateLimit-Limit-Month", "100000"),
        ("X-RateLimit-Remaining-Month", "99000"),
    ]);
    let mut got: Vec<_> = s
        .limits()
        .iter()
        .map(|l| (l.limit, l.remaining, l.window))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (Some(5), Some(4), secs(1)),
            (Some(100), Some(0), secs(60)),
            (Some(1000), Some(900), secs(3600)),
            (Some(10000), Some(9000), secs(86400)),
            // A month is a calendar period: no fixed window.
            (Some(100000), Some(99000), None),
        ]
    );
    assert!(s.limits().iter().all(|l| l.dialect == Dialect::Kong));
}

#[test]
fn per_window_names_without_the_x_prefix_and_remaining_alone_are_read() {
    let s = parse(&[
        ("RateLimit-Limit-Minute", "60"),
        ("RateLimit-Remaining-Minute", "12"),
        ("X-RateLimit-Remaining-Hour", "7"),
    ]);
    let mut got: Vec<_> = s
        .limits()
        .iter()
        .map(|l| (l.limit, l.remaining, l.window))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![(None, Some(7), secs(3600)), (Some(60), Some(12), secs(60))]
    );
}

// `X-RateLimit-Reset-Ms`: the reset in milliseconds, as delta or epoch milliseconds
// (express-style and Vercel-hosted APIs send it beside X-RateLimit-Remaining).
#[test]
fn reset_in_milliseconds_where_the_name_says_so() {
    let s = parse(&[
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-Ms", "1500"),
    ]);
    assert_eq!(s.limits()[0].reset, millis(1500));
    assert_eq!(s.wait(), millis(1500));
    let epoch_ms = (common::NOW_SECS * 1000 + 2500).to_string();
    let s = parse(&[
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-Ms", &epoch_ms),
    ]);
    assert_eq!(s.limits()[0].reset, millis(2500));
    // Seconds win when both are sent; a malformed millisecond value is ignored.
    let s = parse(&[
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "2"),
        ("X-RateLimit-Reset-Ms", "x"),
    ]);
    assert_eq!(s.limits()[0].reset, secs(2));
    let s = parse(&[
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-Ms", "-5"),
    ]);
    assert_eq!(s.limits()[0].reset, None);
}

#[test]
fn malformed_draft12_parameters_are_ignored_one_by_one() {
    let s = parse(&[
        ("RateLimit-Policy", "burst;q=100;w=60"),
        ("RateLimit", "burst;a=-1;w=soon;c=1.5"),
    ]);
    let l = s.get(&Scope::named("burst")).unwrap();
    // The policy's numbers stand; each bad item parameter is dropped on its own.
    assert_eq!(
        (l.limit, l.window, l.remaining, l.reset, l.cost),
        (Some(100), secs(60), None, None, None)
    );
    let s = parse(&[
        ("RateLimit-Policy", "burst;q=100;w=60"),
        ("RateLimit", "burst;a=7;w=soon;c=2"),
    ]);
    let l = s.get(&Scope::named("burst")).unwrap();
    assert_eq!((l.remaining, l.reset, l.cost), (Some(7), None, Some(2)));
}
