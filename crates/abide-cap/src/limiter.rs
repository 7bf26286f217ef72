//! Process-local per-bucket admission: the in-flight cap (fixed or AIMD) and the queue
//! count. Not in the store on purpose: permits belong to this process's live bodies.

use crate::key::{BucketKey, KeyMap};
use crate::ran::{Ran, Seen};
use abide_classify::{Class, Classification, HeldProbe};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{oneshot, AcquireError, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The largest in-flight cap accepted; larger values are taken as this.
pub const MAX_IN_FLIGHT: usize = 1 << 16;

const SHARDS: usize = 16;
/// A shard is swept for limiters nobody holds once it holds this many (then twice what the
/// last sweep left). High enough that thousands of active buckets keep their limiters
/// between requests instead of making a new one each time (an allocation, and the
/// adaptive cap's history lost); low enough that idle ones cost little: at most 16 × 1024
/// limiters of a few hundred bytes each.
const MIN_SWEEP: usize = 1024;
/// Successes measured before latency may cut the cap: the long-run average needs a few.
const MIN_LATENCY_SAMPLES: u32 = 16;

/// How many requests of one bucket may be in flight at once (from admission until the
/// response body ends or is dropped).
///
/// ```
/// use abide_cap::InFlight;
/// let fixed = InFlight::fixed(8);
/// let adaptive = InFlight::adaptive(10, 1, 256);
/// assert_eq!(fixed.initial(), Some(8));
/// assert_eq!(adaptive.initial(), Some(10));
/// assert_eq!(InFlight::unlimited().initial(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InFlight(Mode);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Unlimited,
    Fixed(usize),
    Adaptive {
        initial: usize,
        min: usize,
        max: usize,
    },
}

impl InFlight {
    /// No in-flight cap (pacing and pauses still apply).
    pub fn unlimited() -> Self {
        InFlight(Mode::Unlimited)
    }

    /// At most `n` at once (0 is taken as 1; values above [`MAX_IN_FLIGHT`] as that).
    pub fn fixed(n: usize) -> Self {
        InFlight(Mode::Fixed(n.clamp(1, MAX_IN_FLIGHT)))
    }

    /// AIMD: start at `initial`, halve on a rate-limit verdict, cut to 3/4 on an overload
    /// one stating a wait (overload answers sit at the edge of what the server runs), and
    /// then to fewer than the requests sent when it came (the server ran fewer), cut by a
    /// tenth when the recent latency rises past twice its long-run average, grow by one
    /// per cap's worth of successes while the cap is in use (by one per success until the
    /// first cut: slow start); always within `min..=max` (at least 1).
    ///
    /// An overload answer without a wait may mean the server is down for everyone: the
    /// bucket's outage circuit answers it, and the cap waits until the server serves
    /// both a request in flight when it came and one sent after it (a concurrency limit)
    /// before cutting the same way. Past what the server was seen to run, the cap grows
    /// 8 times slower, and twice slower again each time the server refuses it at the same
    /// level (up to 64 times): a server that runs one at a time is asked for a second
    /// now and then, not every few successes.
    ///
    /// A concurrency limit the server states (`qu=concurrent-requests`) lowers the
    /// maximum, and a fixed cap, to it.
    pub fn adaptive(initial: usize, min: usize, max: usize) -> Self {
        let min = min.clamp(1, MAX_IN_FLIGHT);
        let max = max.clamp(min, MAX_IN_FLIGHT);
        InFlight(Mode::Adaptive {
            initial: initial.clamp(min, max),
            min,
            max,
        })
    }

    /// The starting cap, `None` when unlimited.
    pub fn initial(&self) -> Option<usize> {
        match self.0 {
            Mode::Unlimited => None,
            Mode::Fixed(n) => Some(n),
            Mode::Adaptive { initial, .. } => Some(initial),
        }
    }
}

