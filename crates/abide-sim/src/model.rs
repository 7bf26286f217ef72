//! The server model: pure state that decides each request's fate from an injected `now`,
//! independent of any clock, so the same model runs in virtual time (the scoreboard) and
//! on a real clock (`abide serve`).

use crate::dialect::SimDialect;
use crate::limiter::{Algorithm, Limiter};
use abide_headers::{Limit, RateLimitSnapshot, Scope as HeaderScope};
use http::StatusCode;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// How long a rejected or failed answer takes to come back (one round trip). Never zero,
/// so a client that retries at once still moves virtual time forward.
pub const REJECT_LATENCY: Duration = Duration::from_millis(10);

/// The largest `enforce_factor` accepted; larger values are capped.
pub const MAX_ENFORCE_FACTOR: f64 = 100.0;

/// A period during which the server answers every request with an error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outage {
    /// When it starts, from the server's start.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// The status sent (500, 502, 503, 504 or 529); `None` = the connection is refused.
    pub status: Option<StatusCode>,
}

impl Outage {
    /// True while the outage is on.
    pub fn covers(&self, now: Duration) -> bool {
        now >= self.start && now < self.start + self.duration
    }
}

/// Everything the simulated server enforces and how it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Headers and bodies.
    pub dialect: SimDialect,
    /// How per-window limits are counted.
    pub algorithm: Algorithm,
    /// The window of the per-window limits.
    pub window: Duration,
    /// Requests per window; 0 = no request limit.
    pub requests_per_window: u64,
    /// Tokens per window; 0 = no token limit.
    pub tokens_per_window: u64,
    /// Send a wait (`Retry-After` and the dialect's relatives) with 429 and overload answers.
    pub retry_after: bool,
    /// Mean service time of an accepted request.
    pub latency: Duration,
    /// Uniform +/- jitter on the service time.
    pub latency_jitter: Duration,
    /// Concurrent requests served; more are answered with overload. 0 = no limit.
    pub max_in_flight: u32,
    /// Lifetime successes allowed, then permanent quota errors. 0 = unlimited.
    pub quota_requests: u64,
    /// The server enforces `limit x factor` while advertising `limit`.
    pub enforce_factor: f64,
    /// Outages.
    pub outages: Vec<Outage>,
    /// A daily request limit replenished continuously (a token bucket of this capacity
    /// refilled over a day, as OpenAI and Groq enforce RPD); 0 = none.
    pub requests_per_day: u64,
    /// The same for tokens (TPD); 0 = none.
    pub tokens_per_day: u64,
    /// Send rate-limit headers only on 429 answers, none on successes.
    pub limits_on_429_only: bool,
    /// Each request reaches the limiter after an upstream delay drawn uniformly from
    /// `[0, reorder]`, so concurrent requests are admitted out of the order they were sent
    /// (a load balancer in front of several workers), and an answer's `remaining` already
    /// counts requests sent after it. Zero: admitted the instant they are sent.
    pub reorder: Duration,
    /// The server's clock is not aligned to the whole seconds it states: its start falls
    /// at a random fraction of a second (from the seed), and every stated reset and wait is
    /// the whole-second instant it falls in minus the whole-second `Date`, as a server
    /// computing `ceil(reset_epoch) - floor(now)` states it (up to 2 s longer than the truth).
    pub whole_second_clock: bool,
    /// De-duplicate by `Idempotency-Key`: a request whose key the server already served
    /// gets that success again, not processed twice and charged nothing (as Stripe does).
    pub idempotency: bool,
}

/// The length of the day the daily limits replenish over.
pub const DAY: Duration = Duration::from_secs(86_400);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            dialect: SimDialect::OpenAi,
            algorithm: Algorithm::TokenBucket,
            window: Duration::from_secs(60),
            requests_per_window: 0,
            tokens_per_window: 0,
            retry_after: true,
            latency: Duration::from_millis(200),
            latency_jitter: Duration::ZERO,
            max_in_flight: 0,
            quota_requests: 0,
            enforce_factor: 1.0,
            outages: Vec::new(),
            requests_per_day: 0,
            tokens_per_day: 0,
            limits_on_429_only: false,
            reorder: Duration::ZERO,
            whole_second_clock: false,
            idempotency: false,
        }
    }
}

