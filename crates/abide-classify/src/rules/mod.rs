//! The built-in rules: status, headers, body and gRPC status, vendor by vendor.

pub(crate) mod body;
pub(crate) mod codes;
pub(crate) mod cost;
pub(crate) mod error;
pub(crate) mod fits;
pub(crate) mod google;
pub(crate) mod grpc;
pub(crate) mod phrases;
pub(crate) mod prose;
pub(crate) mod text;
pub(crate) mod waits;

use crate::{Class, Classification, Processing, QuotaScope};
use abide_headers::{Dialect, QuotaUnit, RateLimitSnapshot, Scope};
use http::{HeaderMap, HeaderName, StatusCode};
use std::time::Duration;

// Names as constants: a lookup by `&str` parses the name on every response.
const X_AMZN_ERRORTYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESOURCE: HeaderName = HeaderName::from_static("x-ratelimit-resource");
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");
const STRIPE_SHOULD_RETRY: HeaderName = HeaderName::from_static("stripe-should-retry");

use crate::DEFAULT_LONG_WAIT;

/// GitHub: "Otherwise, wait for at least one minute before retrying" (REST API docs,
/// "Exceeding the rate limit").
const GITHUB_SECONDARY_WAIT: Duration = Duration::from_secs(60);

/// Tunables of the built-in rules.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) long_wait: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            long_wait: DEFAULT_LONG_WAIT,
        }
    }
}

/// Classifies a response from its status, headers, optional body prefix and snapshot.
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    snapshot: &RateLimitSnapshot,
    opts: Options,
) -> Classification {
    let success = status.is_success() || status.is_informational() || status.is_redirection();
    if grpc::is_grpc(headers) {
        if let Some(c) = grpc::classify_metadata(headers) {
            return finish(c, headers, snapshot, opts, success);
        }
        if status == StatusCode::OK {
            return Classification::new(Class::Success, "grpc: status follows in trailers");
        }
    }
    if success {
        // A 2xx is a success unless a GraphQL body says it was throttled.
        return match body
            .and_then(|b| body::classify_body(b, true, reference_instant(headers)).verdict)
        {
            Some(c) => finish(c, headers, snapshot, opts, false),
            None => Classification::success(),
        };
    }

    let mut c = status_rule(status);
    if let Some(code) = headers.get(X_AMZN_ERRORTYPE).and_then(|v| v.to_str().ok()) {
        if let Some(v) = codes::header_code_verdict(code) {
            c = v;
        }
    }
    if let Some(bytes) = body {
        let found = body::classify_body(bytes, false, reference_instant(headers));
        match found.verdict {
            // A 429/503/529 stays a throttle even when the body names a generic request error.
            Some(v)
                if found.definite
                    || !(c.class.is_throttle() || status == StatusCode::SERVICE_UNAVAILABLE)
                    || !matches!(v.class, Class::ClientError | Class::AuthError) =>
            {
                c = v
            }
            _ => {
                if c.retry_after.is_none() {
                    c.retry_after = found.wait;
                }
            }
        }
        if found.queue_full {
            queue_full(status, &mut c);
        }
        if matches!(c.class, Class::RateLimited | Class::QuotaExhausted) {
            if c.bucket.is_none() {
                c.bucket = found.bucket;
            }
            // A header-made verdict (`x-amzn-errortype`) takes the kind the words name.
            if c.scope == QuotaScope::Unspecified {
                c.scope = found.scope;
            }
        }
    }
    github(status, headers, snapshot, &mut c);
    if refused_unprocessed(status) && matches!(c.class, Class::ServerError | Class::Overloaded) {
        // A body naming a generic server error (OpenAI's `server_error` on a 503) does not
        // change what the status says: the request was not handled.
        c.processing = Processing::NotProcessed;
    }
    finish(c, headers, snapshot, opts, false)
}

/// The instant the body's instants are measured from: the response's `Date`, else the
/// clock.
fn reference_instant(headers: &HeaderMap) -> std::time::SystemTime {
    headers
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(abide_headers::parse_instant)
        .unwrap_or_else(std::time::SystemTime::now)
}

/// Queue-full and rejected-execution words on a 429 or 503 mean the server is too busy,
/// not that this client went too fast: overload.
fn queue_full(status: StatusCode, c: &mut Classification) {
    if matches!(status.as_u16(), 429 | 503)
        && matches!(c.class, Class::RateLimited | Class::ServerError)
    {
        *c = Classification::new(Class::Overloaded, "body: queue full or rejected execution")
            .with_retry_after(c.retry_after);
    }
}

