//! A learned token bucket: a continuous refill, measured from successive answers.

use super::time::{later, nanos, scale, since, MAX_SPAN};
use super::Ticket;
use abide_headers::Limit;
use std::time::Duration;
use tokio::time::Instant;

/// The shortest span over which other consumers' use of a shared token bucket is measured
/// (shorter spans are mostly noise: latency jitter, integer counts).
pub(super) const SHARE_SAMPLE: Duration = Duration::from_secs(2);

/// Refill units a share measurement spans at least. Levels are stated in whole units
/// (rounded down), so what two answers show consumed is off by up to a unit: over a
/// span that refills less than a unit, that error is the whole refill (one request of
/// six every 5 minutes, measured over 2 s, read as another process taking half of it).
const SHARE_SAMPLE_UNITS: u64 = 4;

/// The span of one share measurement on a bucket refilling one unit per `unit_ns`.
fn share_sample(unit_ns: u64) -> Duration {
    SHARE_SAMPLE.max(Duration::from_nanos(
        unit_ns.saturating_mul(SHARE_SAMPLE_UNITS),
    ))
}

/// The smallest share of a token bucket's refill this client keeps for itself whatever
/// others seem to take: measurement noise must not starve it.
pub(super) const MIN_SHARE: f64 = 0.1;

/// The share of a token bucket's refill left unclaimed when others draw from it too.
pub(super) const SHARED_MARGIN: f64 = 0.05;

/// Requests' worth of a bucket's level others must be seen taking between two answers
/// for that to count before a whole share sample has passed: well past the rounding of
/// levels and the estimates of costs.
const OTHERS_CLEAR: u64 = 8;

/// Others taking less than this share of the refill is measurement noise, not sharing.
pub(super) const SHARED_BELOW: f64 = 0.02;

/// A token bucket that refills continuously (OpenAI's and Anthropic's documented model:
/// `reset` is the time until the bucket is full again). Paced by GCRA at this client's
/// share of the refill rate with the bucket's capacity as burst; the level is taken from
/// each response.
#[derive(Clone, Copy, Debug)]
pub(super) struct Refill {
    /// Capacity, less what the server advertises but does not grant (`phantom`).
    pub(super) capacity: u64,
    /// Units the server advertises beyond what it grants, learned from a 429 that said
    /// some remained.
    pub(super) phantom: u64,
    /// The server's refill: nanoseconds per unit.
    pub(super) unit_ns: u64,
    /// How many units were missing in the answer `unit_ns` was estimated from.
    pub(super) basis: u64,
    /// Other consumers of the same quota (other processes on the key), units per second.
    pub(super) others_per_s: f64,
    /// This client's share of what the measurements showed drawn from the level (1 alone).
    pub(super) drawn: f64,
    /// Where the last share measurement started: (instant, server remaining, own count
    /// of units the server took: admitted less `refused`).
    pub(super) sample: Option<(Instant, u64, u64)>,
    /// Units of this client's requests the server refused (they took nothing from the
    /// bucket, so they are not this client's consumption).
    pub(super) refused: u64,
    /// GCRA theoretical arrival time.
    pub(super) tat: Instant,
}

impl Refill {
    /// The server's refill, units per second.
    fn rate(&self) -> f64 {
        1e9 / self.unit_ns.max(1) as f64
    }

    /// Whether others were seen drawing on the same level. Below [`SHARED_BELOW`] of the
    /// refill, or in a busy bucket a unit per share measurement, what others seem to take
    /// is the noise of the measurement itself.
    fn shared(&self) -> bool {
        let noise = if self.busy() {
            1.0 / SHARE_SAMPLE.as_secs_f64()
        } else {
            0.0
        };
        self.others_per_s > (self.rate() * SHARED_BELOW).max(noise)
    }

    /// Refills more than [`SHARE_SAMPLE_UNITS`] over a [`SHARE_SAMPLE`]: its share
    /// measurements span the sample's time, not its units.
    fn busy(&self) -> bool {
        share_sample(self.unit_ns) == SHARE_SAMPLE
    }

    /// This client's share of what is drawn from the level: 1 alone.
    fn share(&self) -> f64 {
        if self.shared() {
            self.drawn.clamp(MIN_SHARE, 1.0)
        } else {
            1.0
        }
    }

