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

#[cfg(feature = "classify")]
mod builder;
#[cfg(feature = "classify")]
pub use builder::ServiceBuilderExt;

/// The README's code blocks, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
