//! A retry budget shared by every clone of a service.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Budget amounts are kept in thousandths of a retry, so a 20 % ratio is exact.
const MILLI: u64 = 1000;

/// How many retries may be made, shared by every service built from one layer: a token
/// bucket in the spirit of gRPC's retry throttling (A6) and Finagle's `RetryBudget`.
///
/// Every request that ends in success deposits `ratio` of a retry; the bucket also refills
/// at `floor_per_sec` retries per second whatever the traffic, so a quiet client can still
/// retry; each retry withdraws one. The balance is capped at `max_balance`, and starts full.
/// During an outage where every request fails, the retries are therefore bounded by
/// `max_balance + floor_per_sec × seconds`, however many requests are sent: an outage
/// cannot multiply the load on a struggling server.
///
/// The default is 20 % of successes (Finagle's `percentCanRetry`), a floor of 10 retries per
/// second (Finagle's `minRetriesPerSec`) and a balance of at most 100 retries (ten seconds
/// of the floor, like Finagle's ten-second window): generous for one client process, tight
/// enough that a fleet in an outage adds at most about a fifth to its normal load.
///
/// ```
/// use abide_retry::{BackoffRetryLayer, RetryBudget};
///
/// let budget = RetryBudget::new(0.1, 5, 50);
/// let layer = BackoffRetryLayer::new().with_budget(budget.clone());
/// assert_eq!(budget.balance(), 50.0);
/// # drop(layer);
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    deposit: u64,
    floor_per_sec: u64,
    max: u64,
    /// Deposits not yet folded into the balance: successes only touch this atomic.
    pending: AtomicU64,
    state: Mutex<State>,
}

struct State {
    balance: u64,
    refilled: Option<Instant>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(0.2, 10, 100)
    }
}

impl RetryBudget {
    /// A budget of `ratio` retries per successful request (0.2 = 20 %), plus
    /// `floor_per_sec` retries per second, holding at most `max_balance` retries.
    ///
    /// `ratio` is cut to `0.0..=10.0` (NaN is 0); `max_balance` is at least 1.
    pub fn new(ratio: f64, floor_per_sec: u32, max_balance: u32) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 10.0)
        };
        let max = u64::from(max_balance.max(1)) * MILLI;
        RetryBudget {
            inner: Arc::new(Inner {
                // In range: ratio <= 10 so this is at most 10_000.
                deposit: (ratio * MILLI as f64).round() as u64,
                floor_per_sec: u64::from(floor_per_sec) * MILLI,
                max,
                pending: AtomicU64::new(0),
                state: Mutex::new(State {
                    balance: max,
                    refilled: None,
                }),
            }),
        }
    }

    /// The retries available now.
    pub fn balance(&self) -> f64 {
        let mut state = self.lock();
        self.refill(&mut state);
        state.balance as f64 / MILLI as f64
    }

    /// Credits one successful request.
    pub(crate) fn deposit(&self) {
        if self.inner.deposit > 0 {
            self.inner.pending.fetch_add(self.inner.deposit, Relaxed);
        }
    }

    /// Takes one retry from the budget; `false` when there is none.
    pub(crate) fn try_withdraw(&self) -> bool {
        let mut state = self.lock();
        self.refill(&mut state);
        if state.balance >= MILLI {
            state.balance -= MILLI;
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the balance inconsistent: recover it.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refill(&self, state: &mut State) {
        let now = Instant::now();
        let deposits = self.inner.pending.swap(0, Relaxed);
        let mut floor = 0;
        if let Some(last) = state.refilled {
            let micros =
                u64::try_from(now.saturating_duration_since(last).as_micros()).unwrap_or(u64::MAX);
            floor = micros.saturating_mul(self.inner.floor_per_sec) / 1_000_000;
        }
        // Only move the refill instant when the floor produced something, so frequent
        // calls do not lose fractions of a token to rounding.
        if state.refilled.is_none() || floor > 0 || self.inner.floor_per_sec == 0 {
            state.refilled = Some(now);
        }
        let add = deposits.saturating_add(floor);
        state.balance = state.balance.saturating_add(add).min(self.inner.max);
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &(self.inner.deposit as f64 / MILLI as f64))
            .field("floor_per_sec", &(self.inner.floor_per_sec / MILLI))
            .field("max_balance", &(self.inner.max / MILLI))
            .field("balance", &self.balance())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_allows_max_balance_retries_then_refuses() {
        let b = RetryBudget::new(0.0, 0, 3);
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(
            !b.try_withdraw(),
            "no floor, no successes: nothing comes back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn successes_deposit_their_ratio() {
        let b = RetryBudget::new(0.2, 0, 10);
        while b.try_withdraw() {}
        for _ in 0..4 {
            b.deposit();
        }
        assert!(
            !b.try_withdraw(),
            "four successes at 20% make 0.8 of a retry"
        );
        b.deposit();
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_refills_with_time_up_to_the_cap() {
        let b = RetryBudget::new(0.0, 2, 5);
        while b.try_withdraw() {}
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(!b.try_withdraw());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.try_withdraw());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(b.balance(), 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn frequent_checks_do_not_starve_the_floor() {
        let b = RetryBudget::new(0.0, 1, 1);
        while b.try_withdraw() {}
        // Checking every 10 ms must still yield one retry per second.
        let mut got = 0;
        for _ in 0..300 {
            tokio::time::advance(Duration::from_millis(10)).await;
            if b.try_withdraw() {
                got += 1;
            }
        }
        assert_eq!(got, 3);
    }

    #[test]
    fn absurd_budget_values_are_capped() {
        let b = RetryBudget::new(f64::NAN, 0, 0);
        assert_eq!(b.inner.deposit, 0);
        assert_eq!(b.inner.max, MILLI);
        assert_eq!(RetryBudget::new(1e9, 0, 1).inner.deposit, 10 * MILLI);
    }
}
