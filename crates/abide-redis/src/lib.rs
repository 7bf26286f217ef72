//! A [`QuotaStore`] shared through Redis: a fleet of client processes on one API key
//! paces itself as one client.
//!
//! Every process of a batch job or every replica of a service that calls the same API
//! with the same key shares the server's limit. With [`LocalStore`] each discovers the
//! same 429 on its own; with [`RedisStore`] they share one bucket state: one pacing
//! schedule, one set of learned limits, one pause when any of them is told to wait.
//!
//! ```no_run
//! use abide_cap::ConcurrencyCapLayer;
//! use abide_redis::{FailurePolicy, RedisStore};
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), abide_cap::StoreError> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/")
//!     .with_prefix("my-batch-job:")
//!     .with_timeout(Duration::from_millis(200))
//!     // Redis down: go on alone, with a quarter of each declared quota.
//!     .with_failure_policy(FailurePolicy::FailOpen { fleet_size: NonZeroU32::new(4).unwrap() })
//!     .connect()
//!     .await?;
//! let cap = ConcurrencyCapLayer::new().with_store(store);
//! # let _ = cap;
//! # Ok(())
//! # }
//! ```
//!
//! A complete run against a real `redis-server` is in this crate's tests
//! (`tests/store.rs`), which start their own server.
//!
//! # How it works
//!
//! The rules are not rewritten in Lua: they live once, in `abide-cap`
//! ([`SharedBucket`], the same code [`LocalStore`] runs), and Redis is the point where the
//! processes' writes are put in order. Each bucket is one Redis hash holding the encoded
//! state and a version token. One Lua script, loaded once and called by `EVALSHA`
//! (loaded again on `NOSCRIPT`, after a Redis restart), compares and sets: it writes the
//! new state only if the version is the one the process read, sets the key's TTL, and
//! otherwise returns the current state.
//!
//! Each process keeps the last state it saw per bucket. An admission decides on it in
//! Rust and sends one compare-and-set: **one round trip** when no other process wrote
//! the bucket meanwhile. When one did, the script's answer carries the current state;
//! the process decides again on it and retries (a second round trip, and so on, bounded).
//! Within a process, calls on one bucket are serialized, so they never conflict with each
//! other. [`RedisStore::stats`] counts admissions and round trips.
//!
//! Why not a script that runs the rules: the bucket's rules (learned windows and token
//! buckets, trust in what headers say, the outage circuit, probes) are far larger than a
//! GCRA, are tuned as servers are studied, and must decide exactly as
//! [`LocalStore`] does; a second copy in Lua would drift from the first. The price is a state of about
//! a hundred bytes per write instead of a few numbers, and a retry on contention.
//!
//! # Time
//!
//! At connect the store reads the server's `TIME` and anchors its own clock to it: an
//! instant `i` is stored as `T0 + (i - I0)` nanoseconds on the server's timeline. Every
//! process shares that timeline, so the clocks of the client machines do not matter.
//! Instants are [`tokio::time::Instant`]s, as everywhere in abide. Do not use this store
//! under paused tokio time: its timeouts would fire at once while Redis answers.
//!
//! # Keys
//!
//! A bucket is the key `{prefix}{<bucket>}` ([`RedisStore::redis_key`]): one key, its
//! name as the hash tag, so it maps to one slot and the same store works on one
//! `redis-server`, on Valkey and on a Redis Cluster ([`RedisStore::cluster_builder`],
//! feature `cluster`), where buckets spread over the shards (tested on a 3-node cluster).
//! On a cluster the `TIME` anchor is read from one node: its nodes' clocks must agree
//! (NTP) to well under the shortest wait that matters. `{`, `}` and `%` in the prefix or the bucket are percent-escaped, so a bucket
//! name can neither change the slot nor collide with another. Each write sets a TTL:
//! the idle timeout after the last instant the state holds (a pause, a reserved slot, a
//! learned reset, a hold), so idle buckets disappear by themselves.
//!
//! # Redis unreachable or slow
//!
//! Every call has a timeout ([`RedisStoreBuilder::with_timeout`]). A call that fails or
//! times out is answered by the [`FailurePolicy`]:
//!
//! - [`FailurePolicy::FailOpen`] (the default): the process goes on alone, deciding on
//!   the last state of the bucket it saw (a fresh bucket if it never saw one), with each
//!   declared quota divided by the fleet size, so the fleet stays within the declared
//!   quota without talking. Learned limits go on learning from each response's headers
//!   (whose `remaining` counts the whole fleet; a token-bucket dialect measures the
//!   others' share); a 429 still pauses this process. What it decides alone is not
//!   written back: when Redis answers again the shared state wins, except when the
//!   bucket is gone from Redis (a restart), where the process's state seeds it.
//! - [`FailurePolicy::FailClosed`]: the call fails with a [`StoreError`] whose source is
//!   [`RedisUnavailable`]; the cap layer returns it to the caller, so no request goes
//!   unpaced.
//!
//! Either way a `tracing` warning is emitted when Redis stops answering (and an info
//! event when it answers again), and the counter `abide_redis_unavailable_total`
//! (label `policy`) counts each call answered by the policy, through the `metrics`
//! facade. After a failure the store stops asking Redis for
//! [`with_retry_interval`](RedisStoreBuilder::with_retry_interval) (so an outage costs
//! callers no timeouts), then the next call tries again; the connection manager
//! reconnects by itself.
//!
//! No request is lost or doubled: each call gets exactly one answer, from Redis or from
//! the policy. A compare-and-set that timed out may still have been applied in Redis; it
//! then holds a slot nobody uses, which wastes a little of the quota and never exceeds it.
//!
//! [`LocalStore`]: abide_cap::LocalStore

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

