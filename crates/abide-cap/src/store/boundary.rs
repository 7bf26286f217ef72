//! Where a short fixed window begins, when its resets are stated in whole seconds.
//!
//! A reset stated in whole seconds is up to two seconds late (the server rounds the
//! instant up to a whole second of its clock and measures from its `Date`, rounded
//! down): against a window of a second or two that is most of the window, spent waiting
//! for a window already open. Fixed windows begin a window apart, so one window start
//! placed to within a little places every later reset. The answers place it: at the
//! first answer of a new window, a window began after the latest release of a request
//! the old window counted (admitted no earlier than released), and no later than that
//! answer (admitted before it arrived). Each such span holds a window start; moved by
//! whole windows onto each other, they narrow it.
//!
//! Only answers that straddle a window start place it (a spent window waited out to its
//! stated reset shows nothing). Until one has, the resets stated are kept.

use super::time::{later, nanos, since};
use super::window::Pace;
use std::time::Duration;
use tokio::time::Instant;

/// How far a reset stated in whole seconds may lie past the true one.
pub(super) const WHOLE_SECOND_ROUNDING: Duration = Duration::from_secs(2);

/// Where a fixed window begins (modulo the window), as the answers showed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Boundary {
    /// A window begins after the first instant and no later than the second, which are
    /// less than a window apart.
    pub(super) span: Option<(Instant, Instant)>,
    /// Two spans in a row agreed on it (one alone may be an answer misread).
    pub(super) agreed: bool,
}

/// `x` moved by whole windows to lie within half a window of `onto`.
fn project(x: Instant, onto: Instant, window: Duration) -> Instant {
    let w = nanos(window).max(1);
    let step = |apart: u64| Duration::from_nanos(((apart + w / 2) / w).saturating_mul(w));
    if x <= onto {
        later(x, step(nanos(since(onto, x))))
    } else {
        x.checked_sub(step(nanos(since(x, onto)))).unwrap_or(x)
    }
}

/// The first instant after `now` of the lattice through `x`, a window apart.
fn next_after(x: Instant, now: Instant, window: Duration) -> Instant {
    let w = nanos(window).max(1);
    if x > now {
        let back = nanos(since(x, now)) / w;
        return x
            .checked_sub(Duration::from_nanos(back.saturating_mul(w)))
            .unwrap_or(x);
    }
    later(
        x,
        Duration::from_nanos((nanos(since(now, x)) / w + 1).saturating_mul(w)),
    )
}

/// Whether an answer stating `remaining` and a reset at `reset_at` is of a newer fixed
/// window than the pace learned from the answer before: its reset jumped on by more than
/// half a window, and what remains rose to within a quarter of the limit (a new window
/// counts only what was admitted in it so far). A token bucket refills gradually, and
/// its reset, the time to full, falls as it does; a whole-second rounding moves a reset
/// by a second, not what remains.
pub(super) fn fresh(old: &Pace, reset_at: Instant, remaining: u64) -> bool {
    let (Some(w), Some(limit)) = (old.window, old.limit) else {
        return false;
    };
    reset_at > later(old.stated_reset, w / 2)
        && remaining > old.stated_remaining
        && remaining.saturating_add(limit / 4) >= limit
}

impl Boundary {
    /// A window began after `after` and no later than `by`: narrows the span, unless that
    /// is a window or more (it says nothing), or contradicts it (the windows changed:
    /// the new span is kept).
    pub(super) fn seen(self, after: Instant, by: Instant, window: Duration) -> Boundary {
        if after >= by || since(by, after) >= window {
            return self;
        }
        let mut agreed = false;
        let span = match self.span {
            Some((lo, hi)) => {
                // Both ends moved by the same whole windows, the middles within half a
                // window of each other.
                let mid = later(lo, since(hi, lo) / 2);
                let onto = project(mid, later(after, since(by, after) / 2), window);
                // Both ends moved as the middle moves onto `onto`.
                let moved = |t: Instant| {
                    if onto >= mid {
                        later(t, since(onto, mid))
                    } else {
                        t.checked_sub(since(mid, onto)).unwrap_or(t)
                    }
                };
                let (lo, hi) = (moved(lo), moved(hi));
                let narrowed = (lo.max(after), hi.min(by));
                if narrowed.0 < narrowed.1 {
                    agreed = true;
                    narrowed
                } else {
                    (after, by)
                }
            }
            None => (after, by),
        };
        Boundary {
            span: Some(span),
            agreed,
        }
    }

