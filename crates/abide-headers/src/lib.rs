//! Read and write every rate-limit header dialect as one normalized [`RateLimitSnapshot`].
//!
//! ```
//! use abide_headers::{RateLimitHeaders, Scope};
//! use http::HeaderMap;
//! use std::time::Duration;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-ratelimit-limit-requests", "500".parse().unwrap());
//! headers.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
//! headers.insert("x-ratelimit-reset-requests", "6m0s".parse().unwrap());
//!
//! let snapshot = RateLimitHeaders::new().extract(&headers);
//! let requests = snapshot.get(&Scope::Requests).unwrap();
//! assert_eq!(requests.limit, Some(500));
//! // OpenAI's bucket is full again in 6 minutes and refills continuously: one request
//! // is back after 6 min / 500.
//! assert_eq!(snapshot.wait(), Some(Duration::from_millis(720)));
//! ```
//!
//! # Dialects read
//!
//! | family | fields | [`Dialect`] |
//! |---|---|---|
//! | IETF drafts 08–11 | `RateLimit-Policy: "name";q=;w=;qu=;pk=`, `RateLimit: "name";r=;t=;pk=` | `Ietf` |
//! | IETF draft 12 (working copy) | `RateLimit: name;a=;w=;c=` (Token ids), `RateLimit-Partition: name;dim="v"` | `Ietf` |
//! | IETF draft 07 (Honeycomb) | `RateLimit: limit=, remaining=, reset=`, `RateLimit-Policy: 100;w=60` | `IetfDraft07` |
//! | IETF drafts 04–06 | `RateLimit-Limit/-Remaining/-Reset` + `RateLimit-Policy` | `IetfDraft06` |
//! | IETF drafts 00–03 (W&B's remaining-only form too) | `RateLimit-Limit: 10, 10;w=1`, `-Remaining: 76;w=60`, `-Reset` | `IetfDraft03` |
//! | the wait | `retry-after-ms`, `x-ms-retry-after-ms`, Traefik `X-Retry-In`, `Retry-After` | (the snapshot's [`retry_after`](RateLimitSnapshot::retry_after)) |
//! | OpenAI, Azure OpenAI, Groq | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (Go durations, Azure `-1`) | `OpenAi` |
//! | Anthropic | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*` (RFC 3339) | `Anthropic` |
//! | GitHub | `x-ratelimit-*` with `-resource`, `-used`, epoch reset | `GitHub` |
//! | generic, Envoy | `X-RateLimit-Limit/-Remaining/-Reset/-Used`, `-Reset-Ms` | `XRateLimit` |
//! | X, Okta, Zendesk | `X-Rate-Limit-*`, `X-Rate-Limit` | `XRateLimit` |
//! | X 24-hour caps | `x-app-limit-24hour-*`, `x-user-limit-24hour-*` | `X` |
//! | GitLab | `RateLimit-Name/-Observed/-Reset/-ResetTime` | `GitLab` |
//! | Discord | `X-RateLimit-Bucket/-Reset-After/-Global` | `Discord` |
//! | Reddit | `X-Ratelimit-Used/-Remaining` (decimal) | `Reddit` |
//! | Atlassian | `X-RateLimit-Reset` as ISO 8601, `RateLimit-Reason` | `Atlassian` |
//! | Kong, gateways' per-window headers | `X-RateLimit-Limit-Minute`, `RateLimit-Remaining-Hour`, `X-RateLimit-Remaining-Videos-Day`, ... | `Kong` |
//! | Linear | `X-RateLimit-{Requests,Complexity}-*` | `Linear` |
//! | Shopify | `X-Shopify-Shop-Api-Call-Limit: 32/40` | `Shopify` |
//! | Salesforce | `Sforce-Limit-Info: api-usage=25/5000` | `Salesforce` |
//! | Sentry | `X-Sentry-Rate-Limits` | `Sentry` |
//! | HubSpot | `X-HubSpot-RateLimit-*` | `HubSpot` |
//! | Azure Resource Manager | `x-ms-ratelimit-remaining-*` | `AzureArm` |
//! | Zendesk per endpoint | `Zendesk-RateLimit-<endpoint>: total=; remaining=; resets=` | `Zendesk` |
//! | Stripe | `Stripe-Rate-Limited-Reason` | `Stripe` |
//!
//! When several are present, all are read; fields shared between dialects (the
//! `x-ratelimit-*` names) go to the most specific reader only, and one counter sent under
//! two names is kept once.
//!
//! # Rules
//! - Instants (epoch seconds or milliseconds, HTTP-dates, RFC 3339) become durations from
//!   the reference instant; an instant already past is zero. A reset number is read as
//!   delta seconds, epoch seconds or epoch milliseconds by its magnitude against now.
//! - The wait ([`RateLimitSnapshot::wait`]): an explicit retry field (millisecond variants
//!   first), else the latest reset among exhausted limits, else none. A status code alone
//!   never implies one.
//! - Nothing is invented: a field the headers do not state stays `None`, and headers that
//!   carry no numbers (a bare policy name, a bucket id alone) create no limit.
//! - Malformed fields are skipped one by one, each reported as a `tracing` debug event
//!   (field, value prefix, reason); the rest still parse. A number that breaks its
//!   field's grammar is dropped (an sf-integer of more than 15 digits in the IETF fields);
//!   plain counts are capped (at 10^15 − 1, durations at about ten years), at most [`MAX_LIMITS`] limits are kept, and
//!   work is linear in the header size.
//! - Repeated field lines combine as RFC 9110 §5.3 says: list fields in order; a singleton
//!   field only when every line agrees.
//! - Extraction does not allocate in the common case (one dialect, up to four limits,
//!   policy names up to 30 bytes).
//!
//! # Writing headers
//! [`render`] writes a snapshot back in a chosen dialect, for simulated APIs and servers
//! that advertise their limits; reading what it wrote gives the snapshot back.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod parse;
mod render;
mod snapshot;
mod value;

