//! Learned limits: one entry per scope a server's headers describe, paced as a window
//! or a token bucket; and which of them a throttle blames.

use super::boundary::{fresh, Boundary, WHOLE_SECOND_ROUNDING};
use super::bucket::BucketState;
use super::refill::{learn_refill, Refill};
use super::released::Releases;
use super::time::{later, nanos, since};
use super::window::{sliding_slack, Pace, Returns};
use super::Ticket;
use abide_classify::{Classification, QuotaScope};
use abide_headers::{Dialect, Limit, QuotaUnit, Scope, MAX_LIMITS};
use std::time::Duration;
use tokio::time::Instant;

/// Learned resets beyond this are taken as this (a daily quota still paces; a server
/// saying "resets in a century" does not stop the client for a century).
pub(super) const MAX_LEARNED_RESET: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most learned scopes kept per bucket.
pub(super) const MAX_SCOPES: usize = 2 * MAX_LIMITS;

#[derive(Clone, Debug)]
pub(super) struct Learned {
    pub(super) scope: Scope,
    pub(super) counts_cost: bool,
    /// The ticket counter of the newest observation applied (older ones are stale).
    pub(super) applied: u64,
    pub(super) pace: Pace,
    /// Set when the limit is a continuously refilling token bucket; then it paces
    /// instead of `pace`.
    pub(super) refill: Option<Refill>,
    /// Answers whose reset did not fit a refilling bucket (see [`window_like`]), with
    /// none between them that did (answers that cannot tell do not count either way); at
    /// [`WINDOW_EVIDENCE`] the scope is paced as a window.
    pub(super) window_evidence: u8,
    /// Answers of a dialect whose reset means "the window ends" (or "the newest spend
    /// ages out") that read as a bucket refilling instead, in a row (see
    /// [`refill_like`]); at [`BUCKET_EVIDENCE`] the scope is paced as a refilling bucket.
    pub(super) bucket_evidence: u8,
    /// The last answer: when, what it said was missing, and when it said it is full.
    pub(super) last: Option<Answer>,
    /// An answer stated a reset well short of the window right after a spend of ours,
    /// which a sliding window cannot (its newest spend ages out a window after it): a
    /// bucket refilling, or a fixed window ending. Its units do not come back a window
    /// after each spend, so this process's own spends do not say when they do.
    pub(super) refills: bool,
    /// An unnamed limit's latest answer, as [`Learned::unit_seen`] compares the next with
    /// it to tell whether the limit counts requests or the cost units they declare.
    pub(super) seen: Option<Seen>,
}

/// An answer of an unnamed limit: what it said remained, and the bucket's request and
/// unit counters when the request it answers was admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) remaining: u64,
    pub(super) requests: u64,
    pub(super) units: u64,
    /// Answers so far whose fall from the one before matched the cost units admitted
    /// between them, with none since that matched the requests (at [`UNIT_EVIDENCE`],
    /// the limit counts costs).
    pub(super) evidence: u8,
}

/// Answers of an unnamed limit that fall by the cost units admitted, with none between
/// that fall by the requests, before the limit is taken to count costs.
pub(super) const UNIT_EVIDENCE: u8 = 3;

/// Whether a learned entry holds the limit an answer states. Named scopes are told apart
/// by their names; an unnamed one by the limit it states: one header that states
/// whichever limit binds most (IETF's drafts, `X-RateLimit-*`) states the request limit
/// one time and the token limit the next, and the two are learned apart.
fn holds(l: &Learned, limit: &Limit) -> bool {
    l.scope == limit.scope
        && (limit.scope != Scope::Unspecified
            || limit.limit.is_none()
            || l.pace.limit.is_none_or(|c| Some(c) == limit.limit))
}

/// Answers that read as a window, not a refilling bucket, before a scope of a
/// continuously refilling dialect is paced as a window.
pub(super) const WINDOW_EVIDENCE: u8 = 3;

/// Answers that read as a refilling bucket, in a row, before a scope of a dialect whose
/// reset is a window's end is paced as a bucket.
pub(super) const BUCKET_EVIDENCE: u8 = 3;

/// One answer of a scope, as [`refill_like`] compares the next with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) at: Instant,
    /// The limit it stated: one header that states whichever limit binds most (IETF's
    /// drafts) may state another the next time.
    pub(super) capacity: u64,
    pub(super) missing: u64,
    pub(super) full_at: Instant,
}

