//! The service.

use crate::classify::{Chain, DefaultClassifier, MakeClassifier, NoRules};
use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::QuotaClassifierLayer;
use http::{Request, Response};
use http_body::Body;
use std::task::{Context, Poll};
use tower_service::Service;

/// Classifies every response of the inner service and attaches the verdict.
///
/// Each response gets a [`Classification`](crate::Classification) and the parsed
/// [`RateLimitSnapshot`](abide_headers::RateLimitSnapshot) in its extensions (gRPC
/// responses whose status is in the trailers also get an
/// [`EosClassification`](crate::EosClassification)). The body comes back as a
/// [`ResponseBody`](crate::ResponseBody), byte for byte the inner one.
///
/// Errors of the inner service pass through unchanged (this layer adds none); classify
/// them with [`classify_error`](crate::classify_error).
///
/// The body peek waits with `tokio::time`: responses that get peeked (failures, and
/// GraphQL or gRPC responses when asked) must be polled inside a Tokio runtime with its
/// time driver enabled. Successes without a peek need no runtime.
#[derive(Debug, Clone)]
pub struct QuotaClassifier<S, U = NoRules> {
    pub(crate) inner: S,
    pub(crate) config: Config<U>,
}

impl<S> QuotaClassifier<S> {
    /// Wraps `inner` with the default configuration.
    pub fn new(inner: S) -> Self {
        QuotaClassifier {
            inner,
            config: QuotaClassifierLayer::new().config,
        }
    }

    /// A [`QuotaClassifierLayer`] with the default configuration.
    pub fn layer() -> QuotaClassifierLayer {
        QuotaClassifierLayer::new()
    }
}

impl<S, U> QuotaClassifier<S, U> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, U, ReqB, ResB> Service<Request<ReqB>> for QuotaClassifier<S, U>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
    U: MakeClassifier,
    U::Classifier: Send + Sync + 'static,
{
    type Response = Response<crate::ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Chain<U::Classifier, DefaultClassifier>, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let classifier = Chain::new(
            self.config.user.make_classifier(&request),
            self.config.defaults.make_classifier(&request),
        );
        ResponseFuture::new(self.inner.call(request), classifier, self.config.peek)
    }
}
