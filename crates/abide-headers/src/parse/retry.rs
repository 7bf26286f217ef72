//! The explicit wait: `retry-after-ms`, `x-ms-retry-after-ms`, Traefik `X-Retry-In`,
//! `Retry-After`.

use super::{names, Cx};
use crate::value::{self, ValueError};
use std::time::Duration;

names! {
    RETRY_AFTER_MS = "retry-after-ms";
    X_MS_RETRY_AFTER_MS = "x-ms-retry-after-ms";
    X_RETRY_IN = "x-retry-in";
}

/// Reads the first wait field that parses, most precise first.
///
/// - `retry-after-ms` (OpenAI and Anthropic SDKs) and `x-ms-retry-after-ms` (Azure):
///   milliseconds, read before `Retry-After` as the OpenAI and Azure SDKs do.
/// - `X-Retry-In` (Traefik's rate limiter): a Go duration, more precise than the
///   `Retry-After` it sends alongside.
/// - `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date; fractional
///   seconds tolerated. A date already past is a zero wait.
pub(super) fn read(cx: &mut Cx<'_>) {
    let now = cx.now();
    let wait = cx
        .field(&RETRY_AFTER_MS, value::millis)
        .or_else(|| cx.field(&X_MS_RETRY_AFTER_MS, value::millis))
        .or_else(|| cx.field(&X_RETRY_IN, value::go_duration))
        .or_else(|| cx.field(&http::header::RETRY_AFTER, |s| retry_after(s, now)));
    if let Some(wait) = wait {
        cx.snap.set_retry_after(Some(value::cap(wait)));
    }
}

fn retry_after(s: &str, now: std::time::SystemTime) -> Result<Duration, ValueError> {
    match value::delta_secs(s) {
        Ok(d) => Ok(d),
        Err(ValueError::NotANumber) => value::http_date(s).map(|t| value::until(t, now)),
        Err(e) => Err(e),
    }
}