/// Whether two answers of a scope (`last`, then `missing` units short and full again in
/// `reset` at `now`) read as a bucket refilling at a steady rate, where the dialect says
/// a window: a bucket is full again in `missing x unit`, so the instant it states moves
/// by the time per unit for each unit more missing; a window's end stays put, and a
/// sliding window's (its newest spend ageing out) moves with the answers, whatever is
/// missing. `slack` covers the rounding of the resets. `None` when the two cannot tell
/// (as much missing in both, or nothing).
pub(super) fn refill_like(
    last: &Answer,
    missing: u64,
    reset: Duration,
    now: Instant,
    slack: Duration,
) -> Option<bool> {
    if missing == 0 || last.missing == 0 || now < last.at {
        return None;
    }
    let unit = reset.as_secs_f64() / missing as f64;
    // A bucket's move must stand out of the rounding to tell.
    let apart = missing.abs_diff(last.missing);
    if unit * (apart as f64) < 4.0 * slack.as_secs_f64() {
        return None;
    }
    let full_at = later(now, reset);
    // How far the stated full instant moved beyond the time that passed, per unit more
    // missing: a bucket's time per unit.
    let moved = if full_at >= last.full_at {
        since(full_at, last.full_at).as_secs_f64()
    } else {
        -since(last.full_at, full_at).as_secs_f64()
    };
    let per_unit =
        (moved - since(now, last.at).as_secs_f64()) / (missing as f64 - last.missing as f64);
    let tolerance = unit / 4.0 + 2.0 * slack.as_secs_f64() / apart as f64;
    Some(unit > 0.0 && (per_unit - unit).abs() <= tolerance)
}

/// Whether an answer of a dialect whose reset means "full again" reads as a window
/// instead (a sliding or fixed window behind OpenAI's header names): a refilling bucket
/// is full again in `missing x unit` (the time per unit measured when much was missing),
/// so a reset far longer than that with little missing cannot come from it. A sliding
/// window's reset is when its newest spend ages out, about a window whatever is missing;
/// a fixed window's is its end. `slack` covers the rounding of the dialect's resets.
///
/// `None` when the answer cannot tell: no rate measured with at least half the bucket
/// missing, or this answer missing more than half (a window's reset is then about what a
/// bucket's would be).
fn window_like(
    missing: u64,
    capacity: u64,
    reset: Duration,
    refill: Option<&Refill>,
    slack: Duration,
) -> Option<bool> {
    let r = refill?;
    if r.basis.saturating_mul(2) < capacity || missing.saturating_mul(2) > capacity {
        return None;
    }
    let full_in = Duration::from_nanos(r.unit_ns.saturating_mul(missing).saturating_mul(2));
    Some(reset > full_in.saturating_add(slack))
}

/// Whether an answer shows full again sooner than any refilling bucket could be: a
/// bucket's reset is what is missing times its time per unit, and what it states as
/// missing is at most a unit more than is (`remaining` rounds down), so it refills
/// `missing - 1` units by its reset at least, each taking at least the time per unit an
/// earlier answer showed (`reset / missing` exceeds a bucket's true time per unit only
/// by the rounding of that answer's reset, `slack`, shared among the units it was missing).
/// A window's reset does not grow with what is missing (a burst into a sliding window
/// states its newest spend ageing out, a fixed window its end): one such answer proves it.
fn full_too_soon(missing: u64, reset: Duration, refill: Option<&Refill>, slack: Duration) -> bool {
    let Some(r) = refill else { return false };
    let units = missing.saturating_sub(1);
    let least = Duration::from_nanos(r.unit_ns.saturating_mul(units));
    // A reset stated in whole units of `slack` may be early by one (the server's clock
    // read rounded down) and late by one (the instant rounded up).
    let rounding = slack
        .saturating_mul(2)
        .saturating_mul(u32::try_from(units.div_ceil(r.basis.max(1))).unwrap_or(u32::MAX));
    reset.saturating_add(rounding) < least
}

