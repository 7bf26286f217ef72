//! An axum app whose outbound client uses abide, and which serves its own limits with
//! `abide::headers::render`.
//!
//! - `GET /answer` calls a rate-limited upstream (the simulated OpenAI API on 127.0.0.1)
//!   through `AbideLayer::openai()` on a hyper-util client kept in the app state, and
//!   turns the request's `abide::Outcome` into the app's answer (503 + `Retry-After` when
//!   the upstream's quota is gone, 504 on a deadline, ...).
//! - `GET /limits` tells the app's own callers their limit in IETF `RateLimit` headers.
//!
//! ```sh
//! cargo run --example axum_app
//! ```
//!
//! It starts both on loopback, calls them as a plain client would, prints what came back
//! and exits. About one second.

use abide::headers::{render, Dialect, Limit, RateLimitHeaders, RateLimitSnapshot, Scope};
use abide::{AbideLayer, AbideService, Outcome, ReplayBody};
use abide_sim::{ServerConfig, SimDialect, SimServer};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The app's own limit for its callers, per minute.
const APP_LIMIT: u64 = 100;

type Upstream = AbideService<Client<HttpConnector, ReplayBody<Full<Bytes>>>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    base: String,
    served: Arc<AtomicU64>,
}

async fn answer(State(state): State<AppState>) -> (StatusCode, HeaderMap, String) {
    state.served.fetch_add(1, Ordering::Relaxed);
    let request = Request::post(format!("{}/v1/chat/completions", state.base))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4o-mini"}"#)))
        .expect("a valid request");
    let result = state.upstream.oneshot(request).await;
    let mut headers = HeaderMap::new();
    match Outcome::of(&result) {
        Outcome::Success { attempts } => {
            headers.insert("x-upstream-attempts", attempts.into());
            // Read the body to its end: that frees the cap's permit.
            let body = match result {
                Ok(response) => response.into_body().collect().await.map(|b| b.to_bytes()),
                Err(_) => Ok(Bytes::new()),
            };
            match body {
                Ok(body) => (
                    StatusCode::OK,
                    headers,
                    format!("{} bytes from upstream", body.len()),
                ),
                Err(e) => (StatusCode::BAD_GATEWAY, headers, e.to_string()),
            }
        }
        Outcome::QuotaExhausted { retry_in: wait } => unavailable(headers, wait),
        Outcome::WaitTooLong { wait, .. } => unavailable(headers, Some(wait)),
        Outcome::Deadline { .. } | Outcome::TimedOut { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            headers,
            "upstream too slow".into(),
        ),
        other => (StatusCode::BAD_GATEWAY, headers, other.to_string()),
    }
}

/// The upstream cannot serve now: tell the app's caller when to come back.
fn unavailable(mut headers: HeaderMap, wait: Option<Duration>) -> (StatusCode, HeaderMap, String) {
    if let Some(wait) = wait {
        headers.insert("retry-after", wait.as_secs().max(1).into());
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        headers,
        "upstream quota exhausted".into(),
    )
}

/// The app's limit, rendered in the IETF dialect for its callers.
async fn limits(State(state): State<AppState>) -> (StatusCode, HeaderMap) {
    let mut limit = Limit::new(Scope::Requests, Dialect::Ietf);
    limit.limit = Some(APP_LIMIT);
    limit.remaining = Some(APP_LIMIT.saturating_sub(state.served.load(Ordering::Relaxed)));
    limit.reset = Some(Duration::from_secs(60));
    limit.window = Some(Duration::from_secs(60));
    let snapshot = RateLimitSnapshot::new().with_limit(limit);
    let mut headers = HeaderMap::new();
    match render(&snapshot, Dialect::Ietf, SystemTime::now(), &mut headers) {
        Ok(()) => (StatusCode::OK, headers),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, HeaderMap::new()),
    }
}

/// The rate-limited upstream: the simulated OpenAI API, 10 requests per second.
async fn upstream() -> Result<String, BoxError> {
    let config = ServerConfig {
        dialect: SimDialect::OpenAi,
        window: Duration::from_secs(1),
        requests_per_window: 10,
        latency: Duration::from_millis(20),
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = SimServer::with_epoch(config, 3, SystemTime::now());
    tokio::spawn(abide_sim::http::serve(
        listener,
        server,
        std::future::pending(),
    ));
    Ok(base)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let base = upstream().await?;
    let http = Client::builder(TokioExecutor::new()).build_http();
    let state = AppState {
        upstream: ServiceBuilder::new()
            .layer(AbideLayer::openai())
            .service(http),
        base,
        served: Arc::default(),
    };
    let app = Router::new()
        .route("/answer", get(answer))
        .route("/limits", get(limits))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The app's callers: plain hyper, no abide.
    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let get = |path: &str| {
        Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("a valid request")
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..15 {
        let (caller, request) = (caller.clone(), get("/answer"));
        calls.spawn(async move { caller.request(request).await });
    }
    let mut ok = 0;
    while let Some(done) = calls.join_next().await {
        let response = done??;
        ok += usize::from(response.status() == StatusCode::OK);
    }
    println!("/answer: {ok}/15 answered 200 through a 10-per-second upstream");

    let response = caller.request(get("/limits")).await?;
    for (name, value) in response.headers() {
        if name.as_str().starts_with("ratelimit") {
            println!("/limits: {name}: {}", value.to_str().unwrap_or("?"));
        }
    }
    let snapshot = RateLimitHeaders::new().extract(response.headers());
    println!(
        "read back: {:?} remaining",
        snapshot.limits().first().and_then(|l| l.remaining)
    );
    if ok != 15 {
        return Err("the upstream's limit lost requests".into());
    }
    Ok(())
}
