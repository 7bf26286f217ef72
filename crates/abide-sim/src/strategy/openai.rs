//! `openai-python` (the official SDK's retry) and `naive` (the cookbook's tenacity recipe,
//! which wraps an SDK call).

use super::looping::{lock, Answer, LoopPolicy};
use super::{duration_secs, effective_status, is_success, ClientContext, SimBody};
use http::Response;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// openai-python
// ---------------------------------------------------------------------------------------

/// `DEFAULT_MAX_RETRIES = 2`, `INITIAL_RETRY_DELAY = 0.5`, `MAX_RETRY_DELAY = 8.0`,
/// `MAX_RETRY_AFTER_DELAY = 2 * 60`: openai/openai-python `src/openai/_constants.py`, read at
/// v3.3.1. The 120 s cap came with v2.52.0 ("honor Retry-After delays up to two minutes",
/// #3555); before it a wait over 60 s fell back to the backoff.
const OPENAI_MAX_RETRIES: u32 = 2;
const OPENAI_INITIAL_RETRY_DELAY: f64 = 0.5;
const OPENAI_MAX_RETRY_DELAY: f64 = 8.0;
const OPENAI_MAX_RETRY_AFTER_DELAY: f64 = 120.0;

/// The SDK's `_should_retry` and `_calculate_retry_timeout`
/// (openai/openai-python `src/openai/_base_client.py`, v3.3.1).
#[derive(Clone, Debug)]
pub(crate) struct OpenAiPython {
    rng: Arc<Mutex<fastrand::Rng>>,
    ctx: ClientContext,
}