impl ServerConfig {
    /// The limit actually enforced for an advertised per-window `limit`:
    /// `floor(limit x enforce_factor)`, at least 1.
    pub fn enforced(&self, limit: u64) -> u64 {
        let f = if self.enforce_factor.is_finite() && self.enforce_factor > 0.0 {
            self.enforce_factor.min(MAX_ENFORCE_FACTOR)
        } else {
            1.0
        };
        // Cannot overflow meaningfully: limits are capped when scenarios load.
        ((limit as f64 * f).floor() as u64).max(1)
    }
}

/// Which limit a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// The request limit per window.
    Requests,
    /// The token limit per window.
    Tokens,
    /// The daily request limit (RPD).
    RequestsPerDay,
    /// The daily token limit (TPD).
    TokensPerDay,
}

/// What the server did with a request. Put in every response's extensions so harnesses
/// can count without parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Accepted and served.
    Served,
    /// A per-window limit refused it (429; GitHub 403; gRPC `RESOURCE_EXHAUSTED`).
    RateLimited(Scope),
    /// The concurrency limit refused it (529; gRPC `UNAVAILABLE`).
    Overloaded,
    /// The lifetime quota is used up: a permanent error.
    QuotaExhausted,
    /// The request costs more tokens than a whole window (or day) allows: it can never
    /// succeed, though the account is fine (a client error, not exhaustion).
    TooLarge,
    /// An outage answered with this status.
    Outage(StatusCode),
    /// An outage refused the connection (the service returns an error, no response).
    Refused,
    /// A repeat of a request the server had already served, recognised by its
    /// `Idempotency-Key` ([`ServerConfig::idempotency`]): its success is answered again,
    /// the request is not processed twice.
    Repeated,
}

impl Outcome {
    /// True for the throttling answers the scoreboard counts as `rejected`: rate limits
    /// and overload (including a 529 outage).
    pub fn is_rejection(self) -> bool {
        match self {
            Outcome::RateLimited(_) | Outcome::Overloaded => true,
            Outcome::Outage(s) => s.as_u16() == 529,
            _ => false,
        }
    }

    /// True for the answer that says the account's quota is gone: retrying cannot help,
    /// and no request of this client can succeed any more.
    pub fn is_permanent(self) -> bool {
        matches!(self, Outcome::QuotaExhausted)
    }

    /// True for an answer about the request itself that the server gives it every time (it
    /// is too large): correct to end it, wrong to hold the account responsible.
    pub fn is_client_error(self) -> bool {
        matches!(self, Outcome::TooLarge)
    }
}

/// The server's decision about one request.
#[derive(Clone, Debug)]
pub struct Decision {
    /// What happened.
    pub outcome: Outcome,
    /// How long until the answer (service time when served, a round trip otherwise).
    pub delay: Duration,
    /// The limits as advertised, plus the wait on a rejection when `retry_after` is on.
    pub snapshot: RateLimitSnapshot,
    /// On a rate limit: the advertised limit of the scope hit and what it has used.
    pub(crate) hit: Option<(u64, u64)>,
    /// On `TooLarge`: the limit and what the request asked for.
    pub(crate) too_large: Option<(u64, u64)>,
}

/// The simulated server's state. Deterministic: the same config, seed and sequence of
/// `(now, tokens)` calls give the same decisions.
#[derive(Debug)]
pub struct ServerModel {
    config: ServerConfig,
    requests: Option<Limiter>,
    tokens: Option<Limiter>,
    requests_per_day: Option<Limiter>,
    tokens_per_day: Option<Limiter>,
    /// Completion times of accepted requests still being served.
    in_flight: BinaryHeap<Reverse<Duration>>,
    served: u64,
    rng: fastrand::Rng,
    /// The fraction of a second the server's wall clock reads at its start.
    phase: Duration,
    /// The `Idempotency-Key`s of the requests served ([`ServerConfig::idempotency`]).
    served_keys: std::collections::HashSet<String>,
    /// Repeats answered without processing.
    repeated: u64,
    /// Draws the upstream delays (apart from `rng`, so service times stay the k-th draws).
    upstream_rng: fastrand::Rng,
}

