//! Story 4: one wait policy for the whole stack.

use crate::support::{
    abide_client, call, client, get, in_turn, request, Api, Client, Reply, MS, S,
};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification};
use abide::retry::BackoffRetryLayer;
use abide::AbideLayer;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// A 429 with `Retry-After: secs` until `secs` from now, then successes.
fn away(secs: u64, verdicts: bool) -> Api {
    let opens = Instant::now() + Duration::from_secs(secs);
    Api::new(10 * MS, move |now, _, _| {
        if now >= opens {
            return Reply::ok();
        }
        let reply = Reply::status(429).header("retry-after", secs.to_string());
        if verdicts {
            reply.verdict(
                Classification::new(Class::RateLimited, "test: retry-after")
                    .with_retry_after(Some(opens - now)),
            )
        } else {
            reply
        }
    })
}

fn retry_wait(done: &crate::support::Done) -> Duration {
    let err = done.result.as_ref().expect_err("fails fast");
    err.downcast_ref::<abide::retry::WaitTooLong>()
        .unwrap_or_else(|| panic!("not the retry layer's WaitTooLong: {err}"))
        .wait()
}

async fn first_and_second(c: &Client) -> (crate::support::Done, crate::support::Done) {
    let first = call(c.clone(), request(1, None)).await;
    sleep(S).await;
    let second = call(c.clone(), request(2, None)).await;
    (first, second)
}

