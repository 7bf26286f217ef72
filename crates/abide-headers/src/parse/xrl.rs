//! The `x-ratelimit-*` family (generic, GitHub, Discord, Reddit, Atlassian, Kong, Linear)
//! and the `x-rate-limit-*` family (X, Okta, Zendesk).

use super::{list, malformed, names, Cx, Seen};
use crate::value::{self, ValueError};
use crate::{Dialect, Limit, Name, Scope};
use http::HeaderName;
use std::time::Duration;

names! {
    LIMIT = "x-ratelimit-limit";
    REMAINING = "x-ratelimit-remaining";
    RESET = "x-ratelimit-reset";
    USED = "x-ratelimit-used";
    RESET_AFTER = "x-ratelimit-reset-after";
    RESET_MS = "x-ratelimit-reset-ms";
    RESOURCE = "x-ratelimit-resource";
    BUCKET = "x-ratelimit-bucket";
    GLOBAL = "x-ratelimit-global";
    ATLASSIAN_REASON = "ratelimit-reason";

    LINEAR_REQ_LIMIT = "x-ratelimit-requests-limit";
    LINEAR_REQ_REMAINING = "x-ratelimit-requests-remaining";
    LINEAR_REQ_RESET = "x-ratelimit-requests-reset";
    LINEAR_CX_LIMIT = "x-ratelimit-complexity-limit";
    LINEAR_CX_REMAINING = "x-ratelimit-complexity-remaining";
    LINEAR_CX_RESET = "x-ratelimit-complexity-reset";

    XR_LIMIT = "x-rate-limit-limit";
    XR_LIMIT_ZENDESK = "x-rate-limit";
    XR_REMAINING = "x-rate-limit-remaining";
    XR_RESET = "x-rate-limit-reset";
    X_APP_LIMIT = "x-app-limit-24hour-limit";
    X_APP_REMAINING = "x-app-limit-24hour-remaining";
    X_APP_RESET = "x-app-limit-24hour-reset";
    X_USER_LIMIT = "x-user-limit-24hour-limit";
    X_USER_REMAINING = "x-user-limit-24hour-remaining";
    X_USER_RESET = "x-user-limit-24hour-reset";
}

/// A reset stated as delta seconds, epoch seconds or epoch milliseconds (decided by
/// magnitude against now), or as an HTTP-date or ISO 8601 instant.
fn reset(cx: &Cx<'_>, name: &HeaderName) -> Option<Duration> {
    let now = cx.now();
    cx.field(name, |s| match value::fixed(s) {
        Ok(x) => Ok(value::reset_by_magnitude(x, now)),
        Err(ValueError::NotANumber) => value::http_date(s)
            .or_else(|_| value::rfc3339(s))
            .map(|t| value::until(t, now)),
        Err(e) => Err(e),
    })
}

/// `X-RateLimit-Reset-Ms`: the reset in milliseconds, as the servers that send it say
/// (delta milliseconds, or an epoch in milliseconds: decided by magnitude against now).
fn reset_ms(cx: &Cx<'_>, name: &HeaderName) -> Option<Duration> {
    let now = cx.now();
    cx.field(name, |s| {
        value::fixed(s).map(|x| {
            // Below 10^11 ms (about 3 years) it is a delta; above, an epoch in milliseconds.
            if x.whole < 100_000_000_000 {
                x.millis()
            } else {
                value::reset_by_magnitude(
                    value::Fixed {
                        whole: x.whole,
                        nanos: 0,
                    },
                    now,
                )
            }
        })
    })
}

/// `X-RateLimit-Limit` may carry quota policies after the limit (`100, 100;w=60`, the
/// draft-03 form Envoy's `x-ratelimit-*` headers use): the limit, and the window of the
/// policy with the same quota.
fn limit_and_window(cx: &Cx<'_>, name: &HeaderName) -> (Option<u64>, Option<Duration>) {
    let mut limit = None;
    let mut window = None;
    for (i, element) in list(cx.headers, name).enumerate() {
        let mut parts = element.split(';').map(value::trim_ows);
        let q = match value::count(parts.next().unwrap_or("")) {
            Ok(q) => q,
            Err(why) => {
                malformed(name, element, why);
                if i == 0 {
                    return (None, None);
                }
                continue;
            }
        };
        let w = parts
            .filter_map(|p| p.strip_prefix("w=").or_else(|| p.strip_prefix("window=")))
            .find_map(|w| value::count(w).ok())
            .map(|s| value::cap(Duration::from_secs(s)));
        if i == 0 {
            limit = Some(q);
            window = w;
        } else if window.is_none() && Some(q) == limit {
            window = w;
        }
    }
    (limit, window)
}