impl Default for InFlight {
    /// `InFlight::adaptive(10, 1, 256)`.
    fn default() -> Self {
        InFlight::adaptive(10, 1, 256)
    }
}

#[derive(Debug)]
struct Aimd {
    /// False for a fixed cap: only the server's concurrency limit moves it.
    adaptive: bool,
    limit: f64,
    permits: usize,
    debt: usize,
    min: usize,
    max: usize,
    /// The configured cap (fixed) or maximum (adaptive), before any server limit.
    configured: usize,
    /// Until the first cut, grow by one per success (doubling per round trip): nothing
    /// says yet that the server minds more.
    slow_start: bool,
    /// What the server was seen to run at once: the cap grows past it slower (the
    /// server's room may have grown, but each probe past it costs a refusal).
    ran: Ran,
    /// Latency of the recent successes (weight 1/5 each).
    ewma_ns: f64,
    /// Latency of the long run: the mean of the first successes, then an average with
    /// weight 1/256, so a lasting change of the server is eventually accepted.
    baseline_ns: f64,
    /// Successes measured (saturating).
    samples: u32,
    last_decrease: Option<Instant>,
}

impl Aimd {
    /// Moves the cap to `new` permits: adds permits, or takes them back (now if free,
    /// else as debt paid by the next releases).
    fn apply(&mut self, sem: &Semaphore, new: usize) {
        if new < self.permits {
            let cut = self.permits - new;
            let taken = sem.forget_permits(cut);
            self.debt += cut - taken;
        } else if new > self.permits {
            let grow = new - self.permits;
            let paid = grow.min(self.debt);
            self.debt -= paid;
            sem.add_permits(grow - paid);
        }
        self.permits = new;
    }

    /// Caps the permits at what the server says it runs at once (`None`: no such limit).
    fn cap_at(&mut self, sem: &Semaphore, server: Option<usize>) {
        let ceiling = server.map_or(self.configured, |n| n.clamp(1, self.configured));
        if self.adaptive {
            self.max = ceiling.max(self.min);
            self.limit = self.limit.min(self.max as f64);
            let new = (self.limit as usize).clamp(self.min, self.max);
            self.apply(sem, new);
        } else {
            self.max = ceiling;
            self.limit = ceiling as f64;
            self.apply(sem, ceiling);
        }
    }

    /// Cuts the cap by `factor`, and to `ceiling` when given, at most once per round trip.
    fn decrease(&mut self, sem: &Semaphore, factor: f64, ceiling: Option<usize>, now: Instant) {
        // At most once per round trip: one burst of 429s is one signal.
        let rtt = Duration::from_nanos(self.ewma_ns as u64);
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < rtt)
        {
            return;
        }
        self.last_decrease = Some(now);
        self.slow_start = false;
        let cut = self.limit * factor;
        self.limit = ceiling
            .map_or(cut, |c| cut.min(c as f64))
            .max(self.min as f64);
        let new = (self.limit as usize).clamp(self.min, self.max);
        self.apply(sem, new);
    }
}

/// One bucket's local admission state.
pub(crate) struct Limiter {
    sem: Option<Arc<Semaphore>>,
    aimd: Option<Mutex<Aimd>>,
    /// The cap moves with outcomes (AIMD); fixed at construction. Lets the success path
    /// skip the clock and the lock when outcomes change nothing.
    adaptive: bool,
    /// Mirrors `aimd.debt > 0`, written under the lock: a release skips the lock when
    /// no permit is owed.
    in_debt: AtomicBool,
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    /// Of those, the requests sent (the others wait for their slot): what runs on the
    /// server. Kept for an adaptive cap only.
    sent: AtomicUsize,
    /// Counts every sign of life of the bucket's in-flight requests (a permit taken or
    /// released, a response-body frame read): a waiter that sees it unchanged for its whole
    /// wait knows the permits it waits on are held by bodies nobody reads. A counter, not a
    /// clock, so the success path reads no time.
    progress: AtomicU64,
    /// Signalled when the answer to an exhausted bucket's probe has been observed.
    probe: Arc<Notify>,
    /// The request that sent the bucket's last probe (a fresh flag for one that carried
    /// none): the probe role passing between requests shows they share the bucket.
    last_prober: Mutex<Option<HeldProbe>>,
    /// Retries waiting for a permit ([`wait_as_retry`](Self::wait_as_retry)): a permit
    /// given back goes to the first of them before the semaphore's queue.
    retries: Mutex<VecDeque<oneshot::Sender<()>>>,
    /// How many senders `retries` holds, so that a release skips its lock when none.
    retries_waiting: AtomicUsize,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) type AcquireFuture =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

