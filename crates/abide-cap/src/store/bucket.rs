//! The state of one bucket and its rules: admission (pauses, exhaustion and probing,
//! outages, declared quotas, learned limits, the learned send rate) and what each
//! outcome teaches. The rules of each constraint live in their own module.
//!
//! Pure: every method takes `now`, nothing reads a clock or locks.

use super::drip::{headers_show_daily, Drip};
use super::gcra::gcra;
use super::learned::{blamed, refills_continuously, Learned};
use super::outage::{Outage, PROBE_LEASE};
use super::released::Releases;
use super::throttle::{Promised, Throttled};
use super::time::{later, nanos, scale, since};
use super::{Admission, Decision, Observation, Rejection, Reservation, Ticket};
use crate::ExhaustionPolicy;
use abide_classify::{Class, QuotaScope};
use std::time::Duration;
use tokio::time::Instant;

/// How often a request held behind an exhausted bucket's outstanding probe asks again
/// when it hears nothing (the probe's answer wakes it at once in this process; this
/// covers a probe sent by another process sharing the store, or one that was dropped).
pub(super) const PROBE_POLL: Duration = Duration::from_secs(1);

/// How long an exhausted bucket's probe is awaited, at most, before the next request may
/// probe (it may have been dropped, or its process died).
pub(super) const EXHAUSTED_PROBE_LEASE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub(super) struct Exhausted {
    pub(super) until: Instant,
    pub(super) epoch: u64,
    pub(super) probe_lease: Option<Instant>,
    /// Probes the server answered with exhaustion again, in a row.
    pub(super) refused_probes: u32,
}

