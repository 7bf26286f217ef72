//! IETF draft-ietf-httpapi-ratelimit-headers, every generation, through the public API.

mod common;

use abide_headers::{Dialect, PartitionKey, QuotaUnit, Scope};
use common::{parse, secs};

// draft-ietf-httpapi-ratelimit-headers-03 §3 / §5 (and drafts 00–02): the three fields;
// RateLimit-Limit may list quota policies after the expiring limit ("10, 10;w=1, 50;w=60"
// in the §5 examples). https://datatracker.ietf.org/doc/html/draft-ietf-httpapi-ratelimit-headers-03
#[test]
fn draft03_triple_takes_the_window_from_the_policy_with_the_same_quota() {
    let s = parse(&[
        ("RateLimit-Limit", "10, 10;w=1, 50;w=60"),
        ("RateLimit-Remaining", "9"),
        ("RateLimit-Reset", "1"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(l.dialect, Dialect::IetfDraft03);
    assert_eq!(l.scope, Scope::Unspecified);
    assert_eq!(
        (l.limit, l.remaining, l.reset, l.window),
        (Some(10), Some(9), secs(1), secs(1))
    );
    // The other policy is a limit of its own: 50 per minute, remaining unknown.
    let other = &s.limits()[1];
    assert_eq!(
        (other.limit, other.remaining, other.window),
        (Some(50), None, secs(60))
    );
    assert_eq!(s.limits().len(), 2);
}

// draft-00 (draft-polli-ratelimit-headers-00 §3.1) spelled the window parameter `window=`.
#[test]
fn draft00_window_parameter_spelling_is_read_too() {
    let s = parse(&[
        ("RateLimit-Limit", "100, 100;window=60"),
        ("RateLimit-Remaining", "3"),
    ]);
    assert_eq!(s.limits()[0].window, secs(60));
}

// draft-ietf-httpapi-ratelimit-headers-06 §5: RateLimit-Policy: 10;w=1, 50;w=60 beside the
// triple. https://datatracker.ietf.org/doc/html/draft-ietf-httpapi-ratelimit-headers-06
#[test]
fn draft06_policy_field_gives_the_window_of_the_triple() {
    let s = parse(&[
        ("RateLimit-Limit", "50"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "30"),
        ("RateLimit-Policy", "10;w=1, 50;w=60"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(l.dialect, Dialect::IetfDraft06);
    assert_eq!(
        (l.limit, l.remaining, l.reset, l.window),
        (Some(50), Some(0), secs(30), secs(60))
    );
    assert_eq!(s.wait(), secs(30));
}

// Honeycomb (https://docs.honeycomb.io/api/rate-limit, "Rate Limit Headers") sends the
// draft-07 dictionary: RateLimit: limit=100, remaining=80, reset=54 / RateLimit-Policy: 100;w=60.
#[test]
fn draft07_dictionary_as_honeycomb_sends_it() {
    let s = parse(&[
        ("RateLimit", "limit=100, remaining=80, reset=54"),
        ("RateLimit-Policy", "100;w=60"),
    ]);
    assert_eq!(s.limits().len(), 1);
    let l = &s.limits()[0];
    assert_eq!(l.dialect, Dialect::IetfDraft07);
    assert_eq!(
        (l.limit, l.remaining, l.reset, l.window),
        (Some(100), Some(80), secs(54), secs(60))
    );
}

// RFC 9651 §4.2.2: a repeated dictionary key keeps its last value.
#[test]
fn draft07_repeated_key_keeps_the_last_value() {
    let s = parse(&[("RateLimit", "limit=100, remaining=80, remaining=7")]);
    assert_eq!(s.limits()[0].remaining, Some(7));
}

// draft-ietf-httpapi-ratelimit-headers-10 §3, §4 (examples "RateLimit-Policy:
// "burst";q=100;w=60,"daily";q=1000;w=86400" and "RateLimit: "daily";r=1;t=36000").
// https://datatracker.ietf.org/doc/html/draft-ietf-httpapi-ratelimit-headers-10
#[test]
fn draft10_policies_and_counters_are_joined_by_name() {
    let s = parse(&[
        (
            "RateLimit-Policy",
            "\"burst\";q=100;w=60,\"daily\";q=1000;w=86400",
        ),
        ("RateLimit", "\"daily\";r=1;t=36000"),
    ]);
    assert_eq!(s.limits().len(), 2);
    let burst = s.get(&Scope::named("burst")).unwrap();
    assert_eq!(
        (burst.limit, burst.window, burst.remaining),
        (Some(100), secs(60), None)
    );
    let daily = s.get(&Scope::named("daily")).unwrap();
    assert_eq!(
        (daily.limit, daily.remaining, daily.reset),
        (Some(1000), Some(1), secs(36000))
    );
    assert_eq!(daily.dialect, Dialect::Ietf);
}

// Draft 08 used tokens for names (`RateLimit: default;r=50;t=30`); a list of token items
// also parses as a Dictionary, so this checks it is not mistaken for draft 07.
#[test]
fn draft08_token_names_are_not_mistaken_for_a_draft07_dictionary() {
    let s = parse(&[
        ("RateLimit-Policy", "default;q=100;w=10"),
        ("RateLimit", "default;r=50;t=5"),
    ]);
    let l = s.get(&Scope::named("default")).unwrap();
    assert_eq!(l.dialect, Dialect::Ietf);
    assert_eq!(
        (l.limit, l.remaining, l.reset, l.window),
        (Some(100), Some(50), secs(5), secs(10))
    );
}

// draft-10 §3.1: "Lists of Quota Policy Items can be split over multiple RateLimit-Policy
// fields" (RFC 9651 §3.1); §3.1.2 qu, §3.1.4 pk (a Byte Sequence).
#[test]
fn draft10_lists_split_over_lines_with_units_and_partition_keys() {
    let s = parse(&[
        (
            "RateLimit-Policy",
            "\"peruser\";q=100;w=60;qu=\"request\";pk=:dXNlcjE=:",
        ),
        (
            "RateLimit-Policy",
            "\"bytes\";q=65536;w=1;qu=\"content-bytes\"",
        ),
        (
            "RateLimit",
            "\"peruser\";r=40;t=10;pk=:dXNlcjE=:,\t\"bytes\";r=1024;t=1",
        ),
    ]);
    let user = s.get(&Scope::named("peruser")).unwrap();
    assert_eq!(user.unit, Some(QuotaUnit::Requests));
    assert_eq!(user.partition_key, Some(PartitionKey::new(b"user1")));
    assert_eq!((user.remaining, user.reset), (Some(40), secs(10)));
    let bytes = s.get(&Scope::named("bytes")).unwrap();
    assert_eq!(bytes.unit, Some(QuotaUnit::ContentBytes));
    assert_eq!((bytes.limit, bytes.remaining), (Some(65536), Some(1024)));
}

#[test]
fn counters_without_a_policy_still_make_a_limit() {
    let s = parse(&[("RateLimit", "\"api\";r=0;t=12")]);
    let l = s.get(&Scope::named("api")).unwrap();
    assert_eq!((l.limit, l.remaining, l.reset), (None, Some(0), secs(12)));
    assert_eq!(s.wait(), secs(12));
}

// RFC 9651 §4.2: a field whose combined value does not parse fails as a whole; the other
// fields still parse.
#[test]
fn malformed_structured_field_is_ignored_and_the_rest_still_parses() {
    let s = parse(&[
        ("RateLimit-Policy", "\"burst\";q=100;w=60"),
        ("RateLimit-Policy", "\"broken;q=1"),
        ("RateLimit", "\"burst\";r=3;t=4"),
        ("Retry-After", "7"),
    ]);
    // Only the counters survive; the policy field is rejected whole.
    let l = s.get(&Scope::named("burst")).unwrap();
    assert_eq!((l.limit, l.remaining), (None, Some(3)));
    assert_eq!(s.retry_after(), secs(7));
}

#[test]
fn negative_or_non_integer_parameters_are_dropped_one_by_one() {
    let s = parse(&[
        (
            "RateLimit-Policy",
            "\"a\";q=-5;w=60, \"b\";q=1.5;w=10, \"c\";q=5;w=\"x\"",
        ),
        ("RateLimit", "\"a\";r=1;t=-3"),
    ]);
    let a = s.get(&Scope::named("a")).unwrap();
    assert_eq!(
        (a.limit, a.window, a.remaining, a.reset),
        (None, secs(60), Some(1), None)
    );
    assert_eq!(s.get(&Scope::named("b")).unwrap().limit, None);
    let c = s.get(&Scope::named("c")).unwrap();
    assert_eq!((c.limit, c.window), (Some(5), None));
}

#[test]
fn many_policies_are_capped_and_the_snapshot_says_it_was_truncated() {
    let policy: String = (0..50)
        .map(|i| format!("\"p{i}\";q={i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = parse(&[("RateLimit-Policy", &policy)]);
    assert_eq!(s.limits().len(), abide_headers::MAX_LIMITS);
    assert!(s.is_truncated());
}

// Weights & Biases (https://docs.wandb.ai/support/models/articles/rate-limit-exceeded-on-metric-logging,
// "Rate limit headers"): RateLimit-Remaining on a 0–1000 scale and RateLimit-Reset, no
// limit. The remaining is kept as stated; no limit, scope or unit is made up.
#[test]
fn wandb_remaining_scale_is_kept_without_inventing_a_limit() {
    let s = parse(&[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "12")]);
    let l = &s.limits()[0];
    assert_eq!((l.limit, l.remaining, l.reset), (None, Some(0), secs(12)));
    assert_eq!(
        (l.scope.clone(), l.unit.clone()),
        (Scope::Unspecified, None)
    );
    assert_eq!(s.wait(), secs(12));
}

// GitLab (https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/,
// "Response headers"): RateLimit-Name, -Limit, -Observed, -Remaining, -Reset (Unix time),
// -ResetTime (HTTP-date).
#[test]
fn gitlab_names_its_throttle_and_sends_epoch_resets() {
    let reset = (common::NOW_SECS + 30).to_string();
    let s = parse(&[
        ("RateLimit-Name", "throttle_authenticated_api"),
        ("RateLimit-Limit", "600"),
        ("RateLimit-Observed", "600"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", &reset),
        ("RateLimit-ResetTime", "Tue, 14 Nov 2023 22:13:50 GMT"),
    ]);
    let l = &s.limits()[0];
    assert_eq!(l.dialect, Dialect::GitLab);
    assert_eq!(l.scope, Scope::named("throttle_authenticated_api"));
    assert_eq!(
        (l.limit, l.remaining, l.reset),
        (Some(600), Some(0), secs(30))
    );
}

#[test]
fn gitlab_reset_time_date_and_observed_count_fill_in_missing_fields() {
    let s = parse(&[
        ("RateLimit-Limit", "60"),
        ("RateLimit-Observed", "45"),
        ("RateLimit-ResetTime", "Tue, 14 Nov 2023 22:14:20 GMT"),
    ]);
    let l = &s.limits()[0];
    assert_eq!((l.remaining, l.reset), (Some(15), secs(60)));
}
