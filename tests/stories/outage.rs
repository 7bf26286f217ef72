//! Stories 5, 6 and 9: outages hold the bucket behind one probe at a time.

use crate::support::{call, call_all, client, get, request, Api, Arrival, Reply, MS, S};
use abide::cap::{ConcurrencyCapLayer, LocalStore, QuotaStore};
use abide::classify::{Class, Classification};
use abide::retry::BackoffRetryLayer;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
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
    // The hold between probes backs off to about 4 s, not 10 s: the bucket sent its first
    // ten (the default cap) in an instant, five a second over the shortest span a rate is
    // measured on, and probes stay within 5% of that; the 59 held take turns.
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
    // Few held requests in a quiet bucket: the hold between probes backs off to 10 s (3
    // requests are not a rate worth probing more often for), and each probe is one
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

#[tokio::test(start_paused = true)]
async fn a_busy_bucket_notices_the_servers_return_within_seconds_not_a_ten_second_hold() {
    // Four callers send one request after another (50 ms each): 80 a second. Ten seconds
    // in, the server answers 503 for 20 to 40 s. Holding 80 requests a second back costs far
    // more than one probe now and then: the hold between probes stays short (the four
    // take turns, and probes are a small share of what the bucket was sending), so the
    // server's return is noticed within a few seconds, not after a hold of up to 10 s.
    // Where the end falls between two probes varies: the worst of several outage
    // lengths is what a user meets.
    let mut worst = Duration::ZERO;
    for secs in (20..=40).step_by(4) {
        let (back, probes) = busy_bucket_through_an_outage(secs).await;
        worst = worst.max(back);
        // Still a handful of probes: about one attempt per second of outage at most.
        assert!(
            probes as u64 <= secs,
            "{probes} probes in a {secs} s outage"
        );
    }
    // At most 10 s shared among the three held (3.3 s), and one answer's latency.
    assert!(
        worst <= 3500 * MS,
        "first success {worst:?} after the server came back (the worst outage length)"
    );
}

/// How long after an outage of `secs` a busy bucket's first success comes, and how many
/// attempts failed in it.
async fn busy_bucket_through_an_outage(secs: u64) -> (Duration, usize) {
    let down = Instant::now() + 10 * S;
    let up = down + Duration::from_secs(secs);
    let api = Api::new(50 * MS, move |now, _, _| {
        if now >= down && now < up {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let c = stack(&api, secs);
    let end = up + 10 * S;
    let tasks = callers_until(&c, "", 4, end);
    for t in tasks {
        for d in t.await.unwrap() {
            assert!(d.ok(), "{secs} s outage: {d:?}");
        }
    }
    let arrivals = api.arrivals();
    let back = arrivals
        .iter()
        .find(|a| a.at >= up && a.status == 200)
        .map(|a| a.at - up)
        .expect("served after the outage");
    let probes = failed(&arrivals).iter().filter(|a| a.at > down + S).count();
    (back, probes)
}

#[tokio::test(start_paused = true)]
async fn two_processes_on_one_store_take_turns_probing_an_outage() {
    // Two caps (two processes of a fleet) share one store; each has four callers sending
    // one request after another. A 40 s outage strikes the eight in flight. A failed
    // probe's answer wakes its own cap's held requests at once, while the other cap's ask
    // again only at their next poll: without turns, one process's four requests would
    // send every probe and spend all their attempts. The role passes between the caps,
    // nothing is lost, and no request spends more than a handful of attempts.
    let store: Arc<dyn QuotaStore> = Arc::new(LocalStore::new());
    let down = Instant::now() + 5 * S;
    let up = down + 40 * S;
    let api = Api::new(50 * MS, move |now, _, _| {
        if now >= down && now < up {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    });
    let end = up + 5 * S;
    let mut tasks = Vec::new();
    for process in ["a", "b"] {
        let cap = ConcurrencyCapLayer::new().with_shared_store(store.clone());
        let c = client(&api, BackoffRetryLayer::new().with_seed(3), cap);
        tasks.extend(callers_until(&c, &format!("{process}-"), 4, end));
    }
    for t in tasks {
        for d in t.await.unwrap() {
            assert!(d.ok(), "{d:?}");
        }
    }
    let arrivals = api.arrivals();
    let probes: Vec<_> = failed(&arrivals)
        .into_iter()
        .filter(|a| a.at > down + S)
        .collect();
    for process in ["a-", "b-"] {
        let sent = probes.iter().filter(|a| a.id.starts_with(process)).count();
        assert!(
            sent * 4 >= probes.len(),
            "process {process} sent {sent} of the {} probes",
            probes.len()
        );
    }
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for a in failed(&arrivals) {
        *per_request.entry(a.id.as_str()).or_default() += 1;
    }
    assert!(per_request.values().all(|&n| n <= 10), "{per_request:?}");
}

/// `callers` tasks, each sending one request after another through `c` until `end`
/// (request ids `{prefix}{caller}-{i}`); each returns what its requests got.
fn callers_until(
    c: &crate::support::Client,
    prefix: &str,
    callers: usize,
    end: Instant,
) -> Vec<tokio::task::JoinHandle<Vec<crate::support::Done>>> {
    (0..callers)
        .map(|caller| {
            let (c, prefix) = (c.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let mut done = Vec::new();
                while Instant::now() < end {
                    let id = format!("{prefix}{caller}-{}", done.len());
                    done.push(call(c.clone(), get(id)).await);
                }
                done
            })
        })
        .collect()
}
