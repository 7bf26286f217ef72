//! A scripted rate-limited server and a chunked body, shared by the service tests.
#![allow(dead_code, unreachable_pub)]

use abide_classify::Classification;
use abide_headers::{Dialect, Limit, RateLimitSnapshot, Scope};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// A body that yields its chunks one poll at a time, with a virtual-time gap before each.
#[derive(Debug)]
pub struct Chunks {
    chunks: VecDeque<Bytes>,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Chunks {
    pub fn new(n: usize, gap: Duration) -> Self {
        Chunks {
            chunks: (0..n).map(|i| Bytes::from(format!("chunk {i}"))).collect(),
            gap,
            sleep: None,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        if !self.gap.is_zero() {
            let gap = self.gap;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Log {
    /// Arrival instant and status of each request.
    pub arrivals: Vec<(Instant, u16)>,
    /// Requests being processed now, and the most at once.
    pub concurrent: usize,
    pub max_concurrent: usize,
}

/// What the server answers with beyond its window limit.
#[derive(Clone, Debug)]
pub enum Script {
    /// Fixed windows of `limit` requests per `window` (tokens: `token_limit` per window,
    /// each request spending what its `abide_cap::Cost` extension says).
    Window {
        limit: u64,
        window: Duration,
        token_limit: Option<u64>,
    },
    /// Answer the n-th request (0-based) with a 429 asking for `wait`; the rest succeed.
    OneThrottle { nth: usize, wait: Duration },
    /// Answer the n-th request with a quota-exhaustion verdict stating `reset`; the rest
    /// succeed.
    ExhaustAt { nth: usize, reset: Duration },
    /// Always succeed.
    Open,
}

#[derive(Debug)]
struct State {
    start: Instant,
    window_index: u64,
    used: u64,
    tokens_used: u64,
    log: Log,
}

/// A tower service that enforces its script and puts a `RateLimitSnapshot` (and, for
/// exhaustion, a `Classification`) into each response's extensions, as the classifier
/// layer would.
#[derive(Clone, Debug)]
pub struct Server {
    script: Script,
    latency: Duration,
    body_chunks: usize,
    body_gap: Duration,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn new(script: Script, latency: Duration) -> Self {
        Server {
            script,
            latency,
            body_chunks: 1,
            body_gap: Duration::ZERO,
            state: Arc::new(Mutex::new(State {
                start: Instant::now(),
                window_index: 0,
                used: 0,
                tokens_used: 0,
                log: Log::default(),
            })),
        }
    }

    pub fn with_body_chunks(mut self, n: usize) -> Self {
        self.body_chunks = n;
        self
    }

    pub fn with_body_gap(mut self, gap: Duration) -> Self {
        self.body_gap = gap;
        self
    }

    pub fn arrivals(&self) -> Vec<(Instant, u16)> {
        self.state.lock().unwrap().log.arrivals.clone()
    }

    pub fn max_concurrent(&self) -> usize {
        self.state.lock().unwrap().log.max_concurrent
    }

    pub fn start(&self) -> Instant {
        self.state.lock().unwrap().start
    }

    fn answer(&self, cost: u64) -> Response<Chunks> {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let nth = st.log.arrivals.len();
        let mut snapshot = RateLimitSnapshot::new();
        let mut classification = None;
        let status = match &self.script {
            Script::Window {
                limit,
                window,
                token_limit,
            } => {
                let elapsed = now.duration_since(st.start);
                let index = (elapsed.as_nanos() / window.as_nanos()) as u64;
                if index != st.window_index {
                    st.window_index = index;
                    st.used = 0;
                    st.tokens_used = 0;
                }
                let window_end = st.start + *window * (index as u32 + 1);
                let reset = window_end - now;
                let fits_tokens = token_limit.is_none_or(|t| st.tokens_used + cost <= t);
                let ok = st.used < *limit && fits_tokens;
                if ok {
                    st.used += 1;
                    st.tokens_used += cost;
                }
                let mut requests = Limit::new(Scope::Requests, Dialect::Other);
                requests.limit = Some(*limit);
                requests.remaining = Some(limit - st.used);
                requests.reset = Some(reset);
                snapshot.push(requests);
                if let Some(t) = token_limit {
                    let mut tokens = Limit::new(Scope::Tokens, Dialect::Other);
                    tokens.limit = Some(*t);
                    tokens.remaining = Some(t.saturating_sub(st.tokens_used));
                    tokens.reset = Some(reset);
                    snapshot.push(tokens);
                }
                if ok {
                    StatusCode::OK
                } else {
                    snapshot.set_retry_after(Some(reset));
                    StatusCode::TOO_MANY_REQUESTS
                }
            }
            Script::OneThrottle { nth: n, wait } if *n == nth => {
                snapshot.set_retry_after(Some(*wait));
                StatusCode::TOO_MANY_REQUESTS
            }
            Script::ExhaustAt { nth: n, reset } if *n == nth => {
                classification = Some(
                    Classification::new(abide_classify::Class::QuotaExhausted, "test")
                        .with_retry_after(Some(*reset)),
                );
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::OK,
        };
        st.log.arrivals.push((now, status.as_u16()));
        st.log.concurrent += 1;
        st.log.max_concurrent = st.log.max_concurrent.max(st.log.concurrent);
        let mut response = Response::new(Chunks::new(self.body_chunks, self.body_gap));
        *response.status_mut() = status;
        response.extensions_mut().insert(snapshot);
        if let Some(c) = classification {
            response.extensions_mut().insert(c);
        }
        response
    }
}

/// Decrements the server's concurrency count when the exchange ends.
struct Exchange(Arc<Mutex<State>>);

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.lock().unwrap().log.concurrent -= 1;
    }
}

impl<B> tower::Service<Request<B>> for Server {
    type Response = Response<Chunks>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Chunks>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let cost = request
            .extensions()
            .get::<abide_cap::Cost>()
            .map_or(1, |c| u64::from(c.0));
        let response = self.answer(cost);
        let exchange = Exchange(self.state.clone());
        let latency = self.latency;
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            drop(exchange);
            Ok(response)
        })
    }
}

pub fn request(cost: Option<u32>) -> Request<String> {
    let mut r = Request::get("https://api.example.com/v1/chat")
        .body(String::new())
        .unwrap();
    if let Some(c) = cost {
        r.extensions_mut().insert(abide_cap::Cost(c));
    }
    r
}
