//! Waits stated in an error body's fields, in whatever unit the field names: seconds
//! (Discord `retry_after: 64.57`), milliseconds (`retryAfterMs`), durations (`"38s"`),
//! instants (`retry_at: "2026-11-27T03:05:00Z"`) and epochs in seconds or milliseconds
//! (`banned_until: 1659146400000`), measured from the response's reference instant.

use super::prose::{self, MAX_WAIT};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a field states its wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// A delay in seconds (a number, a numeric string or a duration string).
    Secs,
    /// A delay in milliseconds.
    Millis,
    /// An instant: RFC 3339 / HTTP-date text or an epoch in seconds or milliseconds.
    Instant,
    /// A reset that is a delay or an epoch, told apart by magnitude (`reset: 30`,
    /// `x-ratelimit-reset: 1741305600000`).
    Reset,
}

/// The unit a field name says its wait is in, or `None` when it states no wait. Names
/// are compared lowercased without `_` and `-`, so `retry_after`, `retryAfter` and
/// `Retry-After` are one name.
fn unit_of(key: &str) -> Option<Unit> {
    let mut buf = [0u8; 32];
    let mut len = 0;
    for b in key.bytes().filter(|b| !matches!(b, b'_' | b'-')) {
        if len == buf.len() {
            return None;
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    let norm = std::str::from_utf8(&buf[..len]).ok()?;
    Some(match norm {
        "retryafter" | "retryafterseconds" | "retryaftersecs" | "retryin" | "retryinseconds"
        | "waitseconds" | "waitsecs" | "waittime" | "resetafter" | "resetin" | "resetinseconds"
        | "backoff" | "backoffseconds" | "cooldown" | "cooldownseconds" | "throttleseconds"
        // Hugging Face 503 while a model loads: `"estimated_time": 20.0`.
        | "estimatedtime" => {
            Unit::Secs
        }
        "retryafterms" | "retryaftermillis" | "retryinms" | "waitms" | "resetafterms"
        | "resetinms" | "backoffms" | "retrydelayms" | "cooldownms" => Unit::Millis,
        "retryat" | "retrytime" | "resetat" | "resetsat" | "resettime" | "banneduntil"
        | "blockeduntil" | "banexpiresat" | "banexpires" | "availableat" | "nextattemptat"
        | "throttleduntil" | "retryafterdate"
        // Akamai 429s: `"rateLimitNext": "2023-11-08T05:49:55.123456Z"`.
        | "ratelimitnext" => Unit::Instant,
        "reset" | "xratelimitreset" | "ratelimitreset" => Unit::Reset,
        _ => return None,
    })
}

/// Reads the wait a field states, if its name says it states one. Values of the wrong
/// type, negative or non-finite numbers and unparsable text give `None`; absurd waits
/// are capped at [`MAX_WAIT`].
pub(crate) fn field_wait(key: &str, value: &Value, now: SystemTime) -> Option<Duration> {
    let unit = unit_of(key)?;
    let wait = match (unit, value) {
        (_, Value::Number(n)) => number_wait(unit, n.as_f64()?, now),
        (Unit::Instant | Unit::Reset, Value::String(s)) => text_instant(s, now).or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .and_then(|x| number_wait(unit, x, now))
        }),
        (Unit::Secs, Value::String(s)) => prose::parse_duration(s).or_else(|| {
            s.trim()
                .parse::<f64>()
                .ok()
                .and_then(|x| number_wait(unit, x, now))
        }),
        (Unit::Millis, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|x| number_wait(unit, x, now)),
        _ => None,
    }?;
    Some(wait.min(MAX_WAIT))
}

fn number_wait(unit: Unit, x: f64, now: SystemTime) -> Option<Duration> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let capped = |secs: f64| Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64()));
    Some(match unit {
        Unit::Secs => capped(x),
        Unit::Millis => capped(x / 1000.0),
        Unit::Instant => epoch_wait(x, now),
        // Below 10^9 (about 30 years of seconds) a reset is a delay, else an epoch.
        Unit::Reset if x < 1e9 => capped(x),
        Unit::Reset => epoch_wait(x, now),
    })
}

/// Time from `now` to an epoch stated in seconds, or in milliseconds when it is too
/// large to be seconds (above 10^11: the year 5138). An instant already past is zero.
pub(crate) fn epoch_wait(x: f64, now: SystemTime) -> Duration {
    let secs = if x >= 1e11 { x / 1000.0 } else { x };
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Duration::from_secs_f64((secs - now).clamp(0.0, MAX_WAIT.as_secs_f64()))
}

/// Time from `now` to an RFC 3339 or HTTP-date instant.
pub(crate) fn text_instant(s: &str, now: SystemTime) -> Option<Duration> {
    let t = abide_headers::parse_instant(s)?;
    Some(t.duration_since(now).unwrap_or_default().min(MAX_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn wait(key: &str, v: Value) -> Option<u128> {
        field_wait(key, &v, now()).map(|d| d.as_millis())
    }

    #[test]
    fn field_names_give_the_unit() {
        // Discord (discord.com/developers/docs/topics/rate-limits, "Exceeding A Rate Limit").
        assert_eq!(wait("retry_after", json!(64.57)), Some(64_570));
        assert_eq!(wait("retryAfter", json!("12")), Some(12_000));
        assert_eq!(wait("retry_after", json!("38s")), Some(38_000));
        assert_eq!(wait("retryAfterMs", json!(1500)), Some(1_500));
        assert_eq!(wait("wait_ms", json!("250")), Some(250));
        assert_eq!(
            wait("retry_at", json!("2023-11-14T22:14:20Z")),
            Some(60_000)
        );
        assert_eq!(
            wait("banned_until", json!(1_700_000_030_000u64)),
            Some(30_000)
        );
        assert_eq!(wait("banned_until", json!(1_700_000_045u64)), Some(45_000));
        assert_eq!(wait("reset", json!(30)), Some(30_000));
        assert_eq!(
            wait("X-RateLimit-Reset", json!("1700000010000")),
            Some(10_000)
        );
        // An instant already past is no wait.
        assert_eq!(wait("retry_at", json!("2000-01-01T00:00:00Z")), Some(0));
    }

    #[test]
    fn malformed_wait_fields_are_ignored() {
        assert_eq!(wait("retry_after", json!(-5)), None);
        assert_eq!(wait("retry_after", json!("soon")), None);
        assert_eq!(wait("retry_after", json!([1])), None);
        assert_eq!(wait("retry_at", json!("next tuesday")), None);
        assert_eq!(wait("message", json!(5)), None);
        assert_eq!(wait(&"x".repeat(100), json!(5)), None);
        assert_eq!(
            wait("retry_after", json!(1e300)),
            Some(MAX_WAIT.as_millis())
        );
    }
}