/// Whether a refusal stating `remaining` units left came with the refused request's own
/// cost among them: only then did the headers promise what the server refused (they
/// overstate it). A request costing 400 000 tokens refused with 188 000 remaining found
/// the limit spent, as the headers said. A request counts one unit of a request scope; of
/// a cost scope its ticket's cost, and without a ticket any unit remaining counts.
pub(super) fn refused_within(remaining: u64, ticket: Option<Ticket>, counts_cost: bool) -> bool {
    let own = match ticket {
        Some(t) if counts_cost => t.cost,
        _ => 1,
    };
    remaining > 0 && remaining >= own
}

/// A learned scope's schedule after one more reservation (both kinds are `Copy`, so
/// planning never clones the scope's name).
#[derive(Clone, Copy, Debug)]
pub(super) enum Planned {
    Refill(Refill),
    Pace(Pace),
}

impl Learned {
    /// `spends`: what this process let go (a sliding window's own returns).
    pub(super) fn plan(
        &self,
        at: Instant,
        units: u64,
        ahead: Duration,
        spends: &Releases,
    ) -> (Instant, Planned) {
        match self.refill {
            Some(r) => {
                let (start, r) = r.plan(at, units);
                (start, Planned::Refill(r))
            }
            None => {
                let spends = (!self.refills).then_some((spends, self.counts_cost));
                let (start, p) = self.pace.plan(at, units, ahead, spends);
                (start, Planned::Pace(p))
            }
        }
    }

    /// Counts an answer of a dialect whose reset is a window's end towards pacing the
    /// scope as a refilling bucket ([`refill_like`], against the last answer).
    fn bucket_seen(&mut self, answer: &Answer, reset: Duration, slack: Duration) {
        let seen = match &self.last {
            // Another limit than the last answer's: nothing carries over.
            Some(last) if last.capacity != answer.capacity => Some(false),
            Some(last) => refill_like(last, answer.missing, reset, answer.at, slack),
            None => None,
        };
        self.bucket_evidence = match seen {
            Some(true) => self.bucket_evidence.saturating_add(1),
            Some(false) => 0,
            None => self.bucket_evidence,
        };
    }

    /// Learns an unnamed limit's unit from how its `remaining` moved since the last
    /// answer: a limit counting the declared costs falls by what was admitted in cost
    /// units between the two requests, one counting requests by how many were. Once it is
    /// seen to count costs, it does for good (nothing an answer of requests shows undoes
    /// it: returns and refusals only make it fall less). Until then it counts requests.
    fn unit_seen(&mut self, remaining: u64, ticket: Option<Ticket>) {
        let Some(t) = ticket else { return };
        let mut evidence = 0;
        if let Some(s) = self.seen {
            if t.requests < s.requests {
                return; // an older answer than the last
            }
            let spent = s.remaining.saturating_sub(remaining);
            let requests = t.requests - s.requests;
            let units = t.units.saturating_sub(s.units);
            // Within an eighth of the units (a spend ageing out, one landing in between):
            // others spending on the key make it fall by more than either.
            let like_units = units > 2 * requests && spent.abs_diff(units) <= units / 8;
            let like_requests = requests > 0 && spent.abs_diff(requests) <= requests / 8 + 1;
            evidence = match (like_units, like_requests) {
                (true, false) => s.evidence.saturating_add(1),
                (false, true) => 0,
                _ => s.evidence,
            };
            if evidence >= UNIT_EVIDENCE {
                self.counts_cost = true;
            }
        }
        self.seen = Some(Seen {
            remaining,
            requests: t.requests,
            units: t.units,
            evidence,
        });
    }

    pub(super) fn apply(&mut self, planned: Planned) {
        match planned {
            Planned::Refill(r) => self.refill = Some(r),
            Planned::Pace(p) => self.pace = p,
        }
    }

    /// Whether `units` of cost exceed what this scope ever admits (a request the server
    /// will refuse as too large): it is sent without reserving anything.
    pub(super) fn never_fits(&self, units: u64) -> bool {
        self.counts_cost
            && match &self.refill {
                Some(r) => r.never_fits(units),
                None => self.pace.limit.is_some_and(|l| units > l),
            }
    }

    pub(super) fn binds_after(&self, now: Instant) -> bool {
        match &self.refill {
            Some(r) => r.tat > now,
            None => self.pace.binds_after(now),
        }
    }
}

