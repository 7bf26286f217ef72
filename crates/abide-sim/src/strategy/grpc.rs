//! `grpc-a6`: the gRPC retry policy of grpc/proposal `A6-client-retries.md`, with retry
//! throttling and server pushback.

use super::looping::{lock, Answer, LoopPolicy};
use super::{duration_secs, grpc_status, ClientContext};
use crate::dialect::grpc_code;
use http::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// grpc/proposal `A6-client-retries.md` (read at its 2024-08 revision, "change specification
/// of backoff behavior", #452): `maxAttempts` is capped at 5 ("values greater than 5 are
/// treated as 5"; the proposal's example policy says 4, we take the cap); `initialBackoff`
/// 0.1 s, `maxBackoff` 1 s, `backoffMultiplier` 2 are the example policy; `retryThrottling`
/// `maxTokens` 10, `tokenRatio` 0.1 its example throttling config.
const A6_MAX_ATTEMPTS: u32 = 5;
const A6_INITIAL_BACKOFF_S: f64 = 0.1;
const A6_MAX_BACKOFF_S: f64 = 1.0;
const A6_MULTIPLIER: f64 = 2.0;
const A6_MAX_TOKENS: f64 = 10.0;
const A6_TOKEN_RATIO: f64 = 0.1;
/// "Jitter of plus or minus 0.2 is applied to the backoff delay": `random(0.8, 1.2)`
/// (A6, "Exponential Backoff").
const A6_JITTER_LOW: f64 = 0.8;
const A6_JITTER_HIGH: f64 = 1.2;
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
        // The n-th retry since the last pushback waits
        // min(initialBackoff * multiplier^(n-1), maxBackoff) * random(0.8, 1.2).
        let backoff = (A6_INITIAL_BACKOFF_S * A6_MULTIPLIER.powi(state.backoffs as i32))
            .min(A6_MAX_BACKOFF_S);
        state.backoffs += 1;
        let jitter = A6_JITTER_LOW + (A6_JITTER_HIGH - A6_JITTER_LOW) * lock(&self.rng).f64();
        Some(duration_secs(backoff * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, ctx};

    #[test]
    fn grpc_a6_stops_retrying_when_throttled_and_obeys_pushback() {
        let p = GrpcA6::new(&ctx());
        let unavailable = answer(200, &[("grpc-status", "14")]);
        let mut s = A6State::default();
        // Tokens 10 -> 9, 8, 7, 6: retries allowed while tokens > 5. The waits are
        // 0.1, 0.2, 0.4, 0.8 s, each x U(0.8, 1.2).
        for (attempt, backoff) in (1..=4).zip([0.1, 0.2, 0.4, 0.8]) {
            let w = p.after(&mut s, attempt, &unavailable).expect("retry");
            let w = w.as_secs_f64();
            assert!(
                (backoff * 0.8 - 1e-9..=backoff * 1.2 + 1e-9).contains(&w),
                "retry {attempt}: {w}"
            );
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

    #[test]
    fn grpc_a6_backoff_is_capped_at_one_second_and_jittered_both_ways() {
        let p = GrpcA6::new(&ctx());
        let unavailable = answer(200, &[("grpc-status", "14")]);
        let (mut low, mut high) = (f64::MAX, 0.0f64);
        for _ in 0..200 {
            *lock(&p.tokens) = 10.0;
            // The fifth retry of a request: min(0.1 x 2^4, 1) = 1 s.
            let mut s = A6State { backoffs: 4 };
            let w = p.after(&mut s, 1, &unavailable).unwrap().as_secs_f64();
            assert!((0.8..=1.2).contains(&w), "{w}");
            low = low.min(w);
            high = high.max(w);
        }
        // Jitter below and above the cap, as A6 says it may be.
        assert!(low < 0.9 && high > 1.1, "{low}..{high}");
    }
}
