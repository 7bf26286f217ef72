//! Story 2: a throttle on one scope constrains that scope only.

use crate::support::{all_succeed, call_all, client, request, Api, Reply, MS, S};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification, QuotaScope};
use abide::retry::BackoffRetryLayer;
use std::time::Duration;
use tokio::time::Instant;

/// One continuously refilling bucket of the server (OpenAI's model).
struct Bucket {
    capacity: f64,
    per_s: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let dt = (now - self.at).as_secs_f64();
        self.level = (self.level + dt * self.per_s).min(self.capacity);
        self.at = now;
    }

    fn until_full(&self) -> String {
        format!("{:.3}s", (self.capacity - self.level) / self.per_s)
    }

    fn until(&self, units: f64) -> Duration {
        Duration::from_secs_f64(((units - self.level) / self.per_s).max(0.0))
    }
}

/// Requests: 600 a minute, 2 left at the start; tokens: 100 000 a minute, full.
fn openai_server() -> Api {
    let now = Instant::now();
    let mut requests = Bucket {
        capacity: 600.0,
        per_s: 10.0,
        level: 2.0,
        at: now,
    };
    let mut tokens = Bucket {
        capacity: 100_000.0,
        per_s: 100_000.0 / 60.0,
        level: 100_000.0,
        at: now,
    };
    Api::new(50 * MS, move |now, _, cost| {
        requests.refill(now);
        tokens.refill(now);
        let cost = f64::from(cost);
        let refused = if requests.level < 1.0 {
            Some((QuotaScope::Requests, requests.until(1.0)))
        } else if tokens.level < cost {
            Some((QuotaScope::Tokens, tokens.until(cost)))
        } else {
            requests.level -= 1.0;
            tokens.level -= cost;
            None
        };
        let reply = match &refused {
            Some((scope, wait)) => Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: rate limit reached")
                    .with_scope(*scope)
                    .with_retry_after(Some(*wait)),
            ),
            None => Reply::ok(),
        };
        reply
            .header("x-ratelimit-limit-requests", "600")
            .header(
                "x-ratelimit-remaining-requests",
                format!("{}", requests.level.floor()),
            )
            .header("x-ratelimit-reset-requests", requests.until_full())
            .header("x-ratelimit-limit-tokens", "100000")
            .header(
                "x-ratelimit-remaining-tokens",
                format!("{}", tokens.level.floor()),
            )
            .header("x-ratelimit-reset-tokens", tokens.until_full())
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_on_the_request_limit_leaves_the_token_limit_usable() {
    let api = openai_server();
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(4),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    // 60 requests of 1000 tokens: 60 % of the token bucket, so only the request limit
    // (2 now, then 10 a second) binds: about 6 s.
    let all = call_all(&c, (0..60).map(|i| request(i, Some(1000))).collect()).await;
    assert!(all.iter().all(|d| d.ok()), "{all:?}");
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(refused >= 1, "the story needs a 429 on the request limit");
    let last = all.iter().map(|d| d.at).max().unwrap();
    assert!(
        last - start < 8 * S,
        "took {:?}: the request limit's 429 slowed the tokens scope",
        last - start
    );
}

/// A fixed window of 10 s that advertises 100 requests but grants 60; `headers` adds an
/// answer's headers from (refused, requests used, seconds to the window's end).
fn overstating_window(headers: fn(Reply, bool, u64, u64) -> Reply) -> Api {
    let start = Instant::now();
    let mut window = 0u64;
    let mut used = 0u64;
    Api::new(50 * MS, move |now, _, _| {
        let elapsed = (now - start).as_secs();
        if elapsed / 10 != window {
            window = elapsed / 10;
            used = 0;
        }
        let reset = 10 - elapsed % 10;
        let refused = used >= 60;
        if !refused {
            used += 1;
        }
        let reply = if refused {
            Reply::status(429)
        } else {
            Reply::ok()
        };
        headers(reply, refused, used, reset)
    })
}

/// IETF headers; the server says it grants less only by refusing (no wait stated).
fn ietf_headers(reply: Reply, _: bool, used: u64, reset: u64) -> Reply {
    reply
        .header("ratelimit-policy", "\"default\";q=100;w=10")
        .header(
            "ratelimit",
            format!("\"default\";r={};t={reset}", 100u64.saturating_sub(used)),
        )
}

/// X-RateLimit headers; refusals state the wait to the window's end.
fn x_ratelimit_headers(reply: Reply, refused: bool, used: u64, reset: u64) -> Reply {
    let reply = if refused {
        reply.header("retry-after", reset.to_string())
    } else {
        reply
    };
    reply
        .header("x-ratelimit-limit", "100")
        .header("x-ratelimit-remaining", (100 - used).to_string())
        .header("x-ratelimit-reset", reset.to_string())
}

#[tokio::test(start_paused = true)]
async fn headers_that_overstate_a_window_stop_drawing_429s_once_refused() {
    let api = overstating_window(ietf_headers);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(13)),
    );
    // 600 requests: 10 windows of 60 granted.
    let all = call_all(&c, (0..600).map(|i| request(i, None)).collect()).await;
    let ok = all.iter().filter(|d| d.ok()).count();
    assert_eq!(ok, 600, "lost {}", 600 - ok);
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(
        refused * 10 <= ok,
        "{refused} refusals for {ok} successes: the overstated headers kept being believed"
    );
}

