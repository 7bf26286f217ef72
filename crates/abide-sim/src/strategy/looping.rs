//! The retry loop shared by the baselines written from other libraries' sources: each
//! library's loop is a [`LoopPolicy`] run by [`Looping`].

use super::{clone_request, SimBody};
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{BoxError, Service, ServiceExt};

/// One attempt's result, as a library's retry loop sees it.
pub(crate) type Answer = Result<Response<SimBody>, BoxError>;

/// The hooks a library's retry loop has: an optional wait before each attempt (a
/// client-side rate limiter) and the decision after each answer.
pub(crate) trait LoopPolicy: Clone + Send + Sync + 'static {
    /// Per-logical-request state.
    type State: Default + Send;

    /// A wait before sending attempt `attempt` (1-based); asked again after the wait
    /// until it says `None`.
    fn before_send(&self, _state: &mut Self::State, _attempt: u32) -> Option<Duration> {
        None
    }

    /// After attempt `attempt` answered: `Some(wait)` to retry after `wait`, `None` to
    /// return this answer.
    fn after(&self, state: &mut Self::State, attempt: u32, answer: &Answer) -> Option<Duration>;
}

/// A service running a [`LoopPolicy`] around its inner service. The harness boxes the
/// loop's future: these are simulations of other libraries, not library code.
#[derive(Clone, Debug)]
pub(crate) struct Looping<S, P> {
    inner: S,
    policy: P,
}

impl<S, P> Looping<S, P> {
    pub(crate) fn new(inner: S, policy: P) -> Self {
        Looping { inner, policy }
    }
}

impl<S, P> Service<Request<SimBody>> for Looping<S, P>
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    P: LoopPolicy,
{
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each attempt waits for the inner service's readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<SimBody>) -> Self::Future {
        let mut inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let mut state = P::State::default();
            let mut attempt = 1;
            loop {
                while let Some(wait) = policy.before_send(&mut state, attempt) {
                    tokio::time::sleep(wait).await;
                }
                let answer = inner.ready().await?.call(clone_request(&req)).await;
                match policy.after(&mut state, attempt, &answer) {
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return answer,
                }
            }
        })
    }
}

/// Locks a mutex, recovering from poisoning (a panicked holder leaves plain data).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