use abide_cap::store::{
    Admission, Anchor, BucketPolicy, Decision, Observation, QuotaStore, Reservation, SharedBucket,
    StoreFuture, Ticket,
};
use abide_cap::{BucketKey, Quota, StoreError};
use abide_classify::Classification;
use abide_headers::RateLimitSnapshot;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The compare-and-set: `KEYS[1]` the bucket; `ARGV` the version read (empty: absent),
/// the new version, the new state, the TTL in milliseconds. Returns 1 when written, else
/// `{version, state}` as they are (empty strings when the bucket is absent).
const CAS_SCRIPT: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 's')
local v = cur[1] or ''
if v == ARGV[1] then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return {v, cur[2] or ''}
";

/// The name of the counter of calls answered by the failure policy.
pub const UNAVAILABLE_COUNTER: &str = "abide_redis_unavailable_total";

/// Compare-and-set attempts per call before giving up (each conflict means another
/// process wrote: with N processes a call needs at most about N).
const MAX_ATTEMPTS: u32 = 64;

/// A cache of bucket states is swept for expired entries when it grows past this.
const MIN_SWEEP: usize = 1024;

/// What a [`RedisStore`] does when Redis does not answer in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Go on alone on the last state seen, with each declared quota divided by
    /// `fleet_size` (the number of processes sharing it): see the
    /// [crate docs](crate#redis-unreachable-or-slow).
    FailOpen {
        /// How many processes share the declared quotas (1: each keeps all of it).
        fleet_size: NonZeroU32,
    },
    /// Fail the call with [`RedisUnavailable`].
    FailClosed,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy::FailOpen {
            fleet_size: NonZeroU32::MIN,
        }
    }
}

impl FailurePolicy {
    fn label(self) -> &'static str {
        match self {
            FailurePolicy::FailOpen { .. } => "fail_open",
            FailurePolicy::FailClosed => "fail_closed",
        }
    }
}

/// Redis did not answer a call in time (or answered with an error) and the policy is
/// [`FailurePolicy::FailClosed`]. The source of the [`StoreError`] the call returns.
///
/// ```
/// # use abide_cap::StoreError;
/// # fn refused(e: &StoreError) -> bool {
/// use abide_redis::RedisUnavailable;
/// use std::error::Error;
/// e.source().and_then(|s| s.downcast_ref::<RedisUnavailable>()).is_some()
/// # }
/// ```
#[derive(Debug)]
pub struct RedisUnavailable {
    reason: String,
}

impl RedisUnavailable {
    /// Why Redis was not used (the last error, or that the store is waiting to retry).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for RedisUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis unavailable: {}", self.reason)
    }
}

impl StdError for RedisUnavailable {}

