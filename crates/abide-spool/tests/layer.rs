//! SpoolLayer and its replayer against a fake API whose quota runs out and comes back.

mod support;

use abide_classify::{Class, Classification};
use abide_spool::{BodyTooLarge, Deferrable, Deferred, Spool, SpoolBody, SpoolConfig, SpoolLayer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::TempDir;
use tower::{Layer, Service, ServiceExt};

type BoxError = abide_spool::BoxError;

#[derive(Default)]
struct Api {
    exhausted: bool,
    /// (path, idempotency key, body) of every request that reached the API.
    seen: Vec<(String, Option<String>, Bytes)>,
}

/// A fake API: quota-exhausted responses while `exhausted`, 400 for `/bad`, 200 otherwise.
fn api(
    state: Arc<Mutex<Api>>,
) -> impl Service<
    Request<SpoolBody<Full<Bytes>>>,
    Response = Response<()>,
    Error = BoxError,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request<SpoolBody<Full<Bytes>>>| {
        let state = state.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| Box::new(e) as BoxError)?
                .to_bytes();
            let key = parts
                .headers
                .get("idempotency-key")
                .map(|v| v.to_str().unwrap().to_owned());
            let mut s = state.lock().unwrap();
            s.seen.push((parts.uri.path().to_owned(), key, body));
            let (status, class) = if s.exhausted {
                (StatusCode::TOO_MANY_REQUESTS, Class::QuotaExhausted)
            } else if parts.uri.path() == "/bad" {
                (StatusCode::BAD_REQUEST, Class::ClientError)
            } else {
                (StatusCode::OK, Class::Success)
            };
            let mut response = Response::new(());
            *response.status_mut() = status;
            response
                .extensions_mut()
                .insert(Classification::new(class, "fake api"));
            Ok::<_, BoxError>(response)
        }
    })
}

fn deferrable(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut r = Request::post(format!("http://127.0.0.1:9{path}"))
        .header("authorization", "Bearer sk-live-SECRET")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    r.extensions_mut().insert(Deferrable);
    r
}

fn setup(name: &str) -> (TempDir, SpoolLayer, Arc<Mutex<Api>>) {
    let dir = TempDir::new(name);
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    (
        dir,
        SpoolLayer::new(spool),
        Arc::new(Mutex::new(Api::default())),
    )
}

#[tokio::test]
async fn a_deferrable_request_the_quota_refuses_is_spooled_and_named_deferred() {
    let (_dir, layer, state) = setup("defer");
    state.lock().unwrap().exhausted = true;
    let client = layer.layer(api(state.clone()));
    let err = client
        .oneshot(deferrable("/v1/events", "{\"a\":1}"))
        .await
        .unwrap_err();
    let deferred = err.downcast_ref::<Deferred>().expect("a Deferred outcome");
    let entry = layer.spool().get(deferred.id()).unwrap();
    assert_eq!(entry.body, "{\"a\":1}");
    assert_eq!(entry.uri.path(), "/v1/events");
    assert!(entry.headers.get("authorization").is_none());
    // The live attempt already carried the key the replay will send.
    let seen = state.lock().unwrap().seen.clone();
    assert_eq!(seen[0].1.as_deref(), Some(deferred.idempotency_key()));
    assert!(
        deferred.reason().contains("quota_exhausted"),
        "{}",
        deferred.reason()
    );
}

#[tokio::test]
async fn a_request_not_marked_deferrable_fails_as_before() {
    let (_dir, layer, state) = setup("plain");
    state.lock().unwrap().exhausted = true;
    let client = layer.layer(api(state.clone()));
    let mut request = deferrable("/v1/events", "x");
    request.extensions_mut().remove::<Deferrable>();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(layer.spool().is_empty());
}

