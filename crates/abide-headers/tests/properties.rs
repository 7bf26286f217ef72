//! Property tests: render → parse round-trips in every writable dialect, and arbitrary
//! header maps never panic and stay within bounds.

mod common;

use abide_headers::{
    render, Dialect, Limit, Name, PartitionKey, QuotaUnit, RateLimitHeaders, RateLimitSnapshot,
    Scope, MAX_LIMITS,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::sample::select;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_SECS: u64 = 10 * 86_400;

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0..=10u64, 0..=1_000_000_000u64]
}

fn whole_secs() -> impl Strategy<Value = Duration> {
    (0..=MAX_SECS).prop_map(Duration::from_secs)
}

fn whole_millis() -> impl Strategy<Value = Duration> {
    (0..=MAX_SECS * 1000).prop_map(Duration::from_millis)
}

/// A limit with `scope` and `dialect`, its optional fields drawn independently, at least
/// one of `limit`, `remaining`, `reset` stated.
fn fields(
    scope: Scope,
    dialect: Dialect,
    reset: BoxedStrategy<Duration>,
) -> impl Strategy<Value = Limit> {
    (
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(reset),
    )
        .prop_filter("something stated", |(l, r, t)| {
            l.is_some() || r.is_some() || t.is_some()
        })
        .prop_map(move |(limit, remaining, reset)| {
            let mut l = Limit::new(scope.clone(), dialect);
            l.limit = limit;
            l.remaining = remaining;
            l.reset = reset;
            l
        })
}

/// The snapshot the headers of `limits` read back as: a limit stating no numbers is not
/// written and creates no limit (issue 13).
fn snapshot_of(limits: Vec<Limit>, retry_after: Option<Duration>) -> RateLimitSnapshot {
    let mut s = RateLimitSnapshot::new();
    for l in limits {
        if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() || l.window.is_some() {
            s.push(l);
        }
    }
    s.set_retry_after(retry_after);
    s
}

/// One unscoped limit (the dialects with a single counter), with a window when `window`
/// says the dialect can carry one (only beside a limit, where the policy goes).
fn single(
    dialect: Dialect,
    window: bool,
    require_window: bool,
) -> impl Strategy<Value = RateLimitSnapshot> {
    (
        fields(Scope::Unspecified, dialect, whole_secs().boxed()),
        proptest::option::of(1..=MAX_SECS),
        proptest::option::of(whole_secs()),
    )
        .prop_filter_map("window needs a limit", move |(mut l, w, retry)| {
            if window {
                l.window = w.map(Duration::from_secs);
            }
            if require_window && (l.window.is_none() || l.limit.is_none()) {
                return None;
            }
            if l.window.is_some() && l.limit.is_none() {
                return None;
            }
            Some(snapshot_of(vec![l], retry))
        })
}

fn unit() -> impl Strategy<Value = QuotaUnit> {
    prop_oneof![
        Just(QuotaUnit::Requests),
        Just(QuotaUnit::ContentBytes),
        Just(QuotaUnit::ConcurrentRequests),
        Just(QuotaUnit::Tokens),
        Just(QuotaUnit::Other(Name::new("widgets"))),
    ]
}

