//! The response future: waits for admission, then calls the inner service.

use crate::body::ResponseBody;
use crate::error::{BucketExhausted, CostTooHigh, QueueFull, WaitTooLong};
use crate::key::BucketKey;
use crate::limiter::{AcquireFuture, Limiter, Permit, QueueSlot, RetryPlace};
use crate::service::Shared;
use crate::store::{Admission, Decision, Observation, Rejection, Reservation, StoreFuture, Ticket};
use crate::BoxError;
use abide_classify::{classify_error, classify_head, AttemptStart, Classification, HeldProbe};
use abide_headers::{QuotaUnit, RateLimitHeaders, RateLimitSnapshot};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{sleep_until, Instant, Sleep};
use tower_service::Service;

/// What a response without rate-limit headers teaches: nothing. Shared, so such responses
/// cost no snapshot construction.
static EMPTY: LazyLock<RateLimitSnapshot> = LazyLock::new(RateLimitSnapshot::new);

/// A far-but-safe instant for "no deadline" timers.
const NEVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pin_project! {
    /// The future of [`ConcurrencyCap`](crate::ConcurrencyCap): in order, waits for an
    /// in-flight permit (FIFO), asks the store for admission (sleeping until a reserved
    /// slot when pacing says so), drives its clone of the inner service to readiness,
    /// calls it, reports the outcome to the store and hands the permit to the response body.
    ///
    /// Dropping it at any point frees its queue place and its permit.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S::Response>,
        ctx: Ctx<S, B>,
    }

    impl<S, B> PinnedDrop for ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped while waiting for a reserved slot: give the slot back, so the
            // quota it held is not lost to the other callers.
            if let StateProj::Sleep {
                reservation: Some(reservation),
                ..
            } = this.state.project()
            {
                let ctx = &*this.ctx;
                let admission =
                    Admission::new(&ctx.key, ctx.cost, Instant::now(), &ctx.shared.config.policy)
                        .with_reservation(Some(*reservation));
                drop(ctx.shared.store.cancel(&admission));
            }
        }
    }
}

/// How long a request may wait for admission.
pub(crate) struct WaitLimit {
    /// When the wait began (a deadline's `now`), else the first poll.
    pub(crate) started: Option<Instant>,
    pub(crate) max: Duration,
    /// `max` bounds the whole wait (set explicitly, or by a deadline); else it bounds how
    /// slowly the bucket may move (see [`DEFAULT_MAX_WAIT`](crate::DEFAULT_MAX_WAIT)).
    pub(crate) total: bool,
}

/// Everything but the state: what the request is, and what it holds.
struct Ctx<S, B> {
    shared: Arc<Shared>,
    key: BucketKey,
    cost: u32,
    wait: WaitLimit,
    /// Time spent held without a slot (a pause, an outage, an exhaustion's probe out).
    held: Duration,
    limiter: Arc<Limiter>,
    queue: Option<QueueSlot>,
    permit: Option<Permit>,
    ticket: Option<Ticket>,
    svc: S,
    request: Option<Request<B>>,
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Start,
        Acquire {
            acquire: AcquireFuture,
            // A retry's place ahead of first attempts (`Limiter::wait_as_retry`).
            handed: Option<RetryPlace>,
            #[pin]
            timeout: Sleep,
            // The bucket's progress count when the wait began.
            progress: u64,
        },
        Admit {
            admit: StoreFuture<Decision>,
        },
        Sleep {
            #[pin]
            sleep: Sleep,
            reservation: Option<Reservation>,
            since: Instant,
            // Held without a slot (a pause, an exhausted bucket's probe out): ask again
            // as soon as a probe's answer is in, not only when the timer fires.
            #[pin]
            probe_answered: Option<OwnedNotified>,
        },
        Ready,
        Called {
            #[pin]
            future: F,
            // Only an adaptive cap uses the latency: others skip the clock.
            sent_at: Option<Instant>,
        },
        Observe {
            observe: StoreFuture<()>,
            outcome: Option<Result<R, BoxError>>,
        },
        Done,
    }
}

