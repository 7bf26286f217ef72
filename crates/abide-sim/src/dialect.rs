//! What the simulated server's answers look like on the wire, per vendor: status, headers
//! (rendered with [`abide_headers::render`]) and the error bodies those vendors send.

use crate::model::{Decision, Outcome, Scope as LimitScope};
use abide_headers::{render, Dialect};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, DATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use std::fmt;
use std::time::SystemTime;

/// The header and body conventions of the simulated API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub enum SimDialect {
    /// IETF `RateLimit-Policy` + `RateLimit` (draft 08 and later); RFC 9457 problem bodies.
    #[serde(rename = "ietf")]
    Ietf,
    /// IETF draft 07 `RateLimit: limit=, remaining=, reset=` (Honeycomb).
    #[serde(rename = "ietf-draft07")]
    IetfDraft07,
    /// IETF drafts 00–03 `RateLimit-Limit/-Remaining/-Reset`.
    #[serde(rename = "ietf-draft03")]
    IetfDraft03,
    /// `X-RateLimit-Limit/-Remaining/-Reset`.
    #[serde(rename = "x-ratelimit")]
    XRateLimit,
    /// OpenAI: `x-ratelimit-*-requests/-tokens`, `retry-after-ms`, OpenAI error bodies
    /// (`rate_limit_exceeded`, `insufficient_quota`).
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic: `anthropic-ratelimit-*`, `rate_limit_error`, 529 `overloaded_error`.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// GitHub: `x-ratelimit-*` with epoch resets and `x-ratelimit-resource: core`; the
    /// primary limit answers 403 with `remaining: 0`, as GitHub mostly does.
    #[serde(rename = "github")]
    GitHub,
    /// gRPC (trailers-only answers): `grpc-status`, `grpc-message`,
    /// `grpc-retry-pushback-ms`; no rate-limit headers.
    #[serde(rename = "grpc")]
    Grpc,
    /// Only `Retry-After` on 429s.
    #[serde(rename = "retry-after-only")]
    RetryAfterOnly,
    /// No rate-limit headers at all, not even `Retry-After`.
    #[serde(rename = "none")]
    None,
}

impl SimDialect {
    /// Every dialect, in the order scenario files list them.
    pub const ALL: [SimDialect; 10] = [
        SimDialect::Ietf,
        SimDialect::IetfDraft07,
        SimDialect::IetfDraft03,
        SimDialect::XRateLimit,
        SimDialect::OpenAi,
        SimDialect::Anthropic,
        SimDialect::GitHub,
        SimDialect::Grpc,
        SimDialect::RetryAfterOnly,
        SimDialect::None,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            SimDialect::Ietf => "ietf",
            SimDialect::IetfDraft07 => "ietf-draft07",
            SimDialect::IetfDraft03 => "ietf-draft03",
            SimDialect::XRateLimit => "x-ratelimit",
            SimDialect::OpenAi => "openai",
            SimDialect::Anthropic => "anthropic",
            SimDialect::GitHub => "github",
            SimDialect::Grpc => "grpc",
            SimDialect::RetryAfterOnly => "retry-after-only",
            SimDialect::None => "none",
        }
    }

    /// The `abide-headers` dialect the rate-limit headers are rendered in; `None` for
    /// dialects that send no rate-limit headers (`grpc`, `none`).
    pub fn header_dialect(self) -> Option<Dialect> {
        Some(match self {
            SimDialect::Ietf => Dialect::Ietf,
            SimDialect::IetfDraft07 => Dialect::IetfDraft07,
            SimDialect::IetfDraft03 => Dialect::IetfDraft03,
            SimDialect::XRateLimit => Dialect::XRateLimit,
            SimDialect::OpenAi => Dialect::OpenAi,
            SimDialect::Anthropic => Dialect::Anthropic,
            SimDialect::GitHub => Dialect::GitHub,
            SimDialect::RetryAfterOnly => Dialect::RetryAfter,
            SimDialect::Grpc | SimDialect::None => return None,
        })
    }
}

impl fmt::Display for SimDialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// gRPC status codes the simulator sends or its gRPC client maps HTTP answers to (grpc
/// `doc/statuscodes.md`).
pub(crate) mod grpc_code {
    pub(crate) const OK: u32 = 0;
    pub(crate) const UNKNOWN: u32 = 2;
    pub(crate) const INVALID_ARGUMENT: u32 = 3;
    pub(crate) const PERMISSION_DENIED: u32 = 7;
    pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(crate) const UNIMPLEMENTED: u32 = 12;
    pub(crate) const INTERNAL: u32 = 13;
    pub(crate) const UNAVAILABLE: u32 = 14;
    pub(crate) const UNAUTHENTICATED: u32 = 16;
}

