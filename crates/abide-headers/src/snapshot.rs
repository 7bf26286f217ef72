//! The normalized result of reading rate-limit headers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most limits one snapshot keeps. Headers describing more are truncated
/// (and [`RateLimitSnapshot::is_truncated`] says so), which bounds memory on any input.
pub const MAX_LIMITS: usize = 8;

/// Longest name or partition key kept, in bytes; longer ones are cut at a char boundary.
pub const MAX_NAME_LEN: usize = 128;

const INLINE: usize = 30;

/// A short byte string stored inline when it fits, so the common case does not allocate.
#[derive(Clone)]
enum Short {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Arc<[u8]>),
}

impl Short {
    fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            Short::Inline {
                // Cannot truncate: bytes.len() <= INLINE < 256.
                len: bytes.len() as u8,
                buf,
            }
        } else {
            Short::Heap(Arc::from(bytes))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Short::Inline { len, buf } => &buf[..usize::from(*len)],
            Short::Heap(b) => b,
        }
    }
}

impl PartialEq for Short {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for Short {}

impl std::hash::Hash for Short {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

/// The name of a bucket or policy a server gives a limit (GitHub `core`, a Discord bucket
/// id, an IETF policy name). Names up to 30 bytes are stored without allocating; names are
/// capped at [`MAX_NAME_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Short);

impl Name {
    /// Makes a name, cutting it to [`MAX_NAME_LEN`] bytes at a char boundary.
    ///
    /// ```
    /// let n = abide_headers::Name::new("core");
    /// assert_eq!(n.as_str(), "core");
    /// ```
    pub fn new(name: &str) -> Self {
        let mut end = name.len().min(MAX_NAME_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Name(Short::new(&name.as_bytes()[..end]))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        // Built only from `&str` cut at a char boundary.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name::new(s)
    }
}

/// The IETF partition key (`pk`): which partition of the server's quota a limit applies to
/// (for instance a hash of the API key). Opaque bytes, capped at [`MAX_NAME_LEN`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey(Short);

impl PartitionKey {
    /// Makes a partition key, cutting it to [`MAX_NAME_LEN`] bytes.
    pub fn new(bytes: &[u8]) -> Self {
        PartitionKey(Short::new(&bytes[..bytes.len().min(MAX_NAME_LEN)]))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PartitionKey({:?})",
            String::from_utf8_lossy(self.as_bytes())
        )
    }
}

/// What a limit counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// Requests (OpenAI `-requests`, Anthropic `requests`, GitLab, Linear request limits).
    Requests,
    /// Tokens of any kind (OpenAI `-tokens`, Anthropic `tokens`).
    Tokens,
    /// Input (prompt) tokens (Anthropic `input-tokens`).
    InputTokens,
    /// Output (completion) tokens (Anthropic `output-tokens`).
    OutputTokens,
    /// A bucket or policy the server names (GitHub `core`, an IETF policy name).
    Named(Name),
    /// The headers do not say what is counted.
    #[default]
    Unspecified,
}

impl Scope {
    /// Shorthand for `Scope::Named(Name::new(name))`.
    pub fn named(name: &str) -> Self {
        Scope::Named(Name::new(name))
    }

