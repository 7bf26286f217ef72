//! Tell a transient rate limit from permanent quota exhaustion, overload and errors, for
//! HTTP and gRPC responses.
//!
//! ```
//! use abide_classify::{Class, Classification, QuotaClassifierLayer, QuotaScope};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An API that is out of credit, though it answers 429 like a rate limit.
//! let api = service_fn(|_req: Request<()>| async {
//!     let body = r#"{"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
//!                    "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}"#;
//!     Ok::<_, std::convert::Infallible>(
//!         Response::builder()
//!             .status(429)
//!             .header("content-type", "application/json")
//!             .body(Full::new(Bytes::from(body)))
//!             .unwrap(),
//!     )
//! });
//!
//! let client = QuotaClassifierLayer::new().layer(api);
//! let response = client.oneshot(Request::new(())).await?;
//!
//! let verdict = response.extensions().get::<Classification>().unwrap();
//! assert_eq!(verdict.class, Class::QuotaExhausted);
//! assert!(!verdict.retryable);
//! assert_eq!(verdict.scope, QuotaScope::Billing);
//!
//! // The body reaches the caller untouched.
//! let body = response.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b"{\"error\""));
//! # Ok(())
//! # }
//! ```
//!
//! # What the layer does
//!
//! [`QuotaClassifier`] parses the rate-limit headers once into a
//! [`RateLimitSnapshot`], decides what the response means, and puts both into the
//! response's extensions, where the retry and cap layers read them. To read an error body
//! it peeks a bounded prefix (64 KiB, 2 s by default) of non-success text and JSON bodies
//! (and of 2xx GraphQL responses when asked), then hands the whole body on untouched. A
//! success response with no peek costs no allocation besides the extensions.
//!
//! gRPC responses are classified from `grpc-status` in the headers (trailers-only
//! responses) or, when the status comes in the trailers, when the body ends: the verdict
//! then goes to the [`EosClassification`] in the extensions.
//!
//! Errors of the inner service pass through unchanged; [`classify_error`] explains them.
//!
//! # Rules
//!
//! [`MakeClassifier`] / [`ClassifyResponse`] are the extension points (modelled on
//! tower-http's `classify`). Rules added with [`QuotaClassifierLayer::with_rule`] run
//! before the built-in [`DefaultRules`]; each stage returns `None` to pass.
//!
//! The built-in rules know OpenAI and Azure OpenAI, Anthropic, Google (Gemini, Vertex,
//! Cloud APIs, gRPC `google.rpc` details), AWS, GitHub (REST and GraphQL), Stripe,
//! Shopify GraphQL cost, RFC 9457 problem+json and JSON:API bodies (Honeycomb),
//! `x-should-retry`, gRPC (`grpc-retry-pushback-ms`, `grpc-status-details-bin`), and the
//! status codes.
//!
//! For every other API the generic reading goes by words and shapes: a 2xx whose
//! error-shaped body says it was rate limited is not a success; a 403 speaking of rate or
//! request limits is a rate limit, one speaking of permissions an auth error; credit,
//! balance and billing words mean exhaustion whatever the status; queue-full and
//! rejected-execution words on a 429 or 503 mean overload, as capacity words do anywhere;
//! a wait stated anywhere in the body (fields such as `retry_after`, `retryAfterMs`,
//! `banned_until`, or prose in any unit, instants measured from the `Date` header) is
//! the wait; a request larger than the whole limit is a client error; a per-day or
//! per-month limit is a rate limit while a wait is stated and exhaustion without one.
//!
//! [`Classification::scope`] is the kind of limit hit ([`QuotaScope`]);
//! [`Classification::bucket`] names which one when the server does.
#![forbid(unsafe_code)]

mod body;
mod classification;
mod classify;
mod deadline;
pub mod future;
#[cfg(feature = "grpc")]
pub mod grpc;
mod layer;
mod rules;
mod sent;
mod service;
mod verdict;

pub use body::{EosClassification, ResponseBody};
pub use classification::{Class, Classification, Processing, QuotaScope, Reason};
pub use classify::{
    rule_fn, BodyPrefix, Chain, ClassifyResponse, Decision, DefaultClassifier, DefaultRules,
    MakeClassifier, NoRules, ResponseHead, RuleFn,
};
pub use deadline::Deadline;
pub use layer::{QuotaClassifierLayer, DEFAULT_PEEK_LIMIT, DEFAULT_PEEK_TIMEOUT};
pub use sent::{AttemptStart, HeldProbe};
pub use service::QuotaClassifier;
pub use verdict::Verdict;

use abide_headers::RateLimitSnapshot;
use http::{HeaderMap, StatusCode};

