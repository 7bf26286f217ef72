//! `async-openai`: the retry the Rust crate's client runs by default since 0.37.0,
//! `OpenAIRetryLayer::default()` (64bit/async-openai
//! `async-openai/src/middleware/retry/openai.rs`, `retry_request`; the client's
//! `ReqwestExecutor` in `async-openai/src/executor.rs` layers it). Read at 0.41.3; the
//! logic is unchanged since 0.37.0 (before it, the `backoff` crate's
//! `ExponentialBackoff::default()`).
//!
//! Differences from a plain "3 retries on 429/5xx" worth knowing, all from that source:
//! - a 429 is retried only when its body parses as OpenAI's `{"error": {"message": ...}}`
//!   and `error.type` is not `insufficient_quota`; any other 429 body ends the request at
//!   once (`OpenAIError::JSONDeserialize`), so a 429 without OpenAI's body is never retried;
//! - `Retry-After` counts only as an integer of seconds (`parse::<u64>()`), on 429 and 5xx
//!   alike, uncapped; a float or a date falls back to the backoff;
//! - the backoff's exponent advances only on the retries that used it.

use super::looping::{Answer, LoopPolicy};
use super::wire::json_view;
use super::SimBody;
use crate::service::ConnectionRefused;
use http::{Response, StatusCode};
use serde::Deserialize;
use std::time::Duration;

/// `OpenAIRetryLayer::default()` is `Self::new(3)`: 3 retries after the first attempt.
const MAX_RETRIES: u32 = 3;
/// `Duration::from_millis(100).saturating_mul(2_u32.saturating_pow(backoff_attempt))`,
/// then `.min(Duration::from_secs(8))`; no jitter.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// `const INSUFFICIENT_QUOTA: &str = "insufficient_quota"`, compared with `error.type`.
const INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// The crate's `WrappedError` (`async-openai/src/error.rs`): what a 429 body must parse as.
#[derive(Deserialize)]
struct WrappedError {
    error: ApiError,
}

/// The crate's `ApiError`: `message` is required, the rest optional strings. Only `type`
/// is read; the others are parsed for their shape (a body without them fails as it does
/// in the crate).
#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "message")]
    _message: String,
    r#type: Option<String>,
    #[serde(rename = "param")]
    _param: Option<String>,
    #[serde(rename = "code")]
    _code: Option<String>,
}

/// The crate's `retry_after`: `Retry-After` as whole seconds.
fn retry_after(res: &Response<SimBody>) -> Option<Duration> {
    res.headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `retry_request`'s classification: `Some(retry_after)` when the answer is retryable.
fn retryable(answer: &Answer) -> Option<Option<Duration>> {
    let res = match answer {
        // `is_connection_error`: reqwest's `is_connect()`; the simulator's only transport
        // error is a refused connection.
        Err(e) => return e.is::<ConnectionRefused>().then_some(None),
        Ok(res) => res,
    };
    // A gRPC answer as an HTTP client behind a JSON gateway sees it.
    let view = json_view(res);
    if view.status.is_success() {
        return None;
    }
    if view.status == StatusCode::TOO_MANY_REQUESTS {
        let wrapped = serde_json::from_slice::<WrappedError>(&view.body).ok()?;
        if wrapped.error.r#type.as_deref() == Some(INSUFFICIENT_QUOTA) {
            return None;
        }
        return Some(retry_after(res));
    }
    view.status.is_server_error().then(|| retry_after(res))
}

/// async-openai's retry loop.
#[derive(Clone, Debug, Default)]
pub(crate) struct AsyncOpenAi;

/// `attempts` (retries taken) and `backoff_attempt` (retries that used the backoff).
#[derive(Debug, Default)]
pub(crate) struct AsyncOpenAiState {
    attempts: u32,
    backoff_attempt: u32,
}

impl LoopPolicy for AsyncOpenAi {
    type State = AsyncOpenAiState;

