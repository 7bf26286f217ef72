//! gRPC status classification: `grpc-status`, `grpc-message`, `grpc-retry-pushback-ms`
//! (gRFC A6) and `grpc-status-details-bin`.

use super::google::DetailHints;
use super::text::contains_any;
use crate::{Class, Classification, Processing};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

// Names as constants: a lookup by `&str` parses the name on every response.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS_BIN: HeaderName = HeaderName::from_static("grpc-status-details-bin");
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// True when the response's content type is gRPC (`application/grpc`, `application/grpc+proto`, ...).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().len() >= 16 && v.as_bytes()[..16].eq_ignore_ascii_case(b"application/grpc")
    })
}

/// What `grpc-retry-pushback-ms` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushback {
    Wait(Duration),
    /// Negative or unparsable: gRFC A6 says the client must not retry.
    DoNotRetry,
}

pub(crate) fn pushback(value: &HeaderValue) -> Pushback {
    let parsed = std::str::from_utf8(value.as_bytes())
        .ok()
        .map(|s| s.trim().parse::<i64>());
    match parsed {
        Some(Ok(ms)) if ms >= 0 => {
            Pushback::Wait(Duration::from_millis(ms.unsigned_abs()).min(super::prose::MAX_WAIT))
        }
        // A positive integer too large to hold is an absurd wait, capped like any other.
        Some(Err(e)) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Pushback::Wait(super::prose::MAX_WAIT)
        }
        _ => {
            tracing::debug!(
                ?value,
                "grpc-retry-pushback-ms negative or unparsable: do not retry"
            );
            Pushback::DoNotRetry
        }
    }
}

/// Classifies gRPC metadata (trailers, or the headers of a trailers-only response).
/// `None` when it has no `grpc-status`.
pub(crate) fn classify_metadata(meta: &HeaderMap) -> Option<Classification> {
    let status = meta.get(GRPC_STATUS)?;
    let code = std::str::from_utf8(status.as_bytes())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let Some(code) = code else {
        tracing::debug!(?status, "unparsable grpc-status");
        return Some(
            Classification::new(Class::ServerError, "grpc: unparsable grpc-status")
                .with_processing(Processing::Ambiguous),
        );
    };
    let message = meta
        .get(GRPC_MESSAGE)
        .map_or(&[][..], HeaderValue::as_bytes);
    let hints = meta
        .get(GRPC_STATUS_DETAILS_BIN)
        .map(|v| details_hints(v.as_bytes()))
        .unwrap_or_default();
    Some(classify_code(
        code,
        message,
        &hints,
        meta.get(GRPC_RETRY_PUSHBACK_MS).map(pushback),
    ))
}

#[cfg(feature = "grpc")]
fn details_hints(bin: &[u8]) -> DetailHints {
    match crate::grpc::decode_status_details(bin) {
        Ok(d) => d.hints(),
        Err(e) => {
            tracing::debug!(error = %e, "grpc-status-details-bin ignored");
            DetailHints::default()
        }
    }
}

#[cfg(not(feature = "grpc"))]
fn details_hints(_bin: &[u8]) -> DetailHints {
    DetailHints::default()
}

/// The verdict for a gRPC status code with its message, details and pushback.
pub(crate) fn classify_code(
    code: i32,
    message: &[u8],
    hints: &DetailHints,
    pushback: Option<Pushback>,
) -> Classification {
    let mut c = match code {
        0 => return Classification::new(Class::Success, "grpc: OK"),
        // RESOURCE_EXHAUSTED: the details tell a short-window limit from a quota.
        8 => resource_exhausted(message, hints),
        14 => if contains_any(message, &["overloaded", "high demand", "capacity"]) {
            Classification::new(Class::Overloaded, "grpc: UNAVAILABLE, overloaded")
        } else {
            Classification::new(Class::ServerError, "grpc: UNAVAILABLE")
        }
        .with_retry_after(hints.retry_delay),
        4 => Classification::new(Class::ServerError, "grpc: DEADLINE_EXCEEDED"),
        10 => Classification::new(Class::ServerError, "grpc: ABORTED")
            .with_processing(Processing::NotProcessed),
        13 | 15 => Classification::new(Class::ServerError, "grpc: INTERNAL/DATA_LOSS"),
        16 => Classification::new(Class::AuthError, "grpc: UNAUTHENTICATED"),
        7 => Classification::new(Class::AuthError, "grpc: PERMISSION_DENIED"),
        1 => Classification::new(Class::ClientError, "grpc: CANCELLED")
            .with_processing(Processing::Ambiguous),
        3 | 5 | 6 | 9 | 11 | 12 => Classification::new(Class::ClientError, "grpc: request error"),
        // UNKNOWN and codes from the future.
        _ => Classification::new(Class::ServerError, "grpc: UNKNOWN"),
    };
    match pushback {
        Some(Pushback::Wait(wait)) if c.retryable => c.retry_after = Some(wait),
        Some(Pushback::Wait(_)) => {}
        Some(Pushback::DoNotRetry) => {
            c = if c.class == Class::RateLimited {
                Classification::new(Class::QuotaExhausted, "grpc: negative retry pushback")
                    .with_scope(c.scope)
            } else {
                c.with_retryable(false)
            };
        }
        None => {}
    }
    super::settle_calendar(c)
}

fn resource_exhausted(message: &[u8], hints: &DetailHints) -> Classification {
    // tonic and grpc-go use RESOURCE_EXHAUSTED for oversized messages: the request must change.
    if contains_any(
        message,
        &["larger than max", "message too large", "exceeds maximum"],
    ) {
        return Classification::new(
            Class::ClientError,
            "grpc: RESOURCE_EXHAUSTED, message too large",
        );
    }
    // Structured details first, then what the message says, else a transient limit.
    hints
        .verdict()
        .or_else(|| super::phrases::quota_phrase(message))
        .unwrap_or_else(|| {
            Classification::new(Class::RateLimited, "grpc: RESOURCE_EXHAUSTED")
                .with_scope(super::phrases::scope_from_text(message))
        })
}

/// Decodes base64 (standard or URL-safe alphabet, padding optional), as gRPC `-bin`
/// metadata is sent. `None` on any invalid byte.
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
pub(crate) fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let trimmed = input.trim_ascii();
    let end = trimmed
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |p| p + 1);
    let data = &trimmed[..end];
    if trimmed.len() - end > 2 || data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for &b in chunk {
            acc = (acc << 6) | val(b)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                acc <<= 6;
                out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8]);
            }
            2 => {
                acc <<= 12;
                out.push((acc >> 16) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_accepts_padded_and_unpadded_standard_and_url_safe() {
        assert_eq!(base64_decode(b"aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode(b"aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode(b"aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(
            base64_decode(b"-_8").as_deref(),
            base64_decode(b"+/8").as_deref()
        );
        assert_eq!(base64_decode(b"").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode(b"a"), None);
        assert_eq!(base64_decode(b"a*bc"), None);
        assert_eq!(base64_decode(b"aGk==="), None);
    }

    #[test]
    fn pushback_follows_grfc_a6() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(
            pushback(&v("250")),
            Pushback::Wait(Duration::from_millis(250))
        );
        assert_eq!(pushback(&v("-1")), Pushback::DoNotRetry);
        assert_eq!(pushback(&v("soon")), Pushback::DoNotRetry);
    }
}
