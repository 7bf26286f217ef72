//! A request body that can be sent again: recorded lazily, up to a bound.

use crate::error::{ReplayError, ReplayErrorKind};
use crate::BoxError;
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

pin_project! {
    /// A request body that can be sent again, for any [`http_body::Body`] (hyper, axum,
    /// tonic bodies, streams).
    ///
    /// The first copy streams the original body and records its frames, up to a limit in
    /// bytes. A copy made with [`try_clone`](ReplayBody::try_clone) first replays what was
    /// recorded, then goes on reading the original where the earlier copies stopped. So a
    /// retry is correct even when the server answered before the first attempt had sent the
    /// whole body: no byte is sent twice or skipped. Trailers are replayed too.
    ///
    /// Recording stops once the body passes the limit; from then on the body cannot be
    /// replayed ([`try_clone`](ReplayBody::try_clone) returns `None`), and the copy reading it
    /// goes on streaming it unharmed. Only the newest copy may read the original; an older
    /// copy still being sent by an abandoned attempt gets a [`ReplayError`] once it has
    /// replayed what was recorded.
    ///
    /// ```
    /// use abide_retry::ReplayBody;
    /// use http_body_util::{BodyExt, Full};
    /// use bytes::Bytes;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut first = ReplayBody::new(Full::new(Bytes::from("hello")), 1024);
    /// // The first attempt sends the body...
    /// assert_eq!((&mut first).collect().await.unwrap().to_bytes(), "hello");
    /// // ...and a retry sends it again.
    /// let again = first.try_clone().expect("small bodies replay");
    /// assert_eq!(again.collect().await.unwrap().to_bytes(), "hello");
    /// # }
    /// ```
    pub struct ReplayBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        // Sent as is, never recorded; `empty` bodies still have (empty) copies.
        Once { #[pin] body: B, empty: bool },
        // A copy of a body known to be empty.
        Empty,
        Shared { handle: Handle<B> },
    }
}

struct Handle<B> {
    shared: Arc<Shared<B>>,
    generation: u64,
    claimed: bool,
    /// Data bytes this copy has yielded.
    yielded: u64,
    /// Index of the next recorded chunk to replay.
    chunk: usize,
    trailers_sent: bool,
}

struct Shared<B> {
    state: Mutex<State<B>>,
    hint: SizeHint,
    limit: u64,
}

struct State<B> {
    original: Option<Pin<Box<B>>>,
    chunks: Chunks,
    recorded: u64,
    /// Data bytes read from the original so far (recorded or not).
    pulled: u64,
    trailers: Option<HeaderMap>,
    ended: bool,
    capped: bool,
    failed: bool,
    /// The generation allowed to read the original.
    newest: u64,
    last_generation: u64,
    /// The copy waiting on the original, to wake when a newer copy takes over: the
    /// original keeps only the newest waker, so the older copy would never learn it was
    /// superseded and its connection would hang.
    parked: Option<(u64, Waker)>,
}

/// The recorded data frames. Most request bodies are one frame (a JSON document in
/// memory): that one is kept inline, so recording it allocates nothing.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push(chunk);
        }
    }

    fn get(&self, i: usize) -> Option<&Bytes> {
        match i {
            0 => self.first.as_ref(),
            _ => self.rest.get(i - 1),
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }
}

impl<B> State<B> {
    fn claim(&mut self, generation: u64) {
        self.newest = self.newest.max(generation);
        if let Some((parked, waker)) = self.parked.take() {
            if parked < self.newest {
                waker.wake();
            } else {
                self.parked = Some((parked, waker));
            }
        }
    }
}

