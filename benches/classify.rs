//! Per-response cost of `QuotaClassifier` against a plain passthrough in the same run.
//!
//! Two responses: a 200 success (no body peek) and an OpenAI-style 429 with a JSON body
//! (peeked, parsed, classified, replayed). Each iteration calls the service, awaits the
//! response and reads its body to the end, with and without the classifier.
//!
//! Run: `cargo bench --bench classify -- --quick`

use abide_classify::{Classification, QuotaClassifierLayer};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tower::{Layer, Service};

const QUOTA_429: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbC123 on tokens per min (TPM): Limit 30000, Used 29250, Requested 1500. Please try again in 3.89s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

/// The inner service: hands out a clone of a prepared response.
#[derive(Clone)]
struct Canned(Response<Full<Bytes>>);

impl Service<Request<()>> for Canned {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        let mut r = Response::new(self.0.body().clone());
        *r.status_mut() = self.0.status();
        *r.headers_mut() = self.0.headers().clone();
        ready(Ok(r))
    }
}

fn success() -> Response<Full<Bytes>> {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-ratelimit-limit-requests", "500")
        .header("x-ratelimit-remaining-requests", "499")
        .header("x-ratelimit-reset-requests", "120ms")
        .body(Full::new(Bytes::from_static(
            br#"{"id":"chatcmpl-1","object":"chat.completion"}"#,
        )))
        .unwrap()
}

fn rate_limited() -> Response<Full<Bytes>> {
    Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .header("x-ratelimit-limit-tokens", "30000")
        .header("x-ratelimit-remaining-tokens", "0")
        .header("x-ratelimit-reset-tokens", "3.89s")
        .body(Full::new(Bytes::from_static(QUOTA_429.as_bytes())))
        .unwrap()
}

/// Runs `iters` responses through `svc` and reads each body to the end.
async fn drive<S, B>(svc: &mut S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body + Unpin,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let res = svc.call(Request::new(())).await.unwrap();
        let seen = res.extensions().get::<Classification>().is_some();
        let body = res.into_body().collect().await.unwrap();
        black_box((seen, body));
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for (name, response) in [("success", success()), ("429_json", rate_limited())] {
        let mut group = c.benchmark_group(name);
        let mut plain = Canned(response.clone());
        let mut classified = QuotaClassifierLayer::new().layer(Canned(response));
        group.bench_function("passthrough", |b| {
            b.iter_custom(|iters| rt.block_on(drive(&mut plain, iters)))
        });
        group.bench_function("classified", |b| {
            b.iter_custom(|iters| rt.block_on(drive(&mut classified, iters)))
        });
        group.finish();
    }
    // What the success path spends its time on: reading the rate-limit headers.
    let headers = success().headers().clone();
    let reader = abide_headers::RateLimitHeaders::new();
    c.bench_function("success/extract_snapshot_only", |b| {
        b.iter(|| black_box(reader.extract(black_box(&headers))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