/// Whether a dialect's `reset` means "until the bucket is full again" of a continuously
/// refilling bucket (per the providers' docs), rather than the end of a window.
pub(super) fn refills_continuously(dialect: Dialect) -> bool {
    dialect.refills_continuously()
}

/// Which of a throttled answer's limits refused it: the one the verdict's bucket name or
/// scope kind names;
/// else none when one of them is spent (that one explains the refusal, and the others
/// told the truth); else the one with the smallest share left. Only that limit learns
/// that the server grants less than it says: a throttle on one scope constrains that
/// scope, the others keep their pace.
pub(super) fn blamed(c: &Classification, limits: &[Limit]) -> Option<usize> {
    let named = |l: &Limit| {
        if let (Some(name), Scope::Named(n)) = (&c.bucket, &l.scope) {
            return n == name;
        }
        match c.scope {
            QuotaScope::Requests => l.scope == Scope::Requests,
            QuotaScope::Tokens => matches!(
                l.scope,
                Scope::Tokens | Scope::InputTokens | Scope::OutputTokens
            ),
            QuotaScope::InputTokens => l.scope == Scope::InputTokens,
            QuotaScope::OutputTokens => l.scope == Scope::OutputTokens,
            _ => false,
        }
    };
    if let Some(i) = limits.iter().position(named) {
        return Some(i);
    }
    if limits.iter().any(|l| l.remaining == Some(0)) {
        return None;
    }
    limits
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let capacity = l.limit.filter(|&c| c > 0)?;
            Some((i, l.remaining? as f64 / capacity as f64))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

pub(super) fn counts_cost(limit: &Limit) -> Option<bool> {
    match &limit.scope {
        Scope::Requests => Some(false),
        Scope::Tokens | Scope::InputTokens | Scope::OutputTokens => Some(true),
        scope => match &limit.unit {
            Some(QuotaUnit::ConcurrentRequests) => None,
            Some(QuotaUnit::Tokens) | Some(QuotaUnit::ContentBytes) => Some(true),
            // A policy that names tokens but states no unit (`"tokens";q=100000;w=60`)
            // counts them.
            None => Some(scope.as_str().to_ascii_lowercase().contains("token")),
            _ => Some(false),
        },
    }
}

impl BucketState {
    /// A wait stated in whole seconds with a refusal, placed where the learned fixed
    /// windows say the spent ones end: the refusal's wait is their reset, rounded the same
    /// way. Unchanged unless every spent window scope has a placed end within its rounding.
    pub(super) fn placed_wait(&self, now: Instant, wait: Duration) -> Duration {
        if wait.subsec_nanos() != 0 || wait.is_zero() {
            return wait;
        }
        let stated = later(now, wait);
        let earliest = stated.checked_sub(WHOLE_SECOND_ROUNDING).unwrap_or(now);
        let mut end: Option<Instant> = None;
        for l in self
            .learned
            .iter()
            .filter(|l| l.refill.is_none() && l.pace.remaining == 0)
        {
            let at = l.pace.reset_at;
            if !l.pace.boundary.agreed || at < earliest || at >= stated {
                return wait;
            }
            end = Some(end.map_or(at, |e| e.max(at)));
        }
        end.map_or(wait, |e| since(e, now))
    }

    /// What a window scope's headers count as spent by this answer, and its window
    /// (stated, or learned): `None` for a scope that counts cost or a window not known.
    pub(super) fn window_spent(&self, limit: &Limit) -> Option<(u64, Duration)> {
        let held = self.learned.iter().find(|l| holds(l, limit));
        if counts_cost(limit)? || held.is_some_and(|l| l.counts_cost) {
            return None;
        }
        let used = limit.limit?.saturating_sub(limit.remaining?);
        let window = limit.window.or_else(|| held.and_then(|l| l.pace.window))?;
        (used > 0 && !window.is_zero()).then_some((used, window))
    }

    pub(super) fn learn(
        &mut self,
        limit: &Limit,
        now: Instant,
        ticket: Option<Ticket>,
        throttled: bool,
        refused: bool,
    ) {
        let Some(mut counts_cost) = counts_cost(limit) else {
            return;
        };
        let (Some(remaining), Some(reset)) = (limit.remaining, limit.reset.or(limit.window)) else {
            return;
        };
        let reset = reset.min(MAX_LEARNED_RESET);
        let found = self.learned.iter().position(|l| holds(l, limit));
        if let (Some(i), Scope::Unspecified) = (found, &limit.scope) {
            let l = &mut self.learned[i];
            let counted_cost = l.counts_cost;
            l.unit_seen(remaining, ticket);
            counts_cost |= l.counts_cost;
            if l.counts_cost && !counted_cost {
                // A refill rate learned in requests is not this limit's: it is learned
                // again, in cost units, from this answer on. Its window and where they
                // begin still hold; its pace is learned from this answer below.
                l.refill = None;
                l.applied = 0;
            }
        }
        let seq = if counts_cost {
            self.units
        } else {
            self.requests
        };
        // What this bucket admitted after the observed request: the server's `remaining`
        // did not count it yet (where what was let go is not kept). A refilling bucket's
        // measurement of others counts by admission.
        let (applied, admitted_after) = match ticket {
            Some(t) => {
                let mine = if counts_cost { t.units } else { t.requests };
                (mine, seq.saturating_sub(mine))
            }
            None => (seq, 0),
        };
        let index = match found {
            Some(i) => {
                if applied < self.learned[i].applied {
                    return; // an older response than one already applied
                }
                i
            }
            None => {
                if self.learned.len() == MAX_SCOPES {
                    // Keep the scopes that bind longest.
                    let (i, _) = self
                        .learned
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, l)| l.pace.reset_at)
                        .unwrap_or((0, &self.learned[0]));
                    self.learned.swap_remove(i);
                }
                self.learned.push(Learned {
                    scope: limit.scope.clone(),
                    counts_cost,
                    applied,
                    pace: Pace {
                        remaining: 0,
                        reset_at: now,
                        span_ns: 0,
                        per: 1,
                        limit: None,
                        window: None,
                        tat: now,
                        rolled: false,
                        opens: now,
                        returns: None,
                        sliding: false,
                        stated_reset: now,
                        stated_remaining: 0,
                        boundary: Boundary::default(),
                        released: None,
                    },
                    refill: None,
                    window_evidence: 0,
                    bucket_evidence: 0,
                    last: None,
                    refills: false,
                    seen: None,
                });
                self.learned.len() - 1
            }
        };
        let l = &mut self.learned[index];
        if found.is_none() && limit.scope == Scope::Unspecified {
            l.unit_seen(remaining, ticket);
        }
        // Anthropic states its resets as RFC 3339 instants, often in whole seconds;
        // OpenAI as durations in milliseconds; the window dialects in whole seconds.
        let slack = if limit.dialect == Dialect::Anthropic
            || (reset.subsec_nanos() == 0 && !reset.is_zero())
        {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(10)
        };
        if let Some(capacity) = limit.limit {
            let answer = Answer {
                at: now,
                capacity,
                missing: capacity.saturating_sub(remaining),
                full_at: later(now, reset),
            };
            if !refills_continuously(limit.dialect) {
                l.bucket_seen(&answer, reset, slack);
            }
            l.last = Some(answer);
        }
        let refilling = l.bucket_evidence >= BUCKET_EVIDENCE
            || refills_continuously(limit.dialect) && {
                if let Some(capacity) = limit.limit {
                    let missing = capacity.saturating_sub(remaining);
                    let window = window_like(missing, capacity, reset, l.refill.as_ref(), slack);
                    l.window_evidence = if full_too_soon(missing, reset, l.refill.as_ref(), slack) {
                        WINDOW_EVIDENCE
                    } else {
                        match window {
                            Some(true) => l.window_evidence.saturating_add(1),
                            // A bucket's answer, where a window's would have shown.
                            Some(false) if l.window_evidence < WINDOW_EVIDENCE => 0,
                            _ => l.window_evidence,
                        }
                    };
                }
                l.window_evidence < WINDOW_EVIDENCE
            };
        // What the answer did not count: what was let go after the observed request, where
        // this process kept that ([`Releases`]); else what was admitted after it.
        let uncounted = match ticket.and_then(|t| self.releases.after(&t)) {
            Some((_, units)) if counts_cost => units,
            Some((requests, _)) => requests,
            None => admitted_after,
        };
        if refilling {
            if let Some(r) = learn_refill(
                l.refill,
                limit,
                remaining,
                reset,
                now,
                ticket,
                counts_cost,
                admitted_after,
                uncounted,
                throttled,
                refused,
            ) {
                l.applied = applied;
                l.counts_cost = counts_cost;
                l.refill = Some(r);
                return;
            }
        }
        l.refill = None;
        let reset_at = later(now, reset);
        if let (true, Some(w)) = (l.pace.rolled, l.pace.window) {
            // A late answer about the window before the one predicted: its `remaining`
            // does not count what was already sent in the new window.
            if l.pace
                .reset_at
                .checked_sub(w / 2)
                .is_some_and(|mid| reset_at < mid)
            {
                return;
            }
        }
        let stated = remaining;
        let remaining = remaining.saturating_sub(uncounted);
        let from = now.max(l.pace.tat);
        let window = limit
            .window
            .or_else(|| Some(l.pace.window.unwrap_or(Duration::ZERO).max(reset)))
            .filter(|w| !w.is_zero());
        let capacity = limit.limit.or(l.pace.limit);
        let released = ticket.and_then(|t| t.released);
        let (reset_at, boundary, released) = place_reset(
            &l.pace, reset, reset_at, stated, window, now, released, throttled,
        );
        // Admissions after the observed request beyond what remained took returns.
        let over = uncounted.saturating_sub(stated);
        // Where this process keeps what it let go: when its request was, to know its own
        // spends in the window the answer counted.
        let counted = ticket
            .and_then(|t| t.released)
            .filter(|_| self.releases.kept());
        if let (Some(w), Some(at), Some(c)) = (window, counted, capacity) {
            if stated < c && reset < w / 2 && since(now, at) <= w / 4 {
                l.refills = true;
            }
        }
        let (returns, sliding) =
            busy_period(&l.pace, stated, capacity, window, reset_at, now, over);
        let returns = returns.map(|r| Returns { counted, ..r });
        // The server took more than this bucket reserved since the last answer (its
        // units are not ours, or others spend on the key): what comes back is not known
        // in our units, so only the reset is trusted. One answer's count may be off by
        // one each way (a spend ageing out just before it, a concurrent one landing just
        // before it): that is not others spending, and dropping the returns for it stalls
        // everyone until the newest spend ages out, with no answer left to learn from.
        let sliding = sliding && remaining.saturating_add(2) >= l.pace.remaining;
        l.applied = applied;
        l.counts_cost = counts_cost;
        l.pace = Pace {
            remaining,
            reset_at,
            span_ns: nanos(since(reset_at, from)),
            per: remaining.max(1),
            limit: capacity,
            window,
            tat: l.pace.tat,
            rolled: false,
            opens: now,
            returns,
            sliding,
            stated_reset: later(now, reset),
            stated_remaining: stated,
            boundary,
            released,
        };
    }
}

