//! Where bucket state lives: the [`QuotaStore`] trait and [`LocalStore`].
//!
//! # The contract
//!
//! A store keeps, per [`BucketKey`], everything the *server* counts: the pacing schedule
//! of declared and learned limits, the learned limits themselves, pauses and exhaustion.
//! The layer talks to it at three moments:
//!
//! 1. **admit** each attempt with its cost: the store answers [`Decision::Go`],
//!    [`Decision::Wait`] (come back at an instant; a slot may be reserved for it) or
//!    [`Decision::Reject`]. One call, so a shared store can answer in one round trip.
//! 2. **observe** each outcome (the response's [`RateLimitSnapshot`] and
//!    [`Classification`]): learn limits, pause on a throttle verdict, mark exhaustion.
//! 3. **pause** / **exhaust** a bucket explicitly.
//!
//! The layer does not report a success whose snapshot is empty unless its ticket is a
//! probe: there is nothing to learn from it, and a shared store saves a round trip.
//!
//! The in-flight permits are *not* in the store: they belong to live response bodies of
//! this process, and a shared store could not free them when a process dies. They live in
//! the service, next to the FIFO queue.
//!
//! # Asynchronous without boxing the local case
//!
//! Methods return a [`StoreFuture`]: either an already-computed answer (what
//! [`LocalStore`] returns, no allocation) or a boxed `Send` future (what a store that talks
//! to Redis returns). The trait stays object safe, so the layer holds an
//! `Arc<dyn QuotaStore>` and its types carry no store parameter. Methods take their
//! arguments by reference and must copy what they need before returning the future, which
//! is `'static`.
//!
//! # Time
//!
//! Every instant is a [`tokio::time::Instant`] passed in by the caller (`now`), so the store
//! is deterministic under paused virtual time. A store shared between processes maps these
//! instants onto its own clock (for instance by anchoring `now` to the server's `TIME`).
//!
//! # Testing a store
//!
//! With the `testing` feature, [`crate::testing`] holds the behaviour suite every store
//! must pass; `LocalStore` runs it in this crate's tests.
//!
//! # A store shared by processes
//!
//! [`SharedBucket`] is one bucket's state with the same rules `LocalStore` applies, and
//! a compact versioned encoding whose instants lie on a timeline shared by the processes
//! ([`Anchor`]). A shared store (`abide-redis`) keeps the bytes and serializes writers;
//! the rules stay here, so every store decides alike.

mod boundary;
mod bucket;
mod drip;
mod gcra;
mod learned;
mod local;
mod outage;
mod refill;
mod released;
mod shared;
mod throttle;
mod time;
mod window;

pub use local::LocalStore;
pub use shared::{Anchor, DecodeError, SharedBucket, FORMAT_VERSION};

use crate::key::BucketKey;
use crate::ExhaustionPolicy;
use abide_classify::Classification;
use abide_headers::RateLimitSnapshot;
use governor::Quota;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// A shared store's failure (connection lost, script error, ...).
///
/// The layer returns it to the caller (boxed) when admission fails; a failed observation
/// is only logged, the response still goes through.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn StdError + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError {
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quota store failed: {}", self.source)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The answer of a [`QuotaStore`] method: already there, or still coming.
///
/// `LocalStore` answers with [`StoreFuture::ready`] (no allocation); a networked store
/// with [`StoreFuture::boxed`].
#[must_use = "futures do nothing unless polled"]
pub struct StoreFuture<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Ready(Option<Result<T, StoreError>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>),
}

impl<T> StoreFuture<T> {
    /// An answer known now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        StoreFuture {
            inner: Inner::Ready(Some(result)),
        }
    }

    /// An answer still to come (a network round trip, ...).
    pub fn boxed(future: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        StoreFuture {
            inner: Inner::Boxed(Box::pin(future)),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            Inner::Ready(_) => "ready",
            Inner::Boxed(_) => "boxed",
        };
        f.debug_struct("StoreFuture").field("kind", &kind).finish()
    }
}

