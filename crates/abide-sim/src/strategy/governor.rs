//! `governor-reqwest-retry`: what a Rust user composes today from the two crates people
//! reach for: a governor rate limiter at the API's published limits, awaited before each
//! call of a reqwest-middleware client carrying reqwest-retry's `RetryTransientMiddleware`
//! with `ExponentialBackoff::builder().build_with_max_retries(3)`.
//!
//! The composition is a choice (neither crate prescribes one); we take the common shape:
//! `limiter.until_ready().await` (and `until_n_ready(tokens)` on a second limiter when the
//! API limits tokens) and then `client.post(..).send().await`, so retries run inside the
//! client and do not pass the limiter again.
//!
//! The limiters are the real `governor` crate, on a clock that reads tokio's (virtual)
//! `Instant`; their `NotUntil` waits are slept with `tokio::time::sleep`, as governor's own
//! `until_ready` does with its real-time timer.

use super::looping::{lock, Answer, LoopPolicy, Looping};
use super::{effective_status, Client, ClientContext, SimBody};
use crate::model::ServerConfig;
use crate::service::{ConnectionRefused, RequestTokens};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{Request, Response, StatusCode};
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceExt};

/// A governor clock on tokio's time: under a paused runtime it reads virtual time.
#[derive(Clone, Debug)]
pub(crate) struct TokioClock {
    start: Instant,
}

