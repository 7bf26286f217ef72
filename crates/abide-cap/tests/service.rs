//! The layer against a scripted rate-limited server, in virtual time.

mod support;

use abide_cap::error::{BucketExhausted, QueueFull, WaitTooLong};
use abide_cap::{BucketKey, ConcurrencyCapLayer, Cost, Deadline, InFlight};
use http_body_util::BodyExt;
use std::time::Duration;
use support::{request, Script, Server};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

async fn ready<S>(svc: &mut S) -> &mut S
where
    S: Service<http::Request<String>>,
    S::Error: std::fmt::Debug,
{
    ServiceExt::<http::Request<String>>::ready(svc)
        .await
        .unwrap()
}

fn bucket() -> BucketKey {
    BucketKey::new("api.example.com")
}

/// Runs `workers` callers, each sending requests back to back (reading each body to the
/// end) until `until`.
async fn run_workers<S>(svc: S, workers: usize, until: Instant, cost: Option<u32>)
where
    S: Service<
            http::Request<String>,
            Response = http::Response<abide_cap::ResponseBody<support::Chunks>>,
            Error = abide_cap::BoxError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match svc.clone().oneshot(request(cost)).await {
                    Ok(response) => {
                        let _ = response.into_body().collect().await;
                    }
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn after_the_first_response_teaches_the_limit_no_429_arrives_and_the_quota_is_used() {
    let server = Server::new(
        Script::Window {
            limit: 10,
            window: S,
            token_limit: None,
        },
        50 * MS,
    );
    let svc = ConcurrencyCapLayer::new().layer(server.clone());
    let start = server.start();
    run_workers(svc, 20, start + 30 * S, None).await;

    let arrivals = server.arrivals();
    let first_answer = start + 50 * MS;
    let late_429s = arrivals
        .iter()
        .filter(|(at, status)| *at > first_answer && *status == 429)
        .count();
    assert_eq!(
        late_429s, 0,
        "429s after the limit was learned: {late_429s}"
    );
    let ok = arrivals.iter().filter(|(_, s)| *s == 200).count();
    // 30 windows of 10: the client must use at least 90% of the quota.
    assert!(ok >= 270, "only {ok} of 300 possible successes");
}

#[tokio::test(start_paused = true)]
async fn learned_token_limits_pace_by_declared_cost_without_429s() {
    let server = Server::new(
        Script::Window {
            limit: 1000,
            window: S,
            token_limit: Some(10_000),
        },
        20 * MS,
    );
    let svc = ConcurrencyCapLayer::new().layer(server.clone());
    let start = server.start();
    run_workers(svc, 16, start + 20 * S, Some(1_000)).await;
    let arrivals = server.arrivals();
    let late_429s = arrivals
        .iter()
        .filter(|(at, s)| *at > start + 20 * MS && *s == 429)
        .count();
    assert_eq!(late_429s, 0);
    let ok = arrivals.iter().filter(|(_, s)| *s == 200).count();
    // 10 requests of 1000 tokens fit each 1 s window.
    assert!(ok >= 180, "only {ok} of 200 possible successes");
}

#[tokio::test(start_paused = true)]
async fn one_429_pauses_the_whole_bucket_for_exactly_the_servers_time() {
    let server = Server::new(
        Script::OneThrottle {
            nth: 5,
            wait: 3 * S,
        },
        10 * MS,
    );
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(4))
        .layer(server.clone());
    let start = server.start();
    run_workers(svc, 8, start + 5 * S, None).await;

    let arrivals = server.arrivals();
    let (throttled_at, _) = arrivals[5];
    assert_eq!(arrivals[5].1, 429);
    let answered_at = throttled_at + 10 * MS;
    let during_pause = arrivals
        .iter()
        .filter(|(at, _)| *at > answered_at && *at < answered_at + 3 * S)
        .count();
    assert_eq!(
        during_pause, 0,
        "requests reached the server during the pause"
    );
    let first_after = arrivals
        .iter()
        .map(|(at, _)| *at)
        .find(|at| *at >= answered_at + 3 * S)
        .expect("traffic resumes after the pause");
    assert_eq!(
        first_after,
        answered_at + 3 * S,
        "resumes exactly at the server's time"
    );
}

