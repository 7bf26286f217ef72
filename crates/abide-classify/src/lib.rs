//! Tell a transient rate limit from permanent quota exhaustion, overload and errors.
#![forbid(unsafe_code)]

mod classification;

pub use classification::{Class, Classification, Processing, QuotaScope, Reason};

use abide_headers::RateLimitSnapshot;
use http::{HeaderMap, StatusCode};

/// Placeholder until the layer lands.
#[derive(Debug)]
pub struct QuotaClassifier;

/// Classifies a response from its status and headers alone (no body): the fallback the
/// retry and cap layers use when no [`QuotaClassifier`] sits below them.
pub fn classify_head(
    status: StatusCode,
    _headers: &HeaderMap,
    snapshot: &RateLimitSnapshot,
) -> Classification {
    let wait = snapshot.wait();
    match status.as_u16() {
        200..=399 => Classification::success(),
        429 => Classification::new(Class::RateLimited, "status 429").with_retry_after(wait),
        408 => Classification::new(Class::ServerError, "status 408").with_retryable(true),
        401 | 403 => Classification::new(Class::AuthError, "status 401/403"),
        529 => Classification::new(Class::Overloaded, "status 529").with_retry_after(wait),
        503 => Classification::new(Class::ServerError, "status 503").with_retry_after(wait),
        500..=599 => Classification::new(Class::ServerError, "status 5xx"),
        _ => Classification::new(Class::ClientError, "status 4xx"),
    }
}

/// Classifies an error returned by the inner service (connection failure, timeout, ...).
pub fn classify_error(_error: &(dyn std::error::Error + 'static)) -> Classification {
    Classification::new(Class::ServerError, "inner service error")
}