/// The first refusal comes after a lull: what the window took (60 in 10 s) is the rate
/// the server enforces, not the average since the client began (10 requests, then
/// nothing for 120 s), which would pace the rest at a fraction of it.
#[tokio::test(start_paused = true)]
async fn headers_that_overstate_a_window_refused_after_a_lull_pace_at_what_the_window_took() {
    let api = overstating_window(x_ratelimit_headers);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(23)),
    );
    all_succeed(&c, (0..10).map(|i| request(i, None)).collect()).await;
    tokio::time::sleep_until(Instant::now() + 120 * S).await;
    // 600 more from the start of a window: 10 windows of 60, 100 s at best.
    let took = all_succeed(&c, (10..610).map(|i| request(i, None)).collect()).await;
    assert!(
        took < 110 * S,
        "took {took:?} for 100 s of quota: the rate learned counted the lull"
    );
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    // The first window after the lull is spent blind (the headers say 100): the
    // refusals of the requests in flight past 60 are its cost; then about one a window.
    assert!(refused <= 30, "{refused} refusals for 610 successes");
}

/// A sliding window of `limit` requests per `window` behind OpenAI's header names:
/// `reset` is when the window is whole again (the newest request in it ages out), not a
/// refill time.
fn sliding_window_in_openai_names(limit: usize, window: Duration) -> Api {
    let mut sent: std::collections::VecDeque<Instant> = Default::default();
    Api::new(50 * MS, move |now, _, _| {
        while sent.front().is_some_and(|t| now - *t >= window) {
            sent.pop_front();
        }
        let refused = sent.len() >= limit;
        if !refused {
            sent.push_back(now);
        }
        let reset = sent.back().map_or(Duration::ZERO, |t| (*t + window) - now);
        let reply = if refused {
            let wait = (*sent.front().unwrap() + window) - now;
            Reply::status(429).header("retry-after-ms", wait.as_millis().to_string())
        } else {
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-requests", limit.to_string())
            .header(
                "x-ratelimit-remaining-requests",
                (limit - sent.len()).to_string(),
            )
            .header(
                "x-ratelimit-reset-requests",
                format!("{}ms", reset.as_millis()),
            )
    })
}

#[tokio::test(start_paused = true)]
async fn a_sliding_window_behind_openai_header_names_is_used_at_its_rate() {
    let api = sliding_window_in_openai_names(18, 2 * S);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(14)),
    );
    // 360 requests at 9 a second: 40 s at best.
    let took = all_succeed(&c, (0..360).map(|i| request(i, None)).collect()).await;
    assert!(took < 48 * S, "took {:?} for 40 s of quota", took);
}

/// A long sliding window met by one burst: the first answers already state a reset
/// (the window's length) far sooner than a refilling bucket missing that much could be
/// full again, so the scope is a window from the start, not a bucket refilling one
/// request every 30 s / 11.
#[tokio::test(start_paused = true)]
async fn a_burst_into_a_long_sliding_window_behind_openai_names_waits_for_the_window() {
    let api = sliding_window_in_openai_names(12, 30 * S);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(15)),
    );
    // 41 requests, 12 per 30 s: the last 5 go when the third window has aged out, 90 s.
    let took = all_succeed(&c, (0..41).map(|i| request(i, None)).collect()).await;
    assert!(took < 95 * S, "took {:?} for 90 s of quota", took);
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(refused <= 1, "{refused} refusals");
}

/// A continuously refilling bucket behind OpenAI's header names (`reset` = until full
/// again) counting `scope` (`requests`: 1 a request; `tokens`: the declared cost), with
/// `level` of `capacity` left at the start, whose 429 states no `Retry-After`.
fn refilling_without_retry_after(scope: &'static str, capacity: f64, level: f64) -> Api {
    let mut bucket = Bucket {
        capacity,
        per_s: capacity / 60.0,
        level,
        at: Instant::now(),
    };
    let (limit, remaining, reset) = match scope {
        "requests" => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        _ => (
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
    };
    Api::new(50 * MS, move |now, _, cost| {
        bucket.refill(now);
        let units = if scope == "requests" {
            1.0
        } else {
            f64::from(cost)
        };
        let refused = bucket.level < units;
        if !refused {
            bucket.level -= units;
        }
        let reply = if refused {
            Reply::status(429)
        } else {
            Reply::ok()
        };
        reply
            .header(limit, format!("{capacity}"))
            .header(remaining, format!("{}", bucket.level.floor()))
            .header(reset, bucket.until_full())
    })
}

#[tokio::test(start_paused = true)]
async fn a_429_from_a_refilling_bucket_waits_for_one_request_not_for_a_full_bucket() {
    // 600 requests a minute, 5 left.
    let api = refilling_without_retry_after("requests", 600.0, 5.0);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::openai().with_retry(BackoffRetryLayer::new().with_seed(21)),
    );
    // 50 requests at 10 a second after the first 5: about 4.5 s. Waiting for the reset
    // the headers state (the bucket full again, a minute) would take a minute.
    let took = all_succeed(&c, (0..50).map(|i| request(i, None)).collect()).await;
    assert!(
        took < 7 * S,
        "took {:?}: a 429 paused the bucket until it was full",
        took
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_from_a_refilling_token_bucket_paces_the_cost_not_a_full_bucket() {
    // 60 000 tokens a minute, 3 000 left.
    let api = refilling_without_retry_after("tokens", 60_000.0, 3_000.0);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::openai().with_retry(BackoffRetryLayer::new().with_seed(22)),
    );
    // 30 requests of 1 000 tokens at 1 000 tokens a second after the first 3: about 27 s.
    // Waiting for the bucket to be full again (a minute) after each 429 takes minutes.
    let took = all_succeed(&c, (0..30).map(|i| request(i, Some(1000))).collect()).await;
    assert!(
        took < 32 * S,
        "took {:?}: a 429 paused the bucket until it was full",
        took
    );
}

/// A token bucket of 20 requests a second (burst 20) that states no limits: a 429 with
/// `retry-after-ms: 1` and nothing else, as gRPC pushback gives. Its answers take 20 ms
/// plus up to 9 ms of jitter, so the refusals of one burst arrive a few ms apart.
fn silent_bucket() -> Api {
    let mut requests = Bucket {
        capacity: 20.0,
        per_s: 20.0,
        level: 20.0,
        at: Instant::now(),
    };
    let mut n = 0u64;
    Api::new(20 * MS, move |now, _, _| {
        requests.refill(now);
        n += 1;
        let jitter = MS * (n * 7 % 10) as u32;
        if requests.level < 1.0 {
            return Reply::status(429)
                .header("retry-after-ms", "1")
                .later_by(jitter);
        }
        requests.level -= 1.0;
        Reply::ok().later_by(jitter)
    })
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_429s_cuts_the_learned_send_rate_once() {
    let api = silent_bucket();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(23)),
    );
    // 200 requests at once: 20 in the burst, then 20 a second, about 9 s. The burst's
    // refusals arrive a few milliseconds apart, after the 1 ms pause of the first: each
    // one cut the learned rate again, down to one request in 100 s.
    let took = all_succeed(&c, (0..200).map(|i| request(i, None)).collect()).await;
    assert!(took < 30 * S, "took {:?}: the send rate collapsed", took);
}