const JSON: &str = "application/json";
const PUSHBACK: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Builds the HTTP answer for a decision (everything but a refused connection).
pub(crate) fn response(
    dialect: SimDialect,
    limits_on_429_only: bool,
    decision: &Decision,
    now: SystemTime,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if dialect == SimDialect::Grpc {
        grpc_answer(decision)
    } else {
        http_answer(dialect, decision)
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
        headers.insert(DATE, date);
    }
    match dialect {
        SimDialect::Grpc => grpc_headers(decision, headers),
        SimDialect::None => {}
        _ => {
            if let Some(d) = dialect.header_dialect() {
                let stripped;
                let snapshot =
                    if limits_on_429_only && !matches!(decision.outcome, Outcome::RateLimited(_)) {
                        // Only the wait survives (Retry-After on an overload answer).
                        let mut s = abide_headers::RateLimitSnapshot::new();
                        s.set_retry_after(decision.snapshot.retry_after());
                        stripped = s;
                        &stripped
                    } else {
                        &decision.snapshot
                    };
                if let Err(e) = render(snapshot, d, now, headers) {
                    tracing::debug!(error = %e, "simulated server sends no rate-limit headers");
                }
            }
        }
    }
    if decision.outcome == Outcome::Repeated {
        // Stripe's answer to a repeated key.
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res.extensions_mut().insert(decision.outcome);
    res.extensions_mut()
        .insert(StatedWait(states_a_wait(dialect, decision)));
    res
}

/// Whether an answer says when to come back: a wait (`Retry-After`, its variants, gRPC
/// pushback, a wait in the body), or a spent limit's reset in its headers. A lone caller
/// refused with neither follows the retry layer's schedule for waits nobody stated,
/// and giving up on it is the accepted loss the boards count apart (`gave_up_alone`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StatedWait(pub(crate) bool);

fn states_a_wait(dialect: SimDialect, decision: &Decision) -> bool {
    match dialect {
        // No header, a plain body: nothing is said, whatever the server computed.
        SimDialect::None => false,
        SimDialect::Grpc | SimDialect::RetryAfterOnly => decision.snapshot.retry_after().is_some(),
        // A wait, or a spent limit's reset; headers that say quota remains while the
        // server refuses say nothing of when it will not.
        _ => decision.snapshot.wait().is_some(),
    }
}

fn grpc_headers(decision: &Decision, headers: &mut http::HeaderMap) {
    let (code, message) = match decision.outcome {
        Outcome::Served | Outcome::Repeated => (grpc_code::OK, None),
        Outcome::RateLimited(_) => (grpc_code::RESOURCE_EXHAUSTED, Some("rate limit exceeded")),
        Outcome::TooLarge => (
            grpc_code::INVALID_ARGUMENT,
            Some("request too large: its tokens exceed the whole limit; reduce the input or output tokens"),
        ),
        Outcome::QuotaExhausted => (
            grpc_code::RESOURCE_EXHAUSTED,
            Some("quota exceeded for this project"),
        ),
        Outcome::Overloaded => (grpc_code::UNAVAILABLE, Some("server overloaded")),
        // Outages are the load balancer's HTTP answers, not the service's.
        Outcome::Outage(_) | Outcome::Refused => return,
    };
    headers.insert(GRPC_STATUS, HeaderValue::from(code));
    if let Some(m) = message {
        headers.insert(GRPC_MESSAGE, HeaderValue::from_static(m));
    }
    match decision.outcome {
        // A6: a negative pushback tells the client not to retry: the quota will not return.
        Outcome::QuotaExhausted => {
            headers.insert(PUSHBACK, HeaderValue::from_static("-1"));
        }
        Outcome::TooLarge => {}
        _ => {
            if let Some(wait) = decision.snapshot.retry_after() {
                let ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
                headers.insert(PUSHBACK, HeaderValue::from(ms));
            }
        }
    }
}

fn grpc_answer(decision: &Decision) -> (StatusCode, &'static str, String) {
    match decision.outcome {
        Outcome::Outage(status) => outage_answer(status),
        // Trailers-only answers: HTTP 200, the status in `grpc-status`.
        _ => (StatusCode::OK, "application/grpc", String::new()),
    }
}

fn outage_answer(status: StatusCode) -> (StatusCode, &'static str, String) {
    match status.as_u16() {
        502 => (
            status,
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n".into(),
        ),
        504 => (
            status,
            "text/html",
            "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>\n".into(),
        ),
        503 => (
            status,
            "text/plain",
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure".into(),
        ),
        529 => (status, JSON, anthropic_error("overloaded_error", "Overloaded")),
        _ => (
            status,
            JSON,
            openai_error(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
        ),
    }
}

fn http_answer(dialect: SimDialect, decision: &Decision) -> (StatusCode, &'static str, String) {
    let wait_ms = decision
        .snapshot
        .retry_after()
        .map(|w| w.as_millis())
        .unwrap_or(0);
    match decision.outcome {
        Outcome::Served | Outcome::Repeated => (StatusCode::OK, JSON, served_body(dialect)),
        Outcome::Outage(status) => outage_answer(status),
        Outcome::Refused => (StatusCode::SERVICE_UNAVAILABLE, JSON, String::new()),
        Outcome::RateLimited(scope) => rate_limited(dialect, decision, scope, wait_ms),
        Outcome::Overloaded => match dialect {
            SimDialect::OpenAi => (
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                JSON,
                openai_error(
                    "The server is overloaded or not ready yet.",
                    "server_error",
                    None,
                ),
            ),
            _ => (
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                JSON,
                anthropic_error("overloaded_error", "Overloaded"),
            ),
        },
        Outcome::QuotaExhausted => match dialect {
            SimDialect::Anthropic => (
                StatusCode::BAD_REQUEST,
                JSON,
                anthropic_error(
                    "invalid_request_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                ),
            ),
            // The shape the issue names for every other HTTP dialect: OpenAI's.
            _ => (
                StatusCode::TOO_MANY_REQUESTS,
                JSON,
                openai_error(
                    "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    "insufficient_quota",
                    Some("insufficient_quota"),
                ),
            ),
        },
        Outcome::TooLarge => {
            let (limit, requested) = decision.too_large.unwrap_or_default();
            (
                StatusCode::TOO_MANY_REQUESTS,
                JSON,
                openai_error(
                    &format!("Request too large for sim-model in organization org-sim on tokens per min (TPM): Limit {limit}, Requested {requested}. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more."),
                    "tokens",
                    Some("rate_limit_exceeded"),
                ),
            )
        }
    }
}

fn rate_limited(
    dialect: SimDialect,
    decision: &Decision,
    scope: LimitScope,
    wait_ms: u128,
) -> (StatusCode, &'static str, String) {
    let (limit, used) = decision.hit.unwrap_or_default();
    let daily = matches!(scope, LimitScope::RequestsPerDay | LimitScope::TokensPerDay);
    match dialect {
        SimDialect::OpenAi => {
            let (what, short) = match scope {
                LimitScope::Requests => ("requests", "requests per min (RPM)"),
                LimitScope::Tokens => ("tokens", "tokens per min (TPM)"),
                LimitScope::RequestsPerDay => ("requests", "requests per day (RPD)"),
                LimitScope::TokensPerDay => ("tokens", "tokens per day (TPD)"),
            };
            // OpenAI words a daily wait in seconds ("try again in 8.64s"), a window's in ms.
            let wait = if daily {
                format!("{}s", wait_ms as f64 / 1000.0)
            } else {
                format!("{wait_ms}ms")
            };
            (
                StatusCode::TOO_MANY_REQUESTS,
                JSON,
                openai_error(
                    &format!("Rate limit reached for sim-model in organization org-sim on {short}: Limit {limit}, Used {used}, Requested 1. Please try again in {wait}. Visit https://platform.openai.com/account/rate-limits to learn more."),
                    what,
                    Some("rate_limit_exceeded"),
                ),
            )
        }
        SimDialect::Anthropic => {
            let what = match scope {
                LimitScope::Requests => "requests per minute",
                LimitScope::Tokens => "input tokens per minute",
                LimitScope::RequestsPerDay => "requests per day",
                LimitScope::TokensPerDay => "input tokens per day",
            };
            (
                StatusCode::TOO_MANY_REQUESTS,
                JSON,
                anthropic_error(
                    "rate_limit_error",
                    &format!("This request would exceed the rate limit for your organization (org-sim) of {limit} {what}. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."),
                ),
            )
        }
        SimDialect::GitHub => (
            StatusCode::FORBIDDEN,
            JSON,
            r#"{"message":"API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID SIM:0000:0000000:0000000:00000000.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api","status":"403"}"#.into(),
        ),
        SimDialect::RetryAfterOnly | SimDialect::None => (
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain",
            "Too Many Requests".into(),
        ),
        _ => (
            StatusCode::TOO_MANY_REQUESTS,
            "application/problem+json",
            format!(
                r#"{{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"quota of {limit} per {} exceeded"}}"#,
                if daily { "day" } else { "window" }
            ),
        ),
    }
}

fn served_body(dialect: SimDialect) -> String {
    match dialect {
        SimDialect::OpenAi => r#"{"id":"chatcmpl-sim","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#.into(),
        SimDialect::Anthropic => r#"{"id":"msg_sim","type":"message","role":"assistant","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn"}"#.into(),
        _ => r#"{"ok":true}"#.into(),
    }
}

/// A JSON string literal (quoted and escaped).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// OpenAI's error object, keys in the order OpenAI sends them.
fn openai_error(message: &str, kind: &str, code: Option<&str>) -> String {
    let code = code.map_or_else(|| "null".to_owned(), q);
    format!(
        r#"{{"error":{{"message":{},"type":{},"param":null,"code":{code}}}}}"#,
        q(message),
        q(kind)
    )
}

/// Anthropic's error object, keys in the order Anthropic sends them.
fn anthropic_error(kind: &str, message: &str) -> String {
    format!(
        r#"{{"type":"error","error":{{"type":{},"message":{}}}}}"#,
        q(kind),
        q(message)
    )
}
