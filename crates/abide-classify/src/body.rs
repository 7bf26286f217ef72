//! The response body the layer returns: the inner body untouched, after the frames the
//! peek already read.

use crate::Classification;
use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

/// The verdict a gRPC response gets when its body ends (the status is in the trailers).
///
/// [`QuotaClassifier`](crate::QuotaClassifier) puts one in the extensions of a gRPC
/// response whose status was not in its headers; the response body fills it when the
/// trailers arrive (or the stream ends without them: a failure, not a silent success).
/// Clones share the verdict.
#[derive(Clone, Default)]
pub struct EosClassification(Arc<OnceLock<Classification>>);

impl EosClassification {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verdict, once the body has ended.
    pub fn get(&self) -> Option<&Classification> {
        self.0.get()
    }

    pub(crate) fn set(&self, c: Classification) {
        // The first verdict wins; the body sets it at most once.
        let _ = self.0.set(c);
    }
}

impl fmt::Debug for EosClassification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EosClassification")
            .field(&self.get())
            .finish()
    }
}

type TrailerFn = Box<dyn FnMut(Option<&HeaderMap>) -> Classification + Send + Sync>;

/// Watches for the end of a gRPC stream.
pub(crate) struct EosWatch {
    pub(crate) slot: EosClassification,
    pub(crate) classify: TrailerFn,
}

impl EosWatch {
    fn finish(mut self, trailers: Option<&HeaderMap>) {
        let c = (self.classify)(trailers);
        self.slot.set(c);
    }
}

pin_project! {
    /// The body of a response that passed through [`QuotaClassifier`](crate::QuotaClassifier):
    /// byte for byte the inner body (frames the peek read are replayed first, then the
    /// rest streams on). Data frames come out as [`Bytes`]; errors are the inner body's.
    pub struct ResponseBody<B: Body> {
        #[pin]
        inner: Inner<B>,
        eos: Option<Box<EosWatch>>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B: Body> {
        Passthrough { #[pin] body: B },
        Replay {
            frames: VecDeque<Frame<Bytes>>,
            error: Option<B::Error>,
            body: Option<Pin<Box<B>>>,
        },
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Inner::Passthrough { .. } => "passthrough",
            Inner::Replay { .. } => "replay",
        };
        f.debug_struct("ResponseBody")
            .field("kind", &kind)
            .field("awaits_trailers", &self.eos.is_some())
            .finish()
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(body: B, eos: Option<Box<EosWatch>>) -> Self {
        ResponseBody {
            inner: Inner::Passthrough { body },
            eos,
        }
    }

    pub(crate) fn replay(
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        body: Option<Pin<Box<B>>>,
        eos: Option<Box<EosWatch>>,
    ) -> Self {
        ResponseBody {
            inner: Inner::Replay {
                frames,
                error,
                body,
            },
            eos,
        }
    }
}

fn to_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    // `Bytes::copy_to_bytes` hands over the buffer without copying.
    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = match this.inner.project() {
            InnerProj::Passthrough { body } => ready!(body.poll_frame(cx)),
            InnerProj::Replay {
                frames,
                error,
                body,
            } => {
                if let Some(f) = frames.pop_front() {
                    return Poll::Ready(Some(Ok(f)));
                }
                if let Some(e) = error.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                match body {
                    Some(b) => {
                        let r = ready!(b.as_mut().poll_frame(cx));
                        if r.is_none() {
                            *body = None;
                        }
                        r
                    }
                    None => None,
                }
            }
        };
        let polled = polled.map(|r| r.map(to_bytes));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(t) = frame.trailers_ref() {
                    if let Some(w) = this.eos.take() {
                        (*w).finish(Some(t));
                    }
                }
            }
            None => {
                if let Some(w) = this.eos.take() {
                    (*w).finish(None);
                }
            }
            Some(Err(_)) => {}
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Passthrough { body } => body.is_end_stream(),
            Inner::Replay {
                frames,
                error,
                body,
            } => {
                frames.is_empty()
                    && error.is_none()
                    && body.as_ref().is_none_or(|b| b.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Passthrough { body } => body.size_hint(),
            Inner::Replay { frames, body, .. } => {
                let buffered: u64 = frames
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let mut hint = body
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
                let lower = hint.lower().saturating_add(buffered);
                let upper = hint.upper().map(|u| u.saturating_add(buffered));
                hint.set_lower(lower);
                if let Some(u) = upper {
                    hint.set_upper(u);
                }
                hint
            }
        }
    }
}
