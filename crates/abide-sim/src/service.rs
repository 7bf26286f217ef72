//! The simulated API as a `tower::Service`.

use crate::dialect;
use crate::model::{Outcome, ServerConfig, ServerModel};
use bytes::Bytes;
use http::{HeaderName, Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::time::{Instant, Sleep};
use tower::BoxError;

/// The request header carrying a request's cost in tokens (a decimal integer), for clients
/// that cannot set the [`RequestTokens`] extension (real HTTP).
pub const TOKENS_HEADER: HeaderName = HeaderName::from_static("x-sim-tokens");

/// A request's cost in tokens, as a request extension. The server reads it first, then the
/// [`TOKENS_HEADER`] header; a request with neither costs 0 tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestTokens(pub u64);

/// Seconds from the Unix epoch to the wall-clock reading of a virtual server's start,
/// 2026-01-01T00:00:00Z. Fixed so that rendered dates (and so every byte of output) are
/// reproducible.
pub const SIM_EPOCH_SECS: u64 = 1_767_225_600;

/// The wall-clock reading of a virtual server's start ([`SIM_EPOCH_SECS`]).
pub fn sim_epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(SIM_EPOCH_SECS)
}

/// The connection was refused (an outage with status 0). Returned as the service's error;
/// its [`source`](std::error::Error::source) is an `io::Error` of kind `ConnectionRefused`,
/// as in the error chain a real HTTP client returns.
#[derive(Debug)]
pub struct ConnectionRefused {
    io: std::io::Error,
}

impl ConnectionRefused {
    /// A refused connection.
    pub fn new() -> Self {
        ConnectionRefused {
            io: std::io::ErrorKind::ConnectionRefused.into(),
        }
    }
}

impl Default for ConnectionRefused {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection refused (simulated outage)")
    }
}

impl std::error::Error for ConnectionRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.io)
    }
}

/// The simulated API: a `tower::Service<http::Request<B>>` for any body `B`.
///
/// Time comes from `tokio::time`: under a paused clock an hour passes in milliseconds; on
/// a real clock the same service answers in real time. Clones share one server (one key's
/// quota). Answers carry the server's [`Outcome`] in their extensions.
#[derive(Clone)]
pub struct SimServer {
    model: Arc<Mutex<ServerModel>>,
    start: Instant,
    epoch: SystemTime,
}

impl fmt::Debug for SimServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimServer")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// A server starting now, whose wall clock reads [`sim_epoch()`] at its start.
    pub fn new(config: ServerConfig, seed: u64) -> Self {
        Self::with_epoch(config, seed, sim_epoch())
    }

    /// A server starting now whose wall clock reads `epoch` at its start (use
    /// `SystemTime::now()` when serving real clients).
    pub fn with_epoch(config: ServerConfig, seed: u64, epoch: SystemTime) -> Self {
        let model = ServerModel::new(config, seed);
        // A whole-second clock starts at a fraction of a second past `epoch`.
        let epoch = epoch + model.clock_phase();
        SimServer {
            model: Arc::new(Mutex::new(model)),
            start: Instant::now(),
            epoch,
        }
    }

    /// Time since the server started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The server's wall clock.
    pub fn now_wall(&self) -> SystemTime {
        self.epoch + self.elapsed()
    }

    /// The instant the server started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Runs `f` on the model (for inspection in tests and harnesses).
    pub fn with_model<T>(&self, f: impl FnOnce(&mut ServerModel) -> T) -> T {
        let mut model = self.model.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut model)
    }
}

fn tokens_of<B>(req: &Request<B>) -> u64 {
    if let Some(t) = req.extensions().get::<RequestTokens>() {
        return t.0;
    }
    req.headers()
        .get(&TOKENS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl SimServer {
    /// Decides a request of `tokens` that reaches the limiter now: the delay until its
    /// answer and the answer.
    fn answer(&self, tokens: u64, key: Option<&str>) -> (Duration, Answer) {
        let now = self.elapsed();
        let (dialect, limits_on_429_only, decision) = self.with_model(|m| {
            let c = m.config();
            let (dialect, only) = (c.dialect, c.limits_on_429_only);
            (dialect, only, m.decide_keyed(now, tokens, key))
        });
        let result = if decision.outcome == Outcome::Refused {
            Err(ConnectionRefused::new())
        } else {
            Ok(dialect::response(
                dialect,
                limits_on_429_only,
                &decision,
                self.epoch + now,
            ))
        };
        (decision.delay, result)
    }
}

type Answer = Result<Response<Full<Bytes>>, ConnectionRefused>;

impl<B> tower::Service<Request<B>> for SimServer {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Every request gets an answer; capacity is the model's business.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let tokens = tokens_of(&req);
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let upstream = self.with_model(ServerModel::upstream_delay);
        if upstream.is_zero() {
            let (delay, result) = self.answer(tokens, key.as_deref());
            return ResponseFuture {
                sleep: tokio::time::sleep(delay),
                upstream: None,
                result: Some(result),
            };
        }
        ResponseFuture {
            sleep: tokio::time::sleep(upstream),
            upstream: Some((self.clone(), tokens, key)),
            result: None,
        }
    }
}

pin_project! {
    /// The answer of a [`SimServer`]: the request travels to the limiter (when the server
    /// reorders), is decided there, and the answer comes back after the service time.
    pub struct ResponseFuture {
        #[pin]
        sleep: Sleep,
        // While the request is on its way to the limiter: the server, its cost and its
        // idempotency key.
        upstream: Option<(SimServer, u64, Option<String>)>,
        result: Option<Answer>,
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Full<Bytes>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        std::task::ready!(this.sleep.as_mut().poll(cx));
        if let Some((server, tokens, key)) = this.upstream.take() {
            let (delay, result) = server.answer(tokens, key.as_deref());
            *this.result = Some(result);
            this.sleep.as_mut().reset(Instant::now() + delay);
            std::task::ready!(this.sleep.poll(cx));
        }
        match this.result.take() {
            Some(r) => Poll::Ready(r.map_err(Into::into)),
            // Polled after completion: answer as a refused connection rather than panic.
            None => Poll::Ready(Err(ConnectionRefused::new().into())),
        }
    }
}
