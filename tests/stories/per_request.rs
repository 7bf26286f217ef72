//! Stories 1 and 3: verdicts about one request, and a daily limit that states a short wait.

use crate::support::{call, call_all, client, request, Api, Reply, MS, S};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification, QuotaScope};
use abide::retry::BackoffRetryLayer;
use tokio::time::Instant;

/// OpenAI's "Request too large for gpt-4o ... Limit 10000, Requested 20000. The input or
/// output tokens must be reduced": a 429 about this request, whose headers show the
/// tokens bucket as the server counts it (drained by the rejected request's estimate).
fn too_large() -> Reply {
    Reply::status(429)
        .header("x-ratelimit-limit-requests", "500")
        .header("x-ratelimit-remaining-requests", "499")
        .header("x-ratelimit-reset-requests", "120ms")
        .header("x-ratelimit-limit-tokens", "10000")
        .header("x-ratelimit-remaining-tokens", "0")
        .header("x-ratelimit-reset-tokens", "1m0s")
        .verdict(
            Classification::new(Class::ClientError, "test: request too large")
                .with_scope(QuotaScope::Tokens)
                .with_retry_after(Some(60 * S)),
        )
}

#[tokio::test(start_paused = true)]
async fn one_oversized_request_neither_pauses_nor_slows_the_requests_after_it() {
    let api = Api::new(10 * MS, |_, id, _| {
        if id == "big" {
            too_large()
        } else {
            Reply::ok()
        }
    });
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(1),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let big = call(c.clone(), request("big", Some(20_000))).await;
    assert_eq!(
        big.result.unwrap(),
        (429, 1),
        "returned at once, not retried"
    );

    let after = call_all(&c, (0..20).map(|i| request(i, Some(500))).collect()).await;
    assert!(after.iter().all(|d| d.ok()), "{after:?}");
    let last = after.iter().map(|d| d.at).max().unwrap();
    assert!(
        last - start < 200 * MS,
        "the other requests were held {:?} by a verdict about one request",
        last - start
    );
}

#[tokio::test(start_paused = true)]
async fn an_oversized_request_with_a_quota_exhaustion_shaped_answer_still_fails_alone() {
    // The same answer as a 400 (Azure, Anthropic): never teaches either.
    let api = Api::new(10 * MS, |_, id, _| {
        if id == "big" {
            match too_large() {
                Reply::Answer {
                    headers, verdict, ..
                } => Reply::Answer {
                    status: 400,
                    headers,
                    verdict,
                },
                other => other,
            }
        } else {
            Reply::ok()
        }
    });
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(2),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let both = call_all(
        &c,
        vec![request("big", Some(20_000)), request("small", Some(500))],
    )
    .await;
    assert_eq!(both[0].result.as_ref().unwrap(), &(400, 1));
    let small = call(c.clone(), request("next", Some(500))).await;
    assert!(both[1].ok() && small.ok());
    assert!(small.at - start < 100 * MS, "{:?}", small.at - start);
}

#[tokio::test(start_paused = true)]
async fn a_daily_limit_stating_a_short_wait_waits_it_and_then_succeeds() {
    // "Rate limit reached ... on requests per day (RPD): Limit 10000, Used 10000,
    // Requested 1. Please try again in 8.64s." OpenAI and Groq refill daily limits
    // continuously: one request's worth comes back every 8.64 s.
    let opened = Instant::now() + 8640 * MS;
    let api = Api::new(10 * MS, move |now, _, _| {
        if now < opened {
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: per day, try again in 8.64s")
                    .with_scope(QuotaScope::Daily)
                    .with_retry_after(Some(opened - now)),
            )
        } else {
            Reply::ok()
        }
    });
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(3),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let all = call_all(&c, (0..3).map(|i| request(i, None)).collect()).await;
    for d in &all {
        assert!(d.ok(), "{d:?}");
        let took = d.at - start;
        assert!(took >= 8640 * MS && took < 10 * S, "{took:?}");
    }
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(
        refused <= 3,
        "{refused} refusals: the stated wait was not honoured"
    );
}
