//! A retry budget shared by every clone of a service.

use crate::striped::Striped;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Budget amounts are kept in thousandths of a retry, so a 20 % ratio is exact.
const MILLI: u64 = 1000;

/// How many retries may be made, shared by every service built from one layer: a token
/// bucket in the spirit of gRPC's retry throttling (A6) and Finagle's `RetryBudget`.
///
/// Every request that ends in success deposits `ratio` of a retry; the bucket also refills
/// at `floor_per_sec` retries per second whatever the traffic, so a quiet client can still
/// retry; each retry withdraws one. The balance is capped at `max_balance`, and starts full.
///
/// The budget bounds the **rate** of retries, it does not drop them: a retry that finds the
/// bucket empty reserves the next token the floor will produce and waits for it (the
/// balance goes below zero while retries queue). A retry that would wait longer than the
/// layer's bound ([`with_max_server_wait`](crate::BackoffRetryLayer::with_max_server_wait),
/// or the time left before the deadline) fails at once with
/// [`BudgetExhausted`](crate::BudgetExhausted), and so does any retry when the floor is 0
/// and the bucket is empty. So during an outage where every request fails, the retries
/// sent by time `t` are at most `max_balance + floor_per_sec × t` however many requests
/// are sent: an outage cannot multiply the load on a struggling server, and the requests
/// it delays are delivered when it recovers instead of being lost.
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
    max: i64,
    /// Deposits not yet folded into the balance: successes only add to this, striped by
    /// thread so concurrent successes do not share a cache line.
    pending: Striped<1>,
    state: Mutex<State>,
}

struct State {
    /// Below zero while retries wait for tokens they reserved.
    balance: i64,
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
        let max = i64::from(max_balance.max(1)) * MILLI as i64;
        RetryBudget {
            inner: Arc::new(Inner {
                // In range: ratio <= 10 so this is at most 10_000.
                deposit: (ratio * MILLI as f64).round() as u64,
                floor_per_sec: u64::from(floor_per_sec) * MILLI,
                max,
                pending: Striped::default(),
                state: Mutex::new(State {
                    balance: max,
                    refilled: None,
                }),
            }),
        }
    }

    /// The retries available now; below zero while retries wait for tokens.
    pub fn balance(&self) -> f64 {
        let mut state = self.lock();
        self.refill(&mut state);
        state.balance as f64 / MILLI as f64
    }

    /// Credits one successful request.
    pub(crate) fn deposit(&self) {
        if self.inner.deposit > 0 {
            self.inner.pending.add(0, self.inner.deposit);
        }
    }

    /// Takes one retry from the budget: `Some(wait)` when the token is there after `wait`
    /// (zero when it is there now), `None` when it would take longer than `max_wait` or
    /// can never come from the floor. Only a `Some` takes the token.
    pub(crate) fn reserve(&self, max_wait: Duration) -> Option<Duration> {
        let mut state = self.lock();
        self.refill(&mut state);
        let milli = MILLI as i64;
        if state.balance >= milli {
            state.balance -= milli;
            return Some(Duration::ZERO);
        }
        if self.inner.floor_per_sec == 0 {
            return None;
        }
        // Thousandths of a retry still missing, produced at `floor_per_sec` per second.
        let missing = u64::try_from(milli - state.balance).unwrap_or(u64::MAX);
        let micros = missing
            .saturating_mul(1_000_000)
            .div_ceil(self.inner.floor_per_sec);
        let wait = Duration::from_micros(micros);
        if wait > max_wait {
            return None;
        }
        state.balance -= milli;
        Some(wait)
    }

    /// Gives back a token taken by [`reserve`](Self::reserve) for a retry that was never
    /// sent (its request was dropped or ended while it waited): a cancelled retry must not
    /// make later ones wait.
    pub(crate) fn refund(&self) {
        let mut state = self.lock();
        self.refill(&mut state);
        state.balance = state
            .balance
            .saturating_add(MILLI as i64)
            .min(self.inner.max);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the balance inconsistent: recover it.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refill(&self, state: &mut State) {
        let now = Instant::now();
        let deposits = self.inner.pending.take(0);
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
        let add = i64::try_from(deposits.saturating_add(floor)).unwrap_or(i64::MAX);
        state.balance = state.balance.saturating_add(add).min(self.inner.max);
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ratio", &(self.inner.deposit as f64 / MILLI as f64))
            .field("floor_per_sec", &(self.inner.floor_per_sec / MILLI))
            .field("max_balance", &(self.inner.max / MILLI as i64))
            .field("balance", &self.balance())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::ZERO;
    const LONG: Duration = Duration::from_secs(3600);

    impl RetryBudget {
        fn try_withdraw(&self) -> bool {
            self.reserve(NOW).is_some()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_allows_max_balance_retries_then_refuses() {
        let b = RetryBudget::new(0.0, 0, 3);
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            b.reserve(LONG),
            None,
            "no floor, no successes: nothing comes back, so nothing is worth waiting for"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_queues_retries_at_the_floor_rate_up_to_the_wait_bound() {
        let b = RetryBudget::new(0.0, 4, 2);
        assert_eq!(b.reserve(LONG), Some(NOW));
        assert_eq!(b.reserve(LONG), Some(NOW));
        // Empty: each next retry gets the next token of the 4/s floor, in order.
        assert_eq!(b.reserve(LONG), Some(Duration::from_millis(250)));
        assert_eq!(b.reserve(LONG), Some(Duration::from_millis(500)));
        assert_eq!(b.balance(), -2.0);
        // One that would wait past its bound takes nothing.
        assert_eq!(b.reserve(Duration::from_millis(700)), None);
        assert_eq!(
            b.reserve(Duration::from_millis(750)),
            Some(Duration::from_millis(750))
        );
        tokio::time::advance(Duration::from_millis(750)).await;
        assert_eq!(b.balance(), 0.0, "the queued retries are paid for by then");
        assert_eq!(b.reserve(LONG), Some(Duration::from_millis(250)));
    }

    #[tokio::test(start_paused = true)]
    async fn successes_pay_off_queued_retries() {
        let b = RetryBudget::new(0.5, 1, 1);
        assert_eq!(b.reserve(LONG), Some(NOW));
        assert_eq!(b.reserve(LONG), Some(Duration::from_secs(1)));
        for _ in 0..4 {
            b.deposit();
        }
        assert_eq!(b.balance(), 1.0);
        assert_eq!(b.reserve(LONG), Some(NOW));
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
        assert_eq!(b.inner.max, MILLI as i64);
        assert_eq!(RetryBudget::new(1e9, 0, 1).inner.deposit, 10 * MILLI);
    }
}