    /// The end of the window an answer at `now` belongs to, if the span places it
    /// earlier than `stated` (the reset the answer stated, in whole seconds) and within
    /// that reset's rounding: the first window start after `now`, taken at the span's
    /// late end. Within the span's width before it, the answer may already be of the
    /// next window: it is when it shows a new window (`fresh`), or the answer before it
    /// was already placed in the next one (`placed`, where it was).
    pub(super) fn end(
        self,
        window: Duration,
        now: Instant,
        stated: Instant,
        fresh: bool,
        placed: Option<Instant>,
    ) -> Option<Instant> {
        let (lo, hi) = self.span.filter(|_| self.agreed)?;
        let width = since(hi, lo);
        let mut end = next_after(hi, now, window);
        let next = fresh || placed.is_some_and(|p| p > later(end, window / 2));
        if next && end < later(now, width) {
            end = later(end, window);
        }
        let earliest = stated.checked_sub(WHOLE_SECOND_ROUNDING).unwrap_or(now);
        (end < stated && end >= earliest).then_some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn spans_seen_at_different_windows_narrow_the_same_start() {
        let t0 = Instant::now();
        // Windows of a second beginning at t0 + 0.3 s (+ k s).
        let b = Boundary::default()
            .seen(t0 + 1100 * MS, t0 + 1400 * MS, S)
            .seen(t0 + 3250 * MS, t0 + 3900 * MS, S)
            .seen(t0 + 7280 * MS, t0 + 7350 * MS, S);
        assert_eq!(b.span, Some((t0 + 7280 * MS, t0 + 7350 * MS)));
        // The end of the window an answer at t0 + 9.5 s is in: t0 + 10.35 s (late by what
        // the span is wide at most, never early).
        let stated = t0 + 11 * S;
        assert_eq!(
            b.end(S, t0 + 9500 * MS, stated, false, None),
            Some(t0 + 10350 * MS)
        );
        // Stated earlier than that: the stated reset stands.
        assert_eq!(b.end(S, t0 + 9500 * MS, t0 + 10 * S, false, None), None);
        // A span of a window or more says nothing.
        assert_eq!(b.seen(t0 + 8 * S, t0 + 9500 * MS, S), b);
    }

    #[test]
    fn an_answer_of_the_new_window_just_before_the_placed_start_belongs_to_the_next_end() {
        let t0 = Instant::now();
        let b = Boundary::default()
            .seen(t0 + 1250 * MS, t0 + 1330 * MS, S)
            .seen(t0 + 2200 * MS, t0 + 2400 * MS, S);
        assert!(b.agreed);
        // Width 80 ms: an answer at t0 + 3.30 s showing a new window is of the window
        // ending at t0 + 4.33 s, not the one "ending" 30 ms later.
        assert_eq!(
            b.end(S, t0 + 3300 * MS, t0 + 5 * S, true, None),
            Some(t0 + 4330 * MS)
        );
        assert_eq!(
            b.end(S, t0 + 3300 * MS, t0 + 5 * S, false, None),
            Some(t0 + 3330 * MS)
        );
    }

    #[test]
    fn a_span_that_contradicts_the_kept_one_replaces_it() {
        let t0 = Instant::now();
        let b = Boundary::default()
            .seen(t0 + 1100 * MS, t0 + 1200 * MS, S)
            .seen(t0 + 2500 * MS, t0 + 2600 * MS, S);
        assert_eq!(b.span, Some((t0 + 2500 * MS, t0 + 2600 * MS)));
    }
}
