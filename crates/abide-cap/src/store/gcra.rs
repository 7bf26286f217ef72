//! Declared quotas: GCRA with reservation (the algorithm `governor` implements; ours
//! reserves a future slot, which `governor` cannot).

use super::time::{later, nanos, scale};
use governor::Quota;
use tokio::time::Instant;

/// GCRA with reservation: the earliest start of `units` at or after `at`, and the new
/// theoretical arrival time. `None` when `units` exceeds the burst (it never conforms).
pub(super) fn gcra(
    tat: Option<Instant>,
    at: Instant,
    units: u64,
    quota: &Quota,
) -> Option<(Instant, Instant)> {
    let burst = u64::from(quota.burst_size().get());
    if units > burst {
        return None;
    }
    let t = nanos(quota.replenish_interval());
    let increment = scale(t, units, 1);
    let tolerance = scale(t, burst, 1);
    let tat = tat.unwrap_or(at);
    let needed = later(tat, increment);
    let start = match needed.checked_sub(tolerance) {
        Some(earliest) if earliest > at => earliest,
        _ => at,
    };
    Some((start, later(tat.max(start), increment)))
}