/// What a [`RedisStore`] has done so far (all processes' own counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreStats {
    /// Admissions asked of the store.
    pub admissions: u64,
    /// Round trips to Redis made by admissions.
    pub admission_round_trips: u64,
    /// Round trips to Redis made by every call (admissions, observations, pauses, ...).
    pub round_trips: u64,
    /// Compare-and-sets that found another process's write.
    pub conflicts: u64,
    /// Calls answered by the failure policy instead of Redis.
    pub unavailable: u64,
}

impl RedisStoreStats {
    /// Round trips per admission: 1.0 when no admission ever found another process's
    /// write. `None` before the first admission.
    pub fn round_trips_per_admission(&self) -> Option<f64> {
        (self.admissions > 0).then(|| self.admission_round_trips as f64 / self.admissions as f64)
    }
}

#[derive(Debug, Default)]
struct Counters {
    admissions: AtomicU64,
    admission_round_trips: AtomicU64,
    round_trips: AtomicU64,
    conflicts: AtomicU64,
    unavailable: AtomicU64,
}

/// Configures and connects a [`RedisStore`]; from [`RedisStore::builder`].
#[derive(Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    idle: Duration,
    retry_interval: Duration,
    policy: FailurePolicy,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle)
            .field("retry_interval", &self.retry_interval)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    /// Keys start with `prefix` (default `abide:`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// The longest a call waits for Redis, connecting included (default 250 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long after its last pending instant a bucket is kept (default 10 minutes,
    /// as [`LocalStore`](abide_cap::LocalStore)).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// After a failed call, how long the store answers by its policy without asking
    /// Redis (default 1 s).
    pub fn with_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// What to do when Redis does not answer (default: fail open, fleet size 1).
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Connects, loads the script and anchors this process's clock to the server's.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the URL is invalid or Redis does not answer within the
    /// timeout: a fleet must agree on one state, so a store is not built without it.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let within = |what: &'static str| {
            move |e: tokio::time::error::Elapsed| StoreError::new(format!("{what}: {e}"))
        };
        // redis-rs's messages do not repeat the URL; a password stays out of them.
        let invalid = |e: RedisError| StoreError::new(format!("invalid Redis URL: {e}"));
        let mut conn = match &self.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(self.timeout);
                let manager = tokio::time::timeout(
                    self.timeout,
                    ConnectionManager::new_with_config(client, config),
                )
                .await
                .map_err(within("connecting to Redis"))?
                .map_err(StoreError::new)?;
                Conn::Single(manager)
            }
            #[cfg(feature = "cluster")]
            Target::Cluster(nodes) => {
                let client =
                    redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
                        .connection_timeout(self.timeout)
                        .response_timeout(self.timeout)
                        .retries(1)
                        .build()
                        .map_err(invalid)?;
                let conn = tokio::time::timeout(self.timeout, client.get_async_connection())
                    .await
                    .map_err(within("connecting to the Redis Cluster"))?
                    .map_err(StoreError::new)?;
                Conn::Cluster(conn)
            }
        };
        let script = redis::Script::new(CAS_SCRIPT);
        let _: String = tokio::time::timeout(self.timeout, script.load_async(&mut conn))
            .await
            .map_err(within("loading the script"))?
            .map_err(StoreError::new)?;
        let (secs, micros): (i64, i64) =
            tokio::time::timeout(self.timeout, redis::cmd("TIME").query_async(&mut conn))
                .await
                .map_err(within("reading the server's TIME"))?
                .map_err(StoreError::new)?;
        let anchor = Anchor::new(
            Instant::now(),
            secs.saturating_mul(1_000_000_000)
                .saturating_add(micros.saturating_mul(1_000)),
        );
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                sha: script.get_hash().to_owned(),
                anchor,
                prefix: escape(&self.prefix),
                timeout: self.timeout,
                idle: self.idle,
                retry_interval: self.retry_interval,
                policy: self.policy,
                cache: Mutex::new(Cache {
                    buckets: HashMap::new(),
                    sweep_at: MIN_SWEEP,
                }),
                down_until: Mutex::new(None),
                degraded: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        })
    }
}