#[tokio::test(start_paused = true)]
async fn exhaustion_fails_fast_until_the_reset_then_one_probe_goes() {
    let server = Server::new(
        Script::ExhaustAt {
            nth: 0,
            reset: 60 * S,
        },
        10 * MS,
    );
    let mut svc = ConcurrencyCapLayer::new().layer(server.clone());
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(response.status(), 403);
    drop(response);

    let before = Instant::now();
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    let exhausted = err
        .downcast_ref::<BucketExhausted>()
        .expect("BucketExhausted");
    assert_eq!(Instant::now(), before, "fails without waiting");
    assert_eq!(
        exhausted.retry_in(),
        Some(60 * S),
        "the server's reset, from its answer"
    );
    assert_eq!(server.arrivals().len(), 1, "nothing reached the server");

    tokio::time::sleep(60 * S).await;
    let probe = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(probe.status(), 200);
    assert_eq!(server.arrivals().len(), 2, "the probe reached the server");
    let after = ready(&mut svc).await.call(request(None)).await;
    assert!(after.is_ok(), "the probe's success reopens the bucket");
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_held_until_the_body_ends() {
    let server = Server::new(Script::Open, 10 * MS).with_body_chunks(3);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .layer(server);
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 1);
    assert!(response.body().holds_permit());
    let mut body = response.into_body();
    let _ = body.frame().await;
    assert_eq!(
        svc.stats(&bucket()).unwrap().in_flight,
        1,
        "still streaming"
    );
    let _ = body.collect().await;
    assert_eq!(
        svc.stats(&bucket()).unwrap().in_flight,
        0,
        "released at body end"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_body_releases_the_permit() {
    let server = Server::new(Script::Open, 10 * MS).with_body_chunks(3);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .layer(server);
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 1);
    drop(response);
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 0);
    // And the next request gets the permit at once.
    let next = ready(&mut svc).await.call(request(None)).await;
    assert!(next.is_ok());
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_future_frees_its_queue_place_and_an_in_flight_one_its_permit() {
    let server = Server::new(Script::Open, 10 * S);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .layer(server);
    let mut in_flight = Box::pin(ready(&mut svc).await.call(request(None)));
    assert!(futures_poll(&mut in_flight).is_pending());
    let mut waiting = Box::pin(ready(&mut svc).await.call(request(None)));
    assert!(futures_poll(&mut waiting).is_pending());
    let stats = svc.stats(&bucket()).unwrap();
    assert_eq!((stats.in_flight, stats.queued), (1, 1));
    drop(waiting);
    assert_eq!(svc.stats(&bucket()).unwrap().queued, 0);
    drop(in_flight);
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 0);
}

fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_fails_at_once_with_queue_full() {
    let server = Server::new(Script::Open, 10 * S);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .with_max_queue(2)
        .layer(server);
    let mut futures = Vec::new();
    for _ in 0..3 {
        let mut f = Box::pin(ready(&mut svc).await.call(request(None)));
        assert!(futures_poll(&mut f).is_pending());
        futures.push(f);
    }
    let mut extra = Box::pin(ready(&mut svc).await.call(request(None)));
    let err = match futures_poll(&mut extra) {
        std::task::Poll::Ready(Err(e)) => e,
        other => panic!(
            "expected an immediate error, got {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    };
    let full = err.downcast_ref::<QueueFull>().expect("QueueFull");
    assert_eq!(full.capacity(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_max_fails_at_once_saying_how_long_it_would_have_waited() {
    let server = Server::new(Script::Open, 10 * MS);
    let layer = ConcurrencyCapLayer::new().with_max_wait(2 * S);
    let mut svc = layer.layer(server.clone());
    svc.store()
        .pause(&bucket(), Instant::now() + 10 * S)
        .await
        .unwrap();
    let before = Instant::now();
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    let too_long = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(too_long.would_wait(), 10 * S);
    assert_eq!(too_long.max_wait(), 2 * S);
    assert_eq!(Instant::now(), before);
    assert!(server.arrivals().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_request_deadline_shortens_the_max_wait() {
    let server = Server::new(Script::Open, 10 * MS);
    let mut svc = ConcurrencyCapLayer::new().layer(server);
    svc.store()
        .pause(&bucket(), Instant::now() + 10 * S)
        .await
        .unwrap();
    let mut r = request(None);
    r.extensions_mut()
        .insert(Deadline::at(Instant::now() + 3 * S));
    let err = ready(&mut svc).await.call(r).await.unwrap_err();
    let too_long = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(too_long.max_wait(), 3 * S);
    // Within the deadline it waits and goes.
    let mut r = request(None);
    r.extensions_mut()
        .insert(Deadline::at(Instant::now() + 30 * S));
    let before = Instant::now();
    ready(&mut svc).await.call(r).await.unwrap();
    assert_eq!(Instant::now() - before, 10 * S + 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_busy_permit_past_the_max_fails_with_wait_too_long() {
    let server = Server::new(Script::Open, 60 * S);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .with_max_wait(S)
        .layer(server);
    let mut first = Box::pin(ready(&mut svc).await.call(request(None)));
    assert!(futures_poll(&mut first).is_pending());
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    let too_long = err.downcast_ref::<WaitTooLong>().expect("WaitTooLong");
    assert_eq!(too_long.would_wait(), S);
    assert_eq!(svc.stats(&bucket()).unwrap().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_cap_holds_at_the_server() {
    let server = Server::new(Script::Open, 30 * MS);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(3))
        .layer(server.clone());
    let start = server.start();
    run_workers(svc, 12, start + 2 * S, None).await;
    assert_eq!(server.max_concurrent(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_cap_halves_on_a_rate_limit_verdict() {
    let server = Server::new(Script::OneThrottle { nth: 0, wait: S }, 10 * MS);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(10, 1, 100))
        .layer(server);
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(5));
}

#[tokio::test(start_paused = true)]
async fn a_declared_request_quota_paces_without_any_headers() {
    let server = Server::new(Script::Open, MS);
    let quota = abide_cap::Quota::per_second(std::num::NonZeroU32::new(5).unwrap());
    let svc = ConcurrencyCapLayer::new()
        .with_request_quota(quota)
        .layer(server.clone());
    let start = server.start();
    run_workers(svc, 4, start + 10 * S, None).await;
    let n = server
        .arrivals()
        .iter()
        .filter(|(at, _)| *at < start + 10 * S)
        .count();
    // A burst of 5 at once, then one every 200 ms: 5 + 49 before the 10 s mark.
    assert_eq!(n, 54, "{n} requests in 10 s");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_reserves_nothing_of_the_inner_service() {
    let (mock, mut handle) =
        tower_test::mock::pair::<http::Request<String>, http::Response<String>>();
    handle.allow(0);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(2))
        .layer(mock);
    // The cap is always ready: backpressure comes per request, in the future.
    assert!(
        futures_poll(&mut Box::pin(ServiceExt::<http::Request<String>>::ready(
            &mut svc
        )))
        .is_ready()
    );
    let mut f = Box::pin(svc.call(request(None)));
    assert!(
        futures_poll(&mut f).is_pending(),
        "waits for the inner service"
    );
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 1);
    handle.allow(1);
    let task = tokio::spawn(f);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.uri().host(), Some("api.example.com"));
    send.send_response(http::Response::new(String::from("hi")));
    let response = task.await.unwrap().unwrap();
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hi"
    );
    assert_eq!(svc.stats(&bucket()).unwrap().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn buckets_follow_the_key_function() {
    let server = Server::new(
        Script::OneThrottle {
            nth: 0,
            wait: 5 * S,
        },
        MS,
    );
    let mut svc = ConcurrencyCapLayer::new()
        .with_key_fn(|parts| BucketKey::new(parts.uri.path()))
        .layer(server.clone());
    let mut chat = request(None);
    *chat.uri_mut() = "https://api.example.com/chat".parse().unwrap();
    assert_eq!(
        ready(&mut svc).await.call(chat).await.unwrap().status(),
        429
    );
    let mut embed = request(None);
    *embed.uri_mut() = "https://api.example.com/embed".parse().unwrap();
    let before = Instant::now();
    ready(&mut svc).await.call(embed).await.unwrap();
    assert_eq!(Instant::now() - before, MS, "another bucket is not paused");
    let _ = Cost(1);
}

#[tokio::test(start_paused = true)]
async fn under_hold_and_probe_requests_wait_for_the_reset_and_the_probe() {
    let server = Server::new(
        Script::ExhaustAt {
            nth: 0,
            reset: 30 * S,
        },
        10 * MS,
    );
    let svc = ConcurrencyCapLayer::new()
        .with_exhaustion_policy(abide_cap::ExhaustionPolicy::HoldAndProbe)
        .layer(server.clone());
    let first = svc.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(first.status(), 403);
    let exhausted_at = Instant::now();
    let held: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(request(None))))
        .collect();
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 4);
    assert_eq!(
        arrivals[1].0,
        exhausted_at + 30 * S,
        "the probe goes at the reset"
    );
    assert!(
        arrivals[2..].iter().all(|(at, _)| *at > arrivals[1].0),
        "the others wait for the probe's answer"
    );
}

fn verdict_of(err: &abide_cap::BoxError) -> abide_classify::Classification {
    abide_classify::classify_error(&**err)
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_bucket_refusal_classifies_as_quota_exhaustion_with_the_probe_time() {
    let server = Server::new(
        Script::ExhaustAt {
            nth: 0,
            reset: 60 * S,
        },
        10 * MS,
    );
    let mut svc = ConcurrencyCapLayer::new().layer(server);
    drop(ready(&mut svc).await.call(request(None)).await.unwrap());
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    assert!(err.is::<BucketExhausted>());
    let c = verdict_of(&err);
    assert_eq!(c.class, abide_classify::Class::QuotaExhausted);
    assert!(!c.retryable);
    assert_eq!(c.retry_after, Some(60 * S));
    assert_eq!(c.processing, abide_classify::Processing::NotProcessed);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_classifies_as_retryable_overload_never_sent() {
    let server = Server::new(Script::Open, 10 * S);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .with_max_queue(0)
        .layer(server);
    let mut first = Box::pin(ready(&mut svc).await.call(request(None)));
    assert!(futures_poll(&mut first).is_pending());
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    assert!(err.is::<QueueFull>());
    let c = verdict_of(&err);
    assert_eq!(c.class, abide_classify::Class::Overloaded);
    assert!(c.retryable);
    assert_eq!(c.processing, abide_classify::Processing::NotProcessed);
}

#[tokio::test(start_paused = true)]
async fn a_wait_too_long_and_a_cost_too_high_are_not_retryable() {
    let server = Server::new(Script::Open, 10 * MS);
    let mut svc = ConcurrencyCapLayer::new()
        .with_max_wait(2 * S)
        .with_cost_quota(governor::Quota::per_minute(
            std::num::NonZeroU32::new(100).unwrap(),
        ))
        .layer(server);
    let err = ready(&mut svc)
        .await
        .call(request(Some(101)))
        .await
        .unwrap_err();
    assert!(err.is::<abide_cap::error::CostTooHigh>());
    let c = verdict_of(&err);
    assert_eq!(c.class, abide_classify::Class::ClientError);
    assert!(!c.retryable);

    svc.store()
        .pause(&bucket(), Instant::now() + 10 * S)
        .await
        .unwrap();
    let err = ready(&mut svc).await.call(request(None)).await.unwrap_err();
    assert!(err.is::<WaitTooLong>());
    let c = verdict_of(&err);
    assert_eq!(c.class, abide_classify::Class::ClientError);
    assert!(!c.retryable);
    assert_eq!(c.processing, abide_classify::Processing::NotProcessed);
}

#[tokio::test(start_paused = true)]
async fn a_limit_counted_in_concurrent_requests_caps_the_in_flight_requests() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    // (now, most) in flight at the server, and the most once the first answer arrived.
    let open = Arc::new(AtomicUsize::new(0));
    let most_after_first = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let server = {
        let (open, most, answered) = (open.clone(), most_after_first.clone(), answered.clone());
        tower::service_fn(move |_req: http::Request<String>| {
            let (open, most, answered) = (open.clone(), most.clone(), answered.clone());
            async move {
                let now_open = open.fetch_add(1, SeqCst) + 1;
                if answered.load(SeqCst) > 0 {
                    most.fetch_max(now_open, SeqCst);
                }
                tokio::time::sleep(100 * MS).await;
                open.fetch_sub(1, SeqCst);
                answered.fetch_add(1, SeqCst);
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .header("ratelimit-policy", r#""conc";q=2;qu="concurrent-requests""#)
                        .header("ratelimit", r#""conc";r=1"#)
                        .body(String::new())
                        .unwrap(),
                )
            }
        })
    };
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(8))
        .layer(server);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let res = svc
                    .clone()
                    .oneshot(
                        http::Request::get("http://api.example.com/")
                            .body(String::new())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                drop(res);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(answered.load(SeqCst), 40);
    assert!(
        most_after_first.load(SeqCst) <= 2,
        "once the server said 2 at once, at most 2 went at once: {}",
        most_after_first.load(SeqCst)
    );
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_while_waiting_for_its_slot_gives_the_slot_back() {
    let server = Server::new(Script::Open, 10 * MS);
    let mut svc = ConcurrencyCapLayer::new()
        .with_request_quota(governor::Quota::per_second(
            std::num::NonZeroU32::new(1).unwrap(),
        ))
        .layer(server.clone());
    let start = Instant::now();
    drop(ready(&mut svc).await.call(request(None)).await.unwrap());
    let mut waiting = Box::pin(ready(&mut svc).await.call(request(None)));
    assert!(
        futures_poll(&mut waiting).is_pending(),
        "paced to the next second"
    );
    drop(waiting);
    drop(ready(&mut svc).await.call(request(None)).await.unwrap());
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert_eq!(
        arrivals[1].0 - start,
        S,
        "the third request takes the dropped one's slot"
    );
}

#[tokio::test(start_paused = true)]
async fn before_any_cut_the_adaptive_cap_doubles_each_round_trip_to_meet_demand() {
    let server = Server::new(Script::Open, 100 * MS);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(2, 1, 64))
        .layer(server.clone());
    let start = server.start();
    run_workers(svc.clone(), 16, start + S, None).await;
    let limit = svc.stats(&bucket()).unwrap().limit.unwrap();
    // 2, 4, 8, 16 in four round trips; one per round trip would reach about 12.
    assert!(limit >= 16, "cap {limit} after 10 round trips");
    assert_eq!(
        server.max_concurrent(),
        16,
        "all 16 callers in flight at once"
    );
}

/// A server answering every request with `status` (and `Retry-After: retry_after`).
fn answering(
    status: u16,
    retry_after: Option<&'static str>,
) -> impl tower::Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_req: http::Request<String>| async move {
        let mut response = http::Response::builder().status(status);
        if let Some(wait) = retry_after {
            response = response.header("retry-after", wait);
        }
        Ok::<_, std::convert::Infallible>(response.body(String::new()).unwrap())
    })
}

#[tokio::test(start_paused = true)]
async fn an_overload_verdict_stating_a_wait_cuts_the_adaptive_cap_to_three_quarters() {
    let server = answering(529, Some("1"));
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(12, 1, 100))
        .layer(server);
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(response.status(), 529);
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(9));
}

#[tokio::test(start_paused = true)]
async fn a_lone_overload_without_a_wait_holds_the_bucket_and_leaves_the_cap_alone() {
    // Refusing a lone request, saying nothing: the server is down for everyone. The
    // outage circuit holds the bucket; a smaller cap would only slow the recovery.
    let server = answering(529, None);
    let mut svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(12, 1, 100))
        .layer(server);
    let response = ready(&mut svc).await.call(request(None)).await.unwrap();
    assert_eq!(response.status(), 529);
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(12));
    let start = Instant::now();
    ready(&mut svc).await.call(request(None)).await.unwrap();
    assert!(Instant::now() - start >= 250 * MS, "held behind the outage");
}

/// The instants a test server served at.
type Served = std::sync::Arc<std::sync::Mutex<Vec<Instant>>>;

/// A server running `slots` requests at once, each served in 20 ms; it refuses more with
/// 529 after `refusal` (and `Retry-After: 1` when `stating`). Returns it and the instants
/// it served at.
fn running_at_most(
    slots: usize,
    refusal: Duration,
    stating: bool,
) -> (
    impl tower::Service<
            http::Request<String>,
            Response = http::Response<String>,
            Error = std::convert::Infallible,
            Future = impl Send,
        > + Clone,
    Served,
) {
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let served = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = served.clone();
    let server = tower::service_fn(move |_req: http::Request<String>| {
        let (busy, served) = (busy.clone(), served.clone());
        async move {
            let status = if busy.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < slots {
                tokio::time::sleep(20 * MS).await;
                served.lock().unwrap().push(Instant::now());
                200
            } else {
                tokio::time::sleep(refusal).await;
                529
            };
            busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            let mut response = http::Response::builder().status(status);
            if stating {
                response = response.header("retry-after", "1");
            }
            Ok::<_, std::convert::Infallible>(response.body(String::new()).unwrap())
        }
    });
    (server, log)
}

#[tokio::test(start_paused = true)]
async fn an_overload_verdict_cuts_the_adaptive_cap_below_the_requests_it_refused_among() {
    // The server runs one request at a time and refuses a second with 529, saying when a
    // slot frees: two callers, a cap of 10. One refusal is enough to learn that fewer than
    // two run at once.
    let (server, _) = running_at_most(1, 20 * MS, true);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(10, 1, 100))
        .layer(server);
    let (a, b) = tokio::join!(
        svc.clone().oneshot(request(None)),
        svc.clone().oneshot(request(None))
    );
    let mut statuses = [a.unwrap().status(), b.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, [200, 529]);
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(1));
}

#[tokio::test(start_paused = true)]
async fn an_overload_without_a_wait_among_requests_served_meanwhile_cuts_the_cap_below_them() {
    // The same server, saying nothing but 529: that may be the server going down, until
    // it serves both a request in flight when the 529 came and one sent after it.
    // Refused at once; served in 20 ms.
    let (server, _) = running_at_most(1, Duration::ZERO, false);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(10, 1, 100))
        .layer(server);
    let first = svc.clone().oneshot(request(None));
    let second = async {
        tokio::time::sleep(5 * MS).await;
        svc.clone().oneshot(request(None)).await
    };
    let (a, b) = tokio::join!(first, second);
    assert_eq!(
        (a.unwrap().status().as_u16(), b.unwrap().status().as_u16()),
        (200, 529)
    );
    assert_eq!(
        svc.stats(&bucket()).unwrap().limit,
        Some(10),
        "not yet told apart from an outage"
    );
    let later = svc.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(later.status(), 200);
    assert_eq!(svc.stats(&bucket()).unwrap().limit, Some(1));
}

