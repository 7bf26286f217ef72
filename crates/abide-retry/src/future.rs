//! [`ResponseFuture`]: one logical request, looping over attempts.

use crate::backoff::{ceil_millis, WaitReason};
use crate::deadline::{encode_grpc_timeout, GRPC_TIMEOUT};
use crate::error::{
    AttemptTimedOut, BudgetExhausted, DeadlineExceeded, LastAttempt, ReplayError, ReplayErrorKind,
    WaitTooLong,
};
use crate::idempotency::is_idempotent;
use crate::layer::Config;
use crate::record::{Attempts, Stop};
use crate::replay::ReplayBody;
use crate::BoxError;
use abide_classify::{
    classify_error, classify_head, AttemptStart, Class, Classification, HeldProbe, Processing,
};
use abide_headers::{RateLimitHeaders, RateLimitSnapshot};
use bytes::Buf;
use http::{Extensions, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{sleep_until, Instant, Sleep};
use tower_service::Service;

/// What is kept to build the next attempt's request.
pub(crate) struct Template<B> {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) extensions: Extensions,
    /// A copy of the body that takes over only when the next attempt is built.
    pub(crate) body: ReplayBody<B>,
}

pin_project! {
    /// The future of [`BackoffRetry`](crate::BackoffRetry): calls the inner service, and
    /// while the verdict allows, sleeps and calls it again.
    ///
    /// Dropping it at any point (mid-attempt or mid-sleep) drops the attempt, the timer,
    /// the request copy and any response being drained: nothing is left behind.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReplayBody<ReqBody>>>,
    {
        #[pin]
        state: State<S::Future>,
        // The body of a failed attempt's response, read while sleeping so the connection
        // can be reused.
        #[pin]
        drain: Option<ResBody>,
        ctx: Ctx<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Calling { #[pin] future: F },
        // Waiting before the next attempt.
        Sleeping,
        // Waiting for the inner service to be ready for the next attempt.
        Ready,
        // Finished.
        Done,
    }
}

struct Ctx<S, B> {
    service: S,
    template: Option<Template<B>>,
    next_body: Option<ReplayBody<B>>,
    config: Arc<Config>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Cuts the attempt in flight (with an attempt timeout only).
    attempt_timer: Option<Pin<Box<Sleep>>>,
    /// The attempt in flight's mark of when it was sent (with an attempt timeout only).
    attempt_start: Option<AttemptStart>,
    /// Marked by the cap when an attempt goes as its bucket's probe for others held
    /// behind it (put on the request at its first retry).
    held_probe: Option<HeldProbe>,
    deadline: Option<Instant>,
    timeout: Duration,
    /// Whether the request may be sent twice; `None`: it may when the template's headers
    /// carry an `Idempotency-Key` (looked up only after a failure).
    idempotent: Option<bool>,
    /// When the current attempt started; only kept when there is a deadline, so the
    /// success path without one never reads the clock.
    attempt_started: Option<Instant>,
    wake_at: Option<Instant>,
    attempts: u32,
    /// Failed attempts the backoff grows from: all but probes for others, which the cap
    /// paces (a request that probed through an outage backs off afterwards as one that
    /// failed only where it went on its own).
    backoffs: u32,
    /// Failed attempts nobody paced (no server-stated wait, not a probe for others): what
    /// [`with_max_attempts`](crate::BackoffRetryLayer::with_max_attempts) bounds. Paced
    /// failures spend the paced limit only, so a request whose turns the server or the cap
    /// paced is not given up on for the few it went on its own.
    unpaced: u32,
    total_wait: Duration,
    previous_wait: Duration,
    drained: usize,
    last_status: Option<StatusCode>,
    last_class: Option<Classification>,
    /// A budget token is taken for a retry not yet sent; given back if it never is.
    budget_token: bool,
}

impl<S, B> Drop for Ctx<S, B> {
    fn drop(&mut self) {
        if self.budget_token {
            if let Some(budget) = &self.config.budget {
                budget.refund();
            }
        }
    }
}

enum Decision {
    Return(Stop),
    Retry(Duration, WaitReason),
    Fail(Failure),
}

enum Failure {
    Deadline,
    Budget,
    WaitTooLong(Duration),
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReplayBody<ReqBody>>>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        future: S::Future,
        service: S,
        template: Option<Template<ReqBody>>,
        config: Arc<Config>,
        start: Option<Instant>,
        deadline: Option<Instant>,
        timeout: Duration,
        idempotent: Option<bool>,
        attempt_start: Option<AttemptStart>,
    ) -> Self {
        let mut ctx = Ctx {
            service,
            template,
            next_body: None,
            config,
            timer: None,
            attempt_timer: None,
            attempt_start,
            held_probe: None,
            deadline,
            timeout,
            idempotent,
            attempt_started: start,
            wake_at: None,
            attempts: 1,
            backoffs: 0,
            unpaced: 0,
            total_wait: Duration::ZERO,
            previous_wait: Duration::ZERO,
            drained: 0,
            last_status: None,
            last_class: None,
            budget_token: false,
        };
        ctx.arm_deadline();
        ctx.arm_attempt_timeout();
        ResponseFuture {
            state: State::Calling { future },
            drain: None,
            ctx,
        }
    }
}