impl ServerModel {
    /// A fresh server; `seed` drives the latency jitter.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        let limiter = |limit: u64| {
            (limit > 0)
                .then(|| Limiter::new(config.algorithm, config.enforced(limit), config.window))
        };
        let daily =
            |limit: u64| (limit > 0).then(|| Limiter::new(Algorithm::TokenBucket, limit, DAY));
        ServerModel {
            requests: limiter(config.requests_per_window),
            tokens: limiter(config.tokens_per_window),
            requests_per_day: daily(config.requests_per_day),
            tokens_per_day: daily(config.tokens_per_day),
            in_flight: BinaryHeap::new(),
            served: 0,
            rng: fastrand::Rng::with_seed(seed),
            served_keys: std::collections::HashSet::new(),
            repeated: 0,
            upstream_rng: fastrand::Rng::with_seed(seed ^ UPSTREAM_SEED),
            phase: if config.whole_second_clock {
                clock_phase(seed)
            } else {
                Duration::ZERO
            },
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The fraction of a second the server's wall clock reads at its start (zero unless
    /// [`ServerConfig::whole_second_clock`]).
    pub fn clock_phase(&self) -> Duration {
        self.phase
    }

    /// How long the next request sent takes to reach the limiter: uniform in
    /// `[0, reorder]` ([`ServerConfig::reorder`]), drawn in the order requests are sent.
    pub fn upstream_delay(&mut self) -> Duration {
        if self.config.reorder.is_zero() {
            return Duration::ZERO;
        }
        upstream_delay(&self.config, &mut self.upstream_rng)
    }

    /// Requests served so far (counted when admitted).
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Requests being served at `now`.
    pub fn in_flight(&mut self, now: Duration) -> usize {
        self.expire(now);
        self.in_flight.len()
    }

    fn expire(&mut self, now: Duration) {
        while let Some(&Reverse(done)) = self.in_flight.peek() {
            if done <= now {
                self.in_flight.pop();
            } else {
                break;
            }
        }
    }

    /// Repeats of served `Idempotency-Key`s answered without processing them again.
    pub fn repeated(&self) -> u64 {
        self.repeated
    }

    /// Grants `more` lifetime successes beyond the quota (a top-up: the quota is back).
    pub fn extend_quota(&mut self, more: u64) {
        if self.config.quota_requests > 0 {
            self.config.quota_requests = self.config.quota_requests.saturating_add(more);
        }
    }

    /// [`decide`](Self::decide) for a request carrying `key` as its `Idempotency-Key`:
    /// with [`ServerConfig::idempotency`], a key already served is answered
    /// [`Outcome::Repeated`] (its success again) without processing or charging it.
    pub fn decide_keyed(&mut self, now: Duration, tokens: u64, key: Option<&str>) -> Decision {
        let key = key.filter(|_| self.config.idempotency);
        if let Some(k) = key {
            if self.served_keys.contains(k) {
                self.repeated += 1;
                return Decision {
                    outcome: Outcome::Repeated,
                    delay: REJECT_LATENCY,
                    snapshot: self.snapshot(now),
                    hit: None,
                    too_large: None,
                };
            }
        }
        let decision = self.decide(now, tokens);
        if let (Some(k), Outcome::Served) = (key, decision.outcome) {
            self.served_keys.insert(k.to_owned());
        }
        decision
    }

    /// Decides what happens to a request arriving at `now` (from the server's start) that
    /// costs `tokens`. Checks, in order: outages, the lifetime quota, the concurrency
    /// limit, a request too large for any window, the per-window and daily limits.
    pub fn decide(&mut self, now: Duration, tokens: u64) -> Decision {
        self.expire(now);
        let mut decision = Decision {
            outcome: Outcome::Served,
            delay: REJECT_LATENCY,
            snapshot: RateLimitSnapshot::new(),
            hit: None,
            too_large: None,
        };
        if let Some(outage) = self.config.outages.iter().find(|o| o.covers(now)) {
            decision.outcome = match outage.status {
                Some(s) => Outcome::Outage(s),
                None => Outcome::Refused,
            };
            return decision;
        }
        if self.config.quota_requests > 0 && self.served >= self.config.quota_requests {
            decision.outcome = Outcome::QuotaExhausted;
            decision.snapshot = self.snapshot(now);
            return decision;
        }
        if self.config.max_in_flight > 0
            && self.in_flight.len() >= self.config.max_in_flight as usize
        {
            decision.outcome = Outcome::Overloaded;
            decision.snapshot = self.snapshot(now);
            if self.config.retry_after {
                // The earliest moment a slot frees.
                let wait = self
                    .in_flight
                    .peek()
                    .map(|Reverse(done)| done.saturating_sub(now))
                    .unwrap_or(REJECT_LATENCY);
                decision
                    .snapshot
                    .set_retry_after(Some(wait.max(Duration::from_millis(1))));
            }
            return decision;
        }
        if let Some(limit) = self.too_large(tokens) {
            decision.outcome = Outcome::TooLarge;
            decision.too_large = Some((limit, tokens));
            decision.snapshot = self.snapshot(now);
            return decision;
        }
        // The scope that makes the request wait longest names the 429.
        let mut worst: Option<(Duration, Scope, u64, u64)> = None;
        for (scope, cost) in scope_costs(tokens) {
            let advertised = self.advertised(scope);
            let Some(l) = self.limiter(scope) else {
                continue;
            };
            if let Some(wait) = l.wait_for(now, cost) {
                let used = l.limit().saturating_sub(l.remaining(now));
                if worst.is_none_or(|(w, ..)| wait > w) {
                    worst = Some((wait, scope, advertised, used));
                }
            }
        }
        if let Some((wait, scope, limit, used)) = worst {
            decision.outcome = Outcome::RateLimited(scope);
            decision.hit = Some((limit, used));
            decision.snapshot = self.snapshot(now);
            if self.config.retry_after {
                let wait = self.stated(now, wait);
                decision.snapshot.set_retry_after(Some(wait));
            }
            return decision;
        }
        for (scope, cost) in scope_costs(tokens) {
            if let Some(l) = self.limiter(scope) {
                l.take(now, cost);
            }
        }
        self.served += 1;
        let latency = service_time(&self.config, &mut self.rng);
        self.in_flight.push(Reverse(now + latency));
        decision.delay = latency;
        decision.snapshot = self.snapshot(now);
        decision
    }

    /// A duration from `now` as the server states it (see
    /// [`ServerConfig::whole_second_clock`]).
    fn stated(&self, now: Duration, d: Duration) -> Duration {
        stated(self.phase, self.config.whole_second_clock, now, d)
    }

    fn limiter(&mut self, scope: Scope) -> Option<&mut Limiter> {
        match scope {
            Scope::Requests => self.requests.as_mut(),
            Scope::Tokens => self.tokens.as_mut(),
            Scope::RequestsPerDay => self.requests_per_day.as_mut(),
            Scope::TokensPerDay => self.tokens_per_day.as_mut(),
        }
    }

    fn advertised(&self, scope: Scope) -> u64 {
        match scope {
            Scope::Requests => self.config.requests_per_window,
            Scope::Tokens => self.config.tokens_per_window,
            Scope::RequestsPerDay => self.config.requests_per_day,
            Scope::TokensPerDay => self.config.tokens_per_day,
        }
    }

    /// The advertised token limit a request of `tokens` can never fit in, if any.
    fn too_large(&self, tokens: u64) -> Option<u64> {
        let window = self.tokens.as_ref().map(Limiter::limit);
        let day = self.tokens_per_day.as_ref().map(Limiter::limit);
        if window.is_some_and(|l| tokens > l) {
            Some(self.config.tokens_per_window)
        } else if day.is_some_and(|l| tokens > l) {
            Some(self.config.tokens_per_day)
        } else {
            None
        }
    }

    /// The limits as the server advertises them at `now`.
    pub fn snapshot(&mut self, now: Duration) -> RateLimitSnapshot {
        let mut snapshot = RateLimitSnapshot::new();
        let dialect = self.config.dialect.header_dialect().unwrap_or_default();
        let requests_scope = if self.config.dialect == SimDialect::GitHub {
            HeaderScope::named("core")
        } else {
            HeaderScope::Requests
        };
        let window = self.config.window;
        let (phase, whole) = (self.phase, self.config.whole_second_clock);
        for (limiter, advertised, scope) in [
            (
                &mut self.requests,
                self.config.requests_per_window,
                requests_scope,
            ),
            (
                &mut self.tokens,
                self.config.tokens_per_window,
                HeaderScope::Tokens,
            ),
        ] {
            let Some(l) = limiter.as_mut() else { continue };
            let used = l.limit().saturating_sub(l.remaining(now));
            let mut limit = Limit::new(scope, dialect);
            limit.limit = Some(advertised);
            limit.remaining = Some(advertised.saturating_sub(used));
            limit.reset = Some(stated(phase, whole, now, l.reset(now)));
            limit.window = Some(window);
            snapshot.push(limit);
        }
        snapshot
    }
}