#[tokio::test(start_paused = true)]
async fn refusals_of_one_burst_past_what_the_server_runs_cut_the_cap_and_hold_nobody() {
    // The server runs two at a time (20 ms each) and refuses more with a bare 529. Once
    // the cap knows it, each growth past two draws a burst of refusals at the same
    // moment: the server's concurrency, not an outage. The cap is cut; the bucket is not
    // held behind a probe (which would leave the server idle for a round trip or more).
    let (server, served) = running_at_most(2, MS, false);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::adaptive(6, 1, 100))
        .layer(server);
    let start = Instant::now();
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while Instant::now() < start + 10 * S {
                    let _ = svc.clone().oneshot(request(None)).await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let served = served.lock().unwrap();
    // Two slots of 20 ms for 10 s: 1000 at most (807 measured). The first refusals are
    // not told apart from an outage yet (one hold); after that the server is never left
    // idle long. Before the cut, a burst now and then held everyone for up to 0.5 s
    // (757 served).
    let idle = served
        .windows(2)
        .filter(|w| w[0] > start + S)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap();
    assert!(idle < 40 * MS, "the server idled {idle:?} between answers");
    assert!(served.len() > 790, "{} served", served.len());
    let limit = svc.stats(&bucket()).unwrap().limit.unwrap();
    assert!((2..=3).contains(&limit), "cap {limit}");
}

