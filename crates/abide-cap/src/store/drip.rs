//! A daily limit that replenishes continuously, learned from its 429s: the headers state
//! only the minute windows, and each refusal states the wait for the next request.

use super::bucket::BucketState;
use super::time::{later, nanos, since, MAX_SPAN};
use super::Ticket;
use std::time::Duration;
use tokio::time::Instant;

/// A drip unused for this long (its credit grew past it: callers sent slower than the
/// refill all along) no longer binds, and is forgotten.
const DRIP_IDLE: Duration = Duration::from_secs(3600);

/// A request every `interval`: the refill of a spent daily limit that replenishes
/// continuously (OpenAI's and Anthropic's daily limits: "... per day (RPD) ... Please try
/// again in 8.64s"). Each refusal states when the next request is granted; from one
/// stated return to another the server granted what succeeded in between, so
/// `interval` is that span over those successes ([`BucketState::drip_refused`]). Unsent
/// refill is credit (the daily bucket holds the whole day), so a caller slower than the
/// refill is never held back.
///
/// Without it, the pause a refusal states let every waiting request go when it ended:
/// the first took the one request the refill had granted and the next drew a 429, a
/// refusal for every request served on the refill.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Drip {
    /// The refill: one request per this.
    pub(super) interval: Duration,
    /// When the next request is granted (in the past: credit since).
    pub(super) next: Instant,
    /// The last stated return, and the bucket's request count then.
    pub(super) anchor: Instant,
    pub(super) anchor_requests: u64,
    /// Successes of requests admitted since the anchor.
    pub(super) served: u32,
    /// The return the last refusal stated.
    pub(super) refused: Instant,
}

/// How long a drip paces without a refusal before it is doubted: from then on, each
/// [`DRIP_BASIS`] successes halve the interval until a refusal measures it again. A drip
/// paced at the refill draws no refusal, and neither does one paced slower than the
/// refill is now (the others sharing it finished; the daily limit reset whole): only
/// sending faster tells them apart. At the refill that costs a refusal an hour.
const DRIP_TRUST: Duration = Duration::from_secs(3600);

/// Successes a measurement of the interval spans before it is trusted whole.
const DRIP_BASIS: u32 = 4;

/// Windows this long or longer are daily (or longer) limits the headers describe.
const DAILY_WINDOW: Duration = Duration::from_secs(3600);

/// Whether the headers of a refused answer explain a daily refusal themselves: a limit
/// they state is spent, or one of them is a window of an hour or more. Then the learned
/// pace of that limit answers it; the drip is for a daily limit the headers never show
/// (OpenAI's headers state the minute windows only), where the refusals' stated waits are
/// all there is to learn from.
pub(super) fn headers_show_daily(snapshot: &abide_headers::RateLimitSnapshot) -> bool {
    snapshot
        .limits()
        .iter()
        .any(|l| l.remaining == Some(0) || l.window.is_some_and(|w| w >= DAILY_WINDOW))
}

impl Drip {
    /// The start of one request asking at `start` (the latest slot the other limits
    /// give), and the drip after it.
    pub(super) fn plan(&self, start: Instant) -> (Instant, Instant) {
        let at = start.max(self.next);
        (at, later(self.next, self.interval))
    }
}

impl BucketState {
    /// A refusal of a daily limit that states the wait `stated`: the next request is
    /// granted at `now + stated`.
    ///
    /// From one stated return to another the server granted exactly what succeeded in
    /// between, so the interval is that span over those successes. One span is noisy
    /// (a token limit's requests cost unlike amounts; stated waits are rounded), but the
    /// noise of consecutive spans cancels, so the measurement keeps its anchor until it
    /// spans [`DRIP_BASIS`] successes. Until then the interval is taken short (the span
    /// over one more than succeeded): an interval taken too long would never be
    /// corrected, since pacing slower than the refill draws no refusal to learn from,
    /// while one too short draws the next refusal, which extends the measurement.
    pub(super) fn drip_refused(&mut self, now: Instant, stated: Duration) {
        let resume = later(now, stated);
        let (interval, anchor, anchor_requests, served) = match self.drip.as_deref() {
            Some(d) if d.served > 0 && resume > d.anchor => {
                let span = since(resume, d.anchor);
                if d.served >= DRIP_BASIS {
                    (span / d.served, resume, self.requests, 0)
                } else {
                    (span / (d.served + 1), d.anchor, d.anchor_requests, d.served)
                }
            }
            // Nothing served since the anchor: the bucket holds a request again at the
            // later return, the better anchor. The first refusal's wait is the shortest
            // the interval can be (the refill has granted part of the next request).
            Some(d) => (d.interval.max(stated), resume, self.requests, 0),
            None => (stated, resume, self.requests, 0),
        };
        let interval = interval.clamp(Duration::from_millis(1), MAX_SPAN);
        tracing::debug!(
            interval_ms = interval.as_millis() as u64,
            served,
            "a spent daily limit refills one request per interval"
        );
        self.drip = Some(Box::new(Drip {
            interval,
            next: resume,
            anchor,
            anchor_requests,
            served,
            refused: resume,
        }));
    }

