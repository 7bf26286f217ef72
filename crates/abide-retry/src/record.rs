//! The record of attempts each final response carries.

use std::fmt;
use std::time::Duration;

/// How many attempts one logical request took and how long it waited between them.
///
/// [`BackoffRetry`](crate::BackoffRetry) puts one into the extensions of every response it
/// returns.
///
/// ```
/// use abide_retry::{Attempts, Stop};
/// # fn check(response: http::Response<()>) {
/// if let Some(attempts) = response.extensions().get::<Attempts>() {
///     println!("{} attempts, waited {:?}", attempts.count, attempts.total_wait);
///     if attempts.stop == Stop::MaxAttempts {
///         println!("still throttled after every attempt");
///     }
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempts {
    /// Attempts made, the first included (at least 1).
    pub count: u32,
    /// Time spent sleeping between attempts.
    pub total_wait: Duration,
    /// Why this response ended the retries.
    pub stop: Stop,
}

impl Attempts {
    pub(crate) fn new(count: u32, total_wait: Duration, stop: Stop) -> Self {
        Attempts {
            count,
            total_wait,
            stop,
        }
    }
}

/// Why a response was returned instead of retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stop {
    /// The response is a success.
    Succeeded,
    /// The verdict says retrying cannot help (quota exhaustion, client or auth errors).
    NotRetryable,
    /// The failure was ambiguous (the server may have processed the request) and the
    /// request is neither idempotent nor carries an `Idempotency-Key`.
    NotIdempotent,
    /// The configured number of attempts was used up.
    MaxAttempts,
    /// The request body was larger than the replay limit (or failed), so it cannot be sent
    /// again.
    BodyNotReplayable,
}

impl Stop {
    /// A short name for logs and metrics (`succeeded`, `not_retryable`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Succeeded => "succeeded",
            Stop::NotRetryable => "not_retryable",
            Stop::NotIdempotent => "not_idempotent",
            Stop::MaxAttempts => "max_attempts",
            Stop::BodyNotReplayable => "body_not_replayable",
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
