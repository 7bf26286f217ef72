//! Outages: a half-open circuit per bucket.
//!
//! When the server stops answering (connection failures, 5xx, an overload without a
//! stated wait), every request sent into the outage is an attempt spent for nothing, and
//! every caller retrying on its own schedule multiplies the load on a server that is
//! trying to come back. So the bucket holds everyone: after the first failure nobody goes
//! for a short hold; then one request (the probe) goes; while it is out the others wait
//! for its answer; a failed probe doubles the hold (with jitter) and passes the probe
//! role to the next held request; a probe's success (or any answer that shows the server
//! is up) opens the bucket, which then drains at its learned pace.
//!
//! Held requests are not sent, so they spend no retry attempts: only probes do, one per
//! hold, each from a different request in a busy bucket. How long the longest hold is
//! weighs two costs ([`max_hold`]): every probe is an attempt the server may refuse, and
//! every second of hold after the server is back is a second of the bucket's traffic
//! lost. The busier the bucket, the shorter the longest hold (0.5 to 10 s): the more
//! requests are held, the more attempts they have between them, and the more requests
//! the bucket was serving per second, the less one probe adds to what it sends. The held
//! requests counted are those waiting in this cap and those the outage struck in flight
//! (they wait wherever they are: in another cap on the same store, or between attempts).
//! Caps sharing a store take turns: a failed probe's answer wakes its own cap's held
//! requests at once, while the others ask again only at their poll, so the same cap
//! probes again only when no other has taken the role a poll after the hold.

use super::bucket::BucketState;
use super::time::{later, nanos, since};
use super::Ticket;
use std::time::Duration;
use tokio::time::Instant;

/// The first hold after a failure, and the unit the holds double from. The retry
/// layer's default backoff starts at the same 500 ms (`abide-retry` `Backoff::default`).
const BASE: Duration = Duration::from_millis(500);

/// The longest hold between probes. Exponential backoff capped, as gRPC's reconnect
/// backoff is (grpc/grpc `doc/connection-backoff.md`: ×1.6 up to 120 s); far shorter
/// here, because the hold is also how late a recovered server is noticed: 10 s bounds
/// that delay to a small share of any outage long enough to reach it, while an outage
/// of 5 minutes still costs only about 35 probes.
const MAX_HOLD: Duration = Duration::from_secs(10);

/// The span of outage each held request probes at most once in, at the shortest
/// longest hold: `waiting` requests take the probe role in turn, so with the retry
/// layer's 32 paced attempts each (`abide-retry` `DEFAULT_MAX_PACED_ATTEMPTS`), a
/// bucket rides out `32 x HOLD_SHARE` (320 s) of outage at any number held, well past
/// the outages a deadline allows, while a recovered server is noticed within
/// `HOLD_SHARE / waiting`.
const HOLD_SHARE: Duration = Duration::from_secs(10);

/// Probes are at most this share of what the bucket was sending: the longest hold is
/// at least `1 / (PROBE_SHARE x rate)`. A bucket serving 2 requests a second is probed
/// at most every 10 s (however many are held), one serving 200 a second every 0.1 s
/// (before the other bounds): amplification stays near 1.05 for an outage as long as
/// the traffic before it.
const PROBE_SHARE: f64 = 0.05;

/// The shortest span a bucket's send rate is measured over: a burst sent in its first
/// instant is not a rate (three requests in the first millisecond are not 3,000 a
/// second).
const RATE_SPAN: Duration = Duration::from_secs(2);

/// The shortest the longest hold gets, however busy the bucket: the first hold.
const MIN_MAX_HOLD: Duration = BASE;

/// The longest hold when `waiting` requests are held in a bucket that sent `rate`
/// requests a second on average.
fn max_hold(waiting: usize, rate: f64) -> Duration {
    let share = HOLD_SHARE / u32::try_from(waiting.max(1)).unwrap_or(u32::MAX);
    let quiet = if rate > 0.0 {
        Duration::try_from_secs_f64(1.0 / (PROBE_SHARE * rate)).unwrap_or(MAX_HOLD)
    } else {
        MAX_HOLD
    };
    share.max(quiet).clamp(MIN_MAX_HOLD, MAX_HOLD)
}

