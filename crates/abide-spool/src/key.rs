//! Fresh `Idempotency-Key` values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// 32 hex digits: 64 random bits from the OS-seeded generator mixed with the time, the
/// process id and a counter, so two processes (or a restarted one) never repeat a key.
pub(crate) fn new_idempotency_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let high = nanos ^ (u64::from(std::process::id()) << 32);
    let low = fastrand::u64(..) ^ count.rotate_left(48);
    format!("{high:016x}{low:016x}")
}