/// A sliding window of 3 580 tokens per 10 s behind OpenAI's header names (`reset` is
/// when the newest spend ages out, not a refill time), answering in 1.3 s; its 429
/// states the wait until enough has aged out.
fn sliding_token_window_in_openai_names() -> Api {
    let mut spent: std::collections::VecDeque<(Instant, u32)> = Default::default();
    Api::new(1300 * MS, move |now, _, cost| {
        while spent.front().is_some_and(|(t, _)| now - *t >= 10 * S) {
            spent.pop_front();
        }
        let used: u32 = spent.iter().map(|(_, c)| c).sum();
        let refused = used + cost > 3580;
        if !refused {
            spent.push_back((now, cost));
        }
        let used: u32 = spent.iter().map(|(_, c)| c).sum();
        let reset = spent
            .back()
            .map_or(Duration::ZERO, |(t, _)| (*t + 10 * S) - now);
        let reply = if refused {
            let mut freed = 0;
            let mut wait = Duration::ZERO;
            for (t, c) in &spent {
                freed += c;
                wait = (*t + 10 * S) - now;
                if used - freed + cost <= 3580 {
                    break;
                }
            }
            Reply::status(429).header("retry-after-ms", wait.as_millis().to_string())
        } else {
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-tokens", "3580")
            .header("x-ratelimit-remaining-tokens", (3580 - used).to_string())
            .header(
                "x-ratelimit-reset-tokens",
                format!("{}ms", reset.as_millis()),
            )
    })
}

#[tokio::test(start_paused = true)]
async fn a_sliding_token_window_behind_openai_header_names_is_paced_as_a_window() {
    let api = sliding_token_window_in_openai_names();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::openai().with_retry(BackoffRetryLayer::new().with_seed(24)),
    );
    let start = Instant::now();
    // 160 requests of 182 to 740 tokens (461 on average): 73 800 tokens, 21 windows of
    // 3 580, about 206 s at best. Paced as a refilling bucket, the window drew a 429 for
    // every nine successes and took almost twice as long.
    let costs = (0..160u32).map(|i| 182 + (i * 97) % 559);
    let all = call_all(
        &c,
        costs
            .enumerate()
            .map(|(i, c)| request(i, Some(c)))
            .collect(),
    )
    .await;
    assert!(all.iter().all(|d| d.ok()), "{all:?}");
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    let last = all.iter().map(|d| d.at).max().unwrap();
    assert!(
        refused <= 8 && last - start < 260 * S,
        "{refused} refusals, {:?}: the window was paced as a refilling bucket",
        last - start
    );
}

/// An hourly window of 5 000 requests (IETF draft 07 headers, as Honeycomb sends them),
/// 50 minutes from its reset with 1 200 left.
fn hourly_window() -> Api {
    let start = Instant::now();
    let mut used = 3800u64;
    Api::new(50 * MS, move |now, _, _| {
        let reset = 3000u64.saturating_sub((now - start).as_secs()).max(1);
        let refused = used >= 5000;
        if !refused {
            used += 1;
        }
        let reply = if refused {
            Reply::status(429).header("retry-after", reset.to_string())
        } else {
            Reply::ok()
        };
        reply.header(
            "ratelimit",
            format!("limit=5000, remaining={}, reset={reset}", 5000 - used),
        )
    })
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fits_an_hourly_quota_is_not_stretched_over_the_hour() {
    let api = hourly_window();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(25)),
    );
    // 1 000 requests of the 1 200 left this hour: as fast as the in-flight cap allows, a
    // few seconds. Spread over the 50 minutes beyond half an hour ahead, the last 280
    // went one every 2.5 s.
    let took = all_succeed(&c, (0..1000).map(|i| request(i, None)).collect()).await;
    assert!(
        took < 60 * S,
        "took {:?}: the quota was spread over the hour",
        took
    );
}