#[tokio::test]
async fn a_deferrable_request_that_succeeds_is_not_spooled() {
    let (_dir, layer, state) = setup("success");
    let client = layer.layer(api(state.clone()));
    let response = client.oneshot(deferrable("/v1/events", "x")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(layer.spool().is_empty());
}

#[tokio::test]
async fn a_predicate_can_mark_requests_deferrable() {
    let (_dir, layer, state) = setup("predicate");
    let layer = layer.with_predicate(|parts| parts.uri.path().starts_with("/v1/metrics"));
    state.lock().unwrap().exhausted = true;
    let client = layer.layer(api(state.clone()));
    let mut request = deferrable("/v1/metrics/cpu", "x");
    request.extensions_mut().remove::<Deferrable>();
    let err = client.clone().oneshot(request).await.unwrap_err();
    assert!(err.is::<Deferred>());
    // The extension alone no longer decides.
    let response = client.oneshot(deferrable("/v1/other", "x")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(layer.spool().len(), 1);
}

#[tokio::test]
async fn the_caps_wait_too_long_error_defers_too() {
    let (_dir, layer, _state) = setup("waittoolong");
    let refusing = tower::service_fn(|_req: Request<SpoolBody<Full<Bytes>>>| async {
        Err::<Response<()>, BoxError>(Box::new(abide_cap::error::WaitTooLong::new(
            Duration::from_secs(3600),
            Duration::from_secs(60),
        )))
    });
    let err = layer
        .layer(refusing)
        .oneshot(deferrable("/v1/events", "x"))
        .await
        .unwrap_err();
    assert!(err.is::<Deferred>(), "{err}");
    assert_eq!(layer.spool().len(), 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_sent_whole_and_fails_with_body_too_large() {
    let (_dir, layer, state) = setup("toolarge");
    let layer = layer.with_max_body(4);
    let refusing = tower::service_fn(move |req: Request<SpoolBody<Full<Bytes>>>| {
        let state = state.clone();
        async move {
            let body = req
                .into_body()
                .collect()
                .await
                .map_err(|e| Box::new(e) as BoxError)?;
            state
                .lock()
                .unwrap()
                .seen
                .push((String::new(), None, body.to_bytes()));
            Err::<Response<()>, BoxError>(Box::new(abide_cap::error::WaitTooLong::new(
                Duration::from_secs(3600),
                Duration::from_secs(60),
            )))
        }
    });
    let state_view = layer.clone();
    let err = layer
        .layer(refusing)
        .oneshot(deferrable("/v1/events", "0123456789"))
        .await
        .unwrap_err();
    let too_large = err.downcast_ref::<BodyTooLarge>().expect("BodyTooLarge");
    assert_eq!(too_large.limit(), 4);
    assert!(std::error::Error::source(too_large).is_some());
    assert!(state_view.spool().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_replayer_delivers_in_order_removes_after_success_and_dead_letters_permanent_failures()
{
    let (_dir, layer, state) = setup("replay");
    state.lock().unwrap().exhausted = true;
    let client = layer.layer(api(state.clone()));
    for (path, body) in [("/a", "1"), ("/bad", "2"), ("/a", "3")] {
        let err = client
            .clone()
            .oneshot(deferrable(path, body))
            .await
            .unwrap_err();
        assert!(err.is::<Deferred>());
    }
    let keys: Vec<_> = layer
        .spool()
        .entries()
        .iter()
        .map(|e| e.idempotency_key.clone())
        .collect();
    let mut replayer = layer.replayer(api(state.clone()));
    // Still exhausted: nothing leaves the spool, and the bucket is tried once per pass.
    state.lock().unwrap().seen.clear();
    let pass = replayer.run_once().await.unwrap();
    assert_eq!((pass.delivered, pass.left), (0, 3));
    assert_eq!(state.lock().unwrap().seen.len(), 1);
    assert_eq!(layer.spool().len(), 3);
    // Quota back.
    state.lock().unwrap().exhausted = false;
    state.lock().unwrap().seen.clear();
    let report = replayer
        .run_until_empty(Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((report.delivered, report.dead_lettered), (2, 1));
    assert!(layer.spool().is_empty());
    let seen = state.lock().unwrap().seen.clone();
    let bodies: Vec<_> = seen.iter().map(|s| s.2.clone()).collect();
    assert_eq!(bodies, vec!["1", "2", "3"]);
    let sent_keys: Vec<_> = seen.iter().map(|s| s.1.clone().unwrap()).collect();
    assert_eq!(sent_keys, keys);
    let dead = layer.spool().dead_letters();
    assert_eq!(dead[0].entry.uri.path(), "/bad");
    assert!(
        dead[0].verdict.contains("client_error"),
        "{}",
        dead[0].verdict
    );
}

/// A spool of `n` entries alternating between the buckets "slow" and "fast".
fn two_buckets(name: &str, n: u32) -> (TempDir, SpoolLayer) {
    let dir = TempDir::new(name);
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    for i in 0..n {
        let mut entry = support::request(i);
        entry.bucket = if i % 2 == 0 { "slow" } else { "fast" }.into();
        spool.push(entry).unwrap();
    }
    (dir, SpoolLayer::new(spool))
}

/// An API that holds every request of bucket "slow" for 10 s (as a cap pacing that bucket
/// would) and answers the others at once; records (bucket, body, when) of each delivery.
fn paced_api(
    log: Arc<Mutex<Vec<(String, Bytes, Duration)>>>,
) -> impl Service<Request<SpoolBody<Full<Bytes>>>, Response = Response<()>, Error = BoxError> + Clone
{
    let start = tokio::time::Instant::now();
    tower::service_fn(move |req: Request<SpoolBody<Full<Bytes>>>| {
        let log = log.clone();
        async move {
            let bucket = req
                .extensions()
                .get::<abide_cap::BucketKey>()
                .unwrap()
                .as_str()
                .to_owned();
            if bucket == "slow" {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            let body = req
                .into_body()
                .collect()
                .await
                .map_err(|e| Box::new(e) as BoxError)?
                .to_bytes();
            log.lock().unwrap().push((bucket, body, start.elapsed()));
            Ok::<_, BoxError>(Response::new(()))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_slow_bucket_delays_only_its_own_entries_and_each_bucket_keeps_its_order() {
    let (_dir, layer) = two_buckets("lanes", 10);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut replayer = layer.replayer(paced_api(log.clone()));
    let report = replayer.run_once().await.unwrap();
    assert_eq!((report.delivered, report.left), (10, 0));
    let log = log.lock().unwrap().clone();
    let of = |bucket: &str| -> Vec<(Bytes, Duration)> {
        log.iter()
            .filter(|l| l.0 == bucket)
            .map(|l| (l.1.clone(), l.2))
            .collect()
    };
    let fast = of("fast");
    let slow = of("slow");
    // The fast bucket did not wait behind the slow one...
    assert!(
        fast.iter().all(|(_, at)| *at < Duration::from_secs(1)),
        "{fast:?}"
    );
    // ...and the slow one went at its own pace, one at a time.
    let slow_times: Vec<u64> = slow.iter().map(|(_, at)| at.as_secs()).collect();
    assert_eq!(slow_times, vec![10, 20, 30, 40, 50]);
    // Oldest first within each bucket.
    let bodies = |l: &[(Bytes, Duration)]| l.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    let expect = |from: u32| {
        (0..5)
            .map(|k| Bytes::from(format!("{{\"n\":{}}}", from + 2 * k)))
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&fast), expect(1));
    assert_eq!(bodies(&slow), expect(0));
}

#[tokio::test(start_paused = true)]
async fn one_lane_at_a_time_sends_the_buckets_one_after_the_other() {
    let (_dir, layer) = two_buckets("onelane", 4);
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut replayer = layer
        .replayer(paced_api(log.clone()))
        .with_concurrent_buckets(std::num::NonZeroUsize::new(1).unwrap());
    replayer.run_once().await.unwrap();
    let order: Vec<(String, u64)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|l| (l.0.clone(), l.2.as_secs()))
        .collect();
    // The slow bucket's oldest entry is the oldest of all: its lane goes first, whole.
    let expect = [("slow", 10), ("slow", 20), ("fast", 20), ("fast", 20)];
    assert_eq!(
        order,
        expect
            .iter()
            .map(|(b, t)| (b.to_string(), *t))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_bucket_is_left_after_one_try_and_the_others_drain() {
    let dir = TempDir::new("exhausted-lane");
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    for i in 0..6 {
        let mut entry = support::request(i);
        entry.bucket = if i % 2 == 0 { "empty" } else { "open" }.into();
        spool.push(entry).unwrap();
    }
    let tries = Arc::new(Mutex::new(Vec::new()));
    let api = {
        let tries = tries.clone();
        tower::service_fn(move |req: Request<SpoolBody<Full<Bytes>>>| {
            let tries = tries.clone();
            async move {
                let bucket = req.extensions().get::<abide_cap::BucketKey>().unwrap();
                let class = if bucket.as_str() == "empty" {
                    Class::QuotaExhausted
                } else {
                    Class::Success
                };
                tries.lock().unwrap().push(bucket.as_str().to_owned());
                let mut response = Response::new(());
                response
                    .extensions_mut()
                    .insert(Classification::new(class, "fake api"));
                Ok::<_, BoxError>(response)
            }
        })
    };
    let report = SpoolLayer::new(spool.clone())
        .replayer(api)
        .run_once()
        .await
        .unwrap();
    assert_eq!((report.delivered, report.left), (3, 3));
    let tries = tries.lock().unwrap().clone();
    assert_eq!(tries.iter().filter(|b| *b == "empty").count(), 1);
    assert!(spool.entries().iter().all(|e| e.bucket == "empty"));
}
