//! Behaviour of `BackoffRetry` against tower-test mocks, in virtual time.

use abide_classify::{Class, Classification, Processing, QuotaScope};
use abide_retry::{
    Attempts, BackoffRetryLayer, BoxError, BudgetExhausted, Deadline, DeadlineExceeded, Jitter,
    ReplayBody, RetryBudget, Stop, WaitTooLong, IDEMPOTENCY_KEY,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<Full<Bytes>>;

fn layer() -> BackoffRetryLayer {
    BackoffRetryLayer::new().with_seed(7)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn response(status: u16) -> Res {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from_static(b"body")))
        .unwrap()
}

fn with_header(mut res: Res, name: &'static str, value: &str) -> Res {
    res.headers_mut().insert(name, value.parse().unwrap());
    res
}

fn with_verdict(mut res: Res, verdict: Classification) -> Res {
    res.extensions_mut().insert(verdict);
    res
}

fn rate_limited(wait: Duration) -> Classification {
    Classification::new(Class::RateLimited, "test").with_retry_after(Some(wait))
}

fn request(method: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://api.test/v1")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

fn attempts(res: &Res) -> Attempts {
    *res.extensions()
        .get::<Attempts>()
        .expect("every response carries Attempts")
}

/// Sends `req` through `layer` over a mock; returns the call and the mock's handle.
fn start(
    layer: &BackoffRetryLayer,
    req: Request<Full<Bytes>>,
) -> (
    tokio::task::JoinHandle<Result<Res, BoxError>>,
    mock::Handle<Req, Res>,
) {
    let (service, handle) = mock::pair::<Req, Res>();
    let service = layer.layer(service);
    (tokio::spawn(service.oneshot(req)), handle)
}

#[tokio::test(start_paused = true)]
async fn a_success_is_returned_after_one_attempt() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.uri(), "http://api.test/v1");
    assert_eq!(
        &req.into_body().collect().await.unwrap().to_bytes()[..],
        b"payload"
    );
    send.send_response(response(200));
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let a = attempts(&res);
    assert_eq!(
        (a.count, a.total_wait, a.stop),
        (1, Duration::ZERO, Stop::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_verdict_waits_at_least_the_server_wait() {
    let wait = Duration::from_micros(2_500_300);
    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    let answered = Instant::now();
    send.send_response(with_verdict(response(429), rate_limited(wait)));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(
        answered.elapsed() >= wait,
        "{:?} < {wait:?}",
        answered.elapsed()
    );
    assert_eq!(
        &req.into_body().collect().await.unwrap().to_bytes()[..],
        b"payload"
    );
    send.send_response(response(200));
    let res = call.await.unwrap().unwrap();
    let a = attempts(&res);
    assert_eq!(a.count, 2);
    assert!(a.total_wait >= wait);
}

#[tokio::test(start_paused = true)]
async fn waits_are_never_shorter_than_the_server_asked_whatever_the_jitter() {
    let mut rng = fastrand::Rng::with_seed(11);
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let layer = layer().with_jitter(jitter).with_max_attempts(6);
        let (call, mut handle) = start(&layer, request("GET"));
        let (_, mut send) = handle.next_request().await.unwrap();
        for _ in 0..5 {
            let wait = Duration::from_micros(rng.u64(0..3_000_000));
            let answered = Instant::now();
            send.send_response(with_verdict(response(503), rate_limited(wait)));
            let (_, next) = handle.next_request().await.unwrap();
            assert!(
                answered.elapsed() >= wait,
                "{jitter:?}: {:?} < {wait:?}",
                answered.elapsed()
            );
            send = next;
        }
        send.send_response(response(200));
        let res = call.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_seconds_is_retried_no_sooner_than_asked() {
    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    let answered = Instant::now();
    send.send_response(with_header(response(429), "retry-after", "3"));
    let (_, send) = handle.next_request().await.unwrap();
    assert!(answered.elapsed() >= secs(3), "{:?}", answered.elapsed());
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_variants_are_honoured() {
    for header in ["retry-after-ms", "x-ms-retry-after-ms"] {
        let layer = layer().with_backoff(abide_retry::Backoff::new(
            Duration::from_millis(1),
            2.0,
            Duration::from_millis(1),
        ));
        let (call, mut handle) = start(&layer, request("GET"));
        let (_, send) = handle.next_request().await.unwrap();
        let answered = Instant::now();
        send.send_response(with_header(response(429), header, "1500"));
        let (_, send) = handle.next_request().await.unwrap();
        assert!(
            answered.elapsed() >= Duration::from_millis(1500),
            "{header}: {:?}",
            answered.elapsed()
        );
        send.send_response(response(200));
        assert_eq!(call.await.unwrap().unwrap().status(), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn quota_exhaustion_is_never_retried() {
    let verdicts = [
        Classification::new(Class::QuotaExhausted, "test").with_scope(QuotaScope::Billing),
        // Even a verdict that (wrongly) calls it retryable.
        Classification::new(Class::QuotaExhausted, "test")
            .with_retryable(true)
            .with_retry_after(Some(secs(1))),
    ];
    for verdict in verdicts {
        let (call, mut handle) = start(&layer(), request("GET"));
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(with_verdict(response(429), verdict));
        let res = call.await.unwrap().unwrap();
        assert_eq!(res.status(), 429, "the caller sees the real response");
        assert_eq!(attempts(&res).stop, Stop::NotRetryable);
        assert!(handle.next_request().await.is_none(), "no second attempt");
    }
}

#[tokio::test(start_paused = true)]
async fn client_errors_are_returned_at_once() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(400));
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (res.status(), attempts(&res).count),
        (StatusCode::BAD_REQUEST, 1)
    );
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_post_after_an_ambiguous_502_is_not_retried() {
    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(502));
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(attempts(&res).stop, Stop::NotIdempotent);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_post_after_a_429_is_retried() {
    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(429));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.method(), "POST");
    send.send_response(response(200));
    assert_eq!(attempts(&call.await.unwrap().unwrap()).count, 2);
}

#[tokio::test(start_paused = true)]
async fn a_get_after_an_ambiguous_502_is_retried() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(502));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_post_marked_replay_safe_is_retried_after_a_502_without_a_key() {
    let mut req = request("POST");
    req.extensions_mut().insert(abide_retry::ReplaySafe);
    let (call, mut handle) = start(&layer(), req);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(502));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.method(), "POST");
    assert!(
        !req.headers().contains_key(IDEMPOTENCY_KEY),
        "no side effects: nothing to deduplicate"
    );
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_post_carrying_an_idempotency_key_is_retried_after_a_502() {
    let mut req = request("POST");
    req.headers_mut()
        .insert(IDEMPOTENCY_KEY, "abc".parse().unwrap());
    let (call, mut handle) = start(&layer(), req);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(502));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()[IDEMPOTENCY_KEY], "abc");
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn the_layer_adds_one_idempotency_key_kept_across_attempts() {
    let (call, mut handle) = start(&layer().with_idempotency_key(true), request("POST"));
    let (first, send) = handle.next_request().await.unwrap();
    let key = first.headers()[IDEMPOTENCY_KEY].clone();
    assert_eq!(key.len(), 36);
    send.send_response(response(502));
    let (second, send) = handle.next_request().await.unwrap();
    assert_eq!(second.headers()[IDEMPOTENCY_KEY], key);
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);

    // Idempotent methods are left alone.
    let (call, mut handle) = start(&layer().with_idempotency_key(true), request("GET"));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(!req.headers().contains_key(IDEMPOTENCY_KEY));
    send.send_response(response(200));
    call.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn inner_errors_are_retried_for_idempotent_requests_and_returned_as_is_otherwise() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("connection reset");
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(200));
    assert_eq!(attempts(&call.await.unwrap().unwrap()).count, 2);

    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error("connection reset");
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn attempts_run_out_and_the_last_response_is_returned() {
    let layer = layer().with_max_attempts(3);
    let (call, mut handle) = start(&layer, request("GET"));
    for _ in 0..3 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(response(503));
    }
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 503);
    let a = attempts(&res);
    assert_eq!((a.count, a.stop), (3, Stop::MaxAttempts));
    assert!(a.total_wait > Duration::ZERO);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_verdict_in_extensions_wins_over_the_status() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(200), rate_limited(secs(1))));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(500), Classification::success()));
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (res.status(), attempts(&res).count),
        (StatusCode::INTERNAL_SERVER_ERROR, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_wait_above_the_maximum_fails_fast_with_wait_too_long() {
    let layer = layer().with_max_server_wait(secs(60));
    let start_at = Instant::now();
    let (call, mut handle) = start(&layer, request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(429), rate_limited(secs(3600))));
    let err = call.await.unwrap().unwrap_err();
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!((e.wait(), e.max(), e.attempts()), (secs(3600), secs(60), 1));
    assert_eq!(e.last_status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(e.last_classification().unwrap().class, Class::RateLimited);
    assert_eq!(start_at.elapsed(), Duration::ZERO, "no time spent sleeping");
}

#[tokio::test(start_paused = true)]
async fn a_server_wait_past_the_deadline_fails_fast() {
    let layer = layer().with_deadline(secs(5));
    let start_at = Instant::now();
    let (call, mut handle) = start(&layer, request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(429), rate_limited(secs(10))));
    let err = call.await.unwrap().unwrap_err();
    let e = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(e.timeout(), secs(5));
    assert_eq!(start_at.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_is_cut_at_the_deadline() {
    let layer = layer().with_deadline(secs(3));
    let start_at = Instant::now();
    let (call, mut handle) = start(&layer, request("GET"));
    let (_req, _send) = handle.next_request().await.unwrap();
    // Never answered.
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<DeadlineExceeded>(), "{err}");
    assert_eq!(start_at.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_extension_cuts_the_request() {
    let mut req = request("GET");
    req.extensions_mut()
        .insert(Deadline::within(Duration::from_millis(1500)));
    let start_at = Instant::now();
    let (call, mut handle) = start(&layer().with_deadline(secs(60)), req);
    let _pending = handle.next_request().await.unwrap();
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<DeadlineExceeded>());
    assert_eq!(start_at.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn grpc_timeout_sets_the_deadline_and_retries_carry_the_time_left() {
    let mut req = request("POST");
    req.headers_mut()
        .insert("grpc-timeout", "10S".parse().unwrap());
    let start_at = Instant::now();
    let (call, mut handle) = start(&layer(), req);
    let (first, send) = handle.next_request().await.unwrap();
    assert_eq!(first.headers()["grpc-timeout"], "10S");
    send.send_response(with_verdict(response(200), rate_limited(secs(2))));
    let (second, _pending) = handle.next_request().await.unwrap();
    let left =
        abide_retry::parse_grpc_timeout(second.headers()["grpc-timeout"].as_bytes()).unwrap();
    let elapsed = start_at.elapsed();
    assert!(elapsed >= secs(2));
    assert!(
        left <= secs(10) - elapsed && left + secs(1) > secs(10) - elapsed,
        "{left:?}"
    );
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<DeadlineExceeded>());
    assert_eq!(start_at.elapsed(), secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_cannot_finish_in_time_is_refused() {
    // Each attempt takes 4 s; after the first, 6 s are left: a 3 s wait plus a 4 s
    // attempt would not fit.
    let layer = layer().with_deadline(secs(10));
    let (call, mut handle) = start(&layer, request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    tokio::time::sleep(secs(4)).await;
    send.send_response(with_verdict(response(429), rate_limited(secs(3))));
    let err = call.await.unwrap().unwrap_err();
    let e = err
        .downcast_ref::<DeadlineExceeded>()
        .expect("DeadlineExceeded");
    assert_eq!(e.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_amplification_in_a_total_outage() {
    const REQUESTS: usize = 200;
    const MAX_BALANCE: f64 = 10.0;
    const FLOOR_PER_SEC: f64 = 1.0;
    let budget = RetryBudget::new(0.2, 1, 10);
    let layer = layer()
        .with_max_attempts(5)
        .with_budget(budget)
        .with_max_server_wait(secs(20))
        .with_backoff(abide_retry::Backoff::new(
            Duration::from_millis(100),
            2.0,
            secs(1),
        ));
    let stats = layer.stats();
    let start_at = Instant::now();
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = sent.clone();
    let service = layer.layer(tower::service_fn(move |_req: Req| {
        log.lock().unwrap().push(start_at.elapsed());
        async { Ok::<_, std::convert::Infallible>(response(503)) }
    }));
    let mut calls = Vec::new();
    for i in 0..REQUESTS {
        let service = service.clone();
        calls.push(tokio::spawn(async move {
            // Spread over ten seconds, as steady traffic would be.
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            service.oneshot(request("GET")).await
        }));
    }
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Err(e) => {
                assert!(e.is::<BudgetExhausted>(), "{e}");
                refused += 1;
            }
            Ok(res) => assert_eq!(attempts(&res).stop, Stop::MaxAttempts),
        }
    }
    // At every instant, the retries sent so far stay within what the budget holds plus
    // what its floor produced: retries are delayed to that rate, whatever the demand.
    let sent = sent.lock().unwrap();
    let first_attempts = |t: Duration| (t.as_millis() / 50 + 1).min(REQUESTS as u128) as f64;
    for (n, at) in sent.iter().enumerate() {
        let retries = (n + 1) as f64 - first_attempts(*at);
        let bound = MAX_BALANCE + FLOOR_PER_SEC * at.as_secs_f64() + 1.0;
        assert!(
            retries <= bound,
            "{retries} retries by {at:?} (bound {bound})"
        );
    }
    assert!(
        refused > REQUESTS / 2,
        "retries that would queue past the 20 s bound are refused: {refused}"
    );
    assert_eq!(stats.snapshot().budget_exhausted, refused as u64);
    assert!(
        sent.len() < REQUESTS * 5 / 2,
        "{} attempts; without a budget it would be {}",
        sent.len(),
        REQUESTS * 5
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_delays_a_retry_instead_of_dropping_it() {
    // One retry in the bucket, refilled at one per second.
    let budget = RetryBudget::new(0.0, 1, 1);
    let layer = layer().with_budget(budget.clone());
    let (first, mut first_handle) = start(&layer, request("POST"));
    let (second, mut second_handle) = start(&layer, request("POST"));
    let (_, a) = first_handle.next_request().await.unwrap();
    let (_, b) = second_handle.next_request().await.unwrap();
    let failed_at = Instant::now();
    a.send_response(response(503));
    b.send_response(response(503));
    let (_, a) = first_handle.next_request().await.unwrap();
    let (_, b) = second_handle.next_request().await.unwrap();
    let waited = failed_at.elapsed();
    a.send_response(response(200));
    b.send_response(response(200));
    let res = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_eq!((attempts(&res.0).count, attempts(&res.1).count), (2, 2));
    // The later of the two retries waited for the budget's next token, not less.
    let longest = attempts(&res.0).total_wait.max(attempts(&res.1).total_wait);
    assert!(longest >= secs(1), "{longest:?}");
    assert!(waited >= secs(1), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_budget_wait_longer_than_the_maximum_wait_fails_fast() {
    let budget = RetryBudget::new(0.0, 1, 1);
    let layer = layer()
        .with_budget(budget)
        .with_max_server_wait(Duration::from_millis(200));
    let (first, mut first_handle) = start(&layer, request("GET"));
    first_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    let (_, retry) = first_handle.next_request().await.unwrap();
    let (second, mut second_handle) = start(&layer, request("GET"));
    second_handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    // The bucket is empty and the next token is at least half a second away: over the
    // 200 ms bound.
    let at = Instant::now();
    let err = second.await.unwrap().unwrap_err();
    assert!(err.is::<BudgetExhausted>(), "{err}");
    assert_eq!(
        at.elapsed(),
        Duration::ZERO,
        "failed at once, not after waiting"
    );
    retry.send_response(response(200));
    first.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refusal_the_server_paces_gets_more_attempts_than_other_failures() {
    let layer = layer()
        .with_max_attempts(2)
        .with_max_paced_attempts(5)
        .without_budget();
    assert_eq!((layer.max_attempts(), layer.max_paced_attempts()), (2, 5));
    let (call, mut handle) = start(&layer, request("GET"));
    for _ in 0..2 {
        handle
            .next_request()
            .await
            .unwrap()
            .1
            .send_response(response(500));
    }
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (attempts(&res).count, attempts(&res).stop),
        (2, Stop::MaxAttempts)
    );

    let (call, mut handle) = start(&layer, request("POST"));
    for _ in 0..5 {
        handle
            .next_request()
            .await
            .unwrap()
            .1
            .send_response(with_header(response(429), "retry-after", "1"));
    }
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (attempts(&res).count, attempts(&res).stop),
        (5, Stop::MaxAttempts)
    );
    assert!(handle.next_request().await.is_none());
}

/// Answers the next `times` attempts with `res()`.
async fn answer(handle: &mut mock::Handle<Req, Res>, times: usize, res: impl Fn() -> Res) {
    for _ in 0..times {
        let (_, reply) = handle.next_request().await.expect("an attempt");
        reply.send_response(res());
    }
}

#[tokio::test(start_paused = true)]
async fn failures_nobody_paced_are_counted_apart_from_the_turns_the_server_paced() {
    // Ten paced refusals (a window contended for), then 503s with no wait: the 503s get
    // the five retries a lone failure gets, not none because ten turns came first.
    let layer = layer().without_budget();
    let (call, mut handle) = start(&layer, request("GET"));
    answer(&mut handle, 10, || {
        with_header(response(429), "retry-after", "1")
    })
    .await;
    answer(&mut handle, 5, || response(503)).await;
    answer(&mut handle, 1, || response(200)).await;
    let res = call.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(attempts(&res).count, 16);

    // Still bounded: five paced turns, then six failures nobody paced end it (the limit a
    // lone request gets), at 5 + 6 attempts.
    let (call, mut handle) = start(&layer, request("GET"));
    answer(&mut handle, 5, || {
        with_header(response(429), "retry-after", "1")
    })
    .await;
    answer(&mut handle, 6, || response(503)).await;
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (
            res.status().as_u16(),
            attempts(&res).count,
            attempts(&res).stop
        ),
        (503, 11, Stop::MaxAttempts)
    );
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_request_the_server_paces_for_twenty_turns_is_still_delivered() {
    // A few slots contended for by callers that share nothing: the server refuses this
    // request twenty times, each with a wait, while it serves the others. It is served on
    // the 21st attempt; giving up at 16 lost it.
    let layer = layer().without_budget();
    let (call, mut handle) = start(&layer, request("GET"));
    answer(&mut handle, 20, || {
        with_header(response(529), "retry-after", "1")
    })
    .await;
    answer(&mut handle, 1, || response(200)).await;
    let res = call.await.unwrap().unwrap();
    assert_eq!((res.status().as_u16(), attempts(&res).count), (200, 21));

    // Still bounded: refused at every turn, it ends at the paced limit.
    let (call, mut handle) = start(&layer, request("GET"));
    answer(&mut handle, 32, || {
        with_header(response(429), "retry-after", "1")
    })
    .await;
    let res = call.await.unwrap().unwrap();
    assert_eq!(
        (
            res.status().as_u16(),
            attempts(&res).count,
            attempts(&res).stop
        ),
        (429, 32, Stop::MaxAttempts)
    );
    assert!(handle.next_request().await.is_none());
}

#[test]
fn the_default_attempt_limits_are_six_and_thirty_two_when_the_server_paces() {
    let layer = BackoffRetryLayer::new();
    assert_eq!(layer.max_attempts(), abide_retry::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(
        layer.max_paced_attempts(),
        abide_retry::DEFAULT_MAX_PACED_ATTEMPTS
    );
    assert_eq!((layer.max_attempts(), layer.max_paced_attempts()), (6, 32));
    // Setting max attempts sets both: "at most n attempts" stays true.
    let layer = layer.with_max_attempts(3);
    assert_eq!((layer.max_attempts(), layer.max_paced_attempts()), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_post_after_a_503_without_a_wait_is_retried() {
    // RFC 9110 §15.6.4: the server did not handle it, so any method may be sent again.
    let (call, mut handle) = start(&layer(), request("POST"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(200));
    assert_eq!(attempts(&call.await.unwrap().unwrap()).count, 2);
}

#[tokio::test(start_paused = true)]
async fn every_attempt_carries_the_absolute_deadline() {
    let layer = layer().with_deadline(secs(30));
    let mut req = request("POST");
    // The earliest of the configured and the request's deadlines wins.
    req.extensions_mut().insert(Deadline::within(secs(20)));
    let started = Instant::now();
    let (call, mut handle) = start(&layer, req);
    let mut seen = Vec::new();
    for status in [429, 503, 200] {
        let (req, send) = handle.next_request().await.unwrap();
        seen.push(req.extensions().get::<Deadline>().copied());
        let res = if status == 429 {
            with_header(response(429), "retry-after", "1")
        } else {
            response(status)
        };
        send.send_response(res);
    }
    assert_eq!(attempts(&call.await.unwrap().unwrap()).count, 3);
    assert_eq!(seen, vec![Some(Deadline::at(started + secs(20))); 3]);
}

/// An error a layer below raises itself, carrying its verdict as its source (as the
/// cap's `QueueFull` and quota refusals do).
#[derive(Debug)]
struct LayerRefusal(abide_classify::Verdict);

impl std::fmt::Display for LayerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused below: {}", self.0)
    }
}

impl std::error::Error for LayerRefusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_cap_refusal_for_exhausted_quota_is_not_retried_and_reaches_the_caller() {
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(LayerRefusal(abide_classify::Verdict::new(
        Classification::new(Class::QuotaExhausted, "cap: quota exhausted")
            .with_scope(QuotaScope::Daily),
    )));
    let err = call.await.unwrap().unwrap_err();
    let refusal = err
        .downcast_ref::<LayerRefusal>()
        .expect("the refusal itself");
    assert_eq!(refusal.0.classification().class, Class::QuotaExhausted);
    assert!(handle.next_request().await.is_none(), "never retried");
}

#[tokio::test(start_paused = true)]
async fn a_full_cap_queue_is_retried_even_for_a_post() {
    let (call, mut handle) = start(&layer(), request("POST"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(LayerRefusal(abide_classify::Verdict::new(
        Classification::new(Class::Overloaded, "cap: queue full")
            .with_processing(Processing::NotProcessed),
    )));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(200));
    assert_eq!(attempts(&call.await.unwrap().unwrap()).count, 2);
}

#[tokio::test(start_paused = true)]
async fn successes_refill_the_budget() {
    let budget = RetryBudget::new(0.5, 0, 1);
    let layer = layer().with_budget(budget.clone());
    let (call, mut handle) = start(&layer, request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(503));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(503));
    // The only token was spent on the first retry.
    let err = call.await.unwrap().unwrap_err();
    assert!(err.is::<BudgetExhausted>());
    for _ in 0..2 {
        let (call, mut handle) = start(&layer, request("GET"));
        handle
            .next_request()
            .await
            .unwrap()
            .1
            .send_response(response(200));
        call.await.unwrap().unwrap();
    }
    assert_eq!(budget.balance(), 1.0);
}

/// Counts live values, to check that nothing outlives a dropped request.
#[derive(Debug)]
struct Live(Arc<AtomicUsize>);
impl Clone for Live {
    fn clone(&self) -> Self {
        Live::new(&self.0)
    }
}
impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Live(count.clone())
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that counts itself live and never ends.
#[derive(Debug)]
struct LiveBody(#[allow(dead_code)] Live);
impl http_body::Body for LiveBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_mid_sleep_leaks_nothing() {
    let live = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (l, c) = (live.clone(), calls.clone());
    let service = tower::service_fn(move |req: Req| {
        assert!(req.extensions().get::<Live>().is_some());
        c.fetch_add(1, Ordering::SeqCst);
        let body = LiveBody(Live::new(&l));
        async move {
            let mut res = Response::new(body);
            res.extensions_mut().insert(rate_limited(secs(30)));
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let service = layer().layer(service);
    let mut req = request("POST");
    req.extensions_mut().insert(Live::new(&live));
    let call = tokio::spawn(service.oneshot(req));
    tokio::time::sleep(secs(1)).await;
    // Mid-sleep: the request copy and the response body being drained are alive.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(live.load(Ordering::SeqCst), 2);
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "nothing outlives the request"
    );
    tokio::time::sleep(secs(60)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no attempt after cancellation"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_response_body_is_drained_while_waiting() {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
    let (service, mut handle) =
        mock::pair::<Req, Response<http_body_util::channel::Channel<Bytes, BoxError>>>();
    let service = layer().layer(service);
    let call = tokio::spawn(service.oneshot(request("GET")));
    let (_, send) = handle.next_request().await.unwrap();
    let mut res = Response::new(body);
    res.extensions_mut().insert(rate_limited(secs(5)));
    send.send_response(res);
    // The channel holds one frame: the second send waits until the layer reads the first.
    let answered = Instant::now();
    tx.send_data(Bytes::from_static(b"error ")).await.unwrap();
    tx.send_data(Bytes::from_static(b"details")).await.unwrap();
    drop(tx);
    assert!(
        answered.elapsed() < secs(5),
        "drained during the wait, not after"
    );
    let (_, send) = handle.next_request().await.unwrap();
    let (_tx2, body2) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
    send.send_response(Response::new(body2));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_replay_limit_is_sent_once_and_not_retried() {
    let layer = layer().with_replay_limit(4);
    let (call, mut handle) = start(&layer, request("PUT"));
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        &req.into_body().collect().await.unwrap().to_bytes()[..],
        b"payload"
    );
    send.send_response(response(503));
    let res = call.await.unwrap().unwrap();
    assert_eq!(attempts(&res).stop, Stop::BodyNotReplayable);
    assert!(handle.next_request().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_streaming_body_is_replayed_byte_exact_when_the_server_answers_early() {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(4);
    let (service, mut handle) =
        mock::pair::<Request<ReplayBody<http_body_util::channel::Channel<Bytes, BoxError>>>, Res>();
    let service = layer().layer(service);
    let req = Request::put("http://api.test/upload").body(body).unwrap();
    let call = tokio::spawn(service.oneshot(req));
    let writer = tokio::spawn(async move {
        for i in 0..10u8 {
            tx.send_data(Bytes::from(vec![b'a' + i; 100]))
                .await
                .unwrap();
        }
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "42".parse().unwrap());
        tx.send_trailers(trailers).await.unwrap();
    });
    let (first, send) = handle.next_request().await.unwrap();
    let mut first_body = first.into_body();
    // The server reads three frames, then answers before the rest was sent.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let frame = first_body.frame().await.unwrap().unwrap();
        seen.extend_from_slice(frame.data_ref().unwrap());
    }
    send.send_response(with_verdict(response(503), rate_limited(secs(1))));
    let (second, send) = handle.next_request().await.unwrap();
    let collected = second.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    let expected: Vec<u8> = (0..10u8).flat_map(|i| vec![b'a' + i; 100]).collect();
    assert_eq!(&seen[..], &expected[..300]);
    assert_eq!(&bytes[..], &expected[..], "no byte duplicated or dropped");
    assert_eq!(trailers.unwrap()["x-checksum"], "42");
    // The abandoned attempt's copy only replays the recording: the same bytes, once.
    let rest = first_body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], &expected[300..]);
    send.send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
    writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stats_count_every_decision() {
    let layer = layer().with_max_attempts(2);
    let stats = layer.stats();
    let (call, mut handle) = start(&layer, request("GET"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    call.await.unwrap().unwrap();
    let (call, mut handle) = start(&layer, request("GET"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(200));
    call.await.unwrap().unwrap();
    let (call, mut handle) = start(&layer, request("POST"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(500));
    call.await.unwrap().unwrap();
    let s = stats.snapshot();
    assert_eq!(
        (
            s.requests,
            s.attempts,
            s.retries,
            s.succeeded,
            s.max_attempts,
            s.not_idempotent
        ),
        (3, 4, 1, 1, 1, 1)
    );
    assert!(s.total_wait > Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_not_processed_verdict_allows_retrying_a_post_after_a_503() {
    let verdict = Classification::new(Class::ServerError, "test")
        .with_processing(Processing::NotProcessed)
        .with_retry_after(Some(secs(1)));
    let (call, mut handle) = start(&layer(), request("POST"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(with_verdict(response(503), verdict));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(200));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn one_attempt_configured_means_no_retry_and_no_recording() {
    let (call, mut handle) = start(&layer().with_max_attempts(0), request("GET"));
    handle
        .next_request()
        .await
        .unwrap()
        .1
        .send_response(response(503));
    let res = call.await.unwrap().unwrap();
    assert_eq!(attempts(&res).stop, Stop::MaxAttempts);
}

#[tokio::test]
async fn the_service_is_clone_and_its_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (mock, _handle) = mock::pair::<Req, Res>();
    let service = tower::ServiceBuilder::new()
        .layer(layer())
        .check_clone()
        .service(mock);
    let mut service = service.clone();
    let ready = service.ready().await.unwrap();
    let future = tower::Service::call(ready, request("GET"));
    assert_send(&future);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_at_an_instant_is_kept() {
    let at = Instant::now() + Duration::from_millis(700);
    let mut req = request("GET");
    req.extensions_mut().insert(Deadline::at(at));
    let (call, mut handle) = start(&layer(), req);
    let _pending = handle.next_request().await.unwrap();
    assert!(call.await.unwrap().unwrap_err().is::<DeadlineExceeded>());
    assert_eq!(Instant::now(), at);
}

#[tokio::test(start_paused = true)]
async fn absurd_server_waits_end_in_an_error_not_a_panic() {
    let layer = layer().with_max_server_wait(Duration::MAX);
    let (call, mut handle) = start(&layer, request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(429), rate_limited(Duration::MAX)));
    let err = call.await.unwrap().unwrap_err();
    let e = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(e.max(), abide_retry::MAX_SERVER_WAIT_LIMIT);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_probed_for_others_backs_off_afterwards_as_one_that_failed_once() {
    // Attempts 2..=8 go as the cap's probe for requests held behind it (the cap paces
    // those); the 9th fails on its own, with the server asking for a second. Its backoff
    // grows from the failures it met on its own (two), not from its eight attempts: a
    // request that rode out an outage for the others is not sent to the back by minutes.
    let (call, mut handle) = start(&layer(), request("GET"));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(response(503));
    for _ in 2..=8 {
        let (req, send) = handle.next_request().await.unwrap();
        req.extensions()
            .get::<abide_classify::HeldProbe>()
            .expect("a retried request carries its probe flag")
            .mark();
        send.send_response(response(503));
    }
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(with_verdict(response(429), rate_limited(secs(1))));
    let failed = Instant::now();
    let (_, send) = handle.next_request().await.unwrap();
    let waited = failed.elapsed();
    send.send_response(response(200));
    let res = call.await.unwrap().unwrap();
    assert_eq!(attempts(&res).count, 10);
    // The second backoff step (1 s, equal jitter) or the server's second and its spread.
    assert!(
        waited >= secs(1) && waited <= Duration::from_millis(1_250),
        "{waited:?}"
    );
}