/// A fixed window of 10 000 tokens per 10 s in IETF headers whose policy names tokens but
/// states no unit (`"tokens";q=10000;w=10`, no `qu`).
fn ietf_token_window_without_unit() -> Api {
    let start = Instant::now();
    let (mut window, mut used) = (0u64, 0u32);
    Api::new(50 * MS, move |now, _, cost| {
        let elapsed = (now - start).as_secs();
        if elapsed / 10 != window {
            window = elapsed / 10;
            used = 0;
        }
        let reset = 10 - elapsed % 10;
        let refused = used + cost > 10_000;
        if !refused {
            used += cost;
        }
        let reply = if refused {
            Reply::status(429).header("retry-after", reset.to_string())
        } else {
            Reply::ok()
        };
        reply
            .header("ratelimit-policy", "\"tokens\";q=10000;w=10")
            .header(
                "ratelimit",
                format!("\"tokens\";r={};t={reset}", 10_000 - used),
            )
    })
}

#[tokio::test(start_paused = true)]
async fn a_policy_named_tokens_without_a_unit_paces_the_cost() {
    let api = ietf_token_window_without_unit();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(26)),
    );
    // 60 requests of 2 000 tokens: 5 a window, 12 windows. The first 10 go before any
    // answer says anything (5 of them refused); after that, none should be. Counted as
    // requests, the policy's 10 000 never ran out and every window ended in refusals.
    let all = call_all(&c, (0..60).map(|i| request(i, Some(2000))).collect()).await;
    assert!(all.iter().all(|d| d.ok()), "{all:?}");
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(
        refused <= 6,
        "{refused} refusals: the token policy was read as requests"
    );
}

/// A key whose whole window other processes take: for its first ten minutes every
/// request gets a bare 429 (no header, no wait), then the window opens.
fn window_taken_by_others() -> Api {
    let opens = Instant::now() + 600 * S;
    Api::new(50 * MS, move |now, _, _| {
        if now < opens {
            Reply::status(429).body("Too Many Requests")
        } else {
            Reply::ok()
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_persistent_429_backs_off_so_held_requests_outlast_a_long_closed_window() {
    let api = window_taken_by_others();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(5)),
    );
    // Ten requests, six attempts each: sixty sends at most. A send rate that stopped
    // shrinking at a request every 9 s (a growth per second that balanced the cuts)
    // spent them in nine minutes and lost requests; backing off while nothing succeeds
    // spends a few dozen over the ten minutes, and the window's opening is still found
    // within the longest interval (100 s).
    let took = all_succeed(&c, (0..10).map(|i| request(i, None)).collect()).await;
    assert!(took < 720 * S, "took {took:?}");
    let sent = api.arrivals().len();
    assert!(sent <= 45, "{sent} attempts for ten requests");
}

/// A window of `limit` requests per 10 s in IETF `RateLimit` headers, answering in
/// `latency`: sliding (each spend ages out 10 s after it, and `t` is when the newest
/// does), or fixed (all come back at the window's end, and `t` is that end). A 429 states
/// `Retry-After`.
fn ietf_window(sliding: bool, limit: usize, latency: Duration) -> Api {
    let start = Instant::now();
    let mut sent: std::collections::VecDeque<Instant> = Default::default();
    Api::new(latency, move |now, _, _| {
        let window_start = start + 10 * S * ((now - start).as_secs() / 10) as u32;
        while sent.front().is_some_and(|t| {
            if sliding {
                now - *t >= 10 * S
            } else {
                *t < window_start
            }
        }) {
            sent.pop_front();
        }
        let refused = sent.len() >= limit;
        if !refused {
            sent.push_back(now);
        }
        let back = |t: Instant| {
            let at = if sliding {
                t + 10 * S
            } else {
                window_start + 10 * S
            };
            (at - now).as_secs_f64().ceil() as u64
        };
        let reset = sent.back().map_or(0, |t| back(*t));
        let reply = if refused {
            let first = sent.front().map_or(0, |t| back(*t));
            Reply::status(429).header("retry-after", first.max(1).to_string())
        } else {
            Reply::ok()
        };
        reply
            .header("ratelimit-policy", format!("\"default\";q={limit};w=10"))
            .header(
                "ratelimit",
                format!("\"default\";r={};t={reset}", limit - sent.len()),
            )
    })
}

#[tokio::test(start_paused = true)]
async fn a_sliding_window_in_ietf_headers_is_used_as_its_spends_age_out() {
    let api = ietf_window(true, 40, 500 * MS);
    let cap = ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(4));
    let c = client(&api, BackoffRetryLayer::new().with_seed(8), cap);
    // Four at a time, 500 ms each: the first 40 go in 5 s, and from 10 s on the window
    // gives a request back each 250 ms as the spends age out: 200 requests in about 45 s.
    // Waiting each time for the stated reset (the newest spend ageing out) took 65 s.
    let took = all_succeed(&c, (0..200).map(|i| request(i, None)).collect()).await;
    assert!(took < 55 * S, "took {took:?}");
    let refused = api.arrivals().len() - 200;
    assert!(refused <= 4, "{refused} refusals");
}

/// Callers arriving at random, near what a busy sliding window gives back (14.5 a second
/// into 15). The window's returns are the spends of one window before, and they came as
/// unevenly as the callers: spread evenly over the window, they were taken back early,
/// and the requests sent on them were refused (35 of 1500). And slots reserved ahead were
/// let go after requests admitted later went at once: counting "admitted after the
/// answered request" as not counted yet read the window as spent by others, and everyone
/// waited for its newest spend to age out (117 s in all, for 104 s of arrivals).
#[tokio::test(start_paused = true)]
async fn a_busy_sliding_window_gives_back_what_was_spent_a_window_before() {
    let api = ietf_window(true, 150, 1100 * MS);
    let cap = ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(39));
    let c = client(&api, BackoffRetryLayer::new().with_seed(8), cap);
    let mut rng = fastrand::Rng::with_seed(3);
    let start = Instant::now();
    let mut at = start;
    let tasks: Vec<_> = (0..1500u64)
        .map(|i| {
            // Exponential gaps: a Poisson stream of 14.5 a second.
            at += Duration::from_secs_f64(-rng.f64().max(1e-9).ln() / 14.5);
            let (c, at) = (c.clone(), at);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                crate::support::call(c, request(i, None)).await
            })
        })
        .collect();
    let arrived = at - start;
    let mut last = start;
    for t in tasks {
        let done = t.await.unwrap();
        assert!(done.ok(), "{done:?}");
        last = last.max(done.at);
    }
    // The last arrives at 103.9 s and takes 1.1 s.
    let took = last - start;
    assert!(
        took < arrived + 4 * S,
        "took {took:?}, arrivals over {arrived:?}"
    );
    let refused = api.arrivals().len() - 1500;
    assert!(refused <= 3, "{refused} refusals");
}

