//! The layer: configuration only.

use crate::key::BucketKey;
use crate::limiter::{InFlight, Limiters};
use crate::service::{ConcurrencyCap, Shared};
use crate::store::{BucketPolicy, LocalStore, QuotaStore};
use governor::Quota;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tower_layer::Layer;

/// What new requests get while a bucket's quota is exhausted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExhaustionPolicy {
    /// Fail at once with [`BucketExhausted`](crate::error::BucketExhausted). After the
    /// server's stated reset (or the cool-off) one request goes as a probe; an answer other
    /// than exhaustion reopens the bucket.
    #[default]
    FailFast,
    /// Hold new requests (within their max wait) until the reset or cool-off, send one
    /// probe, and release the others when it comes back without an exhaustion verdict.
    HoldAndProbe,
}

/// The longest a bucket may stand still for a waiting request by default: an hour and a
/// minute.
///
/// Queueing behind the other callers of a slow quota is the cap's job, and a batch loses
/// nothing by waiting its turn: thousands of requests behind a few a minute wait hours,
/// and each is sent when its slot comes. So by default the bound is not on one request's
/// whole wait but on how slowly its bucket moves: a wait for admission may take this long
/// for each request waiting in the bucket (a queue of `n` waits up to `n` times this),
/// a wait for an in-flight permit ends only when no permit freed for this long, and time
/// held without a slot (a pause, an outage, an exhausted bucket's probe out) counts
/// against it. What fails, with [`WaitTooLong`](crate::error::WaitTooLong) and unsent, is a
/// pace or hold slower than one request per max wait: absurd limits (one request a day
/// learned from a server's headers), or permits held by response bodies nobody reads.
///
/// Why an hour and a minute: an hourly window is the longest APIs state, and a request
/// that meets one spent waits for it to turn. The extra minute is for how that turn is
/// stated: a reset in whole seconds (rounded up), read a round trip after the server
/// counted, puts an hourly window's turn a little past the hour.
///
/// A caller that needs an answer by a time says so, and then the bound is on the whole
/// wait: [`with_max_wait`](ConcurrencyCapLayer::with_max_wait) bounds each attempt's
/// whole stay in the cap (permit and slot together), and a [`Deadline`](crate::Deadline)
/// the request's. Server-stated waits have their own bound
/// ([`with_max_server_wait`](ConcurrencyCapLayer::with_max_server_wait)).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3660);

pub(crate) type KeyFn = Arc<dyn Fn(&http::request::Parts) -> BucketKey + Send + Sync>;
pub(crate) type CostFn = Arc<dyn Fn(&http::request::Parts) -> u32 + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) key_fn: Option<KeyFn>,
    pub(crate) cost_fn: Option<CostFn>,
    pub(crate) max_queue: usize,
    pub(crate) max_wait: Duration,
    /// Set by [`ConcurrencyCapLayer::with_max_wait`]: the max wait bounds each attempt's
    /// whole wait, not only how slowly its bucket moves.
    pub(crate) max_wait_explicit: bool,
    pub(crate) policy: BucketPolicy,
}

/// Admits each request (each attempt, under a retry layer) per bucket: in-flight cap,
/// declared and learned pacing, whole-bucket pauses, exhaustion. See the [crate docs](crate).
///
/// Services made by one layer, their clones, and layers cloned from it without changing the
/// in-flight setting share one set of in-flight permits; every layer given the same store
/// shares its quota state.
///
/// Defaults: bucket = request authority, cost = [`Cost`](crate::Cost) extension else 1,
/// [`InFlight::default`] (adaptive 10, 1..=256), no declared quota, limits learned from
/// responses, queue of 1024 per bucket, max wait an hour and a minute ([`DEFAULT_MAX_WAIT`]), [`ExhaustionPolicy::FailFast`]
/// with a 15 minute cool-off, 1 s pause for a throttle verdict without a stated wait, server
/// waits capped at an hour and a minute, a fresh [`LocalStore`].
#[derive(Clone)]
pub struct ConcurrencyCapLayer {
    store: Arc<dyn QuotaStore>,
    limiters: Arc<Limiters>,
    in_flight: InFlight,
    config: Config,
}