/// 503 (RFC 9110 §15.6.4, "currently unable to handle the request") and Anthropic's 529
/// (`overloaded_error`, "API is temporarily overloaded") refuse a request without
/// processing it, so any method may be retried. 500/502/504 stay ambiguous.
fn refused_unprocessed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 503 | 529)
}

/// The generic fallback by status code.
fn status_rule(status: StatusCode) -> Classification {
    match status.as_u16() {
        429 => Classification::new(Class::RateLimited, "status 429"),
        408 => Classification::new(Class::ClientError, "status 408 request timeout")
            .with_retryable(true)
            .with_processing(Processing::Ambiguous),
        // RFC 8470: the server refused early data without processing it.
        425 => Classification::new(Class::ClientError, "status 425 too early")
            .with_retryable(true)
            .with_processing(Processing::NotProcessed),
        401 => Classification::new(Class::AuthError, "status 401"),
        403 => Classification::new(Class::AuthError, "status 403 without rate-limit signs"),
        402 => Classification::new(Class::QuotaExhausted, "status 402 payment required")
            .with_scope(QuotaScope::Billing),
        529 => Classification::new(Class::Overloaded, "status 529 overloaded"),
        // RFC 9110 §15.6.4: 503 means the server "is currently unable to handle the
        // request": it was refused, not processed, with or without a Retry-After.
        503 => Classification::new(Class::ServerError, "status 503")
            .with_processing(Processing::NotProcessed),
        400..=499 => Classification::new(Class::ClientError, "status 4xx"),
        _ => Classification::new(Class::ServerError, "status 5xx"),
    }
}

/// GitHub: 403 or 429 with `x-ratelimit-remaining: 0` is the primary limit, 403 with
/// `retry-after` or a "secondary rate limit" message the secondary one; a 403 without
/// them is a permissions problem (docs.github.com, REST API "Rate limits").
fn github(
    status: StatusCode,
    headers: &HeaderMap,
    snapshot: &RateLimitSnapshot,
    c: &mut Classification,
) {
    if !matches!(status.as_u16(), 403 | 429) || c.class == Class::QuotaExhausted {
        return;
    }
    let remaining_zero = headers
        .get(X_RATELIMIT_REMAINING)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"0")
        || snapshot.exhausted().next().is_some();
    let resource = headers
        .get(X_RATELIMIT_RESOURCE)
        .and_then(|r| r.to_str().ok())
        .filter(|r| !r.trim().is_empty())
        .map(|r| abide_headers::Name::new(r.trim()));
    if remaining_zero && c.class != Class::RateLimited {
        let mut v =
            Classification::new(Class::RateLimited, "rate-limit headers: nothing remaining");
        v.bucket = resource;
        v.retry_after = c.retry_after;
        *c = v;
    } else if remaining_zero && c.bucket.is_none() {
        c.bucket = resource;
    } else if status == StatusCode::FORBIDDEN && snapshot.retry_after().is_some() {
        *c = Classification::new(Class::RateLimited, "github: 403 with retry-after")
            .with_retry_after(c.retry_after);
    }
    if c.reason.0 == "github: secondary rate limit"
        && c.retry_after.is_none()
        && snapshot.wait().is_none()
    {
        c.retry_after = Some(GITHUB_SECONDARY_WAIT);
    }
}