/// A token bucket of 8 requests refilling one each 37.5 s (8 per 300 s), in IETF
/// `RateLimit` headers: `t` is when it is full again (whole seconds), which IETF's
/// headers say of a window's end. A 429 states when the next request fits.
fn ietf_bucket() -> Api {
    let mut bucket = Bucket {
        capacity: 8.0,
        per_s: 8.0 / 300.0,
        level: 8.0,
        at: Instant::now(),
    };
    Api::new(300 * MS, move |now, _, _| {
        bucket.refill(now);
        let refused = bucket.level < 1.0;
        if !refused {
            bucket.level -= 1.0;
        }
        let full = ((bucket.capacity - bucket.level) / bucket.per_s).ceil();
        let reply = if refused {
            let next = bucket.until(1.0).as_secs_f64().ceil().max(1.0);
            Reply::status(429).header("retry-after", format!("{next}"))
        } else {
            Reply::ok()
        };
        reply
            .header("ratelimit-policy", "\"default\";q=8;w=300")
            .header(
                "ratelimit",
                format!("\"default\";r={};t={full}", bucket.level.floor()),
            )
    })
}

/// Behind a window's header names, the bucket's answers show what a window's cannot: the
/// instant it is full again moves on by 37.5 s for each request more missing. Paced as a
/// window, each burst waited for the bucket to be full again: 789 s for 26 requests. As a
/// bucket, the 18 after the first 8 go one each 37.5 s: 678 s.
#[tokio::test(start_paused = true)]
async fn a_token_bucket_behind_ietf_window_headers_is_paced_at_its_refill() {
    let api = ietf_bucket();
    let cap = ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(8));
    let c = client(&api, BackoffRetryLayer::new().with_seed(9), cap);
    let took = all_succeed(&c, (0..26).map(|i| request(i, None)).collect()).await;
    assert!(took < 720 * S, "took {took:?}");
    let refused = api.arrivals().len() - 26;
    assert!(refused <= 3, "{refused} refusals");
}

#[tokio::test(start_paused = true)]
async fn a_fixed_window_in_ietf_headers_is_not_taken_to_give_back_before_its_end() {
    let api = ietf_window(false, 40, 500 * MS);
    let cap = ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(4));
    let c = client(&api, BackoffRetryLayer::new().with_seed(8), cap);
    // 40 per window, at the window's start: 200 requests in five windows, about 45 s.
    let took = all_succeed(&c, (0..200).map(|i| request(i, None)).collect()).await;
    assert!(took < 50 * S, "took {took:?}");
    let refused = api.arrivals().len() - 200;
    assert!(
        refused <= 2,
        "{refused} refusals: the window was taken to slide"
    );
}

/// OpenAI's daily limits, spent: the headers state the minute windows only (with room),
/// and the daily limit refills one request every 8.64 s (10 000 a day), which only its
/// refusals say: "... requests per day (RPD) ... Please try again in X s".
fn spent_daily_limit() -> Api {
    let now = Instant::now();
    let mut daily = Bucket {
        capacity: 10_000.0,
        per_s: 10_000.0 / 86_400.0,
        level: 0.0,
        at: now,
    };
    let mut minute = Bucket {
        capacity: 600.0,
        per_s: 10.0,
        level: 600.0,
        at: now,
    };
    Api::new(50 * MS, move |now, _, _| {
        daily.refill(now);
        minute.refill(now);
        let reply = if daily.level < 1.0 {
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: requests per day (RPD)")
                    .with_scope(QuotaScope::Daily)
                    .with_retry_after(Some(daily.until(1.0))),
            )
        } else {
            daily.level -= 1.0;
            minute.level -= 1.0;
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-requests", "600")
            .header(
                "x-ratelimit-remaining-requests",
                format!("{}", minute.level.floor()),
            )
            .header("x-ratelimit-reset-requests", minute.until_full())
    })
}