    /// A success: counted towards the interval if admitted since the last stated return.
    /// Past [`DRIP_TRUST`] without a refusal, every [`DRIP_BASIS`] of them halve it.
    pub(super) fn drip_served(&mut self, now: Instant, ticket: Option<Ticket>) {
        if let (Some(t), Some(d)) = (ticket, &mut self.drip) {
            if t.requests > d.anchor_requests {
                d.served = d.served.saturating_add(1);
                if later(d.refused, DRIP_TRUST) < now && d.served % DRIP_BASIS == 0 {
                    d.interval = (d.interval / 2).max(Duration::from_millis(1));
                    tracing::debug!(
                        interval_ms = d.interval.as_millis() as u64,
                        "a daily limit's refill drew no refusal for an hour: sending faster"
                    );
                }
            }
        }
    }

    /// Forgets a drip whose credit shows it no longer binds.
    pub(super) fn drip_expire(&mut self, now: Instant) {
        if self
            .drip
            .as_ref()
            .is_some_and(|d| later(d.next, DRIP_IDLE) < now)
        {
            self.drip = None;
        }
    }

    /// The bucket is paused, exhausted or down: the reservations made on the drip whose
    /// slots lie ahead are void (their requests ask again), so it goes back to the first
    /// of those slots, keeping the refill's phase. Without it the requests asking again
    /// would queue behind the slots nobody will use, one refill each.
    pub(super) fn drip_void(&mut self, now: Instant) {
        if let Some(d) = &mut self.drip {
            if d.next > now {
                let ahead = nanos(since(d.next, now));
                let phase = ahead % nanos(d.interval).max(1);
                d.next = later(now, Duration::from_nanos(phase));
            }
        }
    }

