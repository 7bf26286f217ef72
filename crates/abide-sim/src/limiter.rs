//! The three admission algorithms a simulated server enforces, in exact integer arithmetic
//! so that "admits exactly its limit per window" holds without rounding slop.

use std::collections::VecDeque;
use std::time::Duration;

/// How a server counts a limit over time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// A bucket of one window's limit (the burst), refilled continuously at
    /// `limit / window`. OpenAI and Anthropic describe their limits this way.
    #[default]
    TokenBucket,
    /// Windows aligned at the server's start; each admits `limit` units, then resets.
    FixedWindow,
    /// Any span of one window admits at most `limit` units (an exact sliding log).
    SlidingWindow,
}

impl Algorithm {
    /// The name used in scenario files (`token-bucket`, `fixed-window`, `sliding-window`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token-bucket",
            Algorithm::FixedWindow => "fixed-window",
            Algorithm::SlidingWindow => "sliding-window",
        }
    }
}

/// One limit (requests or tokens) as the server enforces it.
#[derive(Clone, Debug)]
pub(crate) struct Limiter {
    limit: u64,
    window_ns: u128,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    /// `level` is in units x window_ns, so refill by `elapsed_ns * limit` is exact.
    Bucket {
        level: u128,
        last_ns: u128,
    },
    Fixed {
        index: u128,
        used: u64,
    },
    Sliding {
        log: VecDeque<(u128, u64)>,
        used: u64,
    },
}

fn ns(d: Duration) -> u128 {
    d.as_nanos()
}