#[tokio::test(start_paused = true)]
async fn a_spent_daily_limit_is_paced_at_its_refill_not_probed_at_each_return() {
    let api = spent_daily_limit();
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(9),
        ConcurrencyCapLayer::new(),
    );
    // 30 requests at once: the refill grants one each 8.64 s, 259 s for all.
    let last = all_succeed(&c, (0..30).map(|i| request(i, None)).collect()).await;
    // The first wave is refused before anything is known; after it, each return the
    // refusals state let one request through: released together, the waiting requests
    // drew a 429 for each one served. Learned as the refill, the later refusals are the
    // few that measure it.
    let arrivals = api.arrivals();
    let first_ok = arrivals.iter().find(|a| a.status == 200).unwrap().at;
    let later = arrivals
        .iter()
        .filter(|a| a.status == 429 && a.at > first_ok)
        .count();
    assert!(
        later <= 5,
        "{later} refusals after the first success, for 30 successes: the daily limit's refill was not learned"
    );
    assert!(last < 290 * S, "took {last:?}: the refill is 259 s");
}

#[tokio::test(start_paused = true)]
async fn a_daily_limit_that_resets_whole_is_not_paced_at_its_last_refusal_for_good() {
    // A daily quota spent until its reset two minutes from now, its refusals stating
    // 30 s each (as some APIs word a daily limit's retry delay); then the whole quota
    // is back. Learned as a refill of one request per 30 s, the drip draws no refusal
    // after the reset to say otherwise.
    let reset = Instant::now() + 120 * S;
    let api = Api::new(50 * MS, move |now, _, _| {
        if now < reset {
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: requests per day")
                    .with_scope(QuotaScope::Daily)
                    .with_retry_after(Some(30 * S)),
            )
        } else {
            Reply::ok()
        }
    });
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(5).with_max_attempts(100),
        ConcurrencyCapLayer::new(),
    );
    // 400 requests: paced at 30 s for good, they would take 3.3 hours.
    let last = all_succeed(&c, (0..400).map(|i| request(i, None)).collect()).await;
    assert!(
        last < 80 * 60 * S,
        "took {last:?}: the drip kept the pace of the last refusal"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_refill_stated_in_whole_units_is_not_taken_for_another_process() {
    // OpenAI's headers on a bucket of 6 requests refilling over 30 minutes (one each
    // 5 minutes), answered in 2.3 s. Two answers 2.3 s apart show the level down by
    // exactly what this client sent: the refill between them (0.008 of a request) is
    // invisible in whole units, which once read as another process taking half the
    // refill, and halved the pace.
    let mut requests = Bucket {
        capacity: 6.0,
        per_s: 6.0 / 1800.0,
        level: 6.0,
        at: Instant::now(),
    };
    let api = Api::new(2300 * MS, move |now, _, _| {
        requests.refill(now);
        let reply = if requests.level < 1.0 {
            Reply::status(429).verdict(
                Classification::new(Class::RateLimited, "test: rate limit reached")
                    .with_scope(QuotaScope::Requests)
                    .with_retry_after(Some(requests.until(1.0))),
            )
        } else {
            requests.level -= 1.0;
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-requests", "6")
            .header(
                "x-ratelimit-remaining-requests",
                format!("{}", requests.level.floor()),
            )
            .header("x-ratelimit-reset-requests", requests.until_full())
    });
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(2),
        ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(4)),
    );
    // 10 requests: 6 at once, then one each 5 minutes: 20 minutes.
    let last = all_succeed(&c, (0..10).map(|i| request(i, None)).collect()).await;
    assert!(
        last < 22 * 60 * S,
        "took {last:?}: the refill of one each 5 minutes is 20 minutes"
    );
}

/// A sliding window of 300 requests per 20 s that states no limits, only the wait until
/// its oldest spend ages out (`retry-after-ms`, as gRPC pushback gives); it answers in
/// `latency`, so what a busy client spends comes back spread as it was spent.
fn silent_sliding_window(latency: Duration) -> Api {
    let mut spent: std::collections::VecDeque<Instant> = Default::default();
    Api::new(latency, move |now, _, _| {
        while spent.front().is_some_and(|&t| t + 20 * S <= now) {
            spent.pop_front();
        }
        if spent.len() >= 300 {
            let back = spent[0] + 20 * S - now;
            return Reply::status(429)
                .header("retry-after-ms", back.as_millis().max(1).to_string());
        }
        spent.push_back(now);
        Reply::ok()
    })
}

#[tokio::test(start_paused = true)]
async fn a_stated_wait_is_not_averaged_into_the_send_rate_of_a_window_that_slides() {
    let api = silent_sliding_window(300 * MS);
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(11)),
    );
    // 900 requests: 300 at once, 300 as those age out from 20 s, 300 more from 40 s. The
    // first refusals after each wait state a few milliseconds (the next spend to age
    // out): taken over the 20 s wait that sent nothing, the rate that drew them read as
    // a trickle, the learned rate collapsed and the job took 62.8 s.
    let took = all_succeed(&c, (0..900).map(|i| request(i, None)).collect()).await;
    assert!(took < 50 * S, "took {took:?}");
    let refused = api.arrivals().len() - 900;
    assert!(refused < 180, "{refused} refusals for 900 requests");
}

/// A sliding window of 500 requests per 5 s that says nothing but 429 (no limits, no
/// wait), answering in 10 ms.
fn bare_sliding_window() -> Api {
    let mut spent: std::collections::VecDeque<Instant> = Default::default();
    Api::new(10 * MS, move |now, _, _| {
        while spent.front().is_some_and(|&t| t + 5 * S <= now) {
            spent.pop_front();
        }
        if spent.len() >= 500 {
            return Reply::status(429);
        }
        spent.push_back(now);
        Reply::ok()
    })
}

