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
//! assert_eq!(snapshot.wait(), Some(Duration::from_secs(360)));
//! ```
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

    /// Reads the headers of a response.
    pub fn extract_response<B>(&self, response: &http::Response<B>) -> RateLimitSnapshot {
        self.extract(response.headers())
    }

    /// Reads the headers of response parts.
    pub fn extract_parts(&self, parts: &http::response::Parts) -> RateLimitSnapshot {
        self.extract(&parts.headers)
    }
}
