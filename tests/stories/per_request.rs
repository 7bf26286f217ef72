//! Stories 1 and 3: verdicts about one request, and a daily limit that states a short wait.

use crate::support::{abide_client, call, call_all, client, request, Api, Reply, MS, S};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification, QuotaScope};
use abide::retry::BackoffRetryLayer;
use abide::AbideLayer;
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
                    headers,
                    verdict,
                    body,
                    extra,
                    ..
                } => Reply::Answer {
                    status: 400,
                    headers,
                    verdict,
                    body,
                    extra,
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
    let refill = 8640 * MS;
    let mut granted = Instant::now();
    let api = Api::new(10 * MS, move |now, _, _| {
        if now < granted + refill {
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: per day, try again in 8.64s")
                    .with_scope(QuotaScope::Daily)
                    .with_retry_after(Some(granted + refill - now)),
            )
        } else {
            granted += refill;
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
    let mut took: Vec<_> = all
        .iter()
        .map(|d| {
            assert!(d.ok(), "{d:?}");
            d.at - start
        })
        .collect();
    took.sort();
    // One at each refill: 8.64 s, 17.28 s, 25.92 s.
    for (i, t) in took.iter().enumerate() {
        let due = refill * (i as u32 + 1);
        assert!(
            *t >= due && *t < due + S,
            "request {i} done at {t:?}, due {due:?}"
        );
    }
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(
        refused <= 5,
        "{refused} refusals: the stated wait was not honoured"
    );
}

/// OpenAI's answer to a prompt larger than the whole tokens-per-minute limit, as the API
/// sends it (a 429 with the bucket's headers).
const TOO_LARGE_BODY: &str = r#"{"error":{"message":"Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 45000. The input or output tokens must be reduced in order to run successfully.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;

#[tokio::test(start_paused = true)]
async fn through_the_whole_stack_oversized_prompts_fail_alone_and_reserve_nothing() {
    // 30 000 tokens a minute (500 a second); each small request costs 500.
    let mut tokens = 30_000.0_f64;
    let mut at = Instant::now();
    let api = Api::new(10 * MS, move |now, _, cost| {
        tokens = (tokens + (now - at).as_secs_f64() * 500.0).min(30_000.0);
        at = now;
        let headers = |r: Reply, left: f64| {
            r.header("x-ratelimit-limit-tokens", "30000")
                .header("x-ratelimit-remaining-tokens", format!("{}", left.floor()))
                .header(
                    "x-ratelimit-reset-tokens",
                    format!("{:.3}s", (30_000.0 - left) / 500.0),
                )
        };
        if f64::from(cost) > 30_000.0 {
            return headers(Reply::status(429).body(TOO_LARGE_BODY), tokens);
        }
        if tokens < f64::from(cost) {
            return headers(Reply::status(429), tokens);
        }
        tokens -= f64::from(cost);
        headers(Reply::ok(), tokens)
    });
    let c = abide_client(
        &api,
        AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(12)),
    );
    let start = Instant::now();
    // 60 small requests (30 000 tokens: one full bucket) with 5 oversized among them.
    let reqs = (0..65)
        .map(|i| {
            let cost = if i % 13 == 3 { 45_000 } else { 500 };
            request(i, Some(cost))
        })
        .collect();
    let all = call_all(&c, reqs).await;
    let (big, small): (Vec<_>, Vec<_>) = all.iter().enumerate().partition(|(i, _)| i % 13 == 3);
    for (_, d) in &big {
        assert_eq!(
            d.result.as_ref().unwrap(),
            &(429, 1),
            "failed alone, not retried"
        );
    }
    for (_, d) in &small {
        assert!(d.ok(), "{d:?}");
    }
    let last = small.iter().map(|(_, d)| d.at).max().unwrap();
    assert!(
        last - start < 2 * S,
        "one bucket's worth took {:?}: the oversized prompts held the quota",
        last - start
    );
}