/// The verdict on a response: the classifier's, or the default classifier's.
fn classification_of<B>(response: &Response<B>) -> Classification {
    if let Some(c) = response.extensions().get::<Classification>() {
        return c.clone();
    }
    let headers = response.headers();
    let status = response.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        // Without a body, the rules decide a success on these statuses from the status and
        // the gRPC metadata alone; the snapshot only refines the scope or wait of a
        // failure. So a success judged against an empty snapshot is the very verdict the
        // parsed one gives, and the header parse is skipped on the success path.
        let verdict = classify_head(status, headers, empty_snapshot());
        if verdict.is_success() {
            return verdict;
        }
    }
    let parsed;
    let snapshot = match response.extensions().get::<RateLimitSnapshot>() {
        Some(s) => s,
        None => {
            parsed = RateLimitHeaders::new().extract(headers);
            &parsed
        }
    };
    classify_head(status, headers, snapshot)
}

/// A snapshot with no limits and no wait, made once.
fn empty_snapshot() -> &'static RateLimitSnapshot {
    static EMPTY: OnceLock<RateLimitSnapshot> = OnceLock::new();
    EMPTY.get_or_init(RateLimitSnapshot::new)
}

impl<S, B> Ctx<S, B> {
    fn set_timer(&mut self, at: Instant) {
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(at),
            None => self.timer = Some(Box::pin(sleep_until(at))),
        }
    }

    /// Points the timer at the deadline, if there is one.
    fn arm_deadline(&mut self) {
        if let Some(deadline) = self.deadline {
            self.set_timer(deadline);
        }
    }

    /// Starts the attempt timeout for an attempt sent now, if there is one.
    fn arm_attempt_timeout(&mut self) {
        let Some(timeout) = self.config.attempt_timeout else {
            return;
        };
        let now = Instant::now();
        let at = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + crate::layer::MAX_SERVER_WAIT_LIMIT);
        match &mut self.attempt_timer {
            Some(timer) => timer.as_mut().reset(at),
            None => self.attempt_timer = Some(Box::pin(sleep_until(at))),
        }
    }

    /// The attempt in flight ran out of time (registering for a wake-up otherwise). The
    /// time counts from when the attempt was sent: while a layer below holds it (the cap,
    /// for a pause or a paced slot), the timer is pushed on.
    fn attempt_timed_out(&mut self, cx: &mut Context<'_>) -> Option<AttemptTimedOut> {
        let timeout = self.config.attempt_timeout?;
        let timer = self.attempt_timer.as_mut()?;
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            let due = match &self.attempt_start {
                None => now,
                Some(start) => match start.started() {
                    Some(sent) => sent.checked_add(timeout).unwrap_or(now),
                    // Not sent yet: it cannot time out before a whole timeout from now.
                    None => now.checked_add(timeout).unwrap_or(now),
                },
            };
            if due <= now {
                return Some(AttemptTimedOut::new(timeout));
            }
            timer.as_mut().reset(due);
        }
    }

    /// True when the deadline has passed (registering for a wake-up otherwise).
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).is_ready() && Instant::now() >= deadline,
            None => Instant::now() >= deadline,
        }
    }

    fn last_attempt(&mut self, source: Option<BoxError>) -> LastAttempt {
        LastAttempt {
            attempts: self.attempts,
            total_wait: self.total_wait,
            status: self.last_status,
            classification: self.last_class.take(),
            source,
        }
    }

    fn failure(&mut self, failure: Failure, source: Option<BoxError>) -> BoxError {
        let stats = &self.config.stats;
        match failure {
            Failure::Deadline => {
                stats.deadline_exceeded();
                let timeout = self.timeout;
                Box::new(DeadlineExceeded {
                    timeout,
                    last: self.last_attempt(source),
                })
            }
            Failure::Budget => {
                stats.budget_exhausted();
                Box::new(BudgetExhausted {
                    last: self.last_attempt(source),
                })
            }
            Failure::WaitTooLong(wait) => {
                stats.wait_too_long();
                let max = self.config.max_server_wait;
                Box::new(WaitTooLong {
                    wait,
                    max,
                    last: self.last_attempt(source),
                })
            }
        }
    }

    fn finish<RB>(&self, mut response: Response<RB>, stop: Stop) -> Response<RB> {
        self.config.stats.stopped(stop);
        response
            .extensions_mut()
            .insert(Attempts::new(self.attempts, self.total_wait, stop));
        response
    }

    fn is_idempotent(&self) -> bool {
        self.idempotent.unwrap_or_else(|| {
            self.template
                .as_ref()
                .is_some_and(|t| is_idempotent(&t.method, &t.headers))
        })
    }

    /// Whether and when to try again after a failed attempt that ended at `now`.
    fn decide(&mut self, verdict: &Classification, now: Instant) -> Decision {
        let config = &*self.config;
        if !verdict.retryable || matches!(verdict.class, Class::QuotaExhausted | Class::Success) {
            return Decision::Return(Stop::NotRetryable);
        }
        if verdict.processing != Processing::NotProcessed && !self.is_idempotent() {
            return Decision::Return(Stop::NotIdempotent);
        }
        let server = verdict.retry_after;
        // Paced by the server (a stated wait), or by the cap: a probe for others held
        // behind it spends its attempt for them all.
        let probed = self.held_probe.as_ref().is_some_and(HeldProbe::take);
        let paced = probed || (server.is_some() && verdict.processing == Processing::NotProcessed);
        let spent = if paced {
            self.attempts >= config.max_paced_attempts
        } else {
            self.unpaced += 1;
            self.unpaced >= config.max_attempts
                || self.attempts >= config.max_attempts.max(config.max_paced_attempts)
        };
        if spent {
            return Decision::Return(Stop::MaxAttempts);
        }
        let replayable = self
            .template
            .as_ref()
            .is_some_and(|t| t.body.is_replayable());
        if !replayable {
            return Decision::Return(Stop::BodyNotReplayable);
        }
        if let Some(wait) = server {
            if wait > config.max_server_wait {
                return Decision::Fail(Failure::WaitTooLong(wait));
            }
        }
        // The cap paces its probes (its holds double): after a probe for others, backing
        // off as long again here would only notice the server's return late. The first
        // retry's backoff is enough for the role to pass to a request held meanwhile.
        let (backoff_attempts, previous_wait) = if probed && server.is_none() {
            (1, Duration::ZERO)
        } else if probed {
            (self.backoffs.max(1), self.previous_wait)
        } else {
            self.backoffs += 1;
            (self.backoffs, self.previous_wait)
        };
        let (mut wait, mut reason) = config.with_rng(|rng| {
            config.jitter.delay(
                &config.backoff,
                backoff_attempts,
                previous_wait,
                server,
                rng,
            )
        });
        // The longest the budget may make this retry wait: as long as the server may.
        let mut budget_room = config.max_server_wait;
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(now);
            // The last attempt is the best guess of how long the next one takes.
            let estimate = self
                .attempt_started
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            let floor = server.map_or(Duration::ZERO, ceil_millis);
            if floor.saturating_add(estimate) >= left {
                return Decision::Fail(Failure::Deadline);
            }
            let latest = left - estimate;
            if wait > latest {
                // Still at or above the server's floor: floor + estimate < left.
                wait = latest;
                reason = WaitReason::Deadline;
            }
            // Strictly before `latest`, so the retry still starts in time.
            budget_room = budget_room.min(latest.saturating_sub(Duration::from_millis(1)));
        }
        if let Some(budget) = &config.budget {
            match budget.reserve(budget_room) {
                None => return Decision::Fail(Failure::Budget),
                Some(queued) if queued > wait => {
                    wait = ceil_millis(queued);
                    reason = WaitReason::Budget;
                }
                Some(_) => {}
            }
            self.budget_token = true;
        }
        match self.template.as_ref().and_then(|t| t.body.try_clone()) {
            Some(body) => self.next_body = Some(body),
            None => return Decision::Return(Stop::BodyNotReplayable),
        }
        if let (None, Some(template)) = (&self.held_probe, &mut self.template) {
            let probe = HeldProbe::new();
            template.extensions.insert(probe.clone());
            self.held_probe = Some(probe);
        }
        Decision::Retry(wait, reason)
    }

    fn start_sleep(&mut self, now: Instant, wait: Duration) {
        self.config.stats.retry(wait);
        self.total_wait += wait;
        self.previous_wait = wait;
        // Waits are bounded (backoff cap, server-wait cap) but stay safe regardless.
        let at = now
            .checked_add(wait)
            .unwrap_or_else(|| now + crate::layer::MAX_SERVER_WAIT_LIMIT);
        self.wake_at = Some(at);
        self.set_timer(at);
    }

    fn next_request(&mut self) -> Option<Request<ReplayBody<B>>> {
        let template = self.template.as_ref()?;
        let body = self.next_body.take()?;
        let mut request = Request::new(body);
        *request.method_mut() = template.method.clone();
        *request.uri_mut() = template.uri.clone();
        *request.version_mut() = template.version;
        *request.headers_mut() = template.headers.clone();
        *request.extensions_mut() = template.extensions.clone();
        if self.attempt_start.is_some() {
            let start = AttemptStart::new();
            request.extensions_mut().insert(start.clone());
            self.attempt_start = Some(start);
        }
        if let Some(deadline) = self.deadline {
            if self.config.grpc_timeout && request.headers().contains_key(GRPC_TIMEOUT) {
                // The server should give up when we do: tell it the time left.
                let left = deadline.saturating_duration_since(Instant::now());
                request
                    .headers_mut()
                    .insert(GRPC_TIMEOUT, encode_grpc_timeout(left));
            }
        }
        Some(request)
    }
}