/// The sub-second phase of a whole-second server clock, from the seed.
fn clock_phase(seed: u64) -> Duration {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x0c10_c4fa_5e00_0001);
    Duration::from_nanos(rng.u64(0..1_000_000_000))
}

/// `d` from `now` as a server whose clock reads `phase + now` states it: the whole second
/// the instant falls in, less the whole second of `now` (`d` itself when not `whole`).
fn stated(phase: Duration, whole: bool, now: Duration, d: Duration) -> Duration {
    if !whole {
        return d;
    }
    let wall = phase.saturating_add(now);
    let at = wall.saturating_add(d);
    let ceil = at.as_secs() + u64::from(at.subsec_nanos() > 0);
    Duration::from_secs(ceil.saturating_sub(wall.as_secs()))
}

/// What a request of `tokens` costs in each scope.
fn scope_costs(tokens: u64) -> [(Scope, u64); 4] {
    [
        (Scope::Requests, 1),
        (Scope::Tokens, tokens),
        (Scope::RequestsPerDay, 1),
        (Scope::TokensPerDay, tokens),
    ]
}

/// The service time of the next request served: the mean, jittered uniformly by up to
/// `latency_jitter` (never below 0). The model draws one per request served, in order,
/// from its seeded RNG and from nothing else, so the `k`-th request served takes the `k`-th
/// of [`service_times`] whatever the client does.
fn service_time(config: &ServerConfig, rng: &mut fastrand::Rng) -> Duration {
    let mean = config.latency.as_secs_f64();
    let jitter = config.latency_jitter.as_secs_f64().min(mean);
    if jitter == 0.0 {
        return config.latency;
    }
    let offset = (rng.f64() * 2.0 - 1.0) * jitter;
    Duration::from_secs_f64((mean + offset).max(0.0))
}

