//! One outcome model: whatever ended a request, read in one call.

use abide_classify::{classify_error, Class, Classification};
use abide_retry::{Attempts, Stop};
use http::{Response, StatusCode};
use std::error::Error;
use std::fmt;
use std::time::Duration;

/// The error type of the stack: every layer returns its own failures boxed.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What ended a request through the abide stack, the server's answer or a local refusal,
/// on the first call or a later one: the same condition reads the same way.
///
/// Read it with [`Outcome::of`] from the stack's result; no `downcast_ref` needed.
///
/// ```
/// use abide::{AbideLayer, Outcome};
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // An account out of credits: OpenAI's `insufficient_quota` 429.
/// let api = service_fn(|_req: Request<_>| async {
///     Ok::<_, std::convert::Infallible>(
///         Response::builder()
///             .status(429)
///             .header("content-type", "application/json")
///             .body(r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}"#.to_string())
///             .unwrap(),
///     )
/// });
/// let client = AbideLayer::openai().layer(api);
/// let result = client
///     .oneshot(Request::post("https://api.openai.com/v1/chat/completions").body(String::new()).unwrap())
///     .await;
/// match Outcome::of(&result) {
///     Outcome::Success { .. } => println!("done"),
///     Outcome::QuotaExhausted { .. } => println!("stop: the quota is gone"),
///     Outcome::GaveUp { attempts, .. } => println!("gave up after {attempts} attempts"),
///     other => println!("{other}"),
/// }
/// assert!(matches!(Outcome::of(&result), Outcome::QuotaExhausted { .. }));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server answered with success.
    Success {
        /// Attempts it took (1 without retries; 0 when no retry layer counted them).
        attempts: u32,
    },
    /// The quota is gone (credits, billing, a per-day cap; or the bucket is already known
    /// to be exhausted and the request was not sent). Retrying now cannot help.
    QuotaExhausted {
        /// When the quota may be back, if the server said.
        retry_in: Option<Duration>,
    },
    /// The request itself must change (a 4xx, a request larger than the quota admits).
    ClientError {
        /// The server's status, `None` when the stack refused it locally.
        status: Option<StatusCode>,
    },
    /// The credentials must change (401, 403).
    AuthError {
        /// The server's status.
        status: StatusCode,
    },
    /// A failure that could succeed later (throttle, overload, server error) was retried
    /// until the attempts or the retry budget ran out.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// What the last attempt's failure was.
        class: Class,
        /// The last attempt's status, when it ended on a response.
        status: Option<StatusCode>,
    },
    /// The request's deadline passed (or a wait would have passed it).
    Deadline {
        /// Attempts made, when the retry layer counted them.
        attempts: Option<u32>,
    },
    /// The server asked to wait longer than the stack's max server wait; failing now beats
    /// sleeping that long.
    WaitTooLong {
        /// The wait the server stated (what was left of it).
        wait: Duration,
        /// The longest wait the stack takes.
        max: Duration,
    },
    /// One attempt ran past the attempt timeout, and the request was not safe to send again.
    TimedOut {
        /// The attempt timeout.
        timeout: Duration,
    },
    /// The failure was ambiguous (the server may have processed the request) and the
    /// request was not safe to send twice, or its body could not be replayed.
    NotReplayed {
        /// What the failure was.
        class: Class,
        /// The status, when it ended on a response.
        status: Option<StatusCode>,
    },
    /// The request could not go now (quota exhausted, a wait too long, a deadline spent
    /// behind a pause) and, being deferrable, was written to the spool instead of failing
    /// (`abide::spool::SpoolLayer`, feature `spool`): it will be delivered by the replayer.
    Deferred {
        /// The spool entry's id.
        id: u64,
        /// The `Idempotency-Key` the entry carries when replayed.
        idempotency_key: String,
    },
    /// Any other failure, not retried (further): a transport error, local congestion.
    Failed {
        /// What the failure was.
        class: Class,
        /// The status, when it ended on a response.
        status: Option<StatusCode>,
    },
}

impl Outcome {
    /// The outcome of a request: its response or its error, in one call.
    pub fn of<B>(result: &Result<Response<B>, BoxError>) -> Outcome {
        match result {
            Ok(response) => Outcome::from_response(response),
            Err(error) => Outcome::from_error(&**error),
        }
    }

    /// The outcome of a response the stack returned.
    pub fn from_response<B>(response: &Response<B>) -> Outcome {
        let status = response.status();
        let attempts = response.extensions().get::<Attempts>();
        let count = attempts.map_or(0, |a| a.count);
        let class = match response.extensions().get::<Classification>() {
            Some(c) => c.class,
            None if status.is_success() => Class::Success,
            None if status.is_client_error() => Class::ClientError,
            None => Class::ServerError,
        };
        match class {
            Class::Success => Outcome::Success { attempts: count },
            Class::QuotaExhausted => Outcome::QuotaExhausted {
                retry_in: response
                    .extensions()
                    .get::<Classification>()
                    .and_then(|c| c.retry_after),
            },
            Class::ClientError => Outcome::ClientError {
                status: Some(status),
            },
            Class::AuthError => Outcome::AuthError { status },
            class => match attempts.map(|a| a.stop) {
                Some(Stop::MaxAttempts) => Outcome::GaveUp {
                    attempts: count,
                    class,
                    status: Some(status),
                },
                Some(Stop::NotIdempotent | Stop::BodyNotReplayable) => Outcome::NotReplayed {
                    class,
                    status: Some(status),
                },
                _ => Outcome::Failed {
                    class,
                    status: Some(status),
                },
            },
        }
    }