/// Reads and discards what is ready of a failed response's body, up to `limit` bytes;
/// drops it on end, error or limit.
fn poll_drain<RB: Body>(
    mut drain: Pin<&mut Option<RB>>,
    drained: &mut usize,
    limit: usize,
    cx: &mut Context<'_>,
) {
    while let Some(body) = drain.as_mut().as_pin_mut() {
        match body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // Every frame counts as at least one byte: a body always ready with empty
                // frames would otherwise keep this loop spinning.
                let len = frame.data_ref().map_or(0, Buf::remaining).max(1);
                *drained = drained.saturating_add(len);
                if *drained > limit {
                    tracing::trace!(target: "abide_retry", "failed response body too long to drain: dropped");
                    drain.set(None);
                }
            }
            Poll::Ready(_) => drain.set(None),
            Poll::Pending => return,
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = match future.poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            if let Some(timed_out) = this.ctx.attempt_timed_out(cx) {
                                tracing::debug!(
                                    target: "abide_retry",
                                    attempt = this.ctx.attempts,
                                    timeout_ms = timed_out.timeout().as_millis() as u64,
                                    "attempt timed out: cut"
                                );
                                Err(Box::new(timed_out) as BoxError)
                            } else if this.ctx.deadline_passed(cx) {
                                tracing::debug!(
                                    target: "abide_retry",
                                    attempt = this.ctx.attempts,
                                    "deadline reached during the attempt: cancelled"
                                );
                                this.state.set(State::Done);
                                return Poll::Ready(Err(this.ctx.failure(Failure::Deadline, None)));
                            } else {
                                return Poll::Pending;
                            }
                        }
                    };
                    this.state.set(State::Done);
                    let ctx = &mut *this.ctx;
                    let (verdict, outcome) = match result {
                        Ok(response) => {
                            let verdict = classification_of(&response);
                            if verdict.is_success() {
                                if let Some(budget) = &ctx.config.budget {
                                    budget.deposit();
                                }
                                tracing::trace!(
                                    target: "abide_retry",
                                    attempt = ctx.attempts,
                                    status = response.status().as_u16(),
                                    "attempt succeeded"
                                );
                                return Poll::Ready(Ok(ctx.finish(response, Stop::Succeeded)));
                            }
                            ctx.last_status = Some(response.status());
                            (verdict, Ok(response))
                        }
                        Err(error) => {
                            ctx.last_status = None;
                            (classify_error(&*error), Err(error))
                        }
                    };
                    let now = Instant::now();
                    let decision = ctx.decide(&verdict, now);
                    tracing::debug!(
                        target: "abide_retry",
                        attempt = ctx.attempts,
                        status = ctx.last_status.map(|s| s.as_u16()),
                        class = %verdict.class,
                        reason = %verdict.reason,
                        retryable = verdict.retryable,
                        server_wait_ms = verdict.retry_after.map(|w| w.as_millis() as u64),
                        decision = match &decision {
                            Decision::Return(stop) => stop.as_str(),
                            Decision::Retry(..) => "retry",
                            Decision::Fail(Failure::Deadline) => "deadline_exceeded",
                            Decision::Fail(Failure::Budget) => "budget_exhausted",
                            Decision::Fail(Failure::WaitTooLong(_)) => "wait_too_long",
                        },
                        "attempt failed"
                    );
                    ctx.last_class = Some(verdict);
                    match (decision, outcome) {
                        (Decision::Return(stop), Ok(response)) => {
                            return Poll::Ready(Ok(ctx.finish(response, stop)));
                        }
                        (Decision::Return(_), Err(error)) => {
                            ctx.config.stats.error();
                            return Poll::Ready(Err(error));
                        }
                        (Decision::Fail(failure), outcome) => {
                            return Poll::Ready(Err(ctx.failure(failure, outcome.err())));
                        }
                        (Decision::Retry(wait, reason), outcome) => {
                            tracing::debug!(
                                target: "abide_retry",
                                attempt = ctx.attempts,
                                wait_ms = wait.as_millis() as u64,
                                why = reason.as_str(),
                                "retrying"
                            );
                            if let Ok(response) = outcome {
                                let body = response.into_body();
                                if !body.is_end_stream() && ctx.config.drain_limit > 0 {
                                    ctx.drained = 0;
                                    this.drain.set(Some(body));
                                }
                            }
                            ctx.start_sleep(now, wait);
                            this.state.set(State::Sleeping);
                        }
                    }
                }
                StateProj::Sleeping => {
                    let limit = this.ctx.config.drain_limit;
                    poll_drain(this.drain.as_mut(), &mut this.ctx.drained, limit, cx);
                    let ctx = &mut *this.ctx;
                    if let Some(timer) = &mut ctx.timer {
                        if timer.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    if let Some(at) = ctx.wake_at.filter(|at| Instant::now() < *at) {
                        // Never before the server's instant, even if a timer fires early.
                        ctx.set_timer(at);
                        continue;
                    }
                    // Whatever is left of the old body is not worth waiting for.
                    this.drain.set(None);
                    ctx.arm_deadline();
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let ctx = &mut *this.ctx;
                    match ctx.service.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {
                            let Some(request) = ctx.next_request() else {
                                // Unreachable: `decide` makes the body before choosing to
                                // retry. Fail cleanly rather than panic.
                                this.state.set(State::Done);
                                return Poll::Ready(Err(Box::new(ReplayError {
                                    kind: ReplayErrorKind::NotRecorded,
                                })));
                            };
                            ctx.attempts += 1;
                            // The retry is sent: its budget token is spent.
                            ctx.budget_token = false;
                            if ctx.deadline.is_some() {
                                ctx.attempt_started = Some(Instant::now());
                            }
                            ctx.config.stats.attempt();
                            ctx.arm_attempt_timeout();
                            let future = ctx.service.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Poll::Ready(Err(error)) => {
                            this.state.set(State::Done);
                            ctx.config.stats.error();
                            return Poll::Ready(Err(error.into()));
                        }
                        Poll::Pending => {
                            if ctx.deadline_passed(cx) {
                                this.state.set(State::Done);
                                return Poll::Ready(Err(ctx.failure(Failure::Deadline, None)));
                            }
                            return Poll::Pending;
                        }
                    }
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReplayBody<ReqBody>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Sleeping => "sleeping",
            State::Ready => "ready",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("attempts", &self.ctx.attempts)
            .field("total_wait", &self.ctx.total_wait)
            .field("deadline", &self.ctx.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full fallback: parse the headers, then classify.
    fn full(status: StatusCode, headers: &HeaderMap) -> Classification {
        classify_head(status, headers, &RateLimitHeaders::new().extract(headers))
    }

    #[test]
    fn the_success_status_shortcut_gives_the_verdict_the_full_header_parse_gives() {
        let header_sets: &[&[(&str, &str)]] = &[
            &[],
            &[("x-should-retry", "true")],
            &[("x-should-retry", "false"), ("retry-after", "5")],
            &[("retry-after", "7200"), ("x-ratelimit-remaining", "0")],
            &[
                ("ratelimit-policy", "\"burst\";q=10;w=1"),
                ("ratelimit", "\"burst\";r=0;t=3"),
            ],
            &[("content-type", "application/grpc")],
            &[
                ("content-type", "application/grpc+proto"),
                ("grpc-status", "0"),
            ],
            &[("content-type", "application/grpc"), ("grpc-status", "8")],
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "8"),
                ("grpc-retry-pushback-ms", "250"),
                ("x-ratelimit-remaining-tokens", "0"),
            ],
            &[
                ("content-type", "APPLICATION/GRPC"),
                ("grpc-status", "14"),
                ("x-should-retry", "false"),
            ],
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "nonsense"),
            ],
        ];
        for code in [100, 200, 201, 204, 299, 301, 304, 399, 429, 503] {
            let status = StatusCode::from_u16(code).unwrap();
            for set in header_sets {
                let mut response = Response::new(());
                *response.status_mut() = status;
                for (name, value) in *set {
                    response.headers_mut().append(*name, value.parse().unwrap());
                }
                assert_eq!(
                    classification_of(&response),
                    full(status, response.headers()),
                    "{code} {set:?}"
                );
            }
        }
    }
}
