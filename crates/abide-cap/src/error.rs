//! The failures this layer adds. The service's error is [`BoxError`](crate::BoxError); callers
//! `downcast_ref` to these (the inner service's own errors pass through unchanged).
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
use std::error::Error;
use std::fmt;
use std::time::Duration;

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

impl Error for QueueFull {}

/// The request would have had to wait longer than its deadline or the configured
/// maximum; it failed at once instead. Nothing was reserved for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTooLong {
    would_wait: Duration,
    max_wait: Duration,
}

impl WaitTooLong {
    /// An error for a wait of `would_wait` against a limit of `max_wait`.
    pub fn new(would_wait: Duration, max_wait: Duration) -> Self {
        WaitTooLong {
            would_wait,
            max_wait,
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
}

impl fmt::Display for WaitTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request would wait {:?} for admission, more than the {:?} allowed",
            self.would_wait, self.max_wait
        )
    }
}

impl Error for WaitTooLong {}

/// The bucket's quota is exhausted (the server said so); the request was not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketExhausted {
    bucket: BucketKey,
    retry_in: Option<Duration>,
}

impl BucketExhausted {
    pub(crate) fn new(bucket: BucketKey, retry_in: Option<Duration>) -> Self {
        BucketExhausted { bucket, retry_in }
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

impl Error for BucketExhausted {}

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

impl Error for CostTooHigh {}
