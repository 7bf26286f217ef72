//! [`Spooled`]: the service [`SpoolLayer`](crate::SpoolLayer) builds.

use crate::body::SpoolBody;
use crate::error::{BodyTooLarge, Deferred};
use crate::{not_now, BoxError, NewEntry, SpoolLayer};
use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower_service::Service;

pin_project! {
    /// The future of [`Spooled`].
    ///
    /// A request that is not deferrable (most of a client's traffic passes the layer this
    /// way) is the inner future itself, unboxed. A deferrable one buffers its body, may
    /// write to the spool (a blocking task and an `fsync`) and is one boxed future: next to
    /// that work one allocation does not show, and a hand-written state machine across the
    /// body, the call and the spool write would add code without a measurable gain.
    pub struct ResponseFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Passthrough { #[pin] future: F },
        Deferrable { future: Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>> },
    }
}

impl<F, R> fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Passthrough { .. } => "passthrough",
            State::Deferrable { .. } => "deferrable",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, R, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Passthrough { future } => future.poll(cx).map_err(Into::into),
            StateProj::Deferrable { future } => future.as_mut().poll(cx),
        }
    }
}

/// Spools deferrable requests that cannot go now; see [`SpoolLayer`].
#[derive(Clone, Debug)]
pub struct Spooled<S> {
    pub(crate) inner: S,
    pub(crate) layer: SpoolLayer,
}

impl<S> Spooled<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, RB> Service<Request<B>> for Spooled<S>
where
    S: Service<Request<SpoolBody<B>>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The ready service goes into the future; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let (mut parts, body) = request.into_parts();
        if !(layer.predicate)(&parts) {
            let request = Request::from_parts(parts, SpoolBody::original(body));
            return ResponseFuture {
                state: State::Passthrough {
                    future: inner.call(request),
                },
            };
        }
        let future = Box::pin(async move {
            // The key goes out on the first attempt already: if that attempt reached the
            // server after all, the replay is recognised as the same request.
            if !parts.headers.contains_key(abide_retry::IDEMPOTENCY_KEY) {
                let key = crate::key::new_idempotency_key();
                let value = http::HeaderValue::from_str(&key).expect("hex is a header value");
                parts.headers.insert(abide_retry::IDEMPOTENCY_KEY, value);
            }
            let buffered = buffer(body, layer.max_body).await?;
            let (body, copy) = match buffered {
                Buffered::Whole(bytes) => (SpoolBody::full(bytes.clone()), Some(bytes)),
                Buffered::Over(prefix, rest) => (SpoolBody::chained(prefix, rest), None),
            };
            let entry = copy.map(|bytes| NewEntry::from_parts(&parts, bytes));
            let result = inner
                .call(Request::from_parts(parts, body))
                .await
                .map_err(Into::into);
            let Some(reason) = not_now(&result) else {
                return result;
            };
            let Some(entry) = entry else {
                tracing::warn!(%reason, limit = layer.max_body, "spool: deferrable request over the body limit, not spooled");
                return match result {
                    Ok(response) => Ok(response),
                    Err(source) => Err(Box::new(BodyTooLarge {
                        limit: layer.max_body,
                        source: Some(source),
                    }) as BoxError),
                };
            };
            let spool = layer.spool.clone();
            let pushed = tokio::task::spawn_blocking(move || spool.push(entry))
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            let id = pushed.map_err(|e| Box::new(e) as BoxError)?;
            let key = layer
                .spool
                .get(id)
                .map(|e| e.idempotency_key)
                .unwrap_or_default();
            tracing::info!(%id, %reason, "spool: request deferred");
            Err(Box::new(Deferred {
                id,
                idempotency_key: key,
                reason,
            }) as BoxError)
        });
        ResponseFuture {
            state: State::Deferrable { future },
        }
    }
}

enum Buffered<B> {
    Whole(Bytes),
    Over(Bytes, B),
}

/// Collects up to `max` bytes of `body`; past that, hands back the prefix and the rest.
/// Trailers of a buffered body are dropped (request trailers are rare outside gRPC, and
/// gRPC calls are not deferrable work).
async fn buffer<B>(mut body: B, max: usize) -> Result<Buffered<B>, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > max as u64 {
        return Ok(Buffered::Over(Bytes::new(), body));
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Into::into)?;
        if let Ok(data) = frame.into_data() {
            collected.extend_from_slice(&data);
            if collected.len() > max {
                return Ok(Buffered::Over(collected.freeze(), body));
            }
        }
    }
    Ok(Buffered::Whole(collected.freeze()))
}
