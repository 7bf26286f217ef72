//! [`BackoffRetryLayer`]: the configuration.

use crate::backoff::{Backoff, Jitter};
use crate::budget::RetryBudget;
use crate::service::BackoffRetry;
use crate::stats::RetryStats;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_layer::Layer;

/// Attempts per request by default when the failure came without a server-stated wait
/// (errors, 5xx, a throttle without a wait): the first and five retries, which with the
/// default backoff wait 7.75 to 15.5 s in all, so a lone request against a server that
/// stays broken is reported well within 40 s. Users expect that bound (and a public
/// LLM-client fault benchmark scores it); longer outages are the cap's job: it holds a
/// busy bucket's requests behind one probe at a time, unsent, so they spend no attempts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Attempts per request by default when the server refused the request and said how long
/// to wait (429 or 503 with `Retry-After`, `RESOURCE_EXHAUSTED` with pushback): the server
/// paces these retries itself. 32, not 16: four processes without shared state contending
/// for a server's three slots (529 with a 1–2 s wait) refused one request 16 times in a row
/// in a run of 4000, and it was lost while the server served everyone around it.
pub const DEFAULT_MAX_PACED_ATTEMPTS: u32 = 32;
/// The most attempts accepted; more are cut to this.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// The longest server wait accepted by default: an hour and a minute, the classifier's
/// [`DEFAULT_LONG_WAIT`](abide_classify::DEFAULT_LONG_WAIT) (an hourly window's turn,
/// stated in whole seconds a round trip late); longer waits are quota exhaustion.
pub const DEFAULT_MAX_SERVER_WAIT: Duration = abide_classify::DEFAULT_LONG_WAIT;
/// The longest server wait that can be accepted; larger settings are cut to it.
pub const MAX_SERVER_WAIT_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Request bytes recorded for replay by default.
pub const DEFAULT_REPLAY_LIMIT: usize = 1024 * 1024;
/// Bytes of a failed attempt's response body read (and discarded) by default so its
/// connection can be reused.
pub const DEFAULT_DRAIN_LIMIT: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) backoff: Backoff,
    pub(crate) jitter: Jitter,
    pub(crate) max_attempts: u32,
    pub(crate) max_paced_attempts: u32,
    pub(crate) max_server_wait: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) budget: Option<RetryBudget>,
    pub(crate) idempotency_key: bool,
    pub(crate) replay_safe: bool,
    pub(crate) replay_limit: usize,
    pub(crate) drain_limit: usize,
    pub(crate) grpc_timeout: bool,
    pub(crate) rng: Arc<Mutex<fastrand::Rng>>,
    pub(crate) stats: RetryStats,
}

impl Config {
    pub(crate) fn with_rng<T>(&self, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rng)
    }
}

/// Retries what the server's verdict says can succeed, never sooner than the server asked.
///
/// Wraps a service in [`BackoffRetry`]. Every setter takes and returns the layer; absurd
/// values are capped, not rejected. Services made from one layer (and its clones) share
/// its [`RetryBudget`], its [`RetryStats`] and its random generator.
///
/// # Defaults, and why
///
/// | setting | default | why |
/// |---|---|---|
/// | [`with_max_attempts`](Self::with_max_attempts) | 6 | after a failure without a server-stated wait (5xx, a refused connection, a throttle without a wait): one request and five retries, whose default backoff waits 7.75 to 15.5 s in all, so a lone request against a broken server is reported well within 40 s, as users expect; behind the cap, requests held during an outage are not sent and spend no attempts (only its probes do), so a busy bucket rides out outages far longer than that |
/// | [`with_max_paced_attempts`](Self::with_max_paced_attempts) | 32 | after a refusal that states a wait (429/503 with `Retry-After`, gRPC pushback): the server paces these retries, and each waits at least as long as it asked; when many callers contend for one window or a few slots (no cap layer, or processes that share no state) a request can need many turns, and giving up loses work the server would have served a few seconds later (16 lost one request in 4000 to four such processes). The [`RetryBudget`] still bounds their rate |
/// | [`with_backoff`](Self::with_backoff) | 500 ms × 2, capped at 30 s | rate-limit windows are seconds to a minute; the server's own wait is used when it sends one |
/// | [`with_jitter`](Self::with_jitter) | [`Jitter::Equal`] | spreads retries without ever retrying within milliseconds, which against a rate limit is wasted |
/// | [`with_max_server_wait`](Self::with_max_server_wait) | an hour and a minute | the longest window APIs state (GitHub's hourly limit, hourly fixed windows), with a minute for its turn stated in whole seconds a round trip late: a request the server will serve once the window turns is waited for, not lost; longer waits mean daily or billing quotas, reported at once. The cap uses the same default, so both layers give one answer; a caller that needs an answer sooner sets a deadline |
/// | [`with_attempt_timeout`](Self::with_attempt_timeout) | none | an LLM answer can legitimately take minutes; only the caller knows its endpoint's worst case |
/// | [`with_deadline`](Self::with_deadline) | none | the request extension [`Deadline`](crate::Deadline) or `grpc-timeout` still apply |
/// | [`with_budget`](Self::with_budget) | [`RetryBudget::default`]: 20 % + 10/s, at most 100 | bounds the rate of retries; an empty budget delays a retry (up to the max server wait) instead of dropping it; see [`RetryBudget`] |
/// | [`with_idempotency_key`](Self::with_idempotency_key) | off | it changes the request; turn it on for APIs that honour the header (OpenAI, Stripe) |
/// | [`with_replay_limit`](Self::with_replay_limit) | 1 MiB | holds a long LLM prompt; larger uploads are sent once |
/// | [`with_drain_limit`](Self::with_drain_limit) | 64 KiB | error bodies are small; reading them lets the connection be reused |
///
/// # Examples
///
/// ```
/// use abide_retry::{Attempts, BackoffRetryLayer, Jitter, ReplayBody};
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = BackoffRetryLayer::new()
///     .with_max_attempts(5)
///     .with_jitter(Jitter::Full)
///     .with_deadline(Duration::from_secs(30))
///     .with_seed(42);
/// let stats = layer.stats();
/// let service = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|_req: http::Request<ReplayBody<String>>| async {
///         Ok::<_, Infallible>(http::Response::new(String::from("ok")))
///     });
/// let response = service.oneshot(http::Request::new(String::from("hi"))).await.unwrap();
/// assert_eq!(response.extensions().get::<Attempts>().unwrap().count, 1);
/// assert_eq!(stats.snapshot().succeeded, 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BackoffRetryLayer {
    pub(crate) config: Arc<Config>,
}