/// Reads the `x-ratelimit-*` headers: the OpenAI-style suffixed names are read by
/// `llm::openai`; the unsuffixed group goes to exactly one reader, chosen by its most
/// specific header; then Kong and Linear.
pub(super) fn read(cx: &mut Cx<'_>) {
    let seen = cx.seen;
    if seen.has(Seen::DISCORD) {
        discord(cx);
    } else if seen.has(Seen::GITHUB) {
        github(cx);
    } else if seen.has(Seen::ATLASSIAN) || (seen.has(Seen::XRL) && is_date_reset(cx)) {
        generic(cx, Dialect::Atlassian);
    } else if seen.has(Seen::XRL_USED) && !seen.has(Seen::XRL_LIMIT) {
        reddit(cx);
    } else if seen.has(Seen::XRL) {
        generic(cx, Dialect::XRateLimit);
    }
    if seen.has(Seen::KONG) {
        kong(cx);
    }
    if seen.has(Seen::LINEAR) {
        linear(cx);
    }
}

fn is_date_reset(cx: &Cx<'_>) -> bool {
    cx.text(&RESET)
        .is_some_and(|s| value::fixed(s).is_err() && value::rfc3339(s).is_ok())
}

/// Generic `X-RateLimit-Limit/-Remaining/-Reset/-Used`; Atlassian
/// (<https://developer.atlassian.com/cloud/jira/platform/rate-limiting/>, "Rate limit
/// responses") sends the same names with an ISO 8601 reset (`2024-05-01T12:00Z`) and
/// `RateLimit-Reason` naming the limit hit. Its `Beta-`-prefixed copies are previews,
/// not the real fields, and are not read.
fn generic(cx: &mut Cx<'_>, dialect: Dialect) {
    let scope = match (dialect, cx.text(&ATLASSIAN_REASON)) {
        (Dialect::Atlassian, Some(reason)) if !reason.is_empty() => Scope::Named(Name::new(reason)),
        _ => Scope::Unspecified,
    };
    let mut l = Limit::new(scope, dialect);
    (l.limit, l.window) = limit_and_window(cx, &LIMIT);
    // Lenient: Reddit-style servers send `598.0`.
    l.remaining = cx.field(&REMAINING, value::count_lenient);
    if l.remaining.is_none() {
        if let (Some(limit), Some(used)) = (l.limit, cx.count(&USED)) {
            l.remaining = Some(limit.saturating_sub(used));
        }
    }
    l.reset = reset(cx, &RESET).or_else(|| reset_ms(cx, &RESET_MS));
    if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() {
        cx.push(l);
    }
}

/// GitHub (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>,
/// "Checking the status of your rate limit"): `x-ratelimit-limit/-remaining/-used`,
/// `-reset` in epoch seconds, `-resource` naming the bucket (`core`, `search`, `graphql`).
fn github(cx: &mut Cx<'_>) {
    let scope = match cx.text(&RESOURCE) {
        Some(r) if !r.is_empty() => Scope::Named(Name::new(r)),
        _ => Scope::Unspecified,
    };
    let mut l = Limit::new(scope, Dialect::GitHub);
    l.limit = cx.count(&LIMIT);
    l.remaining = cx.count(&REMAINING);
    if l.remaining.is_none() {
        if let (Some(limit), Some(used)) = (l.limit, cx.count(&USED)) {
            l.remaining = Some(limit.saturating_sub(used));
        }
    }
    l.reset = reset(cx, &RESET);
    cx.push(l);
}

