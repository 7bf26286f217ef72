//! `aws-standard` and `aws-adaptive`: the AWS SDKs' standard retry strategy and
//! botocore's adaptive client rate limiter.

use super::looping::{lock, Answer, LoopPolicy};
use super::{duration_secs, effective_status, ClientContext};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, ctx};

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
}
