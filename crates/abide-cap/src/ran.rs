//! What the server was seen to run at once, learned from its overload answers: the level
//! the adaptive cap grows past slowly, and whether an overload answer is about
//! concurrency (the cap answers it) or the server going down (the outage circuit does).
//!
//! An overload answer stating when a slot frees refused the `n + 1`-th request running:
//! the server ran `n`. One without a wait may say that, or that the server is down for
//! everyone. The two are told apart by what the server does next: a server that went
//! down serves neither a request that was in flight when it refused nor one sent after;
//! one at its concurrency limit serves both. Once that is learned, a refusal past what
//! the server ran while it serves is its concurrency, and so are the other refusals of
//! the requests in flight with it (one burst): the cap is cut and nobody is held. A
//! refusal of a request sent after them, before the server serves another, may be the
//! server going down again.

use abide_classify::{Class, Classification};
use std::time::Duration;
use tokio::time::Instant;

/// How much slower the cap grows past what the server ran, at first.
const SLOWDOWN: u32 = 8;

/// The most doublings of [`SLOWDOWN`] (8 × 2³: one probe past a cap of one per 64
/// successes).
const MAX_REFUSED: u32 = 3;

/// What one outcome showed about the server's concurrency.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Seen {
    /// The server ran this many at once, not more: cut the cap to it.
    pub(crate) ran: Option<usize>,
    /// An overload answer to a request past what the server was seen to run, with the
    /// server serving meanwhile: about concurrency, not an outage.
    pub(crate) over_capacity: bool,
}

/// One bucket's record of what its server runs at once.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ran {
    /// The most requests at once the server ran, learned from the last overload answer
    /// that showed it.
    ran: Option<usize>,
    /// Times in a row the server refused growth past the same `ran`: each doubles how
    /// much slower the cap grows past it, so a server whose room is what it ran is
    /// probed ever more rarely.
    refused: u32,
    /// Overload answers without a stated wait, not yet told apart.
    suspect: Option<Suspect>,
    /// The last overload answer.
    refused_at: Option<Instant>,
    /// A request sent after the last overload answer was served.
    served_since_refused: bool,
    /// The last overload answer found over capacity while the server served: the
    /// requests sent by then are its burst.
    burst_at: Option<Instant>,
}

/// Overload answers without a stated wait, from the first at `at`: the server ran at most
/// `n` at once, or it went down for everyone.
#[derive(Clone, Copy, Debug)]
struct Suspect {
    n: usize,
    at: Instant,
    /// A request in flight when the first came was served.
    concurrent: bool,
    /// A request sent after it was served.
    later: bool,
}

impl Ran {
    /// The most the server was seen to run at once.
    pub(crate) fn get(&self) -> Option<usize> {
        self.ran
    }

    /// How many times slower the cap grows past [`get`](Self::get).
    pub(crate) fn slowdown(&self) -> f64 {
        f64::from(SLOWDOWN << self.refused)
    }

    /// Learns from one outcome: `sent` requests were running on the server when it came
    /// (its own included), `latency` after its request was sent.
    pub(crate) fn observe(
        &mut self,
        verdict: &Classification,
        sent: usize,
        latency: Duration,
        now: Instant,
    ) -> Seen {
        let sent_at = now.checked_sub(latency);
        let refused = (sent > 1).then(|| sent - 1);
        match verdict.class {
            Class::Overloaded => self.overloaded(verdict, refused, sent_at, now),
            Class::Success => {
                if self
                    .refused_at
                    .is_none_or(|at| sent_at.is_some_and(|s| s > at))
                {
                    self.served_since_refused = true;
                }
                let ran = sent_at.and_then(|s| self.confirm(s));
                if let Some(n) = ran {
                    self.learn(n);
                }
                Seen {
                    ran,
                    over_capacity: false,
                }
            }
            _ => Seen::default(),
        }
    }

    /// An overload answer refusing the `refused + 1`-th request running (`None`: a lone
    /// request), sent at `sent_at`.
    fn overloaded(
        &mut self,
        verdict: &Classification,
        refused: Option<usize>,
        sent_at: Option<Instant>,
        now: Instant,
    ) -> Seen {
        let past_ran = self
            .ran
            .is_some_and(|ran| refused.is_some_and(|n| n >= ran));
        // Refused past what the server runs while it serves: the server's concurrency,
        // and the requests in flight then are one burst with it (their refusals are the
        // same episode, not the server going down). A request sent later needs the
        // server to serve one sent after the last refusal.
        let opens = self.served_since_refused && past_ran;
        let in_burst = past_ran
            && self
                .burst_at
                .is_some_and(|at| sent_at.is_some_and(|s| s <= at));
        let over_capacity = opens || in_burst;
        if opens {
            self.burst_at = Some(now);
        } else if !over_capacity {
            // The episode ends at the first refusal it does not explain.
            self.burst_at = None;
        }
        self.refused_at = Some(now);
        self.served_since_refused = false;
        let ran = if verdict.retry_after.is_some() {
            refused
        } else {
            self.suspect(refused, now);
            None
        };
        if let Some(n) = ran {
            self.learn(n);
        }
        Seen { ran, over_capacity }
    }

