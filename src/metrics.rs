//! Counters and histograms through the [`metrics`](https://docs.rs/metrics) facade, per
//! request of the whole stack: put [`MetricsLayer`] outside the [`AbideLayer`](crate::AbideLayer).
//!
//! ```
//! use abide::metrics::MetricsLayer;
//! use abide::AbideLayer;
//! use tower::ServiceBuilder;
//!
//! let builder = ServiceBuilder::new()
//!     .layer(MetricsLayer::new())
//!     .layer(AbideLayer::openai());
//! # let _ = builder;
//! ```
//!
//! # Names (stable)
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | [`REQUESTS`] `abide_requests_total` | counter | `bucket`, `outcome` | requests ended, by [`Outcome::as_str`] |
//! | [`DURATION`] `abide_request_duration_seconds` | histogram | `bucket`, `outcome` | time from call to outcome, retries and waits included |
//! | [`ATTEMPTS`] `abide_attempts` | histogram | `bucket` | attempts per request that ended on a response |
//! | [`RETRY_WAIT`] `abide_retry_wait_seconds` | histogram | `bucket` | time slept between attempts |
//!
//! Each ended request is also a `tracing` event (target `abide`, level `DEBUG`, message
//! `request ended`) with the fields `bucket`, `outcome`, `attempts`, `elapsed_ms`. The
//! layers' own events use the field `bucket` for the bucket key too.
//!
//! # No credentials
//!
//! The `bucket` label is the request's host (and port) or a name you give
//! ([`MetricsLayer::with_bucket_fn`]): never user info, path, query string, headers or body.
//! Label values come from [`Outcome::as_str`], a closed set.

use crate::{Attempts, BoxError, Outcome};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_layer::Layer;
use tower_service::Service;

/// Counter of ended requests, labelled `bucket` and `outcome`.
pub const REQUESTS: &str = "abide_requests_total";
/// Histogram of seconds from call to outcome, labelled `bucket` and `outcome`.
pub const DURATION: &str = "abide_request_duration_seconds";
/// Histogram of attempts per request, labelled `bucket`.
pub const ATTEMPTS: &str = "abide_attempts";
/// Histogram of seconds slept between attempts, labelled `bucket`.
pub const RETRY_WAIT: &str = "abide_retry_wait_seconds";

type BucketFn = Arc<dyn Fn(&http::request::Parts) -> String + Send + Sync>;

/// Records [the metrics](self) of every request through the service it wraps.
#[derive(Clone, Default)]
pub struct MetricsLayer {
    bucket: Option<BucketFn>,
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("custom_bucket", &self.bucket.is_some())
            .finish()
    }
}

impl MetricsLayer {
    /// Labels requests by host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels requests by the name `bucket` returns. Return a name you chose (a model, a
    /// route name), never something taken from headers or the query string.
    pub fn with_bucket_fn(
        mut self,
        bucket: impl Fn(&http::request::Parts) -> String + Send + Sync + 'static,
    ) -> Self {
        self.bucket = Some(Arc::new(bucket));
        self
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            bucket: self.bucket.clone(),
        }
    }
}

/// The service of [`MetricsLayer`]. Its error is [`BoxError`]; it adds no failures.
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    bucket: Option<BucketFn>,
}

impl<S: fmt::Debug> fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Metrics<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The request's host and port: no user info, path or query.
fn host_label(parts: &http::request::Parts) -> String {
    if let Some(host) = parts.uri.host() {
        return match parts.uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
    }
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit('@').next())
        .filter(|h| !h.is_empty())
        .map_or_else(|| "unknown".to_owned(), str::to_owned)
}

impl<S, B, RB> Service<Request<B>> for Metrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let bucket = match &self.bucket {
            Some(f) => f(&parts),
            None => host_label(&parts),
        };
        MetricsFuture {
            inner: self.inner.call(Request::from_parts(parts, body)),
            bucket,
            start: Instant::now(),
        }
    }
}

pin_project! {
    /// The future of [`Metrics`].
    #[derive(Debug)]
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        bucket: String,
        start: Instant,
    }
}

impl<F, RB, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<RB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r.map_err(Into::into),
        };
        record(this.bucket, *this.start, &result);
        Poll::Ready(result)
    }
}

fn record<RB>(bucket: &str, start: Instant, result: &Result<Response<RB>, BoxError>) {
    let outcome = Outcome::of(result).as_str();
    let elapsed = start.elapsed();
    let labels = [
        ("bucket", bucket.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(elapsed.as_secs_f64());
    let attempts = result
        .as_ref()
        .ok()
        .and_then(|r| r.extensions().get::<Attempts>());
    if let Some(a) = attempts {
        let bucket = [("bucket", bucket.to_owned())];
        metrics::histogram!(ATTEMPTS, &bucket).record(f64::from(a.count));
        metrics::histogram!(RETRY_WAIT, &bucket).record(a.total_wait.as_secs_f64());
    }
    tracing::debug!(
        target: "abide",
        bucket,
        outcome,
        attempts = attempts.map(|a| a.count),
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "request ended"
    );
}