/// Discord (<https://discord.com/developers/docs/topics/rate-limits>, "Header Format"):
/// `X-RateLimit-Limit/-Remaining`, `-Reset` (epoch seconds with a fraction), `-Reset-After`
/// (seconds with a fraction, preferred: it needs no clock), `-Bucket` (the bucket id),
/// `-Global` (the global limit was hit), `-Scope`.
fn discord(cx: &mut Cx<'_>) {
    let scope = match cx.text(&BUCKET) {
        Some(b) if !b.is_empty() => Scope::Named(Name::new(b)),
        _ => Scope::Unspecified,
    };
    let mut l = Limit::new(scope, Dialect::Discord);
    l.limit = cx.count(&LIMIT);
    l.remaining = cx.count(&REMAINING);
    l.reset = cx
        .field(&RESET_AFTER, value::delta_secs)
        .or_else(|| reset(cx, &RESET));
    if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() {
        cx.push(l);
    }
    if cx
        .text(&GLOBAL)
        .is_some_and(|g| g.eq_ignore_ascii_case("true"))
    {
        // The global limit was hit: it is exhausted, and `Retry-After` says for how long.
        let mut g = Limit::new(Scope::named("global"), Dialect::Discord);
        g.remaining = Some(0);
        g.reset = cx.snap.retry_after();
        cx.push(g);
    }
}

/// Reddit (<https://support.reddithelp.com/hc/en-us/articles/16160319875092-Reddit-Data-API-Wiki>,
/// "Rate Limits"): `X-Ratelimit-Used`, `-Remaining` (a decimal), `-Reset` (seconds to the
/// period's end). The period's quota is used + remaining.
fn reddit(cx: &mut Cx<'_>) {
    let mut l = Limit::new(Scope::Requests, Dialect::Reddit);
    let used = cx.field(&USED, value::count_lenient);
    l.remaining = cx.field(&REMAINING, value::count_lenient);
    if let (Some(u), Some(r)) = (used, l.remaining) {
        l.limit = Some(u.saturating_add(r).min(value::MAX_COUNT));
    }
    l.reset = reset(cx, &RESET);
    cx.push(l);
}

/// Per-window headers as API gateways emit them, several at once. Kong's rate-limiting
/// plugin (<https://docs.konghq.com/hub/kong-inc/rate-limiting/>, "Headers sent to the
/// client"): `X-RateLimit-Limit-Minute`, `X-RateLimit-Remaining-Hour`, ... one pair per
/// configured window (`-Second` to `-Year`), counting requests; its response-ratelimiting
/// plugin names the limit too: `X-RateLimit-Limit-Videos-Minute`. The same pairs without
/// the `X-` prefix (`RateLimit-Limit-Minute`) and a remaining without its limit are read
/// alike. Kong's `RateLimit-*` triple repeats the most constrained window and merges into
/// it (see the module docs).
fn kong(cx: &mut Cx<'_>) {
    const PAIRS: [(&str, &str); 2] = [
        ("x-ratelimit-limit-", "x-ratelimit-remaining-"),
        ("ratelimit-limit-", "ratelimit-remaining-"),
    ];
    let headers = cx.headers;
    for (limit_prefix, remaining_prefix) in PAIRS {
        for name in headers.keys() {
            let n = name.as_str();
            let (rest, is_limit) = match (
                n.strip_prefix(limit_prefix),
                n.strip_prefix(remaining_prefix),
            ) {
                (Some(rest), _) => (rest, true),
                (_, Some(rest)) => (rest, false),
                _ => continue,
            };
            let Some((label, window)) = kong_window(rest) else {
                continue;
            };
            let partner = partner_name(
                if is_limit {
                    remaining_prefix
                } else {
                    limit_prefix
                },
                rest,
            );
            // A remaining whose limit is present is read with that limit.
            if !is_limit && partner.as_ref().is_some_and(|p| headers.contains_key(p)) {
                continue;
            }
            let scope = if label.is_empty() {
                Scope::Requests
            } else {
                Scope::Named(Name::new(label))
            };
            let mut l = Limit::new(scope, Dialect::Kong);
            if is_limit {
                l.limit = cx.count(name);
                l.remaining = partner.as_ref().and_then(|p| cx.count(p));
            } else {
                l.remaining = cx.count(name);
            }
            l.window = window;
            if l.limit.is_some() || l.remaining.is_some() {
                cx.push(l);
            }
        }
    }
}

