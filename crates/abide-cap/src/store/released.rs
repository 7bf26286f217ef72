//! What an answer has not counted yet: the admissions let go after the request it
//! answers, by the instant each was let go, not by the order they were admitted in.

use super::time::later;
use super::Ticket;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// The most admissions remembered for a bucket whose window slides (32 KiB): its
/// returns are known from this process's own spends where they fit, a window of up to
/// this many of them. Older ones are counted by the ticket counters alone.
const MAX_RELEASES: usize = 1024;

/// The most remembered for any other window (2 KiB): what an answer has not counted is
/// what is in flight or reserved, a few dozen.
const FEW_RELEASES: usize = 64;

/// One admission: when it was let go, its place in the bucket's request count, and its
/// cost units (0 for a cost no scope admits: the server does not count it).
#[derive(Clone, Copy, Debug)]
struct Release {
    at: Instant,
    requests: u64,
    units: u64,
    /// The server refused it ([`Releases::refused`]): it spent nothing, so it neither
    /// comes back a window later nor is missing from a later answer's count.
    refused: bool,
}

/// The latest admissions of a bucket, in the order they are let go.
///
/// A server counts a request when it receives it. A slot reserved ahead is let go at
/// that slot, after requests admitted later went at once, so "admitted after the request
/// this answer counts" (the ticket counters) takes requests the server already counted
/// as not counted yet, and the headers' `remaining` as spent twice. In a busy sliding
/// window that reads as others spending on the key, and the window's returns are dropped
/// until its newest spend ages out. The other way round, those slots reserved before
/// the answered request and let go after it are counted already by the ticket counters,
/// though the server has not seen them: a refilling bucket whose schedule a quick answer
/// placed earlier than a slow one had let newcomers go ahead of them, and was
/// overdrawn by as many. What was let go after the answered request is what its answer
/// cannot have counted.
///
/// Kept by [`LocalStore`](super::LocalStore) only: a shared store's processes count by
/// the ticket counters. Boxed, and only once a limit is learned: an idle bucket stays
/// small, and one that meets no stated limit keeps nothing.
#[derive(Clone, Debug, Default)]
pub(super) struct Releases {
    ring: Option<Box<Ring>>,
}

#[derive(Clone, Debug)]
struct Ring {
    /// By release instant, then by admission.
    ring: VecDeque<Release>,
    /// What was let go by then is not known here: before the first admission kept, or
    /// the latest release no longer kept.
    known_after: Instant,
}

impl Releases {
    /// Whether this process keeps them (it began to, once a limit was learned).
    pub(super) fn kept(&self) -> bool {
        self.ring.is_some()
    }

    /// Begins to keep them at `now`: what was let go before is not known here (no
    /// later than `now`).
    pub(super) fn begin(&mut self, now: Instant) {
        self.ring.get_or_insert_with(|| {
            Box::new(Ring {
                // All at once, so that the admissions after it never reallocate.
                ring: VecDeque::with_capacity(FEW_RELEASES),
                known_after: now.checked_sub(Duration::from_nanos(1)).unwrap_or(now),
            })
        });
    }

    /// Keeps the admission of `ticket` of `units` cost units, once begun: the latest
    /// [`MAX_RELEASES`] where a window `slides` (grown once to that), else the latest
    /// [`FEW_RELEASES`].
    pub(super) fn push(&mut self, ticket: &Ticket, units: u64, slides: bool) {
        let (Some(r), Some(at)) = (self.ring.as_mut(), ticket.released) else {
            return;
        };
        let most = if slides {
            if r.ring.capacity() < MAX_RELEASES {
                r.ring.reserve_exact(MAX_RELEASES - r.ring.len());
            }
            MAX_RELEASES
        } else {
            FEW_RELEASES.max(r.ring.len())
        };
        while r.ring.len() >= most {
            if let Some(old) = r.ring.pop_front() {
                r.known_after = r.known_after.max(old.at);
            }
        }
        // After everything let go by then: only slots reserved further ahead follow.
        let i = r.ring.iter().rposition(|e| e.at <= at).map_or(0, |i| i + 1);
        r.ring.insert(
            i,
            Release {
                at,
                requests: ticket.requests,
                units,
                refused: false,
            },
        );
    }

    /// The server refused what `ticket` let go (a throttle, or a verdict about the
    /// request): it spent none of the limit. Counted as a spend, it would come back a
    /// window later as units the server never gave, and the window after a refusal
    /// would be overrun by what it refused, one refusal begetting the next.
    pub(super) fn refused(&mut self, ticket: &Ticket) {
        let (Some(r), Some(at)) = (self.ring.as_mut(), ticket.released) else {
            return;
        };
        if let Some(e) = r
            .ring
            .iter_mut()
            .rev()
            .find(|e| e.at == at && e.requests == ticket.requests)
        {
            e.refused = true;
        }
    }