/// What a state's step leads to: the next state, or the future's output.
// A step lives on the stack for one transition; boxing the state would allocate on every
// request.
#[allow(clippy::large_enum_variant)]
enum Step<F, R, O> {
    Next(State<F, R>),
    Finish(O),
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn new(
        shared: Arc<Shared>,
        svc: S,
        request: Request<B>,
        key: BucketKey,
        cost: u32,
        wait: WaitLimit,
    ) -> Self {
        let limiter = shared.limiters.get(&key);
        ResponseFuture {
            state: State::Start,
            ctx: Ctx {
                shared,
                key,
                cost,
                wait,
                held: Duration::ZERO,
                limiter,
                queue: None,
                permit: None,
                ticket: None,
                svc,
                request: Some(request),
            },
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Start => "start",
            State::Acquire { .. } => "waiting for a permit",
            State::Admit { .. } => "asking the store",
            State::Sleep { .. } => "waiting for a slot",
            State::Ready => "waiting for the inner service",
            State::Called { .. } => "in flight",
            State::Observe { .. } => "reporting",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("bucket", &self.ctx.key)
            .field("cost", &self.ctx.cost)
            .field("state", &state)
            .finish()
    }
}

fn admit(
    shared: &Shared,
    key: &BucketKey,
    cost: u32,
    now: Instant,
    max_wait: Duration,
    reservation: Option<Reservation>,
) -> StoreFuture<Decision> {
    let admission = Admission::new(key, cost, now, &shared.config.policy)
        .with_max_wait(max_wait)
        .with_reservation(reservation)
        .with_origin(shared.limiters.origin());
    shared.store.admit(&admission)
}

/// What one attempt's answer tells the store.
struct Answer<'a> {
    now: Instant,
    classification: &'a Classification,
    snapshot: &'a RateLimitSnapshot,
    /// The adaptive cap took it for a refusal past the server's concurrency.
    over_capacity: bool,
}

fn observe(
    shared: &Shared,
    key: &BucketKey,
    ticket: Option<Ticket>,
    limiter: &Limiter,
    answer: Answer<'_>,
) -> StoreFuture<()> {
    let policy = &shared.config.policy;
    let observation = Observation::new(
        key,
        answer.now,
        answer.classification,
        answer.snapshot,
        policy,
    )
    .with_ticket(ticket)
    .with_waiting(limiter.queued())
    .with_over_capacity(answer.over_capacity);
    shared.store.observe(&observation)
}

/// Takes a place in the bucket's queue for a waiting admission, unless it has one.
fn queue_place(
    queue: &mut Option<QueueSlot>,
    limiter: &Arc<Limiter>,
    shared: &Shared,
    key: &BucketKey,
) -> Result<(), BoxError> {
    if queue.is_some() {
        return Ok(());
    }
    let bound = shared.config.max_queue;
    match limiter.enqueue(bound) {
        Some(slot) => {
            *queue = Some(slot);
            Ok(())
        }
        None => {
            tracing::debug!(target: "abide_cap", bucket = %key, bound, "admission refused: queue full");
            Err(Box::new(QueueFull::new(key.clone(), bound)))
        }
    }
}

/// What is left at `now` of a max wait that started at `started`.
/// A request gave up waiting for an in-flight permit: when nothing moved in the bucket for
/// its whole wait (no permit released, no body frame read), the permits are held by
/// response bodies nobody reads, which hold their permits until read or dropped. Say so,
/// naming the bucket (a host or a user-given name, never a credential).
fn warn_if_bodies_idle(limiter: &Limiter, key: &BucketKey, progress_at: u64, waited: Duration) {
    let in_flight = limiter.in_flight();
    if in_flight > 0 && limiter.progress() == progress_at {
        tracing::warn!(
            bucket = %key,
            in_flight,
            idle_s = waited.as_secs_f64(),
            "abide-cap: requests wait on in-flight permits whose response bodies have not been read for the whole max wait; read or drop response bodies to free their permits"
        );
    }
}

