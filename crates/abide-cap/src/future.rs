//! The response future: waits for admission, then calls the inner service.

use crate::body::ResponseBody;
use crate::error::{BucketExhausted, CostTooHigh, QueueFull, WaitTooLong};
use crate::key::BucketKey;
use crate::limiter::{AcquireFuture, Limiter, Permit, QueueSlot};
use crate::service::Shared;
use crate::store::{Admission, Decision, Observation, Rejection, Reservation, StoreFuture, Ticket};
use crate::BoxError;
use abide_classify::{classify_error, classify_head, Classification};
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
        shared: Arc<Shared>,
        key: BucketKey,
        cost: u32,
        started: Option<Instant>,
        max_wait: Duration,
        limiter: Arc<Limiter>,
        queue: Option<QueueSlot>,
        permit: Option<Permit>,
        ticket: Option<Ticket>,
        svc: S,
        request: Option<Request<B>>,
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
                let admission = Admission::new(
                    this.key,
                    *this.cost,
                    Instant::now(),
                    &this.shared.config.policy,
                )
                .with_reservation(Some(*reservation));
                drop(this.shared.store.cancel(&admission));
            }
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Start,
        Acquire {
            acquire: AcquireFuture,
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
        started: Option<Instant>,
        max_wait: Duration,
    ) -> Self {
        let limiter = shared.limiters.get(&key);
        ResponseFuture {
            state: State::Start,
            shared,
            key,
            cost,
            started,
            max_wait,
            limiter,
            queue: None,
            permit: None,
            ticket: None,
            svc,
            request: Some(request),
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
            .field("bucket", &self.key)
            .field("cost", &self.cost)
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
        .with_reservation(reservation);
    shared.store.admit(&admission)
}

fn observe(
    shared: &Shared,
    key: &BucketKey,
    ticket: Option<Ticket>,
    now: Instant,
    classification: &Classification,
    snapshot: &RateLimitSnapshot,
) -> StoreFuture<()> {
    let observation = Observation::new(key, now, classification, snapshot, &shared.config.policy)
        .with_ticket(ticket);
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
            let probe = ticket.is_some_and(|t| t.probe);
            // Nothing to learn: the store is skipped (a round trip, for a
            // shared one).
            let report = !(class.is_success() && snapshot.is_empty() && !probe);
            // The clock is read only when the instant is used.
            let now = (sent_at.is_some() || report).then(Instant::now);
            if let (Some(sent_at), Some(now)) = (sent_at, now) {
                let latency = now.saturating_duration_since(sent_at);
                limiter.on_outcome(class.class, latency, now);
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
                Some(now) if report => observe(shared, key, ticket, now, class, snapshot),
                _ => StoreFuture::ready(Ok(())),
            };
            (fut, Ok(response))
        }
        Err(e) => {
            let e: BoxError = e.into();
            let class = classify_error(&*e);
            let now = Instant::now();
            if let Some(sent_at) = sent_at {
                let latency = now.saturating_duration_since(sent_at);
                limiter.on_outcome(class.class, latency, now);
            }
            let fut = observe(shared, key, ticket, now, &class, &EMPTY);
            (fut, Err(e))
        }
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
        loop {
            match this.state.as_mut().project() {
                StateProj::Start => {
                    let now = Instant::now();
                    let left = match *this.started {
                        Some(started) => this
                            .max_wait
                            .saturating_sub(now.saturating_duration_since(started)),
                        // Starting now: nothing has been waited yet.
                        None => {
                            *this.started = Some(now);
                            *this.max_wait
                        }
                    };
                    if let Some(permit) = this.limiter.try_acquire() {
                        *this.permit = Some(permit);
                        let fut = admit(this.shared, this.key, *this.cost, now, left, None);
                        this.state.set(State::Admit { admit: fut });
                        continue;
                    }
                    let bound = this.shared.config.max_queue;
                    let Some(slot) = this.limiter.enqueue(bound) else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Box::new(QueueFull::new(this.key.clone(), bound))));
                    };
                    *this.queue = Some(slot);
                    let Some(acquire) = this.limiter.acquire() else {
                        // Unlimited buckets always have a permit; unreachable in practice.
                        this.state.set(State::Done);
                        return Poll::Ready(Err("abide-cap: no permit source".into()));
                    };
                    let deadline = now.checked_add(left.min(NEVER)).unwrap_or(now);
                    this.state.set(State::Acquire {
                        acquire,
                        timeout: sleep_until(deadline),
                        progress: this.limiter.progress(),
                    });
                }
                StateProj::Acquire {
                    acquire,
                    timeout,
                    progress,
                } => match acquire.as_mut().poll(cx) {
                    Poll::Ready(Ok(permit)) => {
                        *this.permit = Some(this.limiter.wrap(permit));
                        let now = Instant::now();
                        let left = left(*this.max_wait, *this.started, now);
                        let fut = admit(this.shared, this.key, *this.cost, now, left, None);
                        this.state.set(State::Admit { admit: fut });
                    }
                    Poll::Ready(Err(closed)) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Box::new(closed)));
                    }
                    Poll::Pending => {
                        ready!(timeout.poll(cx));
                        let waited = this.started.map_or(Duration::ZERO, |s| s.elapsed());
                        warn_if_bodies_idle(this.limiter, this.key, *progress, waited);
                        this.state.set(State::Done);
                        *this.queue = None;
                        return Poll::Ready(Err(Box::new(WaitTooLong::new(
                            waited,
                            *this.max_wait,
                        ))));
                    }
                },
                StateProj::Admit { admit: fut } => {
                    let decision = match ready!(Pin::new(fut).poll(cx)) {
                        Ok(d) => d,
                        Err(e) => {
                            this.state.set(State::Done);
                            *this.permit = None;
                            *this.queue = None;
                            return Poll::Ready(Err(Box::new(e)));
                        }
                    };
                    match decision {
                        Decision::Go(ticket) => {
                            *this.ticket = Some(ticket);
                            *this.queue = None;
                            this.state.set(State::Ready);
                        }
                        Decision::Wait { until, reservation } => {
                            tracing::debug!(
                                target: "abide_cap",
                                bucket = %this.key,
                                cost = *this.cost,
                                wait_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                                reserved = reservation.is_some(),
                                "admission waits"
                            );
                            if let Err(full) =
                                queue_place(this.queue, this.limiter, this.shared, this.key)
                            {
                                this.state.set(State::Done);
                                *this.permit = None;
                                return Poll::Ready(Err(full));
                            }
                            let probe_answered =
                                reservation.is_none().then(|| this.limiter.probe_answered());
                            this.state.set(State::Sleep {
                                sleep: sleep_until(until),
                                reservation,
                                probe_answered,
                            });
                        }
                        Decision::Reject(r) => {
                            this.state.set(State::Done);
                            *this.permit = None;
                            *this.queue = None;
                            let waited = this.started.map_or(Duration::ZERO, |s| s.elapsed());
                            return Poll::Ready(Err(rejection(
                                this.key,
                                r,
                                waited,
                                *this.max_wait,
                                this.shared.config.policy.max_server_wait,
                            )));
                        }
                    }
                }
                StateProj::Sleep {
                    sleep,
                    reservation,
                    probe_answered,
                } => {
                    let woken = probe_answered
                        .as_pin_mut()
                        .is_some_and(|n| n.poll(cx).is_ready());
                    if !woken {
                        ready!(sleep.poll(cx));
                    }
                    let reservation = *reservation;
                    let now = Instant::now();
                    let left = left(*this.max_wait, *this.started, now);
                    let fut = admit(this.shared, this.key, *this.cost, now, left, reservation);
                    this.state.set(State::Admit { admit: fut });
                }
                StateProj::Ready => {
                    if let Err(e) = ready!(this.svc.poll_ready(cx)) {
                        this.state.set(State::Done);
                        *this.permit = None;
                        return Poll::Ready(Err(e.into()));
                    }
                    let Some(request) = this.request.take() else {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(
                            "abide-cap: response future polled after completion".into(),
                        ));
                    };
                    let future = this.svc.call(request);
                    this.state.set(State::Called {
                        future,
                        sent_at: this.limiter.is_adaptive().then(Instant::now),
                    });
                }
                StateProj::Called { future, sent_at } => {
                    let result = ready!(future.poll(cx));
                    let sent_at = *sent_at;
                    let (observe, outcome) = report(
                        this.shared,
                        this.key,
                        *this.ticket,
                        this.limiter,
                        sent_at,
                        result,
                    );
                    this.state.set(State::Observe {
                        observe,
                        outcome: Some(outcome),
                    });
                }
                StateProj::Observe { observe, outcome } => {
                    if let Err(e) = ready!(Pin::new(observe).poll(cx)) {
                        // The answer is worth more than the bookkeeping: pass it on.
                        tracing::debug!(bucket = %this.key, error = %e, "abide-cap: observation not recorded");
                    }
                    if this.ticket.is_some_and(|t| t.probe) {
                        // The store knows the probe's answer: the held requests ask again.
                        this.limiter.answer_probe();
                    }
                    let outcome = outcome.take();
                    this.state.set(State::Done);
                    let permit = this.permit.take();
                    return Poll::Ready(match outcome {
                        Some(Ok(response)) => {
                            Ok(response.map(|body| ResponseBody::new(body, permit)))
                        }
                        Some(Err(e)) => Err(e),
                        None => Err("abide-cap: response future polled after completion".into()),
                    });
                }
                StateProj::Done => {
                    return Poll::Ready(Err(
                        "abide-cap: response future polled after completion".into()
                    ));
                }
            }
        }
    }
}