/// How long a probe's answer is awaited before another held request may probe: the
/// probe may have been dropped, or sent by a process that died. Held requests of this
/// process also ask again each `PROBE_POLL`; the probe's answer wakes them at once.
pub(super) const PROBE_LEASE: Duration = Duration::from_secs(10);

/// One bucket's outage.
#[derive(Clone, Copy, Debug)]
pub(super) struct Outage {
    /// Failed answers counted: the first, then one per failed probe.
    pub(super) failures: u32,
    /// No probe before this.
    pub(super) until: Instant,
    /// A probe is out: the next may go at this instant if it has not answered.
    pub(super) probe_lease: Option<Instant>,
    /// The bucket's era when the outage began: answers to requests admitted earlier
    /// are the same signal again, not a failed probe.
    pub(super) epoch: u64,
    /// When the outage began: the bucket's send rate is measured up to here (during the
    /// outage only probes go, and the busier the bucket was, the more a late probe costs).
    pub(super) began: Instant,
    /// Requests in flight when it began that it failed (the first failure included): they
    /// will be held and take turns probing, wherever they wait (in this cap, in another
    /// on the same store, or between their attempts).
    pub(super) struck: u32,
    /// The cap that sent the last probe ([`Admission::origin`](super::Admission::origin)).
    pub(super) prober: u64,
    /// Another cap than the last prober's has asked during the outage.
    pub(super) others: bool,
}

impl Outage {
    /// An outage that began at `now` with the bucket in era `epoch`.
    pub(super) fn begin(now: Instant, epoch: u64, seed: u64) -> Self {
        Outage {
            failures: 1,
            until: later(now, hold(1, seed, MAX_HOLD)),
            probe_lease: None,
            epoch,
            began: now,
            struck: 1,
            prober: 0,
            others: false,
        }
    }

    /// Counts a failure of a request sent before the outage began (in era `admitted`).
    pub(super) fn strike(&mut self, admitted: Option<(u64, bool)>) {
        if admitted.is_some_and(|(epoch, _)| epoch < self.epoch) {
            self.struck = self.struck.saturating_add(1);
        }
    }

    /// Another failure at `now`, of a request admitted in era `admitted` (a probe or
    /// not). A failed probe doubles the hold and frees the probe role.
    pub(super) fn failed(
        &mut self,
        now: Instant,
        admitted: Option<(u64, bool)>,
        seed: u64,
        max: Duration,
    ) {
        let Some((epoch, true)) = admitted else {
            return;
        };
        if epoch < self.epoch {
            return;
        }
        self.failures = self.failures.saturating_add(1);
        self.until = self.until.max(later(now, hold(self.failures, seed, max)));
        self.probe_lease = None;
    }

    /// Holds the bucket at least until `until` (a wait the server stated).
    pub(super) fn at_least_until(&mut self, until: Instant) {
        self.until = self.until.max(until);
    }
}

/// The hold after `failures` failures: `BASE` doubled per failure after the first,
/// capped at `MAX_HOLD`, with "equal jitter" (half fixed, half random: AWS Architecture
/// Blog, "Exponential Backoff And Jitter", 2015), so the processes sharing a key do not
/// probe in step. `seed` is any value that differs between buckets and moments.
fn hold(failures: u32, seed: u64, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let step = BASE.saturating_mul(1 << doublings).min(max);
    let half = nanos(step) / 2;
    Duration::from_nanos(half + mix(seed) % (half + 1))
}