    /// Gives back the slot a dropped reservation took.
    pub(super) fn drip_cancel(&mut self, now: Instant) {
        if let Some(d) = &mut self.drip {
            d.next = d.next.checked_sub(d.interval).unwrap_or(now).max(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn the_interval_is_the_span_between_stated_returns_over_what_succeeded() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        let serve = |b: &mut BucketState, n| {
            for _ in 0..n {
                b.requests += 1;
                b.drip_served(t0, Some(b.ticket()));
            }
        };
        // First refusal: 3 s to the next request (part of it refilled already).
        b.drip_refused(t0, 3 * S);
        assert_eq!(b.drip.as_deref().map(|d| d.interval), Some(3 * S));
        // Two requests admitted after it succeed; the next refusal, at 20 s, states
        // 7 s: from 3 s to 27 s the server granted two. Two successes are too few to
        // trust: the interval is taken short (24 s over three), the anchor kept.
        serve(&mut b, 2);
        b.drip_refused(t0 + 20 * S, 7 * S);
        let d = *b.drip.clone().unwrap();
        assert_eq!(
            (d.interval, d.next, d.anchor),
            (8 * S, t0 + 27 * S, t0 + 3 * S)
        );
        // A refusal with nothing served since extends the same measurement.
        b.drip_refused(t0 + 28 * S, 5 * S);
        assert_eq!(b.drip.as_deref().map(|d| d.interval), Some(10 * S));
        // Four successes since the anchor: 45 s over four, and a new anchor.
        serve(&mut b, 2);
        b.drip_refused(t0 + 40 * S, 8 * S);
        let d = *b.drip.clone().unwrap();
        assert_eq!(d.interval, Duration::from_millis(11_250));
        assert_eq!((d.anchor, d.served), (t0 + 48 * S, 0));
        // Then a refusal with nothing served keeps the interval measured.
        b.drip_refused(t0 + 49 * S, 2 * S);
        assert_eq!(
            b.drip.as_deref().map(|d| d.interval),
            Some(Duration::from_millis(11_250))
        );
    }

    #[test]
    fn requests_admitted_before_the_stated_return_do_not_count() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        b.requests = 5;
        let before = b.ticket();
        b.drip_refused(t0, 3 * S);
        b.drip_served(t0, Some(before));
        b.drip_served(t0, None);
        assert_eq!(b.drip.as_deref().map(|d| d.served), Some(0));
    }

    #[test]
    fn unsent_refill_is_credit_and_a_long_unused_drip_is_forgotten() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        b.drip_refused(t0, 10 * S);
        let d = *b.drip.clone().unwrap();
        // Asked 35 s later: the slot at 10 s is long granted; it goes at once, and the
        // next is granted at 20 s (still in the past: three more go at once).
        let (start, next) = d.plan(t0 + 35 * S);
        assert_eq!(start, t0 + 35 * S);
        assert_eq!(next, t0 + 20 * S);
        // Asked before its slot: it waits for it.
        assert_eq!(d.plan(t0 + 4 * S).0, t0 + 10 * S);
        b.drip_expire(t0 + DRIP_IDLE);
        assert!(b.drip.is_some());
        b.drip_expire(t0 + DRIP_IDLE + 11 * S);
        assert!(b.drip.is_none());
    }

    #[test]
    fn a_pause_voids_the_slots_ahead_but_keeps_the_phase() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        b.drip_refused(t0, 10 * S);
        // Five reservations: slots at 10, 20, 30, 40 and 50 s; the next would be 60 s.
        for _ in 0..5 {
            let d = b.drip.as_mut().unwrap();
            d.next = d.plan(t0).1;
        }
        assert_eq!(b.drip.as_deref().map(|d| d.next), Some(t0 + 60 * S));
        // Paused at 23 s: the slots at 10 and 20 s were sent, the rest are void.
        b.drip_void(t0 + 23 * S);
        assert_eq!(b.drip.as_deref().map(|d| d.next), Some(t0 + 30 * S));
        // Nothing ahead: nothing moves.
        b.drip_void(t0 + 40 * S);
        assert_eq!(b.drip.as_deref().map(|d| d.next), Some(t0 + 30 * S));
    }

    #[test]
    fn a_drip_without_refusals_for_an_hour_is_doubted() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        // Refused once, then served for an hour at 10 s (a daily limit that reset
        // whole, say): nothing says the refill is faster.
        b.drip_refused(t0, 10 * S);
        let mut now = t0;
        for _ in 0..360 {
            now += 10 * S;
            b.requests += 1;
            b.drip_served(now, Some(b.ticket()));
        }
        assert_eq!(b.drip.as_deref().map(|d| d.interval), Some(10 * S));
        // Past the hour, every fourth success halves it.
        for _ in 0..8 {
            now += 10 * S;
            b.requests += 1;
            b.drip_served(now, Some(b.ticket()));
        }
        assert_eq!(
            b.drip.as_deref().map(|d| d.interval),
            Some(2500 * Duration::from_millis(1))
        );
        // A refusal measures it again: 368 served from 10 s to 3690 s.
        b.drip_refused(now, 10 * S);
        let d = *b.drip.clone().unwrap();
        assert_eq!((d.interval, d.served), (10 * S, 0));
    }

    #[test]
    fn absurd_waits_never_overflow() {
        let t0 = Instant::now();
        let mut b = BucketState::new(t0);
        b.drip_refused(t0, Duration::MAX);
        let d = *b.drip.clone().unwrap();
        assert!(d.interval <= MAX_SPAN);
        let _ = d.plan(t0);
        b.requests += 1;
        b.drip_served(t0, Some(b.ticket()));
        b.drip_refused(t0 + S, Duration::MAX);
        b.drip_cancel(t0 + S);
        b.drip_void(t0 + S);
        assert!(b.drip.is_some());
    }
}