fn from_ns(n: u128) -> Duration {
    // Saturate: a wait beyond u64 nanoseconds (584 years) is "never" in any scenario.
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

impl Limiter {
    /// A limiter admitting `limit` units per `window` (both non-zero).
    pub(crate) fn new(algorithm: Algorithm, limit: u64, window: Duration) -> Self {
        let window_ns = ns(window).max(1);
        let state = match algorithm {
            Algorithm::TokenBucket => State::Bucket {
                level: u128::from(limit) * window_ns,
                last_ns: 0,
            },
            Algorithm::FixedWindow => State::Fixed { index: 0, used: 0 },
            Algorithm::SlidingWindow => State::Sliding {
                log: VecDeque::new(),
                used: 0,
            },
        };
        Limiter {
            limit,
            window_ns,
            state,
        }
    }

    /// The enforced limit per window.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    fn advance(&mut self, now: u128) {
        let (limit, window_ns) = (self.limit, self.window_ns);
        match &mut self.state {
            State::Bucket { level, last_ns } => {
                if now > *last_ns {
                    let cap = u128::from(limit) * window_ns;
                    *level = (*level + (now - *last_ns) * u128::from(limit)).min(cap);
                    *last_ns = now;
                }
            }
            State::Fixed { index, used } => {
                let current = now / window_ns;
                if current != *index {
                    *index = current;
                    *used = 0;
                }
            }
            State::Sliding { log, used } => {
                while let Some(&(at, cost)) = log.front() {
                    if at + window_ns <= now {
                        *used -= cost;
                        log.pop_front();
                    } else {
                        break;
                    }
                }
            }
        }
    }

    /// `None` when `cost` units fit now; else how long until they fit (`Duration::MAX`
    /// when they never can: the cost exceeds the limit).
    pub(crate) fn wait_for(&mut self, now: Duration, cost: u64) -> Option<Duration> {
        let now = ns(now);
        self.advance(now);
        if cost > self.limit {
            return Some(Duration::MAX);
        }
        let (limit, window_ns) = (self.limit, self.window_ns);
        match &self.state {
            State::Bucket { level, .. } => {
                let need = u128::from(cost) * window_ns;
                if *level >= need {
                    None
                } else {
                    // Whole nanoseconds, rounded up, so that a client waiting exactly this
                    // long is admitted.
                    Some(from_ns((need - *level).div_ceil(u128::from(limit))))
                }
            }
            State::Fixed { index, used } => {
                if used + cost <= limit {
                    None
                } else {
                    Some(from_ns((index + 1) * window_ns - now))
                }
            }
            State::Sliding { log, used } => {
                if used + cost <= limit {
                    return None;
                }
                let mut freed = 0;
                for &(at, c) in log {
                    freed += c;
                    if used - freed + cost <= limit {
                        return Some(from_ns(at + window_ns - now));
                    }
                }
                Some(Duration::MAX)
            }
        }
    }

    /// Spends `cost` units (call after [`wait_for`](Self::wait_for) said they fit).
    pub(crate) fn take(&mut self, now: Duration, cost: u64) {
        let now = ns(now);
        self.advance(now);
        let window_ns = self.window_ns;
        match &mut self.state {
            State::Bucket { level, .. } => {
                *level = level.saturating_sub(u128::from(cost) * window_ns);
            }
            State::Fixed { used, .. } => *used += cost,
            State::Sliding { log, used } => {
                if cost > 0 {
                    log.push_back((now, cost));
                    *used += cost;
                }
            }
        }
    }

    /// Units that could be spent right now.
    pub(crate) fn remaining(&mut self, now: Duration) -> u64 {
        self.advance(ns(now));
        match &self.state {
            State::Bucket { level, .. } => {
                u64::try_from(level / self.window_ns).unwrap_or(u64::MAX)
            }
            State::Fixed { used, .. } | State::Sliding { used, .. } => {
                self.limit.saturating_sub(*used)
            }
        }
    }

    /// Time until the limit is back to its initial state: a full bucket (OpenAI's meaning
    /// of `x-ratelimit-reset-*`), the window's end, or the newest logged spend expiring.
    pub(crate) fn reset(&mut self, now: Duration) -> Duration {
        let now_ns = ns(now);
        self.advance(now_ns);
        match &self.state {
            State::Bucket { level, .. } => {
                let cap = u128::from(self.limit) * self.window_ns;
                from_ns((cap - level).div_ceil(u128::from(self.limit.max(1))))
            }
            State::Fixed { index, .. } => from_ns((index + 1) * self.window_ns - now_ns),
            State::Sliding { log, .. } => match log.back() {
                Some(&(at, _)) => from_ns(at + self.window_ns - now_ns),
                None => Duration::ZERO,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `step` from 0 to `until`, spends single units while they fit; returns the
    /// admission times.
    fn admissions(
        alg: Algorithm,
        limit: u64,
        window: Duration,
        step: Duration,
        until: Duration,
    ) -> Vec<Duration> {
        let mut l = Limiter::new(alg, limit, window);
        let mut out = Vec::new();
        let mut t = Duration::ZERO;
        while t < until {
            while l.wait_for(t, 1).is_none() {
                l.take(t, 1);
                out.push(t);
            }
            t += step;
        }
        out
    }

    fn max_in_any_window(times: &[Duration], window: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|&&t| t < times[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn fixed_window_admits_exactly_its_limit_in_each_window() {
        let w = Duration::from_secs(10);
        let times = admissions(
            Algorithm::FixedWindow,
            7,
            w,
            Duration::from_millis(100),
            w * 3,
        );
        assert_eq!(times.len(), 21);
        for k in 0..3u32 {
            let in_window = times
                .iter()
                .filter(|&&t| t >= w * k && t < w * (k + 1))
                .count();
            assert_eq!(in_window, 7, "window {k}");
        }
    }

    #[test]
    fn sliding_window_never_admits_more_than_its_limit_in_any_span() {
        let w = Duration::from_secs(10);
        let times = admissions(
            Algorithm::SlidingWindow,
            7,
            w,
            Duration::from_millis(100),
            w * 3,
        );
        assert_eq!(max_in_any_window(&times, w), 7);
        assert_eq!(times.len(), 21);
    }

    #[test]
    fn token_bucket_admits_its_burst_then_exactly_its_rate() {
        let w = Duration::from_secs(10);
        // A burst of 10 at t=0, then one unit per second: 10 + 20 over 20 s (t = 1..=20 s,
        // but the last tick is excluded by `until`).
        let times = admissions(
            Algorithm::TokenBucket,
            10,
            w,
            Duration::from_millis(100),
            w * 2,
        );
        assert_eq!(times.iter().filter(|t| t.is_zero()).count(), 10);
        assert_eq!(times.len(), 10 + 19);
        assert_eq!(times[10], Duration::from_secs(1));
    }

    #[test]
    fn waits_are_exact_for_each_algorithm() {
        let w = Duration::from_secs(60);
        let t = Duration::from_secs(15);
        let mut bucket = Limiter::new(Algorithm::TokenBucket, 60, w);
        bucket.take(Duration::ZERO, 60);
        // 15 s refilled 15 units; 20 units need 5 more seconds.
        assert_eq!(bucket.wait_for(t, 20), Some(Duration::from_secs(5)));
        assert_eq!(bucket.remaining(t), 15);
        assert_eq!(bucket.reset(t), Duration::from_secs(45));

        let mut fixed = Limiter::new(Algorithm::FixedWindow, 60, w);
        fixed.take(Duration::ZERO, 60);
        assert_eq!(fixed.wait_for(t, 1), Some(Duration::from_secs(45)));
        assert_eq!(fixed.wait_for(w, 1), None);

        let mut sliding = Limiter::new(Algorithm::SlidingWindow, 60, w);
        sliding.take(Duration::ZERO, 30);
        sliding.take(Duration::from_secs(10), 30);
        assert_eq!(sliding.wait_for(t, 31), Some(Duration::from_secs(55)));
        assert_eq!(sliding.wait_for(t, 30), Some(Duration::from_secs(45)));
    }

    #[test]
    fn a_cost_above_the_limit_never_fits() {
        for alg in [
            Algorithm::TokenBucket,
            Algorithm::FixedWindow,
            Algorithm::SlidingWindow,
        ] {
            let mut l = Limiter::new(alg, 10, Duration::from_secs(1));
            assert_eq!(l.wait_for(Duration::ZERO, 11), Some(Duration::MAX));
        }
    }
}