/// A [`QuotaStore`] whose bucket state lives in Redis, shared by every process that
/// connects with the same prefix. See the [crate docs](crate).
///
/// Clones share the connection and the per-bucket cache.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Where the store connects.
#[derive(Clone)]
enum Target {
    Single(String),
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

/// A connection to one Redis (reconnecting by itself) or to a cluster (routing each
/// bucket's script call to the node holding its slot).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

struct Inner {
    conn: Conn,
    sha: String,
    anchor: Anchor,
    prefix: String,
    timeout: Duration,
    idle: Duration,
    retry_interval: Duration,
    policy: FailurePolicy,
    cache: Mutex<Cache>,
    /// After a failure: no call asks Redis before this.
    down_until: Mutex<Option<Instant>>,
    /// A warning was emitted and no call has succeeded since.
    degraded: AtomicBool,
    counters: Counters,
}

struct Cache {
    buckets: HashMap<String, Arc<tokio::sync::Mutex<Cached>>>,
    sweep_at: usize,
}

/// The last state of one bucket this process saw, and its version in Redis (`None`:
/// absent from Redis as far as this process knows).
#[derive(Default)]
struct Cached {
    version: Option<u64>,
    state: Option<SharedBucket>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("idle_timeout", &self.inner.idle)
            .field("policy", &self.inner.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for a store on the Redis at `url` (`redis://[:password@]host:port/db`).
    pub fn builder(url: &str) -> RedisStoreBuilder {
        Self::builder_for(Target::Single(url.to_owned()))
    }

    /// A builder for a store on the Redis Cluster reached through `nodes` (some of its
    /// nodes' URLs; the rest is discovered). Feature `cluster`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), abide_cap::StoreError> {
    /// let store = abide_redis::RedisStore::cluster_builder(["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "cluster")]
    pub fn cluster_builder<'a>(nodes: impl IntoIterator<Item = &'a str>) -> RedisStoreBuilder {
        Self::builder_for(Target::Cluster(
            nodes.into_iter().map(str::to_owned).collect(),
        ))
    }

    fn builder_for(target: Target) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target,
            prefix: "abide:".to_owned(),
            timeout: Duration::from_millis(250),
            idle: Duration::from_secs(600),
            retry_interval: Duration::from_secs(1),
            policy: FailurePolicy::default(),
        }
    }

    /// Connects with the defaults (see [`RedisStoreBuilder`]).
    ///
    /// # Errors
    ///
    /// As [`RedisStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        Self::builder(url).connect().await
    }

    /// What this store has done so far.
    pub fn stats(&self) -> RedisStoreStats {
        let c = &self.inner.counters;
        RedisStoreStats {
            admissions: c.admissions.load(Ordering::Relaxed),
            admission_round_trips: c.admission_round_trips.load(Ordering::Relaxed),
            round_trips: c.round_trips.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
        }
    }

    /// The Redis key holding `bucket`'s state.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), abide_cap::StoreError> {
    /// use abide_cap::BucketKey;
    /// let store = abide_redis::RedisStore::connect("redis://127.0.0.1/").await?;
    /// assert_eq!(store.redis_key(&BucketKey::new("api.openai.com")), "abide:{api.openai.com}");
    /// assert_eq!(store.redis_key(&BucketKey::new("a{b}")), "abide:{a%7Bb%7D}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn redis_key(&self, bucket: &BucketKey) -> String {
        format!("{}{{{}}}", self.inner.prefix, escape(bucket.as_str()))
    }

    fn run(&self, op: Op, admission: bool) -> StoreFuture<Option<Decision>> {
        let store = self.clone();
        StoreFuture::boxed(async move { store.inner.run(op, admission).await })
    }
}

/// Percent-escapes what would change a key's hash tag or make two names collide.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

/// One call, owned, so the future is `'static`.
#[derive(Clone, Debug)]
enum Op {
    Admit(Adm),
    Cancel(Adm),
    Observe {
        key: BucketKey,
        now: Instant,
        ticket: Option<Ticket>,
        classification: Classification,
        snapshot: Box<RateLimitSnapshot>,
        policy: BucketPolicy,
    },
    Pause(BucketKey, Instant),
    Exhaust(BucketKey, Instant),
}

#[derive(Clone, Debug)]
struct Adm {
    key: BucketKey,
    cost: u32,
    now: Instant,
    max_wait: Duration,
    reservation: Option<Reservation>,
    policy: BucketPolicy,
}