    /// An overload answer without a wait refusing the `n + 1`-th request sent (`None`: a
    /// lone request, refused by a server that refuses even one: it is down, and what
    /// was suspected is cleared).
    fn suspect(&mut self, refused: Option<usize>, now: Instant) {
        self.suspect = refused.map(|n| match self.suspect {
            // The fewest in flight that were refused bounds what the server runs.
            Some(s) => Suspect { n: s.n.min(n), ..s },
            None => Suspect {
                n,
                at: now,
                concurrent: false,
                later: false,
            },
        });
    }

    /// A request sent at `sent` was served: what it confirms of the suspect.
    fn confirm(&mut self, sent: Instant) -> Option<usize> {
        let s = self.suspect.as_mut()?;
        if sent < s.at {
            s.concurrent = true;
        } else {
            s.later = true;
        }
        let ran = (s.concurrent && s.later).then_some(s.n);
        if ran.is_some() {
            self.suspect = None;
        }
        ran
    }

    /// The server ran `n` at once, not more: the same `n` again slows growth past it.
    fn learn(&mut self, n: usize) {
        self.refused = if self.ran == Some(n) {
            (self.refused + 1).min(MAX_REFUSED)
        } else {
            0
        };
        self.ran = Some(n);
        tracing::debug!(
            target: "abide_cap",
            ran = n,
            refused = self.refused,
            "the server runs fewer at once than were sent"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(class: Class, retry_after: Option<Duration>) -> Classification {
        let mut c = Classification::new(class, "test");
        c.retry_after = retry_after;
        c
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_overload_stating_a_wait_shows_at_once_how_many_ran() {
        let now = Instant::now();
        let mut r = Ran::default();
        let seen = r.observe(&verdict(Class::Overloaded, Some(MS)), 3, MS, now);
        assert_eq!(seen.ran, Some(2));
        assert_eq!(r.get(), Some(2));
        // A lone request refused says nothing of how many run.
        let seen = r.observe(&verdict(Class::Overloaded, Some(MS)), 1, MS, now);
        assert_eq!(seen.ran, None);
    }

    #[test]
    fn an_overload_without_a_wait_is_concurrency_once_the_server_serves_both_sides_of_it() {
        let t0 = Instant::now();
        let ok = verdict(Class::Success, None);
        let mut r = Ran::default();
        assert_eq!(
            r.observe(&verdict(Class::Overloaded, None), 2, MS, t0).ran,
            None
        );
        // Sent before the refusal, served after it: not enough alone (an outage also
        // lets through what it had accepted).
        assert_eq!(r.observe(&ok, 1, 100 * MS, t0 + 50 * MS).ran, None);
        // Sent after it, and served: the server was up, it ran one at once.
        assert_eq!(r.observe(&ok, 1, 100 * MS, t0 + 300 * MS).ran, Some(1));
    }

    #[test]
    fn a_lone_request_refused_without_a_wait_clears_what_was_suspected() {
        let t0 = Instant::now();
        let ok = verdict(Class::Success, None);
        let mut r = Ran::default();
        r.observe(&verdict(Class::Overloaded, None), 3, MS, t0);
        r.observe(&ok, 1, 100 * MS, t0 + 50 * MS);
        r.observe(&verdict(Class::Overloaded, None), 1, MS, t0 + 60 * MS);
        assert_eq!(r.observe(&ok, 1, 10 * MS, t0 + 300 * MS).ran, None);
        assert_eq!(r.get(), None);
    }

    #[test]
    fn refusals_at_the_same_level_slow_the_growth_past_it_up_to_64_times() {
        let now = Instant::now();
        let mut r = Ran::default();
        let mut slowdowns = Vec::new();
        for _ in 0..6 {
            r.observe(&verdict(Class::Overloaded, Some(MS)), 2, MS, now);
            slowdowns.push(r.slowdown());
        }
        assert_eq!(slowdowns, [8.0, 16.0, 32.0, 64.0, 64.0, 64.0]);
        // Another level starts over.
        r.observe(&verdict(Class::Overloaded, Some(MS)), 4, MS, now);
        assert_eq!((r.get(), r.slowdown()), (Some(3), 8.0));
    }

    #[test]
    fn a_burst_of_refusals_past_what_the_server_ran_is_one_over_capacity_episode() {
        let t0 = Instant::now();
        let ok = verdict(Class::Success, None);
        let busy = verdict(Class::Overloaded, None);
        let mut r = Ran::default();
        r.observe(&verdict(Class::Overloaded, Some(MS)), 2, MS, t0);
        r.observe(&ok, 1, 10 * MS, t0 + 100 * MS);
        assert!(r.observe(&busy, 2, MS, t0 + 200 * MS).over_capacity);
        // Another of the same burst (sent before that refusal), nobody served in
        // between: still the server's concurrency.
        assert!(r.observe(&busy, 3, 20 * MS, t0 + 210 * MS).over_capacity);
        // One sent after it, with nobody served since: the server may be going down.
        assert!(!r.observe(&busy, 2, 5 * MS, t0 + 220 * MS).over_capacity);
        // Within what the server ran: not explained by concurrency either. The episode
        // is over: a request of the burst refused now is no longer explained by it.
        assert!(!r.observe(&busy, 1, 100 * MS, t0 + 230 * MS).over_capacity);
        assert!(!r.observe(&busy, 3, 50 * MS, t0 + 240 * MS).over_capacity);
        // Served, sent after the last refusal: the server is up, a new burst may open.
        r.observe(&ok, 1, 10 * MS, t0 + 300 * MS);
        assert!(r.observe(&busy, 2, MS, t0 + 310 * MS).over_capacity);
    }
}
