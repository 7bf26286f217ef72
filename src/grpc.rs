//! abide for tonic: [`GrpcLayer`] puts the [`AbideLayer::grpc`] stack on a tonic `Channel`
//! and reports the stack's own refusals as `tonic::Status`, so tonic callers see
//! `RESOURCE_EXHAUSTED` or `DEADLINE_EXCEEDED` with the reason instead of `Unknown`.
//!
//! ```no_run
//! use abide::grpc::GrpcLayer;
//! use tonic::transport::Channel;
//! use tower::ServiceBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let origin: http::Uri = "http://127.0.0.1:50051".parse()?;
//! let channel = Channel::builder(origin.clone()).connect().await?;
//! let stack = ServiceBuilder::new().layer(GrpcLayer::new()).service(channel);
//! // The origin in each request's URI is the call's bucket: one per channel origin.
//! let client = tonic::client::Grpc::with_origin(stack, origin);
//! # let _ = client;
//! # Ok(())
//! # }
//! ```
//!
//! | stack error | status | why |
//! |---|---|---|
//! | [`BucketExhausted`](crate::BucketExhausted) | `RESOURCE_EXHAUSTED` | the server said the quota is gone; not sent |
//! | [`WaitTooLong`](crate::WaitTooLong) | `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms` | the server's wait is longer than the stack takes |
//! | [`QueueFull`](crate::QueueFull), [`CostTooHigh`](crate::CostTooHigh) | `RESOURCE_EXHAUSTED` | local limits; not sent |
//! | [`BudgetExhausted`](crate::BudgetExhausted) | `RESOURCE_EXHAUSTED` after throttles, else `UNAVAILABLE` | too many failures to retry now |
//! | [`DeadlineExceeded`](crate::DeadlineExceeded), [`AttemptTimedOut`](crate::AttemptTimedOut), an admission wait past the deadline | `DEADLINE_EXCEEDED` | out of time |
//!
//! Other errors (the channel's own) pass through unchanged for tonic to map.

use crate::outcome::known;
use crate::{AbideLayer, AbideService, BoxError, Outcome, ReplayBody};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::util::MapRequest;
use tower_layer::Layer;
use tower_service::Service;

/// Moves a replayable request body into tonic's body type, which a `Channel` requires.
pub type IntoTonicBody = fn(Request<ReplayBody<Body>>) -> Request<Body>;

fn into_tonic_body(request: Request<ReplayBody<Body>>) -> Request<Body> {
    request.map(Body::new)
}

/// The abide stack for a tonic `Channel` (or any service taking `tonic::body::Body`):
/// [`StatusErrors`] around the [`AbideLayer`] (by default [`AbideLayer::grpc`]) around
/// the channel.
#[derive(Clone, Debug)]
pub struct GrpcLayer {
    abide: AbideLayer,
}

impl Default for GrpcLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcLayer {
    /// The [`AbideLayer::grpc`] preset.
    pub fn new() -> Self {
        Self::with_stack(AbideLayer::grpc())
    }

    /// Any configuration of the stack.
    pub fn with_stack(abide: AbideLayer) -> Self {
        GrpcLayer { abide }
    }

    /// The stack's configuration.
    pub fn stack(&self) -> &AbideLayer {
        &self.abide
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = StatusErrors<AbideService<MapRequest<S, IntoTonicBody>>>;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = MapRequest::new(inner, into_tonic_body as IntoTonicBody);
        StatusErrors {
            inner: self.abide.layer(inner),
        }
    }
}

/// Turns the abide layers' own errors into `tonic::Status` (see the [module docs](self));
/// responses and other errors pass through.
#[derive(Clone, Debug)]
pub struct StatusErrors<S> {
    inner: S,
}

impl<S> StatusErrors<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        StatusErrors { inner }
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for StatusErrors<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = StatusFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(|e| to_status(e.into()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        StatusFuture {
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The future of [`StatusErrors`].
    #[derive(Debug)]
    pub struct StatusFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for StatusFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map_err(|e| to_status(e.into()))
    }
}

/// The status a stack error reaches tonic callers as; other errors unchanged.
fn to_status(error: BoxError) -> BoxError {
    let Some(outcome) = known(&*error) else {
        return error;
    };
    let code = match &outcome {
        Outcome::Deadline { .. } | Outcome::TimedOut { .. } => Code::DeadlineExceeded,
        Outcome::GaveUp { class, .. } if !class.is_throttle() => Code::Unavailable,
        Outcome::NotReplayed { .. } => Code::Unavailable,
        _ => Code::ResourceExhausted,
    };
    let mut status = Status::new(code, format!("abide: {error}"));
    if let Outcome::WaitTooLong { wait, .. } = outcome {
        // gRPC's pushback header (grpc/proposal A6-client-retries.md), so a caller that
        // retries by itself waits as long as the server asked.
        let ms = wait.as_millis().min(u128::from(u64::MAX)).to_string();
        if let Ok(value) = ms.parse() {
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", value);
        }
    }
    status.set_source(std::sync::Arc::from(error));
    Box::new(status)
}
