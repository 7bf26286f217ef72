//! Success-path cost of the whole stack: [`AbideLayer`] against tower's own layers
//! composed in the same order, `tower::retry` (an equivalent policy: retry 429 and 5xx up
//! to three times, cloning the request) around `ConcurrencyLimit` around `RateLimit`.
//!
//! tower's `RateLimit` is not `Clone`, and `Retry` needs a `Clone` inner service; tower's
//! documented way to share it is a `Buffer` (tower `src/retry/mod.rs`, "the `Buffer`
//! middleware can be added"), so the tower stack is
//! `Retry<ConcurrencyLimit<Buffer<RateLimit<api>>>>`, one rate state for every caller,
//! as abide's cap has. Limits are far above what the bench reaches on both sides: this
//! measures the bookkeeping. The API answers 200 at once with the rate-limit headers
//! OpenAI sends, which abide reads and learns from.
//!
//! Ids (issue 17): group `stack`, `abide/1`, `tower/1` (one caller), `abide/64`,
//! `tower/64` (64 concurrent callers on a 2-thread runtime), `abide/64-buckets10k` (64
//! callers over 10,000 distinct hosts).
//!
//! Run: `cargo bench --bench stack -- --quick`.
//!
//! Instructions per request, under callgrind: with `STACK_PROFILE=abide` (or `tower`) and
//! `STACK_REQUESTS=N` the binary sends N requests through that stack (one caller) and
//! exits without criterion; the difference of two runs' instruction counts divided by
//! the difference of their N is the cost of one request, setup excluded:
//!
//! ```text
//! cargo bench --bench stack --no-run
//! STACK_PROFILE=abide STACK_REQUESTS=1000 valgrind --tool=callgrind target/release/deps/stack-*
//! ```

use abide::cap::ConcurrencyCapLayer;
use abide::{AbideLayer, InFlight};
use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response, Uri};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::buffer::Buffer;
use tower::limit::{ConcurrencyLimit, RateLimit};
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, ServiceExt};

const CALLERS: usize = 64;
const BUCKETS: usize = 10_000;
const JSON: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarize the attached notes in three bullet points."}],"max_tokens":256}"#;

fn post(uri: Uri) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(JSON.as_bytes())));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        "Bearer sk-test-0123456789abcdef".parse().unwrap(),
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    request
}

fn openai_uri() -> Uri {
    Uri::from_static("https://api.openai.com/v1/chat/completions")
}

/// A 200 with OpenAI's rate-limit headers, stating limits far above the bench's rate.
fn ok() -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-ratelimit-limit-requests", "100000000")
        .header("x-ratelimit-remaining-requests", "99999999")
        .header("x-ratelimit-reset-requests", "1ms")
        .header("x-ratelimit-limit-tokens", "100000000")
        .header("x-ratelimit-remaining-tokens", "99999999")
        .header("x-ratelimit-reset-tokens", "1ms")
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
        .unwrap()
}

#[derive(Clone, Copy)]
struct Api;

impl<B> Service<Request<B>> for Api {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        black_box(&request);
        ready(Ok(ok()))
    }
}

/// The retry policy equivalent to abide's on the success path.
#[derive(Clone)]
struct StatusPolicy {
    retries_left: usize,
}

impl<B: Clone, RB, E> Policy<Request<B>, Response<RB>, E> for StatusPolicy {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<RB>, E>,
    ) -> Option<Self::Future> {
        let retryable = match result {
            Ok(res) => res.status() == 429 || res.status().is_server_error(),
            Err(_) => true,
        };
        if retryable && self.retries_left > 0 {
            self.retries_left -= 1;
            Some(ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

type Abide = abide::AbideService<Api>;

fn abide_stack() -> Abide {
    AbideLayer::new()
        .with_cap(ConcurrencyCapLayer::new().with_in_flight(InFlight::fixed(1 << 16)))
        .layer(Api)
}

type TowerStack = Retry<
    StatusPolicy,
    ConcurrencyLimit<
        Buffer<Request<Full<Bytes>>, Ready<Result<Response<Full<Bytes>>, Infallible>>>,
    >,
>;

/// Must be made inside a runtime (the buffer's worker is spawned).
fn tower_stack() -> TowerStack {
    let rate = RateLimit::new(
        Api,
        tower::limit::rate::Rate::new(u64::MAX / 4, Duration::from_secs(1)),
    );
    let buffer = Buffer::new(rate, 1024);
    Retry::new(
        StatusPolicy { retries_left: 3 },
        ConcurrencyLimit::new(buffer, 1 << 16),
    )
}

async fn one<S>(service: S, uri: Uri)
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let response = service.oneshot(post(uri)).await.expect("a success");
    black_box(response);
}

fn single(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    group.bench_function("abide/1", |b| {
        let svc = abide_stack();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    one(svc.clone(), openai_uri()).await;
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tower/1", |b| {
        let svc = rt.block_on(async { tower_stack() });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    one(svc.clone(), openai_uri()).await;
                }
                start.elapsed()
            })
        });
    });
}

/// `iters` calls spread over [`CALLERS`] tasks, each calling `svc` with the URIs of
/// `uris` in turn; the wall time scaled to `iters` calls.
fn contended<S>(rt: &tokio::runtime::Runtime, svc: &S, uris: &Arc<Vec<Uri>>, iters: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let per = iters.div_ceil(CALLERS as u64);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let (svc, uris) = (svc.clone(), uris.clone());
                tokio::spawn(async move {
                    for i in 0..per as usize {
                        let uri = uris[(caller * 7919 + i) % uris.len()].clone();
                        one(svc.clone(), uri).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a caller");
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (per * CALLERS as u64).max(1) as f64)
    })
}

fn many(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    let one_host = Arc::new(vec![openai_uri()]);
    let hosts: Arc<Vec<Uri>> = Arc::new(
        (0..BUCKETS)
            .map(|i| {
                format!("https://h{i}.example.com/v1/chat/completions")
                    .parse()
                    .unwrap()
            })
            .collect(),
    );
    group.bench_function("abide/64", |b| {
        let svc = abide_stack();
        b.iter_custom(|iters| contended(&rt, &svc, &one_host, iters));
    });
    group.bench_function("tower/64", |b| {
        let svc = rt.block_on(async { tower_stack() });
        b.iter_custom(|iters| contended(&rt, &svc, &one_host, iters));
    });
    group.bench_function("abide/64-buckets10k", |b| {
        let svc = abide_stack();
        b.iter_custom(|iters| contended(&rt, &svc, &hosts, iters));
    });
}

fn stack(c: &mut Criterion) {
    let mut group = c.benchmark_group("stack");
    single(&mut group);
    many(&mut group);
    group.finish();
}

criterion_group!(benches, stack);

/// `STACK_PROFILE=abide|tower STACK_REQUESTS=N`: N one-caller requests through that stack,
/// for callgrind (see the module docs); otherwise the criterion benches.
fn main() {
    let Ok(which) = std::env::var("STACK_PROFILE") else {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    };
    let n: u64 = std::env::var("STACK_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    rt.block_on(async {
        match which.as_str() {
            "abide" => {
                let svc = abide_stack();
                for _ in 0..n {
                    one(svc.clone(), openai_uri()).await;
                }
            }
            "tower" => {
                let svc = tower_stack();
                for _ in 0..n {
                    one(svc.clone(), openai_uri()).await;
                }
            }
            other => panic!("STACK_PROFILE is abide or tower, not {other:?}"),
        }
    });
}