impl Default for BackoffRetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl BackoffRetryLayer {
    /// A layer with the defaults in the table above and a randomly seeded generator.
    pub fn new() -> Self {
        BackoffRetryLayer {
            config: Arc::new(Config {
                backoff: Backoff::default(),
                jitter: Jitter::default(),
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                max_paced_attempts: DEFAULT_MAX_PACED_ATTEMPTS,
                max_server_wait: DEFAULT_MAX_SERVER_WAIT,
                deadline: None,
                attempt_timeout: None,
                budget: Some(RetryBudget::default()),
                idempotency_key: false,
                replay_safe: false,
                replay_limit: DEFAULT_REPLAY_LIMIT,
                drain_limit: DEFAULT_DRAIN_LIMIT,
                grpc_timeout: true,
                rng: Arc::new(Mutex::new(fastrand::Rng::new())),
                stats: RetryStats::new(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Sets the backoff between attempts.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        self.edit(|c| c.backoff = backoff)
    }

    /// Sets how the backoff is randomized.
    pub fn with_jitter(self, jitter: Jitter) -> Self {
        self.edit(|c| c.jitter = jitter)
    }

    /// Sets the attempts per request, the first included, for every failure: both the
    /// limit for failures without a server-stated wait and the one for refusals the server
    /// paces ([`with_max_paced_attempts`](Self::with_max_paced_attempts), which can be
    /// called after this one to set that limit apart). 1 disables retries (and body
    /// recording). Cut to `1..=`[`MAX_ATTEMPTS_LIMIT`].
    ///
    /// The two limits count apart: this one counts the failures nobody paced (no stated
    /// wait, not the cap's probe for others), so a request whose earlier turns the server
    /// paced still gets as many of those as a lone one; no request makes more attempts
    /// than the larger limit.
    pub fn with_max_attempts(self, attempts: u32) -> Self {
        let attempts = attempts.clamp(1, MAX_ATTEMPTS_LIMIT);
        self.edit(|c| {
            c.max_attempts = attempts;
            c.max_paced_attempts = attempts;
        })
    }

    /// Sets the attempts per request, the first included, when the last failure was a
    /// refusal the server paces: not processed, with a stated wait (429 or 503 with
    /// `Retry-After`, `RESOURCE_EXHAUSTED` with pushback). Cut to
    /// `1..=`[`MAX_ATTEMPTS_LIMIT`].
    pub fn with_max_paced_attempts(self, attempts: u32) -> Self {
        self.edit(|c| c.max_paced_attempts = attempts.clamp(1, MAX_ATTEMPTS_LIMIT))
    }

    /// Sets the longest wait the server may ask for; a longer one ends the request at once
    /// with [`WaitTooLong`](crate::WaitTooLong). It also bounds how long a retry waits for
    /// the [`RetryBudget`]'s next token; longer ends it with
    /// [`BudgetExhausted`](crate::BudgetExhausted). Cut to [`MAX_SERVER_WAIT_LIMIT`].
    pub fn with_max_server_wait(self, max: Duration) -> Self {
        self.edit(|c| c.max_server_wait = max.min(MAX_SERVER_WAIT_LIMIT))
    }

    /// Sets a deadline for each whole request (attempts and waits). Each attempt is cut
    /// at the deadline, and a retry that cannot start and run before it is refused with
    /// [`DeadlineExceeded`](crate::DeadlineExceeded).
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.edit(|c| c.deadline = Some(deadline))
    }

    /// Bounds each attempt: one that has not answered after `timeout` is cut (dropped)
    /// and counts as a failure with [`AttemptTimedOut`](crate::AttemptTimedOut). Whether
    /// the server processed it is unknown, so the failure is ambiguous: an idempotent
    /// request (or one with an `Idempotency-Key`) is tried again, any other is returned
    /// with that error. Off by default: an LLM answer can legitimately take minutes, and
    /// only the caller knows its endpoint's worst case. The whole-request
    /// [`with_deadline`](Self::with_deadline) still applies; a zero timeout is taken as 1 ms.
    ///
    /// The timeout times the server, not a wait before it: each attempt carries an
    /// [`AttemptStart`](abide_classify::AttemptStart) that a layer below holding the
    /// attempt (the cap, for a pause, a paced slot or an outage) marks when it sends it,
    /// and the timeout counts from that mark.
    pub fn with_attempt_timeout(self, timeout: Duration) -> Self {
        let timeout = timeout.clamp(Duration::from_millis(1), MAX_SERVER_WAIT_LIMIT);
        self.edit(|c| c.attempt_timeout = Some(timeout))
    }

    /// Replaces the retry budget. Pass a clone of one budget to several layers to share it.
    pub fn with_budget(self, budget: RetryBudget) -> Self {
        self.edit(|c| c.budget = Some(budget))
    }

    /// Retries without a budget: only max attempts and the deadline bound them.
    pub fn without_budget(self) -> Self {
        self.edit(|c| c.budget = None)
    }

    /// Treats every request as safe to send twice, whatever its method: for APIs whose
    /// calls have no side effects (an LLM completion), so ambiguous failures (a 502, a cut
    /// attempt) are retried for a POST too, as those APIs' own SDKs do.
    pub fn with_replay_safe(self, enabled: bool) -> Self {
        self.edit(|c| c.replay_safe = enabled)
    }

    /// Adds a random `Idempotency-Key` to requests whose method is not idempotent and that
    /// have none, so they may be retried after ambiguous failures too.
    pub fn with_idempotency_key(self, enabled: bool) -> Self {
        self.edit(|c| c.idempotency_key = enabled)
    }

    /// Sets how many request body bytes are recorded for replay. A larger body is sent
    /// once and not retried.
    pub fn with_replay_limit(self, bytes: usize) -> Self {
        self.edit(|c| c.replay_limit = bytes)
    }

    /// Sets how many bytes of a failed attempt's response body are read while waiting to
    /// retry, so the connection can be reused; a longer body is dropped (each frame counts
    /// as at least one byte, so a stream of empty frames ends too). 0 drops every failed
    /// response's body at once.
    pub fn with_drain_limit(self, bytes: usize) -> Self {
        self.edit(|c| c.drain_limit = bytes)
    }

    /// Whether a request's `grpc-timeout` header sets its deadline (and is rewritten to
    /// the time left on each retry). On by default.
    pub fn with_grpc_timeout(self, enabled: bool) -> Self {
        self.edit(|c| c.grpc_timeout = enabled)
    }

    /// Uses `rng` for jitter (shared by every service made from this layer).
    pub fn with_rng(self, rng: fastrand::Rng) -> Self {
        self.edit(|c| c.rng = Arc::new(Mutex::new(rng)))
    }

    /// Shorthand for `with_rng(fastrand::Rng::with_seed(seed))`: reproducible jitter.
    pub fn with_seed(self, seed: u64) -> Self {
        self.with_rng(fastrand::Rng::with_seed(seed))
    }

    /// Counts into `stats` (for instance one handle shared by several layers).
    pub fn with_stats(self, stats: RetryStats) -> Self {
        self.edit(|c| c.stats = stats)
    }

    /// The counters of this layer's services.
    pub fn stats(&self) -> RetryStats {
        self.config.stats.clone()
    }

    /// The retry budget, if any.
    pub fn budget(&self) -> Option<&RetryBudget> {
        self.config.budget.as_ref()
    }

    /// The attempts per request after a failure without a server-stated wait.
    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    /// The longest server wait accepted.
    pub fn max_server_wait(&self) -> Duration {
        self.config.max_server_wait
    }

    /// The attempts per request after a refusal the server paces.
    pub fn max_paced_attempts(&self) -> u32 {
        self.config.max_paced_attempts
    }
}

impl<S> Layer<S> for BackoffRetryLayer {
    type Service = BackoffRetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackoffRetry::from_parts(inner, self.config.clone())
    }
}
