//! Counters a user can export.

use crate::record::Stop;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::striped::Striped;

const REQUESTS: usize = 0;
const ATTEMPTS: usize = 1;
const SUCCEEDED: usize = 2;

/// A handle on the counters of one [`BackoffRetryLayer`](crate::BackoffRetryLayer) and
/// every service made from it. Cheap to clone; clones see the same counters.
///
/// ```
/// use abide_retry::BackoffRetryLayer;
///
/// let layer = BackoffRetryLayer::new();
/// let stats = layer.stats();
/// // ... build services with `layer`, send requests ...
/// let now = stats.snapshot();
/// assert_eq!(now.requests, 0);
/// ```
#[derive(Clone, Default)]
pub struct RetryStats {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    /// `requests`, `attempts` and `succeeded`: written by every request, so striped (a
    /// shared counter would be one cache line bouncing between every caller's core).
    hot: Striped<3>,
    retries: AtomicU64,
    wait_micros: AtomicU64,
    not_retryable: AtomicU64,
    not_idempotent: AtomicU64,
    max_attempts: AtomicU64,
    body_not_replayable: AtomicU64,
    budget_exhausted: AtomicU64,
    deadline_exceeded: AtomicU64,
    wait_too_long: AtomicU64,
    errors: AtomicU64,
}

/// The counters at one instant. All counts are since the layer was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStatsSnapshot {
    /// Logical requests started.
    pub requests: u64,
    /// Attempts sent to the inner service (first attempts included).
    pub attempts: u64,
    /// Retries decided (attempts after the first).
    pub retries: u64,
    /// Total time chosen to sleep between attempts.
    pub total_wait: Duration,
    /// Requests that ended on a success.
    pub succeeded: u64,
    /// Requests that ended on a response or error the verdict calls not retryable.
    pub not_retryable: u64,
    /// Requests not retried because the failure was ambiguous and they are not idempotent.
    pub not_idempotent: u64,
    /// Requests that used up their attempts.
    pub max_attempts: u64,
    /// Requests whose body was too large to replay.
    pub body_not_replayable: u64,
    /// Retries refused by the retry budget.
    pub budget_exhausted: u64,
    /// Requests that hit their deadline (or whose next wait would have passed it).
    pub deadline_exceeded: u64,
    /// Requests refused because the server asked for a wait above the maximum.
    pub wait_too_long: u64,
    /// Requests that ended on an inner-service error returned as is.
    pub errors: u64,
}

impl RetryStats {
    /// New counters, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> RetryStatsSnapshot {
        let c = &self.inner;
        RetryStatsSnapshot {
            requests: c.hot.sum(REQUESTS),
            attempts: c.hot.sum(ATTEMPTS),
            retries: c.retries.load(Relaxed),
            total_wait: Duration::from_micros(c.wait_micros.load(Relaxed)),
            succeeded: c.hot.sum(SUCCEEDED),
            not_retryable: c.not_retryable.load(Relaxed),
            not_idempotent: c.not_idempotent.load(Relaxed),
            max_attempts: c.max_attempts.load(Relaxed),
            body_not_replayable: c.body_not_replayable.load(Relaxed),
            budget_exhausted: c.budget_exhausted.load(Relaxed),
            deadline_exceeded: c.deadline_exceeded.load(Relaxed),
            wait_too_long: c.wait_too_long.load(Relaxed),
            errors: c.errors.load(Relaxed),
        }
    }

    pub(crate) fn request(&self) {
        self.inner.hot.add(REQUESTS, 1);
    }

    pub(crate) fn attempt(&self) {
        self.inner.hot.add(ATTEMPTS, 1);
    }

    pub(crate) fn retry(&self, wait: Duration) {
        self.inner.retries.fetch_add(1, Relaxed);
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.inner.wait_micros.fetch_add(micros, Relaxed);
    }

    pub(crate) fn stopped(&self, stop: Stop) {
        let c = &self.inner;
        let counter = match stop {
            Stop::Succeeded => return c.hot.add(SUCCEEDED, 1),
            Stop::NotRetryable => &c.not_retryable,
            Stop::NotIdempotent => &c.not_idempotent,
            Stop::MaxAttempts => &c.max_attempts,
            Stop::BodyNotReplayable => &c.body_not_replayable,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn budget_exhausted(&self) {
        self.inner.budget_exhausted.fetch_add(1, Relaxed);
    }

    pub(crate) fn deadline_exceeded(&self) {
        self.inner.deadline_exceeded.fetch_add(1, Relaxed);
    }

    pub(crate) fn wait_too_long(&self) {
        self.inner.wait_too_long.fetch_add(1, Relaxed);
    }

    pub(crate) fn error(&self) {
        self.inner.errors.fetch_add(1, Relaxed);
    }
}

impl fmt::Debug for RetryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryStats").field(&self.snapshot()).finish()
    }
}