impl<B: Body> ReplayBody<B> {
    /// Wraps `body`, recording at most `limit` bytes of it for replay.
    ///
    /// A body whose size hint already says it is over the limit is not recorded at all.
    pub fn new(body: B, limit: usize) -> Self {
        if body.is_end_stream() {
            return Self::once(body, true);
        }
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        let hint = body.size_hint();
        if hint.lower() > limit {
            tracing::debug!(
                target: "abide_retry",
                size = hint.lower(),
                limit,
                "request body over the replay limit: not recorded, not retryable"
            );
            return Self::once(body, false);
        }
        let shared = Shared {
            state: Mutex::new(State {
                original: Some(Box::pin(body)),
                chunks: Chunks::default(),
                recorded: 0,
                pulled: 0,
                trailers: None,
                ended: false,
                capped: false,
                failed: false,
                newest: 0,
                last_generation: 0,
                parked: None,
            }),
            hint,
            limit,
        };
        ReplayBody {
            inner: Inner::Shared {
                handle: Handle {
                    shared: Arc::new(shared),
                    generation: 0,
                    claimed: false,
                    yielded: 0,
                    chunk: 0,
                    trailers_sent: false,
                },
            },
        }
    }

    /// Wraps `body` without recording it: it can be sent once (an empty body excepted).
    pub fn once(body: B, empty: bool) -> Self {
        ReplayBody {
            inner: Inner::Once { body, empty },
        }
    }
}

impl<B> ReplayBody<B> {
    /// A copy for another attempt, or `None` when the body cannot be replayed (it went
    /// over the limit, or the original failed). The copy replays what earlier copies read,
    /// then takes over reading the original: from now on older copies can only replay.
    pub fn try_clone(&self) -> Option<Self> {
        let mut copy = self.clone_unclaimed()?;
        if let Inner::Shared { handle } = &mut copy.inner {
            handle.claimed = true;
            handle.shared.lock().claim(handle.generation);
        }
        Some(copy)
    }

    /// A copy that takes over reading the original only once it is polled: the retry
    /// layer keeps one as the template for later attempts without disturbing the first.
    pub(crate) fn clone_unclaimed(&self) -> Option<Self> {
        let inner = match &self.inner {
            Inner::Once { empty: true, .. } | Inner::Empty => Inner::Empty,
            Inner::Once { empty: false, .. } => return None,
            Inner::Shared { handle } => {
                let mut state = handle.shared.lock();
                if state.capped || state.failed {
                    return None;
                }
                state.last_generation += 1;
                Inner::Shared {
                    handle: Handle {
                        shared: handle.shared.clone(),
                        generation: state.last_generation,
                        claimed: false,
                        yielded: 0,
                        chunk: 0,
                        trailers_sent: false,
                    },
                }
            }
        };
        Some(ReplayBody { inner })
    }

    /// True while a copy can still be made.
    pub fn is_replayable(&self) -> bool {
        match &self.inner {
            Inner::Once { empty, .. } => *empty,
            Inner::Empty => true,
            Inner::Shared { handle } => {
                let state = handle.shared.lock();
                !state.capped && !state.failed
            }
        }
    }
}

impl<B> Shared<B> {
    fn lock(&self) -> MutexGuard<'_, State<B>> {
        // A panicking body cannot leave the recording half-written (each update is a
        // push then counters), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn replay_error(kind: ReplayErrorKind) -> BoxError {
    Box::new(ReplayError { kind })
}

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

