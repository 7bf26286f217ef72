//! Errors the retry layer decides itself. They reach the caller as
//! [`BoxError`]; use `downcast_ref` to tell them apart.
//!
//! ```
//! use abide_retry::{AttemptTimedOut, BoxError, BudgetExhausted, DeadlineExceeded, WaitTooLong};
//!
//! fn explain(error: &BoxError) -> String {
//!     if let Some(e) = error.downcast_ref::<WaitTooLong>() {
//!         format!("come back in {:?}", e.wait())
//!     } else if error.is::<DeadlineExceeded>() {
//!         "out of time".into()
//!     } else if error.is::<AttemptTimedOut>() {
//!         "the server did not answer in time".into()
//!     } else if error.is::<BudgetExhausted>() {
//!         "too many failures: not retrying now".into()
//!     } else {
//!         format!("inner service failed: {error}")
//!     }
//! }
//! ```

use crate::BoxError;
use abide_classify::{Class, Classification, Processing, Verdict};
use http::StatusCode;
use std::error::Error;
use std::fmt;
use std::time::Duration;

/// What was known about the last attempt when the layer gave up.
#[derive(Debug, Default)]
pub(crate) struct LastAttempt {
    pub(crate) attempts: u32,
    pub(crate) total_wait: Duration,
    pub(crate) status: Option<StatusCode>,
    pub(crate) classification: Option<Classification>,
    pub(crate) source: Option<BoxError>,
}

macro_rules! last_attempt_accessors {
    () => {
        /// Attempts made before giving up.
        pub fn attempts(&self) -> u32 {
            self.last.attempts
        }

        /// Time slept between those attempts.
        pub fn total_wait(&self) -> Duration {
            self.last.total_wait
        }

        /// The status of the last response, when the last attempt ended on one.
        pub fn last_status(&self) -> Option<StatusCode> {
            self.last.status
        }

        /// The verdict on the last attempt, when one had finished.
        pub fn last_classification(&self) -> Option<&Classification> {
            self.last.classification.as_ref()
        }
    };
}

fn source_of(last: &LastAttempt) -> Option<&(dyn Error + 'static)> {
    last.source.as_deref().map(|e| e as &(dyn Error + 'static))
}

/// The request's deadline passed, or the next wait would have passed it. The last
/// attempt's error, if it ended on one, is the [`source`](Error::source).
#[derive(Debug)]
pub struct DeadlineExceeded {
    pub(crate) timeout: Duration,
    pub(crate) last: LastAttempt,
}

impl DeadlineExceeded {
    /// The overall time the request was given.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    last_attempt_accessors!();
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request deadline of {:?} reached after {} attempt(s)",
            self.timeout, self.last.attempts
        )
    }
}

impl Error for DeadlineExceeded {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        source_of(&self.last)
    }
}

/// The shared retry budget had no retry left within reach: so many requests are failing
/// that this retry would have waited for the budget longer than the layer's maximum wait
/// (or past the deadline), or the budget has no floor to refill from. The last attempt's
/// error, if it ended on one, is the [`source`](Error::source).
#[derive(Debug)]
pub struct BudgetExhausted {
    pub(crate) last: LastAttempt,
}

impl BudgetExhausted {
    last_attempt_accessors!();
}

impl fmt::Display for BudgetExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry budget exhausted after {} attempt(s)",
            self.last.attempts
        )
    }
}

impl Error for BudgetExhausted {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        source_of(&self.last)
    }
}

/// The server asked for a wait longer than the layer's
/// [`with_max_server_wait`](crate::BackoffRetryLayer::with_max_server_wait): failing now
/// beats sleeping that long.
#[derive(Debug)]
pub struct WaitTooLong {
    pub(crate) wait: Duration,
    pub(crate) max: Duration,
    pub(crate) last: LastAttempt,
}

impl WaitTooLong {
    /// The wait the server asked for.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The longest wait the layer accepts.
    pub fn max(&self) -> Duration {
        self.max
    }

    last_attempt_accessors!();
}

impl fmt::Display for WaitTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server asked to wait {:?}, longer than the {:?} allowed",
            self.wait, self.max
        )
    }
}

impl Error for WaitTooLong {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        source_of(&self.last)
    }
}

/// One attempt ran past the layer's
/// [`with_attempt_timeout`](crate::BackoffRetryLayer::with_attempt_timeout) and was cut.
///
/// Whether the server processed the request is unknown: its verdict (on the source
/// chain, for [`abide_classify::classify_error`]) is a retryable `ServerError` with
/// `Processing::Ambiguous`, so an idempotent request is tried again and any other is
/// returned with this error after its first cut attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptTimedOut {
    pub(crate) timeout: Duration,
    verdict: Verdict,
}

impl AttemptTimedOut {
    pub(crate) fn new(timeout: Duration) -> Self {
        AttemptTimedOut {
            timeout,
            verdict: Verdict::new(
                Classification::new(Class::ServerError, "abide-retry: attempt timed out")
                    .with_processing(Processing::Ambiguous),
            ),
        }
    }

    /// The per-attempt timeout that ran out.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for AttemptTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt timed out after {:?}", self.timeout)
    }
}

impl Error for AttemptTimedOut {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.verdict)
    }
}

/// A [`ReplayBody`](crate::ReplayBody) could not yield the bytes it owes. The retry layer
/// never causes this for the attempt it is waiting on; it reaches an abandoned attempt
/// that is still sending its body after a newer attempt took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayError {
    pub(crate) kind: ReplayErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayErrorKind {
    /// A newer copy of the body took over reading the original.
    Superseded,
    /// The bytes to replay were over the limit and were not kept.
    NotRecorded,
    /// The original body failed earlier.
    OriginalFailed,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ReplayErrorKind::Superseded => "request body taken over by a newer attempt",
            ReplayErrorKind::NotRecorded => {
                "request body over the replay limit cannot be sent again"
            }
            ReplayErrorKind::OriginalFailed => "request body failed on an earlier attempt",
        })
    }
}

impl Error for ReplayError {}
