//! The vendor tail: formats of one vendor each.

use super::{list, malformed, names, Cx};
use crate::value;
use crate::{Dialect, Limit, Name, Scope};
use std::time::Duration;

names! {
    SHOPIFY = "x-shopify-shop-api-call-limit";
    SALESFORCE = "sforce-limit-info";
    SENTRY = "x-sentry-rate-limits";
    HS_DAILY = "x-hubspot-ratelimit-daily";
    HS_DAILY_REMAINING = "x-hubspot-ratelimit-daily-remaining";
    HS_INTERVAL_MS = "x-hubspot-ratelimit-interval-milliseconds";
    HS_MAX = "x-hubspot-ratelimit-max";
    HS_REMAINING = "x-hubspot-ratelimit-remaining";
    HS_SECONDLY = "x-hubspot-ratelimit-secondly";
    HS_SECONDLY_REMAINING = "x-hubspot-ratelimit-secondly-remaining";
    AZURE_RESOURCE = "x-ms-ratelimit-remaining-resource";
    STRIPE_REASON = "stripe-rate-limited-reason";
}

pub(super) fn read(cx: &mut Cx<'_>) {
    shopify(cx);
    salesforce(cx);
    sentry(cx);
    hubspot(cx);
    prefixed(cx);
    stripe(cx);
}

/// `used/limit`, as Shopify and Salesforce write it.
fn used_of(s: &str) -> Option<(u64, u64)> {
    let (used, limit) = s.split_once('/')?;
    Some((value::count(used).ok()?, value::count(limit).ok()?))
}

/// Shopify REST Admin API (<https://shopify.dev/docs/api/admin-rest/usage/rate-limits>,
/// "Rate limits" / leaky bucket): `X-Shopify-Shop-Api-Call-Limit: 32/40`, requests used of
/// the bucket's size.
fn shopify(cx: &mut Cx<'_>) {
    let Some(s) = cx.text(&SHOPIFY) else { return };
    match used_of(s) {
        Some((used, limit)) => {
            let mut l = Limit::new(Scope::Requests, Dialect::Shopify);
            l.limit = Some(limit);
            l.remaining = Some(limit.saturating_sub(used));
            cx.push(l);
        }
        None => malformed(&SHOPIFY, s, "expected used/limit"),
    }
}

/// Salesforce (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm>,
/// "Limit Info Header"): `Sforce-Limit-Info: api-usage=25/5000`, also
/// `per-app-api-usage=17/250(appName=...)`; each entry a named limit.
fn salesforce(cx: &mut Cx<'_>) {
    if !cx.headers.contains_key(&SALESFORCE) {
        return;
    }
    let headers = cx.headers;
    for entry in list(headers, &SALESFORCE) {
        let parsed = entry.split_once('=').and_then(|(key, rest)| {
            let rest = rest.split('(').next().unwrap_or(rest);
            Some((value::trim_ows(key), used_of(value::trim_ows(rest))?))
        });
        match parsed {
            Some((key, (used, limit))) if !key.is_empty() => {
                let mut l = Limit::new(Scope::Named(Name::new(key)), Dialect::Salesforce);
                l.limit = Some(limit);
                l.remaining = Some(limit.saturating_sub(used));
                cx.push(l);
            }
            _ => malformed(&SALESFORCE, entry, "expected name=used/limit"),
        }
    }
}

/// Sentry (<https://develop.sentry.dev/sdk/expected-features/rate-limiting/>,
/// "Definitions" / `X-Sentry-Rate-Limits`): comma-separated
/// `retry_after:categories:scope[:reason_code[:namespaces]]`; each entry is a limit on its
/// categories (`;`-separated, empty for all), exhausted for `retry_after` seconds.
fn sentry(cx: &mut Cx<'_>) {
    if !cx.headers.contains_key(&SENTRY) {
        return;
    }
    let headers = cx.headers;
    for entry in list(headers, &SENTRY) {
        let mut parts = entry.split(':');
        let retry = parts.next().map(value::delta_secs);
        let categories = parts.next().map(value::trim_ows);
        match (retry, categories) {
            (Some(Ok(wait)), Some(categories)) => {
                let scope = if categories.is_empty() {
                    Scope::Unspecified
                } else {
                    Scope::Named(Name::new(categories))
                };
                let mut l = Limit::new(scope, Dialect::Sentry);
                l.remaining = Some(0);
                l.reset = Some(wait);
                cx.push(l);
            }
            _ => malformed(&SENTRY, entry, "expected retry_after:categories:scope"),
        }
    }
}