impl<T: Unpin> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.inner {
            Inner::Ready(result) => match result.take() {
                Some(result) => Poll::Ready(result),
                // Polled again after completion: a caller bug, answered without a panic.
                None => Poll::Ready(Err(StoreError::new("store future polled after completion"))),
            },
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

/// Identifies one admission: which pause/exhaustion era it belongs to and how many
/// requests and cost units the bucket had admitted when it was admitted, itself included.
///
/// Passed back with the observation of its response, it tells the store how much was
/// admitted *after* it, which the server's `remaining` did not count yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The bucket's era: bumped by each pause and exhaustion.
    pub epoch: u64,
    /// Requests admitted to the bucket so far, this one included.
    pub requests: u64,
    /// Cost units admitted to the bucket so far, this one included.
    pub units: u64,
    /// This admission's own cost units. A refusal with fewer than these remaining is the
    /// limit being spent, not the server granting less than its headers say.
    pub cost: u64,
    /// When the admission lets the request go (its slot, for a reservation), if known:
    /// the server admits it no earlier.
    pub released: Option<Instant>,
    /// This admission is the probe of an exhausted bucket: its outcome must be observed.
    pub probe: bool,
    /// This admission was paced by a send rate learned from 429s (or a daily limit's
    /// refill learned from them): its outcome must be observed, because that rate grows
    /// (that refill is measured) only as successes come back.
    pub paced: bool,
}

/// A slot reserved for later: the admission waits until `at`, then asks again with the
/// reservation and goes at once unless the bucket was paused or exhausted meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// The admission's ticket.
    pub ticket: Ticket,
    /// When the slot starts.
    pub at: Instant,
}

/// Why a store refuses an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// The bucket's quota is exhausted (fail-fast policy, or a probe is already out).
    Exhausted {
        /// When a probe may go, if known.
        retry_in: Option<Duration>,
    },
    /// The wait would exceed what the admission allows; nothing was reserved.
    TooLong {
        /// How long it would have had to wait.
        would_wait: Duration,
    },
    /// The bucket is paused by a server-stated wait longer than the policy's
    /// [`max_server_wait`](BucketPolicy::max_server_wait); nothing was reserved.
    ServerWaitTooLong {
        /// What is left of the stated wait.
        wait: Duration,
    },
    /// The cost exceeds the declared cost quota's burst: it could never be admitted.
    TooCostly {
        /// The request's cost.
        cost: u32,
        /// The largest cost the quota admits.
        max: u32,
    },
}

/// A store's answer to an admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Decision {
    /// Send now.
    Go(Ticket),
    /// Ask again at `until`. With a reservation, the slot at `until` is this admission's.
    Wait {
        /// When to ask again.
        until: Instant,
        /// The slot reserved, if any.
        reservation: Option<Reservation>,
    },
    /// Do not send.
    Reject(Rejection),
}

/// How the store treats a bucket: what the user declared and the policies for pauses and
/// exhaustion. Built by the layer from its configuration and passed with every call, so
/// a store needs no configuration of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketPolicy {
    /// Declared requests quota, paced by GCRA.
    pub request_quota: Option<Quota>,
    /// Declared cost-units quota (tokens), paced by GCRA with weighted cost.
    pub cost_quota: Option<Quota>,
    /// Learn limits from response snapshots.
    pub learn: bool,
    /// What to do with new requests while the bucket is exhausted.
    pub exhaustion: ExhaustionPolicy,
    /// How long an exhausted bucket waits before probing when the server gave no time.
    pub cool_off: Duration,
    /// The pause for a throttle verdict that states no wait (zero: no pause).
    pub default_pause: Duration,
    /// The longest pause, exhaustion or learned reset taken from a server.
    pub max_pause: Duration,
    /// The longest server-stated wait worth taking: while a pause the server stated has
    /// longer to run, admissions are refused with [`Rejection::ServerWaitTooLong`].
    pub max_server_wait: Duration,
}

impl Default for BucketPolicy {
    fn default() -> Self {
        BucketPolicy {
            request_quota: None,
            cost_quota: None,
            learn: true,
            exhaustion: ExhaustionPolicy::FailFast,
            cool_off: Duration::from_secs(900),
            default_pause: Duration::from_secs(1),
            max_pause: crate::DEFAULT_MAX_SERVER_WAIT,
            max_server_wait: crate::DEFAULT_MAX_SERVER_WAIT,
        }
    }
}

/// One admission asked of a store.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Admission<'a> {
    /// The bucket.
    pub key: &'a BucketKey,
    /// The request's cost units (requests always count 1 on request-type limits).
    pub cost: u32,
    /// The current instant.
    pub now: Instant,
    /// The longest wait the caller accepts; longer means [`Rejection::TooLong`].
    pub max_wait: Duration,
    /// The slot reserved by an earlier [`Decision::Wait`], when coming back for it.
    pub reservation: Option<Reservation>,
    /// The bucket's policy.
    pub policy: &'a BucketPolicy,
    /// Which cap asks (an id of the layer instance, unique across the processes sharing
    /// a store; 0: unknown). In an outage the probe role rotates between caps: the
    /// requests of the cap whose probe just failed are woken by its answer at once, while
    /// another cap's only ask again at their next poll, and would never take a turn.
    pub origin: u64,
}