impl fmt::Debug for ConcurrencyCapLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyCapLayer")
            .field("store", &self.store)
            .field("in_flight", &self.in_flight)
            .field("custom_key", &self.config.key_fn.is_some())
            .field("custom_cost", &self.config.cost_fn.is_some())
            .field("max_queue", &self.config.max_queue)
            .field("max_wait", &self.config.max_wait)
            .field("policy", &self.config.policy)
            .finish()
    }
}

impl Default for ConcurrencyCapLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ConcurrencyCapLayer {
    /// The default configuration (see the type docs).
    pub fn new() -> Self {
        let in_flight = InFlight::default();
        ConcurrencyCapLayer {
            store: Arc::new(LocalStore::new()),
            limiters: Arc::new(Limiters::new(in_flight)),
            in_flight,
            config: Config {
                key_fn: None,
                cost_fn: None,
                max_queue: 1024,
                max_wait: DEFAULT_MAX_WAIT,
                max_wait_explicit: false,
                policy: BucketPolicy::default(),
            },
        }
    }

    /// Keeps bucket state in `store` (clone a [`LocalStore`] into several layers to share
    /// one quota; a fleet-wide store shares it between processes).
    pub fn with_store(mut self, store: impl QuotaStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Keeps bucket state in an already shared store.
    pub fn with_shared_store(mut self, store: Arc<dyn QuotaStore>) -> Self {
        self.store = store;
        self
    }

    /// Which bucket a request belongs to (default: [`authority_key`](crate::authority_key)).
    /// Split by model, route or data type when the server limits them separately.
    ///
    /// ```
    /// use abide_cap::{BucketKey, ConcurrencyCapLayer};
    /// // One bucket per path: per-endpoint limits.
    /// let layer = ConcurrencyCapLayer::new()
    ///     .with_key_fn(|parts| BucketKey::new(parts.uri.path()));
    /// # let _ = layer;
    /// ```
    pub fn with_key_fn(
        mut self,
        key: impl Fn(&http::request::Parts) -> BucketKey + Send + Sync + 'static,
    ) -> Self {
        self.config.key_fn = Some(Arc::new(key));
        self
    }

    /// A request's cost when it carries no [`Cost`](crate::Cost) extension (default 1).
    pub fn with_cost_fn(
        mut self,
        cost: impl Fn(&http::request::Parts) -> u32 + Send + Sync + 'static,
    ) -> Self {
        self.config.cost_fn = Some(Arc::new(cost));
        self
    }

    /// The in-flight cap per bucket. Changing it gives this layer its own permits.
    pub fn with_in_flight(mut self, in_flight: InFlight) -> Self {
        self.in_flight = in_flight;
        self.limiters = Arc::new(Limiters::new(in_flight));
        self
    }

    /// A requests quota you know in advance (for instance `Quota::per_minute(500)`),
    /// paced by GCRA with its burst.
    pub fn with_request_quota(mut self, quota: Quota) -> Self {
        self.config.policy.request_quota = Some(quota);
        self
    }

    /// A cost-units quota you know in advance (tokens per minute), paced by GCRA with
    /// each request's cost as weight. A request costing more than the burst fails with
    /// [`CostTooHigh`](crate::error::CostTooHigh).
    pub fn with_cost_quota(mut self, quota: Quota) -> Self {
        self.config.policy.cost_quota = Some(quota);
        self
    }

    /// Whether to learn limits from response snapshots (default true). Without it only
    /// the cap, declared quotas and verdicts drive admission.
    pub fn with_learned_limits(mut self, learn: bool) -> Self {
        self.config.policy.learn = learn;
        self
    }

    /// The most requests that may wait per bucket (default 1024); one more fails with
    /// [`QueueFull`](crate::error::QueueFull). 0 means no request may wait.
    pub fn with_max_queue(mut self, max: usize) -> Self {
        self.config.max_queue = max;
        self
    }

    /// The longest one attempt may wait for admission, permit queue and paced slot
    /// together; a longer wait fails as soon as it is known, with
    /// [`WaitTooLong`](crate::error::WaitTooLong), unsent. A [`Deadline`](crate::Deadline)
    /// extension can make it shorter per request; `Duration::MAX` bounds nothing.
    ///
    /// Without it the cap bounds only how slowly a bucket moves ([`DEFAULT_MAX_WAIT`]):
    /// a batch behind a slow quota waits its turn however long its queue. Set it when an
    /// answer is worth having only within a time.
    pub fn with_max_wait(mut self, max: Duration) -> Self {
        self.config.max_wait = max;
        self.config.max_wait_explicit = true;
        self
    }

    /// What requests get while the bucket is exhausted (default fail fast).
    pub fn with_exhaustion_policy(mut self, policy: ExhaustionPolicy) -> Self {
        self.config.policy.exhaustion = policy;
        self
    }

    /// How long an exhausted bucket waits before its probe when the server states no
    /// reset (default 15 minutes), doubled for each probe the server refuses again (up to
    /// the max pause); also how long an unanswered probe blocks the next one (at most a
    /// minute).
    ///
    /// Why 15 minutes: an exhaustion without a stated time is an account's (credits,
    /// billing, a plan's cap), which comes back when a person acts, not in seconds; a
    /// probe a minute would spend an attempt per minute on an account that is gone, and a
    /// quarter of an hour is still soon after someone tops it up. A server that states
    /// when the quota returns is probed then instead.
    pub fn with_cool_off(mut self, cool_off: Duration) -> Self {
        self.config.policy.cool_off = cool_off;
        self
    }

    /// The pause for a rate-limit or overload verdict that states no wait (default 1 s;
    /// zero: no pause, only the adaptive cap reacts).
    pub fn with_default_pause(mut self, pause: Duration) -> Self {
        self.config.policy.default_pause = pause;
        self
    }

    /// Sets the longest server-stated wait worth taking (default
    /// [`DEFAULT_MAX_SERVER_WAIT`](crate::DEFAULT_MAX_SERVER_WAIT), the retry layer's
    /// default too). While the bucket is paused by a `Retry-After` (or equivalent) with
    /// longer than this to run, requests fail at once with
    /// [`WaitTooLong`](crate::error::WaitTooLong) carrying what is left of the stated
    /// wait, instead of waiting it out. Give both layers the same value (the facade's
    /// `AbideLayer::with_max_server_wait` does) so they agree.
    ///
    /// A max past the [max pause](Self::with_max_pause), or past the default
    /// [max wait](Self::with_max_wait) when none was set, raises them to it: a wait
    /// worth taking is neither cut short into a probe the server refuses nor refused as
    /// the bucket standing still too long.
    ///
    /// ```
    /// use abide_cap::ConcurrencyCapLayer;
    /// use std::time::Duration;
    ///
    /// let two_hours = Duration::from_secs(7200);
    /// let cap = ConcurrencyCapLayer::new().with_max_server_wait(two_hours);
    /// assert_eq!(cap.max_pause(), two_hours);
    /// let cap = ConcurrencyCapLayer::new().with_max_server_wait(Duration::from_secs(60));
    /// assert_eq!(cap.max_pause(), abide_cap::DEFAULT_MAX_SERVER_WAIT);
    /// ```
    pub fn with_max_server_wait(mut self, max: Duration) -> Self {
        let config = &mut self.config;
        config.policy.max_server_wait = max;
        config.policy.max_pause = config.policy.max_pause.max(max);
        if !config.max_wait_explicit {
            config.max_wait = config.max_wait.max(max);
        }
        self
    }

    /// The longest server-stated wait worth taking.
    pub fn max_server_wait(&self) -> Duration {
        self.config.policy.max_server_wait
    }

    /// The longest pause or exhaustion a server can impose (default
    /// [`DEFAULT_MAX_SERVER_WAIT`](crate::DEFAULT_MAX_SERVER_WAIT), an hour and a minute):
    /// a larger `Retry-After` is taken as this.
    pub fn with_max_pause(mut self, max: Duration) -> Self {
        self.config.policy.max_pause = max;
        self
    }

    /// The longest pause or exhaustion a server can impose.
    pub fn max_pause(&self) -> Duration {
        self.config.policy.max_pause
    }

    /// The store this layer uses.
    pub fn store(&self) -> &Arc<dyn QuotaStore> {
        &self.store
    }
}

impl<S> Layer<S> for ConcurrencyCapLayer {
    type Service = ConcurrencyCap<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyCap::from_shared(
            inner,
            Arc::new(Shared {
                store: self.store.clone(),
                limiters: self.limiters.clone(),
                config: self.config.clone(),
            }),
        )
    }
}
