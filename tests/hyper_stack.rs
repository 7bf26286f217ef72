//! The whole abide stack on a hyper-util client, against the simulated API served by a
//! real hyper server on loopback, in virtual time.

use abide::cap::error::BucketExhausted;
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification};
use abide::retry::{BackoffRetryLayer, ReplayBody};
use abide::{AbideLayer, ServiceBuilderExt};
use abide_sim::{Algorithm, Outcome, ServerConfig, SimDialect, SimServer};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// The simulator behind a hyper server, with a log of what it decided, by arrival time.
struct Api {
    sim: SimServer,
    log: Mutex<Vec<(Instant, Outcome)>>,
}

impl Api {
    async fn serve(config: ServerConfig) -> (Arc<Api>, SocketAddr) {
        let api = Arc::new(Api {
            // A real wall clock, so the `Date` header agrees with the client's clock.
            sim: SimServer::with_epoch(config, 7, SystemTime::now()),
            log: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = api.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let api = served.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let api = api.clone();
                    async move {
                        let at = Instant::now();
                        let res = api.sim.clone().call(req).await?;
                        let outcome = *res.extensions().get::<Outcome>().unwrap();
                        api.log.lock().unwrap().push((at, outcome));
                        Ok::<_, BoxError>(res)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (api, addr)
    }

    fn outcomes(&self) -> Vec<(Instant, Outcome)> {
        self.log.lock().unwrap().clone()
    }

    /// The log as (seconds from the first arrival, outcome), for failure messages.
    fn timeline(&self) -> Vec<(f64, Outcome)> {
        let log = self.outcomes();
        let Some(&(first, _)) = log.first() else {
            return Vec::new();
        };
        log.iter()
            .map(|(at, o)| ((*at - first).as_secs_f64(), *o))
            .collect()
    }

    fn rate_limited_since(&self, since: Instant) -> usize {
        self.outcomes()
            .iter()
            .filter(|(at, o)| *at >= since && matches!(o, Outcome::RateLimited(_)))
            .count()
    }
}

type Inner = Client<HttpConnector, ReplayBody<Full<Bytes>>>;

fn stack(layer: AbideLayer) -> <AbideLayer as tower::Layer<Inner>>::Service {
    let client: Inner = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new().abide(layer).service(client)
}

fn get(addr: SocketAddr, i: usize) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/v1/chat/completions?n={i}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn rpm_limit(dialect: SimDialect, algorithm: Algorithm) -> ServerConfig {
    ServerConfig {
        dialect,
        algorithm,
        window: Duration::from_secs(10),
        requests_per_window: 5,
        latency: Duration::from_millis(200),
        ..ServerConfig::default()
    }
}

/// One request teaches the stack the limits; then `n` concurrent logical requests must all
/// succeed without a single 429, within a few seconds of the server's `ideal` makespan.
async fn taught_then_burst(config: ServerConfig, n: usize, ideal: Duration) {
    let (api, addr) = Api::serve(config).await;
    let client = stack(AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(1)));

    let first = client.clone().oneshot(get(addr, 0)).await.unwrap();
    assert_eq!(first.status(), 200);
    first.into_body().collect().await.unwrap();
    let taught = Instant::now();

    let mut calls = JoinSet::new();
    for i in 1..=n {
        let req = get(addr, i);
        let client = client.clone();
        calls.spawn(async move {
            let res = client.oneshot(req).await?;
            let status = res.status();
            res.into_body().collect().await?;
            Ok::<_, BoxError>(status)
        });
    }
    while let Some(done) = calls.join_next().await {
        assert_eq!(
            done.unwrap().unwrap(),
            200,
            "every logical request succeeds"
        );
    }

    let served = api
        .outcomes()
        .iter()
        .filter(|(_, o)| *o == Outcome::Served)
        .count();
    assert_eq!(served, n + 1);
    assert_eq!(
        api.rate_limited_since(taught),
        0,
        "no 429 once the limits are known: {:?}",
        api.timeline()
    );
    // Pacing, not serialising behind long pauses.
    let makespan = taught.elapsed();
    assert!(
        makespan < ideal + Duration::from_secs(6),
        "{makespan:?} vs ideal {ideal:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_openai_rpm_limit_learned_from_one_response_gives_no_more_429s() {
    // A bucket of 5 refilling one per 2 s: 4 left after the first, then one per 2 s.
    let ideal = Duration::from_secs(2 * (16 - 4));
    taught_then_burst(
        rpm_limit(SimDialect::OpenAi, Algorithm::TokenBucket),
        16,
        ideal,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_ietf_policy_limit_learned_from_one_response_gives_no_more_429s() {
    // 5 per fixed 10 s window: 17 requests need windows 0, 10, 20 and 30 s.
    let ideal = Duration::from_secs(30);
    taught_then_burst(
        rpm_limit(SimDialect::Ietf, Algorithm::FixedWindow),
        16,
        ideal,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_cold_burst_costs_at_most_one_round_of_429s_and_every_request_succeeds() {
    let (api, addr) = Api::serve(rpm_limit(SimDialect::OpenAi, Algorithm::TokenBucket)).await;
    let client = stack(AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(2)));
    let start = Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..12 {
        let req = get(addr, i);
        let client = client.clone();
        calls.spawn(async move { client.oneshot(req).await.map(|r| r.status()) });
    }
    while let Some(done) = calls.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 200);
    }
    let log = api.timeline();
    // The first answer reaches the client one service time after the first arrivals;
    // everything sent after that must have been paced.
    let first_answer = start + Duration::from_millis(200);
    assert_eq!(api.rate_limited_since(first_answer), 0, "{log:?}");
}

fn chain_has<E: std::error::Error + 'static>(err: &BoxError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

async fn expect_quota_error<B>(res: Response<B>)
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    assert_eq!(res.status(), 429);
    let verdict = res.extensions().get::<Classification>().unwrap();
    assert_eq!(verdict.class, Class::QuotaExhausted);
    assert!(!verdict.retryable);
    let Ok(body) = res.into_body().collect().await else {
        panic!("the quota error's body reaches the caller");
    };
    let body = body.to_bytes();
    assert!(
        body.windows(18).any(|w| w == b"insufficient_quota"),
        "{body:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_quota_stops_the_stack_sending_and_returns_the_real_quota_error() {
    let cool_off = Duration::from_secs(30);
    let (api, addr) = Api::serve(ServerConfig {
        dialect: SimDialect::OpenAi,
        quota_requests: 3,
        ..ServerConfig::default()
    })
    .await;
    let client = stack(
        AbideLayer::new()
            .with_retry(BackoffRetryLayer::new().with_seed(3))
            .with_cap(ConcurrencyCapLayer::new().with_cool_off(cool_off)),
    );
    for i in 0..3 {
        let res = client.clone().oneshot(get(addr, i)).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    // The first request past the quota gets the server's own answer, sent once.
    let res = client.clone().oneshot(get(addr, 3)).await.unwrap();
    expect_quota_error(res).await;
    assert_eq!(api.outcomes().len(), 4, "the quota error is not retried");
    let exhausted_at = Instant::now();

    // Twelve more callers over 180 s: only the probes after each cool-off reach the server.
    let mut probes = 0;
    let mut refused = 0;
    for i in 0..12 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        match client.clone().oneshot(get(addr, 4 + i)).await {
            Ok(res) => {
                expect_quota_error(res).await;
                probes += 1;
            }
            Err(e) => {
                assert!(chain_has::<BucketExhausted>(&e), "{e}");
                refused += 1;
            }
        }
    }
    let elapsed = exhausted_at.elapsed();
    let sent_after = api.outcomes().len() - 4;
    assert_eq!(sent_after, probes, "what reached the server was a probe");
    assert!(probes >= 1, "a probe goes after the cool-off");
    let bound = (elapsed.as_secs() / cool_off.as_secs()) as usize;
    assert!(
        probes <= bound,
        "{probes} probes in {elapsed:?} (cool-off {cool_off:?})"
    );
    assert_eq!(probes + refused, 12);
    assert!(api
        .outcomes()
        .iter()
        .skip(3)
        .all(|(_, o)| *o == Outcome::QuotaExhausted));
}
