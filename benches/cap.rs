//! Admission overhead of `ConcurrencyCap` against `tower::limit` and `governor`.
//!
//! Every variant wraps the same trivial inner service, so the differences are the cost of
//! admission: uncontended (one caller) and with 64 concurrent callers on a multi-thread
//! runtime. Run: `cargo bench --bench cap -- --quick`.

use abide_cap::{ConcurrencyCapLayer, InFlight};
use criterion::{criterion_group, criterion_main, Criterion};
use governor::{Quota, RateLimiter};
use http::{Request, Response};
use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::limit::{ConcurrencyLimit, RateLimit};
use tower::{Layer, Service, ServiceExt};

const CALLERS: usize = 64;

fn request() -> Request<()> {
    // Parsing a URI would cost more than some of the variants: clone a parsed one.
    static URI: std::sync::OnceLock<http::Uri> = std::sync::OnceLock::new();
    let uri = URI.get_or_init(|| http::Uri::from_static("http://api.example.com/v1/chat"));
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    request
}

/// The trivial API every variant wraps: answers at once. `headed`, it states a window in
/// IETF `RateLimit` headers far above the bench's rate: every answer teaches the cap a
/// limit, and every admission is paced against it.
#[derive(Clone, Debug)]
struct Api {
    headed: bool,
}

impl Service<Request<()>> for Api {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        let mut response = Response::new(String::new());
        if self.headed {
            let headers = response.headers_mut();
            headers.insert(
                "ratelimit-policy",
                http::HeaderValue::from_static("\"default\";q=1000000000;w=60"),
            );
            headers.insert(
                "ratelimit",
                http::HeaderValue::from_static("\"default\";r=999999999;t=60"),
            );
        }
        std::future::ready(Ok(response))
    }
}

fn inner() -> Api {
    Api { headed: false }
}

fn abide() -> abide_cap::ConcurrencyCap<Api> {
    // Limits far above what the bench reaches: this measures the bookkeeping.
    ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1 << 16))
        .layer(inner())
}

fn tower_limits() -> ConcurrencyLimit<RateLimit<Api>> {
    let rate = tower::limit::rate::Rate::new(u64::MAX / 4, Duration::from_secs(1));
    ConcurrencyLimit::new(RateLimit::new(inner(), rate), 1 << 16)
}

type Governor = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
>;

fn governor() -> Arc<Governor> {
    let quota = Quota::per_second(NonZeroU32::MAX);
    Arc::new(RateLimiter::direct(quota))
}

async fn call_governed(limiter: &Governor) -> Result<Response<String>, Infallible> {
    // A real caller would sleep on `Err`; with this quota it never happens.
    let _ = limiter.check();
    inner().oneshot(request()).await
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    // tower's `RateLimit` starts a timer when built: build it inside the runtime.
    let _guard = rt.enter();
    let mut group = c.benchmark_group("cap/uncontended");
    group.bench_function("bare", |b| {
        let svc = inner();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(svc.clone().oneshot(request()).await);
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("abide", |b| {
        let svc = abide();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(svc.clone().oneshot(request()).await);
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("abide_learned", |b| {
        // Limits far above what the bench reaches, learned from every answer.
        let svc = ConcurrencyCapLayer::new()
            .with_in_flight(InFlight::fixed(1 << 16))
            .layer(Api { headed: true });
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(svc.clone().oneshot(request()).await);
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("tower_concurrency_rate", |b| {
        let mut svc = tower_limits();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let Ok(ready) = svc.ready().await;
                    let _ = black_box(ready.call(request()).await);
                }
                start.elapsed()
            })
        });
    });
    group.bench_function("governor", |b| {
        let limiter = governor();
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let _ = black_box(call_governed(&limiter).await);
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

/// Runs `per_caller` calls on each of [`CALLERS`] tasks; returns the wall time scaled to
/// `iters` calls (`per_caller` is `iters / CALLERS` rounded up).
fn contended_run<F, Fut>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    per_caller: u64,
    make: F,
) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..CALLERS).map(|_| tokio::spawn(make())).collect();
        for t in tasks {
            let _ = t.await;
        }
        let done = (per_caller * CALLERS as u64).max(1);
        start.elapsed().mul_f64(iters as f64 / done as f64)
    })
}

fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let mut group = c.benchmark_group("cap/64_callers");
    group.bench_function("bare", |b| {
        let svc = inner();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CALLERS as u64);
            contended_run(&rt, iters, per, || {
                let svc = svc.clone();
                async move {
                    for _ in 0..per {
                        let _ = svc.clone().oneshot(request()).await;
                    }
                }
            })
        });
    });
    group.bench_function("abide", |b| {
        let svc = abide();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CALLERS as u64);
            contended_run(&rt, iters, per, || {
                let svc = svc.clone();
                async move {
                    for _ in 0..per {
                        let _ = svc.clone().oneshot(request()).await;
                    }
                }
            })
        });
    });
    group.bench_function("tower_concurrency_rate", |b| {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1 << 16));
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CALLERS as u64);
            contended_run(&rt, iters, per, || {
                // One concurrency semaphore for all callers; tower's `RateLimit` is not
                // shareable, so each caller has its own rate state.
                let rate = tower::limit::rate::Rate::new(u64::MAX / 4, Duration::from_secs(1));
                let mut svc = ConcurrencyLimit::with_semaphore(
                    RateLimit::new(inner(), rate),
                    semaphore.clone(),
                );
                async move {
                    for _ in 0..per {
                        let Ok(ready) = svc.ready().await;
                        let _ = black_box(ready.call(request()).await);
                    }
                }
            })
        });
    });
    group.bench_function("governor", |b| {
        let limiter = governor();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(CALLERS as u64);
            contended_run(&rt, iters, per, || {
                let limiter = limiter.clone();
                async move {
                    for _ in 0..per {
                        let _ = call_governed(&limiter).await;
                    }
                }
            })
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
