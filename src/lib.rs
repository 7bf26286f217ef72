//! Tower middleware for clients of rate-limited APIs: read what the server says about its
//! limits, wait exactly as long as it must, never retry what cannot succeed, and get the
//! most work through the quota you have.
//!
//! ```
//! use abide::{AbideLayer, ServiceBuilderExt};
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Any `tower::Service<http::Request<B>>` works: a hyper-util client, a tonic channel...
//! let api = service_fn(|_req: Request<_>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
//! });
//! let client = ServiceBuilder::new().abide(AbideLayer::new()).service(api);
//!
//! let response = client
//!     .oneshot(Request::get("https://api.example.com/v1").body(Full::new(Bytes::new()))?)
//!     .await?;
//! assert!(response.status().is_success());
//! # Ok(())
//! # }
//! ```
//!
//! # The parts
//!
//! | module | layer | job |
//! |---|---|---|
//! | [`headers`] | `RateLimitHeaders` | read every rate-limit header dialect into one snapshot; write snapshots back |
//! | [`classify`] | `QuotaClassifierLayer` | tell a transient rate limit from quota exhaustion, overload and errors |
//! | [`retry`] | `BackoffRetryLayer` | retry only what can succeed, never sooner than the server asked |
//! | [`cap`] | `ConcurrencyCapLayer` | cap, pace and pause requests per bucket; learn limits from headers |
//!
//! Each is a crate of its own and a feature of this one (all on by default).
//!
//! # Layer order
//!
//! `retry` outermost, then `cap`, then `classify`, then the client:
//!
//! ```text
//! caller
//!   └─ BackoffRetry        one logical request; loops over attempts; sleeps between them
//!        └─ ConcurrencyCap  each attempt is admitted: bucket paused? pace slot free? permit?
//!             └─ QuotaClassifier  classifies the response, attaches Classification + snapshot
//!                  └─ inner service (hyper client, tonic Channel, ...)
//! ```
//!
//! Every attempt, retries included, passes through the cap, because the server counts every
//! attempt. [`AbideLayer`] builds exactly this stack; [`ServiceBuilderExt`] adds the layers
//! one by one when you need to configure them.
//!
//! # Presets, cost, outcomes
//!
//! [`AbideLayer::openai`], [`anthropic`](AbideLayer::anthropic),
//! [`gemini`](AbideLayer::gemini), [`azure_openai`](AbideLayer::azure_openai),
//! [`github`](AbideLayer::github), [`grpc`](AbideLayer::grpc) and
//! [`generic`](AbideLayer::generic) configure the stack for an API (bucket key, replay
//! safety, timeouts). A request's [`Cost`] (tokens) and [`Model`] are request extensions.
//! [`Outcome::of`] reads whatever ended a request in one call.
//!
//! A response holds its in-flight permit until its body is read to the end or dropped:
//! a body nobody reads keeps a permit of its bucket.
//!
//! # Features
//!
//! `headers`, `classify`, `retry`, `cap`, `hyper` (default); `grpc` ([`AbideLayer::grpc`]'s
//! tonic wrapper, `grpc::GrpcLayer`; the only feature that pulls tonic, prost and h2);
//! `metrics` (`metrics::MetricsLayer`).
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "headers")]
#[doc(inline)]
pub use abide_headers as headers;

#[cfg(feature = "classify")]
#[doc(inline)]
pub use abide_classify as classify;

#[cfg(feature = "retry")]
#[doc(inline)]
pub use abide_retry as retry;

#[cfg(feature = "cap")]
#[doc(inline)]
pub use abide_cap as cap;

#[cfg(feature = "spool")]
#[doc(inline)]
pub use abide_spool as spool;

#[cfg(all(feature = "retry", feature = "cap"))]
mod stack;
#[cfg(all(feature = "retry", feature = "cap"))]
pub use stack::AbideLayer;

#[cfg(all(feature = "retry", feature = "cap"))]
mod presets;
#[cfg(all(feature = "retry", feature = "cap"))]
pub use presets::{Model, GITHUB_MAX_IN_FLIGHT, LLM_ATTEMPT_TIMEOUT};

#[cfg(all(feature = "retry", feature = "cap"))]
mod outcome;
#[cfg(all(feature = "retry", feature = "cap"))]
pub use outcome::{BoxError, Outcome};

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;

#[cfg(feature = "classify")]
pub use abide_classify::{Class, Classification, Deadline, Processing, QuotaScope};

#[cfg(feature = "cap")]
pub use abide_cap::{
    error::{BucketExhausted, CostTooHigh, QueueFull},
    BucketKey, Cost, ExhaustionPolicy, InFlight, Quota,
};

#[cfg(feature = "retry")]
pub use abide_retry::{
    AttemptTimedOut, Attempts, BudgetExhausted, DeadlineExceeded, ReplayBody, ReplaySafe, Stop,
    WaitTooLong,
};

/// The service [`AbideLayer`] makes around `S`.
#[cfg(all(feature = "retry", feature = "cap"))]
pub type AbideService<S> =
    abide_retry::BackoffRetry<abide_cap::ConcurrencyCap<abide_classify::QuotaClassifier<S>>>;

/// The request body the inner service of an [`AbideService`] receives: the caller's body
/// `B`, recorded so a retry can send it again.
#[cfg(feature = "retry")]
pub type AbideRequestBody<B> = abide_retry::ReplayBody<B>;

/// The response body an [`AbideService`] returns for an inner response body `B`: it
/// holds the cap's in-flight permit until it is read to the end or dropped.
#[cfg(all(feature = "retry", feature = "cap"))]
pub type AbideBody<B> = abide_cap::ResponseBody<abide_classify::ResponseBody<B>>;

/// The whole stack's response: what a caller of an [`AbideService`] gets back.
#[cfg(all(feature = "retry", feature = "cap"))]
pub type AbideResponse<B> = http::Response<AbideBody<B>>;

#[cfg(feature = "classify")]
mod builder;
#[cfg(feature = "classify")]
pub use builder::ServiceBuilderExt;

/// The README's code blocks, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
