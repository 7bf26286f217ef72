//! What the baseline client libraries see of an answer: its status as an HTTP-only library
//! reads it, its body, and the waits it states.

use super::SimBody;
use crate::dialect::grpc_code;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// The `grpc-status` of an answer, when it has one.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The HTTP status an HTTP-only client library effectively sees. A gRPC answer's
/// non-OK `grpc-status` maps as grpc-gateway's `HTTPStatusFromCode` does
/// (grpc-ecosystem/grpc-gateway `runtime/errors.go`): `RESOURCE_EXHAUSTED` -> 429,
/// `UNAVAILABLE` -> 503, anything else -> 500.
pub(crate) fn effective_status(res: &Response<SimBody>) -> StatusCode {
    match grpc_status(res.headers()) {
        Some(grpc_code::OK) | None => res.status(),
        Some(grpc_code::RESOURCE_EXHAUSTED) => StatusCode::TOO_MANY_REQUESTS,
        Some(grpc_code::UNAVAILABLE) => StatusCode::SERVICE_UNAVAILABLE,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// True when an answer is a success for the caller: 2xx and, on gRPC, status OK.
pub fn is_success(res: &Response<SimBody>) -> bool {
    effective_status(res).is_success()
}

/// `s` seconds as a wait: NaN and negative values are no wait, absurd ones are capped
/// (`Duration::from_secs_f64` would panic on them).
pub(crate) fn duration_secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1e9))
    } else {
        Duration::ZERO
    }
}

/// An answer's body bytes. The simulator's bodies are `Full<Bytes>`, complete at once: one
/// poll yields them (a body that is not ready reads as empty).
pub(crate) fn body_bytes(res: &Response<SimBody>) -> Bytes {
    let mut body = res.body().clone();
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// An answer as an HTTP JSON client library sees it: status, media type (lowercase, no
/// parameters) and body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonView {
    pub(crate) status: StatusCode,
    pub(crate) media_type: Option<String>,
    pub(crate) body: Bytes,
}

/// The answer as an HTTP JSON client sees it. A gRPC answer reaches such a client only
/// through a JSON transcoding gateway; it is shown as grpc-gateway shows it
/// (grpc-ecosystem/grpc-gateway `runtime/errors.go`, `DefaultHTTPErrorHandler`): the status
/// of [`effective_status`], `application/json`, and for an error the `google.rpc.Status`
/// object `{"code":N,"message":"...","details":[]}`; a success is the (empty) message `{}`.
pub(crate) fn json_view(res: &Response<SimBody>) -> JsonView {
    if let Some(code) = grpc_status(res.headers()) {
        let body = if code == grpc_code::OK {
            "{}".to_owned()
        } else {
            let message = res
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            serde_json::json!({"code": code, "message": message, "details": []}).to_string()
        };
        return JsonView {
            status: effective_status(res),
            media_type: Some("application/json".to_owned()),
            body: Bytes::from(body),
        };
    }
    let media_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    JsonView {
        status: res.status(),
        media_type,
        body: body_bytes(res),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{answer, answer_with_body};

    #[test]
    fn the_body_of_an_answer_is_read_without_consuming_it() {
        let res = answer_with_body(
            429,
            &[("content-type", "application/json; charset=utf-8")],
            "{\"a\":1}",
        )
        .unwrap();
        assert_eq!(body_bytes(&res), Bytes::from_static(b"{\"a\":1}"));
        let view = json_view(&res);
        assert_eq!(view.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(view.media_type.as_deref(), Some("application/json"));
        assert_eq!(
            view.body,
            body_bytes(&res),
            "reading twice gives the same bytes"
        );
    }

    #[test]
    fn a_grpc_answer_is_seen_as_a_json_gateway_transcodes_it() {
        let res = answer(
            200,
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "8"),
                ("grpc-message", "rate limit exceeded"),
            ],
        )
        .unwrap();
        let view = json_view(&res);
        assert_eq!(view.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(view.media_type.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&view.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": 8, "message": "rate limit exceeded", "details": []})
        );
        let ok = answer(200, &[("grpc-status", "0")]).unwrap();
        assert_eq!(json_view(&ok).body, Bytes::from_static(b"{}"));
        assert!(is_success(&ok));
    }
}