    /// Requests and units let go after the one `ticket` admitted (at the same instant,
    /// those admitted after it): what the answer to it cannot have counted. `None` when
    /// that is not known here (no release instant, or let go before what is kept).
    pub(super) fn after(&self, ticket: &Ticket) -> Option<(u64, u64)> {
        let at = ticket.released?;
        let r = self.ring.as_ref()?;
        if r.known_after >= at {
            return None;
        }
        let (mut requests, mut units) = (0, 0);
        for e in r.ring.iter().rev() {
            if e.at < at || (e.at == at && e.requests <= ticket.requests) {
                break;
            }
            if e.refused {
                continue;
            }
            requests += 1;
            units += e.units;
        }
        Some((requests, units))
    }

    /// A sliding window's returns, from this process's own spends: when what this
    /// process spent in the window before `counted` (the instant an answer counted to)
    /// has given back `units` (in requests, or cost units with `cost`), each spend ageing
    /// out one `window` after it was let go. `None` when its spends kept here give back
    /// less (the rest were others', or let go before what is kept).
    pub(super) fn returned(
        &self,
        counted: Instant,
        window: Duration,
        cost: bool,
        units: u64,
    ) -> Option<Instant> {
        let oldest = counted.checked_sub(window)?;
        let mut back = 0;
        for e in self
            .ring
            .as_ref()?
            .ring
            .iter()
            .filter(|e| e.at > oldest && !e.refused)
        {
            back += if cost { e.units } else { 1 };
            if back >= units {
                return Some(later(e.at, window));
            }
        }
        None
    }