#[tokio::test(start_paused = true)]
async fn requests_held_behind_a_probe_go_as_soon_as_its_answer_is_in() {
    let server = Server::new(
        Script::ExhaustAt {
            nth: 0,
            reset: 30 * S,
        },
        10 * MS,
    );
    let svc = ConcurrencyCapLayer::new()
        .with_exhaustion_policy(abide_cap::ExhaustionPolicy::HoldAndProbe)
        .layer(server.clone());
    assert_eq!(
        svc.clone().oneshot(request(None)).await.unwrap().status(),
        403
    );
    let held: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(request(None))))
        .collect();
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    let arrivals = server.arrivals();
    let answer = arrivals[1].0 + 10 * MS;
    assert!(
        arrivals[2..].iter().all(|(at, _)| *at == answer),
        "held requests go at the probe's answer, not at a later poll: {:?}",
        arrivals
            .iter()
            .map(|(at, _)| *at - arrivals[0].0)
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_is_marked_as_for_others_only_when_the_role_passes_between_live_requests() {
    let server = answering(503, None);
    let svc = ConcurrencyCapLayer::new().layer(server);
    let with = |probe: &abide_classify::HeldProbe| {
        let mut r = request(None);
        r.extensions_mut().insert(probe.clone());
        r
    };
    let (a, b) = (
        abide_classify::HeldProbe::new(),
        abide_classify::HeldProbe::new(),
    );
    // The first failure opens the outage; the same request's next attempt is the probe,
    // alone: it spends its own attempt.
    svc.clone().oneshot(with(&a)).await.unwrap();
    svc.clone().oneshot(with(&a)).await.unwrap();
    assert!(!a.take(), "a lone request probing for itself");
    // Another request takes the probe role: the bucket has more than one.
    svc.clone().oneshot(with(&b)).await.unwrap();
    assert!(b.take(), "a probe for others too");
    // Both have ended (served, or given up): the next request holds nobody back, as a
    // lone caller's next request after one that probed.
    drop((a, b));
    let c = abide_classify::HeldProbe::new();
    svc.clone().oneshot(with(&c)).await.unwrap();
    assert!(
        !c.take(),
        "the probers before it have ended: it probes for itself"
    );
}

/// Sends `n` requests at once through `layer` (on a server answering at once) and
/// returns how many succeeded, the errors, and the last arrival from the start.
async fn batch(
    layer: ConcurrencyCapLayer,
    n: usize,
) -> (usize, Vec<abide_cap::BoxError>, Duration) {
    let server = Server::new(Script::Open, MS);
    let svc = layer.layer(server.clone());
    let start = server.start();
    let calls: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(request(None))))
        .collect();
    let (mut ok, mut errors) = (0, Vec::new());
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => errors.push(e),
        }
    }
    let last = server.arrivals().iter().map(|(at, _)| *at).max().unwrap();
    (ok, errors, last - start)
}