/// Where an answer at `now` stating `reset` puts its window's end; what the scope keeps
/// of where its fixed windows begin ([`Boundary`]); and the latest release of a request
/// its current window counted. The first answer of a new window shows a window began
/// after the old window's latest release and by this answer. A reset in whole seconds is
/// rounded up by up to two seconds; once the span is narrow, the windows after it end a
/// window apart, and this answer's end is placed from there when that is earlier and
/// within the rounding. A refusal the headers did not foresee in the scope drops what was
/// learned: it is learned again.
#[allow(clippy::too_many_arguments)]
fn place_reset(
    old: &Pace,
    reset: Duration,
    stated: Instant,
    remaining: u64,
    window: Option<Duration>,
    now: Instant,
    released: Option<Instant>,
    refused: bool,
) -> (Instant, Boundary, Option<Instant>) {
    let whole = reset.subsec_nanos() == 0 && !reset.is_zero();
    let Some(w) = window.filter(|_| whole && !refused && !old.sliding) else {
        return (stated, Boundary::default(), None);
    };
    let fresh = fresh(old, stated, remaining);
    let mut boundary = old.boundary;
    let latest = if fresh {
        if let Some(after) = old.released {
            boundary = boundary.seen(after, now, w);
        }
        // Admitted in the new window, released maybe before it began: a bound on the
        // next start only.
        released
    } else {
        old.released.max(released)
    };
    // A rolled pace's reset is a prediction, not where the last answer was placed.
    let placed = (!old.rolled).then_some(old.reset_at);
    let end = boundary
        .end(w, now, stated, fresh, placed)
        .unwrap_or(stated);
    (end, boundary, latest)
}

