//! Exponential backoff with jitter, floored at the server's wait.

use std::time::Duration;

/// The longest backoff step accepted; longer caps are cut to it.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

const MAX_FACTOR: f64 = 16.0;

/// Exponential backoff: the `n`th retry waits `min(max, base * factor^(n-1))` before jitter.
///
/// The default (500 ms, ×2, capped at 30 s) suits rate-limited APIs: their windows are
/// seconds to a minute long, so retrying within milliseconds only meets the same limit
/// again, and a wait above half a minute is better told by the server (`Retry-After`) than
/// guessed.
///
/// ```
/// use abide_retry::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::new(Duration::from_millis(100), 2.0, Duration::from_secs(1));
/// assert_eq!(backoff.step(1), Duration::from_millis(100));
/// assert_eq!(backoff.step(3), Duration::from_millis(400));
/// assert_eq!(backoff.step(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            factor: 2.0,
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// A backoff starting at `base`, multiplied by `factor` each retry, capped at `max`.
    ///
    /// Absurd values are brought into range rather than rejected: `max` is cut to
    /// [`MAX_BACKOFF`], `base` to `max`, and `factor` to `1.0..=16.0` (a NaN factor
    /// becomes 2).
    pub fn new(base: Duration, factor: f64, max: Duration) -> Self {
        let max = max.min(MAX_BACKOFF);
        let factor = if factor.is_nan() {
            2.0
        } else {
            factor.clamp(1.0, MAX_FACTOR)
        };
        Backoff {
            base: base.min(max),
            factor,
            max,
        }
    }

    /// The first step.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The growth factor.
    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The un-jittered wait before retry `n` (1 for the first retry).
    pub fn step(&self, n: u32) -> Duration {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * self.factor.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }
}

/// How a backoff step is randomized, so that clients that failed together do not retry
/// together.
///
/// The default is [`Equal`](Jitter::Equal): it spreads retries over half the step while
/// keeping a floor of half the step, because against a rate limit a retry a few
/// milliseconds later (which [`Full`](Jitter::Full) allows) is almost certainly wasted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: wait exactly the step (and exactly the server's wait).
    None,
    /// Uniform in `[0, step]`.
    Full,
    /// Uniform in `[step/2, step]`.
    #[default]
    Equal,
    /// "Decorrelated": uniform in `[base, 3 × previous wait]`, capped at the maximum.
    Decorrelated,
}

/// Why a wait was chosen, for traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitReason {
    /// The jittered backoff (no server wait, or the backoff was longer).
    Backoff,
    /// The server's wait, plus the spread above it.
    Server,
    /// Shortened to leave time for the next attempt before the deadline.
    Deadline,
    /// Waiting for the retry budget's next token.
    Budget,
}

impl WaitReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            WaitReason::Backoff => "backoff",
            WaitReason::Server => "server",
            WaitReason::Deadline => "deadline",
            WaitReason::Budget => "budget",
        }
    }
}

/// Uniform in `[lo, hi]` (or `lo` when `hi <= lo`).
fn uniform(rng: &mut fastrand::Rng, lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    let lo_n = u64::try_from(lo.as_nanos()).unwrap_or(u64::MAX);
    let hi_n = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(lo_n..=hi_n))
}

/// Rounds up to a whole millisecond: tokio timers tick in milliseconds, and a wait cut
/// short by rounding down would reach the server before the instant it named.
pub(crate) fn ceil_millis(d: Duration) -> Duration {
    let sub = d.subsec_nanos() % 1_000_000;
    if sub == 0 {
        d
    } else {
        d.saturating_add(Duration::from_nanos(u64::from(1_000_000 - sub)))
    }
}

impl Jitter {
    /// The wait before retry `n`, given the previous wait (for decorrelated jitter).
    pub(crate) fn apply(
        self,
        backoff: &Backoff,
        n: u32,
        previous: Duration,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        let step = backoff.step(n);
        match self {
            Jitter::None => step,
            Jitter::Full => uniform(rng, Duration::ZERO, step),
            Jitter::Equal => uniform(rng, step / 2, step),
            Jitter::Decorrelated => {
                let hi = previous
                    .max(backoff.base)
                    .saturating_mul(3)
                    .min(backoff.max);
                uniform(rng, backoff.base, hi)
            }
        }
    }