/// `prefix` + `rest` as a header name, without allocating; `None` when too long.
fn partner_name(prefix: &str, rest: &str) -> Option<HeaderName> {
    let mut buf = [0u8; 128];
    let len = prefix.len() + rest.len();
    if len > buf.len() {
        return None;
    }
    buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
    buf[prefix.len()..len].copy_from_slice(rest.as_bytes());
    HeaderName::from_bytes(&buf[..len]).ok()
}

/// Splits Kong's `[<name>-]<window>` suffix. Months and years are calendar periods of
/// varying length: they have no fixed window.
fn kong_window(rest: &str) -> Option<(&str, Option<Duration>)> {
    const WINDOWS: [(&str, Option<u64>); 6] = [
        ("second", Some(1)),
        ("minute", Some(60)),
        ("hour", Some(3600)),
        ("day", Some(86_400)),
        ("month", None),
        ("year", None),
    ];
    WINDOWS.iter().find_map(|&(w, secs)| {
        let label = if rest == w {
            ""
        } else {
            rest.strip_suffix(w)?.strip_suffix('-')?
        };
        Some((label, secs.map(Duration::from_secs)))
    })
}

/// Linear (<https://linear.app/developers/rate-limiting>): request and complexity limits,
/// `X-RateLimit-{Requests,Complexity}-{Limit,Remaining,Reset}`, resets in epoch milliseconds.
fn linear(cx: &mut Cx<'_>) {
    for (scope, limit, remaining, rst) in [
        (
            Scope::Requests,
            &LINEAR_REQ_LIMIT,
            &LINEAR_REQ_REMAINING,
            &LINEAR_REQ_RESET,
        ),
        (
            Scope::named("complexity"),
            &LINEAR_CX_LIMIT,
            &LINEAR_CX_REMAINING,
            &LINEAR_CX_RESET,
        ),
    ] {
        if !cx.headers.contains_key(limit) && !cx.headers.contains_key(remaining) {
            continue;
        }
        let mut l = Limit::new(scope, Dialect::Linear);
        l.limit = cx.count(limit);
        l.remaining = cx.count(remaining);
        l.reset = reset(cx, rst);
        cx.push(l);
    }
}

/// `X-Rate-Limit-Limit/-Remaining/-Reset` (epoch seconds): X
/// (<https://docs.x.com/x-api/fundamentals/rate-limits>), Okta
/// (<https://developer.okta.com/docs/reference/rl-best-practices/>); Zendesk sends the
/// limit as `X-Rate-Limit` (<https://developer.zendesk.com/api-reference/introduction/rate-limits/>).
/// Then X's 24-hour app and user limits.
pub(super) fn x_rate_limit(cx: &mut Cx<'_>) {
    if cx.seen.has(Seen::X_RATE_LIMIT) {
        x_rate_limit_fields(cx);
    }
    if !cx.seen.has(Seen::X_24H) {
        return;
    }
    for (name, limit, remaining, rst) in [
        ("app-24hour", &X_APP_LIMIT, &X_APP_REMAINING, &X_APP_RESET),
        (
            "user-24hour",
            &X_USER_LIMIT,
            &X_USER_REMAINING,
            &X_USER_RESET,
        ),
    ] {
        if !cx.headers.contains_key(limit) && !cx.headers.contains_key(remaining) {
            continue;
        }
        let mut l = Limit::new(Scope::named(name), Dialect::X);
        l.limit = cx.count(limit);
        l.remaining = cx.count(remaining);
        l.reset = reset(cx, rst);
        l.window = Some(Duration::from_secs(86_400));
        cx.push(l);
    }
}

fn x_rate_limit_fields(cx: &mut Cx<'_>) {
    let mut l = Limit::new(Scope::Unspecified, Dialect::XRateLimit);
    l.limit = cx.count(&XR_LIMIT).or_else(|| cx.count(&XR_LIMIT_ZENDESK));
    l.remaining = cx.count(&XR_REMAINING);
    l.reset = reset(cx, &XR_RESET);
    if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() {
        cx.push(l);
    }
}
