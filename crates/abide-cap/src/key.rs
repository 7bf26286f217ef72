//! Request-side inputs: which bucket a request belongs to, what it costs, its deadline.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

/// Longest bucket key kept, in bytes; longer keys are cut at a char boundary so a hostile
/// key function input cannot grow memory without bound.
pub const MAX_KEY_LEN: usize = 256;

/// What a server limits together: by default the request's authority (`api.openai.com`),
/// or whatever a key function returns (a model, a route, a data type).
///
/// Cheap to clone (reference counted; an authority key shares the request URI's bytes).
/// The key's hash is computed once, when it is made, with a per-process random seed: the
/// per-request maps reuse it instead of hashing the string again.
///
/// ```
/// use abide_cap::BucketKey;
/// let key = BucketKey::new("api.openai.com/gpt-4o");
/// assert_eq!(key.as_str(), "api.openai.com/gpt-4o");
/// ```
#[derive(Clone)]
pub struct BucketKey {
    repr: Repr,
    hash: u64,
}

#[derive(Clone)]
enum Repr {
    Str(Arc<str>),
    Authority(http::uri::Authority),
}

fn seed() -> &'static RandomState {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    SEED.get_or_init(RandomState::new)
}

impl BucketKey {
    /// Makes a key, cutting it to [`MAX_KEY_LEN`] bytes at a char boundary.
    pub fn new(key: &str) -> Self {
        let mut end = key.len().min(MAX_KEY_LEN);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        let key = &key[..end];
        BucketKey {
            hash: seed().hash_one(key),
            repr: Repr::Str(Arc::from(key)),
        }
    }

    /// A key naming an authority, sharing its bytes (no allocation).
    pub fn from_authority(authority: &http::uri::Authority) -> Self {
        // `user:password@host` keeps only the host: a key is logged and labelled, and a
        // credential must never leave the request.
        if let Some(at) = authority.as_str().rfind('@') {
            return BucketKey::new(&authority.as_str()[at + 1..]);
        }
        if authority.as_str().len() > MAX_KEY_LEN {
            return BucketKey::new(authority.as_str());
        }
        BucketKey {
            hash: seed().hash_one(authority.as_str()),
            repr: Repr::Authority(authority.clone()),
        }
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        match &self.repr {
            Repr::Str(s) => s,
            Repr::Authority(a) => a.as_str(),
        }
    }
}

impl PartialEq for BucketKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.as_str() == other.as_str()
    }
}

impl Eq for BucketKey {}

impl PartialOrd for BucketKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BucketKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl BucketKey {
    /// The precomputed hash (per-process seed), for maps keyed by bucket.
    pub(crate) fn prehash(&self) -> u64 {
        self.hash
    }

    /// The key holding only its own bytes, for a map that keeps it: an authority key
    /// shares the buffer of the URI it came from, which would keep the whole URI (path
    /// and query included) alive for as long as the bucket lives.
    pub(crate) fn detached(&self) -> BucketKey {
        match &self.repr {
            Repr::Str(_) => self.clone(),
            Repr::Authority(a) => BucketKey {
                hash: self.hash,
                repr: Repr::Str(Arc::from(a.as_str())),
            },
        }
    }
}

impl fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// A hasher for maps keyed by [`BucketKey`]: takes the key's precomputed hash as is.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `BucketKey`; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type KeyMap<V> = HashMap<BucketKey, V, BuildHasherDefault<KeyHasher>>;

/// The default bucket of a request: its URI authority, else its `Host` header, else
/// `"default"`.
pub fn authority_key(parts: &http::request::Parts) -> BucketKey {
    authority_key_of(&parts.uri, &parts.headers)
}

/// [`authority_key`] from the URI and headers alone, for callers holding a whole request.
pub(crate) fn authority_key_of(uri: &http::Uri, headers: &http::HeaderMap) -> BucketKey {
    if let Some(authority) = uri.authority() {
        return BucketKey::from_authority(authority);
    }
    match headers
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn an_authority_key_equals_and_hashes_like_the_same_string() {
        let authority: http::uri::Authority = "api.example.com:443".parse().unwrap();
        let a = BucketKey::from_authority(&authority);
        let b = BucketKey::new("api.example.com:443");
        assert_eq!(a, b);
        let h = BuildHasherDefault::<KeyHasher>::default();
        assert_eq!(h.hash_one(&a), h.hash_one(&b));
        assert_ne!(a, BucketKey::new("api.example.com"));
    }

    #[test]
    fn credentials_in_the_authority_never_reach_the_key() {
        let a: http::uri::Authority = "user:s3cret@api.example.com:8443".parse().unwrap();
        let key = BucketKey::from_authority(&a);
        assert_eq!(key.as_str(), "api.example.com:8443");
        assert!(!key.to_string().contains("s3cret"));
    }

    #[test]
    fn long_keys_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_KEY_LEN);
        let key = BucketKey::new(&long);
        assert!(key.as_str().len() <= MAX_KEY_LEN);
        assert!(long.starts_with(key.as_str()));
    }

    #[test]
    fn requests_without_authority_fall_back_to_host_then_default() {
        let (parts, ()) = http::Request::get("/v1")
            .header("host", "h.example")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(authority_key(&parts).as_str(), "h.example");
        let (parts, ()) = http::Request::get("/v1").body(()).unwrap().into_parts();
        assert_eq!(authority_key(&parts).as_str(), "default");
    }
}
