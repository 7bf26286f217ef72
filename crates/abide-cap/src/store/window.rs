//! A learned window: what the server says remains, spread over the time to its reset.

use super::time::{later, nanos, scale, since};
use std::time::Duration;
use tokio::time::Instant;

/// Pacing of one learned limit: spread `remaining` units evenly over the time until
/// `reset_at`, after the slots already reserved (`tat`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pace {
    /// Units left before `reset_at`, after the reservations already made.
    pub(super) remaining: u64,
    pub(super) reset_at: Instant,
    /// The pacing rate: `span_ns` nanoseconds per `per` units.
    pub(super) span_ns: u64,
    pub(super) per: u64,
    pub(super) limit: Option<u64>,
    pub(super) window: Option<Duration>,
    /// Theoretical arrival time: the end of the last reserved slot.
    pub(super) tat: Instant,
    /// The current window was predicted by rolling past a reset, not stated by a response.
    pub(super) rolled: bool,
    /// When the current window opens (a rolled window lies in the future): no slot of it
    /// starts earlier, however far ahead the schedule may run.
    pub(super) opens: Instant,
}

impl Pace {
    /// Moves to the window that contains `at`, if the window is known. False when the
    /// reset passed and nothing says what comes next: the limit no longer constrains.
    pub(super) fn roll(&mut self, at: Instant) -> bool {
        let (Some(limit), Some(window)) = (self.limit, self.window) else {
            return false;
        };
        if limit == 0 || window.is_zero() {
            return false;
        }
        let behind = nanos(since(at, self.reset_at));
        let windows = behind / nanos(window).max(1) + 1;
        let window_start = later(self.reset_at, scale(nanos(window), windows - 1, 1));
        self.reset_at = later(window_start, window);
        self.remaining = limit;
        self.span_ns = nanos(window);
        self.per = limit;
        self.tat = self.tat.max(window_start);
        self.rolled = true;
        self.opens = window_start;
        true
    }

    /// The earliest start of `units` at or after `at`, and the pace after reserving it.
    ///
    /// What remains is spread evenly over the time to reset, but the schedule may run
    /// ahead of the even spread by `ahead` (GCRA's tolerance): requests go at once while
    /// running dry early would make nobody wait past `ahead` for the reset. With `ahead`
    /// the request's max wait (an hour by default), a window shorter than that is used as
    /// fast as callers ask (a job that fits in an hourly quota is not stretched over the
    /// hour), and a longer one (daily) is spread so that no admission waits past it.
    pub(super) fn plan(mut self, at: Instant, units: u64, ahead: Duration) -> (Instant, Pace) {
        if self.limit.is_some_and(|l| units > l) {
            // Can never fit a window: a request about itself (the server will say it is
            // too large). Send it now, reserving nothing, rather than hold the quota of
            // whole windows for it.
            return (at, self);
        }
        let mut at = at;
        for _ in 0..4 {
            if at >= self.reset_at && !self.roll(at) {
                return (at, self);
            }
            let tolerance = ahead.min(since(self.reset_at, at));
            let start = match self.tat.checked_sub(tolerance) {
                Some(earliest) if earliest > at => earliest,
                _ => at,
            }
            .max(self.opens);
            if start < self.reset_at && self.remaining >= units {
                self.tat = later(self.tat.max(start), scale(self.span_ns, units, self.per));
                self.remaining -= units;
                return (start, self);
            }
            at = at.max(self.reset_at);
        }
        (at, self)
    }

    /// Whether the limit still says something about instants after `now`.
    pub(super) fn binds_after(&self, now: Instant) -> bool {
        self.tat > now || (self.remaining == 0 && self.reset_at > now)
    }
}
