//! The state of one bucket and its rules: pauses, exhaustion and probing, declared quotas
//! (GCRA) and learned limits (virtual scheduling of what the server says remains).
//!
//! Pure: every method takes `now`, nothing reads a clock or locks.

use super::outage::{Outage, PROBE_LEASE};
use super::{Admission, Decision, Observation, Rejection, Reservation, Ticket};
use crate::ExhaustionPolicy;
use abide_classify::{Class, Classification, QuotaScope};
use abide_headers::{Dialect, Limit, QuotaUnit, Scope, MAX_LIMITS};
use governor::Quota;
use std::time::Duration;
use tokio::time::Instant;

/// The longest span any computed instant is pushed into the future; keeps `Instant`
/// arithmetic far from overflow whatever a server or a config says.
const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Learned resets beyond this are taken as this (a daily quota still paces; a server
/// saying "resets in a century" does not stop the client for a century).
const MAX_LEARNED_RESET: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often a request held behind an exhausted bucket's outstanding probe asks again
/// when it hears nothing (the probe's answer wakes it at once in this process; this
/// covers a probe sent by another process sharing the store, or one that was dropped).
const PROBE_POLL: Duration = Duration::from_secs(1);

/// The most learned scopes kept per bucket.
const MAX_SCOPES: usize = 2 * MAX_LIMITS;

pub(super) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by.min(MAX_SPAN)).unwrap_or(at)
}

fn since(later: Instant, earlier: Instant) -> Duration {
    later.saturating_duration_since(earlier)
}

/// `span * units / per`, capped, without overflow.
fn scale(span_ns: u64, units: u64, per: u64) -> Duration {
    let ns = u128::from(span_ns) * u128::from(units) / u128::from(per.max(1));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)).min(MAX_SPAN)
}

pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// GCRA with reservation: the earliest start of `units` at or after `at`, and the new
/// theoretical arrival time. `None` when `units` exceeds the burst (it never conforms).
fn gcra(
    tat: Option<Instant>,
    at: Instant,
    units: u64,
    quota: &Quota,
) -> Option<(Instant, Instant)> {
    let burst = u64::from(quota.burst_size().get());
    if units > burst {
        return None;
    }
    let t = nanos(quota.replenish_interval());
    let increment = scale(t, units, 1);
    let tolerance = scale(t, burst, 1);
    let tat = tat.unwrap_or(at);
    let needed = later(tat, increment);
    let start = match needed.checked_sub(tolerance) {
        Some(earliest) if earliest > at => earliest,
        _ => at,
    };
    Some((start, later(tat.max(start), increment)))
}

/// Pacing of one learned limit: spread `remaining` units evenly over the time until
/// `reset_at`, after the slots already reserved (`tat`).
#[derive(Clone, Copy, Debug)]
struct Pace {
    /// Units left before `reset_at`, after the reservations already made.
    remaining: u64,
    reset_at: Instant,
    /// The pacing rate: `span_ns` nanoseconds per `per` units.
    span_ns: u64,
    per: u64,
    limit: Option<u64>,
    window: Option<Duration>,
    /// Theoretical arrival time: the end of the last reserved slot.
    tat: Instant,
    /// The current window was predicted by rolling past a reset, not stated by a response.
    rolled: bool,
    /// When the current window opens (a rolled window lies in the future): no slot of it
    /// starts earlier, however far ahead the schedule may run.
    opens: Instant,
}