    /// This client's nanoseconds per unit: its share of the refill. With others on the
    /// same level, the share it was seen to draw: clients that each take the refill
    /// less what the others took a moment ago overshoot together after a burst, and
    /// undershoot together after a lull; shares of the drawing sum to the whole.
    pub(super) fn share_ns(&self) -> u64 {
        let rate = self.rate();
        // Sharing with others: leave a little of the refill unclaimed, so that the
        // bucket keeps a unit or two for the moments several of us ask at once.
        let margin = if self.shared() { SHARED_MARGIN } else { 0.0 };
        // Or what the others leave, when they take less than their shares (done, or
        // slowed down).
        let left_over = rate * (1.0 - margin) - self.others_per_s;
        let mine = (rate * (1.0 - margin) * self.share()).max(left_over);
        let ns = 1e9 / mine;
        if ns.is_finite() && ns < MAX_SPAN.as_nanos() as f64 {
            ns as u64
        } else {
            nanos(MAX_SPAN)
        }
    }

    /// What this client may take of `left` units the server says remain: all of them
    /// alone; with others drawing on the same level, its share of the drawing, as the
    /// measurements show it (each client taking every unit it sees, they all take the
    /// last one).
    fn claim(&self, left: u64) -> u64 {
        (left as f64 * self.share()) as u64
    }

    /// One answer's part in measuring what others take: the level `left` at `now`, with
    /// `mine` of this client's units taken by the server so far, `uncounted` admitted
    /// after the observed request, `per_request` units a request. A measurement spans
    /// [`share_sample`], or less when others clearly drew: over a short span, only a
    /// drawing far past the rounding of levels and what of ours the server may have
    /// counted early (out of order) is others': a second process draining the bucket is
    /// seen at once. A refusal's level says nothing of others.
    fn measure(
        &mut self,
        now: Instant,
        left: u64,
        mine: u64,
        per_request: u64,
        uncounted: u64,
        throttled: bool,
    ) {
        let Some((at, was, mine_then)) = self.sample else {
            self.sample = Some((now, left, mine));
            return;
        };
        let span = since(now, at);
        let dt = span.as_secs_f64();
        let rate = self.rate();
        let refilled = dt * rate;
        let consumed = was as f64 + refilled - left as f64;
        let ours = mine.saturating_sub(mine_then) as f64;
        let theirs = consumed - ours;
        let clear = dt > 0.0
            && !throttled
            && theirs >= (OTHERS_CLEAR * per_request).saturating_add(uncounted) as f64;
        if span < share_sample(self.unit_ns) && !clear {
            return;
        }
        self.sample = Some((now, left, mine));
        if throttled {
            return;
        }
        if (was as f64) + refilled >= self.capacity as f64 {
            // The bucket filled up: between us, we left refill unused.
            self.others_per_s *= 0.5;
            self.drawn = 0.5 * self.drawn + 0.5;
            return;
        }
        let theirs = if self.busy() {
            // Over a span as short as [`SHARE_SAMPLE`] holding many units, what two
            // answers show others taking is off by a few units either way: ours counted
            // early or late (out of order, slots let go at an answer's instant), levels
            // rounded to whole units. Within a request's worth it is not told apart from
            // ours, and averaged as it comes (negative too) it tends to nothing when
            // nobody else draws. Clipped at zero, it read as others taking a few percent
            // of the refill, and a lone client left that unused.
            if theirs.abs() <= per_request as f64 {
                0.0
            } else {
                theirs
            }
        } else {
            theirs.max(0.0)
        };
        if ours + theirs > 0.0 {
            let share = (ours / (ours + theirs)).clamp(0.0, 1.0);
            // The first sight of others replaces the lone default.
            self.drawn = if self.others_per_s > 0.0 {
                0.5 * self.drawn + 0.5 * share
            } else {
                share
            };
        }
        // Others draining what the bucket held take at most its refill from now on.
        let others = (theirs / dt).min(rate);
        self.others_per_s = (0.5 * self.others_per_s + 0.5 * others).max(0.0);
    }

    /// More than the advertised capacity: no refill ever admits it.
    pub(super) fn never_fits(&self, units: u64) -> bool {
        units > self.capacity.saturating_add(self.phantom).max(1)
    }

    pub(super) fn plan(mut self, at: Instant, units: u64) -> (Instant, Refill) {
        if self.never_fits(units) {
            // Can never fit the bucket: a request about itself (the server will say it is
            // too large). Send it now, reserving nothing, rather than hold a full bucket
            // of everyone's quota for it.
            return (at, self);
        }
        // Fits what is advertised but not what is granted: send it when the bucket is
        // full and let the server decide, rather than wait forever.
        let units = units.min(self.capacity.max(1));
        let t = self.share_ns();
        let tolerance = scale(t, self.capacity, 1);
        let increment = scale(t, units, 1);
        let needed = later(self.tat, increment);
        let start = match needed.checked_sub(tolerance) {
            Some(earliest) if earliest > at => earliest,
            _ => at,
        };
        self.tat = later(self.tat.max(start), increment);
        (start, self)
    }
}

