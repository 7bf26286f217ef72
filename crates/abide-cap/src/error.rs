//! The failures this layer adds. The service's error is [`BoxError`](crate::BoxError); callers
//! `downcast_ref` to these (the inner service's own errors pass through unchanged).
//!
//! Each returns an [`abide_classify::Verdict`] from [`Error::source`], so a layer above
//! (the retry layer) learns what the refusal means through
//! [`abide_classify::classify_error`] without knowing these types:
//!
//! | error | class | retryable | why |
//! |---|---|---|---|
//! | [`BucketExhausted`] | `QuotaExhausted` (retry after = next probe) | no | the server said the quota is gone |
//! | [`WaitTooLong`] | `ClientError` | no | the caller's own deadline or max wait cannot be met; trying again only waits longer |
//! | [`WaitTooLong`] for a server-stated wait | `RateLimited` (retry after = the stated wait) | yes | the server's `Retry-After` is longer than the max server wait; the layer above applies its own maximum to the same wait |
//! | [`CostTooHigh`] | `ClientError` | no | the request itself is larger than the declared quota can ever admit |
//! | [`QueueFull`] | `Overloaded` | yes | local congestion that drains by itself |
//!
//! None of them was sent: every verdict says `Processing::NotProcessed`.
//!
//! ```
//! use abide_cap::error::{BucketExhausted, WaitTooLong};
//! # let err: abide_cap::BoxError = Box::new(WaitTooLong::new(
//! #     std::time::Duration::from_secs(90), std::time::Duration::from_secs(30)));
//! if let Some(e) = err.downcast_ref::<WaitTooLong>() {
//!     println!("would have waited {:?}", e.would_wait());
//! } else if err.is::<BucketExhausted>() {
//!     println!("quota exhausted");
//! }
//! ```

use crate::key::BucketKey;
use abide_classify::{Class, Classification, Processing, Verdict};
use std::error::Error;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

fn verdict(class: Class, reason: &'static str, retryable: bool) -> Verdict {
    Verdict::new(
        Classification::new(class, reason)
            .with_retryable(retryable)
            .with_processing(Processing::NotProcessed),
    )
}

static QUEUE_FULL: LazyLock<Verdict> =
    LazyLock::new(|| verdict(Class::Overloaded, "abide-cap: wait queue full", true));
static WAIT_TOO_LONG: LazyLock<Verdict> = LazyLock::new(|| {
    verdict(
        Class::ClientError,
        "abide-cap: admission wait exceeds the deadline",
        false,
    )
});
static COST_TOO_HIGH: LazyLock<Verdict> = LazyLock::new(|| {
    verdict(
        Class::ClientError,
        "abide-cap: cost exceeds the declared quota",
        false,
    )
});

/// The bucket's wait queue is full: too many requests already wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFull {
    bucket: BucketKey,
    capacity: usize,
}

impl QueueFull {
    pub(crate) fn new(bucket: BucketKey, capacity: usize) -> Self {
        QueueFull { bucket, capacity }
    }

    /// The bucket whose queue is full.
    pub fn bucket(&self) -> &BucketKey {
        &self.bucket
    }

    /// The queue's bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl fmt::Display for QueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wait queue of bucket {:?} is full ({} waiting)",
            self.bucket.as_str(),
            self.capacity
        )
    }
}

impl Error for QueueFull {
    /// An `Overloaded`, retryable [`Verdict`]: the queue drains by itself.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*QUEUE_FULL)
    }
}

/// The request would have had to wait longer than it may; it failed at once instead.
/// Nothing was reserved for it.
///
/// Two limits end a wait this way: the caller's own (the layer's max wait or the
/// request's deadline), and the longest *server-stated* wait worth taking
/// ([`with_max_server_wait`](crate::ConcurrencyCapLayer::with_max_server_wait)), when the
/// bucket is paused by a `Retry-After` longer than that. The second carries the wait the
/// server stated ([`server_wait`](Self::server_wait)) and reads, to a layer above, as the
/// server's rate limit with that wait: the retry layer, given the same maximum, ends the
/// request with its own `WaitTooLong` carrying the same wait, as it does for the caller
/// that met the `Retry-After` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitTooLong {
    would_wait: Duration,
    max_wait: Duration,
    server_wait: Option<Duration>,
    verdict: Option<Verdict>,
}

