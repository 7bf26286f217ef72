//! Success-path overhead of `BackoffRetry` against `tower::retry::Retry` with an equivalent
//! policy (retry 429 and 5xx up to three times, cloning the request up front).
//!
//! Both wrap the same in-memory service answering 200 at once, so the numbers are the cost
//! of the retry layers themselves. Cases: a POST with a JSON body and the headers an LLM
//! API call carries; the same with the classifier's verdict already in the response (as
//! in the full stack); a GET with an empty body.
//!
//! Run: `cargo bench --bench retry -- --quick`. The last lines print the ratios.

use abide_classify::Classification;
use abide_retry::{BackoffRetryLayer, ReplayBody};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tower::retry::{Policy, Retry};
use tower::{Layer, Service, ServiceExt};

const JSON: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarize the attached notes in three bullet points, keeping names."}],"max_tokens":256}"#;

fn post() -> Request<Full<Bytes>> {
    Request::post("https://api.openai.com/v1/chat/completions")
        .header("authorization", "Bearer sk-test-0123456789abcdef")
        .header("content-type", "application/json")
        .header("user-agent", "abide-bench/0.1")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from_static(JSON.as_bytes())))
        .unwrap()
}

fn get() -> Request<Full<Bytes>> {
    Request::get("https://api.github.com/repos/abide-rs/abide")
        .header("authorization", "Bearer ghp_test")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn ok(verdict: bool) -> Response<Full<Bytes>> {
    let mut res = Response::builder()
        .header("content-type", "application/json")
        .header("x-ratelimit-remaining-requests", "499")
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
        .unwrap();
    if verdict {
        res.extensions_mut().insert(Classification::success());
    }
    res
}

/// The tower policy equivalent to the layer's default on the success path.
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

/// Time for `iters` sequential calls of `make()` through `service`.
async fn drive<S, R>(mut service: S, make: fn() -> R, iters: u64) -> Duration
where
    S: Service<R>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let res = service.ready().await.unwrap().call(make()).await.unwrap();
        black_box(res);
    }
    start.elapsed()
}

fn abide(
    verdict: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = abide_retry::BoxError,
> + Clone {
    let inner = tower::service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(ok(verdict)))
    });
    BackoffRetryLayer::new().with_seed(1).layer(inner)
}

fn tower_retry() -> Retry<
    StatusPolicy,
    impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
> {
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(ok(false)))
    });
    Retry::new(StatusPolicy { retries_left: 3 }, inner)
}

fn bare(
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    tower::service_fn(|req: Request<Full<Bytes>>| {
        black_box(&req);
        ready(Ok::<_, Infallible>(ok(false)))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

type Make = fn() -> Request<Full<Bytes>>;

fn success_path(c: &mut Criterion) {
    let rt = runtime();
    let cases: [(&str, Make, bool); 3] = [
        ("post_json", post, false),
        ("post_json_with_verdict", post, true),
        ("get_empty", get, false),
    ];
    for (name, make, verdict) in cases {
        let mut group = c.benchmark_group(format!("retry_success/{name}"));
        group.bench_function("bare_service", |b| {
            b.iter_custom(|iters| rt.block_on(drive(bare(), make, iters)))
        });
        group.bench_function("tower_retry", |b| {
            b.iter_custom(|iters| rt.block_on(drive(tower_retry(), make, iters)))
        });
        group.bench_function("abide_backoff_retry", |b| {
            b.iter_custom(|iters| rt.block_on(drive(abide(verdict), make, iters)))
        });
        group.finish();
    }
}

/// Interleaved runs of both layers, best of five, printed as a ratio.
fn ratios(_c: &mut Criterion) {
    const ITERS: u64 = 100_000;
    let rt = runtime();
    let cases: [(&str, Make, bool); 3] = [
        ("post_json", post, false),
        ("post_json_with_verdict", post, true),
        ("get_empty", get, false),
    ];
    for (name, make, verdict) in cases {
        let (mut ours, mut theirs, mut none) = (Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            ours = ours.min(rt.block_on(drive(abide(verdict), make, ITERS)));
            theirs = theirs.min(rt.block_on(drive(tower_retry(), make, ITERS)));
            none = none.min(rt.block_on(drive(bare(), make, ITERS)));
        }
        let per = |d: Duration| d.as_nanos() as f64 / ITERS as f64;
        println!(
            "ratio {name}: abide {:.0} ns, tower::retry {:.0} ns, bare {:.0} ns per call; \
             abide/tower = {:.2}; overhead over bare: abide {:.0} ns, tower {:.0} ns",
            per(ours),
            per(theirs),
            per(none),
            per(ours) / per(theirs),
            per(ours) - per(none),
            per(theirs) - per(none),
        );
    }
}

criterion_group!(benches, success_path, ratios);
criterion_main!(benches);