    fn after(&self, state: &mut AsyncOpenAiState, _: u32, answer: &Answer) -> Option<Duration> {
        let retry_after = retryable(answer)?;
        if state.attempts >= MAX_RETRIES {
            return None;
        }
        let delay = retry_after.unwrap_or_else(|| {
            let delay = INITIAL_BACKOFF.saturating_mul(2u32.saturating_pow(state.backoff_attempt));
            state.backoff_attempt = state.backoff_attempt.saturating_add(1);
            delay.min(MAX_BACKOFF)
        });
        state.attempts += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, answer_with_body, refused};

    const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    const NO_QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    const ANTHROPIC: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit"}}"#;

    fn limited(headers: &[(&str, &str)]) -> Answer {
        answer_with_body(429, headers, RATE_LIMITED)
    }

    #[test]
    fn async_openai_backs_off_100_ms_doubling_without_jitter_then_stops_after_three_retries() {
        let p = AsyncOpenAi;
        let mut s = AsyncOpenAiState::default();
        let waits: Vec<_> = (1..=4).map(|a| p.after(&mut s, a, &limited(&[]))).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(waits, [ms(100), ms(200), ms(400), None]);
        // The cap: the 8th backoff would be 12.8 s.
        let mut s = AsyncOpenAiState {
            attempts: 0,
            backoff_attempt: 7,
        };
        assert_eq!(p.after(&mut s, 1, &limited(&[])), ms(8000));
    }

    #[test]
    fn an_integer_retry_after_is_honoured_uncapped_and_does_not_advance_the_backoff() {
        let p = AsyncOpenAi;
        let mut s = AsyncOpenAiState::default();
        let hour = limited(&[("retry-after", "3600")]);
        assert_eq!(p.after(&mut s, 1, &hour), Some(Duration::from_secs(3600)));
        // Not an integer: the backoff, which starts at 100 ms.
        let float = limited(&[("retry-after", "1.5")]);
        assert_eq!(p.after(&mut s, 2, &float), Some(Duration::from_millis(100)));
        let date = limited(&[("retry-after", "Thu, 01 Jan 2026 00:01:00 GMT")]);
        assert_eq!(p.after(&mut s, 3, &date), Some(Duration::from_millis(200)));
        // On 5xx too.
        let mut s = AsyncOpenAiState::default();
        let busy = answer(503, &[("retry-after", "7")]);
        assert_eq!(p.after(&mut s, 1, &busy), Some(Duration::from_secs(7)));
    }

    #[test]
    fn async_openai_retries_429_5xx_and_refused_connections_only() {
        let p = AsyncOpenAi;
        let retried = |a: Answer| p.after(&mut AsyncOpenAiState::default(), 1, &a).is_some();
        assert!(retried(limited(&[])));
        // Anthropic's error body has the same `error.type`/`error.message` shape.
        assert!(retried(answer_with_body(429, &[], ANTHROPIC)));
        assert!(retried(answer(500, &[])));
        assert!(retried(answer(529, &[])));
        assert!(retried(refused()));
        // insufficient_quota is permanent; a 429 body that is not OpenAI's error fails at
        // once (JSONDeserialize); other statuses are returned.
        assert!(!retried(answer_with_body(429, &[], NO_QUOTA)));
        assert!(!retried(answer_with_body(429, &[], "Too Many Requests")));
        assert!(!retried(answer_with_body(
            429,
            &[],
            r#"{"type":"about:blank","title":"Too Many Requests","status":429}"#
        )));
        assert!(!retried(answer(403, &[])));
        assert!(!retried(answer(408, &[])));
        assert!(!retried(answer(200, &[])));
        // gRPC through a JSON gateway: RESOURCE_EXHAUSTED is a 429 with a google.rpc.Status
        // body (no `error` key): not retried; UNAVAILABLE is a 503: retried.
        assert!(!retried(answer(200, &[("grpc-status", "8")])));
        assert!(retried(answer(200, &[("grpc-status", "14")])));
    }
}
