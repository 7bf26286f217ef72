//! A learned window: what the server says remains, spread over the time to its reset;
//! and, for a sliding window, the units its oldest spends give back before that reset.

use super::boundary::Boundary;
use super::released::Releases;
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
    /// The spends of the current busy period, as the answers have shown them.
    pub(super) returns: Option<Returns>,
    /// The scope's reset moved on while its spends went on: a sliding window (or a
    /// bucket), whose units come back one window after they were spent, not all at the
    /// reset the server states (when its newest spend ages out).
    pub(super) sliding: bool,
    /// The reset and the remaining the answer this pace was learned from stated.
    pub(super) stated_reset: Instant,
    pub(super) stated_remaining: u64,
    /// Where a fixed window was seen to begin, to place the resets that whole seconds
    /// round.
    pub(super) boundary: Boundary,
    /// The latest release of a request this window's answers counted (a window begins
    /// after it).
    pub(super) released: Option<Instant>,
}

/// A busy period of a window scope: from its first answer short of the limit, to the
/// next answer showing it full or a window that rolled.
///
/// A sliding window states as its reset when its *newest* spend ages out; the period's
/// first answer stated when its *oldest* one does. Between the two the spends come back
/// in the order they were made. They are taken back from the later of that first reset
/// and the latest answer, evenly until the latest answer's reset: what it says is missing
/// was spent over that span, one window earlier. A burst at the period's start comes back
/// faster at first than this spreads it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Returns {
    /// The reset the period's first answer stated: its oldest spend ages out then.
    pub(super) first: Instant,
    /// Units come back from here.
    pub(super) from: Instant,
    /// One unit comes back each this many nanoseconds.
    pub(super) unit_ns: u64,
    /// Units come back reserved since `from`.
    pub(super) taken: u64,
    /// When the request whose answer began this period was let go: its `remaining`
    /// counted the spends up to then. Where this process kept what it let go over the
    /// window before (not in a shared store), its own spends say when units come back,
    /// not the even spread.
    pub(super) counted: Option<Instant>,
}

/// How far a window's reset must move on within a busy period to show the window
/// slides: more than whole-second resets round away, and a tenth of the window.
pub(super) fn sliding_slack(window: Duration) -> Duration {
    Duration::from_millis(1500).max(window / 10)
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
        self.returns = None;
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
    ///
    /// `spends`: what this process let go, and whether this limit counts their cost.
    pub(super) fn plan(
        mut self,
        at: Instant,
        units: u64,
        ahead: Duration,
        spends: Option<(&Releases, bool)>,
    ) -> (Instant, Pace) {
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
            if let Some(slot) = self.take_returned(start, units, spends) {
                return (slot, self);
            }
            at = at.max(self.reset_at);
        }
        (at, self)
    }

    /// A sliding window short of `units`: the slot where its oldest spends have given
    /// back what is missing, if that comes before the stated reset; what remains is
    /// taken too. This process's own spends say when, where it kept all of the window's
    /// and they account for what is missing; else the missing units are spread evenly
    /// (what it kept coming back sooner still does).
    fn take_returned(
        &mut self,
        start: Instant,
        units: u64,
        spends: Option<(&Releases, bool)>,
    ) -> Option<Instant> {
        let (true, Some(r)) = (self.sliding, self.returns) else {
            return None;
        };
        let need = units.saturating_sub(self.remaining);
        let taken = r.taken.saturating_add(need);
        let spread = |n: u64| later(r.from, scale(r.unit_ns, n, 1));
        let slot = match (spends, r.counted, self.window) {
            (Some((log, cost)), Some(counted), Some(w)) => match log.unkept(counted, w, cost) {
                // What our spends do not give back was others': spread.
                None => log
                    .returned(counted, w, cost, taken)
                    .unwrap_or(spread(taken)),
                // What this process did not keep was let go before what it kept, by
                // `by`: it gives back first, as the busy period spreads it, and a
                // window after `by` at the latest; then what it kept.
                Some((kept, by)) => {
                    let missing = self
                        .limit
                        .unwrap_or(0)
                        .saturating_sub(self.stated_remaining);
                    let before = missing.saturating_sub(kept);
                    let unkept = |n: u64| spread(n).min(later(by, w));
                    if taken <= before {
                        unkept(taken)
                    } else {
                        log.returned(counted, w, cost, taken - before)
                            .map_or(spread(taken), |at| at.max(unkept(before)))
                    }
                }
            },
            _ => spread(taken),
        }
        .max(start);
        if slot >= self.reset_at {
            return None;
        }
        self.returns = Some(Returns { taken, ..r });
        self.remaining = 0;
        self.tat = self.tat.max(slot);
        Some(slot)
    }

    /// Gives back `units` of a reservation dropped before its slot: to the returns it
    /// took (the last taken), else to what remains.
    pub(super) fn give_back(&mut self, units: u64) -> u64 {
        if let Some(r) = &mut self.returns {
            let back = r.taken.min(units);
            r.taken -= back;
            return units - back;
        }
        units
    }

    /// Whether the limit still says something about instants after `now`.
    pub(super) fn binds_after(&self, now: Instant) -> bool {
        self.tat > now || (self.remaining == 0 && self.reset_at > now)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A spent window of 40 per 10 s: its answer at `now` says none remain, the newest
    /// spend ages out in 10 s and (for the busy period) the oldest in 5 s.
    pub(in crate::store) fn spent(now: Instant, sliding: bool) -> Pace {
        let s = Duration::from_secs(1);
        Pace {
            remaining: 0,
            reset_at: now + 10 * s,
            span_ns: nanos(10 * s),
            per: 1,
            limit: Some(40),
            window: Some(10 * s),
            tat: now,
            rolled: false,
            opens: now,
            returns: Some(Returns {
                first: now + 5 * s,
                from: now + 5 * s,
                unit_ns: nanos(s / 4),
                taken: 0,
                counted: None,
            }),
            sliding,
            stated_reset: now + 10 * s,
            stated_remaining: 0,
            boundary: Boundary::default(),
            released: None,
        }
    }

    #[test]
    fn a_sliding_window_gives_its_oldest_spends_back_before_its_reset() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let (first, p) = spent(now, true).plan(now, 1, Duration::ZERO, None);
        assert_eq!(first, now + 5 * s + s / 4);
        let (second, mut p) = p.plan(now, 2, Duration::ZERO, None);
        assert_eq!(second, now + 5 * s + 3 * s / 4);
        // Dropped before its slot: the returns it took are free again.
        assert_eq!(p.give_back(2), 0);
        let (again, _) = p.plan(now, 2, Duration::ZERO, None);
        assert_eq!(again, second);
    }

    #[test]
    fn a_window_not_shown_to_slide_waits_for_its_reset() {
        let now = Instant::now();
        let (at, _) = spent(now, false).plan(now, 1, Duration::ZERO, None);
        assert!(at >= now + Duration::from_secs(10), "{at:?}");
    }
}