    /// The scope as `abide inspect --json` prints it: `requests`, `tokens`,
    /// `input_tokens`, `output_tokens`, the name, or `unspecified`.
    ///
    /// ```
    /// use abide_headers::Scope;
    /// assert_eq!(Scope::InputTokens.as_str(), "input_tokens");
    /// assert_eq!(Scope::named("core").as_str(), "core");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Scope::Requests => "requests",
            Scope::Tokens => "tokens",
            Scope::InputTokens => "input_tokens",
            Scope::OutputTokens => "output_tokens",
            Scope::Named(n) => n.as_str(),
            Scope::Unspecified => "unspecified",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The unit a quota is counted in (IETF `qu`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaUnit {
    /// Requests (the IETF default).
    Requests,
    /// Bytes of content.
    ContentBytes,
    /// Concurrent requests.
    ConcurrentRequests,
    /// Tokens (LLM APIs).
    Tokens,
    /// Another unit the server names.
    Other(Name),
}

impl QuotaUnit {
    /// The unit's wire name (`requests`, `content-bytes`, `concurrent-requests`, `tokens`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            QuotaUnit::Requests => "requests",
            QuotaUnit::ContentBytes => "content-bytes",
            QuotaUnit::ConcurrentRequests => "concurrent-requests",
            QuotaUnit::Tokens => "tokens",
            QuotaUnit::Other(n) => n.as_str(),
        }
    }
}

/// The header format a limit was read from (or is to be written in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// IETF draft-ietf-httpapi-ratelimit-headers-08 and later: `RateLimit-Policy` and
    /// `RateLimit` structured-field lists joined by policy name.
    Ietf,
    /// IETF draft 07: one `RateLimit: limit=, remaining=, reset=` dictionary (plus
    /// `RateLimit-Policy`). Honeycomb sends this.
    IetfDraft07,
    /// IETF drafts 04–06: `RateLimit-Limit/-Remaining/-Reset` plus `RateLimit-Policy`.
    IetfDraft06,
    /// IETF drafts 00–03: `RateLimit-Limit/-Remaining/-Reset`.
    IetfDraft03,
    /// `X-RateLimit-Limit/-Remaining/-Reset` and relatives (`X-Rate-Limit-*` as X, Okta
    /// and Zendesk send it; Envoy's draft-03-style `x-ratelimit-*`).
    XRateLimit,
    /// OpenAI, Azure OpenAI and Groq `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
    OpenAi,
    /// Anthropic `anthropic-ratelimit-*`.
    Anthropic,
    /// GitHub `x-ratelimit-*` with `x-ratelimit-resource` and epoch resets.
    GitHub,
    /// `Retry-After`, `retry-after-ms`, `x-ms-retry-after-ms` only.
    RetryAfter,
    /// A vendor-specific format not listed above.
    #[default]
    Other,
    /// GitLab `RateLimit-Name`/`-Observed`/`-Remaining`/`-Reset` (epoch) /`-ResetTime`.
    GitLab,
    /// Discord `X-RateLimit-Bucket`/`-Global`/`-Scope` with float epoch resets.
    Discord,
    /// Shopify `X-Shopify-Shop-Api-Call-Limit: used/limit`.
    Shopify,
    /// Reddit `X-Ratelimit-Used`/`-Remaining` (a float)/`-Reset`.
    Reddit,
    /// Kong per-window headers: `X-RateLimit-Limit-Minute`, `X-RateLimit-Remaining-Hour`, ...
    Kong,
    /// HubSpot `X-HubSpot-RateLimit-*` (daily and per-interval).
    HubSpot,
    /// Atlassian (Jira, Confluence) `X-RateLimit-*` with ISO 8601 `X-RateLimit-Reset`.
    Atlassian,
    /// Salesforce `Sforce-Limit-Info: api-usage=used/limit`.
    Salesforce,
    /// Sentry `X-Sentry-Rate-Limits`.
    Sentry,
    /// Linear `X-RateLimit-Requests-*` and `X-RateLimit-Complexity-*`.
    Linear,
    /// Azure Resource Manager `x-ms-ratelimit-remaining-*` counters.
    AzureArm,
    /// Zendesk per-endpoint `Zendesk-RateLimit-*: total=; remaining=; resets=` headers.
    Zendesk,
    /// X (Twitter) 24-hour limits `x-app-limit-24hour-*`, `x-user-limit-24hour-*` (its
    /// `x-rate-limit-*` headers read as [`Dialect::XRateLimit`]).
    X,
    /// Stripe: `Stripe-Rate-Limited-Reason` plus `Retry-After`.
    Stripe,
}

impl Dialect {
    /// Whether this dialect's `reset` means "until the bucket is full again" of a
    /// continuously refilling token bucket (OpenAI's and Anthropic's documented model),
    /// rather than the end of a window.
    pub fn refills_continuously(self) -> bool {
        matches!(self, Dialect::OpenAi | Dialect::Anthropic)
    }
}