    /// The outcome of an error the stack returned: the layers' own errors as what they
    /// are, the inner service's by the classifier's reading of them.
    pub fn from_error(error: &(dyn Error + 'static)) -> Outcome {
        let mut current = Some(error);
        // The layers' errors are on top, or wrapped once by a user's layer.
        for _ in 0..8 {
            let Some(e) = current else { break };
            if let Some(outcome) = known(e) {
                return outcome;
            }
            current = e.source();
        }
        let class = classify_error(error).class;
        match class {
            Class::QuotaExhausted => Outcome::QuotaExhausted { retry_in: None },
            Class::ClientError => Outcome::ClientError { status: None },
            class => Outcome::Failed {
                class,
                status: None,
            },
        }
    }

    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success { .. })
    }

    /// A stable short name for logs and metrics labels: `success`, `quota_exhausted`,
    /// `client_error`, `auth_error`, `gave_up`, `deadline`, `wait_too_long`, `timed_out`,
    /// `not_replayed`, `deferred`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success { .. } => "success",
            Outcome::QuotaExhausted { .. } => "quota_exhausted",
            Outcome::ClientError { .. } => "client_error",
            Outcome::AuthError { .. } => "auth_error",
            Outcome::GaveUp { .. } => "gave_up",
            Outcome::Deadline { .. } => "deadline",
            Outcome::WaitTooLong { .. } => "wait_too_long",
            Outcome::TimedOut { .. } => "timed_out",
            Outcome::NotReplayed { .. } => "not_replayed",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The layers' own errors.
pub(crate) fn known(e: &(dyn Error + 'static)) -> Option<Outcome> {
    use abide_cap::error as cap;
    use abide_retry as retry;
    #[cfg(feature = "spool")]
    if let Some(d) = e.downcast_ref::<abide_spool::Deferred>() {
        return Some(Outcome::Deferred {
            id: d.id().0,
            idempotency_key: d.idempotency_key().to_owned(),
        });
    }
    if let Some(w) = e.downcast_ref::<retry::WaitTooLong>() {
        return Some(Outcome::WaitTooLong {
            wait: w.wait(),
            max: w.max(),
        });
    }
    if let Some(w) = e.downcast_ref::<cap::WaitTooLong>() {
        return Some(match w.server_wait() {
            Some(wait) => Outcome::WaitTooLong {
                wait,
                max: w.max_wait(),
            },
            // The caller's own bound (its deadline or the cap's max wait) cannot be met.
            None => Outcome::Deadline { attempts: None },
        });
    }
    if let Some(d) = e.downcast_ref::<retry::DeadlineExceeded>() {
        return Some(Outcome::Deadline {
            attempts: Some(d.attempts()),
        });
    }
    if let Some(b) = e.downcast_ref::<retry::BudgetExhausted>() {
        return Some(Outcome::GaveUp {
            attempts: b.attempts(),
            class: b
                .last_classification()
                .map_or(Class::ServerError, |c| c.class),
            status: b.last_status(),
        });
    }
    if let Some(t) = e.downcast_ref::<retry::AttemptTimedOut>() {
        return Some(Outcome::TimedOut {
            timeout: t.timeout(),
        });
    }
    if let Some(x) = e.downcast_ref::<cap::BucketExhausted>() {
        return Some(Outcome::QuotaExhausted {
            retry_in: x.retry_in(),
        });
    }
    if e.is::<cap::CostTooHigh>() {
        return Some(Outcome::ClientError { status: None });
    }
    if e.is::<cap::QueueFull>() {
        return Some(Outcome::Failed {
            class: Class::Overloaded,
            status: None,
        });
    }
    if e.is::<retry::ReplayError>() {
        return Some(Outcome::NotReplayed {
            class: Class::ServerError,
            status: None,
        });
    }
    None
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Success { attempts } => write!(f, "success after {attempts} attempt(s)"),
            Outcome::QuotaExhausted { retry_in: Some(d) } => {
                write!(f, "quota exhausted; back in {d:?}")
            }
            Outcome::QuotaExhausted { retry_in: None } => f.write_str("quota exhausted"),
            Outcome::ClientError { status: Some(s) } => write!(f, "client error ({s})"),
            Outcome::ClientError { status: None } => {
                f.write_str("client error (refused before sending)")
            }
            Outcome::AuthError { status } => write!(f, "credentials refused ({status})"),
            Outcome::GaveUp {
                attempts, class, ..
            } => write!(f, "gave up after {attempts} attempt(s): {class}"),
            Outcome::Deadline { .. } => f.write_str("deadline reached"),
            Outcome::WaitTooLong { wait, max } => {
                write!(f, "the server asked to wait {wait:?}, more than {max:?}")
            }
            Outcome::TimedOut { timeout } => write!(f, "attempt timed out after {timeout:?}"),
            Outcome::NotReplayed { class, .. } => {
                write!(f, "{class}; not safe to send again")
            }
            Outcome::Deferred { id, .. } => write!(f, "deferred: spooled as entry {id}"),
            Outcome::Failed { class, .. } => write!(f, "failed: {class}"),
        }
    }
}