impl<'a> Admission<'a> {
    /// An admission of `cost` units at `now` with no wait limit and no reservation.
    pub fn new(key: &'a BucketKey, cost: u32, now: Instant, policy: &'a BucketPolicy) -> Self {
        Admission {
            key,
            cost,
            now,
            max_wait: Duration::MAX,
            reservation: None,
            policy,
            origin: 0,
        }
    }

    /// Sets the longest acceptable wait.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Comes back for a reserved slot.
    pub fn with_reservation(mut self, reservation: Option<Reservation>) -> Self {
        self.reservation = reservation;
        self
    }

    /// Says which cap asks ([`origin`](Self::origin)).
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }
}

/// One outcome reported to a store.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Observation<'a> {
    /// The bucket.
    pub key: &'a BucketKey,
    /// When the outcome arrived.
    pub now: Instant,
    /// The ticket of the admission that produced it, when known.
    pub ticket: Option<Ticket>,
    /// The verdict.
    pub classification: &'a Classification,
    /// What the response's headers said about the limits (empty for errors).
    pub snapshot: &'a RateLimitSnapshot,
    /// The bucket's policy.
    pub policy: &'a BucketPolicy,
    /// Requests of the observing process waiting for admission to the bucket. During an
    /// outage each probe is a different one of them, so the more wait, the shorter the
    /// hold between probes can be without any of them running out of attempts.
    pub waiting: usize,
    /// The answer refused a request past what the server was seen to run at once (the
    /// in-flight cap learned it): an overload without a stated wait is then about
    /// concurrency, which the cap answers, not the server going down for everyone.
    pub over_capacity: bool,
}

impl<'a> Observation<'a> {
    /// An observation of `classification` and `snapshot` at `now`.
    pub fn new(
        key: &'a BucketKey,
        now: Instant,
        classification: &'a Classification,
        snapshot: &'a RateLimitSnapshot,
        policy: &'a BucketPolicy,
    ) -> Self {
        Observation {
            key,
            now,
            ticket: None,
            classification,
            snapshot,
            policy,
            waiting: 0,
            over_capacity: false,
        }
    }

    /// Sets the admission ticket.
    pub fn with_ticket(mut self, ticket: Option<Ticket>) -> Self {
        self.ticket = ticket;
        self
    }

    /// Sets how many requests of the observing process wait for the bucket.
    pub fn with_waiting(mut self, waiting: usize) -> Self {
        self.waiting = waiting;
        self
    }

    /// Sets whether the answer refused a request past what the server was seen to run
    /// at once.
    pub fn with_over_capacity(mut self, over_capacity: bool) -> Self {
        self.over_capacity = over_capacity;
        self
    }
}

/// The one place bucket state lives. See the [module docs](self) for the contract.
///
/// Implementations must be cheap to call concurrently (`&self`), answer admissions in
/// FIFO order of calls per bucket (each reservation is later than the previous one), and
/// never reserve anything when they reject.
pub trait QuotaStore: Send + Sync + fmt::Debug + 'static {
    /// Admits one attempt: go now, wait (with a reserved slot or to ask again), or reject.
    fn admit(&self, admission: &Admission<'_>) -> StoreFuture<Decision>;

    /// Learns from one outcome: limits from the snapshot; a throttle verdict pauses the
    /// bucket until the server's time; a quota-exhaustion verdict exhausts it; a later
    /// answer to the probe of an exhausted bucket clears the exhaustion.
    fn observe(&self, observation: &Observation<'_>) -> StoreFuture<()>;

    /// Pauses the whole bucket until `until` (never shortens a longer pause).
    fn pause(&self, key: &BucketKey, until: Instant) -> StoreFuture<()>;

    /// Marks the bucket exhausted until `until`, when one probe may go.
    fn exhaust(&self, key: &BucketKey, until: Instant) -> StoreFuture<()>;

    /// Gives back the slot of `admission.reservation`: the admission that reserved it
    /// was dropped before its slot came. A later admission may take the time it frees.
    /// Nothing happens when the bucket was paused or exhausted since (its slots already
    /// moved) or the slot has begun.
    ///
    /// Called from `Drop`: the returned future may be dropped unpolled, so a store must
    /// apply the cancellation in the call itself (or spawn the work). The default does
    /// nothing, which only wastes the slot.
    fn cancel(&self, admission: &Admission<'_>) -> StoreFuture<()> {
        let _ = admission;
        StoreFuture::ready(Ok(()))
    }
}
