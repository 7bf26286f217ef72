//! The retry loops of the baseline libraries, each written from its library's source with
//! that library's defaults.

use super::{
    clone_request, duration_secs, effective_status, grpc_status, is_success, ClientContext, SimBody,
};
use crate::dialect::grpc_code;
use http::{Request, Response, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{BoxError, Service, ServiceExt};

type Answer = Result<Response<SimBody>, BoxError>;

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// naive: the OpenAI cookbook recipe
// ---------------------------------------------------------------------------------------

/// `stop_after_attempt(6)`: openai-cookbook `examples/How_to_handle_rate_limits.ipynb`.
const NAIVE_ATTEMPTS: u32 = 6;
/// `wait_random_exponential(min=1, max=60)`: same notebook; multiplier 1 and exp_base 2 are
/// tenacity's defaults (jd/tenacity `tenacity/wait.py`, `wait_exponential.__init__`).
const NAIVE_MIN_S: f64 = 1.0;
const NAIVE_MAX_S: f64 = 60.0;

/// The cookbook's tenacity decorator around a bare call: every exception (any non-2xx or
/// connection error) is retried, no header is read.
#[derive(Clone, Debug)]
pub(crate) struct Naive {
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Naive {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        Naive {
            rng: ctx.shared_rng(1),
        }
    }
}

impl LoopPolicy for Naive {
    type State = ();

    fn after(&self, _: &mut (), attempt: u32, answer: &Answer) -> Option<Duration> {
        if matches!(answer, Ok(r) if is_success(r)) || attempt >= NAIVE_ATTEMPTS {
            return None;
        }
        // tenacity wait_exponential: max(max(0, min), min(multiplier * 2^(n-1), max));
        // wait_random_exponential: uniform(min, that).
        let high = NAIVE_MIN_S.max((2f64.powi(attempt as i32 - 1)).min(NAIVE_MAX_S));
        let u = lock(&self.rng).f64();
        Some(duration_secs(NAIVE_MIN_S + u * (high - NAIVE_MIN_S)))
    }
}

// ---------------------------------------------------------------------------------------
// openai-python
// ---------------------------------------------------------------------------------------

/// `DEFAULT_MAX_RETRIES = 2`, `INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`:
/// openai/openai-python `src/openai/_constants.py`.
const OPENAI_MAX_RETRIES: u32 = 2;
const OPENAI_INITIAL_RETRY_DELAY: f64 = 0.5;
const OPENAI_MAX_RETRY_DELAY: f64 = 8.0;
/// `0 < retry_after <= 60`: `_calculate_retry_timeout` in `src/openai/_base_client.py`.
const OPENAI_MAX_HONOURED_WAIT: f64 = 60.0;

/// The SDK's `_should_retry` and `_calculate_retry_timeout`
/// (openai/openai-python `src/openai/_base_client.py`).
#[derive(Clone, Debug)]
pub(crate) struct OpenAiPython {
    rng: Arc<Mutex<fastrand::Rng>>,
    ctx: ClientContext,
}

impl OpenAiPython {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        OpenAiPython {
            rng: ctx.shared_rng(2),
            ctx: ctx.clone(),
        }
    }

    /// `_parse_retry_after_header`: `retry-after-ms` as float ms, else `retry-after` as
    /// float seconds, else as an HTTP date minus the local clock.
    fn retry_after(&self, res: &Response<SimBody>) -> Option<f64> {
        let h = res.headers();
        let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(ms) = text("retry-after-ms").and_then(|s| s.parse::<f64>().ok()) {
            return Some(ms / 1000.0);
        }
        let ra = text("retry-after")?;
        if let Ok(s) = ra.parse::<f64>() {
            return Some(s);
        }
        let at = httpdate::parse_http_date(ra).ok()?;
        let now = self.ctx.now_wall();
        Some(match at.duration_since(now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
    }

    /// `_should_retry` on an error response.
    fn should_retry(res: &Response<SimBody>) -> bool {
        match res
            .headers()
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
        {
            Some("true") => return true,
            Some("false") => return false,
            _ => {}
        }
        let status = effective_status(res).as_u16();
        matches!(status, 408 | 409 | 429) || status >= 500
    }
}

impl LoopPolicy for OpenAiPython {
    type State = ();

    fn after(&self, _: &mut (), attempt: u32, answer: &Answer) -> Option<Duration> {
        let retries_taken = attempt - 1;
        if retries_taken >= OPENAI_MAX_RETRIES {
            return None;
        }
        let retry_after = match answer {
            Ok(res) if is_success(res) => return None,
            Ok(res) => {
                if !Self::should_retry(res) {
                    return None;
                }
                self.retry_after(res)
            }
            // APIConnectionError and timeouts are retried.
            Err(_) => None,
        };
        if let Some(ra) = retry_after {
            if ra > 0.0 && ra <= OPENAI_MAX_HONOURED_WAIT {
                return Some(duration_secs(ra));
            }
        }
        let sleep = (OPENAI_INITIAL_RETRY_DELAY * 2f64.powi(retries_taken as i32))
            .min(OPENAI_MAX_RETRY_DELAY);
        let jitter = 1.0 - 0.25 * lock(&self.rng).f64();
        Some(duration_secs(sleep * jitter))
    }
}

// ---------------------------------------------------------------------------------------
// AWS standard and adaptive
// ---------------------------------------------------------------------------------------

/// `max_attempts` 3, `initial_backoff` 1 s, `max_backoff` 20 s: smithy-lang/smithy-rs
/// `aws-smithy-types/src/retry.rs` (`RetryConfig::standard`); AWS SDKs and Tools reference
/// guide, "Retry behavior".
const AWS_MAX_ATTEMPTS: u32 = 3;
const AWS_INITIAL_BACKOFF_S: f64 = 1.0;
const AWS_MAX_BACKOFF_S: f64 = 20.0;
/// `DEFAULT_CAPACITY = 500`, `DEFAULT_RETRY_COST = 5`, `DEFAULT_RETRY_TIMEOUT_COST = 10`,
/// `PERMIT_REGENERATION_AMOUNT = 1`: smithy-rs
/// `aws-smithy-runtime/src/client/retries/token_bucket.rs`.
const AWS_QUOTA_CAPACITY: u32 = 500;
const AWS_RETRY_COST: u32 = 5;
const AWS_TIMEOUT_RETRY_COST: u32 = 10;
const AWS_SUCCESS_REFUND: u32 = 1;

/// What an AWS SDK's classifiers would call an answer. The simulated vendors send no AWS
/// error codes, so their throttling answers (429, 529 overload, gRPC `RESOURCE_EXHAUSTED`)
/// stand for AWS's throttling codes (`ThrottlingException`, `TooManyRequestsException`);
/// 500/502/503/504 and connection errors are transient, as smithy-rs's
/// `HttpStatusCodeClassifier` and IO classification make them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AwsKind {
    Success,
    Throttling,
    Transient,
    NotRetryable,
}

fn aws_kind(answer: &Answer) -> AwsKind {
    match answer {
        Err(_) => AwsKind::Transient,
        Ok(res) => {
            let status = effective_status(res);
            match status.as_u16() {
                _ if status.is_success() => AwsKind::Success,
                429 | 529 => AwsKind::Throttling,
                500 | 502 | 503 | 504 => AwsKind::Transient,
                _ => AwsKind::NotRetryable,
            }
        }
    }
}

/// botocore's adaptive client rate limiter (boto/botocore `botocore/retries/adaptive.py`,
/// `bucket.py`, `throttling.py`; the same constants as smithy-rs `client_rate_limiter.rs`).
#[derive(Debug)]
struct AdaptiveLimiter {
    enabled: bool,
    // TokenBucket (bucket.py)
    fill_rate: f64,
    max_capacity: f64,
    current_capacity: f64,
    last_timestamp: Option<f64>,
    // RateClocker (adaptive.py)
    measured_rate: f64,
    last_bucket: f64,
    count: f64,
    // CubicCalculator (throttling.py)
    last_max_rate: f64,
    last_fail: f64,
    k: f64,
}

/// `TokenBucket._MIN_RATE = 0.5` (bucket.py).
const ADAPTIVE_MIN_RATE: f64 = 0.5;
/// `RateClocker._DEFAULT_SMOOTHING = 0.8`, `_TIME_BUCKET_RANGE = 0.5` (adaptive.py).
const ADAPTIVE_SMOOTHING: f64 = 0.8;
const ADAPTIVE_TIME_BUCKET_RANGE: f64 = 0.5;
/// `ClientRateLimiter._MAX_RATE_ADJUST_SCALE = 2.0` (adaptive.py).
const ADAPTIVE_MAX_RATE_ADJUST_SCALE: f64 = 2.0;
/// `CubicCalculator` defaults `scale_constant=0.4`, `beta=0.7` (throttling.py).
const CUBIC_SCALE_CONSTANT: f64 = 0.4;
const CUBIC_BETA: f64 = 0.7;

impl AdaptiveLimiter {
    fn new(now: f64) -> Self {
        // register_retry_handler: TokenBucket(max_rate=1), CubicCalculator(starting_max_rate=0,
        // start_time=now), RateClocker with _last_bucket = floor(now).
        let mut l = AdaptiveLimiter {
            enabled: false,
            fill_rate: 0.0,
            max_capacity: 0.0,
            current_capacity: 0.0,
            last_timestamp: None,
            measured_rate: 0.0,
            last_bucket: now.floor(),
            count: 0.0,
            last_max_rate: 0.0,
            last_fail: now,
            k: 0.0,
        };
        l.set_max_rate(1.0, now);
        l.k = l.zero_point();
        l
    }

    fn refill(&mut self, now: f64) {
        match self.last_timestamp {
            None => self.last_timestamp = Some(now),
            Some(last) => {
                let fill = (now - last) * self.fill_rate;
                self.current_capacity = self.max_capacity.min(self.current_capacity + fill);
                self.last_timestamp = Some(now);
            }
        }
    }

    /// `TokenBucket.max_rate` setter.
    fn set_max_rate(&mut self, value: f64, now: f64) {
        self.refill(now);
        self.fill_rate = value.max(ADAPTIVE_MIN_RATE);
        self.max_capacity = if value >= 1.0 { value } else { 1.0 };
        self.current_capacity = self.current_capacity.min(self.max_capacity);
    }

    /// `TokenBucket._acquire(1)`: `None` when a token was taken; else the wait after which
    /// to try again.
    fn try_acquire(&mut self, now: f64) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        self.refill(now);
        if self.current_capacity >= 1.0 {
            self.current_capacity -= 1.0;
            None
        } else {
            // At least a millisecond, so that virtual time moves.
            let wait = ((1.0 - self.current_capacity) / self.fill_rate).max(0.001);
            Some(duration_secs(wait))
        }
    }

    /// `RateClocker.record`.
    fn record(&mut self, now: f64) -> f64 {
        let scale = 1.0 / ADAPTIVE_TIME_BUCKET_RANGE;
        let bucket = (now * scale).floor() / scale;
        self.count += 1.0;
        if bucket > self.last_bucket {
            let current = self.count / (bucket - self.last_bucket);
            self.measured_rate =
                current * ADAPTIVE_SMOOTHING + self.measured_rate * (1.0 - ADAPTIVE_SMOOTHING);
            self.count = 0.0;
            self.last_bucket = bucket;
        }
        self.measured_rate
    }

    fn zero_point(&self) -> f64 {
        ((self.last_max_rate * (1.0 - CUBIC_BETA)) / CUBIC_SCALE_CONSTANT).cbrt()
    }

    /// `CubicCalculator.success_received`: the rate after a success at `now`.
    fn cubic_success_rate(&self, now: f64) -> f64 {
        let dt = now - self.last_fail;
        CUBIC_SCALE_CONSTANT * (dt - self.k).powi(3) + self.last_max_rate
    }

    /// `ClientRateLimiter.on_receiving_response`.
    fn on_response(&mut self, throttled: bool, now: f64) {
        let measured = self.record(now);
        let new_rate = if throttled {
            let rate = if self.enabled {
                measured.min(self.fill_rate)
            } else {
                measured
            };
            // CubicCalculator.error_received
            self.last_max_rate = rate;
            self.k = self.zero_point();
            self.last_fail = now;
            self.enabled = true;
            rate * CUBIC_BETA
        } else {
            self.cubic_success_rate(now)
        };
        self.set_max_rate(new_rate.min(ADAPTIVE_MAX_RATE_ADJUST_SCALE * measured), now);
    }
}

