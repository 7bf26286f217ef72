//! Stories 5, 6 and 9: outages hold the bucket behind one probe at a time.

use crate::support::{call, call_all, client, get, request, Api, Arrival, Reply, MS, S};
use abide::cap::ConcurrencyCapLayer;
use abide::classify::{Class, Classification};
use abide::retry::BackoffRetryLayer;
use std::collections::HashMap;
use std::io;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// Answers `during` until `ends` (from now), then successes.
fn outage(ends: Duration, during: Reply) -> Api {
    let ends = Instant::now() + ends;
    Api::new(50 * MS, move |now, _, _| {
        if now < ends {
            during.clone()
        } else {
            Reply::ok()
        }
    })
}

fn failed(arrivals: &[Arrival]) -> Vec<&Arrival> {
    arrivals.iter().filter(|a| a.status != 200).collect()
}

fn stack(api: &Api, seed: u64) -> crate::support::Client {
    client(
        api,
        BackoffRetryLayer::new().with_seed(seed),
        ConcurrencyCapLayer::new(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_20s_outage_of_503s_with_10_callers_costs_a_handful_of_attempts() {
    let api = outage(20 * S, Reply::status(503));
    let c = stack(&api, 7);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            sleep(i * 100 * MS).await;
            call(c, get(i)).await
        }));
    }
    for t in tasks {
        let d = t.await.unwrap();
        assert!(d.ok(), "{d:?}");
        assert!(d.at - start < 32 * S, "{:?}", d.at - start);
    }
    let arrivals = api.arrivals();
    let failures = failed(&arrivals);
    assert!(
        failures.len() <= 10,
        "{} failed attempts in a 20 s outage",
        failures.len()
    );
    // Each probe after the first is sent by a different held request.
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for a in &failures {
        *per_request.entry(a.id.as_str()).or_default() += 1;
    }
    assert!(per_request.values().all(|&n| n <= 2), "{per_request:?}");
}

#[tokio::test(start_paused = true)]
async fn a_30s_connection_refused_outage_under_load_loses_nothing() {
    let api = outage(30 * S, Reply::Fail(io::ErrorKind::ConnectionRefused));
    let c = stack(&api, 8);
    let all = call_all(&c, (0..60).map(|i| request(i, None)).collect()).await;
    let lost: Vec<_> = all.iter().filter(|d| !d.ok()).collect();
    assert!(lost.is_empty(), "{} lost: {:?}", lost.len(), lost[0]);
    let arrivals = api.arrivals();
    let attempts = arrivals.len() as f64;
    // The 60 sent at once all meet the outage; then a handful of probes.
    assert!(
        attempts / 60.0 <= 1.0 + 1.0 + 12.0 / 60.0,
        "{attempts} attempts for 60 requests"
    );
    let late_failures = failed(&arrivals)
        .iter()
        .filter(|a| a.at > arrivals[0].at + S)
        .count();
    // With 59 held, the hold between probes backs off to 2 s (120 s shared among them),
    // not 10 s: about one probe per 2 s of outage, and the recovery noticed within 2 s.
    assert!(late_failures <= 20, "{late_failures} probes");
    let back = arrivals
        .iter()
        .find(|a| a.status == 200)
        .map(|a| a.at - arrivals[0].at);
    assert!(
        back.is_some_and(|b| b <= 32 * S),
        "first success {back:?} after the first attempt; the outage ended at 30 s"
    );
}

#[tokio::test(start_paused = true)]
async fn three_callers_ride_out_a_two_minute_outage_without_running_out_of_attempts() {
    // Few held requests: the hold between probes backs off to 10 s, and each probe is one
    // of three requests' attempts. A probe with others held behind it spends its attempt
    // for them all, on the cap's schedule: it counts as a paced attempt, as a retry after
    // a server-stated wait does, so none of the three runs out before the server is back.
    let api = outage(120 * S, Reply::status(503));
    let c = stack(&api, 11);
    let start = Instant::now();
    let all = call_all(&c, (0..3).map(get).collect()).await;
    for d in &all {
        assert!(d.ok(), "{d:?}");
        // Back within a hold (10 s) and a backoff of its own after the outage ends.
        assert!(d.at - start <= 140 * S, "{:?}", d.at - start);
    }
    let failures = failed(&api.arrivals()).len();
    assert!(
        failures <= 24,
        "{failures} failed attempts in a 2 minute outage"
    );
}

async fn alone_against(during: Reply) {
    let api = outage(3600 * S, during);
    let c = stack(&api, 9);
    let start = Instant::now();
    let done = call(c, get("alone")).await;
    let took = done.at - start;
    let attempts = api.arrivals().len();
    assert!(attempts <= 6, "{attempts} attempts");
    assert!(attempts >= 4, "gave up after {attempts} attempts");
    assert!(took <= 40 * S, "gave up after {took:?}");
    assert!(!done.ok());
}

#[tokio::test(start_paused = true)]
async fn a_lone_request_against_persistent_503s_makes_at_most_6_attempts_within_40s() {
    alone_against(Reply::status(503)).await;
}

#[tokio::test(start_paused = true)]
async fn a_lone_request_against_persistent_429s_without_a_wait_gives_up_the_same_way() {
    alone_against(Reply::status(429).verdict(Classification::new(Class::RateLimited, "test: 429")))
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_lone_request_against_refused_connections_gives_up_the_same_way() {
    alone_against(Reply::Fail(io::ErrorKind::ConnectionRefused)).await;
}
