//! The abide stack on a hyper client against the simulated API served on 127.0.0.1, in
//! real time: 60 requests against a 20-requests-per-2-seconds OpenAI-style limit, first
//! with a single attempt each (what a client without abide sees), then through abide.
//!
//! ```sh
//! cargo run --example loopback
//! ```
//!
//! It takes about six seconds: the quota, not the client, sets the pace.

use abide::retry::ReplayBody;
use abide::{AbideLayer, ServiceBuilderExt};
use abide_sim::{Outcome, ServerConfig, SimDialect, SimServer};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

const REQUESTS: usize = 60;

/// What the server decided, counted.
#[derive(Default)]
struct Counts {
    served: AtomicUsize,
    rate_limited: AtomicUsize,
}

/// Serves the simulated API on an ephemeral loopback port; returns its address.
async fn serve(counts: Arc<Counts>) -> Result<SocketAddr, BoxError> {
    let config = ServerConfig {
        dialect: SimDialect::OpenAi,
        window: Duration::from_secs(2),
        requests_per_window: 20,
        latency: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let sim = SimServer::with_epoch(config, 1, SystemTime::now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (sim, counts) = (sim.clone(), counts.clone());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (mut sim, counts) = (sim.clone(), counts.clone());
                async move {
                    let response = sim.call(req).await?;
                    match response.extensions().get::<Outcome>() {
                        Some(Outcome::Served) => counts.served.fetch_add(1, Ordering::Relaxed),
                        Some(Outcome::RateLimited(_)) => {
                            counts.rate_limited.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => 0,
                    };
                    Ok::<_, BoxError>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok(addr)
}

fn request(addr: SocketAddr, i: usize) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(r#"{{"n":{i}}}"#))))
        .expect("a valid request")
}

/// Sends every request at once through `client`; returns how many got a 2xx.
async fn run<S, B>(client: S, addr: SocketAddr) -> usize
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Display + Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
    let mut calls = JoinSet::new();
    for i in 0..REQUESTS {
        let client = client.clone();
        calls.spawn(async move {
            match client.oneshot(request(addr, i)).await {
                // Read the body to its end so the connection (and the cap's permit) is freed.
                Ok(response) => {
                    let ok = response.status().is_success();
                    let _ = response.into_body().collect().await;
                    ok
                }
                Err(e) => {
                    eprintln!("request {i} failed: {e}");
                    false
                }
            }
        });
    }
    let mut ok = 0;
    while let Some(done) = calls.join_next().await {
        ok += usize::from(done.unwrap_or(false));
    }
    ok
}

fn report(name: &str, ok: usize, counts: &Counts, started: Instant) {
    println!(
        "{name:<14} {ok:>2}/{REQUESTS} succeeded, {:>2} answered 429, {:.1} s",
        counts.rate_limited.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    println!("{REQUESTS} requests against 20 requests per 2 s (OpenAI headers), on 127.0.0.1");

    let counts = Arc::new(Counts::default());
    let addr = serve(counts.clone()).await?;
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = Instant::now();
    let ok = run(plain, addr).await;
    report("one attempt", ok, &counts, started);

    // A fresh server (a fresh quota) for abide.
    let counts = Arc::new(Counts::default());
    let addr = serve(counts.clone()).await?;
    let inner = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let abide = ServiceBuilder::new()
        .abide(AbideLayer::new())
        .service(inner);
    let started = Instant::now();
    let ok = run(abide, addr).await;
    report("abide", ok, &counts, started);
    Ok(())
}