/// The standard retry strategy (smithy-rs `client/retries/strategy/standard.rs`), with the
/// adaptive rate limiter when `limiter` is set (botocore `retries/adaptive.py`: every
/// attempt takes a token once a throttle has been seen).
#[derive(Clone, Debug)]
pub(crate) struct Aws {
    quota: Arc<Mutex<u32>>,
    limiter: Option<Arc<Mutex<AdaptiveLimiter>>>,
    rng: Arc<Mutex<fastrand::Rng>>,
    ctx: ClientContext,
}

impl Aws {
    pub(crate) fn standard(ctx: &ClientContext) -> Self {
        Aws {
            quota: Arc::new(Mutex::new(AWS_QUOTA_CAPACITY)),
            limiter: None,
            rng: ctx.shared_rng(3),
            ctx: ctx.clone(),
        }
    }

    pub(crate) fn adaptive(ctx: &ClientContext) -> Self {
        Aws {
            limiter: Some(Arc::new(Mutex::new(AdaptiveLimiter::new(ctx.now_secs())))),
            ..Aws::standard(ctx)
        }
    }
}

/// The retry permit a logical request holds: the cost of its latest retry.
#[derive(Debug, Default)]
pub(crate) struct AwsState {
    permit: Option<u32>,
}

impl LoopPolicy for Aws {
    type State = AwsState;

