//! Request-side inputs: which bucket a request belongs to, what it costs, its deadline.

use std::fmt;
use std::sync::Arc;
use tokio::time::Instant;

/// Longest bucket key kept, in bytes; longer keys are cut at a char boundary so a hostile
/// key function input cannot grow memory without bound.
pub const MAX_KEY_LEN: usize = 256;

/// What a server limits together: by default the request's authority (`api.openai.com`),
/// or whatever a key function returns (a model, a route, a data type).
///
/// Cheap to clone (reference counted).
///
/// ```
/// use abide_cap::BucketKey;
/// let key = BucketKey::new("api.openai.com/gpt-4o");
/// assert_eq!(key.as_str(), "api.openai.com/gpt-4o");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey(Arc<str>);

impl BucketKey {
    /// Makes a key, cutting it to [`MAX_KEY_LEN`] bytes at a char boundary.
    pub fn new(key: &str) -> Self {
        let mut end = key.len().min(MAX_KEY_LEN);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        BucketKey(Arc::from(&key[..end]))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for BucketKey {
    fn from(key: &str) -> Self {
        BucketKey::new(key)
    }
}

impl From<String> for BucketKey {
    fn from(key: String) -> Self {
        BucketKey::new(&key)
    }
}

/// The default bucket of a request: its URI authority, else its `Host` header, else
/// `"default"`.
pub fn authority_key(parts: &http::request::Parts) -> BucketKey {
    if let Some(authority) = parts.uri.authority() {
        return BucketKey::new(authority.as_str());
    }
    match parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(host) if !host.is_empty() => BucketKey::new(host),
        _ => BucketKey::new("default"),
    }
}

/// A request extension declaring what the request costs in the server's cost units
/// (usually tokens: prompt tokens plus `max_tokens`). Requests without it cost what the
/// layer's cost function says, else 1.
///
/// The cost paces token-type limits (`tokens`, `input_tokens`, `output_tokens`) and the
/// declared cost quota; request-type limits always count 1 per request.
///
/// ```
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(abide_cap::Cost(1_200));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cost(pub u32);

/// A request extension: the latest instant the request may start. A request that would
/// have to wait past it fails at once with [`WaitTooLong`](crate::error::WaitTooLong)
/// instead of waiting. The layer's [`with_max_wait`](crate::ConcurrencyCapLayer::with_max_wait)
/// applies too; the earlier of the two wins.
///
/// ```
/// use std::time::Duration;
/// let mut request = http::Request::new(());
/// let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
/// request.extensions_mut().insert(abide_cap::Deadline(deadline));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Deadline(pub Instant);
