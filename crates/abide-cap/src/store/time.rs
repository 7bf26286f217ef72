//! Instant arithmetic that never overflows, whatever a server or a config says.

use std::time::Duration;
use tokio::time::Instant;

/// The longest span any computed instant is pushed into the future; keeps `Instant`
/// arithmetic far from overflow whatever a server or a config says.
pub(super) const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub(super) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by.min(MAX_SPAN)).unwrap_or(at)
}

pub(super) fn since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

/// `span * units / per`, capped, without overflow.
pub(super) fn scale(span_ns: u64, units: u64, per: u64) -> Duration {
    let ns = u128::from(span_ns) * u128::from(units) / u128::from(per.max(1));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)).min(MAX_SPAN)
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
