//! The request body the spool's services send: the caller's own, a buffered copy, or a
//! buffered prefix followed by the rest of the caller's.

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// The body of a request passed on by [`Spooled`](crate::Spooled) or sent by the
    /// [`Replayer`](crate::Replayer).
    #[derive(Debug)]
    pub struct SpoolBody<B> {
        prefix: Option<Bytes>,
        #[pin]
        rest: Option<B>,
    }
}

impl<B> SpoolBody<B> {
    /// A body of these bytes.
    pub fn full(bytes: Bytes) -> Self {
        SpoolBody {
            prefix: Some(bytes).filter(|b| !b.is_empty()),
            rest: None,
        }
    }
    /// The caller's body, unchanged.
    pub fn original(body: B) -> Self {
        SpoolBody {
            prefix: None,
            rest: Some(body),
        }
    }
    pub(crate) fn chained(prefix: Bytes, rest: B) -> Self {
        SpoolBody {
            prefix: Some(prefix).filter(|b| !b.is_empty()),
            rest: Some(rest),
        }
    }
}

impl<B> Body for SpoolBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        if let Some(bytes) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        match this.rest.as_pin_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |b| b.remaining() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), |r| r.size_hint());
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + prefix);
        }
        hint.set_lower(rest.lower() + prefix);
        hint
    }
}
