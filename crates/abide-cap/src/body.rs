//! The response body that holds the in-flight permit.

use crate::limiter::Permit;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The inner response body, holding the request's in-flight permit until the body
    /// ends, fails or is dropped: a streamed response counts as in flight while it streams.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B, permit: Option<Permit>) -> Self {
        // An empty body is over before anyone polls it.
        let permit = if inner.is_end_stream() { None } else { permit };
        ResponseBody { inner, permit }
    }
}

impl<B> ResponseBody<B> {
    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// The inner body; the permit is released.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// Whether this body still holds its in-flight permit.
    pub fn holds_permit(&self) -> bool {
        self.permit.is_some()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let over = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
        };
        if over {
            *this.permit = None;
        } else if let Some(p) = this.permit.as_ref() {
            p.touch();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