impl OpenAiPython {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        Self::with_salt(ctx, 2)
    }

    fn with_salt(ctx: &ClientContext, salt: u64) -> Self {
        OpenAiPython {
            rng: ctx.shared_rng(salt),
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

    /// `_should_retry` on an error response (`retry_after` is its parsed wait).
    fn should_retry(res: &Response<SimBody>, retry_after: Option<f64>) -> bool {
        // A finite stated wait over the cap: "Not retrying because `Retry-After` ... exceeds
        // the maximum"; checked before `x-should-retry`.
        if retry_after.is_some_and(|ra| ra.is_finite() && ra > OPENAI_MAX_RETRY_AFTER_DELAY) {
            return false;
        }
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

    /// One SDK call's decision after `retries_taken` retries: `Some(wait)` to retry, `None`
    /// when the call returns (a success) or raises (anything else).
    fn decide(&self, retries_taken: u32, answer: &Answer) -> Option<Duration> {
        if retries_taken >= OPENAI_MAX_RETRIES {
            return None;
        }
        let retry_after = match answer {
            Ok(res) if is_success(res) => return None,
            Ok(res) => {
                let retry_after = self.retry_after(res);
                if !Self::should_retry(res, retry_after) {
                    return None;
                }
                retry_after
            }
            // APIConnectionError and timeouts are retried, with no header to read.
            Err(_) => None,
        };
        // _calculate_retry_timeout: honour 0 < wait <= 120 s, else the jittered backoff.
        if let Some(ra) = retry_after {
            if ra.is_finite() && ra > 0.0 && ra <= OPENAI_MAX_RETRY_AFTER_DELAY {
                return Some(duration_secs(ra));
            }
        }
        let sleep = (OPENAI_INITIAL_RETRY_DELAY * 2f64.powi(retries_taken as i32))
            .min(OPENAI_MAX_RETRY_DELAY);
        let jitter = 1.0 - 0.25 * lock(&self.rng).f64();
        Some(duration_secs(sleep * jitter))
    }
}

impl LoopPolicy for OpenAiPython {
    type State = ();

    fn after(&self, _: &mut (), attempt: u32, answer: &Answer) -> Option<Duration> {
        self.decide(attempt - 1, answer)
    }
}

// ---------------------------------------------------------------------------------------
// naive: the OpenAI cookbook's tenacity recipe around an SDK call
// ---------------------------------------------------------------------------------------

/// `stop_after_attempt(6)`: openai-cookbook `examples/How_to_handle_rate_limits.ipynb`
/// ("Example #1: Using the Tenacity library"), whose decorated function returns
/// `client.chat.completions.create(**kwargs)` of `client = OpenAI()`.
const NAIVE_ATTEMPTS: u32 = 6;
/// `wait_random_exponential(min=1, max=60)`: same notebook; multiplier 1 and exp_base 2 are
/// tenacity's defaults (jd/tenacity `tenacity/wait.py`, `wait_exponential.__init__`).
const NAIVE_MIN_S: f64 = 1.0;
const NAIVE_MAX_S: f64 = 60.0;

/// tenacity's `@retry(wait=..., stop=...)` with no `retry=`: every exception is retried.
/// Each attempt is a whole openai-python call, whose own retries run inside it; the SDK
/// raises on whatever it does not return as a success, so tenacity sees every failure.
#[derive(Clone, Debug)]
pub(crate) struct Naive {
    sdk: OpenAiPython,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl Naive {
    pub(crate) fn new(ctx: &ClientContext) -> Self {
        Naive {
            sdk: OpenAiPython::with_salt(ctx, 7),
            rng: ctx.shared_rng(1),
        }
    }

    /// tenacity `wait_random_exponential.__call__` after attempt `attempt_number` failed:
    /// `uniform(min, max(max(0, min), min(multiplier * 2^(attempt_number - 1), max)))`.
    fn wait(&self, attempt_number: u32) -> Duration {
        let exponent = attempt_number.saturating_sub(1).min(1_000) as i32;
        let high = NAIVE_MIN_S.max(2f64.powi(exponent).min(NAIVE_MAX_S));
        let u = lock(&self.rng).f64();
        duration_secs(NAIVE_MIN_S + u * (high - NAIVE_MIN_S))
    }
}

/// Where a naive request is: which tenacity attempt, and how many SDK retries it took.
#[derive(Debug, Default)]
pub(crate) struct NaiveState {
    /// tenacity attempts that raised.
    calls_failed: u32,
    /// Retries the current SDK call has taken.
    sdk_retries: u32,
}

impl LoopPolicy for Naive {
    type State = NaiveState;

    fn after(&self, state: &mut NaiveState, _attempt: u32, answer: &Answer) -> Option<Duration> {
        if matches!(answer, Ok(r) if is_success(r)) {
            return None;
        }
        if let Some(wait) = self.sdk.decide(state.sdk_retries, answer) {
            state.sdk_retries += 1;
            return Some(wait);
        }
        // The SDK call raised: tenacity's turn.
        state.calls_failed += 1;
        state.sdk_retries = 0;
        if state.calls_failed >= NAIVE_ATTEMPTS {
            return None;
        }
        Some(self.wait(state.calls_failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, ctx, refused};

    fn secs(w: Option<Duration>) -> f64 {
        w.expect("a retry").as_secs_f64()
    }

    #[test]
    fn openai_python_honours_waits_up_to_two_minutes_and_stops_after_two_retries() {
        let p = OpenAiPython::new(&ctx());
        let ms = answer(429, &[("retry-after-ms", "1500"), ("retry-after", "9")]);
        assert_eq!(p.after(&mut (), 1, &ms), Some(Duration::from_millis(1500)));
        let secs = answer(429, &[("retry-after", "30")]);
        assert_eq!(p.after(&mut (), 1, &secs), Some(Duration::from_secs(30)));
        let cap = answer(503, &[("retry-after", "120")]);
        assert_eq!(p.after(&mut (), 2, &cap), Some(Duration::from_secs(120)));
        let cap_ms = answer(429, &[("retry-after-ms", "120000")]);
        assert_eq!(p.after(&mut (), 1, &cap_ms), Some(Duration::from_secs(120)));
        assert_eq!(
            p.after(&mut (), 3, &secs),
            None,
            "2 retries, then it raises"
        );
        assert_eq!(p.after(&mut (), 1, &answer(400, &[])), None);
        assert_eq!(
            p.after(&mut (), 1, &answer(429, &[("x-should-retry", "false")])),
            None
        );
        assert!(p
            .after(&mut (), 1, &answer(400, &[("x-should-retry", "true")]))
            .is_some());
        assert!(p.after(&mut (), 1, &refused()).is_some());
    }

    #[test]
    fn openai_python_does_not_retry_a_stated_wait_over_two_minutes() {
        let p = OpenAiPython::new(&ctx());
        for headers in [
            &[("retry-after", "121")][..],
            &[("retry-after-ms", "120001")],
            // The cap is checked before the server's own x-should-retry.
            &[("retry-after", "3600"), ("x-should-retry", "true")],
        ] {
            assert_eq!(
                p.after(&mut (), 1, &answer(429, headers)),
                None,
                "{headers:?}"
            );
        }
        // Zero, negative and non-finite waits are not honoured: the backoff,
        // 0.5 s x 2^1 x (0.75..1] on the second retry.
        for ra in ["0", "-5", "nan", "inf"] {
            let w = secs(p.after(&mut (), 2, &answer(503, &[("retry-after", ra)])));
            assert!((0.75..=1.0).contains(&w), "{ra}: {w}");
        }
        // An HTTP date 90 s after the run's start is honoured (minus the moments this test
        // has taken since `ctx()`).
        let at = httpdate::fmt_http_date(crate::service::sim_epoch() + Duration::from_secs(90));
        let date = answer(429, &[("retry-after", &at)]);
        let w = secs(p.after(&mut (), 1, &date));
        assert!((89.0..=90.0).contains(&w), "{w}");
    }

    #[test]
    fn naive_runs_three_sdk_attempts_inside_each_of_its_six_tenacity_attempts() {
        // A server answering 429 with retry-after-ms: 500 every time. Hand-computed
        // schedule: per tenacity attempt k (1..=6) the SDK sends 3 requests, waiting the
        // honoured 0.5 s twice; after the third fails the call raises and tenacity waits
        // uniform(1, min(2^(k-1), 60)) s; after the 6th call raises, it gives up: 18 sends.
        let p = Naive::new(&ctx());
        let throttled = answer(429, &[("retry-after-ms", "500")]);
        let mut s = NaiveState::default();
        let mut attempt = 1;
        for k in 1..=6u32 {
            for _ in 0..2 {
                assert_eq!(
                    p.after(&mut s, attempt, &throttled),
                    Some(Duration::from_millis(500)),
                    "call {k}"
                );
                attempt += 1;
            }
            let tenacity = p.after(&mut s, attempt, &throttled);
            attempt += 1;
            if k == 6 {
                assert_eq!(tenacity, None, "gives up after 6 calls");
            } else {
                let high = 2f64.powi(k as i32 - 1).max(1.0);
                let w = secs(tenacity);
                assert!((1.0..=high).contains(&w), "after call {k}: {w}");
            }
        }
        assert_eq!(attempt - 1, 18);
    }

    #[test]
    fn naive_gives_up_on_the_sdk_inside_and_on_tenacity_outside() {
        let p = Naive::new(&ctx());
        // No header: the SDK's backoff, 0.5 s x (0.75..1], then 1 s x (0.75..1].
        let mut s = NaiveState::default();
        let w = secs(p.after(&mut s, 1, &answer(503, &[])));
        assert!((0.375..=0.5).contains(&w), "{w}");
        let w = secs(p.after(&mut s, 2, &answer(503, &[])));
        assert!((0.75..=1.0).contains(&w), "{w}");
        // A 400 is not retried by the SDK: tenacity retries it at once after 1 s (its first
        // wait is uniform(1, 1)).
        let mut s = NaiveState::default();
        assert_eq!(
            p.after(&mut s, 1, &answer(400, &[])),
            Some(Duration::from_secs(1))
        );
        assert_eq!((s.calls_failed, s.sdk_retries), (1, 0));
        // A 1-hour Retry-After: the SDK does not retry it, tenacity does after 1..2 s.
        let w = secs(p.after(&mut s, 2, &answer(429, &[("retry-after", "3600")])));
        assert!((1.0..=2.0).contains(&w), "{w}");
        assert_eq!(p.after(&mut s, 3, &answer(200, &[])), None);
    }
}