/// HubSpot (<https://developers.hubspot.com/docs/api/usage-details>, "Rate limits" /
/// headers): the per-interval limit (`-Max`, `-Remaining`, `-Interval-Milliseconds`),
/// the daily limit (`-Daily`, `-Daily-Remaining`) and the per-second one (`-Secondly`,
/// `-Secondly-Remaining`), all counting requests.
fn hubspot(cx: &mut Cx<'_>) {
    let interval = cx.field(&HS_INTERVAL_MS, value::millis);
    for (limit, remaining, window) in [
        (&HS_MAX, &HS_REMAINING, interval),
        (
            &HS_SECONDLY,
            &HS_SECONDLY_REMAINING,
            Some(Duration::from_secs(1)),
        ),
        (
            &HS_DAILY,
            &HS_DAILY_REMAINING,
            Some(Duration::from_secs(86_400)),
        ),
    ] {
        if !cx.headers.contains_key(limit) && !cx.headers.contains_key(remaining) {
            continue;
        }
        let mut l = Limit::new(Scope::Requests, Dialect::HubSpot);
        l.limit = cx.count(limit);
        l.remaining = cx.count(remaining);
        l.window = window;
        if l.limit.is_some() || l.remaining.is_some() {
            cx.push(l);
        }
    }
}

/// Fields named by a prefix plus the limit's name:
/// - Azure Resource Manager (<https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/request-limits-and-throttling>,
///   "Remaining requests"): `x-ms-ratelimit-remaining-subscription-reads: 11999`, ... —
///   remaining counts only; and `x-ms-ratelimit-remaining-resource:
///   Microsoft.Compute/HighCostGet3Min;107` (policy;remaining, comma-separated);
/// - Zendesk (<https://developer.zendesk.com/api-reference/introduction/rate-limits/>):
///   `zendesk-ratelimit-tickets-index: total=100; remaining=99; resets=41`.
fn prefixed(cx: &mut Cx<'_>) {
    const AZURE: &str = "x-ms-ratelimit-remaining-";
    const ZENDESK: &str = "zendesk-ratelimit-";
    let headers = cx.headers;
    for name in headers.keys() {
        let n = name.as_str();
        if name == AZURE_RESOURCE {
            for entry in list(headers, name) {
                match entry
                    .rsplit_once(';')
                    .map(|(p, r)| (value::trim_ows(p), value::count(r)))
                {
                    Some((policy, Ok(remaining))) if !policy.is_empty() => {
                        let mut l = Limit::new(Scope::Named(Name::new(policy)), Dialect::AzureArm);
                        l.remaining = Some(remaining);
                        cx.push(l);
                    }
                    _ => malformed(name, entry, "expected policy;remaining"),
                }
            }
        } else if let Some(what) = n.strip_prefix(AZURE) {
            if let Some(remaining) = cx.count(name) {
                let mut l = Limit::new(Scope::Named(Name::new(what)), Dialect::AzureArm);
                l.remaining = Some(remaining);
                cx.push(l);
            }
        } else if let Some(what) = n.strip_prefix(ZENDESK) {
            let Some(s) = cx.text(name) else { continue };
            let mut l = Limit::new(Scope::Named(Name::new(what)), Dialect::Zendesk);
            for param in s.split(';') {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                match value::trim_ows(k) {
                    "total" => l.limit = value::count(v).ok(),
                    "remaining" => l.remaining = value::count(v).ok(),
                    "resets" => l.reset = value::delta_secs(v).ok(),
                    _ => {}
                }
            }
            if l.limit.is_some() || l.remaining.is_some() {
                cx.push(l);
            } else {
                malformed(name, s, "expected total=; remaining=; resets=");
            }
        }
    }
}

/// Stripe (<https://docs.stripe.com/rate-limits>): a 429 names the limiter that refused
/// the request in `Stripe-Rate-Limited-Reason` (`global-rate`, `global-concurrency`,
/// `endpoint-rate`, `endpoint-concurrency`, `resource-specific`). No counts are sent, so
/// the limit is known only to be exhausted.
fn stripe(cx: &mut Cx<'_>) {
    if let Some(reason) = cx.text(&STRIPE_REASON) {
        if !reason.is_empty() {
            let mut l = Limit::new(Scope::Named(Name::new(reason)), Dialect::Stripe);
            l.remaining = Some(0);
            cx.push(l);
        }
    }
}
