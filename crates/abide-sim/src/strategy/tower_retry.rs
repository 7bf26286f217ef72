//! `tower-retry`: the real `tower::retry::Retry` with tower's own exponential backoff.

use super::{clone_request, effective_status, Client, ClientContext, SimBody};
use http::{Request, Response};
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::{Policy, Retry};
use tower::util::rng::Rng;
use tower::util::BoxCloneService;
use tower::{BoxError, Service};

/// tower has no default policy; retrying 429 and 5xx up to 5 attempts is the common shape
/// (a choice, per BASELINES.md).
const TOWER_MAX_ATTEMPTS: usize = 5;
/// `ExponentialBackoffMaker::default()`: min 50 ms, max `u64::MAX` ms, jitter 0.99
/// (tower-rs/tower `tower/src/retry/backoff.rs`). Only the RNG differs: tower's default
/// `HasherRng` is seeded from `RandomState`, ours from the scenario, for reproducible runs.
const TOWER_MIN_MS: u64 = 50;
const TOWER_MAX_MS: u64 = u64::MAX;
const TOWER_JITTER: f64 = 0.99;

/// A seeded RNG in tower's `Rng` trait. Like `HasherRng`, a clone repeats the sequence:
/// every request's backoff (made from the same maker) draws the same jitter, as in tower.
#[derive(Clone, Debug)]
pub(crate) struct SeededRng(fastrand::Rng);

impl Rng for SeededRng {
    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

/// Retries 429s, 5xx and errors, up to 5 attempts, sleeping tower's backoff between them.
#[derive(Clone, Debug)]
pub(crate) struct RetryServerErrors {
    attempts_left: usize,
    backoff: ExponentialBackoff<SeededRng>,
}

impl Policy<Request<SimBody>, Response<SimBody>, BoxError> for RetryServerErrors {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<SimBody>,
        result: &mut Result<Response<SimBody>, BoxError>,
    ) -> Option<Self::Future> {
        let retryable = match result {
            Ok(res) => {
                let s = effective_status(res);
                s.as_u16() == 429 || s.is_server_error()
            }
            Err(_) => true,
        };
        if !retryable || self.attempts_left == 0 {
            return None;
        }
        self.attempts_left -= 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, req: &Request<SimBody>) -> Option<Request<SimBody>> {
        Some(clone_request(req))
    }
}

pub(super) fn client<S>(inner: S, ctx: &ClientContext) -> Client
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut maker = ExponentialBackoffMaker::new(
        std::time::Duration::from_millis(TOWER_MIN_MS),
        std::time::Duration::from_millis(TOWER_MAX_MS),
        TOWER_JITTER,
        SeededRng(ctx.rng(5)),
    )
    .expect("tower's default backoff parameters are valid");
    let policy = RetryServerErrors {
        attempts_left: TOWER_MAX_ATTEMPTS - 1,
        backoff: maker.make_backoff(),
    };
    BoxCloneService::new(Retry::new(policy, inner))
}