impl Limiter {
    fn new(config: InFlight) -> Self {
        let (sem, aimd) = match config.0 {
            Mode::Unlimited => (None, None),
            Mode::Fixed(n) => (
                Some(Arc::new(Semaphore::new(n))),
                Some(Mutex::new(Aimd {
                    adaptive: false,
                    limit: n as f64,
                    permits: n,
                    debt: 0,
                    min: 1,
                    max: n,
                    configured: n,
                    slow_start: false,
                    ran: Ran::default(),
                    ewma_ns: 0.0,
                    baseline_ns: 0.0,
                    samples: 0,
                    last_decrease: None,
                })),
            ),
            Mode::Adaptive { initial, min, max } => (
                Some(Arc::new(Semaphore::new(initial))),
                Some(Mutex::new(Aimd {
                    adaptive: true,
                    limit: initial as f64,
                    permits: initial,
                    debt: 0,
                    min,
                    max,
                    configured: max,
                    slow_start: true,
                    ran: Ran::default(),
                    ewma_ns: 0.0,
                    baseline_ns: 0.0,
                    samples: 0,
                    last_decrease: None,
                })),
            ),
        };
        Limiter {
            sem,
            aimd,
            adaptive: matches!(config.0, Mode::Adaptive { .. }),
            in_debt: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            sent: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            probe: Arc::new(Notify::new()),
            last_prober: Mutex::new(None),
            retries: Mutex::new(VecDeque::new()),
            retries_waiting: AtomicUsize::new(0),
        }
    }

    /// The bucket's progress count (see the field).
    pub(crate) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Requests admitted whose response body has not ended or been dropped.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A permit now if one is free (the semaphore hands freed permits to waiters first,
    /// so this does not jump the queue).
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let held = match &self.sem {
            None => false,
            Some(sem) => {
                // The permit is tracked by `Permit` (given back in `release`), which
                // spares each request a clone of the semaphore's `Arc`.
                sem.try_acquire().ok()?.forget();
                true
            }
        };
        Some(Permit::new(self.clone(), held))
    }

    /// Waits for a permit, in FIFO order. Boxed because tokio's acquire future has no
    /// name; only the contended path pays for it.
    pub(crate) fn acquire(&self) -> Option<AcquireFuture> {
        let sem = self.sem.clone()?;
        Some(Box::pin(sem.acquire_owned()))
    }