/// Rules that apply to every failure verdict: the header wait, the scope the headers
/// name, `x-should-retry`, and waits so long they mean quota exhaustion.
fn finish(
    mut c: Classification,
    headers: &HeaderMap,
    snapshot: &RateLimitSnapshot,
    opts: Options,
    success: bool,
) -> Classification {
    if c.class == Class::Success {
        return c;
    }
    if fits::is_never_fits(&c) {
        // No wait and no retry header makes a request fit that is larger than the limit.
        return c;
    }
    // A credit or billing quota that is gone does not come back when a rate-limit window
    // resets: the limits' resets on such an answer (OpenAI's `insufficient_quota` 429
    // carries its `x-ratelimit-reset-*`) are not its wait; only a stated `Retry-After`
    // is.
    let billing = c.class == Class::QuotaExhausted && c.scope == QuotaScope::Billing;
    if !success && billing {
        c.retry_after = c.retry_after.max(snapshot.retry_after());
    } else if !success {
        // The header wait is authoritative; a longer body wait is a floor too. For a
        // continuously refilling limit, the headers' wait is until one unit is back (its
        // reset is when it is full again): the retry is not sure to fit then, but it may,
        // and the cap paces its cost from the learned refill.
        c.retry_after = match (c.retry_after, snapshot.next_unit_wait()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if matches!(c.class, Class::RateLimited | Class::QuotaExhausted) {
        // The headers naming the exhausted limit (IETF `"burst";r=0`, GitHub `core`)
        // say which bucket it is; the cap keys its state by it.
        if c.bucket.is_none() {
            c.bucket = named_exhausted(snapshot);
        }
        if c.scope == QuotaScope::Unspecified {
            c.scope = scope_from_snapshot(snapshot);
        }
    }
    // OpenAI and Anthropic SDKs obey `x-should-retry`; Stripe's `Stripe-Should-Retry`.
    for name in [&X_SHOULD_RETRY, &STRIPE_SHOULD_RETRY] {
        match headers.get(name).map(|v| v.as_bytes().trim_ascii()) {
            Some(v) if v.eq_ignore_ascii_case(b"false") => {
                c = if c.class.is_throttle() {
                    Classification::new(Class::QuotaExhausted, "explicit do-not-retry header")
                        .with_scope(c.scope)
                        .with_bucket(c.bucket)
                        .with_retry_after(c.retry_after)
                } else {
                    c.with_retryable(false)
                };
            }
            Some(v) if v.eq_ignore_ascii_case(b"true") => c.retryable = true,
            Some(other) => tracing::debug!(header = name.as_str(), value = ?other, "ignored"),
            None => {}
        }
    }
    c = settle_calendar(c);
    if c.retryable && c.retry_after.is_some_and(|w| w > opts.long_wait) {
        c = Classification::new(Class::QuotaExhausted, "stated wait of hours")
            .with_scope(c.scope)
            .with_bucket(c.bucket)
            .with_retry_after(c.retry_after);
    }
    c
}

/// A per-day or per-month limit is a rate limit while a wait is stated (OpenAI and Groq
/// replenish daily limits continuously: "per day ... Please try again in 8.64s"); with no
/// stated wait it is exhaustion.
pub(crate) fn settle_calendar(c: Classification) -> Classification {
    if c.class == Class::RateLimited && c.scope == QuotaScope::Daily && c.retry_after.is_none() {
        return Classification::new(Class::QuotaExhausted, "per-day limit with no stated wait")
            .with_scope(QuotaScope::Daily)
            .with_bucket(c.bucket);
    }
    c
}

/// The name of the first exhausted limit the headers name (an IETF policy, a GitHub
/// resource, a Discord bucket).
fn named_exhausted(snapshot: &RateLimitSnapshot) -> Option<abide_headers::Name> {
    snapshot.exhausted().find_map(|l| match &l.scope {
        Scope::Named(n) => Some(n.clone()),
        _ => None,
    })
}

/// The kind of the first exhausted limit whose kind the headers state.
fn scope_from_snapshot(snapshot: &RateLimitSnapshot) -> QuotaScope {
    snapshot
        .exhausted()
        .find_map(|l| match &l.scope {
            Scope::Tokens => Some(QuotaScope::Tokens),
            Scope::InputTokens => Some(QuotaScope::InputTokens),
            Scope::OutputTokens => Some(QuotaScope::OutputTokens),
            Scope::Requests => Some(QuotaScope::Requests),
            _ => match l.unit {
                Some(QuotaUnit::Requests) => Some(QuotaScope::Requests),
                Some(QuotaUnit::Tokens) => Some(QuotaScope::Tokens),
                Some(QuotaUnit::ConcurrentRequests) => Some(QuotaScope::Concurrency),
                Some(_) => None,
                // The IETF drafts' default quota unit is "requests"; GitHub's REST and
                // Discord's buckets count requests (GitHub's `graphql` resource counts
                // points, so it states no kind).
                None => match l.dialect {
                    Dialect::Ietf
                    | Dialect::IetfDraft07
                    | Dialect::IetfDraft06
                    | Dialect::IetfDraft03 => Some(QuotaScope::Requests),
                    Dialect::GitHub if l.scope.as_str() != "graphql" => Some(QuotaScope::Requests),
                    Dialect::Discord | Dialect::GitLab => Some(QuotaScope::Requests),
                    // Stripe names the limiter that refused the request
                    // (`global-concurrency`, `endpoint-rate`, ...; docs.stripe.com/rate-limits).
                    Dialect::Stripe if l.scope.as_str().contains("concurrency") => {
                        Some(QuotaScope::Concurrency)
                    }
                    Dialect::Stripe if l.scope.as_str().contains("rate") => {
                        Some(QuotaScope::Requests)
                    }
                    _ => None,
                },
            },
        })
        .unwrap_or_default()
}