/// Two callers, the second a second after the first, both served once the stated `wait`
/// from the first is over.
async fn both_wait_it_out(c: &Client, wait: Duration) {
    let start = Instant::now();
    let (first, second) = tokio::join!(call(c.clone(), request(1, None)), async {
        sleep(S).await;
        call(c.clone(), request(2, None)).await
    });
    for d in [&first, &second] {
        assert!(d.ok(), "{d:?}");
        let took = d.at - start;
        assert!(took >= wait && took < wait + 5 * S, "{took:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stated_wait_past_the_max_fails_fast_in_both_layers_with_the_same_error() {
    // Two hours: past the default max server wait (an hour and a minute) of both layers.
    let api = away(7200, true);
    let c = client(
        &api,
        BackoffRetryLayer::new().with_seed(5),
        ConcurrencyCapLayer::new(),
    );
    let start = Instant::now();
    let (first, second) = first_and_second(&c).await;
    assert!(first.at - start < 100 * MS);
    assert_eq!(retry_wait(&first), 7200 * S);
    // The second caller meets the paused bucket in the cap: the same answer, at once,
    // carrying what is left of the stated wait.
    assert!(
        second.at - start < S + 100 * MS,
        "held {:?}",
        second.at - start
    );
    let left = retry_wait(&second);
    assert!(left > 7198 * S && left <= 7199 * S, "{left:?}");
    assert_eq!(api.arrivals().len(), 1, "the second caller sent nothing");
}

#[tokio::test(start_paused = true)]
async fn the_cap_alone_fails_a_stated_wait_past_its_max_with_its_wait_too_long() {
    let api = away(120, true);
    let c = client(
        &api,
        BackoffRetryLayer::new().with_max_attempts(1),
        ConcurrencyCapLayer::new().with_max_server_wait(30 * S),
    );
    let (_, second) = first_and_second(&c).await;
    let err = second.result.expect_err("fails fast");
    let cap = err
        .downcast_ref::<abide::cap::error::WaitTooLong>()
        .unwrap_or_else(|| panic!("not the cap's WaitTooLong: {err}"));
    let stated = cap.server_wait().expect("carries the stated wait");
    assert!(stated > 118 * S && stated <= 119 * S, "{stated:?}");
    assert_eq!(cap.max_wait(), 30 * S);
}

#[tokio::test(start_paused = true)]
async fn one_setting_on_the_abide_layer_gives_both_layers_the_same_max() {
    // 120 s is within the default hour: only the setting makes both layers refuse it.
    let api = away(120, false);
    let c = abide_client(
        &api,
        AbideLayer::new()
            .with_max_server_wait(60 * S)
            .with_retry(BackoffRetryLayer::new().with_seed(6)),
    );
    let start = Instant::now();
    let (first, second) = first_and_second(&c).await;
    assert_eq!(retry_wait(&first), 120 * S);
    let left = retry_wait(&second);
    assert!(left > 118 * S && left <= 119 * S, "{left:?}");
    assert!(second.at - start < S + 100 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_max_past_the_hour_on_the_abide_layer_is_the_classifiers_long_wait_too() {
    // Two hours, with the stack set to take waits up to two hours and a minute. The
    // classifier took any wait past an hour and a minute as quota exhaustion, whatever
    // the two layers were set to take: both callers failed, with no error naming the
    // setting.
    let api = away(7200, false);
    let c = abide_client(
        &api,
        AbideLayer::new()
            .with_max_server_wait(7260 * S)
            .with_retry(BackoffRetryLayer::new().with_seed(9)),
    );
    both_wait_it_out(&c, 7200 * S).await;
    // The first caller's 429, then one success each: the second waited in the cap.
    let statuses: Vec<u16> = api.arrivals().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [429, 200, 200]);
}

#[tokio::test(start_paused = true)]
async fn by_default_a_stated_wait_within_the_hour_is_waited_by_every_caller() {
    let api = away(120, false);
    let c = abide_client(
        &api,
        AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(7)),
    );
    both_wait_it_out(&c, 120 * S).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_meeting_a_spent_hourly_window_waits_for_it_to_turn() {
    // Two per hour, the reset stated in whole seconds, rounded up and counting the
    // current second (as servers with a whole-second clock do): right after the window
    // opens it reads 3601 s, past an hour. The third request waits for the turn.
    let opened = Instant::now();
    let mut served = 0;
    let api = Api::new(10 * MS, move |now, _, _| {
        let window = (now - opened).as_secs() / 3600;
        let ends = opened + Duration::from_secs((window + 1) * 3600);
        if window == 0 && served == 2 {
            return Reply::status(429);
        }
        served += 1;
        let remaining = if window == 0 { 2 - served } else { 1 };
        let reset = (ends - now).as_secs_f64().ceil() as u64 + 1;
        Reply::ok()
            .header("ratelimit-limit", "2")
            .header("ratelimit-remaining", remaining.to_string())
            .header("ratelimit-reset", reset.to_string())
    });
    let c = client(&api, BackoffRetryLayer::new(), ConcurrencyCapLayer::new());
    for i in 0..3 {
        let d = call(c.clone(), request(i, None)).await;
        assert!(d.ok(), "request {i}: {d:?}");
    }
    let arrivals = api.arrivals();
    assert_eq!(arrivals.len(), 3, "no 429: the third waited, then went");
    assert!(arrivals[2].at - opened >= 3600 * S);
}

#[tokio::test(start_paused = true)]
async fn a_429_stating_an_hourly_windows_turn_in_whole_seconds_is_waited_for() {
    // Two per hour and no rate-limit headers: only the 429 says when, in whole seconds,
    // rounded up and counting the current second, so right after the window opens it
    // reads `Retry-After: 3601`. That is an hourly window, not a daily quota: the third
    // request waits for the turn instead of failing as exhausted.
    let opened = Instant::now();
    let mut served = 0;
    let api = Api::new(10 * MS, move |now, _, _| {
        let window = (now - opened).as_secs() / 3600;
        if window == 0 && served == 2 {
            let ends = opened + Duration::from_secs(3600);
            let wait = (ends - now).as_secs_f64().ceil() as u64 + 1;
            return Reply::status(429).header("retry-after", wait.to_string());
        }
        served += 1;
        Reply::ok()
    });
    let c = abide_client(
        &api,
        AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(8)),
    );
    for i in 0..3 {
        let d = call(c.clone(), request(i, None)).await;
        assert!(d.ok(), "request {i}: {d:?}");
    }
    let arrivals = api.arrivals();
    assert_eq!(arrivals.len(), 4, "one 429, then the turn");
    assert!(
        arrivals[3].at - opened >= 3600 * S,
        "{:?}",
        arrivals[3].at - opened
    );
}

/// A sliding window of `limit` per `window` that states nothing: a bare 429 (no
/// `Retry-After`, no limit headers) past it.
fn silent_sliding_window(limit: usize, window: Duration) -> Api {
    let mut spends: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
    Api::new(10 * MS, move |now, _, _| {
        while spends.front().is_some_and(|&at| at + window <= now) {
            spends.pop_front();
        }
        if spends.len() < limit {
            spends.push_back(now);
            Reply::ok()
        } else {
            Reply::status(429).body("{\"error\":\"rate limited\"}")
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_send_rate_backed_off_by_a_silent_window_is_regained_once_it_serves_again() {
    // Two callers, one request after another, against 50 per 5 s that says nothing.
    // The first refusals back the send rate off to probes. Once a probe was served, the
    // waiting requests went at the backed-off rate and the next refusal, a success
    // later, was taken as what the server grants: 102 s for 400 requests. Now they wait
    // behind the probes until two successes in a row show the window serving, and the
    // rate is regained from there: 47 s.
    let api = silent_sliding_window(50, 5 * S);
    let c = abide_client(&api, AbideLayer::new());
    let start = Instant::now();
    let last = in_turn(&c, 2, 200, |caller, i| get(format!("{caller}-{i}"))).await;
    let refused = api.arrivals().iter().filter(|a| a.status == 429).count();
    // 400 requests at 10 a second after the first 50: 35 s at best.
    assert!(last - start <= 50 * S, "took {:?}", last - start);
    // The price: a few more refusals where the rate is regained (37; 18 before), each a
    // probe of a server that says nothing.
    assert!(refused <= 45, "{refused} refusals for 400 successes");
}