    pub(crate) fn wrap(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Permit {
        permit.forget();
        Permit::new(self.clone(), true)
    }

    /// A waiting request's permit: handed over to its retry's `place` (first), or from
    /// the semaphore's queue. A retry handed one while the semaphore's came too keeps
    /// the handed one and gives the other back (to a debt, the next retry or the queue).
    pub(crate) fn poll_permit(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        acquire: &mut AcquireFuture,
        place: &mut Option<RetryPlace>,
    ) -> Poll<Result<Permit, AcquireError>> {
        if let Some(p) = place {
            match p.poll_handed(cx) {
                // Its place in the semaphore's queue goes with `acquire`.
                Poll::Ready(true) => return Poll::Ready(Ok(self.handed())),
                // The limiter is gone; the semaphore still serves.
                Poll::Ready(false) => *place = None,
                Poll::Pending => {}
            }
        }
        let permit = ready!(acquire.as_mut().poll(cx))?;
        if place.take().is_some_and(|mut p| p.take()) {
            drop(self.wrap(permit));
            return Poll::Ready(Ok(self.handed()));
        }
        Poll::Ready(Ok(self.wrap(permit)))
    }

    /// Waits, besides the semaphore's queue, for a permit given back while it waits: a
    /// retry's place ahead of first attempts. Whichever comes first is the permit; a
    /// receiver dropped before is skipped.
    ///
    /// A refused request comes back to a queue its own refusal did not move: with the
    /// same callers waiting and the same number let through each window, a place keeps
    /// its rank in the window, and the request in the rank the server refuses was
    /// refused again every time it came back, until its attempts ran out.
    pub(crate) fn wait_as_retry(self: &Arc<Self>) -> RetryPlace {
        let (tx, rx) = oneshot::channel();
        lock(&self.retries).push_back(tx);
        self.retries_waiting.fetch_add(1, Ordering::AcqRel);
        RetryPlace {
            rx,
            limiter: self.clone(),
        }
    }

    /// A permit handed over by [`wait_as_retry`](Self::wait_as_retry): taken from the
    /// semaphore by the request that gave it back, so held.
    fn handed(self: &Arc<Self>) -> Permit {
        Permit::new(self.clone(), true)
    }

    /// Joins the queue if fewer than `bound` wait.
    pub(crate) fn enqueue(self: &Arc<Self>, bound: usize) -> Option<QueueSlot> {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < bound).then_some(q + 1)
            })
            .ok()?;
        Some(QueueSlot(self.clone()))
    }

    /// Caps the in-flight permits at the concurrency limit the server states
    /// (`None`: it states none any more). A fixed cap becomes the smaller of the two; an
    /// adaptive cap's maximum does. Unlimited buckets stay unlimited.
    pub(crate) fn server_concurrency(&self, limit: Option<u64>) {
        let (Some(sem), Some(aimd)) = (&self.sem, &self.aimd) else {
            return;
        };
        let mut a = lock(aimd);
        let configured = a.configured;
        let target = limit
            .map(|n| {
                usize::try_from(n)
                    .unwrap_or(MAX_IN_FLIGHT)
                    .clamp(1, configured)
            })
            .filter(|&n| n < configured);
        let current = (a.max < configured).then_some(a.max);
        if current != target {
            a.cap_at(sem, target);
            self.in_debt.store(a.debt > 0, Ordering::Release);
        }
    }

    /// Completes when [`answer_probe`](Self::answer_probe) is next called (counting from
    /// now, polled or not).
    pub(crate) fn probe_answered(&self) -> OwnedNotified {
        self.probe.clone().notified_owned()
    }

    /// A probe is sent by the request carrying `prober` (`None`: one without the flag).
    /// True when it probes for others too: requests wait for the bucket here, or the
    /// last probe was another request's that has not ended (the others may be between
    /// their attempts, out of sight of the cap). A request that probed and then ended
    /// (served, or given up) holds nobody back: a lone caller's next request probes for
    /// itself.
    pub(crate) fn probes_for_others(&self, prober: Option<&HeldProbe>) -> bool {
        let current = prober.cloned().unwrap_or_default();
        let previous = lock(&self.last_prober).replace(current.clone());
        self.queued() > 0 || previous.is_some_and(|p| !p.same_request(&current) && p.is_shared())
    }

    /// Wakes every request held while the probe was out.
    pub(crate) fn answer_probe(&self) {
        self.probe.notify_waiters();
    }

    /// Whether outcomes move the cap ([`on_outcome`](Self::on_outcome) does nothing
    /// otherwise, so callers need not measure latency for it).
    pub(crate) fn is_adaptive(&self) -> bool {
        self.adaptive
    }

    /// Feeds one outcome to the adaptive cap. True when it is an overload answer to a
    /// request past what the server was seen to run at once: about concurrency, which
    /// the cap answers, not the server going down.
    pub(crate) fn on_outcome(
        &self,
        verdict: &Classification,
        latency: Duration,
        now: Instant,
    ) -> bool {
        if !self.adaptive {
            return false;
        }
        let (Some(sem), Some(aimd)) = (&self.sem, &self.aimd) else {
            return false;
        };
        // Sent and running on the server; this response's request still holds its
        // permit, so it is counted.
        let in_flight = self.sent.load(Ordering::Acquire);
        let mut a = lock(aimd);
        let seen = a.ran.observe(verdict, in_flight, latency, now);
        Self::adjust(&mut a, sem, verdict, latency, seen, now);
        self.in_debt.store(a.debt > 0, Ordering::Release);
        seen.over_capacity
    }

    fn adjust(
        a: &mut Aimd,
        sem: &Semaphore,
        verdict: &Classification,
        latency: Duration,
        seen: Seen,
        now: Instant,
    ) {
        let (ran, over_capacity) = (seen.ran, seen.over_capacity);
        let class = verdict.class;
        if let Some(n) = ran {
            // Overload (too many at once) is answered near the edge: a gentler cut keeps
            // the cap close to what the server runs, and never above what it ran.
            a.decrease(sem, 0.75, Some(n), now);
            if class != Class::Success {
                return;
            }
        } else if class == Class::Overloaded {
            // Stating a wait, or refusing past what the server was seen to run while it
            // serves: too many at once, cut. Otherwise (without a wait, not yet shown to
            // be about concurrency) the bucket's outage circuit holds everyone behind one
            // probe; cutting the cap too would only slow the recovery once it is back.
            if verdict.retry_after.is_some() || over_capacity {
                a.decrease(sem, 0.75, None, now);
            }
            return;
        } else if class.is_throttle() {
            // A rate limit halves it.
            a.decrease(sem, 0.5, None, now);
            return;
        }
        if class != Class::Success {
            return;
        }
        let x = latency.as_nanos() as f64;
        a.samples = a.samples.saturating_add(1);
        if a.samples == 1 {
            a.ewma_ns = x;
            a.baseline_ns = x;
        } else {
            a.ewma_ns = 0.8 * a.ewma_ns + 0.2 * x;
            // The long-run average, not the fastest answer seen: latency that varies by
            // itself (a reordering proxy, LLM answers of every length) is not a queue
            // building up; only the recent latency doubling against the long run is.
            let weight = 1.0 / f64::from(a.samples.min(256));
            a.baseline_ns += (x - a.baseline_ns) * weight;
        }
        if a.samples >= MIN_LATENCY_SAMPLES && a.ewma_ns > 2.0 * a.baseline_ns {
            a.decrease(sem, 0.9, None, now);
            return;
        }
        // Grow only while the cap is what limits: an unused cap proves nothing.
        // Every permit is held (in flight, or handed to a waiter that has not run yet).
        let busy = sem.available_permits() == 0;
        if busy && a.permits < a.max {
            let mut step = if a.slow_start { 1.0 } else { 1.0 / a.limit };
            if a.ran.get().is_some_and(|ran| a.limit + step > ran as f64) {
                step /= a.ran.slowdown();
            }
            a.limit = (a.limit + step).min(a.max as f64);
            let new = (a.limit as usize).clamp(a.min, a.max);
            a.apply(sem, new);
        }
    }

    /// Gives back a permit (`held`: one was taken from the semaphore), unless the cap
    /// was cut meanwhile and the permit pays off the debt.
    fn release(&self, held: bool) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.progress.fetch_add(1, Ordering::Relaxed);
        if held {
            self.give_back();
        }
    }

    /// A permit taken from the semaphore goes back: to pay off a debt, to the first
    /// waiting retry, else to the semaphore.
    fn give_back(&self) {
        let Some(sem) = &self.sem else {
            return;
        };
        // Nothing owed (the common case): the permit goes back without the lock. A debt
        // written concurrently is ordered after this release, as if it had taken the lock
        // first.
        if let (Some(aimd), true) = (&self.aimd, self.in_debt.load(Ordering::Acquire)) {
            let mut a = lock(aimd);
            let owed = a.debt > 0;
            if owed {
                a.debt -= 1;
            }
            self.in_debt.store(a.debt > 0, Ordering::Release);
            drop(a);
            if owed {
                return;
            }
        }
        if self.retries_waiting.load(Ordering::Acquire) > 0 {
            let mut retries = lock(&self.retries);
            while let Some(retry) = retries.pop_front() {
                self.retries_waiting.fetch_sub(1, Ordering::AcqRel);
                if retry.send(()).is_ok() {
                    return;
                }
            }
        }
        sem.add_permits(1);
    }

    /// Admissions of this process waiting for the bucket.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> BucketStats {
        let limit = match (&self.aimd, &self.sem) {
            (Some(a), _) => Some(lock(a).permits),
            (None, Some(sem)) => {
                Some(sem.available_permits() + self.in_flight.load(Ordering::Acquire))
            }
            (None, None) => None,
        };
        BucketStats {
            in_flight: self.in_flight.load(Ordering::Acquire),
            queued: self.queued.load(Ordering::Acquire),
            limit,
        }
    }
}