/// One limit a server described.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limit {
    /// What it counts.
    pub scope: Scope,
    /// The quota per window, when stated.
    pub limit: Option<u64>,
    /// What is left of it, when stated.
    pub remaining: Option<u64>,
    /// Time from the reference instant until the window resets (never negative).
    pub reset: Option<Duration>,
    /// The window's length, when stated.
    pub window: Option<Duration>,
    /// The unit counted, when stated.
    pub unit: Option<QuotaUnit>,
    /// The IETF partition key, when stated.
    pub partition_key: Option<PartitionKey>,
    /// What this request cost in the limit's units, when stated (IETF draft 12 `c`).
    pub cost: Option<u64>,
    /// The format it was read from.
    pub dialect: Dialect,
}

impl Limit {
    /// A limit of the given scope with nothing else known.
    pub fn new(scope: Scope, dialect: Dialect) -> Self {
        Limit {
            scope,
            dialect,
            ..Limit::default()
        }
    }

    /// How long until one more unit can be spent, when the limit is exhausted: the
    /// reset, except for a limit that refills continuously
    /// ([`Dialect::refills_continuously`]), whose reset is when it is *full* again; one
    /// unit of it is back after `reset / (limit - remaining)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use abide_headers::{Dialect, Limit, Scope};
    ///
    /// let mut anthropic = Limit::new(Scope::Requests, Dialect::Anthropic);
    /// anthropic.limit = Some(600);
    /// anthropic.remaining = Some(0);
    /// anthropic.reset = Some(Duration::from_secs(60)); // full again in a minute
    /// assert_eq!(anthropic.next_unit_in(), Some(Duration::from_millis(100)));
    ///
    /// let mut window = Limit::new(Scope::Requests, Dialect::XRateLimit);
    /// window.limit = Some(600);
    /// window.remaining = Some(0);
    /// window.reset = Some(Duration::from_secs(60)); // the window ends in a minute
    /// assert_eq!(window.next_unit_in(), Some(Duration::from_secs(60)));
    /// ```
    pub fn next_unit_in(&self) -> Option<Duration> {
        let reset = self.reset?;
        if !self.dialect.refills_continuously() {
            return Some(reset);
        }
        let missing = match (self.limit, self.remaining) {
            (Some(limit), Some(remaining)) => limit.saturating_sub(remaining),
            _ => 0,
        };
        Some(if missing > 1 {
            reset.div_f64(missing as f64)
        } else {
            reset
        })
    }

    /// How long until one more request can be spent: [`next_unit_in`](Self::next_unit_in)
    /// for a request limit, the reset for any other.
    fn request_wait(&self) -> Option<Duration> {
        if self.scope == Scope::Requests {
            self.next_unit_in()
        } else {
            self.reset
        }
    }

    /// True when the server says nothing is left (`remaining == 0`).
    pub fn is_exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The sustained rate this limit allows until it resets, in units per second:
    /// `remaining / reset`. `None` when either is unknown; infinite when the reset is now.
    pub fn rate_until_reset(&self) -> Option<f64> {
        let remaining = self.remaining? as f64;
        let reset = self.reset?.as_secs_f64();
        Some(if reset > 0.0 {
            remaining / reset
        } else {
            f64::INFINITY
        })
    }
}

/// Everything a response's headers say about the client's limits, normalized.
///
/// Holds up to [`MAX_LIMITS`] limits inline (no allocation) and the wait the server asked
/// for explicitly (`Retry-After` and its relatives).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RateLimitSnapshot {
    limits: [Limit; MAX_LIMITS],
    len: u8,
    truncated: bool,
    retry_after: Option<Duration>,
}

