//! The whole abide stack over a `tower_test` mock: backpressure from the inner service,
//! identical retry attempts, and a 429's wait honoured to the millisecond, in virtual time.

use abide::retry::{Attempts, BackoffRetryLayer, ReplayBody};
use abide::{AbideLayer, ServiceBuilderExt};
use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tower::{ServiceBuilder, ServiceExt};
use tower_test::mock::{self, Handle, SendResponse};

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<Full<Bytes>>;
type Client = <AbideLayer as tower::Layer<mock::Mock<Req, Res>>>::Service;

fn stack(seed: u64) -> (Client, Handle<Req, Res>) {
    let (mock, handle) = mock::pair::<Req, Res>();
    let client = ServiceBuilder::new()
        .abide(AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(seed)))
        .service(mock);
    (client, handle)
}

const BODY: &[u8] = b"{\"model\":\"m\",\"prompt\":\"hello\"}";

fn post(i: usize) -> Request<Full<Bytes>> {
    Request::post(format!("https://api.example.com/v1/chat?i={i}"))
        .header("x-request-id", i.to_string())
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap()
}

fn answer(status: u16, retry_after: Option<&str>) -> Res {
    let mut res = Response::builder().status(status);
    if let Some(wait) = retry_after {
        res = res.header("retry-after", wait);
    }
    res.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

/// What the mock received: method, URI, request id and the whole body.
async fn received(
    handle: &mut Handle<Req, Res>,
) -> (Method, Uri, String, Bytes, SendResponse<Res>) {
    let (req, send) = handle
        .next_request()
        .await
        .expect("a request reaches the mock");
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let id = parts.headers["x-request-id"].to_str().unwrap().to_owned();
    (parts.method, parts.uri, id, body, send)
}

/// True when no request reaches the mock within `wait` (virtual time).
async fn nothing_arrives(handle: &mut Handle<Req, Res>, wait: Duration) -> bool {
    timeout(wait, handle.next_request()).await.is_err()
}

#[tokio::test(start_paused = true)]
async fn an_inner_service_that_is_not_ready_holds_the_request_until_it_allows_one() {
    let (client, mut handle) = stack(1);
    handle.allow(0);
    let call = tokio::spawn(client.clone().oneshot(post(0)));
    assert!(
        nothing_arrives(&mut handle, Duration::from_secs(10)).await,
        "nothing is sent while the inner service is not ready"
    );

    handle.allow(1);
    let (method, uri, id, body, send) = received(&mut handle).await;
    assert_eq!((method, id), (Method::POST, "0".to_owned()));
    assert_eq!(uri, "https://api.example.com/v1/chat?i=0");
    assert_eq!(body, BODY);
    send.send_response(answer(200, None));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn callers_beyond_what_the_inner_service_allows_wait_their_turn() {
    let (client, mut handle) = stack(2);
    handle.allow(1);
    let calls: Vec<_> = (0..3)
        .map(|i| tokio::spawn(client.clone().oneshot(post(i))))
        .collect();

    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, _, id, _, send) = received(&mut handle).await;
        assert!(
            nothing_arrives(&mut handle, Duration::from_secs(5)).await,
            "one call per allowance"
        );
        ids.push(id);
        send.send_response(answer(200, None));
        handle.allow(1);
    }
    ids.sort();
    assert_eq!(ids, ["0", "1", "2"]);
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn every_retry_attempt_carries_the_same_method_uri_headers_and_body() {
    let (client, mut handle) = stack(3);
    let call = tokio::spawn(client.oneshot(post(7)));
    let mut attempts = Vec::new();
    for reply in [answer(429, None), answer(429, Some("1")), answer(200, None)] {
        let (method, uri, id, body, send) = received(&mut handle).await;
        attempts.push((method, uri, id, body));
        send.send_response(reply);
    }
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.extensions().get::<Attempts>().unwrap().count, 3);
    for attempt in &attempts {
        assert_eq!(attempt.0, Method::POST);
        assert_eq!(attempt.1, "https://api.example.com/v1/chat?i=7");
        assert_eq!(attempt.2, "7");
        assert_eq!(attempt.3, BODY, "the body is replayed byte-exact");
    }
    assert!(handle.next_request().await.is_none(), "no fourth attempt");
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_leads_to_exactly_one_more_call_after_the_wait() {
    let (client, mut handle) = stack(4);
    let call = tokio::spawn(client.oneshot(post(1)));

    let (_, _, _, _, send) = received(&mut handle).await;
    send.send_response(answer(429, Some("5")));
    let limited_at = Instant::now();

    let (_, _, id, body, send) = received(&mut handle).await;
    let waited = limited_at.elapsed();
    assert!(waited >= Duration::from_secs(5), "retried after {waited:?}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    assert_eq!((id.as_str(), &body[..]), ("1", BODY));
    send.send_response(answer(200, None));

    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    // The client is gone: the mock's stream ends with no further call.
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_the_whole_bucket_so_a_second_caller_does_not_rediscover_it() {
    let (client, mut handle) = stack(5);
    let first = tokio::spawn(client.clone().oneshot(post(1)));
    let (_, _, _, _, send) = received(&mut handle).await;
    send.send_response(answer(429, Some("3")));
    let limited_at = Instant::now();
    // Let the verdict reach the cap before the second caller comes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = tokio::spawn(client.clone().oneshot(post(2)));

    let mut arrivals = Vec::new();
    for _ in 0..2 {
        let (_, _, id, _, send) = received(&mut handle).await;
        arrivals.push((id, limited_at.elapsed()));
        send.send_response(answer(200, None));
    }
    for (id, at) in &arrivals {
        assert!(*at >= Duration::from_secs(3), "request {id} went at {at:?}");
    }
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(second.await.unwrap().unwrap().status(), 200);
    drop(client);
    assert!(
        handle.next_request().await.is_none(),
        "two calls after the pause, no more"
    );
}