impl WaitTooLong {
    /// An error for a wait of `would_wait` against a limit of `max_wait`.
    pub fn new(would_wait: Duration, max_wait: Duration) -> Self {
        WaitTooLong {
            would_wait,
            max_wait,
            server_wait: None,
            verdict: None,
        }
    }

    /// An error for a server-stated wait of `wait` (what is left of it) against the
    /// longest server wait worth taking, `max`.
    pub fn server(wait: Duration, max: Duration) -> Self {
        let verdict = Verdict::new(
            Classification::new(
                Class::RateLimited,
                "abide-cap: bucket paused longer than the max server wait",
            )
            .with_processing(Processing::NotProcessed)
            .with_retry_after(Some(wait)),
        );
        WaitTooLong {
            would_wait: wait,
            max_wait: max,
            server_wait: Some(wait),
            verdict: Some(verdict),
        }
    }

    /// How long the request would have waited in total (including what it already
    /// waited). For a request stuck behind busy in-flight permits, how long it waited.
    pub fn would_wait(&self) -> Duration {
        self.would_wait
    }

    /// The limit it exceeded.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The wait the server stated (what was left of it), when that is what was too long.
    pub fn server_wait(&self) -> Option<Duration> {
        self.server_wait
    }
}

impl fmt::Display for WaitTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.server_wait {
            Some(wait) => write!(
                f,
                "the server asked to wait {wait:?}, more than the {:?} worth waiting",
                self.max_wait
            ),
            None => write!(
                f,
                "request would wait {:?} for admission, more than the {:?} allowed",
                self.would_wait, self.max_wait
            ),
        }
    }
}

impl Error for WaitTooLong {
    /// For the caller's own limit, a `ClientError`, not retryable [`Verdict`]: another
    /// attempt would only wait longer. For a server-stated wait, a `RateLimited` one with
    /// that wait, so the layer above applies its own maximum to it.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.verdict {
            Some(v) => Some(v),
            None => Some(&*WAIT_TOO_LONG),
        }
    }
}

/// The bucket's quota is exhausted (the server said so); the request was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketExhausted {
    bucket: BucketKey,
    retry_in: Option<Duration>,
    verdict: Verdict,
}

impl BucketExhausted {
    pub(crate) fn new(bucket: BucketKey, retry_in: Option<Duration>) -> Self {
        let verdict = Verdict::new(
            Classification::new(Class::QuotaExhausted, "abide-cap: bucket exhausted")
                .with_retryable(false)
                .with_processing(Processing::NotProcessed)
                .with_retry_after(retry_in),
        );
        BucketExhausted {
            bucket,
            retry_in,
            verdict,
        }
    }

    /// The exhausted bucket.
    pub fn bucket(&self) -> &BucketKey {
        &self.bucket
    }

    /// When a probe request may go, if known.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }
}

impl fmt::Display for BucketExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quota of bucket {:?} is exhausted", self.bucket.as_str())?;
        if let Some(d) = self.retry_in {
            write!(f, "; next probe in {d:?}")?;
        }
        Ok(())
    }
}

impl Error for BucketExhausted {
    /// A `QuotaExhausted`, not retryable [`Verdict`] whose retry-after is the time until
    /// the next probe.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.verdict)
    }
}

/// The request costs more than the declared cost quota's burst: it can never be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostTooHigh {
    cost: u32,
    max: u32,
}

impl CostTooHigh {
    pub(crate) fn new(cost: u32, max: u32) -> Self {
        CostTooHigh { cost, max }
    }

    /// The request's cost.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// The most the quota admits at once.
    pub fn max(&self) -> u32 {
        self.max
    }
}

impl fmt::Display for CostTooHigh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request cost {} exceeds the declared quota's burst of {}",
            self.cost, self.max
        )
    }
}

impl Error for CostTooHigh {
    /// A `ClientError`, not retryable [`Verdict`]: the request can never fit the quota.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*COST_TOO_HIGH)
    }
}