/// The token-bucket model of one observed limit, `None` when the observation cannot
/// define one (no capacity, no way to tell the refill rate). What the answer cannot have
/// counted: `admitted_after` the observed request, and `let_go_after` it where this
/// process keeps that (else the same).
#[allow(clippy::too_many_arguments)]
pub(super) fn learn_refill(
    old: Option<Refill>,
    limit: &Limit,
    remaining: u64,
    reset: Duration,
    now: Instant,
    ticket: Option<Ticket>,
    counts_cost: bool,
    admitted_after: u64,
    let_go_after: u64,
    throttled: bool,
    refused: bool,
) -> Option<Refill> {
    let advertised = limit.limit.filter(|&c| c > 0)?;
    let mut phantom = old.map_or(0, |r| r.phantom);
    if throttled && super::learned::refused_within(remaining, ticket, counts_cost) {
        // Refused while saying enough remained: the server grants less than it says.
        phantom = phantom.max(remaining).min(advertised - 1);
    }
    // A limit lowered below what was phantom: keep at least one unit of capacity.
    let phantom = phantom.min(advertised - 1);
    let capacity = advertised - phantom;
    let left = remaining.saturating_sub(phantom).min(capacity);
    // The refill rate: what is missing refills by the reset (exact, and it holds even
    // when the advertised limit is not the enforced one); else limit per window.
    let missing = advertised.saturating_sub(remaining);
    //
    // The server's level has a fraction of a unit that `remaining` rounds away, so
    // `reset / missing` is at most the true time per unit (never more): keep the
    // largest estimate seen, and let a smaller one in only slowly (a raised limit).
    //
    // The estimate from the answer with the most missing is the one to trust: a true
    // token bucket gives the same rate from every answer (the most missing, the least
    // rounding), while a window in the same header names (a sliding or fixed window
    // behind OpenAI's names) gives `reset / missing` far above its rate when little is
    // missing (6 used of 18, all back in 2 s, reads as 3 s per 9 units), and close to
    // its average rate when most is missing. So a less informed answer never slows the
    // pace down; the basis decays slowly, so a changed server is learned again.
    let estimate = (missing > 0 && !reset.is_zero()).then(|| nanos(reset) / missing);
    let basis = old.map_or(0, |r| r.basis - r.basis / 64);
    let (unit_ns, basis) = match (estimate, old.map(|r| r.unit_ns)) {
        (Some(new), Some(was)) if missing > basis => {
            // `remaining` rounds less than a unit away: the true time per unit is at
            // most `reset / (missing - 1)`. Within that bound, the old estimate may be
            // a token bucket's, more exact: keep the larger. Above it, it cannot be.
            let bound = nanos(reset) / (missing - 1).max(1);
            (Some(if was > bound { new } else { new.max(was) }), missing)
        }
        (Some(new), Some(was)) if missing == basis => (Some(new.max(was)), basis),
        (Some(new), Some(was)) if new < was => (Some(was - (was - new) / 16), basis),
        (Some(_), Some(was)) => (Some(was), basis),
        (Some(new), None) => (Some(new), missing),
        (None, Some(was)) => (Some(was), basis),
        (None, None) => (limit.window.map(|w| nanos(w) / advertised), 0),
    };
    let unit_ns = unit_ns.filter(|&ns| ns > 0)?;

    let mut refill = Refill {
        capacity,
        phantom,
        unit_ns,
        basis,
        others_per_s: old.map_or(0.0, |r| r.others_per_s),
        drawn: old.map_or(1.0, |r| r.drawn),
        sample: old.and_then(|r| r.sample),
        refused: old.map_or(0, |r| r.refused),
        tat: now,
    };
    if let (true, Some(t)) = (refused, ticket) {
        // A request counts 1; a refused request's cost is not in its ticket, so the
        // average cost of the bucket's admissions stands in.
        let units = if counts_cost {
            t.units / t.requests.max(1)
        } else {
            1
        };
        refill.refused = refill.refused.saturating_add(units);
    }
    // Measure what others on the same quota take: the server's level moved by the refill,
    // our own admissions and theirs.
    if let Some(t) = ticket {
        let admitted = if counts_cost { t.units } else { t.requests };
        let mine = admitted.saturating_sub(refill.refused);
        let per_request = if counts_cost {
            t.units / t.requests.max(1)
        } else {
            1
        };
        // A busy bucket's level moves many units over an answer's latency jitter: it is
        // the server's when the request reached it, about when it was let go.
        let at = match t.released {
            Some(r) if refill.busy() => r.min(now),
            _ => now,
        };
        refill.measure(at, left, mine, per_request, admitted_after, throttled);
    }
    // The level this client may still use: its claim of what the server said (all of it
    // alone, its share with others), less what the server had not counted yet. Alone,
    // that is what it let go after the observed request: a quick answer after a slow one
    // places the schedule earlier, newcomers go ahead of slots reserved before them, and
    // counted by admission those slots read as spent already, overdrawing the bucket.
    // With others, the claim is a share of the level as measured by admission, and
    // what was admitted after stays its counterpart.
    let uncounted = if refill.shared() {
        admitted_after
    } else {
        let_go_after
    };
    let used = capacity
        .saturating_sub(refill.claim(left))
        .saturating_add(uncounted);
    let share = refill.share_ns();
    refill.tat = later(now, scale(share, used, 1));
    Some(refill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abide_headers::{Dialect, Scope};

    /// OpenAI's request limit of 300 a minute: `remaining` left, full in `reset`.
    fn requests(remaining: u64) -> Limit {
        let mut l = Limit::new(Scope::Requests, Dialect::OpenAi);
        l.limit = Some(300);
        l.remaining = Some(remaining);
        l.reset = Some(Duration::from_millis(200) * u32::try_from(300 - remaining).unwrap());
        l
    }

    fn ticket(requests: u64) -> Option<Ticket> {
        Some(Ticket {
            requests,
            units: requests,
            cost: 1,
            ..Ticket::default()
        })
    }

    fn learn(old: Option<Refill>, remaining: u64, now: Instant, mine: u64) -> Refill {
        learn_refill(
            old,
            &requests(remaining),
            remaining,
            requests(remaining).reset.unwrap(),
            now,
            ticket(mine),
            false,
            0,
            0,
            false,
            false,
        )
        .unwrap()
    }

    #[test]
    fn a_lone_client_claims_the_whole_level() {
        let now = Instant::now();
        let ms = Duration::from_millis(1);
        // Its own 20 requests took 20 of the level.
        let r = learn(None, 280, now, 10);
        let r = learn(Some(r), 260, now + 100 * ms, 30);
        assert!(!r.shared());
        assert_eq!(r.claim(260), 260);
        // Free to go now: its reservations start from the level it sees.
        assert!(r.tat <= later(now + 100 * ms, scale(r.share_ns(), 40, 1)));
    }

    #[test]
    fn others_draining_the_level_are_seen_at_once_and_leave_a_share_of_it() {
        let now = Instant::now();
        let ms = Duration::from_millis(1);
        // 20 of its own, 60 of others', in a tenth of a second: three others like it.
        let r = learn(None, 280, now, 10);
        let r = learn(Some(r), 200, now + 100 * ms, 30);
        assert!(r.shared());
        // (The half unit refilled meanwhile was drawn too.)
        assert!((48..=50).contains(&r.claim(200)), "{}", r.claim(200));
        let alone = 1e9 / r.unit_ns as f64;
        assert!(1e9 / (r.share_ns() as f64) < alone * 0.5);
        // Seen again: its pace is its share of the refill (5 a second), less the margin.
        let r = learn(Some(r), 120, now + 200 * ms, 50);
        let per_s = 1e9 / r.share_ns() as f64;
        assert!((1.1..1.3).contains(&per_s), "{per_s}");
    }

    #[test]
    fn a_lone_client_is_not_taken_for_others_by_the_noise_of_its_answers() {
        // 300 a minute (5 a second: busy), an answer every 2 s with its own 10 requests
        // between, the level each shows off by a unit (rounded, one counted early).
        let now = Instant::now();
        let s = Duration::from_secs(2);
        let mut r = learn(None, 20, now, 0);
        for (k, noise) in [0i64, 1, 1, 0, 0, -1, -1, 0, 1, 0, -1, 0]
            .into_iter()
            .enumerate()
        {
            let k = u32::try_from(k).unwrap() + 1;
            let left = u64::try_from(20 + noise).unwrap();
            r = learn(Some(r), left, now + s * k, u64::from(k) * 10);
            assert!(!r.shared(), "answer {k}: others {}/s", r.others_per_s);
        }
        assert_eq!(r.share_ns(), r.unit_ns);
        assert_eq!(r.claim(20), 20);
    }
}
