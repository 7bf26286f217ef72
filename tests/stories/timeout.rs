//! Story 10: a per-attempt timeout.

use crate::support::{call, client, get, request, Api, Reply, S};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{classify_error, Class, Processing};
use abide::retry::{AttemptTimedOut, BackoffRetryLayer};
use tokio::time::Instant;

/// Gives the first attempt `first`; answers the next ones.
fn first_then_ok(first: Reply) -> Api {
    let mut first = Some(first);
    Api::new(S / 10, move |_, _, _| {
        first.take().unwrap_or_else(Reply::ok)
    })
}

/// Never answers the first attempt; answers the next ones.
fn silent_once() -> Api {
    first_then_ok(Reply::Hang)
}

#[tokio::test(start_paused = true)]
async fn a_silent_attempt_is_cut_at_the_attempt_timeout_and_an_idempotent_request_retried() {
    let api = silent_once();
    let c = client(
        &api,
        BackoffRetryLayer::new()
            .with_seed(10)
            .with_attempt_timeout(2 * S),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let done = call(c, get("g")).await;
    assert_eq!(done.result.unwrap(), (200, 2));
    let took = done.at - start;
    assert!(took >= 2 * S && took < 4 * S, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_is_an_ambiguous_failure_so_a_post_is_not_sent_twice() {
    let api = silent_once();
    let c = client(
        &api,
        BackoffRetryLayer::new()
            .with_seed(11)
            .with_attempt_timeout(2 * S),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let done = call(c, request("p", None)).await;
    let took = done.at - start;
    assert!(took >= 2 * S && took < 3 * S, "{took:?}");
    let err = done.result.expect_err("timed out");
    let timed_out = err
        .downcast_ref::<AttemptTimedOut>()
        .unwrap_or_else(|| panic!("not AttemptTimedOut: {err}"));
    assert_eq!(timed_out.timeout(), 2 * S);
    let verdict = classify_error(&*err);
    assert_eq!(verdict.class, Class::ServerError);
    assert_eq!(verdict.processing, Processing::Ambiguous);
    assert!(verdict.retryable);
    assert_eq!(api.arrivals().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_attempt_timeout_times_the_server_not_the_wait_in_the_cap() {
    // The first attempt draws a 429 stating a 30 s wait; every later one is answered.
    let api = first_then_ok(Reply::status(429).header("retry-after", "30"));
    let c = client(
        &api,
        BackoffRetryLayer::new()
            .with_seed(12)
            .with_attempt_timeout(10 * S),
        ConcurrencyCapLayer::new(),
    );
    // The first request's 429 pauses the bucket for 30 s; the four sent just after it
    // wait there, three times the attempt timeout, and then go: held, not timed out, so a
    // POST is not failed as ambiguous, and each is sent once.
    let first = call(c.clone(), request("first", None));
    let first = tokio::spawn(first);
    tokio::time::sleep(S).await;
    let mut rest = Vec::new();
    for i in 0..4 {
        rest.push(tokio::spawn(call(c.clone(), request(i, None))));
    }
    let start = Instant::now();
    for t in rest {
        let done = t.await.unwrap();
        assert_eq!(done.result.as_ref().ok(), Some(&(200, 1)), "{done:?}");
        assert!(done.at - start >= 28 * S, "{:?}", done.at - start);
    }
    assert!(first.await.unwrap().ok());
    assert_eq!(api.arrivals().len(), 1 + 1 + 4);
}