impl TokioClock {
    pub(crate) fn new() -> Self {
        TokioClock {
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    // governor implements its `Reference` for `Duration` (time since an origin).
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// The quota a user writes for `limit` per `window`: `Quota::per_minute(limit)` for a 60 s
/// window, `per_second` / `per_hour` for those windows, else the same shape spelled out,
/// `Quota::with_period(window / limit).allow_burst(limit)` (governor `src/quota.rs`: each
/// constructor is "burst `limit`, one cell back every `window / limit`", starting full).
/// `None` when there is no limit.
pub(crate) fn quota(limit: u64, window: Duration) -> Option<Quota> {
    let burst = NonZeroU32::new(u32::try_from(limit).unwrap_or(u32::MAX))?;
    Some(match window.as_millis() {
        60_000 => Quota::per_minute(burst),
        1_000 => Quota::per_second(burst),
        3_600_000 => Quota::per_hour(burst),
        _ => Quota::with_period(window / burst.get())?.allow_burst(burst),
    })
}

/// One client process's limiters, declared at the server's true (enforced) limits.
#[derive(Debug)]
pub(crate) struct Limits {
    clock: TokioClock,
    requests: Option<Limiter>,
    tokens: Option<Limiter>,
}

impl Limits {
    pub(crate) fn new(server: &ServerConfig) -> Self {
        let clock = TokioClock::new();
        let limiter = |limit: u64| {
            (limit > 0)
                .then(|| quota(server.enforced(limit), server.window))
                .flatten()
                .map(|q| RateLimiter::direct_with_clock(q, clock.clone()))
        };
        Limits {
            requests: limiter(server.requests_per_window),
            tokens: limiter(server.tokens_per_window),
            clock,
        }
    }

    /// `until_ready` on the request limiter, then `until_n_ready(tokens)` on the token
    /// limiter. A cost larger than the token quota's burst can never pass: governor answers
    /// `InsufficientCapacity`, which the user's `?` returns without sending.
    pub(crate) async fn admit(&self, tokens: u64) -> Result<(), governor::InsufficientCapacity> {
        if let Some(l) = &self.requests {
            while let Err(not_until) = l.check() {
                tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
            }
        }
        let (Some(l), Some(n)) = (
            &self.tokens,
            NonZeroU32::new(u32::try_from(tokens).unwrap_or(u32::MAX)),
        ) else {
            return Ok(());
        };
        while let Err(not_until) = l.check_n(n)? {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
        Ok(())
    }
}

/// The limiters in front of the retrying client.
#[derive(Clone, Debug)]
struct Governed<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S> Service<Request<SimBody>> for Governed<S>
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<SimBody>) -> Self::Future {
        let inner = self.inner.clone();
        let limits = self.limits.clone();
        Box::pin(async move {
            let tokens = req.extensions().get::<RequestTokens>().map_or(0, |t| t.0);
            limits.admit(tokens).await?;
            inner.oneshot(req).await
        })
    }
}

// ---------------------------------------------------------------------------------------
// reqwest-retry
// ---------------------------------------------------------------------------------------

/// `build_with_max_retries(3)`: 3 retries after the first attempt.
const MAX_RETRIES: u32 = 3;
/// `ExponentialBackoffBuilder::default()`: `min_retry_interval` 1 s, `max_retry_interval`
/// 30 min, `base` 2, `Jitter::Full` (TrueLayer/retry-policies 0.5
/// `src/policies/exponential_backoff.rs`, the policy crate reqwest-retry 0.9 uses).
const MIN_RETRY_INTERVAL: Duration = Duration::from_secs(1);
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(30 * 60);
const BASE: u32 = 2;

/// reqwest-retry's `DefaultRetryableStrategy` (TrueLayer/reqwest-middleware
/// `reqwest-retry/src/retryable_strategy.rs`): `Transient` for 5xx, 408, 429 and timeouts
/// or connect errors; every other answer is returned. It never reads `Retry-After`.
fn transient(answer: &Answer) -> bool {
    match answer {
        Ok(res) => {
            let status = effective_status(res);
            status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
        }
        // `error.is_timeout() || error.is_connect()`: the simulator's transport error is a
        // refused connection.
        Err(e) => e.is::<ConnectionRefused>(),
    }
}

/// `RetryTransientMiddleware` with `ExponentialBackoff::should_retry`: after `n` past
/// retries, wait `U[0, 1) x min(max_retry_interval, min_retry_interval x base^n)`.
#[derive(Clone, Debug)]
pub(crate) struct ReqwestRetry {
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl ReqwestRetry {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        ReqwestRetry {
            rng: ctx.shared_rng(9),
        }
    }
}

/// `n_past_retries` of `execute_with_retry`.
#[derive(Debug, Default)]
pub(crate) struct ReqwestRetryState {
    n_past_retries: u32,
}

impl LoopPolicy for ReqwestRetry {
    type State = ReqwestRetryState;

    fn after(&self, state: &mut ReqwestRetryState, _: u32, answer: &Answer) -> Option<Duration> {
        if !transient(answer) || state.n_past_retries >= MAX_RETRIES {
            return None;
        }
        let factor = BASE.checked_pow(state.n_past_retries).unwrap_or(u32::MAX);
        let unjittered = MAX_RETRY_INTERVAL.min(MIN_RETRY_INTERVAL.saturating_mul(factor));
        let jittered = unjittered.mul_f64(lock(&self.rng).f64());
        state.n_past_retries += 1;
        Some(jittered.min(MAX_RETRY_INTERVAL))
    }
}

/// The limiters (per client process, at the true limits) around the retrying client.
pub(super) fn client<S>(inner: S, ctx: &ClientContext) -> Client
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneService::new(Governed {
        inner: Looping::new(inner, ReqwestRetry::new(ctx)),
        limits: Arc::new(Limits::new(&ctx.server)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, ctx, refused};

    #[test]
    fn reqwest_retry_waits_full_jitter_of_one_second_doubling_then_stops_after_three() {
        let p = ReqwestRetry::new(&ctx());
        for _ in 0..50 {
            let mut s = ReqwestRetryState::default();
            for cap in [1.0, 2.0, 4.0] {
                let w = p.after(&mut s, 1, &answer(429, &[])).unwrap().as_secs_f64();
                assert!((0.0..cap).contains(&w), "cap {cap}: {w}");
            }
            assert_eq!(p.after(&mut s, 4, &answer(429, &[])), None);
        }
        // The 30-minute cap: base^11 = 2048 s > 1800 s.
        let mut s = ReqwestRetryState { n_past_retries: 11 };
        let p3 = ReqwestRetry::new(&ctx());
        let w = p3.after(&mut s, 1, &answer(503, &[]));
        assert!(w.is_none(), "past its 3 retries");
        assert_eq!(
            MAX_RETRY_INTERVAL.min(MIN_RETRY_INTERVAL.saturating_mul(BASE.pow(11))),
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn reqwest_retry_retries_5xx_408_429_and_connect_errors_and_ignores_retry_after() {
        let p = ReqwestRetry::new(&ctx());
        let retried = |a: Answer| p.after(&mut ReqwestRetryState::default(), 1, &a);
        for a in [
            answer(500, &[]),
            answer(502, &[]),
            answer(529, &[]),
            answer(408, &[]),
            answer(429, &[]),
            refused(),
        ] {
            assert!(retried(a).is_some());
        }
        for status in [200, 400, 401, 403, 404, 409] {
            assert_eq!(retried(answer(status, &[])), None, "{status}");
        }
        // A one-hour Retry-After does not lengthen the first wait past 1 s.
        let w = retried(answer(429, &[("retry-after", "3600")])).unwrap();
        assert!(w < Duration::from_secs(1), "{w:?}");
    }

    #[test]
    fn the_quota_is_the_one_a_user_writes_for_the_window() {
        let l = NonZeroU32::new(500).unwrap();
        assert_eq!(
            quota(500, Duration::from_secs(60)),
            Some(Quota::per_minute(l))
        );
        assert_eq!(
            quota(500, Duration::from_secs(1)),
            Some(Quota::per_second(l))
        );
        assert_eq!(
            quota(500, Duration::from_secs(3600)),
            Some(Quota::per_hour(l))
        );
        let q = quota(5, Duration::from_secs(10)).unwrap();
        assert_eq!(
            (q.burst_size().get(), q.replenish_interval()),
            (5, Duration::from_secs(2))
        );
        assert_eq!(quota(0, Duration::from_secs(60)), None);
    }

    /// Seconds since `t` (tokio's timer fires on whole milliseconds: compare within 1 ms).
    fn since(t: Instant) -> f64 {
        t.elapsed().as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_limiter_admits_its_burst_then_one_per_interval_in_virtual_time() {
        // 3 requests per minute: burst 3, then one cell back every 20 s.
        let limits = Limits::new(&ServerConfig {
            requests_per_window: 3,
            ..ServerConfig::default()
        });
        let start = Instant::now();
        for _ in 0..3 {
            limits.admit(0).await.unwrap();
        }
        assert_eq!(since(start), 0.0, "the burst passes at once");
        limits.admit(0).await.unwrap();
        assert!((since(start) - 20.0).abs() < 1e-3, "{}", since(start));
        limits.admit(0).await.unwrap();
        assert!((since(start) - 40.0).abs() < 1e-3, "{}", since(start));
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_limiter_waits_for_the_declared_cost_and_refuses_what_never_fits() {
        // 300 tokens per minute, enforce_factor 0.5: the true limit is 150, one token back
        // every 400 ms. 100 pass at t = 0; 100 more need 50 back: 20 s.
        let limits = Limits::new(&ServerConfig {
            tokens_per_window: 300,
            enforce_factor: 0.5,
            ..ServerConfig::default()
        });
        let start = Instant::now();
        limits.admit(100).await.unwrap();
        assert_eq!(since(start), 0.0);
        limits.admit(100).await.unwrap();
        assert!((since(start) - 20.0).abs() < 1e-3, "{}", since(start));
        // More than the burst: governor's InsufficientCapacity, at once.
        let t = Instant::now();
        assert_eq!(
            limits.admit(151).await.unwrap_err(),
            governor::InsufficientCapacity(150)
        );
        assert_eq!(since(t), 0.0);
    }
}