pub use render::{render, RenderError};
pub use snapshot::{
    Dialect, Limit, Name, PartitionKey, QuotaUnit, RateLimitSnapshot, Scope, MAX_LIMITS,
    MAX_NAME_LEN,
};

use http::HeaderMap;
use std::time::SystemTime;

/// Reads an instant as rate-limit headers and error bodies state it: an RFC 3339 / ISO
/// 8601 timestamp (`2026-11-27T03:05:00Z`, offsets and fractions allowed) or an HTTP-date.
/// `None` for anything else.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = abide_headers::parse_instant("2023-11-14T22:13:20Z").unwrap();
/// assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert!(abide_headers::parse_instant("soon").is_none());
/// ```
pub fn parse_instant(s: &str) -> Option<SystemTime> {
    let s = value::trim_ows(s);
    value::rfc3339(s).or_else(|_| value::http_date(s)).ok()
}

/// Extracts a [`RateLimitSnapshot`] from response headers, whatever dialect they use.
///
/// Relative times (resets, waits) are measured from the reference instant: the one given
/// with [`with_now`](Self::with_now), else the response's `Date` header, else the clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateLimitHeaders {
    now: Option<SystemTime>,
}

impl RateLimitHeaders {
    /// An extractor that measures from the response's `Date`, else the clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Measure relative times from `now` instead of the `Date` header or the clock.
    pub fn with_now(mut self, now: SystemTime) -> Self {
        self.now = Some(now);
        self
    }

    /// Reads every rate-limit header in `headers`. Malformed fields are skipped one by one
    /// (each reported as a `tracing` debug event); the rest still parse.
    pub fn extract(&self, headers: &HeaderMap) -> RateLimitSnapshot {
        parse::extract(headers, self.now)
    }

    /// Reads every rate-limit header in `headers` into `snapshot`, replacing what it held:
    /// the same result as [`extract`](Self::extract), for a caller that keeps the snapshot
    /// in place (in a response's extensions, say) and would rather not move its
    /// inline limits around.
    ///
    /// ```
    /// use abide_headers::{RateLimitHeaders, RateLimitSnapshot};
    /// use http::HeaderMap;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-ratelimit-limit-requests", "500".parse().unwrap());
    /// headers.insert("x-ratelimit-remaining-requests", "499".parse().unwrap());
    /// let mut snapshot = RateLimitSnapshot::new();
    /// RateLimitHeaders::new().extract_into(&headers, &mut snapshot);
    /// assert_eq!(snapshot, RateLimitHeaders::new().extract(&headers));
    /// assert_eq!(snapshot.limits()[0].remaining, Some(499));
    /// ```
    pub fn extract_into(&self, headers: &HeaderMap, snapshot: &mut RateLimitSnapshot) {
        parse::extract_into(headers, self.now, snapshot);
    }

    /// Reads the headers of a response.
    pub fn extract_response<B>(&self, response: &http::Response<B>) -> RateLimitSnapshot {
        self.extract(response.headers())
    }

    /// Reads the headers of response parts.
    pub fn extract_parts(&self, parts: &http::response::Parts) -> RateLimitSnapshot {
        self.extract(&parts.headers)
    }
}
