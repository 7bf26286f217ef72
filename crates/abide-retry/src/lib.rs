//! A Tower retry layer for clients of rate-limited APIs: retry only what can succeed,
//! never sooner than the server asked.
//!
//! ```
//! use abide_retry::{Attempts, BackoffRetryLayer, ReplayBody};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // A server that is rate limited on the first call and answers on the second.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = calls.clone();
//! let api = tower::service_fn(move |_req: http::Request<ReplayBody<String>>| {
//!     let n = counter.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let response = if n == 0 {
//!             http::Response::builder().status(429).header("retry-after", "2").body(String::new())
//!         } else {
//!             http::Response::builder().body(String::from("done"))
//!         };
//!         Ok::<_, std::convert::Infallible>(response.unwrap())
//!     }
//! });
//!
//! let client = ServiceBuilder::new()
//!     .layer(BackoffRetryLayer::new().with_seed(1))
//!     .service(api);
//! let response = client.oneshot(http::Request::new(String::from("hi"))).await.unwrap();
//! assert_eq!(response.status(), 200);
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! let attempts = response.extensions().get::<Attempts>().unwrap();
//! assert_eq!(attempts.count, 2);
//! # }
//! ```
//!
//! # What it does
//!
//! [`BackoffRetryLayer`] turns one logical request into as few attempts as possible. It
//! reads the [`Classification`](abide_classify::Classification) the classifier layer
//! below it attached to each response (and falls back to
//! [`abide_classify::classify_head`] / [`classify_error`](abide_classify::classify_error)
//! when used alone), so below a classifier it never parses headers itself; alone, it
//! parses them only for a response that is not a success.
//!
//! - **Not retryable → returned at once.** Quota exhaustion, client and auth errors are
//!   never retried; the caller sees the real response.
//! - **Retryable → wait `max(backoff, server wait)` and try again.** Jitter is applied
//!   only above the server's wait, and the timer never fires before the server's instant
//!   (waits are rounded up to the millisecond and checked against
//!   [`tokio::time::Instant`]).
//! - **Fail fast.** A server wait above [`with_max_server_wait`] ends the request with
//!   [`WaitTooLong`]; a wait that would pass the deadline ends it with
//!   [`DeadlineExceeded`].
//! - **Never multiply load, never drop deliverable work.** The shared [`RetryBudget`]
//!   bounds the *rate* of retries: when it is empty a retry waits for its next token
//!   rather than being dropped, and only a retry that would wait longer than
//!   [`with_max_server_wait`] (or past the deadline) ends with [`BudgetExhausted`].
//!   Attempts are bounded by [`with_max_attempts`] (6 by default: a lone request against
//!   a broken server is reported within 15.5 s of waits; behind the cap, requests held
//!   during an outage spend none) and, when the server paces its refusals with a stated
//!   wait, by [`with_max_paced_attempts`] (32). The two count apart: turns the server (or
//!   the cap's probe for others) paced do not spend a request's unpaced attempts.
//! - **Deadline.** From [`with_deadline`], the [`Deadline`] request extension or the
//!   `grpc-timeout` header (the earliest wins). It counts attempts and sleeps, cuts each
//!   attempt at the deadline, and refuses a retry that cannot finish in time.
//! - **Idempotency.** A request the server refused without processing it
//!   ([`Processing::NotProcessed`](abide_classify::Processing::NotProcessed): 429, 503,
//!   529, `RESOURCE_EXHAUSTED`, a refused connection, a cap's full queue) is retried whatever its
//!   method. After an ambiguous failure (timeout, reset, 500/502/504) only idempotent
//!   methods, requests carrying an `Idempotency-Key` (the layer can add one:
//!   [`with_idempotency_key`]) and requests marked [`ReplaySafe`] (no side effects) are.
//! - **Body replay.** The inner service receives a [`ReplayBody`], recorded lazily up to
//!   [`with_replay_limit`]: streams work, a server answering before the body was sent in
//!   full is handled byte-exact, and a larger body simply makes the request
//!   non-retryable.
//! - **Connections reused.** A failed attempt's response body is read (up to
//!   [`with_drain_limit`]) while waiting, then dropped.
//! - **Observable.** Each returned response carries [`Attempts`]; every decision is a
//!   `tracing` event (target `abide_retry`); [`RetryStats`] counts them.
//!
//! # Errors
//!
//! The service's error type is [`BoxError`]. Inner errors pass through unchanged when
//! they are not retried (or attempts run out); the layer's own decisions are
//! [`DeadlineExceeded`], [`BudgetExhausted`] and [`WaitTooLong`], found with
//! `downcast_ref`. When the last attempt ended on an error, it is their
//! [`source`](std::error::Error::source).
//!
//! # With tonic
//!
//! A tonic `Channel` only takes `tonic::body::Body`: put a
//! `map_request(|r: http::Request<ReplayBody<_>>| r.map(tonic::body::Body::new))` between
//! this layer and the channel.
//!
//! [`with_max_server_wait`]: BackoffRetryLayer::with_max_server_wait
//! [`with_max_attempts`]: BackoffRetryLayer::with_max_attempts
//! [`with_max_paced_attempts`]: BackoffRetryLayer::with_max_paced_attempts
//! [`with_deadline`]: BackoffRetryLayer::with_deadline
//! [`with_idempotency_key`]: BackoffRetryLayer::with_idempotency_key
//! [`with_replay_limit`]: BackoffRetryLayer::with_replay_limit
//! [`with_drain_limit`]: BackoffRetryLayer::with_drain_limit
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod budget;
mod deadline;
pub mod error;
pub mod future;
mod idempotency;
mod layer;
mod record;
mod replay;
mod service;
mod stats;
mod striped;

pub use backoff::{Backoff, Jitter, MAX_BACKOFF};
pub use budget::RetryBudget;
pub use deadline::{parse_grpc_timeout, Deadline};
pub use error::{AttemptTimedOut, BudgetExhausted, DeadlineExceeded, ReplayError, WaitTooLong};
pub use future::ResponseFuture;
pub use idempotency::{ReplaySafe, IDEMPOTENCY_KEY};
pub use layer::{
    BackoffRetryLayer, DEFAULT_DRAIN_LIMIT, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_PACED_ATTEMPTS,
    DEFAULT_MAX_SERVER_WAIT, DEFAULT_REPLAY_LIMIT, MAX_ATTEMPTS_LIMIT, MAX_SERVER_WAIT_LIMIT,
};
pub use record::{Attempts, Stop};
pub use replay::ReplayBody;
pub use service::BackoffRetry;
pub use stats::{RetryStats, RetryStatsSnapshot};

/// The error type of [`BackoffRetry`]: inner errors boxed, plus the layer's own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
