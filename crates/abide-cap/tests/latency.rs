//! The adaptive in-flight cap and latency, in virtual time: latency that varies by itself
//! is not congestion; latency that doubles and stays is.

use abide_cap::{BucketKey, ConcurrencyCapLayer, InFlight};
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// A server whose latency is `latency(n)` for its `n`-th request.
fn server(
    latency: impl Fn(u64) -> Duration + Send + Sync + 'static,
) -> impl tower::Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let count = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(latency);
    tower::service_fn(move |_req: http::Request<String>| {
        let n = count.fetch_add(1, Ordering::Relaxed);
        let wait = latency(n);
        async move {
            tokio::time::sleep(wait).await;
            Ok(http::Response::new(String::new()))
        }
    })
}

/// A deterministic draw in `[0, 1)` for request `n` (a 64-bit mix, no RNG state).
fn unit(n: u64) -> f64 {
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

async fn drive<S>(svc: S, workers: usize, until: Instant)
where
    S: tower::Service<http::Request<String>> + Clone + Send + 'static,
    S::Response: Into<http::Response<abide_cap::ResponseBody<String>>>,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let request = http::Request::get("https://api.example.com/v1/x")
                        .body(String::new())
                        .unwrap();
                    let response: http::Response<_> =
                        svc.clone().oneshot(request).await.unwrap().into();
                    let _ = response.into_body().collect().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn bucket() -> BucketKey {
    BucketKey::new("api.example.com")
}

#[tokio::test(start_paused = true)]
async fn latency_that_varies_by_itself_does_not_shrink_the_cap() {
    // 30 ms of service plus up to 120 ms on the way (a reordering proxy, answers of
    // every length): the fastest answers are five times faster than the slowest, always.
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(10, 1, 64))
        .layer(server(|n| 30 * MS + 120 * MS.mul_f64(unit(n))));
    drive(svc.clone(), 16, Instant::now() + Duration::from_secs(30)).await;
    let limit = svc.stats(&bucket()).unwrap().limit.unwrap();
    assert!(
        limit >= 16,
        "the cap fell to {limit} with nothing but noise"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_that_quadruples_cuts_the_cap_until_it_is_the_new_normal() {
    // 50 ms for the first 2,000 answers (about 3.1 s at 32 in flight), then 200 ms.
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(32, 1, 32))
        .layer(server(|n| if n < 2_000 { 50 * MS } else { 200 * MS }));
    let start = Instant::now();
    let limit = |svc: &abide_cap::ConcurrencyCap<_>| svc.stats(&bucket()).unwrap().limit.unwrap();
    drive(svc.clone(), 32, start + Duration::from_secs(2)).await;
    assert_eq!(limit(&svc), 32, "steady so far");
    drive(svc.clone(), 32, start + Duration::from_secs(4)).await;
    let cut = limit(&svc);
    assert!(
        cut < 32,
        "the cap stayed at {cut} right after latency quadrupled"
    );
    // The long-run average catches up and the busy cap grows back.
    drive(svc.clone(), 32, start + Duration::from_secs(20)).await;
    assert_eq!(limit(&svc), 32, "200 ms became the norm");
}
