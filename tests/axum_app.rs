//! abide inside an axum app: a handler calling a rate-limited upstream through an
//! abide-wrapped hyper client kept in the app state, and a handler serving its own limits
//! with `abide::headers::render` that an abide client reads back. Real sockets on
//! loopback, virtual time.

use abide::headers::{render, Dialect, Limit, RateLimitSnapshot, Scope};
use abide::retry::{Attempts, BackoffRetryLayer, ReplayBody};
use abide::{AbideLayer, ServiceBuilderExt};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

type Inner = Client<HttpConnector, ReplayBody<Full<Bytes>>>;
type Abide = <AbideLayer as tower::Layer<Inner>>::Service;

fn abide_client(seed: u64) -> Abide {
    let client: Inner = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .abide(AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(seed)))
        .service(client)
}

/// A rate-limited upstream API: answers from a script, records when each request arrived.
#[derive(Default)]
struct Upstream {
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    arrivals: Mutex<Vec<Instant>>,
}

impl Upstream {
    async fn start(script: Vec<(u16, Option<&'static str>)>) -> (Arc<Upstream>, SocketAddr) {
        let upstream = Arc::new(Upstream {
            script: Mutex::new(script.into()),
            ..Upstream::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = upstream.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let up = up.clone();
                let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let up = up.clone();
                    async move {
                        up.arrivals.lock().unwrap().push(Instant::now());
                        let (status, retry_after) =
                            up.script.lock().unwrap().pop_front().unwrap_or((200, None));
                        let mut res = Response::builder().status(status);
                        if let Some(wait) = retry_after {
                            res = res.header("retry-after", wait);
                        }
                        let body = if status == 200 {
                            "upstream ok"
                        } else {
                            "slow down"
                        };
                        Ok::<_, std::convert::Infallible>(
                            res.body(Full::new(Bytes::from_static(body.as_bytes())))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (upstream, addr)
    }

    fn gaps(&self) -> Vec<Duration> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn serve_app(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// What a plain (abide-free) caller of the app gets.
async fn call_app(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    let caller: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let res = caller
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[derive(Clone)]
struct ProxyState {
    client: Abide,
    upstream: SocketAddr,
}

async fn proxy(State(state): State<ProxyState>) -> (StatusCode, HeaderMap, String) {
    let req = Request::get(format!("http://{}/v1/data", state.upstream))
        .body(Full::new(Bytes::new()))
        .unwrap();
    match state.client.oneshot(req).await {
        Ok(res) => {
            let mut headers = HeaderMap::new();
            if let Some(attempts) = res.extensions().get::<Attempts>() {
                headers.insert("x-upstream-attempts", attempts.count.into());
            }
            let status = res.status();
            let body = res.into_body().collect().await.map(|b| b.to_bytes());
            match body {
                Ok(body) => (status, headers, String::from_utf8_lossy(&body).into_owned()),
                Err(e) => (StatusCode::BAD_GATEWAY, headers, e.to_string()),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, HeaderMap::new(), e.to_string()),
    }
}

#[tokio::test(start_paused = true)]
async fn an_axum_handler_calling_a_rate_limited_upstream_waits_exactly_as_asked() {
    let (upstream, upstream_addr) =
        Upstream::start(vec![(429, Some("2")), (429, Some("3")), (200, None)]).await;
    let app = Router::new()
        .route("/proxy", get(proxy))
        .with_state(ProxyState {
            client: abide_client(1),
            upstream: upstream_addr,
        });
    let addr = serve_app(app).await;

    let (status, headers, body) = call_app(addr, "/proxy").await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(body, "upstream ok");
    assert_eq!(headers["x-upstream-attempts"], "3");

    let gaps = upstream.gaps();
    assert_eq!(gaps.len(), 2, "two retries, no more");
    for (gap, asked) in gaps.iter().zip([2, 3]) {
        let asked = Duration::from_secs(asked);
        assert!(*gap >= asked, "retried after {gap:?}, asked {asked:?}");
        // The wait is the server's, not a long backoff on top of it.
        assert!(
            *gap < asked + Duration::from_secs(1),
            "{gap:?} vs {asked:?}"
        );
    }
}

/// An app that enforces `LIMIT` requests per fixed `WINDOW` and says so in IETF headers
/// rendered by abide.
struct Limited {
    start: Instant,
    used: Mutex<(u64, u64)>,
    rejected: Mutex<u64>,
}

const LIMIT: u64 = 3;
const WINDOW: Duration = Duration::from_secs(10);

async fn limited(State(state): State<Arc<Limited>>) -> (StatusCode, HeaderMap, &'static str) {
    let elapsed = state.start.elapsed();
    let window = elapsed.as_nanos() / WINDOW.as_nanos();
    let window_index = u64::try_from(window).unwrap_or(u64::MAX);
    let reset = WINDOW * (window_index as u32 + 1) - elapsed;
    let (allowed, remaining) = {
        let mut used = state.used.lock().unwrap();
        if used.0 != window_index {
            *used = (window_index, 0);
        }
        let allowed = used.1 < LIMIT;
        if allowed {
            used.1 += 1;
        }
        (allowed, LIMIT - used.1)
    };
    let mut limit = Limit::new(Scope::Requests, Dialect::Ietf);
    limit.limit = Some(LIMIT);
    limit.remaining = Some(remaining);
    limit.reset = Some(reset);
    limit.window = Some(WINDOW);
    let mut snapshot = RateLimitSnapshot::new();
    snapshot.push(limit);
    if !allowed {
        *state.rejected.lock().unwrap() += 1;
        snapshot.set_retry_after(Some(reset));
    }
    let mut headers = HeaderMap::new();
    render(&snapshot, Dialect::Ietf, SystemTime::now(), &mut headers).unwrap();
    if allowed {
        (StatusCode::OK, headers, "served")
    } else {
        (StatusCode::TOO_MANY_REQUESTS, headers, "limited")
    }
}

#[tokio::test(start_paused = true)]
async fn an_axum_handler_serving_rendered_limits_is_read_back_and_obeyed_by_an_abide_client() {
    let state = Arc::new(Limited {
        start: Instant::now(),
        used: Mutex::new((0, 0)),
        rejected: Mutex::new(0),
    });
    let app = Router::new()
        .route("/limited", get(limited))
        .with_state(state.clone());
    let addr = serve_app(app).await;
    let client = abide_client(2);
    let req = || {
        Request::get(format!("http://{addr}/limited"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // The headers the handler rendered parse back into the snapshot it rendered.
    let first = client.clone().oneshot(req()).await.unwrap();
    assert_eq!(first.status(), 200);
    let snapshot = first.extensions().get::<RateLimitSnapshot>().unwrap();
    // IETF names policies; the scope comes back as the policy's name.
    let [requests] = snapshot.limits() else {
        panic!("one policy rendered, one parsed: {snapshot:?}");
    };
    assert_eq!(requests.limit, Some(LIMIT));
    assert_eq!(requests.remaining, Some(LIMIT - 1));
    assert_eq!(requests.window, Some(WINDOW));
    assert!(requests.reset.is_some_and(|r| r <= WINDOW), "{requests:?}");

    // And the client obeys them: ten concurrent requests, no 429.
    let mut calls = JoinSet::new();
    for _ in 0..10 {
        let (client, req) = (client.clone(), req());
        calls.spawn(async move { client.oneshot(req).await.map(|r| r.status()) });
    }
    while let Some(done) = calls.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 200);
    }
    assert_eq!(
        *state.rejected.lock().unwrap(),
        0,
        "the app never had to say 429"
    );
    // 11 requests at 3 per window need windows 0, 10, 20 and 30 s.
    assert!(state.start.elapsed() >= Duration::from_secs(30));
    assert!(state.start.elapsed() < Duration::from_secs(40));

    // The plain caller sees the rendered headers too.
    let (_, headers, _) = call_app(addr, "/limited").await;
    assert!(headers.contains_key("ratelimit-policy"), "{headers:?}");
}