fn one_a_minute() -> abide_cap::Quota {
    abide_cap::Quota::per_minute(std::num::NonZeroU32::new(1).unwrap())
}

#[tokio::test(start_paused = true)]
async fn by_default_a_batch_waits_its_turn_however_long_its_queue() {
    // 70 requests behind one a minute: the last one's turn is 69 minutes away, past the
    // default max wait, but the queue moves a request a minute.
    let layer = ConcurrencyCapLayer::new().with_request_quota(one_a_minute());
    let (ok, errors, last) = batch(layer, 70).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ok, 70);
    assert!(last >= 69 * 60 * S && last < 70 * 60 * S, "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn an_explicit_max_wait_bounds_each_request_s_whole_wait() {
    let layer = ConcurrencyCapLayer::new()
        .with_request_quota(one_a_minute())
        .with_max_wait(abide_cap::DEFAULT_MAX_WAIT);
    let (ok, errors, last) = batch(layer, 70).await;
    // Turns up to 61 minutes away are waited (62 requests); the rest fail, unsent.
    assert_eq!(ok, 62, "{errors:?}");
    assert_eq!(errors.len(), 8);
    for e in &errors {
        let e = e
            .downcast_ref::<WaitTooLong>()
            .unwrap_or_else(|| panic!("{e}"));
        assert_eq!(e.max_wait(), abide_cap::DEFAULT_MAX_WAIT);
        assert!(e.would_wait() > abide_cap::DEFAULT_MAX_WAIT, "{e:?}");
    }
    assert!(last <= abide_cap::DEFAULT_MAX_WAIT, "{last:?}");
}