/// Stated waits longer than this mean quota exhaustion, not a rate limit, by default: an
/// hour and a minute. The retry layer and the cap take server-stated waits up to the same
/// bound (`abide_retry::DEFAULT_MAX_SERVER_WAIT`, `abide_cap::DEFAULT_MAX_SERVER_WAIT`),
/// so the stack gives one answer to one `Retry-After`.
///
/// An hourly window is the longest APIs state (GitHub's hourly limit, hourly fixed and
/// sliding windows): a request that meets one spent waits for it to turn; longer waits
/// mean daily or billing quotas. The extra minute is for how that turn is stated: a
/// reset in whole seconds, rounded up and read a round trip after the server counted,
/// puts an hourly window's turn a little past the hour (`Retry-After: 3601`).
///
/// ```
/// use abide_classify::{classify_head, Class, DEFAULT_LONG_WAIT};
/// use abide_headers::RateLimitSnapshot;
/// use http::{HeaderMap, StatusCode};
/// use std::time::Duration;
///
/// // A 429 whose `Retry-After` says `secs`.
/// let refusal = |secs: u64| {
///     let mut stated = RateLimitSnapshot::new();
///     stated.set_retry_after(Some(Duration::from_secs(secs)));
///     classify_head(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), &stated).class
/// };
/// assert_eq!(refusal(3601), Class::RateLimited, "an hourly window, rounded up");
/// assert_eq!(refusal(DEFAULT_LONG_WAIT.as_secs() + 1), Class::QuotaExhausted);
/// ```
pub const DEFAULT_LONG_WAIT: std::time::Duration = std::time::Duration::from_secs(3660);

/// Classifies a response from its status and headers alone (no body): the fallback the
/// retry and cap layers use when no [`QuotaClassifier`] sits below them.
///
/// ```
/// use abide_classify::{classify_head, Class};
/// use abide_headers::RateLimitSnapshot;
/// use http::{HeaderMap, StatusCode};
///
/// let verdict = classify_head(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), &RateLimitSnapshot::new());
/// assert_eq!(verdict.class, Class::RateLimited);
/// ```
pub fn classify_head(
    status: StatusCode,
    headers: &HeaderMap,
    snapshot: &RateLimitSnapshot,
) -> Classification {
    rules::classify(status, headers, None, snapshot, rules::Options::default())
}

/// Classifies a whole response: status, headers, an optional body (or its prefix) and the
/// snapshot read from the headers. This is what `abide inspect` calls. On a 2xx, a body is
/// read as GraphQL (`errors` saying `RATE_LIMITED`).
///
/// ```
/// use abide_classify::{classify, Class, QuotaScope};
/// use abide_headers::RateLimitSnapshot;
/// use http::{HeaderMap, StatusCode};
/// use std::time::Duration;
///
/// let body = br#"{"error": {"message": "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500. Please try again in 3.89s.", "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}"#;
/// let verdict = classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), Some(body), &RateLimitSnapshot::new());
/// assert_eq!(verdict.class, Class::RateLimited);
/// assert_eq!(verdict.scope, QuotaScope::Tokens);
/// assert_eq!(verdict.retry_after, Some(Duration::from_millis(3890)));
/// ```
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    snapshot: &RateLimitSnapshot,
) -> Classification {
    rules::classify(status, headers, body, snapshot, rules::Options::default())
}

/// Classifies gRPC metadata: the trailers of a response, or the headers of a trailers-only
/// response. Metadata without `grpc-status` is a failure (a stream must end with a status).
///
/// ```
/// use abide_classify::{classify_grpc, Class};
/// use http::HeaderMap;
///
/// let mut trailers = HeaderMap::new();
/// trailers.insert("grpc-status", "8".parse().unwrap());
/// trailers.insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
/// assert_eq!(classify_grpc(&trailers).class, Class::QuotaExhausted);
/// ```
pub fn classify_grpc(metadata: &HeaderMap) -> Classification {
    rules::grpc::classify_metadata(metadata).unwrap_or_else(classify::missing_grpc_status)
}

/// Classifies an error returned by the inner service. Walks the `source()` chain:
/// `tonic::Status` by code and details (feature `grpc`), hyper and hyper-util client
/// errors (feature `hyper`; a failed connect was not processed), tower and tokio timeouts
/// (ambiguous), `io::Error` kinds (refused: not processed; reset: ambiguous). Anything else
/// is a retryable, ambiguous server error.
///
/// ```
/// use abide_classify::{classify_error, Processing};
/// use std::io;
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(classify_error(&refused).processing, Processing::NotProcessed);
/// ```
pub fn classify_error(error: &(dyn std::error::Error + 'static)) -> Classification {
    rules::error::classify_error(error)
}