/// What one bucket's local admission looks like now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketStats {
    /// Requests admitted whose response body has not ended or been dropped.
    pub in_flight: usize,
    /// Requests waiting for admission.
    pub queued: usize,
    /// The current in-flight cap, `None` when unlimited.
    pub limit: Option<usize>,
}

/// An in-flight permit: released when dropped.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    /// A permit was taken from the bucket's semaphore (not for unlimited buckets).
    held: bool,
    /// Counted in the limiter's `sent`.
    sent: bool,
}

impl Permit {
    fn new(limiter: Arc<Limiter>, held: bool) -> Self {
        limiter.in_flight.fetch_add(1, Ordering::AcqRel);
        limiter.progress.fetch_add(1, Ordering::Relaxed);
        Permit {
            limiter,
            held,
            sent: false,
        }
    }

    /// Its request was sent: it runs on the server until its response ends. Counted only
    /// for an adaptive cap, the one reader.
    pub(crate) fn mark_sent(&mut self) {
        if self.limiter.adaptive && !self.sent {
            self.sent = true;
            self.limiter.sent.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Its response body moved (a frame was read).
    pub(crate) fn touch(&self) {
        self.limiter.progress.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.sent {
            self.limiter.sent.fetch_sub(1, Ordering::AcqRel);
        }
        self.limiter.release(self.held);
    }
}

/// A retry's place ahead of first attempts ([`Limiter::wait_as_retry`]). A permit handed
/// to it but never taken (the request gave up meanwhile) is given back when it drops.
pub(crate) struct RetryPlace {
    rx: oneshot::Receiver<()>,
    limiter: Arc<Limiter>,
}

impl RetryPlace {
    /// Ready with `true` once a permit is handed over, `false` if none ever can be.
    fn poll_handed(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        Pin::new(&mut self.rx).poll(cx).map(|r| r.is_ok())
    }

    /// Whether a permit was handed over already (taking it).
    fn take(&mut self) -> bool {
        self.rx.try_recv().is_ok()
    }
}

impl fmt::Debug for RetryPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPlace").finish_non_exhaustive()
    }
}