impl<B> Handle<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Borrowed field by field: the state stays locked while the handle's counters move.
        let Handle {
            shared,
            generation,
            claimed,
            yielded,
            chunk: next_chunk,
            trailers_sent,
        } = self;
        let shared = &**shared;
        let mut st = shared.lock();
        if !*claimed {
            // The newest copy to start takes over reading the original.
            *claimed = true;
            st.claim(*generation);
        }
        if *yielded < st.pulled {
            if st.capped {
                return Poll::Ready(Some(Err(replay_error(ReplayErrorKind::NotRecorded))));
            }
            let Some(chunk) = st.chunks.get(*next_chunk).cloned() else {
                return Poll::Ready(Some(Err(replay_error(ReplayErrorKind::NotRecorded))));
            };
            *next_chunk += 1;
            *yielded += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if !*trailers_sent {
            if let Some(trailers) = &st.trailers {
                *trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
            }
        }
        if st.ended {
            return Poll::Ready(None);
        }
        if st.failed {
            return Poll::Ready(Some(Err(replay_error(ReplayErrorKind::OriginalFailed))));
        }
        if *generation != st.newest {
            return Poll::Ready(Some(Err(replay_error(ReplayErrorKind::Superseded))));
        }
        let Some(original) = st.original.as_mut() else {
            st.ended = true;
            return Poll::Ready(None);
        };
        match original.as_mut().poll_frame(cx) {
            Poll::Pending => {
                st.parked = Some((*generation, cx.waker().clone()));
                Poll::Pending
            }
            Poll::Ready(None) => {
                st.ended = true;
                st.original = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                st.failed = true;
                st.original = None;
                st.chunks = Chunks::default();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(to_bytes);
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    st.pulled += len;
                    *yielded += len;
                    if !st.capped && len > 0 {
                        if st.recorded + len <= shared.limit {
                            st.chunks.push(data.clone());
                            st.recorded += len;
                            *next_chunk = st.chunks.len();
                        } else {
                            tracing::debug!(
                                target: "abide_retry",
                                size = st.pulled,
                                limit = shared.limit,
                                "request body passed the replay limit: no longer retryable"
                            );
                            st.capped = true;
                            st.chunks = Chunks::default();
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    if !st.capped {
                        st.trailers = Some(trailers.clone());
                    }
                    *trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let st = self.shared.lock();
        if self.yielded < st.pulled || (st.trailers.is_some() && !self.trailers_sent) {
            return false;
        }
        if st.ended {
            return true;
        }
        match &st.original {
            Some(original) if !st.failed => original.is_end_stream(),
            _ => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let st = self.shared.lock();
        if st.ended {
            return SizeHint::with_exact(st.pulled.saturating_sub(self.yielded));
        }
        // Every copy describes the whole body minus what it has yielded, so an exact
        // length (hyper's content-length) stays exact on every attempt.
        let hint = &self.shared.hint;
        let mut out = SizeHint::new();
        out.set_lower(hint.lower().saturating_sub(self.yielded));
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_sub(self.yielded));
        }
        out
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().inner.project() {
            InnerProj::Once { body, .. } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map(|f| f.map_data(to_bytes)).map_err(Into::into))),
            InnerProj::Empty => Poll::Ready(None),
            InnerProj::Shared { handle } => handle.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Once { body, .. } => body.is_end_stream(),
            Inner::Empty => true,
            Inner::Shared { handle } => handle.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Once { body, .. } => body.size_hint(),
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Shared { handle } => handle.size_hint(),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ReplayBody");
        match &self.inner {
            Inner::Once { empty, .. } => d.field("kind", &"once").field("empty", empty),
            Inner::Empty => d.field("kind", &"empty"),
            Inner::Shared { handle } => {
                let st = handle.shared.lock();
                d.field("kind", &"recorded")
                    .field("generation", &handle.generation)
                    .field("yielded", &handle.yielded)
                    .field("recorded", &st.recorded)
                    .field("limit", &handle.shared.limit)
                    .field("capped", &st.capped)
            }
        };
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::collections::VecDeque;

    /// A body yielding scripted frames, with a pending step between each.
    struct Script {
        frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
        pending_next: bool,
    }

    impl Script {
        fn new(chunks: &[&'static str], trailers: Option<HeaderMap>) -> Self {
            let mut frames: VecDeque<_> = chunks
                .iter()
                .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
                .collect();
            if let Some(t) = trailers {
                frames.push_back(Ok(Frame::trailers(t)));
            }
            Script {
                frames,
                pending_next: true,
            }
        }
    }

    impl Body for Script {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            // Pending between frames, as a network stream would be.
            if self.pending_next {
                self.pending_next = false;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.pending_next = true;
            Poll::Ready(self.frames.pop_front().map(|r| r.map_err(Into::into)))
        }
    }

    async fn frames<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
        body: &mut B,
        n: usize,
    ) -> Vec<Frame<Bytes>> {
        let mut out = Vec::new();
        for _ in 0..n {
            match body.frame().await {
                Some(Ok(f)) => out.push(f),
                _ => break,
            }
        }
        out
    }

    fn data(frames: &[Frame<Bytes>]) -> Vec<u8> {
        frames
            .iter()
            .filter_map(|f| f.data_ref())
            .flat_map(|d| d.to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_copy_replays_what_was_sent_then_continues_from_the_original() {
        let mut first = ReplayBody::new(Script::new(&["ab", "cd", "ef", "gh"], None), 1024);
        let sent = frames(&mut first, 2).await;
        assert_eq!(data(&sent), b"abcd");
        let second = first.try_clone().unwrap();
        let all = second.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdefgh", "no byte duplicated or dropped");
    }

    #[tokio::test]
    async fn trailers_are_replayed() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let first = ReplayBody::new(Script::new(&["x"], Some(trailers.clone())), 1024);
        let template = first.clone_unclaimed().unwrap();
        let got = first.collect().await.unwrap();
        assert_eq!(got.trailers(), Some(&trailers));
        let again = template.try_clone().unwrap().collect().await.unwrap();
        assert_eq!(again.trailers(), Some(&trailers));
        assert_eq!(&again.to_bytes()[..], b"x");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_whole_but_cannot_be_replayed() {
        let first = ReplayBody::new(Script::new(&["1234", "5678", "9"], None), 6);
        let template = first.clone_unclaimed().unwrap();
        assert!(template.is_replayable());
        let all = first.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"123456789");
        assert!(!template.is_replayable());
        assert!(template.try_clone().is_none());
    }

    #[tokio::test]
    async fn a_body_announced_over_the_limit_is_not_recorded() {
        let body = ReplayBody::new(Full::new(Bytes::from_static(b"0123456789")), 4);
        assert!(!body.is_replayable());
        assert!(body.try_clone().is_none());
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"0123456789");
    }

    #[tokio::test]
    async fn an_abandoned_copy_cannot_read_past_the_recording_once_a_newer_one_started() {
        let mut first = ReplayBody::new(Script::new(&["a", "b", "c"], None), 1024);
        let template = first.clone_unclaimed().unwrap();
        assert_eq!(data(&frames(&mut first, 1).await), b"a");
        let mut second = template.try_clone().unwrap();
        assert_eq!(data(&frames(&mut second, 2).await), b"ab");
        // The first copy may still replay what was recorded...
        assert_eq!(data(&frames(&mut first, 1).await), b"b");
        // ...but at the frontier it is no longer the newest.
        let err = first.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<ReplayError>().unwrap().kind,
            ReplayErrorKind::Superseded
        );
        let rest = second.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"c");
    }

    #[tokio::test]
    async fn an_exact_size_stays_exact_on_every_copy() {
        let first = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64);
        let template = first.clone_unclaimed().unwrap();
        assert_eq!(first.size_hint().exact(), Some(5));
        first.collect().await.unwrap();
        let again = template.try_clone().unwrap();
        assert_eq!(again.size_hint().exact(), Some(5));
        assert!(!again.is_end_stream());
        assert_eq!(&again.collect().await.unwrap().to_bytes()[..], b"hello");
    }

    #[tokio::test]
    async fn empty_bodies_copy_as_empty() {
        let body = ReplayBody::new(http_body_util::Empty::<Bytes>::new(), 0);
        let copy = body.try_clone().unwrap();
        assert!(copy.is_end_stream());
        assert!(copy.collect().await.unwrap().to_bytes().is_empty());
    }

    #[tokio::test]
    async fn a_failed_original_is_not_replayable() {
        let mut script = Script::new(&["a"], None);
        script.frames.push_back(Err("boom"));
        let first = ReplayBody::new(script, 1024);
        let template = first.clone_unclaimed().unwrap();
        assert!(first.collect().await.is_err());
        assert!(!template.is_replayable());
    }

    #[test]
    fn a_copy_waiting_on_the_original_is_woken_when_a_newer_one_takes_over() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::task::Wake;

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let (_tx, channel) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut first = ReplayBody::new(channel, 1024);
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut first).poll_frame(&mut cx).is_pending());
        let _second = first.try_clone().unwrap();
        assert!(flag.0.load(Ordering::SeqCst), "the old copy must not hang");
        let Poll::Ready(Some(Err(err))) = Pin::new(&mut first).poll_frame(&mut cx) else {
            panic!("the old copy fails once superseded");
        };
        assert!(err.is::<ReplayError>());
    }
}
