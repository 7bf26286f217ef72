//! The response future: waits for the inner response, peeks a bounded body prefix when
//! the classifier asks, attaches the verdict.

use crate::body::{EosClassification, EosWatch, ResponseBody};
use crate::classify::{missing_grpc_status, BodyPrefix, ClassifyResponse, Decision, ResponseHead};
use crate::layer::PeekConfig;
use crate::{rules, Classification};
use abide_headers::RateLimitSnapshot;
use bytes::{Buf, Bytes};
use http::{response::Parts, HeaderMap, Response};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::time::Sleep;

pin_project! {
    /// Response future of [`QuotaClassifier`](crate::QuotaClassifier).
    pub struct ResponseFuture<F, C, B: Body> {
        #[pin]
        state: State<F, C, B>,
        config: PeekConfig,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, C, B: Body> {
        Calling { #[pin] future: F, classifier: C },
        Peeking { #[pin] sleep: Sleep, peek: Option<Box<Peek<C, B>>> },
        Done,
    }
}

/// Most frames the peek reads (and holds) before it classifies what it has.
const MAX_PEEK_FRAMES: usize = 1024;

/// What the peek holds while it reads (boxed: only failure responses get here).
struct Peek<C, B: Body> {
    parts: Parts,
    snapshot: RateLimitSnapshot,
    provisional: Classification,
    classifier: C,
    body: Pin<Box<B>>,
    frames: VecDeque<Frame<Bytes>>,
    buffered: usize,
    error: Option<B::Error>,
    ended: bool,
    /// gRPC: the verdict comes from the trailers.
    for_trailers: bool,
}

impl<F, C, B: Body> fmt::Debug for ResponseFuture<F, C, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Peeking { .. } => "peeking",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, C, B: Body> ResponseFuture<F, C, B> {
    pub(crate) fn new(future: F, classifier: C, config: PeekConfig) -> Self {
        ResponseFuture {
            state: State::Calling { future, classifier },
            config,
        }
    }
}

/// Puts the verdict, and the snapshot unless it is in the extensions already, on the
/// response.
fn attach(parts: &mut Parts, c: Classification, snapshot: Option<RateLimitSnapshot>) {
    // Only failures are worth an event; a success stays free of formatting work.
    if !c.is_success() {
        tracing::debug!(
            target: "abide_classify",
            status = parts.status.as_u16(),
            class = %c.class,
            retryable = c.retryable,
            retry_after_ms = c.retry_after.map(|d| d.as_millis() as u64),
            scope = %c.scope,
            reason = %c.reason,
            "response classified"
        );
    }
    parts.extensions.insert(c);
    if let Some(snapshot) = snapshot {
        parts.extensions.insert(snapshot);
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    C: ClassifyResponse + Send + Sync + 'static,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let this = self.as_mut().project();
            let config = *this.config;
            match this.state.project() {
                StateProj::Calling { future, .. } => {
                    let result = ready!(future.poll(cx));
                    let StateReplace::Calling { classifier, .. } =
                        self.as_mut().project().state.project_replace(State::Done)
                    else {
                        unreachable!("state was Calling")
                    };
                    let response = match result {
                        Ok(r) => r,
                        // The inner service's errors pass through unchanged.
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    match on_head(response, classifier, config) {
                        HeadOutcome::Done(r) => return Poll::Ready(Ok(r)),
                        HeadOutcome::Peek(peek) => {
                            let sleep = tokio::time::sleep(config.timeout);
                            self.as_mut().project().state.set(State::Peeking {
                                sleep,
                                peek: Some(peek),
                            });
                        }
                    }
                }
                StateProj::Peeking { sleep, peek } => {
                    let p = peek.as_mut().expect("peek state present until done");
                    if !p.read(cx, config.limit) && sleep.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let p = peek.take().expect("peek state present until done");
                    self.as_mut().project().state.set(State::Done);
                    return Poll::Ready(Ok((*p).finish(config.limit)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// Puts an [`EosClassification`] into the extensions and returns the watch that fills it.
fn eos_watch<C>(parts: &mut Parts, mut classifier: C) -> Box<EosWatch>
where
    C: ClassifyResponse + Send + Sync + 'static,
{
    let slot = EosClassification::new();
    parts.extensions.insert(slot.clone());
    Box::new(EosWatch {
        slot,
        classify: Box::new(move |t: Option<&HeaderMap>| {
            classifier
                .classify_trailers(t)
                .unwrap_or_else(missing_grpc_status)
        }),
    })
}

enum HeadOutcome<C, B: Body> {
    Done(Response<ResponseBody<B>>),
    Peek(Box<Peek<C, B>>),
}

fn on_head<C, B>(response: Response<B>, mut classifier: C, config: PeekConfig) -> HeadOutcome<C, B>
where
    C: ClassifyResponse + Send + Sync + 'static,
    B: Body,
{
    let (mut parts, body) = response.into_parts();
    // The snapshot is parsed where it will stay, in the extensions: it holds its limits
    // inline (about 1.5 KB), and every move of it would be a copy.
    // (One the inner service put there is replaced: `extract_into` empties it first.)
    let snapshot = parts
        .extensions
        .get_or_insert_default::<RateLimitSnapshot>();
    config.headers.extract_into(&parts.headers, snapshot);
    let snapshot = &*snapshot;
    let decision = classifier
        .classify_head(&ResponseHead::new(parts.status, &parts.headers, snapshot))
        .unwrap_or_else(|| {
            Decision::Ready(rules::classify(
                parts.status,
                &parts.headers,
                None,
                snapshot,
                rules::Options::default(),
            ))
        });
    let peek_for_trailers = match &decision {
        Decision::PeekBody(_) if config.limit > 0 => Some(false),
        Decision::AwaitTrailers(_) if config.grpc_trailers && config.limit > 0 => Some(true),
        _ => None,
    };
    if let Some(for_trailers) = peek_for_trailers {
        let (Decision::Ready(provisional)
        | Decision::PeekBody(provisional)
        | Decision::AwaitTrailers(provisional)) = decision;
        // The peek holds the snapshot until it attaches the final verdict.
        let snapshot = parts
            .extensions
            .remove::<RateLimitSnapshot>()
            .unwrap_or_default();
        return HeadOutcome::Peek(Box::new(Peek {
            parts,
            snapshot,
            provisional,
            classifier,
            body: Box::pin(body),
            frames: VecDeque::new(),
            buffered: 0,
            error: None,
            ended: false,
            for_trailers,
        }));
    }
    match decision {
        Decision::AwaitTrailers(c) => {
            let watch = eos_watch(&mut parts, classifier);
            attach(&mut parts, c, None);
            HeadOutcome::Done(Response::from_parts(
                parts,
                ResponseBody::passthrough(body, Some(watch)),
            ))
        }
        Decision::Ready(c) | Decision::PeekBody(c) => {
            attach(&mut parts, c, None);
            HeadOutcome::Done(Response::from_parts(
                parts,
                ResponseBody::passthrough(body, None),
            ))
        }
    }
}

impl<C, B> Peek<C, B>
where
    C: ClassifyResponse + Send + Sync + 'static,
    B: Body,
{
    /// Reads frames until the limit, the end, an error or `Pending`. True when done reading.
    fn read(&mut self, cx: &mut Context<'_>, limit: usize) -> bool {
        loop {
            // The frame bound stops a body that is always ready with empty frames: the byte
            // limit never fills, and the timer cannot fire inside this loop.
            if self.ended
                || self.error.is_some()
                || self.buffered >= limit
                || self.frames.len() >= MAX_PEEK_FRAMES
            {
                return true;
            }
            match self.body.as_mut().poll_frame(cx) {
                Poll::Pending => return false,
                Poll::Ready(None) => self.ended = true,
                Poll::Ready(Some(Err(e))) => self.error = Some(e),
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                    if let Some(d) = frame.data_ref() {
                        self.buffered = self.buffered.saturating_add(d.len());
                    } else if frame.is_trailers() {
                        self.ended = true;
                    }
                    self.frames.push_back(frame);
                }
            }
        }
    }

    fn finish(mut self, limit: usize) -> Response<ResponseBody<B>> {
        if self.for_trailers {
            return self.finish_grpc();
        }
        let verdict = {
            let p = &mut self;
            let bytes = prefix(&p.frames, p.buffered, limit);
            let trailers = p.frames.back().and_then(Frame::trailers_ref);
            let body = BodyPrefix::new(&bytes[..bytes.len().min(limit)], p.ended, trailers);
            let head = ResponseHead::new(p.parts.status, &p.parts.headers, &p.snapshot);
            p.classifier.classify_body(&head, &body)
        };
        let c = verdict.unwrap_or(self.provisional);
        let mut parts = self.parts;
        attach(&mut parts, c, Some(self.snapshot));
        let rest = (!self.ended && self.error.is_none()).then_some(self.body);
        Response::from_parts(
            parts,
            ResponseBody::replay(self.frames, self.error, rest, None),
        )
    }

    /// gRPC: final verdict when the trailers (or the end) arrived within the peek; else
    /// the provisional one and an [`EosClassification`] filled when the body ends.
    fn finish_grpc(mut self) -> Response<ResponseBody<B>> {
        let mut parts = self.parts;
        let (c, watch) = if self.ended {
            let trailers = self.frames.back().and_then(Frame::trailers_ref);
            let c = self
                .classifier
                .classify_trailers(trailers)
                .unwrap_or_else(missing_grpc_status);
            (c, None)
        } else if self.error.is_some() {
            (self.provisional, None)
        } else {
            let watch = eos_watch(&mut parts, self.classifier);
            (self.provisional, Some(watch))
        };
        attach(&mut parts, c, Some(self.snapshot));
        let rest = (!self.ended && self.error.is_none()).then_some(self.body);
        Response::from_parts(
            parts,
            ResponseBody::replay(self.frames, self.error, rest, watch),
        )
    }
}

/// The data read so far as one slice (borrowed when it came in one frame).
fn prefix(frames: &VecDeque<Frame<Bytes>>, buffered: usize, limit: usize) -> Cow<'_, [u8]> {
    let mut data = frames.iter().filter_map(Frame::data_ref);
    match (data.next(), data.next()) {
        (None, _) => Cow::Borrowed(&[]),
        (Some(one), None) => Cow::Borrowed(&one[..]),
        _ => {
            let mut v = Vec::with_capacity(buffered.min(limit));
            for d in frames.iter().filter_map(Frame::data_ref) {
                let room = limit.saturating_sub(v.len());
                if room == 0 {
                    break;
                }
                v.extend_from_slice(&d[..d.len().min(room)]);
            }
            Cow::Owned(v)
        }
    }
}