fn left(max_wait: Duration, started: Option<Instant>, now: Instant) -> Duration {
    max_wait.saturating_sub(now.saturating_duration_since(started.unwrap_or(now)))
}

/// The default bound on a wait for admission: the max wait for each request waiting in
/// the bucket (a queue of `n` waits up to `n` max waits, so a batch waits its turn
/// however long its queue), less the time already held without a slot.
fn bucket_bound(max_wait: Duration, queued: usize, held: Duration) -> Duration {
    let queued = u32::try_from(queued).unwrap_or(u32::MAX).max(1);
    max_wait.saturating_mul(queued).saturating_sub(held)
}

fn rejection(
    key: &BucketKey,
    r: Rejection,
    waited: Duration,
    max_wait: Duration,
    max_server_wait: Duration,
) -> BoxError {
    tracing::debug!(target: "abide_cap", bucket = %key, rejection = ?r, waited_ms = waited.as_millis() as u64, "admission refused");
    match r {
        Rejection::Exhausted { retry_in } => Box::new(BucketExhausted::new(key.clone(), retry_in)),
        Rejection::TooLong { would_wait } => Box::new(WaitTooLong::new(
            waited.saturating_add(would_wait),
            max_wait,
        )),
        Rejection::ServerWaitTooLong { wait } => {
            Box::new(WaitTooLong::server(wait, max_server_wait))
        }
        Rejection::TooCostly { cost, max } => Box::new(CostTooHigh::new(cost, max)),
    }
}

/// An attempt's outcome, reported: the adaptive cap and the server's concurrency limit
/// learn from it at once; the returned observation, awaited before the outcome is handed
/// on, tells the store (skipped, as a ready future, when there is nothing to learn).
fn report<R, E: Into<BoxError>>(
    shared: &Shared,
    key: &BucketKey,
    ticket: Option<Ticket>,
    limiter: &Limiter,
    sent_at: Option<Instant>,
    result: Result<Response<R>, E>,
) -> (StoreFuture<()>, Result<Response<R>, BoxError>) {
    match result {
        Ok(response) => {
            let computed_snapshot;
            let snapshot = match response.extensions().get::<RateLimitSnapshot>() {
                Some(s) => s,
                None if response.headers().is_empty() => &*EMPTY,
                None => {
                    computed_snapshot = RateLimitHeaders::new().extract(response.headers());
                    &computed_snapshot
                }
            };
            let computed_class;
            let class = match response.extensions().get::<Classification>() {
                Some(c) => c,
                None => {
                    computed_class = classify_head(response.status(), response.headers(), snapshot);
                    &computed_class
                }
            };
            // A probe's answer, and the success that lets a learned send rate grow,
            // are always told.
            let told = ticket.is_some_and(|t| t.probe || t.paced);
            // Nothing to learn: the store is skipped (a round trip, for a
            // shared one).
            let report = !(class.is_success() && snapshot.is_empty() && !told);
            // The clock is read only when the instant is used.
            let now = (sent_at.is_some() || report).then(Instant::now);
            let mut over_capacity = false;
            if let (Some(sent_at), Some(now)) = (sent_at, now) {
                let latency = now.saturating_duration_since(sent_at);
                over_capacity = limiter.on_outcome(class, latency, now);
            }
            if shared.config.policy.learn {
                // A limit counted in concurrent requests is an in-flight
                // cap, not a pace.
                let concurrent = snapshot
                    .limits()
                    .iter()
                    .filter(|l| l.unit == Some(QuotaUnit::ConcurrentRequests))
                    .filter_map(|l| l.limit)
                    .min();
                if concurrent.is_some() {
                    limiter.server_concurrency(concurrent);
                }
            }
            if !class.is_success() {
                tracing::debug!(
                    target: "abide_cap",
                    bucket = %key,
                    class = %class.class,
                    retry_after_ms = class.retry_after.map(|d| d.as_millis() as u64),
                    reason = %class.reason,
                    "server refused an attempt; the bucket learns from it"
                );
            }
            let fut = match now {
                Some(now) if report => {
                    let answer = Answer {
                        now,
                        classification: class,
                        snapshot,
                        over_capacity,
                    };
                    observe(shared, key, ticket, limiter, answer)
                }
                _ => StoreFuture::ready(Ok(())),
            };
            (fut, Ok(response))
        }
        Err(e) => {
            let e: BoxError = e.into();
            let class = classify_error(&*e);
            let now = Instant::now();
            let over_capacity = sent_at.is_some_and(|sent_at| {
                let latency = now.saturating_duration_since(sent_at);
                limiter.on_outcome(&class, latency, now)
            });
            let answer = Answer {
                now,
                classification: &class,
                snapshot: &EMPTY,
                over_capacity,
            };
            let fut = observe(shared, key, ticket, limiter, answer);
            (fut, Err(e))
        }
    }
}