#[tokio::test(start_paused = true)]
async fn a_silent_sliding_window_that_refused_its_probes_is_regained_at_its_rate() {
    let api = bare_sliding_window();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::generic().with_retry(BackoffRetryLayer::new().with_seed(12)),
    );
    // 1 000 requests: 500 at once, then 100 a second as they age out, about 10 s in all.
    // The window refuses the probes of its first 5 s: each refusal with nothing served
    // since cut the rate again, to a few requests a second, and the rate grew back from
    // there by 5 % a second (the job took 15.4 s). Now the rate the window took is kept,
    // and two successes in a row regain it: 9.6 s.
    let took = all_succeed(&c, (0..1000).map(|i| request(i, None)).collect()).await;
    assert!(took < 12 * S, "took {took:?}");
    // The first burst's: 500 served, then what was in flight with the first refusal.
    let refused = api.arrivals().len() - 1000;
    assert!(refused < 150, "{refused} refusals for 1000 requests");
}

/// A fixed window of 19 requests per 30 minutes that says nothing but 429 (no limits, no
/// wait): once spent, it stays closed for the rest of the half hour.
fn silent_half_hour_window() -> Api {
    let start = Instant::now();
    let mut window = 0u64;
    let mut used = 0u32;
    Api::new(130 * MS, move |now, _, _| {
        let w = (now - start).as_secs() / 1800;
        if w != window {
            window = w;
            used = 0;
        }
        if used >= 19 {
            return Reply::status(429);
        }
        used += 1;
        Reply::ok()
    })
}

#[tokio::test(start_paused = true)]
async fn a_silent_window_closed_for_half_an_hour_loses_nothing_to_probing() {
    // Three processes on one store, 14 requests each: 19 go now, 19 when the window
    // opens again in 30 minutes, 4 in the next. The refusals while it is closed back the
    // send rate off; the rate growing back with time alone (nothing served) took the
    // limit as gone, let the queue out, and requests spent their attempts on the closed
    // window.
    let api = silent_half_hour_window();
    let store: std::sync::Arc<dyn abide::cap::QuotaStore> =
        std::sync::Arc::new(abide::cap::LocalStore::new());
    let process = |p: u64| {
        let cap = ConcurrencyCapLayer::new().with_shared_store(store.clone());
        let c = client(&api, BackoffRetryLayer::new().with_seed(16 + p), cap);
        let reqs: Vec<_> = (0..14).map(|i| request(format!("{p}-{i}"), None)).collect();
        async move { call_all(&c, reqs).await }
    };
    let start = Instant::now();
    let (a, b, c) = tokio::join!(process(0), process(1), process(2));
    let mut last = start;
    for d in a.iter().chain(&b).chain(&c) {
        assert!(d.ok(), "{d:?}");
        last = last.max(d.at);
    }
    let refused = api.arrivals().len() - 42;
    assert!(last - start < 3700 * S, "took {:?}", last - start);
    assert!(refused <= 80, "{refused} refusals for 42 requests");
}

/// A fixed window of 20 requests a second, counted from the server's start, behind IETF
/// draft 07 headers (as Honeycomb sends them). The server's clock reads `phase` into a
/// second at its start, and states each reset as `ceil(window end) - floor(now)` in that
/// clock: up to two seconds past the window's true end, which is a second away at most.
fn fixed_second_in_whole_seconds(phase: Duration) -> Api {
    let start = Instant::now();
    let (mut index, mut used) = (0u128, 0u64);
    Api::new(180 * MS, move |now, _, _| {
        let elapsed = now - start;
        let current = elapsed.as_nanos() / S.as_nanos();
        if current != index {
            (index, used) = (current, 0);
        }
        let refused = used >= 20;
        if !refused {
            used += 1;
        }
        let wall = phase + elapsed;
        let end = phase + Duration::from_secs(u64::try_from(index).unwrap() + 1);
        let ceil = end.as_secs() + u64::from(end.subsec_nanos() > 0);
        let reset = ceil - wall.as_secs();
        let reply = if refused {
            Reply::status(429).header("retry-after", reset.to_string())
        } else {
            Reply::ok()
        };
        reply
            .header("ratelimit-limit", "20")
            .header("ratelimit-remaining", (20 - used).to_string())
            .header("ratelimit-reset", reset.to_string())
            .header("ratelimit-policy", "20;w=1")
    })
}

/// Whole-second resets against a window of a second: waiting out each stated reset spends
/// about half of every second waiting for a window already open. Two answers in a row,
/// one of each window, show where the windows begin; later resets are placed from there.
#[tokio::test(start_paused = true)]
async fn a_one_second_window_stated_in_whole_seconds_is_not_waited_out_a_second_late() {
    for (phase, seed) in [(370 * MS, 31), (810 * MS, 32)] {
        let api = fixed_second_in_whole_seconds(phase);
        let cap = ConcurrencyCapLayer::new().with_in_flight(abide::cap::InFlight::fixed(4));
        let c = client(&api, BackoffRetryLayer::new().with_seed(seed), cap);
        // 400 requests, 20 a second: 20 s at best (the first window is the start's).
        let took = all_succeed(&c, (0..400).map(|i| request(i, None)).collect()).await;
        let refused = api.arrivals().len() - 400;
        assert!(
            took < 23 * S && refused <= 8,
            "phase {phase:?}: took {took:?}, {refused} refusals"
        );
    }
}