impl fmt::Debug for RateLimitSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitSnapshot")
            .field("limits", &self.limits())
            .field("retry_after", &self.retry_after)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl RateLimitSnapshot {
    /// An empty snapshot: no limits, no wait.
    pub fn new() -> Self {
        Self::default()
    }

    /// The limits, in the order the headers gave them.
    pub fn limits(&self) -> &[Limit] {
        &self.limits[..usize::from(self.len)]
    }

    /// Mutable access to the limits.
    pub fn limits_mut(&mut self) -> &mut [Limit] {
        &mut self.limits[..usize::from(self.len)]
    }

    /// True when neither a limit nor a wait was found.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.retry_after.is_none()
    }

    /// True when the headers described more than [`MAX_LIMITS`] limits and some were dropped.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Empties the snapshot. Slots past `len` always hold the default limit (`len`
    /// never shrinks otherwise), so a snapshot that is already empty is left untouched.
    pub(crate) fn clear(&mut self) {
        if self.len != 0 || self.truncated || self.retry_after.is_some() {
            *self = Self::default();
        }
    }

    /// Adds a limit. Returns `false` (and marks the snapshot truncated) when it is full.
    pub fn push(&mut self, limit: Limit) -> bool {
        let len = usize::from(self.len);
        if len == MAX_LIMITS {
            self.truncated = true;
            return false;
        }
        self.limits[len] = limit;
        self.len += 1;
        true
    }

    /// Marks the snapshot truncated (a reader dropped limits past its own bound).
    pub(crate) fn mark_truncated(&mut self) {
        self.truncated = true;
    }

    /// The wait the server asked for explicitly (`retry-after-ms`, `Retry-After`, ...).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Sets the explicit wait.
    pub fn set_retry_after(&mut self, wait: Option<Duration>) {
        self.retry_after = wait;
    }

    /// Builder form of [`set_retry_after`](Self::set_retry_after).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Builder form of [`push`](Self::push).
    pub fn with_limit(mut self, limit: Limit) -> Self {
        self.push(limit);
        self
    }

    /// The wait before the next request can succeed: the explicit retry wait when the
    /// server sent one; else the latest wait among exhausted limits: their reset, but for
    /// a continuously refilling *request* limit ([`Dialect::refills_continuously`]) the
    /// time one request takes to come back ([`Limit::next_unit_in`]). A token limit keeps
    /// its reset (the bucket full again), the one wait that covers a request of any cost;
    /// a client that knows the cost paces it from [`Limit::next_unit_in`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use abide_headers::{Dialect, Limit, RateLimitSnapshot, Scope};
    ///
    /// let mut tokens = Limit::new(Scope::Tokens, Dialect::OpenAi);
    /// tokens.remaining = Some(0);
    /// tokens.reset = Some(Duration::from_secs(6));
    /// let snapshot = RateLimitSnapshot::new().with_limit(tokens);
    /// assert_eq!(snapshot.wait(), Some(Duration::from_secs(6)));
    /// ```
    pub fn wait(&self) -> Option<Duration> {
        self.retry_after
            .or_else(|| self.exhausted().filter_map(Limit::request_wait).max())
    }

    /// Like [`wait`](Self::wait), but every exhausted limit counts one unit
    /// ([`Limit::next_unit_in`]): the shortest wait after which anything can succeed.
    pub fn next_unit_wait(&self) -> Option<Duration> {
        self.retry_after
            .or_else(|| self.exhausted().filter_map(Limit::next_unit_in).max())
    }

    /// The limits with nothing left.
    pub fn exhausted(&self) -> impl Iterator<Item = &Limit> + '_ {
        self.limits().iter().filter(|l| l.is_exhausted())
    }

    /// The limit that allows the lowest sustained rate until its reset
    /// ([`Limit::rate_until_reset`]); among limits without a reset, the one with the fewest
    /// remaining. `None` when no limit states what remains.
    pub fn most_constrained(&self) -> Option<&Limit> {
        let with_rate = self
            .limits()
            .iter()
            .filter_map(|l| l.rate_until_reset().map(|r| (r, l)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, l)| l);
        with_rate.or_else(|| {
            self.limits()
                .iter()
                .filter(|l| l.remaining.is_some())
                .min_by_key(|l| l.remaining)
        })
    }

    /// The first limit with the given scope.
    pub fn get(&self, scope: &Scope) -> Option<&Limit> {
        self.limits().iter().find(|l| &l.scope == scope)
    }

    /// The request limit, if stated.
    pub fn requests(&self) -> Option<&Limit> {
        self.get(&Scope::Requests)
    }

    /// The token limit, if stated.
    pub fn tokens(&self) -> Option<&Limit> {
        self.get(&Scope::Tokens)
    }
}