fn polled_after_completion() -> BoxError {
    "abide-cap: response future polled after completion".into()
}

type CapStep<S, B, ResB> = Step<
    <S as Service<Request<B>>>::Future,
    <S as Service<Request<B>>>::Response,
    Result<Response<ResponseBody<ResB>>, BoxError>,
>;

impl<S, B, ResB> Ctx<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    /// Ends the request with an error, freeing its permit and queue place at once.
    fn fail(&mut self, error: BoxError) -> CapStep<S, B, ResB> {
        self.permit = None;
        self.queue = None;
        Step::Finish(Err(error))
    }

    /// What is left of the wait allowed for admission at `now`.
    fn left(&self, now: Instant) -> Duration {
        if self.wait.total {
            left(self.wait.max, self.wait.started, now)
        } else {
            // This request's own queue place counts once it holds one.
            let queued = self.limiter.queued() + usize::from(self.queue.is_none());
            bucket_bound(self.wait.max, queued, self.held)
        }
    }

    fn admit(&self, now: Instant, reservation: Option<Reservation>) -> CapStep<S, B, ResB> {
        let left = self.left(now);
        let admit = admit(&self.shared, &self.key, self.cost, now, left, reservation);
        Step::Next(State::Admit { admit })
    }

    /// First poll: a free permit goes straight to admission; otherwise wait in the
    /// bucket's FIFO queue for one, until the max wait.
    fn start(&mut self) -> CapStep<S, B, ResB> {
        let now = Instant::now();
        // Starting now, unless a deadline started the clock in `call`.
        let started = *self.wait.started.get_or_insert(now);
        if let Some(permit) = self.limiter.try_acquire() {
            self.permit = Some(permit);
            return self.admit(now, None);
        }
        let bound = self.shared.config.max_queue;
        let Some(slot) = self.limiter.enqueue(bound) else {
            return self.fail(Box::new(QueueFull::new(self.key.clone(), bound)));
        };
        self.queue = Some(slot);
        let Some(acquire) = self.limiter.acquire() else {
            // Unlimited buckets always have a permit; unreachable in practice.
            return self.fail("abide-cap: no permit source".into());
        };
        // By default, a wait in which no permit frees (see `poll_acquire`).
        let left = if self.wait.total {
            left(self.wait.max, Some(started), now)
        } else {
            self.wait.max
        };
        let deadline = now.checked_add(left.min(NEVER)).unwrap_or(now);
        // A retry (the retry layer marks one with its probe flag) waits ahead of first
        // attempts too.
        let retry = self
            .request
            .as_ref()
            .is_some_and(|r| r.extensions().get::<HeldProbe>().is_some());
        Step::Next(State::Acquire {
            acquire,
            handed: retry.then(|| self.limiter.wait_as_retry()),
            timeout: sleep_until(deadline),
            progress: self.limiter.progress(),
        })
    }

    fn poll_acquire(
        &mut self,
        cx: &mut Context<'_>,
        acquire: &mut AcquireFuture,
        handed: &mut Option<RetryPlace>,
        mut timeout: Pin<&mut Sleep>,
        progress: &mut u64,
    ) -> Poll<CapStep<S, B, ResB>> {
        match self.limiter.poll_permit(cx, acquire, handed) {
            Poll::Ready(Ok(permit)) => {
                self.permit = Some(permit);
                Poll::Ready(self.admit(Instant::now(), None))
            }
            Poll::Ready(Err(closed)) => Poll::Ready(self.fail(Box::new(closed))),
            Poll::Pending => loop {
                ready!(timeout.as_mut().poll(cx));
                // By default the wait ends only when the bucket stood still for the whole
                // max wait: while permits free, the queue moves, and its tail waits on.
                let now_progress = self.limiter.progress();
                if !self.wait.total && now_progress != *progress {
                    *progress = now_progress;
                    let deadline = Instant::now().checked_add(self.wait.max.min(NEVER));
                    timeout
                        .as_mut()
                        .reset(deadline.unwrap_or_else(Instant::now));
                    continue;
                }
                let waited = self.wait.started.map_or(Duration::ZERO, |s| s.elapsed());
                warn_if_bodies_idle(&self.limiter, &self.key, *progress, waited);
                return Poll::Ready(self.fail(Box::new(WaitTooLong::new(waited, self.wait.max))));
            },
        }
    }

    fn poll_admit(
        &mut self,
        cx: &mut Context<'_>,
        admit: &mut StoreFuture<Decision>,
    ) -> Poll<CapStep<S, B, ResB>> {
        let decision = match ready!(Pin::new(admit).poll(cx)) {
            Ok(d) => d,
            Err(e) => return Poll::Ready(self.fail(Box::new(e))),
        };
        Poll::Ready(match decision {
            Decision::Go(ticket) => {
                self.ticket = Some(ticket);
                self.queue = None;
                Step::Next(State::Ready)
            }
            Decision::Wait { until, reservation } => self.wait(until, reservation),
            Decision::Reject(r) => {
                let waited = self.wait.started.map_or(Duration::ZERO, |s| s.elapsed());
                let policy = &self.shared.config.policy;
                let error = rejection(&self.key, r, waited, self.wait.max, policy.max_server_wait);
                self.fail(error)
            }
        })
    }

    /// The store says wait: hold a queue place and sleep until `until` (or, without a
    /// reservation, until a probe's answer is in).
    fn wait(&mut self, until: Instant, reservation: Option<Reservation>) -> CapStep<S, B, ResB> {
        tracing::debug!(
            target: "abide_cap",
            bucket = %self.key,
            cost = self.cost,
            wait_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
            reserved = reservation.is_some(),
            "admission waits"
        );
        if let Err(full) = queue_place(&mut self.queue, &self.limiter, &self.shared, &self.key) {
            return self.fail(full);
        }
        let probe_answered = reservation.is_none().then(|| self.limiter.probe_answered());
        Step::Next(State::Sleep {
            sleep: sleep_until(until),
            reservation,
            since: Instant::now(),
            probe_answered,
        })
    }

    fn poll_sleep(
        &mut self,
        cx: &mut Context<'_>,
        sleep: Pin<&mut Sleep>,
        reservation: Option<Reservation>,
        since: Instant,
        probe_answered: Pin<&mut Option<OwnedNotified>>,
    ) -> Poll<CapStep<S, B, ResB>> {
        let woken = probe_answered
            .as_pin_mut()
            .is_some_and(|n| n.poll(cx).is_ready());
        if !woken {
            ready!(sleep.poll(cx));
        }
        let now = Instant::now();
        if reservation.is_none() {
            self.held = self
                .held
                .saturating_add(now.saturating_duration_since(since));
        }
        Poll::Ready(self.admit(now, reservation))
    }

    /// Admitted: drive the clone of the inner service to readiness and send.
    fn poll_ready_and_call(&mut self, cx: &mut Context<'_>) -> Poll<CapStep<S, B, ResB>> {
        if let Err(e) = ready!(self.svc.poll_ready(cx)) {
            return Poll::Ready(self.fail(e.into()));
        }
        let Some(request) = self.request.take() else {
            return Poll::Ready(self.fail(polled_after_completion()));
        };
        if let Some(start) = request.extensions().get::<AttemptStart>() {
            start.sent();
        }
        if self.ticket.is_some_and(|t| t.probe || t.paced) {
            // The bucket's probe (of an outage, or of a send rate learned from 429s), for
            // others too: it spends its attempt for them all (the retry layer counts it as
            // paced).
            let prober = request.extensions().get::<HeldProbe>();
            if self.limiter.probes_for_others(prober) {
                if let Some(probe) = prober {
                    probe.mark();
                }
            }
        }
        if let Some(permit) = &mut self.permit {
            permit.mark_sent();
        }
        let future = self.svc.call(request);
        Poll::Ready(Step::Next(State::Called {
            future,
            sent_at: self.limiter.is_adaptive().then(Instant::now),
        }))
    }

    fn poll_called(
        &mut self,
        cx: &mut Context<'_>,
        future: Pin<&mut S::Future>,
        sent_at: Option<Instant>,
    ) -> Poll<CapStep<S, B, ResB>> {
        let result = ready!(future.poll(cx));
        let (observe, outcome) = report(
            &self.shared,
            &self.key,
            self.ticket,
            &self.limiter,
            sent_at,
            result,
        );
        Poll::Ready(Step::Next(State::Observe {
            observe,
            outcome: Some(outcome),
        }))
    }

    /// The store has learned from the outcome (or failed to): hand the outcome on, the
    /// permit riding with the response body.
    fn poll_observe(
        &mut self,
        cx: &mut Context<'_>,
        observe: &mut StoreFuture<()>,
        outcome: &mut Option<Result<Response<ResB>, BoxError>>,
    ) -> Poll<CapStep<S, B, ResB>> {
        if let Err(e) = ready!(Pin::new(observe).poll(cx)) {
            // The answer is worth more than the bookkeeping: pass it on.
            tracing::debug!(bucket = %self.key, error = %e, "abide-cap: observation not recorded");
        }
        if self.ticket.is_some_and(|t| t.probe) {
            // The store knows the probe's answer: the held requests ask again.
            self.limiter.answer_probe();
        }
        let permit = self.permit.take();
        Poll::Ready(Step::Finish(match outcome.take() {
            Some(Ok(response)) => Ok(response.map(|body| ResponseBody::new(body, permit))),
            Some(Err(e)) => Err(e),
            None => Err(polled_after_completion()),
        }))
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: http_body::Body,
{
    type Output = Result<Response<ResponseBody<ResB>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let ctx = &mut *this.ctx;
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Start => ctx.start(),
                StateProj::Acquire {
                    acquire,
                    handed,
                    timeout,
                    progress,
                } => ready!(ctx.poll_acquire(cx, acquire, handed, timeout, progress)),
                StateProj::Admit { admit } => ready!(ctx.poll_admit(cx, admit)),
                StateProj::Sleep {
                    sleep,
                    reservation,
                    since,
                    probe_answered,
                } => ready!(ctx.poll_sleep(cx, sleep, *reservation, *since, probe_answered)),
                StateProj::Ready => ready!(ctx.poll_ready_and_call(cx)),
                StateProj::Called { future, sent_at } => {
                    ready!(ctx.poll_called(cx, future, *sent_at))
                }
                StateProj::Observe { observe, outcome } => {
                    ready!(ctx.poll_observe(cx, observe, outcome))
                }
                StateProj::Done => return Poll::Ready(Err(polled_after_completion())),
            };
            match step {
                Step::Next(state) => this.state.set(state),
                Step::Finish(output) => {
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
            }
        }
    }
}
