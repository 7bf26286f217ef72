//! The service.

use crate::body::ResponseBody;
use crate::future::{ResponseFuture, WaitLimit};
use crate::key::{authority_key, authority_key_of, BucketKey, Cost};
use crate::layer::Config;
use crate::limiter::{BucketStats, Limiters};
use crate::store::QuotaStore;
use crate::BoxError;
use abide_classify::{AttemptStart, Deadline};
use http::{Request, Response};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower_service::Service;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn QuotaStore>,
    pub(crate) limiters: Arc<Limiters>,
    pub(crate) config: Config,
}

/// Admits each request per bucket before the inner service sees it. Made by
/// [`ConcurrencyCapLayer`](crate::ConcurrencyCapLayer).
///
/// Always ready: waiting happens in the [`ResponseFuture`], per request, because which
/// bucket a request waits for depends on the request. After admission the future drives
/// its own clone of the inner service to readiness, then calls it, so a waiting request
/// reserves nothing of the inner service.
///
/// Errors are [`BoxError`]: the inner service's own errors, or one of [`crate::error`].
pub struct ConcurrencyCap<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> ConcurrencyCap<S> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        ConcurrencyCap { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The store holding this service's bucket state.
    pub fn store(&self) -> &Arc<dyn QuotaStore> {
        &self.shared.store
    }

    /// The local admission state of a bucket (in flight, queued, cap), if it is tracked.
    pub fn stats(&self, key: &BucketKey) -> Option<BucketStats> {
        self.shared.limiters.stats(key)
    }

    /// How many buckets this service's clones track locally (idle ones are dropped as new
    /// ones come).
    pub fn tracked_buckets(&self) -> usize {
        self.shared.limiters.len()
    }
}

impl<S: Clone> Clone for ConcurrencyCap<S> {
    fn clone(&self) -> Self {
        ConcurrencyCap {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ConcurrencyCap<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyCap")
            .field("inner", &self.inner)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ConcurrencyCap<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let config = &self.shared.config;
        let (request, key, cost) = if config.key_fn.is_none() && config.cost_fn.is_none() {
            // Nothing needs `Parts`: read the request in place rather than take it apart
            // and rebuild it (two moves of the whole head).
            let key = authority_key_of(request.uri(), request.headers());
            let cost = request.extensions().get::<Cost>().map_or(1, |c| c.0);
            (request, key, cost)
        } else {
            let (parts, body) = request.into_parts();
            let key = match &config.key_fn {
                Some(f) => f(&parts),
                None => authority_key(&parts),
            };
            let cost = match parts.extensions.get::<Cost>() {
                Some(c) => c.0,
                None => config.cost_fn.as_ref().map_or(1, |f| f(&parts)),
            };
            (Request::from_parts(parts, body), key, cost)
        };
        // The retry layer's attempt timeout counts from the send, not from this wait.
        if let Some(start) = request.extensions().get::<AttemptStart>() {
            start.hold();
        }
        let mut max_wait = config.max_wait;
        // A max wait set explicitly, or a deadline, bounds the whole wait; the default
        // bounds how slowly the bucket may move.
        let mut total = config.max_wait_explicit;
        // The wait is measured from the first poll, or from now when a deadline says
        // how long is left.
        let mut started = None;
        if let Some(deadline) = request.extensions().get::<Deadline>() {
            let now = Instant::now();
            // A relative deadline counts from now: the cap is the outermost abide layer here.
            // A deadline too far to be an instant bounds nothing (and `max_wait` may be
            // `Duration::MAX`, so it cannot stand in as `now + max_wait`).
            if let Some(deadline) = deadline.resolve(now) {
                max_wait = max_wait.min(deadline.saturating_duration_since(now));
            }
            started = Some(now);
            total = true;
        }
        // The clone is the one this future polls and calls; `self.inner` is never called.
        let svc = self.inner.clone();
        ResponseFuture::new(
            self.shared.clone(),
            svc,
            request,
            key,
            cost,
            WaitLimit {
                started,
                max: max_wait,
                total,
            },
        )
    }
}