/// The busy period a window scope's answer at `now` belongs to, and whether the scope has
/// shown it slides. A period begins with the first answer short of the limit, and again
/// after one showing the scope full or a window that rolled (the reset jumped half a
/// window or more ahead: a fixed window's next one); within it, a reset that moves on with
/// the spends (each answer's is its newest spend ageing out) shows a sliding window, a
/// fixed window's stays put.
fn busy_period(
    old: &Pace,
    stated: u64,
    capacity: Option<u64>,
    window: Option<Duration>,
    reset_at: Instant,
    now: Instant,
    taken: u64,
) -> (Option<Returns>, bool) {
    let (Some(c), Some(w)) = (capacity, window) else {
        return (None, old.sliding);
    };
    if stated >= c || reset_at <= now {
        return (None, old.sliding);
    }
    let rolled = reset_at > later(old.reset_at, w / 2);
    let first = match old.returns {
        Some(r) if !rolled => r.first.min(reset_at),
        _ => reset_at,
    };
    let sliding = old.sliding || since(reset_at, first) > sliding_slack(w);
    let missing = c - stated;
    // The spends of the period were made between its oldest (`first` ages it out) and its
    // newest (`reset_at`): what is missing comes back over that span, from the later of
    // the oldest's return and now.
    let returns = Returns {
        first,
        from: now.max(first),
        unit_ns: nanos(since(reset_at, now.max(first))) / missing,
        taken,
        counted: None,
    };
    (Some(returns), sliding)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rate learned from an answer missing `basis` units, full again in `reset`.
    fn learned(basis: u64, reset: Duration) -> Refill {
        Refill {
            capacity: 60,
            phantom: 0,
            unit_ns: u64::try_from(reset.as_nanos()).unwrap() / basis,
            basis,
            others_per_s: 0.0,
            drawn: 1.0,
            sample: None,
            refused: 0,
            tat: Instant::now(),
        }
    }

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(10);

    #[test]
    fn a_bucket_whose_resets_are_rounded_to_whole_seconds_is_not_a_window() {
        // A unit every 1.5 s, its resets rounded up then down: 1 missing "2s", 5 "7s".
        let r = learned(1, 2 * S);
        assert!(!full_too_soon(5, 7 * S, Some(&r), S));
        // A unit a second: 3 missing stated "2s" (2.4 s rounded down).
        let r = learned(1, S);
        assert!(!full_too_soon(3, 2 * S, Some(&r), S));
        // Millisecond resets, as OpenAI states them: 11 missing a little under 10 units.
        let r = learned(1, Duration::from_millis(100));
        assert!(!full_too_soon(11, Duration::from_millis(990), Some(&r), MS));
    }

    #[test]
    fn a_burst_into_a_window_shows_full_again_too_soon() {
        // A sliding window of 30 s: the first spend states 30 s for one missing, the
        // third the same 30 s (less the latency) for three.
        let r = learned(1, 30 * S);
        assert!(!full_too_soon(
            2,
            Duration::from_millis(29_990),
            Some(&r),
            MS
        ));
        assert!(full_too_soon(
            3,
            Duration::from_millis(29_980),
            Some(&r),
            MS
        ));
        // The same in whole seconds, each unit allowed two seconds of rounding.
        assert!(!full_too_soon(2, 29 * S, Some(&r), S));
        assert!(full_too_soon(3, 29 * S, Some(&r), S));
    }

    /// OpenAI's token limit of 1 000 000: `remaining` left, full again in `reset`.
    fn tokens(remaining: u64, reset: Duration) -> Limit {
        let mut l = Limit::new(Scope::Tokens, Dialect::OpenAi);
        l.limit = Some(1_000_000);
        l.remaining = Some(remaining);
        l.reset = Some(reset);
        l
    }

    fn ticket(requests: u64, units: u64, cost: u64) -> Option<Ticket> {
        Some(Ticket {
            requests,
            units,
            cost,
            ..Ticket::default()
        })
    }

    #[test]
    fn a_refusal_with_less_left_than_the_request_costs_is_not_overstatement() {
        let now = Instant::now();
        let mut b = BucketState::new(now);
        b.units = 700_000;
        b.requests = 2;
        // 400 000 tokens refused with 188 000 left: the limit is spent, as it says.
        b.learn(
            &tokens(188_000, S),
            now,
            ticket(2, 700_000, 400_000),
            true,
            true,
        );
        assert_eq!(b.learned[0].refill.map(|r| r.phantom), Some(0));
        // 100 000 refused with 188 000 left: the headers promised what was refused.
        b.learn(
            &tokens(188_000, S),
            now,
            ticket(2, 700_000, 100_000),
            true,
            true,
        );
        assert_eq!(b.learned[0].refill.map(|r| r.phantom), Some(188_000));
        assert!(refused_within(1, None, true));
        assert!(!refused_within(0, ticket(1, 1, 1), false));
    }

    #[test]
    fn answers_that_fit_a_bucket_do_not_cancel_those_that_showed_a_window() {
        // A sliding window of 1 000 000 tokens per 2 s: each answer states about 2 s,
        // whatever is missing. Learned from a first answer missing 900 000 (a unit every
        // 2.2 us), answers missing little read as a window, those missing much as a
        // bucket; in turn, the window is learned all the same.
        let now = Instant::now();
        let mut b = BucketState::new(now);
        b.learn(&tokens(100_000, 2 * S), now, None, false, false);
        for i in 1..=4u32 {
            let at = now + i * S;
            b.learn(&tokens(900_000, 2 * S), at, None, false, false);
            b.learn(&tokens(150_000, 2 * S), at, None, false, false);
        }
        let l = &b.learned[0];
        assert!(l.refill.is_none(), "{:?}", l.refill);
        assert!(l.window_evidence >= WINDOW_EVIDENCE);
    }

    #[test]
    fn without_a_learned_rate_nothing_is_too_soon() {
        assert!(!full_too_soon(50, Duration::ZERO, None, MS));
    }

    #[test]
    fn a_bucket_behind_window_names_is_told_from_a_window_by_where_its_resets_move() {
        let now = Instant::now();
        let last = Answer {
            at: now,
            capacity: 8,
            missing: 1,
            full_at: now + 38 * S,
        };
        let at = now + 2 * S;
        // A bucket refilling one unit each 37.5 s, stated in whole seconds: one more
        // missing, full again 37.5 s later (less the 2 s that passed).
        assert_eq!(refill_like(&last, 2, 74 * S, at, S), Some(true));
        // A sliding window: its newest spend ages out a window after it, whatever is
        // missing; a fixed window's end stays put.
        assert_eq!(refill_like(&last, 2, 300 * S, at, S), Some(false));
        assert_eq!(refill_like(&last, 2, 36 * S, at, S), Some(false));
        // As much missing, nothing missing, or a move within the rounding: cannot tell.
        assert_eq!(refill_like(&last, 1, 36 * S, at, S), None);
        assert_eq!(refill_like(&last, 0, 36 * S, at, S), None);
        let short = Answer {
            full_at: now + S,
            ..last
        };
        assert_eq!(refill_like(&short, 2, 2 * S, at, S), None);
    }

    #[test]
    fn a_sliding_windows_spends_come_back_over_the_span_its_resets_show() {
        let now = Instant::now();
        // A busy period of a 40-per-10 s window whose first answer said its oldest spend
        // ages out in 5 s; now one says 0 remain and the newest ages out in 10 s.
        let old = crate::store::window::tests::spent(now, true);
        let (returns, sliding) = busy_period(&old, 0, Some(40), Some(10 * S), now + 10 * S, now, 0);
        let r = returns.unwrap();
        assert!(sliding);
        // The 40 were spent over the 5 s between those two: they come back over the same
        // 5 s, from 5 s on, not over the whole 10 s from now.
        assert_eq!((r.first, r.from), (now + 5 * S, now + 5 * S));
        assert_eq!(r.unit_ns, nanos(5 * S) / 40);
        // From an answer after the oldest aged out, what is missing comes back by the reset.
        let (returns, _) = busy_period(
            &old,
            20,
            Some(40),
            Some(10 * S),
            now + 10 * S,
            now + 6 * S,
            0,
        );
        assert_eq!(returns.map(|r| r.unit_ns), Some(nanos(4 * S) / 20));
    }
}