impl Drop for RetryPlace {
    fn drop(&mut self) {
        if self.rx.try_recv().is_ok() {
            self.limiter.give_back();
        }
    }
}

/// A place in a bucket's queue: freed when dropped.
pub(crate) struct QueueSlot(Arc<Limiter>);

impl fmt::Debug for QueueSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueSlot").finish_non_exhaustive()
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// All buckets' limiters, shared by the clones of one service.
pub(crate) struct Limiters {
    config: InFlight,
    shards: Vec<Mutex<Shard>>,
    /// This cap's id in the stores it shares ([`Admission::origin`](crate::store::Admission::origin)).
    origin: u64,
}

/// A random nonzero id, different between the caps of a process and between processes:
/// the standard library draws each `RandomState`'s keys from the OS's randomness (once
/// per thread, then distinct per instance).
fn new_origin() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new()
        .hash_one(())
        .max(1)
}

struct Shard {
    map: KeyMap<Arc<Limiter>>,
    sweep_at: usize,
}

impl fmt::Debug for Limiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiters")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Limiters {
    pub(crate) fn new(config: InFlight) -> Self {
        Limiters {
            config,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: KeyMap::default(),
                        sweep_at: MIN_SWEEP,
                    })
                })
                .collect(),
            origin: new_origin(),
        }
    }

    /// This cap's id in the stores it shares.
    pub(crate) fn origin(&self) -> u64 {
        self.origin
    }

    fn shard(&self, key: &BucketKey) -> &Mutex<Shard> {
        &self.shards[(key.prehash() >> 32) as usize % SHARDS]
    }

    pub(crate) fn get(&self, key: &BucketKey) -> Arc<Limiter> {
        let mut shard = lock(self.shard(key));
        if let Some(l) = shard.map.get(key) {
            return l.clone();
        }
        if shard.map.len() >= shard.sweep_at {
            // Nobody holds it (no future, permit or queue slot): dropping it loses only
            // the adaptive cap's history.
            shard.map.retain(|_, l| Arc::strong_count(l) > 1);
            shard.sweep_at = (shard.map.len() * 2).max(MIN_SWEEP);
        }
        let limiter = Arc::new(Limiter::new(self.config));
        shard.map.insert(key.clone(), limiter.clone());
        limiter
    }

    pub(crate) fn stats(&self, key: &BucketKey) -> Option<BucketStats> {
        lock(self.shard(key)).map.get(key).map(|l| l.stats())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn a_permit_given_back_goes_to_a_waiting_retry_before_the_first_attempts() {
        let limiter = Arc::new(Limiter::new(InFlight::fixed(1)));
        let held = limiter.try_acquire().expect("one free permit");
        // A first attempt waits in the semaphore's queue, then a retry arrives.
        let mut first = limiter.acquire().expect("a limited bucket");
        assert!(poll_once(&mut first).is_pending());
        let mut retry = limiter.wait_as_retry();
        let mut handed = std::future::poll_fn(|cx| retry.poll_handed(cx));
        assert!(poll_once(&mut handed).is_pending());

        drop(held);
        assert_eq!(
            poll_once(&mut handed),
            Poll::Ready(true),
            "the retry goes first"
        );
        drop(handed);
        let retried = limiter.handed();
        assert!(
            poll_once(&mut first).is_pending(),
            "the first attempt waits on"
        );
        assert_eq!(limiter.in_flight(), 1);

        drop(retried);
        assert!(matches!(poll_once(&mut first), Poll::Ready(Ok(_))));
    }

    #[tokio::test]
    async fn a_permit_handed_to_a_retry_that_gave_up_is_not_lost() {
        let limiter = Arc::new(Limiter::new(InFlight::fixed(1)));
        let held = limiter.try_acquire().expect("one free permit");
        let gone = limiter.wait_as_retry();
        drop(held);
        // Handed to it, but it gave up before taking it: the permit goes back.
        drop(gone);
        assert!(limiter.try_acquire().is_some(), "the permit is free again");

        // A retry that gave up before a permit was given back is skipped.
        let limiter = Arc::new(Limiter::new(InFlight::fixed(1)));
        let held = limiter.try_acquire().expect("one free permit");
        drop(limiter.wait_as_retry());
        drop(held);
        assert!(limiter.try_acquire().is_some(), "nobody took it");
    }
}
