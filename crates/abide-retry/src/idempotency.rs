//! Which requests may be sent twice.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};

/// The header OpenAI, Stripe and the IETF draft use to let a server deduplicate a request.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A request extension saying this one request has no side effects (an LLM completion, a
/// search, a read sent as POST): after an ambiguous failure (a 502, a 504, a cut attempt)
/// it is sent again whatever its method, as
/// [`with_replay_safe`](crate::BackoffRetryLayer::with_replay_safe) does for every request
/// of a layer.
///
/// ```
/// use abide_retry::ReplaySafe;
///
/// let mut request = http::Request::post("https://search.example.com/v1/query")
///     .body(String::from(r#"{"q":"rust"}"#))
///     .unwrap();
/// request.extensions_mut().insert(ReplaySafe);
/// # let _ = request;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReplaySafe;

/// True for the methods RFC 9110 calls idempotent: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
pub(crate) fn is_idempotent_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// True when sending the request twice is safe: an idempotent method, or an
/// `Idempotency-Key` header the server deduplicates on.
pub(crate) fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    is_idempotent_method(method) || headers.contains_key(IDEMPOTENCY_KEY)
}

/// A random version-4 UUID. It comes from a randomly seeded generator, never from the
/// (possibly fixed-seed) jitter generator: two processes started with the same seed must
/// still send different keys, or the server would merge their requests.
pub(crate) fn new_key() -> HeaderValue {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_idempotent_as_rfc_9110_says() {
        for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(is_idempotent_method(&m.parse().unwrap()), "{m}");
        }
        for m in ["POST", "PATCH", "CONNECT", "PROPFIND"] {
            assert!(!is_idempotent_method(&m.parse().unwrap()), "{m}");
        }
    }

    #[test]
    fn a_post_with_an_idempotency_key_is_idempotent() {
        let mut h = HeaderMap::new();
        assert!(!is_idempotent(&Method::POST, &h));
        h.insert(IDEMPOTENCY_KEY, new_key());
        assert!(is_idempotent(&Method::POST, &h));
    }

    #[test]
    fn keys_are_distinct_version_4_uuids() {
        let a = new_key();
        let b = new_key();
        assert_ne!(a, b);
        let s = a.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
    }
}