impl Adm {
    fn of(a: &Admission<'_>) -> Self {
        Adm {
            key: a.key.clone(),
            cost: a.cost,
            now: a.now,
            max_wait: a.max_wait,
            reservation: a.reservation,
            policy: a.policy.clone(),
        }
    }

    fn admission<'a>(&'a self, policy: &'a BucketPolicy) -> Admission<'a> {
        Admission::new(&self.key, self.cost, self.now, policy)
            .with_max_wait(self.max_wait)
            .with_reservation(self.reservation)
    }
}

impl Op {
    fn key(&self) -> &BucketKey {
        match self {
            Op::Admit(a) | Op::Cancel(a) => &a.key,
            Op::Observe { key, .. } | Op::Pause(key, _) | Op::Exhaust(key, _) => key,
        }
    }

    fn now(&self) -> Instant {
        match self {
            Op::Admit(a) | Op::Cancel(a) => a.now,
            Op::Observe { now, .. } => *now,
            Op::Pause(..) | Op::Exhaust(..) => Instant::now(),
        }
    }

    /// Applies the call to `bucket`, each declared quota divided by `share`.
    fn apply(&self, bucket: &mut SharedBucket, share: u32) -> Option<Decision> {
        let scaled = |p: &BucketPolicy| {
            let mut p = p.clone();
            if share > 1 {
                p.request_quota = p.request_quota.map(|q| divide(q, share));
                p.cost_quota = p.cost_quota.map(|q| divide(q, share));
            }
            p
        };
        match self {
            Op::Admit(a) => {
                let p = scaled(&a.policy);
                Some(bucket.admit(&a.admission(&p)))
            }
            Op::Cancel(a) => {
                let p = scaled(&a.policy);
                bucket.cancel(&a.admission(&p));
                None
            }
            Op::Observe {
                key,
                now,
                ticket,
                classification,
                snapshot,
                policy,
            } => {
                let p = scaled(policy);
                let o =
                    Observation::new(key, *now, classification, snapshot, &p).with_ticket(*ticket);
                bucket.observe(&o);
                None
            }
            Op::Pause(_, until) => {
                bucket.pause(*until);
                None
            }
            Op::Exhaust(_, until) => {
                bucket.exhaust(*until);
                None
            }
        }
    }
}

/// `quota` shared by `share` processes: the same period per cell times `share`, the
/// burst divided (at least 1).
fn divide(quota: Quota, share: u32) -> Quota {
    let period = quota.replenish_interval().saturating_mul(share);
    let burst = NonZeroU32::new(quota.burst_size().get() / share).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .map(|q| q.allow_burst(burst))
        .unwrap_or(quota)
}

/// Why a compare-and-set did not write.
enum Failure {
    Redis(String),
    Conflicts,
}

enum Cas {
    Written,
    /// Another version is there: (version, state), `None` when absent.
    Conflict(Option<(u64, Vec<u8>)>),
}