/// Draft 08+: up to MAX_LIMITS named limits, every field optional. Limits stating a quota
/// come first: the reader lists policies before counters without one.
fn ietf() -> impl Strategy<Value = RateLimitSnapshot> {
    let one = (
        "[a-z][a-z0-9 _-]{0,40}",
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(whole_secs()),
        proptest::option::of(1..=MAX_SECS),
        proptest::option::of(unit()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
    );
    (
        proptest::collection::vec(one, 0..=MAX_LIMITS),
        proptest::option::of(whole_secs()),
    )
        .prop_map(|(raw, retry)| {
            let mut seen = std::collections::HashSet::new();
            let mut limits: Vec<Limit> = raw
                .into_iter()
                .filter(|r| seen.insert(r.0.clone()))
                .map(|(name, limit, remaining, reset, window, unit, pk)| {
                    let mut l = Limit::new(Scope::named(&name), Dialect::Ietf);
                    l.limit = limit;
                    l.remaining = remaining;
                    l.reset = reset;
                    // Window and unit live in the policy, which needs a quota.
                    if limit.is_some() {
                        l.window = window.map(Duration::from_secs);
                        l.unit = unit;
                    }
                    l.partition_key = pk.map(|b| PartitionKey::new(&b));
                    l
                })
                .collect();
            limits.sort_by_key(|l| l.limit.is_none());
            snapshot_of(limits, retry)
        })
}

fn openai() -> impl Strategy<Value = RateLimitSnapshot> {
    (
        proptest::option::of(fields(
            Scope::Requests,
            Dialect::OpenAi,
            whole_millis().boxed(),
        )),
        proptest::option::of(fields(
            Scope::Tokens,
            Dialect::OpenAi,
            whole_millis().boxed(),
        )),
        proptest::option::of(whole_millis()),
    )
        .prop_map(|(r, t, retry)| snapshot_of(r.into_iter().chain(t).collect(), retry))
}

fn anthropic() -> impl Strategy<Value = RateLimitSnapshot> {
    let scope =
        |s: Scope| proptest::option::of(fields(s, Dialect::Anthropic, whole_millis().boxed()));
    (
        scope(Scope::Requests),
        scope(Scope::Tokens),
        scope(Scope::InputTokens),
        scope(Scope::OutputTokens),
        proptest::option::of(whole_millis()),
    )
        .prop_map(|(a, b, c, d, retry)| {
            snapshot_of(a.into_iter().chain(b).chain(c).chain(d).collect(), retry)
        })
}

fn github() -> impl Strategy<Value = RateLimitSnapshot> {
    (
        select(vec![
            "core",
            "search",
            "graphql",
            "integration_manifest",
            "code_scanning_upload",
        ]),
        proptest::option::of(count()),
        proptest::option::of(count()),
        proptest::option::of(whole_secs()),
        proptest::option::of(whole_secs()),
    )
        .prop_map(|(resource, limit, remaining, reset, retry)| {
            let mut l = Limit::new(Scope::named(resource), Dialect::GitHub);
            l.limit = limit;
            l.remaining = remaining;
            l.reset = reset;
            snapshot_of(vec![l], retry)
        })
}

fn retry_only() -> impl Strategy<Value = RateLimitSnapshot> {
    proptest::option::of(whole_secs()).prop_map(|retry| snapshot_of(vec![], retry))
}

fn round_trip(
    snapshot: &RateLimitSnapshot,
    dialect: Dialect,
    now: SystemTime,
) -> RateLimitSnapshot {
    let mut headers = HeaderMap::new();
    render(snapshot, dialect, now, &mut headers).expect("writable dialect");
    RateLimitHeaders::new().with_now(now).extract(&headers)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn ietf_round_trips(s in ietf()) {
        prop_assert_eq!(round_trip(&s, Dialect::Ietf, common::now()), s);
    }

    #[test]
    fn ietf_draft07_round_trips(s in single(Dialect::IetfDraft07, true, false)) {
        prop_assert_eq!(round_trip(&s, Dialect::IetfDraft07, common::now()), s);
    }

    #[test]
    fn ietf_draft06_round_trips(s in single(Dialect::IetfDraft06, true, true)) {
        prop_assert_eq!(round_trip(&s, Dialect::IetfDraft06, common::now()), s);
    }

    #[test]
    fn ietf_draft03_round_trips(s in single(Dialect::IetfDraft03, true, false)) {
        prop_assert_eq!(round_trip(&s, Dialect::IetfDraft03, common::now()), s);
    }

    #[test]
    fn x_ratelimit_round_trips(s in single(Dialect::XRateLimit, false, false)) {
        prop_assert_eq!(round_trip(&s, Dialect::XRateLimit, common::now()), s);
    }

    #[test]
    fn openai_round_trips(s in openai()) {
        prop_assert_eq!(round_trip(&s, Dialect::OpenAi, common::now()), s);
    }

    // Resets become instants; `now` with a sub-second part checks they come back exact.
    #[test]
    fn anthropic_round_trips(s in anthropic(), nanos in 0..1_000_000_000u32) {
        let now = common::now() + Duration::from_nanos(u64::from(nanos));
        prop_assert_eq!(round_trip(&s, Dialect::Anthropic, now), s);
    }

    #[test]
    fn github_round_trips(s in github()) {
        prop_assert_eq!(round_trip(&s, Dialect::GitHub, common::now()), s);
    }

    #[test]
    fn retry_after_round_trips(s in retry_only()) {
        prop_assert_eq!(round_trip(&s, Dialect::RetryAfter, common::now()), s);
    }

    #[test]
    fn arbitrary_header_maps_never_panic_and_stay_bounded(
        fields in proptest::collection::vec((field_name(), field_value()), 0..24),
        use_date in any::<bool>(),
        now_secs in prop_oneof![0..=u64::from(u32::MAX), 0..=(i64::MAX as u64) / 2],
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(name, value);
        }
        let extractor = if use_date { RateLimitHeaders::new() } else { RateLimitHeaders::new().with_now(common::now()) };
        let s = extractor.extract(&map);
        prop_assert!(s.limits().len() <= MAX_LIMITS);
        // Any reference instant, up to far past what a real clock says.
        let far = RateLimitHeaders::new().with_now(UNIX_EPOCH + Duration::from_secs(now_secs)).extract(&map);
        let cap = Duration::from_secs(10 * 366 * 86_400);
        for l in far.limits() {
            prop_assert!(l.reset.is_none_or(|r| r <= cap));
        }
        let cap = Duration::from_secs(10 * 366 * 86_400);
        prop_assert!(s.retry_after().is_none_or(|w| w <= cap));
        for l in s.limits() {
            prop_assert!(l.reset.is_none_or(|r| r <= cap));
            prop_assert!(l.window.is_none_or(|w| w <= cap));
        }
        let _ = s.wait();
        let _ = s.most_constrained();
    }
}