/// Everything the store keeps about one bucket.
#[derive(Clone, Debug)]
pub(crate) struct BucketState {
    pub(super) epoch: u64,
    pub(super) requests: u64,
    pub(super) units: u64,
    pub(super) paused_until: Option<Instant>,
    /// The latest pause whose length the server stated: (its end, capped at the max
    /// pause; the end the server stated).
    pub(super) stated_until: Option<(Instant, Instant)>,
    pub(super) exhausted: Option<Exhausted>,
    /// The server stopped answering: everyone waits behind one probe at a time.
    /// Boxed: rare, and an idle bucket should not carry its bytes.
    pub(super) outage: Option<Box<Outage>>,
    pub(super) request_tat: Option<Instant>,
    pub(super) cost_tat: Option<Instant>,
    pub(super) learned: Vec<Learned>,
    /// A send rate learned from 429s alone, when no header says anything.
    pub(super) throttled: Option<Throttled>,
    /// A spent daily limit's continuous refill, learned from its 429s.
    /// Boxed: most buckets never meet one, and an idle bucket stays small.
    pub(super) drip: Option<Box<Drip>>,
    /// When this bucket was first seen (the start of the first rate measurement).
    pub(super) born: Instant,
    /// When the latest admissions were let go: what an answer has not counted yet.
    pub(super) releases: Releases,
    pub(crate) last_used: Instant,
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
            drip: None,
            born: now,
            releases: Releases::default(),
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
            && self.drip.as_ref().is_none_or(|d| d.next <= now)
    }

    pub(super) fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch,
            requests: self.requests,
            units: self.units,
            cost: 0,
            released: None,
            probe: false,
            paced: false,
        }
    }

    pub(super) fn wait_or_reject(now: Instant, until: Instant, max_wait: Duration) -> Decision {
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
        if let Some(d) = self.admit_exhausted(a) {
            return d;
        }
        if let Some(d) = self.admit_outage(a) {
            return d;
        }
        if let Some(d) = self.refuse_stated_wait(a) {
            return d;
        }
        self.admit_paced(a)
    }

    /// [`admit`](Self::admit), keeping when what it admits is let go ([`Releases`]): what
    /// [`LocalStore`](super::LocalStore) does, for its own process. Only once a limit is
    /// learned ([`observe_kept`](Self::observe_kept)): nothing else reads them.
    pub(crate) fn admit_kept(&mut self, a: &Admission<'_>) -> Decision {
        let units_before = self.units;
        let decision = self.admit(a);
        if !self.releases.kept() {
            return decision;
        }
        let ticket = match &decision {
            Decision::Go(t) if a.reservation.is_none_or(|r| r.ticket != *t) => t,
            Decision::Wait {
                reservation: Some(r),
                ..
            } => &r.ticket,
            _ => return decision,
        };
        // What the admission counted (nothing for a cost no scope ever admits: the server
        // does not count it either).
        let units = self.units - units_before;
        let slides = self
            .learned
            .iter()
            .any(|l| l.refill.is_none() && l.pace.sliding);
        self.releases.push(ticket, units, slides);
        decision
    }

    /// [`observe`](Self::observe), and once it taught a limit, begins to keep when what
    /// is admitted is let go ([`admit_kept`](Self::admit_kept)).
    pub(crate) fn observe_kept(&mut self, o: &Observation<'_>) {
        let class = o.classification.class;
        if class.is_throttle() || class == Class::ClientError {
            if let Some(t) = o.ticket {
                self.releases.refused(&t);
            }
        }
        self.observe(o);
        if !self.learned.is_empty() {
            self.releases.begin(o.now);
        }
    }

    /// A probe of a bucket with its answer awaited: it must be observed.
    fn probe(&mut self, cost: u64) -> Decision {
        self.requests += 1;
        self.units += cost;
        Decision::Go(Ticket {
            probe: true,
            cost,
            ..self.ticket()
        })
    }

    /// An exhausted bucket: refuse (fail fast) or hold until the reset, then one probe.
    fn admit_exhausted(&mut self, a: &Admission<'_>) -> Option<Decision> {
        let now = a.now;
        let ex = self.exhausted.as_mut()?;
        let hold = a.policy.exhaustion == ExhaustionPolicy::HoldAndProbe;
        let until = match ex.probe_lease {
            _ if now < ex.until => ex.until,
            Some(lease) if now < lease => lease,
            _ => {
                // This request is the probe; the others wait for its answer.
                let lease = a.policy.cool_off.min(EXHAUSTED_PROBE_LEASE).max(PROBE_POLL);
                ex.probe_lease = Some(later(now, lease));
                return Some(self.probe(u64::from(a.cost)));
            }
        };
        Some(if hold {
            // Behind the probe, ask again now and then in case its answer is lost.
            let poll = if now < ex.until {
                until
            } else {
                until.min(later(now, PROBE_POLL))
            };
            Self::wait_or_reject(now, poll, a.max_wait)
        } else {
            Decision::Reject(Rejection::Exhausted {
                retry_in: Some(since(until, now)),
            })
        })
    }

    /// An outage: hold everyone, then one probe at a time.
    fn admit_outage(&mut self, a: &Admission<'_>) -> Option<Decision> {
        let now = a.now;
        let o = self.outage.as_mut()?;
        if a.origin != 0 && o.prober != 0 && a.origin != o.prober {
            o.others = true;
        }
        if now < o.until {
            return Some(Self::wait_or_reject(now, o.until, a.max_wait));
        }
        if let Some(lease) = o.probe_lease.filter(|l| now < *l) {
            return Some(Self::wait_or_reject(
                now,
                lease.min(later(now, PROBE_POLL)),
                a.max_wait,
            ));
        }
        // The last probe's cap woke its held requests with the failed answer; another
        // cap's ask again only at their poll. Give them a poll's time to take the role.
        let turn = later(o.until, PROBE_POLL);
        if o.others && a.origin != 0 && a.origin == o.prober && now < turn {
            return Some(Self::wait_or_reject(now, turn, a.max_wait));
        }
        // This request is the probe; the others wait for its answer.
        o.prober = a.origin;
        o.probe_lease = Some(later(now, PROBE_LEASE));
        Some(self.probe(u64::from(a.cost)))
    }

    /// A pause the server stated, longer than the max server wait: refused, not waited.
    fn refuse_stated_wait(&mut self, a: &Admission<'_>) -> Option<Decision> {
        let (until, end) = self.stated_until?;
        if until <= a.now {
            self.stated_until = None;
            return None;
        }
        let wait = since(end, a.now);
        (wait > a.policy.max_server_wait)
            .then_some(Decision::Reject(Rejection::ServerWaitTooLong { wait }))
    }

    /// Pauses, declared quotas, learned limits and the learned send rate: the latest slot
    /// any of them gives, reserved in each.
    fn admit_paced(&mut self, a: &Admission<'_>) -> Decision {
        let now = a.now;
        let cost = u64::from(a.cost);
        // Nothing paces this bucket (the common case): go now. What the general path
        // below would decide, without its passes over the constraints.
        if self.throttled.is_none()
            && self.drip.is_none()
            && self.paused_until.is_none_or(|p| p <= now)
            && a.policy.request_quota.is_none()
            && a.policy.cost_quota.is_none()
            && (!a.policy.learn || self.learned.is_empty())
        {
            self.requests += 1;
            self.units += cost;
            return Decision::Go(Ticket {
                cost,
                released: Some(now),
                ..self.ticket()
            });
        }

        self.drip_expire(now);
        let mut start = now.max(self.paused_until.unwrap_or(now));
        if let Some(t) = self.throttled {
            if t.recovered(now) {
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
                    start = start.max(l.plan(start, units, a.max_wait, &self.releases).0);
                }
            }
            if let Some(t) = &self.throttled {
                start = start.max(t.tat);
            }
            if let Some(d) = &self.drip {
                start = start.max(d.plan(start).0);
            }
            if start == before {
                break;
            }
        }

        // A send rate backed off, and the server not yet seen serving again: its next slot
        // is a probe, and nobody reserves past it. The others ask again when it comes, or
        // when its answer is in, and go at the rate regained once two successes show the
        // server serving, not at the slots the backoff spread them over. Reserved at the
        // backed-off rate, they went one per backed-off interval after the window had
        // reopened, and a refusal among them was taken as all the server grants: a
        // silent sliding window of 523 per 5 s ran at 4.2 times the ideal (1.15 now),
        // and eight processes on one store put their callers past the max wait.
        let probing = self.throttled.is_some_and(|t| t.probing());
        if let Some(t) = self
            .throttled
            .filter(|t| probing && now < t.tat && start <= t.tat)
        {
            let wait = since(t.tat, now);
            if wait > a.max_wait {
                return Decision::Reject(Rejection::TooLong { would_wait: wait });
            }
            // Another process's probe does not wake them: they ask again now and then.
            return Decision::Wait {
                until: t.tat.min(later(now, PROBE_POLL)),
                reservation: None,
            };
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
                let planned = l.plan(start, units, a.max_wait, &self.releases).1;
                l.apply(planned);
            }
        }
        if let Some(t) = &mut self.throttled {
            t.tat = later(t.tat.max(start), t.interval(start));
        }
        if let Some(d) = &mut self.drip {
            d.next = d.plan(start).1;
        }
        self.requests += 1;
        // A cost no scope can ever admit is not counted: the server will refuse the
        // request as too large without counting it, so the responses to the requests
        // admitted before it must not take it as sent.
        if !(learn && self.learned.iter().any(|l| l.never_fits(cost))) {
            self.units += cost;
        }
        let ticket = Ticket {
            paced: self.throttled.is_some() || self.drip.is_some(),
            // Its answer wakes the requests held behind it.
            probe: probing,
            cost,
            released: Some(start.max(now)),
            ..self.ticket()
        };
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
        let stated = c.retry_after.or_else(|| o.snapshot.next_unit_wait());
        // An overload without a wait is the server's own, unless it refused a request past
        // what the server was seen to run at once (the in-flight cap answers that).
        let down = c.class == Class::ServerError
            || (c.class == Class::Overloaded && stated.is_none() && !o.over_capacity);
        if down {
            let stated = stated.map(|w| w.min(o.policy.max_pause));
            self.outage_failure(now, o.ticket, stated, o.waiting);
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
        let mut promised = None;
        if o.policy.learn {
            let limits = o.snapshot.limits();
            let blamed = (o.classification.class == Class::RateLimited)
                .then(|| blamed(o.classification, limits))
                .flatten();
            let refused = o.classification.class.is_throttle();
            for (i, limit) in limits.iter().enumerate() {
                self.learn(limit, now, o.ticket, blamed == Some(i), refused);
            }
            promised = blamed
                .map(|i| &limits[i])
                .filter(|l| l.remaining.is_some_and(|r| r > 0) && !refills_continuously(l.dialect))
                .map(|l| Promised {
                    spent: self.window_spent(l),
                });
        }
        let current = o
            .ticket
            .is_some_and(|t| self.exhausted.is_some_and(|ex| t.epoch >= ex.epoch));
        match c.class {
            Class::QuotaExhausted => {
                // Without a stated time, each probe the server refuses again doubles
                // the cool-off (up to the max pause): a quota that is gone for good
                // costs a handful of probes, not one a minute.
                let probe = o.ticket.is_some_and(|t| t.probe);
                let refused = self
                    .exhausted
                    .map_or(0, |ex| ex.refused_probes + u32::from(probe));
                let cool_off = o.policy.cool_off.saturating_mul(1 << refused.min(16));
                // A limit's reset is when that limit is back, not a spent credit or
                // billing quota: only a wait stated for the exhaustion itself ends it.
                let reset = (c.scope != QuotaScope::Billing)
                    .then(|| o.snapshot.wait())
                    .flatten();
                let wait = c
                    .retry_after
                    .or(reset)
                    .unwrap_or(cool_off)
                    .min(o.policy.max_pause);
                self.drip_void(now);
                self.exhaust(later(now, wait));
                if let Some(ex) = &mut self.exhausted {
                    ex.refused_probes = refused;
                }
            }
            _ if down => {}
            class => {
                // Any other answer to the probe means the quota is back.
                if current {
                    self.exhausted = None;
                }
                if class == Class::Success {
                    self.throttled_success(o.now, o.ticket);
                    self.drip_served(now, o.ticket);
                }
                // An overload answer with a stated wait is about concurrency (too many
                // at once; the wait is until a slot frees): the in-flight cap answers
                // it, and the refused request waits its own time in the retry layer.
                // Pausing the whole bucket would stop the requests the server has room
                // for (a wait rounded to a whole second paused it every second).
                if class.is_throttle() && class != Class::Overloaded {
                    let wait = stated
                        .map(|w| self.placed_wait(now, w))
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
                        // A daily limit the headers do not show, refusing with a stated
                        // wait, is learned as its refill; it does not teach the send
                        // rate too (the two would pace the same refusals twice).
                        if c.scope == QuotaScope::Daily
                            && stated.is_some()
                            && !headers_show_daily(o.snapshot)
                        {
                            self.drip_refused(now, wait);
                        } else {
                            self.cut_rate(
                                now,
                                o.snapshot,
                                promised,
                                o.ticket,
                                stated.map(|_| wait),
                            );
                        }
                    }
                    if !wait.is_zero() {
                        self.drip_void(now);
                        self.pause(later(now, wait));
                    }
                }
            }
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
        if let Some(t) = &mut self.throttled {
            t.tat = back(t.tat, t.interval(r.at));
        }
        self.drip_cancel(now);
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
                            let left = p.give_back(units);
                            p.remaining = p.remaining.saturating_add(left);
                            p.tat = back(p.tat, scale(p.span_ns, left, p.per));
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
            refused_probes: self.exhausted.map_or(0, |ex| ex.refused_probes),
        });
    }
}