/// splitmix64's finalizer (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", 2014): a well-spread hash of the seed, so the store needs no RNG.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl BucketState {
    /// A failed answer (server error, or overload without a stated wait): the first
    /// begins an outage, a failed probe of it lengthens the hold.
    pub(super) fn outage_failure(
        &mut self,
        now: Instant,
        ticket: Option<Ticket>,
        stated: Option<Duration>,
        waiting: usize,
    ) {
        // Differs between buckets (born) and moments (requests), without an RNG.
        let seed =
            self.requests ^ (u64::from(self.epoch as u32) << 32) ^ nanos(since(now, self.born));
        let o = match &mut self.outage {
            Some(o) => {
                // The bucket's average send rate before the outage: how much one probe adds.
                let before = since(o.began, self.born).max(RATE_SPAN).as_secs_f64();
                let rate = self.requests.saturating_sub(u64::from(o.failures)) as f64 / before;
                let admitted = ticket.map(|t| (t.epoch, t.probe));
                o.strike(admitted);
                // Held here, or struck by the outage and held wherever they wait.
                let held = waiting.max(usize::try_from(o.struck).unwrap_or(usize::MAX));
                o.failed(now, admitted, seed, max_hold(held, rate));
                o
            }
            None => {
                // Reservations made before the outage must not go into it.
                self.epoch += 1;
                self.drip_void(now);
                self.outage
                    .insert(Box::new(Outage::begin(now, self.epoch, seed)))
            }
        };
        if let Some(wait) = stated {
            o.at_least_until(later(now, wait));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_double_from_half_a_second_to_ten_with_jitter_in_the_upper_half() {
        for failures in 1..30 {
            let step = BASE
                .saturating_mul(1 << (failures - 1).min(16))
                .min(MAX_HOLD);
            let mut seen = std::collections::HashSet::new();
            for seed in 0..200 {
                let h = hold(failures, seed, MAX_HOLD);
                assert!(h >= step / 2 && h <= step, "{failures}: {h:?}");
                seen.insert(h);
            }
            assert!(seen.len() > 100, "jitter spreads the holds");
        }
    }

    #[test]
    fn the_longest_hold_shrinks_as_more_requests_are_held_in_a_busy_bucket() {
        let s = Duration::from_secs(1);
        let busy = 1000.0;
        assert_eq!(max_hold(0, busy), MAX_HOLD);
        assert_eq!(max_hold(1, busy), MAX_HOLD);
        assert_eq!(max_hold(5, busy), 2 * s);
        assert_eq!(max_hold(10, busy), s);
        assert_eq!(max_hold(usize::MAX, busy), MIN_MAX_HOLD);
        for seed in 0..50 {
            let h = hold(20, seed, max_hold(5, busy));
            assert!(h >= s && h <= 2 * s, "{h:?}");
        }
    }

    #[test]
    fn a_quiet_bucket_is_probed_rarely_however_many_are_held() {
        let s = Duration::from_secs(1);
        assert_eq!(max_hold(100, 2.0), 10 * s);
        assert_eq!(max_hold(100, 4.0), 5 * s);
        assert_eq!(max_hold(100, 0.0), MAX_HOLD);
        assert_eq!(max_hold(100, f64::MIN_POSITIVE), MAX_HOLD);
        assert_eq!(max_hold(100, 1e9), MIN_MAX_HOLD);
    }

    #[test]
    fn only_a_probe_admitted_in_the_outage_doubles_the_hold() {
        let now = Instant::now();
        let mut o = Outage::begin(now, 5, 1);
        let first = o.until;
        o.failed(now, Some((4, true)), 2, MAX_HOLD);
        o.failed(now, Some((5, false)), 3, MAX_HOLD);
        o.failed(now, None, 4, MAX_HOLD);
        assert_eq!((o.failures, o.until), (1, first));
        o.probe_lease = Some(now);
        o.failed(now, Some((5, true)), 5, MAX_HOLD);
        assert_eq!(o.failures, 2);
        assert!(o.until >= now + BASE / 2 && o.probe_lease.is_none());
    }
}