/// Names every reader looks at (in mixed case) plus some noise.
fn field_name() -> impl Strategy<Value = HeaderName> {
    select(vec![
        "Retry-After",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "X-Retry-In",
        "Date",
        "RateLimit",
        "RateLimit-Policy",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Name",
        "RateLimit-Observed",
        "RateLimit-ResetTime",
        "RateLimit-Reason",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Used",
        "X-RateLimit-Reset-After",
        "X-RateLimit-Resource",
        "X-RateLimit-Bucket",
        "X-RateLimit-Global",
        "X-RateLimit-NearLimit",
        "X-RateLimit-Limit-Minute",
        "X-RateLimit-Remaining-Minute",
        "X-RateLimit-Limit-Videos-Day",
        "X-RateLimit-Requests-Reset",
        "X-RateLimit-Complexity-Limit",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-remaining",
        "X-Rate-Limit-Limit",
        "X-Rate-Limit",
        "X-Rate-Limit-Reset",
        "x-app-limit-24hour-reset",
        "X-Shopify-Shop-Api-Call-Limit",
        "Sforce-Limit-Info",
        "X-Sentry-Rate-Limits",
        "X-HubSpot-RateLimit-Interval-Milliseconds",
        "X-HubSpot-RateLimit-Max",
        "x-ms-ratelimit-remaining-resource",
        "x-ms-ratelimit-remaining-tenant-reads",
        "zendesk-ratelimit-search",
        "Stripe-Rate-Limited-Reason",
        "Content-Type",
    ])
    .prop_map(|n| HeaderName::from_bytes(n.as_bytes()).unwrap())
}

/// Values that look like what servers send, broken in every way a parser can trip on.
fn field_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        "[0-9]{0,25}",
        "[0-9]{17,45}(\\.[0-9]{1,12})?",
        "(Mon|Tue), [0-3][0-9] (Jan|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-5][0-9] GMT",
        "-?[0-9]{0,12}(\\.[0-9]{0,12})?",
        "(NaN|inf|-inf|1e999|\\+5|0x10|\t 7 \t)",
        "[0-9hmsuµn.]{0,16}",
        "[ -~]{0,60}",
        "(\"[a-z]{0,8}\"?;[a-z]{1,2}=-?[0-9]{0,20}[,; ]{0,2}){0,12}",
        "(limit|remaining|reset)=[-0-9a-z\"]{0,8}(, )?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:?[0-9]{2})?",
        "[0-9]{0,6}/[0-9]{0,6}",
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
            String::from_utf8_lossy(&b).into_owned()
        }),
    ]
    .prop_filter_map("valid field value", |s| HeaderValue::from_str(&s).ok().or_else(|| {
        // obs-text bytes are valid field values too; keep them as raw bytes.
        HeaderValue::from_bytes(s.as_bytes()).ok()
    }))
}