/// OpenAI's request limit of 300 a minute, full at the start, that four processes share
/// without sharing state: each sees the level the others draw down too. A 429 states
/// the wait for one request, as OpenAI does.
fn shared_request_bucket() -> Api {
    let mut bucket = Bucket {
        capacity: 300.0,
        per_s: 5.0,
        level: 300.0,
        at: Instant::now(),
    };
    Api::new(300 * MS, move |now, _, _| {
        bucket.refill(now);
        let reply = if bucket.level < 1.0 {
            Reply::status(429)
                .header(
                    "retry-after-ms",
                    format!("{}", bucket.until(1.0).as_millis() + 1),
                )
                .verdict(
                    Classification::new(Class::RateLimited, "test: rate limit reached")
                        .with_scope(QuotaScope::Requests)
                        .with_retry_after(Some(bucket.until(1.0))),
                )
        } else {
            bucket.level -= 1.0;
            Reply::ok()
        };
        reply
            .header("x-ratelimit-limit-requests", "300")
            .header(
                "x-ratelimit-remaining-requests",
                format!("{}", bucket.level.floor()),
            )
            .header("x-ratelimit-reset-requests", bucket.until_full())
    })
}

#[tokio::test(start_paused = true)]
async fn processes_sharing_a_key_without_sharing_state_each_take_their_share_of_the_level() {
    let api = shared_request_bucket();
    // Four processes, each its own stack (its own store), 250 requests each.
    let processes: Vec<_> = (0..4u64)
        .map(|p| {
            crate::support::abide_client(
                &api,
                abide::AbideLayer::openai().with_retry(BackoffRetryLayer::new().with_seed(40 + p)),
            )
        })
        .collect();
    let reqs = |p: usize| {
        (0..250)
            .map(|i| request(format!("{p}-{i}"), None))
            .collect()
    };
    let (a, b, c, d) = tokio::join!(
        crate::support::all_succeed(&processes[0], reqs(0)),
        crate::support::all_succeed(&processes[1], reqs(1)),
        crate::support::all_succeed(&processes[2], reqs(2)),
        crate::support::all_succeed(&processes[3], reqs(3)),
    );
    let took = a.max(b).max(c).max(d);
    let arrivals = api.arrivals();
    let refused = arrivals.iter().filter(|a| a.status == 429).count();
    // 300 at once, then 700 at 5 a second: 140 s. Each process spending every unit it
    // sees left, they all spend the last one: a 429 for every three successes.
    assert!(
        refused * 20 <= 1000,
        "{refused} 429s for 1000 successes: the processes spent the same units"
    );
    assert!(took < 150 * S, "took {took:?}");
}

/// A fixed window of 10 s granting 100 requests and 20 000 tokens, behind one header
/// (IETF draft 07) that states whichever of the two binds more: the request limit one
/// time, the token limit the next, neither named.
fn tightest_of_two_unnamed() -> Api {
    let start = Instant::now();
    let (mut window, mut requests, mut tokens) = (0u64, 0u64, 0u64);
    Api::new(50 * MS, move |now, _, cost| {
        let elapsed = (now - start).as_secs();
        if elapsed / 10 != window {
            (window, requests, tokens) = (elapsed / 10, 0, 0);
        }
        let reset = 10 - elapsed % 10;
        let cost = u64::from(cost);
        let refused = requests + 1 > 100 || tokens + cost > 20_000;
        if !refused {
            requests += 1;
            tokens += cost;
        }
        // The lower share left binds more.
        let (limit, used) = if (100 - requests) * 20_000 <= (20_000 - tokens) * 100 {
            (100, requests)
        } else {
            (20_000, tokens)
        };
        let reply = if refused {
            Reply::status(429).header("retry-after", reset.to_string())
        } else {
            Reply::ok()
        };
        reply
            .header(
                "ratelimit",
                format!("limit={limit}, remaining={}, reset={reset}", limit - used),
            )
            .header("ratelimit-policy", format!("{limit};w=10"))
    })
}

#[tokio::test(start_paused = true)]
async fn two_unnamed_limits_behind_one_header_are_learned_apart_each_in_its_unit() {
    let api = tightest_of_two_unnamed();
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(31)),
    );
    // 400 requests of 500 tokens: the tokens bind, 40 a window from 0 s: 90 s at best.
    let took = all_succeed(&c, (0..400).map(|i| request(i, Some(500))).collect()).await;
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    assert!(took < 95 * S, "took {took:?} for 90 s of quota");
    assert!(
        refused <= 5,
        "{refused} refusals for 400 successes: the token limit was read as requests"
    );
}

/// A server whose unnamed limit is another on every answer (each with room left): every
/// answer is learned as a limit of its own, a few are kept, and none holds anyone back.
#[tokio::test(start_paused = true)]
async fn an_unnamed_limit_that_changes_on_every_answer_neither_stalls_nor_refuses() {
    let mut n = 0u64;
    let api = Api::new(50 * MS, move |_, _, _| {
        n += 1;
        let limit = 1000 + n;
        Reply::ok()
            .header("x-ratelimit-limit", limit.to_string())
            .header("x-ratelimit-remaining", (limit - n % 7).to_string())
            .header("x-ratelimit-reset", "10")
    });
    let c = crate::support::abide_client(
        &api,
        abide::AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(32)),
    );
    let mut took = Duration::ZERO;
    for round in 0..20 {
        let reqs = (0..20).map(|i| request(round * 20 + i, Some(50))).collect();
        took += all_succeed(&c, reqs).await;
    }
    // 20 rounds of one round trip each.
    assert!(took < 2 * S, "took {took:?} for 20 round trips of 50 ms");
    assert_eq!(api.arrivals().len(), 400, "every request went once");
}