/// Mixed into the seed of the draws of [`ServerModel::upstream_delay`].
const UPSTREAM_SEED: u64 = 0x0005_7ea3_0000_0001;

fn upstream_delay(config: &ServerConfig, rng: &mut fastrand::Rng) -> Duration {
    config.reorder.mul_f64(rng.f64())
}

/// How long each of the first `n` requests sent to a server built with `config` and
/// `seed` takes to reach its limiter ([`ServerConfig::reorder`]), in the order they are
/// sent (the same for every client strategy).
pub fn upstream_delays(config: &ServerConfig, seed: u64, n: usize) -> Vec<Duration> {
    if config.reorder.is_zero() {
        return vec![Duration::ZERO; n];
    }
    let mut rng = fastrand::Rng::with_seed(seed ^ UPSTREAM_SEED);
    (0..n).map(|_| upstream_delay(config, &mut rng)).collect()
}

/// The service times of the first `n` requests a server built with `config` and `seed`
/// serves, in the order it serves them (the same for every client strategy).
pub fn service_times(config: &ServerConfig, seed: u64, n: usize) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| service_time(config, &mut rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServerConfig {
        ServerConfig {
            window: Duration::from_secs(10),
            requests_per_window: 5,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn rejections_carry_the_exact_wait_when_retry_after_is_on() {
        let mut m = ServerModel::new(
            ServerConfig {
                algorithm: Algorithm::FixedWindow,
                ..config()
            },
            1,
        );
        for _ in 0..5 {
            assert_eq!(m.decide(Duration::ZERO, 0).outcome, Outcome::Served);
        }
        let d = m.decide(Duration::from_secs(4), 0);
        assert_eq!(d.outcome, Outcome::RateLimited(Scope::Requests));
        assert_eq!(d.snapshot.retry_after(), Some(Duration::from_secs(6)));
        assert_eq!(d.snapshot.requests().and_then(|l| l.remaining), Some(0));
    }

    #[test]
    fn rejections_carry_no_wait_when_retry_after_is_off() {
        let mut m = ServerModel::new(
            ServerConfig {
                retry_after: false,
                ..config()
            },
            1,
        );
        for _ in 0..5 {
            m.decide(Duration::ZERO, 0);
        }
        let d = m.decide(Duration::ZERO, 0);
        assert_eq!(d.outcome, Outcome::RateLimited(Scope::Requests));
        assert_eq!(d.snapshot.retry_after(), None);
    }

    #[test]
    fn the_lifetime_quota_turns_into_permanent_errors() {
        let mut m = ServerModel::new(
            ServerConfig {
                quota_requests: 3,
                ..ServerConfig::default()
            },
            1,
        );
        let outcomes: Vec<_> = (0..5)
            .map(|i| m.decide(Duration::from_secs(i), 0).outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Served,
                Outcome::Served,
                Outcome::Served,
                Outcome::QuotaExhausted,
                Outcome::QuotaExhausted
            ]
        );
        assert!(outcomes[3].is_permanent());
    }

    #[test]
    fn outages_answer_their_status_or_refuse_only_while_on() {
        let mut m = ServerModel::new(
            ServerConfig {
                outages: vec![
                    Outage {
                        start: Duration::from_secs(10),
                        duration: Duration::from_secs(5),
                        status: Some(StatusCode::SERVICE_UNAVAILABLE),
                    },
                    Outage {
                        start: Duration::from_secs(20),
                        duration: Duration::from_secs(1),
                        status: None,
                    },
                ],
                ..ServerConfig::default()
            },
            1,
        );
        let at = |m: &mut ServerModel, s: f64| m.decide(Duration::from_secs_f64(s), 0).outcome;
        assert_eq!(at(&mut m, 9.9), Outcome::Served);
        assert_eq!(
            at(&mut m, 10.0),
            Outcome::Outage(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            at(&mut m, 14.9),
            Outcome::Outage(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(at(&mut m, 15.0), Outcome::Served);
        assert_eq!(at(&mut m, 20.5), Outcome::Refused);
        assert_eq!(at(&mut m, 21.0), Outcome::Served);
    }

    #[test]
    fn the_concurrency_limit_answers_overload_until_a_slot_frees() {
        let mut m = ServerModel::new(
            ServerConfig {
                max_in_flight: 2,
                latency: Duration::from_secs(1),
                ..ServerConfig::default()
            },
            1,
        );
        assert_eq!(m.decide(Duration::ZERO, 0).outcome, Outcome::Served);
        assert_eq!(
            m.decide(Duration::from_millis(500), 0).outcome,
            Outcome::Served
        );
        let d = m.decide(Duration::from_millis(600), 0);
        assert_eq!(d.outcome, Outcome::Overloaded);
        assert_eq!(d.snapshot.retry_after(), Some(Duration::from_millis(400)));
        assert_eq!(m.decide(Duration::from_secs(1), 0).outcome, Outcome::Served);
    }

    #[test]
    fn enforce_factor_enforces_less_than_it_advertises() {
        let mut m = ServerModel::new(
            ServerConfig {
                algorithm: Algorithm::FixedWindow,
                requests_per_window: 10,
                enforce_factor: 0.8,
                ..config()
            },
            1,
        );
        let served = (0..10)
            .filter(|_| m.decide(Duration::ZERO, 0).outcome == Outcome::Served)
            .count();
        assert_eq!(served, 8);
        let d = m.decide(Duration::ZERO, 0);
        // The headers still claim 10 per window and 2 left.
        let requests = d.snapshot.requests().unwrap();
        assert_eq!((requests.limit, requests.remaining), (Some(10), Some(2)));
    }

    #[test]
    fn token_limits_count_each_request_cost_and_refuse_requests_that_never_fit() {
        let mut m = ServerModel::new(
            ServerConfig {
                algorithm: Algorithm::FixedWindow,
                tokens_per_window: 1000,
                window: Duration::from_secs(60),
                ..ServerConfig::default()
            },
            1,
        );
        assert_eq!(m.decide(Duration::ZERO, 600).outcome, Outcome::Served);
        assert_eq!(m.decide(Duration::ZERO, 400).outcome, Outcome::Served);
        assert_eq!(
            m.decide(Duration::ZERO, 1).outcome,
            Outcome::RateLimited(Scope::Tokens)
        );
        assert_eq!(
            m.decide(Duration::from_secs(60), 1001).outcome,
            Outcome::TooLarge
        );
    }

    #[test]
    fn latency_jitter_stays_within_its_bounds() {
        let mut m = ServerModel::new(
            ServerConfig {
                latency: Duration::from_millis(200),
                latency_jitter: Duration::from_millis(50),
                ..ServerConfig::default()
            },
            7,
        );
        for i in 0..100 {
            let d = m.decide(Duration::from_secs(i), 0);
            assert!(d.delay >= Duration::from_millis(150) && d.delay <= Duration::from_millis(250));
        }
    }
}
