//! The verdict on one response or error.

use abide_headers::Name;
use std::fmt;
use std::time::Duration;

/// What a response (or an inner service error) means for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// The request succeeded.
    Success,
    /// A short-window rate limit: waiting helps.
    RateLimited,
    /// Quota that waiting seconds or minutes will not bring back: credits, billing, plan or
    /// per-day caps, a request that can never fit, an explicit do-not-retry.
    QuotaExhausted,
    /// The provider is short of capacity (Anthropic 529, "model is overloaded").
    Overloaded,
    /// Another transient server-side fault (5xx, connection failures, timeouts).
    ServerError,
    /// The request itself must change (4xx other than auth, 408 and 429).
    ClientError,
    /// The credentials must change (401, 403 without rate-limit signs).
    AuthError,
}

impl Class {
    /// The class name as `abide inspect --json` prints it (`rate_limited`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::RateLimited => "rate_limited",
            Class::QuotaExhausted => "quota_exhausted",
            Class::Overloaded => "overloaded",
            Class::ServerError => "server_error",
            Class::ClientError => "client_error",
            Class::AuthError => "auth_error",
        }
    }

    /// True for rejections a rate-limit-aware client should slow down for
    /// ([`RateLimited`](Class::RateLimited) and [`Overloaded`](Class::Overloaded)).
    pub fn is_throttle(self) -> bool {
        matches!(self, Class::RateLimited | Class::Overloaded)
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of limit was hit: what it counts, or the window or account it belongs to.
/// Which limit (the bucket the server names) is [`Classification::bucket`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaScope {
    /// Requests per window.
    Requests,
    /// Tokens per window (input and output together, or not said which).
    Tokens,
    /// Input (prompt) tokens per window.
    InputTokens,
    /// Output (completion) tokens per window.
    OutputTokens,
    /// Concurrent requests, or contention on one object.
    Concurrency,
    /// A per-day (or longer calendar) quota.
    Daily,
    /// Credits, billing or spend limits.
    Billing,
    /// Not stated.
    #[default]
    Unspecified,
}

impl QuotaScope {
    /// The scope as `abide inspect --json` prints it: `requests`, `tokens`,
    /// `input_tokens`, `output_tokens`, `concurrency`, `daily`, `billing`, `unspecified`.
    pub fn as_str(&self) -> &'static str {
        match self {
            QuotaScope::Requests => "requests",
            QuotaScope::Tokens => "tokens",
            QuotaScope::InputTokens => "input_tokens",
            QuotaScope::OutputTokens => "output_tokens",
            QuotaScope::Concurrency => "concurrency",
            QuotaScope::Daily => "daily",
            QuotaScope::Billing => "billing",
            QuotaScope::Unspecified => "unspecified",
        }
    }

    /// True for the token kinds.
    pub fn is_tokens(&self) -> bool {
        matches!(
            self,
            QuotaScope::Tokens | QuotaScope::InputTokens | QuotaScope::OutputTokens
        )
    }
}

impl fmt::Display for QuotaScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the server can have acted on the request before it failed. This decides
/// whether a non-idempotent request may be retried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Processing {
    /// The server refused it without processing it (429, 503, 529, `RESOURCE_EXHAUSTED`,
    /// a refused connection): safe to retry whatever the method.
    NotProcessed,
    /// Unknown (timeout, reset after sending, 500/502/504): retry only idempotent requests.
    #[default]
    Ambiguous,
    /// The server processed it (success, or a definite answer about it).
    Processed,
}

/// Which rule decided a [`Classification`], for people reading traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reason(pub &'static str);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The classifier's verdict on one response or error. Put in the response's extensions by
/// [`QuotaClassifier`](crate::QuotaClassifier); read by the retry and cap layers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Classification {
    /// What happened.
    pub class: Class,
    /// Whether waiting and retrying can help.
    pub retryable: bool,
    /// The wait the response states or implies (headers, body or prose).
    pub retry_after: Option<Duration>,
    /// What kind of limit was hit.
    pub scope: QuotaScope,
    /// Which limit, when the server names it (GitHub's `x-ratelimit-resource`, a Discord
    /// bucket, an IETF policy name).
    pub bucket: Option<Name>,
    /// Whether the server may have processed the request.
    pub processing: Processing,
    /// The rule that fired.
    pub reason: Reason,
}

impl Classification {
    /// A verdict with the defaults for its class: retryable for rate limits, overload,
    /// server errors; not for the rest.
    pub fn new(class: Class, reason: &'static str) -> Self {
        let retryable = matches!(
            class,
            Class::RateLimited | Class::Overloaded | Class::ServerError
        );
        let processing = match class {
            Class::RateLimited | Class::Overloaded | Class::QuotaExhausted => {
                Processing::NotProcessed
            }
            Class::ServerError => Processing::Ambiguous,
            Class::Success | Class::ClientError | Class::AuthError => Processing::Processed,
        };
        Classification {
            class,
            retryable,
            retry_after: None,
            scope: QuotaScope::Unspecified,
            bucket: None,
            processing,
            reason: Reason(reason),
        }
    }

    /// A success.
    pub fn success() -> Self {
        Self::new(Class::Success, "success")
    }

    /// Sets the wait.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Sets the scope.
    pub fn with_scope(mut self, scope: QuotaScope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the bucket name.
    pub fn with_bucket(mut self, bucket: Option<Name>) -> Self {
        self.bucket = bucket;
        self
    }

    /// Sets whether retrying can help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Sets whether the server may have processed the request.
    pub fn with_processing(mut self, processing: Processing) -> Self {
        self.processing = processing;
        self
    }

    /// True for [`Class::Success`].
    pub fn is_success(&self) -> bool {
        self.class == Class::Success
    }
}
