//! [`BackoffRetry`]: the service.

use crate::deadline::{parse_grpc_timeout, Deadline, GRPC_TIMEOUT, MAX_DEADLINE};
use crate::future::{ResponseFuture, Template};
use crate::idempotency::{
    is_idempotent, is_idempotent_method, new_key, ReplaySafe, IDEMPOTENCY_KEY,
};
use crate::layer::{BackoffRetryLayer, Config};
use crate::replay::ReplayBody;
use crate::BoxError;
use abide_classify::AttemptStart;
use http::{Request, Response};
use http_body::Body;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

/// Retries requests whose response or error the classifier calls retryable.
///
/// Made by [`BackoffRetryLayer`]. The inner service receives
/// `http::Request<`[`ReplayBody<B>`](ReplayBody)`>` so the body can be sent again. Errors
/// are [`BoxError`]: the inner service's own errors pass through unchanged (boxed), and
/// the layer adds [`DeadlineExceeded`](crate::DeadlineExceeded),
/// [`BudgetExhausted`](crate::BudgetExhausted) and [`WaitTooLong`](crate::WaitTooLong).
#[derive(Clone, Debug)]
pub struct BackoffRetry<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> BackoffRetry<S> {
    /// Wraps `inner` with the default configuration ([`BackoffRetryLayer::new`]).
    pub fn new(inner: S) -> Self {
        Self::from_parts(inner, BackoffRetryLayer::new().config)
    }

    pub(crate) fn from_parts(inner: S, config: Arc<Config>) -> Self {
        BackoffRetry { inner, config }
    }

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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BackoffRetry<S>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Call the service that was polled ready; keep it (not the fresh clone) for the
        // retries, which poll it ready again before each call.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        config.stats.request();
        // Read the clock only when a deadline can exist: the success path skips it.
        let grpc_timeout = if config.grpc_timeout {
            request.headers().get(GRPC_TIMEOUT)
        } else {
            None
        };
        let extension = request.extensions().get::<Deadline>();
        let (start, deadline) =
            if config.deadline.is_some() || extension.is_some() || grpc_timeout.is_some() {
                let start = Instant::now();
                let mut deadline: Option<Instant> =
                    config.deadline.and_then(|d| start.checked_add(d));
                let mut earliest = |at: Option<Instant>| {
                    if let Some(at) = at {
                        deadline = Some(deadline.map_or(at, |d| d.min(at)));
                    }
                };
                earliest(extension.and_then(|d| d.resolve(start)));
                if let Some(value) = grpc_timeout {
                    match parse_grpc_timeout(value.as_bytes()) {
                        Some(t) => earliest(start.checked_add(t)),
                        None => tracing::debug!(
                            target: "abide_retry",
                            value = ?value,
                            "malformed grpc-timeout ignored"
                        ),
                    }
                }
                // A timer cannot be set near the end of `Instant`'s range (tokio panics);
                // no request lasts this long anyway.
                if let Some(far) = start.checked_add(MAX_DEADLINE) {
                    deadline = deadline.map(|d| d.min(far));
                }
                (Some(start), deadline)
            } else {
                (None, None)
            };
        let timeout = match (start, deadline) {
            (Some(start), Some(deadline)) => deadline.saturating_duration_since(start),
            _ => Duration::ZERO,
        };

        // An idempotent method, or a request its caller marked as having no side effects.
        let idempotent_method = is_idempotent_method(request.method())
            || request.extensions().get::<ReplaySafe>().is_some();
        let mut keyed = false;
        if config.idempotency_key
            && !idempotent_method
            && !request.headers().contains_key(IDEMPOTENCY_KEY)
        {
            request.headers_mut().insert(IDEMPOTENCY_KEY, new_key());
            keyed = true;
        }

        let (mut parts, body) = request.into_parts();
        // With an attempt timeout, each attempt carries a mark the layer that may hold it
        // (the cap) sets when it sends it: the timeout counts from there.
        let attempt_start = config.attempt_timeout.map(|_| {
            let start = AttemptStart::new();
            parts.extensions.insert(start.clone());
            start
        });
        if let Some(deadline) = deadline {
            // Every attempt carries the absolute deadline, so the cap below can refuse an
            // admission wait that would end after it.
            parts.extensions.insert(Deadline::at(deadline));
        }
        let (body, template) = if config.max_attempts.max(config.max_paced_attempts) > 1 {
            let body = ReplayBody::new(body, config.replay_limit);
            let template = body.clone_unclaimed().map(|body| Template {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                version: parts.version,
                headers: parts.headers.clone(),
                extensions: parts.extensions.clone(),
                body,
            });
            (body, template)
        } else {
            // No retry can happen: do not record anything.
            (ReplayBody::once(body, false), None)
        };
        // Whether the request may be sent twice matters only after a failure. When the
        // template keeps the headers, the `Idempotency-Key` lookup waits for one (`None`):
        // the success path skips it.
        let idempotent = if idempotent_method || keyed || config.replay_safe {
            Some(true)
        } else if template.is_some() {
            None
        } else {
            Some(is_idempotent(&parts.method, &parts.headers))
        };
        let request = Request::from_parts(parts, body);
        config.stats.attempt();
        let future = service.call(request);
        ResponseFuture::new(
            future,
            service,
            template,
            config,
            start,
            deadline,
            timeout,
            idempotent,
            attempt_start,
        )
    }
}