    /// The wait before retry `n` when the server asked for `server` (if anything): never
    /// shorter than the server's wait. When the server's wait is the longer one, a spread
    /// of up to a quarter of `min(server wait, step)` is added above it (none with
    /// [`Jitter::None`]), so clients told the same instant do not all return at once.
    /// The result is rounded up to a whole millisecond.
    pub(crate) fn delay(
        self,
        backoff: &Backoff,
        n: u32,
        previous: Duration,
        server: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> (Duration, WaitReason) {
        let jittered = self.apply(backoff, n, previous, rng);
        let (delay, reason) = match server {
            Some(floor) if floor >= jittered => {
                let spread = match self {
                    Jitter::None => Duration::ZERO,
                    _ => uniform(rng, Duration::ZERO, floor.min(backoff.step(n)) / 4),
                };
                (floor.saturating_add(spread), WaitReason::Server)
            }
            _ => (jittered, WaitReason::Backoff),
        };
        (ceil_millis(delay), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steps_grow_by_the_factor_up_to_the_cap() {
        let b = Backoff::new(ms(100), 3.0, ms(1000));
        assert_eq!(b.step(1), ms(100));
        assert_eq!(b.step(2), ms(300));
        assert_eq!(b.step(3), ms(900));
        assert_eq!(b.step(4), ms(1000));
        assert_eq!(b.step(u32::MAX), ms(1000));
    }

    #[test]
    fn absurd_backoff_values_are_brought_into_range() {
        let b = Backoff::new(Duration::MAX, f64::NAN, Duration::MAX);
        assert_eq!(b.max(), MAX_BACKOFF);
        assert_eq!(b.base(), MAX_BACKOFF);
        assert_eq!(b.factor(), 2.0);
        assert_eq!(Backoff::new(ms(1), -5.0, ms(10)).factor(), 1.0);
        assert_eq!(Backoff::new(ms(1), f64::INFINITY, ms(10)).factor(), 16.0);
    }

    #[test]
    fn each_jitter_kind_stays_in_its_range() {
        let b = Backoff::new(ms(100), 2.0, ms(10_000));
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 1..8 {
            let step = b.step(n);
            for _ in 0..200 {
                assert_eq!(Jitter::None.apply(&b, n, step, &mut rng), step);
                assert!(Jitter::Full.apply(&b, n, step, &mut rng) <= step);
                let equal = Jitter::Equal.apply(&b, n, step, &mut rng);
                assert!(equal >= step / 2 && equal <= step);
                let dec = Jitter::Decorrelated.apply(&b, n, step, &mut rng);
                assert!(dec >= ms(100) && dec <= (step * 3).min(ms(10_000)));
            }
        }
    }

    #[test]
    fn the_delay_is_never_below_the_server_wait() {
        let b = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(1);
        for kind in [
            Jitter::None,
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            for server_ms in [0u64, 1, 999, 1500, 60_000] {
                for n in 1..6 {
                    let server = Duration::from_micros(server_ms * 1000 + 1);
                    let (d, _) = kind.delay(&b, n, b.step(n), Some(server), &mut rng);
                    assert!(d >= server, "{kind:?} {d:?} < {server:?}");
                    assert_eq!(d.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
                }
            }
        }
    }

    #[test]
    fn no_jitter_waits_exactly_the_larger_of_server_and_backoff() {
        let b = Backoff::new(ms(1000), 2.0, ms(30_000));
        let mut rng = fastrand::Rng::with_seed(1);
        let (d, why) = Jitter::None.delay(&b, 1, ms(0), Some(ms(4000)), &mut rng);
        assert_eq!((d, why), (ms(4000), WaitReason::Server));
        let (d, why) = Jitter::None.delay(&b, 3, ms(0), Some(ms(200)), &mut rng);
        assert_eq!((d, why), (ms(4000), WaitReason::Backoff));
    }

    #[test]
    fn the_spread_above_the_server_wait_is_at_most_a_quarter() {
        let b = Backoff::new(ms(1000), 2.0, ms(30_000));
        let mut rng = fastrand::Rng::with_seed(3);
        let mut seen_above = false;
        for _ in 0..500 {
            let (d, _) = Jitter::Equal.delay(&b, 1, ms(0), Some(ms(8000)), &mut rng);
            assert!(d >= ms(8000) && d <= ms(8250), "{d:?}");
            seen_above |= d > ms(8000);
        }
        assert!(
            seen_above,
            "jitter spreads clients above the server's instant"
        );
    }

    #[test]
    fn waits_are_rounded_up_to_whole_milliseconds() {
        assert_eq!(ceil_millis(Duration::from_nanos(1)), ms(1));
        assert_eq!(ceil_millis(ms(5)), ms(5));
        assert_eq!(ceil_millis(Duration::from_micros(5001)), ms(6));
        assert_eq!(ceil_millis(Duration::MAX), Duration::MAX);
    }
}