impl Pace {
    /// Moves to the window that contains `at`, if the window is known. False when the
    /// reset passed and nothing says what comes next: the limit no longer constrains.
    fn roll(&mut self, at: Instant) -> bool {
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
    /// half the request's max wait, a window shorter than that is used as fast as callers
    /// ask, and a longer one (hourly, daily) still keeps every wait, queueing included,
    /// within bounds.
    fn plan(mut self, at: Instant, units: u64, ahead: Duration) -> (Instant, Pace) {
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
    fn binds_after(&self, now: Instant) -> bool {
        self.tat > now || (self.remaining == 0 && self.reset_at > now)
    }
}

/// The shortest span over which other consumers' use of a shared token bucket is measured
/// (shorter spans are mostly noise: latency jitter, integer counts).
const SHARE_SAMPLE: Duration = Duration::from_secs(2);

/// The smallest share of a token bucket's refill this client keeps for itself whatever
/// others seem to take: measurement noise must not starve it.
const MIN_SHARE: f64 = 0.1;

/// A token bucket that refills continuously (OpenAI's and Anthropic's documented model:
/// `reset` is the time until the bucket is full again). Paced by GCRA at this client's
/// share of the refill rate with the bucket's capacity as burst; the level is taken from
/// each response.
#[derive(Clone, Copy, Debug)]
struct Refill {
    /// Capacity, less what the server advertises but does not grant (`phantom`).
    capacity: u64,
    /// Units the server advertises beyond what it grants, learned from a 429 that said
    /// some remained.
    phantom: u64,
    /// The server's refill: nanoseconds per unit.
    unit_ns: u64,
    /// Other consumers of the same quota (other processes on the key), units per second.
    others_per_s: f64,
    /// Where the last share measurement started: (instant, server remaining, own count).
    sample: Option<(Instant, u64, u64)>,
    /// GCRA theoretical arrival time.
    tat: Instant,
}

impl Refill {
    /// This client's nanoseconds per unit: the refill less what others take.
    fn share_ns(&self) -> u64 {
        let rate = 1e9 / self.unit_ns.max(1) as f64;
        let mine = (rate - self.others_per_s).max(rate * MIN_SHARE);
        let ns = 1e9 / mine;
        if ns.is_finite() && ns < MAX_SPAN.as_nanos() as f64 {
            ns as u64
        } else {
            nanos(MAX_SPAN)
        }
    }

    /// More than the advertised capacity: no refill ever admits it.
    fn never_fits(&self, units: u64) -> bool {
        units > self.capacity.saturating_add(self.phantom).max(1)
    }

    fn plan(mut self, at: Instant, units: u64) -> (Instant, Refill) {
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

#[derive(Clone, Debug)]
struct Learned {
    scope: Scope,
    counts_cost: bool,
    /// The ticket counter of the newest observation applied (older ones are stale).
    applied: u64,
    pace: Pace,
    /// Set when the limit is a continuously refilling token bucket; then it paces
    /// instead of `pace`.
    refill: Option<Refill>,
}

/// A learned scope's schedule after one more reservation (both kinds are `Copy`, so
/// planning never clones the scope's name).
#[derive(Clone, Copy, Debug)]
enum Planned {
    Refill(Refill),
    Pace(Pace),
}

impl Learned {
    fn plan(&self, at: Instant, units: u64, ahead: Duration) -> (Instant, Planned) {
        match self.refill {
            Some(r) => {
                let (start, r) = r.plan(at, units);
                (start, Planned::Refill(r))
            }
            None => {
                let (start, p) = self.pace.plan(at, units, ahead);
                (start, Planned::Pace(p))
            }
        }
    }

    fn apply(&mut self, planned: Planned) {
        match planned {
            Planned::Refill(r) => self.refill = Some(r),
            Planned::Pace(p) => self.pace = p,
        }
    }

    /// Whether `units` of cost exceed what this scope ever admits (a request the server
    /// will refuse as too large): it is sent without reserving anything.
    fn never_fits(&self, units: u64) -> bool {
        self.counts_cost
            && match &self.refill {
                Some(r) => r.never_fits(units),
                None => self.pace.limit.is_some_and(|l| units > l),
            }
    }

    fn binds_after(&self, now: Instant) -> bool {
        match &self.refill {
            Some(r) => r.tat > now,
            None => self.pace.binds_after(now),
        }
    }
}

/// Whether a dialect's `reset` means "until the bucket is full again" of a continuously
/// refilling bucket (per the providers' docs), rather than the end of a window.
fn refills_continuously(dialect: Dialect) -> bool {
    matches!(dialect, Dialect::OpenAi | Dialect::Anthropic)
}

/// Which of a throttled answer's limits refused it: the one the verdict's bucket name or
/// scope kind names;
/// else none when one of them is spent (that one explains the refusal, and the others
/// told the truth); else the one with the smallest share left. Only that limit learns
/// that the server grants less than it says: a throttle on one scope constrains that
/// scope, the others keep their pace.
fn blamed(c: &Classification, limits: &[Limit]) -> Option<usize> {
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

fn counts_cost(limit: &Limit) -> Option<bool> {
    match &limit.scope {
        Scope::Requests => Some(false),
        Scope::Tokens | Scope::InputTokens | Scope::OutputTokens => Some(true),
        _ => match &limit.unit {
            Some(QuotaUnit::ConcurrentRequests) => None,
            Some(QuotaUnit::Tokens) | Some(QuotaUnit::ContentBytes) => Some(true),
            _ => Some(false),
        },
    }
}

#[derive(Clone, Copy, Debug)]
struct Exhausted {
    until: Instant,
    epoch: u64,
    probe_lease: Option<Instant>,
}

/// Everything the store keeps about one bucket.
#[derive(Clone, Debug)]
pub(crate) struct BucketState {
    epoch: u64,
    requests: u64,
    units: u64,
    paused_until: Option<Instant>,
    /// The latest pause whose length the server stated: (its end, capped at the max
    /// pause; the end the server stated).
    stated_until: Option<(Instant, Instant)>,
    exhausted: Option<Exhausted>,
    /// The server stopped answering: everyone waits behind one probe at a time.
    outage: Option<Outage>,
    request_tat: Option<Instant>,
    cost_tat: Option<Instant>,
    learned: Vec<Learned>,
    /// A send rate learned from 429s alone, when no header says anything.
    throttled: Option<Throttled>,
    /// When this bucket was first seen (the start of the first rate measurement).
    born: Instant,
    pub(crate) last_used: Instant,
}

/// Multiplicative decrease of the send rate on a 429: to this share of what was sent
/// since the previous one.
const THROTTLE_BETA: f64 = 0.7;
/// Growth of the send rate after a cut, per second, as a share of the cut rate.
const THROTTLE_GROWTH: f64 = 0.05;
/// Once the rate grew to this multiple of the cut rate without another 429, the limit
/// is taken as gone.
const THROTTLE_RECOVERED: f64 = 4.0;
/// The slowest rate a 429 can cut to, per second.
const THROTTLE_MIN_RATE: f64 = 0.01;

/// A send rate learned from 429 verdicts when the server states no limit (only 429s and
/// perhaps `Retry-After`): cut to a share of the rate that drew the 429, then grown
/// linearly with time, so that after a pause the queue is let out at a rate near what
/// the server accepts instead of all at once.
#[derive(Clone, Copy, Debug)]
struct Throttled {
    /// Requests per second right after the last cut.
    rate: f64,
    cut_at: Instant,
    /// The bucket's request count at the cut.
    cut_requests: u64,
    /// GCRA theoretical arrival time (burst 1).
    tat: Instant,
}

impl Throttled {
    fn rate_at(&self, now: Instant) -> f64 {
        self.rate * (1.0 + THROTTLE_GROWTH * since(now, self.cut_at).as_secs_f64())
    }

    fn interval(&self, at: Instant) -> Duration {
        let ns = 1e9 / self.rate_at(at).max(THROTTLE_MIN_RATE);
        Duration::from_nanos(ns.min(MAX_SPAN.as_nanos() as f64) as u64)
    }
}

impl BucketState {
    pub(crate) fn new(now: Instant) -> Self {
        BucketState {
            epoch: 0,
            requests: 0,
            units: 0,
            paused_until: None,
            stated_until: None,
            exhausted: None,
            outage: None,
            request_tat: None,
            cost_tat: None,
            learned: Vec::new(),
            throttled: None,
            born: now,
            last_used: now,
        }
    }

    /// Whether dropping this bucket at `now` loses nothing but history: unused for
    /// `idle`, and no pause, exhaustion, reservation or exhausted window still ahead.
    pub(crate) fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        later(self.last_used, idle) <= now
            && self.paused_until.is_none_or(|p| p <= now)
            && self.stated_until.is_none_or(|(p, _)| p <= now)
            && self.exhausted.is_none()
            && self.outage.is_none()
            && self.request_tat.is_none_or(|t| t <= now)
            && self.cost_tat.is_none_or(|t| t <= now)
            && !self.learned.iter().any(|l| l.binds_after(now))
            && self.throttled.is_none_or(|t| t.tat <= now)
    }

    fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch,
            requests: self.requests,
            units: self.units,
            probe: false,
        }
    }

    fn wait_or_reject(now: Instant, until: Instant, max_wait: Duration) -> Decision {
        let wait = since(until, now);
        if wait > max_wait {
            Decision::Reject(Rejection::TooLong { would_wait: wait })
        } else {
            Decision::Wait {
                until,
                reservation: None,
            }
        }
    }

    pub(crate) fn admit(&mut self, a: &Admission<'_>) -> Decision {
        let now = a.now;
        self.last_used = self.last_used.max(now);
        if let Some(r) = a.reservation {
            if r.ticket.epoch == self.epoch && self.exhausted.is_none() && self.outage.is_none() {
                return Decision::Go(r.ticket);
            }
        }
        let cost = u64::from(a.cost);
        if let Some(ex) = &mut self.exhausted {
            let hold = a.policy.exhaustion == ExhaustionPolicy::HoldAndProbe;
            if now < ex.until {
                return if hold {
                    Self::wait_or_reject(now, ex.until, a.max_wait)
                } else {
                    Decision::Reject(Rejection::Exhausted {
                        retry_in: Some(since(ex.until, now)),
                    })
                };
            }
            match ex.probe_lease {
                Some(lease) if now < lease => {
                    return if hold {
                        Self::wait_or_reject(now, lease.min(later(now, PROBE_POLL)), a.max_wait)
                    } else {
                        Decision::Reject(Rejection::Exhausted {
                            retry_in: Some(since(lease, now)),
                        })
                    };
                }
                _ => {
                    // This request is the probe; the others wait for its answer.
                    ex.probe_lease = Some(later(now, a.policy.cool_off.max(PROBE_POLL)));
                    self.requests += 1;
                    self.units += cost;
                    return Decision::Go(Ticket {
                        probe: true,
                        ..self.ticket()
                    });
                }
            }
        }

        if let Some(o) = &mut self.outage {
            if now < o.until {
                return Self::wait_or_reject(now, o.until, a.max_wait);
            }
            if let Some(lease) = o.probe_lease.filter(|l| now < *l) {
                return Self::wait_or_reject(now, lease.min(later(now, PROBE_POLL)), a.max_wait);
            }
            // This request is the probe; the others wait for its answer.
            o.probe_lease = Some(later(now, PROBE_LEASE));
            self.requests += 1;
            self.units += cost;
            return Decision::Go(Ticket {
                probe: true,
                ..self.ticket()
            });
        }

        if let Some((until, end)) = self.stated_until {
            let wait = since(end, now);
            if until <= now {
                self.stated_until = None;
            } else if wait > a.policy.max_server_wait {
                return Decision::Reject(Rejection::ServerWaitTooLong { wait });
            }
        }

        // Nothing paces this bucket (the common case): go now. What the general path
        // below would decide, without its passes over the constraints.
        if self.throttled.is_none()
            && self.paused_until.is_none_or(|p| p <= now)
            && a.policy.request_quota.is_none()
            && a.policy.cost_quota.is_none()
            && (!a.policy.learn || self.learned.is_empty())
        {
            self.requests += 1;
            self.units += cost;
            return Decision::Go(self.ticket());
        }

        let mut start = now.max(self.paused_until.unwrap_or(now));
        if let Some(t) = self.throttled {
            if t.rate_at(now) >= t.rate * THROTTLE_RECOVERED {
                self.throttled = None;
            }
        }
        let learn = a.policy.learn && !self.learned.is_empty();
        // Each constraint can only push the start later; a few passes settle the
        // interaction of window boundaries between scopes.
        for _ in 0..3 {
            let before = start;
            if let Some(q) = &a.policy.request_quota {
                if let Some((s, _)) = gcra(self.request_tat, start, 1, q) {
                    start = start.max(s);
                }
            }
            if let Some(q) = &a.policy.cost_quota {
                match gcra(self.cost_tat, start, cost, q) {
                    Some((s, _)) => start = start.max(s),
                    None => {
                        return Decision::Reject(Rejection::TooCostly {
                            cost: a.cost,
                            max: q.burst_size().get(),
                        })
                    }
                }
            }
            if learn {
                for l in &self.learned {
                    let units = if l.counts_cost { cost } else { 1 };
                    start = start.max(l.plan(start, units, a.max_wait / 2).0);
                }
            }
            if let Some(t) = &self.throttled {
                start = start.max(t.tat);
            }
            if start == before {
                break;
            }
        }

        let wait = since(start, now);
        if wait > a.max_wait {
            return Decision::Reject(Rejection::TooLong { would_wait: wait });
        }
        // Reserve the settled slot in every constraint.
        if let Some(q) = &a.policy.request_quota {
            self.request_tat = gcra(self.request_tat, start, 1, q).map(|(_, t)| t);
        }
        if let Some(q) = &a.policy.cost_quota {
            self.cost_tat = gcra(self.cost_tat, start, cost, q).map(|(_, t)| t);
        }
        if learn {
            for l in &mut self.learned {
                let units = if l.counts_cost { cost } else { 1 };
                let planned = l.plan(start, units, a.max_wait / 2).1;
                l.apply(planned);
            }
        }
        if let Some(t) = &mut self.throttled {
            t.tat = later(t.tat.max(start), t.interval(start));
        }
        self.requests += 1;
        // A cost no scope can ever admit is not counted: the server will refuse the
        // request as too large without counting it, so the responses to the requests
        // admitted before it must not take it as sent.
        if !(learn && self.learned.iter().any(|l| l.never_fits(cost))) {
            self.units += cost;
        }
        let ticket = self.ticket();
        if start <= now {
            Decision::Go(ticket)
        } else {
            Decision::Wait {
                until: start,
                reservation: Some(Reservation { ticket, at: start }),
            }
        }
    }

    pub(crate) fn observe(&mut self, o: &Observation<'_>) {
        let now = o.now;
        self.last_used = self.last_used.max(now);
        // A verdict about one request (too large, context length, malformed) says nothing
        // about the bucket: its headers may count the refused request's estimate, and
        // its stated wait is not the bucket's. The request fails alone; as the answer to
        // an exhausted bucket's probe it still shows the quota is back.
        let c = o.classification;
        let stated = c.retry_after.or_else(|| o.snapshot.wait());
        let down =
            c.class == Class::ServerError || (c.class == Class::Overloaded && stated.is_none());
        if down {
            self.outage_failure(now, o.ticket, stated.map(|w| w.min(o.policy.max_pause)));
        } else {
            // The server answered: it is up.
            self.outage = None;
        }
        if c.class == Class::ClientError {
            if o.ticket.is_some_and(|t| t.probe) {
                self.exhausted = None;
            }
            return;
        }
        // The headers said quota remained where the server refused.
        let mut promised = false;
        if o.policy.learn {
            let limits = o.snapshot.limits();
            let blamed = (o.classification.class == Class::RateLimited)
                .then(|| blamed(o.classification, limits))
                .flatten();
            for (i, limit) in limits.iter().enumerate() {
                self.learn(limit, now, o.ticket, blamed == Some(i));
            }
            promised = blamed.is_some_and(|i| {
                limits[i].remaining.is_some_and(|r| r > 0)
                    && !refills_continuously(limits[i].dialect)
            });
        }
        let current = o
            .ticket
            .is_some_and(|t| self.exhausted.is_some_and(|ex| t.epoch >= ex.epoch));
        match c.class {
            Class::QuotaExhausted => {
                let wait = c
                    .retry_after
                    .or_else(|| o.snapshot.wait())
                    .unwrap_or(o.policy.cool_off)
                    .min(o.policy.max_pause);
                self.exhaust(later(now, wait));
            }
            _ if down => {}
            class => {
                // Any other answer to the probe means the quota is back.
                if current {
                    self.exhausted = None;
                }
                if class.is_throttle() {
                    let wait = stated
                        .unwrap_or(o.policy.default_pause)
                        .min(o.policy.max_pause);
                    if let Some(stated) = stated {
                        // Refused (not waited) while the pause lasts if what the server
                        // stated is past the max server wait; never longer than the
                        // pause, so an absurd wait does not refuse for a century.
                        let (until, end) = (later(now, wait), later(now, stated));
                        self.stated_until = Some(match self.stated_until {
                            Some((u, e)) if u > until => (u, e),
                            _ => (until, end),
                        });
                    }
                    if class == Class::RateLimited && o.policy.learn {
                        self.cut_rate(now, o.snapshot, promised);
                    }
                    if !wait.is_zero() {
                        self.pause(later(now, wait));
                    }
                }
            }
        }
    }

    fn learn(&mut self, limit: &Limit, now: Instant, ticket: Option<Ticket>, throttled: bool) {
        let Some(counts_cost) = counts_cost(limit) else {
            return;
        };
        let (Some(remaining), Some(reset)) = (limit.remaining, limit.reset.or(limit.window)) else {
            return;
        };
        let reset = reset.min(MAX_LEARNED_RESET);
        let seq = if counts_cost {
            self.units
        } else {
            self.requests
        };
        // What this bucket admitted after the observed request: the server's `remaining`
        // did not count it yet.
        let (applied, uncounted) = match ticket {
            Some(t) => {
                let mine = if counts_cost { t.units } else { t.requests };
                (mine, seq.saturating_sub(mine))
            }
            None => (seq, 0),
        };
        let index = match self.learned.iter().position(|l| l.scope == limit.scope) {
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
                    },
                    refill: None,
                });
                self.learned.len() - 1
            }
        };
        let l = &mut self.learned[index];
        if refills_continuously(limit.dialect) {
            if let Some(r) = learn_refill(
                l.refill,
                limit,
                remaining,
                reset,
                now,
                ticket,
                counts_cost,
                uncounted,
                throttled,
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
        let remaining = remaining.saturating_sub(uncounted);
        let from = now.max(l.pace.tat);
        let window = limit
            .window
            .or_else(|| Some(l.pace.window.unwrap_or(Duration::ZERO).max(reset)))
            .filter(|w| !w.is_zero());
        l.applied = applied;
        l.counts_cost = counts_cost;
        l.pace = Pace {
            remaining,
            reset_at,
            span_ns: nanos(since(reset_at, from)),
            per: remaining.max(1),
            limit: limit.limit.or(l.pace.limit),
            window,
            tat: l.pace.tat,
            rolled: false,
            opens: now,
        };
    }

    /// A 429 with no limit known from headers: cut the send rate to a share of what was
    /// sent since the last cut. One burst of 429s is one signal: those arriving while
    /// the bucket is already paused do not cut again.
    ///
    /// Also when the headers promised quota the server then refused (a window scope
    /// blamed for the 429 said some remained): they overstate what is granted, so the
    /// send rate that drew the 429 is what is learned, and trusted again only as it
    /// grows back.
    fn cut_rate(
        &mut self,
        now: Instant,
        snapshot: &abide_headers::RateLimitSnapshot,
        promised: bool,
    ) {
        let headers_know =
            !self.learned.is_empty() || snapshot.limits().iter().any(|l| l.remaining.is_some());
        if (headers_know && !promised) || self.paused_until.is_some_and(|p| p > now) {
            return;
        }
        let (from, sent_before) = self
            .throttled
            .map_or((self.born, 0), |t| (t.cut_at, t.cut_requests));
        let dt = since(now, from).as_secs_f64().max(0.1);
        let sent = self.requests.saturating_sub(sent_before) as f64;
        let mut rate = (sent / dt * THROTTLE_BETA).max(THROTTLE_MIN_RATE);
        if let Some(t) = &self.throttled {
            rate = rate.min(t.rate_at(now) * THROTTLE_BETA);
        }
        self.throttled = Some(Throttled {
            rate,
            cut_at: now,
            cut_requests: self.requests,
            tat: self.throttled.map_or(now, |t| t.tat),
        });
    }

    /// A failed answer (server error, or overload without a stated wait): the first
    /// begins an outage, a failed probe of it lengthens the hold.
    fn outage_failure(&mut self, now: Instant, ticket: Option<Ticket>, stated: Option<Duration>) {
        // Differs between buckets (born) and moments (requests), without an RNG.
        let seed =
            self.requests ^ (u64::from(self.epoch as u32) << 32) ^ nanos(since(now, self.born));
        let o = match &mut self.outage {
            Some(o) => {
                o.failed(now, ticket.map(|t| (t.epoch, t.probe)), seed);
                o
            }
            None => {
                // Reservations made before the outage must not go into it.
                self.epoch += 1;
                self.outage.insert(Outage::begin(now, self.epoch, seed))
            }
        };
        if let Some(wait) = stated {
            o.at_least_until(later(now, wait));
        }
    }

    /// Gives back a reserved slot whose admission was dropped before it came.
    pub(crate) fn cancel(&mut self, a: &Admission<'_>) {
        let Some(r) = a.reservation else { return };
        if r.ticket.epoch != self.epoch || r.at <= a.now || self.exhausted.is_some() {
            return;
        }
        let now = a.now;
        let cost = u64::from(a.cost);
        // Each schedule moves back by what the slot took, never before now: later
        // reservations keep their slots, the next admission fills the gap.
        let back = |tat: Instant, by: Duration| tat.checked_sub(by).map_or(now, |t| t.max(now));
        if let (Some(q), Some(tat)) = (&a.policy.request_quota, self.request_tat) {
            self.request_tat = Some(back(tat, q.replenish_interval()));
        }
        if let (Some(q), Some(tat)) = (&a.policy.cost_quota, self.cost_tat) {
            let by = scale(nanos(q.replenish_interval()), cost, 1);
            self.cost_tat = Some(back(tat, by));
        }
        if a.policy.learn {
            for l in &mut self.learned {
                let units = if l.counts_cost { cost } else { 1 };
                if l.never_fits(units) {
                    continue; // nothing was reserved for it
                }
                match &mut l.refill {
                    Some(refill) => {
                        let by = scale(refill.share_ns(), units, 1);
                        refill.tat = back(refill.tat, by);
                    }
                    None => {
                        let p = &mut l.pace;
                        if r.at >= p.opens && r.at < p.reset_at {
                            p.remaining = p.remaining.saturating_add(units);
                            p.tat = back(p.tat, scale(p.span_ns, units, p.per));
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn pause(&mut self, until: Instant) {
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
            self.epoch += 1;
        }
    }

    pub(crate) fn exhaust(&mut self, until: Instant) {
        self.epoch += 1;
        let until = self.exhausted.map_or(until, |ex| ex.until.max(until));
        self.exhausted = Some(Exhausted {
            until,
            epoch: self.epoch,
            probe_lease: None,
        });
    }
}

/// The token-bucket model of one observed limit, `None` when the observation cannot
/// define one (no capacity, no way to tell the refill rate).
#[allow(clippy::too_many_arguments)]
fn learn_refill(
    old: Option<Refill>,
    limit: &Limit,
    remaining: u64,
    reset: Duration,
    now: Instant,
    ticket: Option<Ticket>,
    counts_cost: bool,
    uncounted: u64,
    throttled: bool,
) -> Option<Refill> {
    let advertised = limit.limit.filter(|&c| c > 0)?;
    let mut phantom = old.map_or(0, |r| r.phantom);
    if throttled && remaining > 0 {
        // Refused while saying some remained: the server grants less than it says.
        phantom = phantom.max(remaining).min(advertised - 1);
    }
    let capacity = advertised - phantom;
    let left = remaining.saturating_sub(phantom).min(capacity);
    // The refill rate: what is missing refills by the reset (exact, and it holds even
    // when the advertised limit is not the enforced one); else limit per window.
    let missing = advertised.saturating_sub(remaining);
    //
    // The server's level has a fraction of a unit that `remaining` rounds away, so
    // `reset / missing` is at most the true time per unit (never more): keep the
    // largest estimate seen, and let a smaller one in only slowly (a raised limit).
    let estimate = (missing > 0 && !reset.is_zero()).then(|| nanos(reset) / missing);
    let unit_ns = match (estimate, old.map(|r| r.unit_ns)) {
        (Some(new), Some(was)) if new < was => Some(was - (was - new) / 16),
        (Some(new), _) => Some(new),
        (None, Some(was)) => Some(was),
        (None, None) => limit.window.map(|w| nanos(w) / advertised),
    }
    .filter(|&ns| ns > 0)?;

    let mut refill = Refill {
        capacity,
        phantom,
        unit_ns,
        others_per_s: old.map_or(0.0, |r| r.others_per_s),
        sample: old.and_then(|r| r.sample),
        tat: now,
    };
    // Measure what others on the same quota take: the server's level moved by the refill,
    // our own admissions and theirs.
    if let Some(t) = ticket {
        let mine = if counts_cost { t.units } else { t.requests };
        match refill.sample {
            Some((at, was, mine_then)) if since(now, at) >= SHARE_SAMPLE => {
                let dt = since(now, at).as_secs_f64();
                let refilled = dt * 1e9 / unit_ns as f64;
                if (was as f64) + refilled < capacity as f64 && !throttled {
                    let consumed = was as f64 + refilled - left as f64;
                    let ours = mine.saturating_sub(mine_then) as f64;
                    let others = ((consumed - ours) / dt).max(0.0);
                    refill.others_per_s = 0.5 * refill.others_per_s + 0.5 * others;
                }
                refill.sample = Some((now, left, mine));
            }
            Some(_) => {}
            None => refill.sample = Some((now, left, mine)),
        }
    }
    // The level this client may still use: what the server said, less what this client
    // admitted after the observed request (the server had not counted it yet).
    let used = (capacity - left).saturating_add(uncounted);
    let share = refill.share_ns();
    refill.tat = later(now, scale(share, used, 1));
    Some(refill)
}