    fn before_send(&self, _: &mut AwsState, _attempt: u32) -> Option<Duration> {
        let limiter = self.limiter.as_ref()?;
        lock(limiter).try_acquire(self.ctx.now_secs())
    }

    fn after(&self, state: &mut AwsState, attempt: u32, answer: &Answer) -> Option<Duration> {
        let kind = aws_kind(answer);
        if let Some(limiter) = &self.limiter {
            lock(limiter).on_response(kind == AwsKind::Throttling, self.ctx.now_secs());
        }
        match kind {
            AwsKind::Success => {
                // release_retry_permit: a retried success gives its permit back, a first-try
                // success regenerates one token; never above capacity.
                let mut quota = lock(&self.quota);
                let refund = state.permit.take().unwrap_or(AWS_SUCCESS_REFUND);
                *quota = (*quota + refund).min(AWS_QUOTA_CAPACITY);
                None
            }
            AwsKind::NotRetryable => None,
            AwsKind::Throttling | AwsKind::Transient => {
                if attempt >= AWS_MAX_ATTEMPTS {
                    return None;
                }
                // calculate_exponential_backoff: random() * min(initial * 2^(attempts-1), max).
                let base =
                    (AWS_INITIAL_BACKOFF_S * 2f64.powi(attempt as i32 - 1)).min(AWS_MAX_BACKOFF_S);
                let backoff = lock(&self.rng).f64() * base;
                let cost = if kind == AwsKind::Transient {
                    AWS_TIMEOUT_RETRY_COST
                } else {
                    AWS_RETRY_COST
                };
                let mut quota = lock(&self.quota);
                if *quota < cost {
                    return None;
                }
                *quota -= cost;
                // set_retry_permit forgets the permit it replaces.
                state.permit = Some(cost);
                Some(duration_secs(backoff))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// gRPC A6
// ---------------------------------------------------------------------------------------

/// grpc/proposal `A6-client-retries.md`: `maxAttempts` is capped at 5 ("values greater than
/// 5 are treated as 5"); `initialBackoff` 0.1 s, `maxBackoff` 1 s, `backoffMultiplier` 2 are
/// the proposal's example policy; `retryThrottling` `maxTokens` 10, `tokenRatio` 0.1 its
/// example throttling config.
const A6_MAX_ATTEMPTS: u32 = 5;
const A6_INITIAL_BACKOFF_S: f64 = 0.1;
const A6_MAX_BACKOFF_S: f64 = 1.0;
const A6_MULTIPLIER: f64 = 2.0;
const A6_MAX_TOKENS: f64 = 10.0;
const A6_TOKEN_RATIO: f64 = 0.1;
/// `retryableStatusCodes`: `UNAVAILABLE` (the proposal's example) and `RESOURCE_EXHAUSTED`.
const A6_RETRYABLE: [u32; 2] = [grpc_code::UNAVAILABLE, grpc_code::RESOURCE_EXHAUSTED];

/// The gRPC code an answer carries: `grpc-status`, else the HTTP status mapped as
/// grpc/grpc `doc/http-grpc-status-mapping.md` does (429, 502, 503, 504 -> UNAVAILABLE; 400
/// -> INTERNAL; 401 -> UNAUTHENTICATED; 403 -> PERMISSION_DENIED; 404 -> UNIMPLEMENTED;
/// others -> UNKNOWN). A refused connection is UNAVAILABLE.
fn grpc_code_of(answer: &Answer) -> u32 {
    let Ok(res) = answer else {
        return grpc_code::UNAVAILABLE;
    };
    if let Some(code) = grpc_status(res.headers()) {
        return code;
    }
    match res.status() {
        s if s.is_success() => grpc_code::OK,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => grpc_code::UNAVAILABLE,
        StatusCode::BAD_REQUEST => grpc_code::INTERNAL,
        StatusCode::UNAUTHORIZED => grpc_code::UNAUTHENTICATED,
        StatusCode::FORBIDDEN => grpc_code::PERMISSION_DENIED,
        StatusCode::NOT_FOUND => grpc_code::UNIMPLEMENTED,
        _ => grpc_code::UNKNOWN,
    }
}

/// The gRPC retry policy with retry throttling (per client = per server name) and pushback.
#[derive(Clone, Debug)]
pub(crate) struct GrpcA6 {
    tokens: Arc<Mutex<f64>>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl GrpcA6 {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        GrpcA6 {
            tokens: Arc::new(Mutex::new(A6_MAX_TOKENS)),
            rng: ctx.shared_rng(4),
        }
    }
}

/// Retries since the last pushback (the backoff exponent).
#[derive(Debug, Default)]
pub(crate) struct A6State {
    backoffs: u32,
}

/// `grpc-retry-pushback-ms`: `Some(Ok(ms))`, `Some(Err(()))` when negative or malformed
/// (the server says: do not retry), `None` when absent.
fn pushback(answer: &Answer) -> Option<Result<u64, ()>> {
    let res = answer.as_ref().ok()?;
    let v = res.headers().get("grpc-retry-pushback-ms")?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|ms| u64::try_from(ms).ok())
            .ok_or(()),
    )
}

impl LoopPolicy for GrpcA6 {
    type State = A6State;

    fn after(&self, state: &mut A6State, attempt: u32, answer: &Answer) -> Option<Duration> {
        let code = grpc_code_of(answer);
        let pushback = pushback(answer);
        let mut tokens = lock(&self.tokens);
        if code == grpc_code::OK {
            *tokens = (*tokens + A6_TOKEN_RATIO).min(A6_MAX_TOKENS);
            return None;
        }
        let retryable = A6_RETRYABLE.contains(&code);
        // Failures for throttling: retryable codes, and pushback saying not to retry.
        if retryable || matches!(pushback, Some(Err(()))) {
            *tokens = (*tokens - 1.0).max(0.0);
        }
        if !retryable
            || matches!(pushback, Some(Err(())))
            || attempt >= A6_MAX_ATTEMPTS
            || *tokens <= A6_MAX_TOKENS / 2.0
        {
            return None;
        }
        drop(tokens);
        if let Some(Ok(ms)) = pushback {
            // Wait exactly the pushback; the next backoff starts again at initialBackoff.
            state.backoffs = 0;
            return Some(Duration::from_millis(ms));
        }
        let cap = (A6_INITIAL_BACKOFF_S * A6_MULTIPLIER.powi(state.backoffs as i32))
            .min(A6_MAX_BACKOFF_S);
        state.backoffs += 1;
        Some(duration_secs(lock(&self.rng).f64() * cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn ctx() -> ClientContext {
        ClientContext {
            client: 0,
            seed: 7,
            start: Instant::now(),
            epoch: crate::service::sim_epoch(),
            shared_store: None,
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Answer {
        let mut res = Response::new(SimBody::default());
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in headers {
            res.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Ok(res)
    }

    #[test]
    fn naive_waits_uniformly_between_one_second_and_the_doubling_cap_then_stops_at_six() {
        let p = Naive::new(&ctx());
        for attempt in 1..=5u32 {
            let high = 2f64.powi(attempt as i32 - 1).max(1.0);
            for _ in 0..50 {
                let w = p
                    .after(&mut (), attempt, &answer(429, &[]))
                    .unwrap()
                    .as_secs_f64();
                assert!((1.0..=high).contains(&w), "attempt {attempt}: {w}");
            }
        }
        assert_eq!(p.after(&mut (), 6, &answer(429, &[])), None);
        assert_eq!(p.after(&mut (), 1, &answer(200, &[])), None);
        // Headers are ignored: a 1-hour Retry-After changes nothing.
        let w = p
            .after(&mut (), 1, &answer(503, &[("retry-after", "3600")]))
            .unwrap();
        assert_eq!(w, Duration::from_secs(1));
    }

    #[test]
    fn openai_python_honours_waits_up_to_sixty_seconds_and_stops_after_two_retries() {
        let p = OpenAiPython::new(&ctx());
        let ms = answer(429, &[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(p.after(&mut (), 1, &ms), Some(Duration::from_millis(1500)));
        let secs = answer(429, &[("retry-after", "30")]);
        assert_eq!(p.after(&mut (), 1, &secs), Some(Duration::from_secs(30)));
        // Above 60 s the header is ignored: 0.5 s x 2^1 x (0.75..1] on the second retry.
        let long = answer(503, &[("retry-after", "61")]);
        let w = p.after(&mut (), 2, &long).unwrap().as_secs_f64();
        assert!((0.75..=1.0).contains(&w), "{w}");
        assert_eq!(p.after(&mut (), 3, &secs), None);
        assert_eq!(p.after(&mut (), 1, &answer(400, &[])), None);
        assert_eq!(
            p.after(&mut (), 1, &answer(429, &[("x-should-retry", "false")])),
            None
        );
        assert!(p
            .after(&mut (), 1, &answer(400, &[("x-should-retry", "true")]))
            .is_some());
        let refused: Answer = Err(crate::service::ConnectionRefused::new().into());
        assert!(p.after(&mut (), 1, &refused).is_some());
    }

    #[test]
    fn aws_standard_spends_its_retry_quota_and_refunds_on_success() {
        let p = Aws::standard(&ctx());
        // 500 tokens at 5 per throttling retry: 100 retries, then none.
        for i in 0..100 {
            let mut s = AwsState::default();
            let w = p.after(&mut s, 1, &answer(429, &[])).expect("quota left");
            assert!(w <= Duration::from_secs(1), "retry {i}: {w:?}");
        }
        assert_eq!(
            p.after(&mut AwsState::default(), 1, &answer(429, &[])),
            None
        );
        // A first-try success regenerates one token: not enough for a 5-token retry...
        p.after(&mut AwsState::default(), 1, &answer(200, &[]));
        assert_eq!(
            p.after(&mut AwsState::default(), 1, &answer(429, &[])),
            None
        );
        // ...a retried success gives back its permit's 5.
        *lock(&p.quota) = 5;
        let mut s = AwsState::default();
        assert!(
            p.after(&mut s, 1, &answer(503, &[])).is_none(),
            "transient costs 10"
        );
        assert!(p.after(&mut s, 1, &answer(429, &[])).is_some());
        assert_eq!(*lock(&p.quota), 0);
        p.after(&mut s, 2, &answer(200, &[]));
        assert_eq!(*lock(&p.quota), 5);
        assert_eq!(
            p.after(&mut AwsState::default(), 3, &answer(429, &[])),
            None,
            "3 attempts"
        );
    }

    #[test]
    fn aws_adaptive_limits_the_send_rate_after_a_throttle() {
        let p = Aws::adaptive(&ctx());
        let mut s = AwsState::default();
        assert_eq!(
            p.before_send(&mut s, 1),
            None,
            "disabled before any throttle"
        );
        p.after(&mut s, 1, &answer(429, &[]));
        let limiter = p.limiter.as_ref().unwrap();
        assert!(lock(limiter).enabled);
        // The bucket starts empty: the next send waits for a token at >= 0.5 per second.
        let w = p.before_send(&mut s, 2).expect("must wait");
        assert!(w <= Duration::from_secs(2) && w > Duration::ZERO, "{w:?}");
    }

    #[test]
    fn cubic_matches_the_sdk_reference_values() {
        // smithy-rs client_rate_limiter.rs test_calculated_rate_with_successes: last max
        // rate 10 at t=5; success rates at t = 5, 6, 7.
        let mut l = AdaptiveLimiter::new(0.0);
        l.last_max_rate = 10.0;
        l.last_fail = 5.0;
        l.k = l.zero_point();
        assert!((l.cubic_success_rate(5.0) - 7.0).abs() < 1e-9);
        assert!((l.cubic_success_rate(6.0) - 9.64893600966).abs() < 1e-9);
        assert!((l.cubic_success_rate(7.0) - 10.000030849917364).abs() < 1e-9);
    }

    #[test]
    fn grpc_a6_stops_retrying_when_throttled_and_obeys_pushback() {
        let p = GrpcA6::new(&ctx());
        let unavailable = answer(200, &[("grpc-status", "14")]);
        let mut s = A6State::default();
        // Tokens 10 -> 9, 8, 7, 6: retries allowed while tokens > 5.
        for attempt in 1..=4 {
            let w = p.after(&mut s, attempt, &unavailable).expect("retry");
            let cap = (0.1 * 2f64.powi(attempt as i32 - 1)).min(1.0);
            assert!(w.as_secs_f64() <= cap, "{w:?}");
        }
        // Tokens 5: throttled.
        assert_eq!(p.after(&mut A6State::default(), 1, &unavailable), None);
        *lock(&p.tokens) = 10.0;
        let push = answer(
            200,
            &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "1234")],
        );
        assert_eq!(p.after(&mut s, 1, &push), Some(Duration::from_millis(1234)));
        assert_eq!(s.backoffs, 0);
        let stop = answer(
            200,
            &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "-1")],
        );
        assert_eq!(p.after(&mut s, 1, &stop), None);
        // Not retryable: INVALID_ARGUMENT.
        assert_eq!(
            p.after(&mut s, 1, &answer(200, &[("grpc-status", "3")])),
            None
        );
        // HTTP answers map per the gRPC doc: 429 -> UNAVAILABLE (retried), 500 -> UNKNOWN.
        assert!(p
            .after(&mut A6State::default(), 1, &answer(429, &[]))
            .is_some());
        assert_eq!(p.after(&mut A6State::default(), 1, &answer(500, &[])), None);
    }
}