impl Inner {
    fn bucket(&self, redis_key: &str, now: Instant) -> Arc<tokio::sync::Mutex<Cached>> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = cache.buckets.get(redis_key) {
            return b.clone();
        }
        if cache.buckets.len() >= cache.sweep_at {
            let idle = self.idle;
            cache.buckets.retain(|_, b| {
                Arc::strong_count(b) > 1
                    || b.try_lock().map_or(true, |c| {
                        c.state.as_ref().is_some_and(|s| s.expires_at(idle) > now)
                    })
            });
            cache.sweep_at = (cache.buckets.len() * 2).max(MIN_SWEEP);
        }
        cache
            .buckets
            .entry(redis_key.to_owned())
            .or_default()
            .clone()
    }

    async fn run(&self, op: Op, admission: bool) -> Result<Option<Decision>, StoreError> {
        let now = op.now();
        let redis_key = format!("{}{{{}}}", self.prefix, escape(op.key().as_str()));
        let entry = self.bucket(&redis_key, now);
        let mut cached = entry.lock().await;
        if admission {
            self.counters.admissions.fetch_add(1, Ordering::Relaxed);
        }
        let result = match self.waiting_to_retry() {
            Some(reason) => Err(Failure::Redis(reason)),
            None => {
                self.shared(&op, &redis_key, &mut cached, now, admission)
                    .await
            }
        };
        match result {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("abide-redis: Redis answers again; buckets are shared again");
                }
                Ok(decision)
            }
            Err(failure) => self.unavailable(&op, &mut cached, now, failure),
        }
    }

    /// The call through Redis: decide on the cached state, compare and set, and on a
    /// conflict decide again on the state another process wrote.
    async fn shared(
        &self,
        op: &Op,
        redis_key: &str,
        cached: &mut Cached,
        now: Instant,
        admission: bool,
    ) -> Result<Option<Decision>, Failure> {
        for _ in 0..MAX_ATTEMPTS {
            let mut bucket = match &cached.state {
                // A state gone from Redis (expired, or Redis restarted) that this process
                // still holds, unexpired, seeds the bucket again.
                Some(s) if cached.version.is_some() || s.expires_at(self.idle) > now => s.clone(),
                _ => SharedBucket::new(now),
            };
            let decision = op.apply(&mut bucket, 1);
            let blob = bucket.encode(&self.anchor);
            let ttl = bucket
                .expires_at(self.idle)
                .saturating_duration_since(now)
                .max(Duration::from_secs(1));
            let version = new_version(cached.version);
            let cas = self
                .cas(redis_key, cached.version, version, &blob, ttl, admission)
                .await
                .inspect_err(|_| self.fail())?;
            match cas {
                Cas::Written => {
                    *cached = Cached {
                        version: Some(version),
                        state: Some(bucket),
                    };
                    return Ok(decision);
                }
                Cas::Conflict(current) => {
                    self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
                    match current {
                        Some((v, blob)) => {
                            let state = SharedBucket::decode(&blob, &self.anchor)
                                .map_err(|e| Failure::Redis(e.to_string()))?;
                            *cached = Cached {
                                version: Some(v),
                                state: Some(state),
                            };
                        }
                        None => cached.version = None,
                    }
                }
            }
        }
        Err(Failure::Conflicts)
    }

    async fn cas(
        &self,
        redis_key: &str,
        expected: Option<u64>,
        version: u64,
        blob: &[u8],
        ttl: Duration,
        admission: bool,
    ) -> Result<Cas, Failure> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha)
            .arg(1)
            .arg(redis_key)
            .arg(expected.map(|v| v.to_string()).unwrap_or_default())
            .arg(version.to_string())
            .arg(blob)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let reply = match self.query(&cmd, admission).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                // Redis restarted (or flushed its scripts): load it again, once.
                let load = redis::cmd("SCRIPT").arg("LOAD").arg(CAS_SCRIPT).to_owned();
                self.query(&load, admission).await.map_err(redis_failure)?;
                self.query(&cmd, admission).await
            }
            other => other,
        }
        .map_err(redis_failure)?;
        parse_cas(reply).ok_or_else(|| Failure::Redis("unexpected reply from the script".into()))
    }

    async fn query(&self, cmd: &redis::Cmd, admission: bool) -> Result<Value, RedisError> {
        self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
        if admission {
            self.counters
                .admission_round_trips
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(reply) => reply,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {:?}", self.timeout),
            ))),
        }
    }

    fn waiting_to_retry(&self) -> Option<String> {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => {
                Some("Redis failed recently; waiting to try again".to_owned())
            }
            Some(_) => {
                *down = None;
                None
            }
            None => None,
        }
    }

    fn fail(&self) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *down = Some(Instant::now() + self.retry_interval);
    }

    /// The call answered by the policy.
    fn unavailable(
        &self,
        op: &Op,
        cached: &mut Cached,
        now: Instant,
        failure: Failure,
    ) -> Result<Option<Decision>, StoreError> {
        let reason = match failure {
            Failure::Redis(reason) => reason,
            Failure::Conflicts => {
                format!("{MAX_ATTEMPTS} compare-and-sets in a row found another writer")
            }
        };
        let policy = self.policy.label();
        self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(UNAVAILABLE_COUNTER, "policy" => policy).increment(1);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                policy,
                reason = %reason,
                "abide-redis: Redis unavailable; calls answered by the failure policy"
            );
        }
        match self.policy {
            FailurePolicy::FailClosed => Err(StoreError::new(RedisUnavailable { reason })),
            FailurePolicy::FailOpen { fleet_size } => {
                let state = cached.state.get_or_insert_with(|| SharedBucket::new(now));
                Ok(op.apply(state, fleet_size.get()))
            }
        }
    }
}

