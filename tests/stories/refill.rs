//! Story 8: a token bucket is used to its refill, whatever order its answers come back in.

use crate::support::{in_turn, request, Api, Reply, MS};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification, QuotaScope};
use abide::retry::BackoffRetryLayer;
use tokio::time::Instant;

/// OpenAI's request limit, 300 a minute (5 a second), its bucket full at the start.
/// Each answer takes 500 ms ± 200 ms (a fixed pseudo-random sequence of draws), so
/// answers come back in another order than the requests reached the server.
fn jittered_bucket() -> Api {
    let start = Instant::now();
    let (capacity, per_s) = (300.0, 5.0);
    let mut level = capacity;
    let mut at = start;
    let mut draw = 0x9e37_79b9_u32;
    Api::new(300 * MS, move |now, _, _| {
        level = (level + (now - at).as_secs_f64() * per_s).min(capacity);
        at = now;
        // xorshift: the extra latency of this answer, 0 to 400 ms.
        draw ^= draw << 13;
        draw ^= draw >> 17;
        draw ^= draw << 5;
        let extra = MS * (draw % 401);
        let reply = if level < 1.0 {
            let wait = (1.0 - level) / per_s;
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: rate limit reached")
                    .with_scope(QuotaScope::Requests)
                    .with_retry_after(Some(std::time::Duration::from_secs_f64(wait))),
            )
        } else {
            level -= 1.0;
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-requests", "300")
            .header(
                "x-ratelimit-remaining-requests",
                format!("{}", level.floor()),
            )
            .header(
                "x-ratelimit-reset-requests",
                format!("{:.3}s", (capacity - level) / per_s),
            )
            .later_by(extra)
    })
}

/// A lone client's answers come back in another order than its requests reached the
/// server. Between two answers the level then moves a few units more or less than its
/// own requests took: taken for others drawing on the bucket, that noise left a share of
/// the refill unused (121.5 s). And a quick answer after a slow one places the schedule
/// earlier: slots placed then went ahead of slots reserved before them, and counting by
/// admission, an answer to one of those took the earlier slots as counted already,
/// overdrawing the bucket (5 refusals once the noise was no longer taken for others).
#[tokio::test(start_paused = true)]
async fn a_lone_client_whose_answers_come_back_out_of_order_uses_the_whole_refill() {
    let api = jittered_bucket();
    let c = crate::support::client(
        &api,
        BackoffRetryLayer::new().with_seed(8),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    // 32 callers, 28 requests each: 300 from the full bucket, then 596 at 5 a second is
    // 119.2 s, and the last answer up to 0.7 s later.
    let last = in_turn(&c, 32, 28, |caller, i| request(caller * 100 + i, None)).await;
    let took = (last - start).as_secs_f64();
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert_eq!(refused, 0, "the bucket was overdrawn");
    // Within 1.5 % of the 119.2 s the refill allows (the last answer comes up to 0.7 s
    // after the last request; the schedule runs about a latency behind the level).
    assert!(
        took < 119.2 * 1.015,
        "took {took:.2} s where 119.2 s would do"
    );
    assert!(took > 119.2, "faster than the bucket refills: {took:.2} s");
}