    /// Where what was let go over the window before `counted` is not all kept here:
    /// what this process kept of it (in requests, or cost units with `cost`), and the
    /// instant what it did not keep was let go by. `None` when all of it is kept.
    pub(super) fn unkept(
        &self,
        counted: Instant,
        window: Duration,
        cost: bool,
    ) -> Option<(u64, Instant)> {
        let r = self.ring.as_ref()?;
        let oldest = counted.checked_sub(window)?;
        if r.known_after <= oldest {
            return None;
        }
        let kept = r
            .ring
            .iter()
            .filter(|e| e.at > oldest && e.at <= counted && !e.refused)
            .map(|e| if cost { e.units } else { 1 })
            .sum();
        Some((kept, r.known_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(requests: u64, released: Instant) -> Ticket {
        Ticket {
            epoch: 0,
            requests,
            units: 0,
            cost: 0,
            released: Some(released),
            probe: false,
            paced: false,
        }
    }

    #[test]
    fn a_reserved_slot_counts_what_went_before_it_as_counted() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut r = Releases::default();
        r.begin(now);
        // 1 goes now; 2 is reserved for 2 s; 3 and 4 go at once after it, 5 at 3 s.
        let slots = [
            (1, now),
            (2, now + 2 * s),
            (3, now),
            (4, now + s),
            (5, now + 3 * s),
        ];
        for (n, at) in slots {
            r.push(&ticket(n, at), 10 * n, false);
        }
        // The answer to 2 counted 1, 3 and 4 (let go before it): only 5 is not counted.
        assert_eq!(r.after(&ticket(2, now + 2 * s)), Some((1, 50)));
        // The answer to 3: 4, 2 and 5 went after it.
        assert_eq!(r.after(&ticket(3, now)), Some((3, 110)));
        // The answer to 1: 3 went at the same instant but was admitted after it.
        assert_eq!(r.after(&ticket(1, now)), Some((4, 140)));
    }

    #[test]
    fn what_is_not_kept_is_not_known() {
        let now = Instant::now();
        let ms = Duration::from_millis(1);
        let mut r = Releases::default();
        r.push(&ticket(1, now), 1, true);
        assert_eq!(r.after(&ticket(1, now)), None, "not begun");
        r.begin(now);
        let n = MAX_RELEASES as u64 + 10;
        for i in 1..=n {
            r.push(&ticket(i, now + ms * i as u32), 1, true);
        }
        // 1 to 10 are forgotten: what went after 5 is not known.
        assert_eq!(r.after(&ticket(5, now + 5 * ms)), None);
        assert_eq!(
            r.after(&ticket(n - 10, now + ms * (n - 10) as u32)),
            Some((10, 10))
        );
        let unknown = Ticket {
            released: None,
            ..ticket(n - 10, now)
        };
        assert_eq!(r.after(&unknown), None);
        // Nor all of what a window reaching back before them gave back.
        let w = Duration::from_secs(1);
        let counted = now + 5 * ms + w;
        assert_eq!(r.unkept(counted, w, false), Some((995, now + 10 * ms)));
        assert_eq!(r.unkept(now + 10 * ms + w, w, false), None);
    }

    #[test]
    fn a_window_that_does_not_slide_keeps_only_what_may_be_in_flight() {
        let now = Instant::now();
        let ms = Duration::from_millis(1);
        let mut r = Releases::default();
        r.begin(now);
        for i in 1..=100u64 {
            r.push(&ticket(i, now + ms * i as u32), 1, false);
        }
        let kept = r.ring.as_ref().map(|r| (r.ring.len(), r.ring.capacity()));
        assert_eq!(kept.map(|k| k.0), Some(FEW_RELEASES));
        assert!(kept.is_some_and(|k| k.1 < MAX_RELEASES), "{kept:?}");
        assert_eq!(r.after(&ticket(90, now + 90 * ms)), Some((10, 10)));
        assert_eq!(r.after(&ticket(30, now + 30 * ms)), None, "forgotten");
        // Once it slides, it keeps a window's worth.
        for i in 101..=300u64 {
            r.push(&ticket(i, now + ms * i as u32), 1, true);
        }
        assert_eq!(
            r.ring.as_ref().map(|r| r.ring.len()),
            Some(FEW_RELEASES + 200)
        );
    }

    #[test]
    fn a_sliding_windows_returns_are_the_spends_of_the_window_before_in_order() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let w = 10 * s;
        let mut r = Releases::default();
        // Kept from 10 s before the first: the window before it is known to be empty.
        r.begin(now - w);
        // Spent at 0 (cost 5), 1 (cost 1), a slot reserved for 4 (cost 2), and 3 (cost 3).
        for (n, at, cost) in [(2, 0, 5), (3, 1, 1), (4, 4, 2), (5, 3, 3)] {
            r.push(&ticket(n, now + at * s), cost, true);
        }
        // Counted at 0.5 s: that answer's count holds the four after -9.5 s; each comes
        // back a window after it went, oldest first.
        let counted = now + s / 2;
        assert_eq!(r.returned(counted, w, false, 1), Some(now + 10 * s));
        assert_eq!(r.returned(counted, w, false, 2), Some(now + 11 * s));
        assert_eq!(r.returned(counted, w, false, 3), Some(now + 13 * s));
        assert_eq!(r.returned(counted, w, false, 4), Some(now + 14 * s));
        assert_eq!(r.returned(counted, w, true, 6), Some(now + 11 * s));
        assert_eq!(r.returned(counted, w, true, 9), Some(now + 13 * s));
        // Counted at 11.5 s, the spends at 0 and 1 had aged out before it.
        assert_eq!(r.returned(now + 23 * s / 2, w, true, 3), Some(now + 13 * s));
        assert_eq!(r.returned(now + 23 * s / 2, w, true, 5), Some(now + 14 * s));
        // Only 11 units were ours: the rest were others', and when they come back is not
        // known here.
        assert_eq!(r.returned(counted, w, true, 12), None);
        // Nor, before the first kept, what was let go then.
        assert_eq!(r.unkept(counted, w, true), None);
        assert_eq!(r.unkept(now - s, w, true).map(|(kept, _)| kept), Some(0));
    }

    #[test]
    fn what_the_server_refused_neither_comes_back_nor_goes_uncounted() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let w = 10 * s;
        let mut r = Releases::default();
        r.begin(now - w);
        // Spent at 0 (cost 4), refused at 1 (cost 100), spent at 2 (cost 6).
        for (n, at, cost) in [(1, 0, 4), (2, 1, 100), (3, 2, 6)] {
            r.push(&ticket(n, now + at * s), cost, true);
        }
        let counted = now + 3 * s;
        // Before the refusal is known, its 100 units read as coming back at 11 s.
        assert_eq!(r.returned(counted, w, true, 50), Some(now + 11 * s));
        assert_eq!(r.after(&ticket(1, now)), Some((2, 106)));
        r.refused(&ticket(2, now + s));
        // Once it is: only what was spent comes back, and 10 units are all there are.
        assert_eq!(r.returned(counted, w, true, 5), Some(now + 12 * s));
        assert_eq!(r.returned(counted, w, true, 10), Some(now + 12 * s));
        assert_eq!(r.returned(counted, w, true, 11), None);
        assert_eq!(r.returned(counted, w, false, 2), Some(now + 12 * s));
        assert_eq!(r.after(&ticket(1, now)), Some((1, 6)));
        assert_eq!(r.unkept(now - s, w, true).map(|(kept, _)| kept), Some(0));
        // A ticket nothing kept is a no-op.
        r.refused(&ticket(9, now + 5 * s));
        assert_eq!(r.after(&ticket(1, now)), Some((1, 6)));
    }
}