fn redis_failure(e: RedisError) -> Failure {
    Failure::Redis(e.to_string())
}

/// A version no other write of this bucket used: random, so a bucket that expired and
/// was written again never matches a version read before (no ABA).
fn new_version(old: Option<u64>) -> u64 {
    loop {
        let v = fastrand::u64(1..);
        if Some(v) != old {
            return v;
        }
    }
}

fn parse_cas(reply: Value) -> Option<Cas> {
    match reply {
        Value::Int(1) => Some(Cas::Written),
        Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            let (version, state) = (bytes(items.next()?)?, bytes(items.next()?)?);
            if version.is_empty() {
                return Some(Cas::Conflict(None));
            }
            let version = std::str::from_utf8(&version).ok()?.parse().ok()?;
            Some(Cas::Conflict(Some((version, state))))
        }
        _ => None,
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Nil => Some(Vec::new()),
        _ => None,
    }
}

fn decision(d: Result<Option<Decision>, StoreError>) -> Result<Decision, StoreError> {
    d.and_then(|d| d.ok_or_else(|| StoreError::new("admission answered without a decision")))
}

impl QuotaStore for RedisStore {
    fn admit(&self, admission: &Admission<'_>) -> StoreFuture<Decision> {
        let future = self.run(Op::Admit(Adm::of(admission)), true);
        StoreFuture::boxed(async move { decision(future.await) })
    }

    fn observe(&self, o: &Observation<'_>) -> StoreFuture<()> {
        let op = Op::Observe {
            key: o.key.clone(),
            now: o.now,
            ticket: o.ticket,
            classification: o.classification.clone(),
            snapshot: Box::new(o.snapshot.clone()),
            policy: o.policy.clone(),
        };
        let future = self.run(op, false);
        StoreFuture::boxed(async move { future.await.map(drop) })
    }

    fn pause(&self, key: &BucketKey, until: Instant) -> StoreFuture<()> {
        let future = self.run(Op::Pause(key.clone(), until), false);
        StoreFuture::boxed(async move { future.await.map(drop) })
    }

    fn exhaust(&self, key: &BucketKey, until: Instant) -> StoreFuture<()> {
        let future = self.run(Op::Exhaust(key.clone(), until), false);
        StoreFuture::boxed(async move { future.await.map(drop) })
    }

    fn cancel(&self, admission: &Admission<'_>) -> StoreFuture<()> {
        let future = self.run(Op::Cancel(Adm::of(admission)), false);
        StoreFuture::boxed(async move { future.await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_the_hash_tag_and_names_apart() {
        assert_eq!(escape("api.openai.com"), "api.openai.com");
        assert_eq!(escape("a{b}c"), "a%7Bb%7Dc");
        assert_ne!(escape("a{"), escape("a%7B"));
    }

    #[test]
    fn a_divided_quota_keeps_the_period_per_process() {
        let q = Quota::per_second(NonZeroU32::new(100).unwrap());
        let d = divide(q, 4);
        assert_eq!(d.replenish_interval(), q.replenish_interval() * 4);
        assert_eq!(d.burst_size().get(), 25);
        let tiny = divide(Quota::per_second(NonZeroU32::new(2).unwrap()), 8);
        assert_eq!(tiny.burst_size().get(), 1);
    }

    #[test]
    fn script_replies_parse_and_garbage_does_not() {
        assert!(matches!(parse_cas(Value::Int(1)), Some(Cas::Written)));
        let absent = Value::Array(vec![Value::BulkString(vec![]), Value::BulkString(vec![])]);
        assert!(matches!(parse_cas(absent), Some(Cas::Conflict(None))));
        let there = Value::Array(vec![
            Value::BulkString(b"42".to_vec()),
            Value::BulkString(b"state".to_vec()),
        ]);
        assert!(matches!(
            parse_cas(there),
            Some(Cas::Conflict(Some((42, _))))
        ));
        let bad = Value::Array(vec![
            Value::BulkString(b"x".to_vec()),
            Value::BulkString(vec![]),
        ]);
        assert!(parse_cas(bad).is_none());
        assert!(parse_cas(Value::Int(0)).is_none());
    }
}