#[tokio::test(start_paused = true)]
async fn by_default_a_pace_slower_than_one_request_per_max_wait_fails_at_once() {
    // One request every two hours (absurd limits a server might state): the second
    // request's turn is two hours away, with nobody ahead of it.
    let two_hours = abide_cap::Quota::with_period(7200 * S).unwrap();
    let layer = ConcurrencyCapLayer::new().with_request_quota(two_hours);
    let started = Instant::now();
    let (ok, errors, _) = batch(layer, 2).await;
    assert_eq!(ok, 1);
    let e = errors[0]
        .downcast_ref::<WaitTooLong>()
        .expect("WaitTooLong");
    assert!(e.would_wait() > abide_cap::DEFAULT_MAX_WAIT, "{e:?}");
    assert!(
        started.elapsed() < S,
        "failed after {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn by_default_a_queue_for_permits_waits_while_the_permits_free() {
    // One in flight, each answer taking a minute: the 70th request's permit frees after
    // 69 minutes, and one frees every minute until then.
    let server = Server::new(Script::Open, 60 * S);
    let svc = ConcurrencyCapLayer::new()
        .with_in_flight(InFlight::fixed(1))
        .layer(server.clone());
    let calls: Vec<_> = (0..70)
        .map(|_| tokio::spawn(svc.clone().oneshot(request(None))))
        .collect();
    for c in calls {
        let response = c.await.unwrap().expect("waits its turn");
        drop(response);
    }
    assert_eq!(server.arrivals().len(), 70);
}
