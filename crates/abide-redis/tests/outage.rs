//! Redis killed mid-run and started again on the same port: under `FailOpen` requests
//! keep flowing (at the fleet share of the declared quota), under `FailClosed` they get
//! the named error; a warning metric counts them; both stores reconnect by themselves,
//! and what a process learned seeds the restarted (empty) Redis.

mod support;

use abide_cap::store::{Admission, BucketPolicy, Decision, QuotaStore};
use abide_cap::{BucketKey, Quota};
use abide_redis::{FailurePolicy, RedisStore, RedisUnavailable, UNAVAILABLE_COUNTER};
use metrics_util::debugging::DebuggingRecorder;
use std::error::Error as _;
use std::num::NonZeroU32;
use std::time::Duration;
use support::RedisServer;
use tokio::time::Instant;

const RETRY: Duration = Duration::from_millis(100);

fn ten_per_second() -> BucketPolicy {
    let mut p = BucketPolicy::default();
    p.request_quota =
        Some(Quota::per_second(NonZeroU32::new(10).unwrap()).allow_burst(NonZeroU32::MIN));
    p
}

async fn store(server: &RedisServer, policy: FailurePolicy) -> RedisStore {
    RedisStore::builder(&server.url())
        .with_timeout(Duration::from_millis(200))
        .with_retry_interval(RETRY)
        .with_failure_policy(policy)
        .connect()
        .await
        .expect("connect")
}

/// Calls `admit` until one goes through Redis again (the store reconnected), within 10 s.
async fn until_shared(store: &RedisStore, key: &BucketKey, policy: &BucketPolicy) -> Decision {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let before = store.stats().unavailable;
        let d = store
            .admit(&Admission::new(key, 1, Instant::now(), policy))
            .await;
        if store.stats().unavailable == before {
            return d.expect("a shared answer");
        }
        assert!(std::time::Instant::now() < deadline, "never reconnected");
        // The store waits RETRY after a failure before asking Redis again.
        tokio::time::sleep(RETRY / 2).await;
    }
}

#[test]
fn fail_open_keeps_requests_flowing_through_a_redis_restart() {
    let Some(mut server) = RedisServer::start("fail_open_restart") else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let fleet_of_two = FailurePolicy::FailOpen {
                fleet_size: NonZeroU32::new(2).unwrap(),
            };
            let store = store(&server, fleet_of_two).await;
            let (flow, paused) = (BucketKey::new("flow"), BucketKey::new("paused"));
            let policy = ten_per_second();
            let start = Instant::now();
            let pause_end = start + Duration::from_secs(60);
            store.pause(&paused, pause_end).await.unwrap();
            store
                .admit(&Admission::new(&flow, 1, start, &policy))
                .await
                .unwrap();
            assert_eq!(store.stats().unavailable, 0);

            server.kill();
            // Requests keep flowing, each answered once, at half the declared quota
            // (a fleet of two), and an outage costs at most one timeout.
            let began = std::time::Instant::now();
            let at = start + Duration::from_secs(1);
            let mut slots = Vec::new();
            for _ in 0..10 {
                match store.admit(&Admission::new(&flow, 1, at, &policy)).await {
                    Ok(Decision::Go(_)) => slots.push(at),
                    Ok(Decision::Wait {
                        reservation: Some(r),
                        ..
                    }) => slots.push(r.at),
                    other => panic!("fail open answered {other:?}"),
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(2),
                "{:?}",
                began.elapsed()
            );
            for pair in slots.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::from_millis(200));
            }
            assert_eq!(store.stats().unavailable, 10);

            server.restart();
            // Reconnected by itself; Redis came back empty, and this process's state
            // seeded it: the pause is still there, for every process.
            until_shared(&store, &flow, &policy).await;
            let before = store.stats().unavailable;
            let d = store
                .admit(&Admission::new(&paused, 1, Instant::now(), &policy))
                .await
                .unwrap();
            assert_eq!(store.stats().unavailable, before);
            assert!(
                matches!(d, Decision::Wait { until, .. } if until == pause_end),
                "{d:?}"
            );
            let newcomer = RedisStore::connect(&server.url()).await.unwrap();
            let d = newcomer
                .admit(&Admission::new(&paused, 1, Instant::now(), &policy))
                .await
                .unwrap();
            match d {
                Decision::Wait { until, .. } => {
                    // The slot after this process's, at the end of the pause.
                    let next = pause_end + Duration::from_millis(100);
                    let off = if until > next {
                        until - next
                    } else {
                        next - until
                    };
                    assert!(off < Duration::from_millis(20), "{off:?}");
                }
                other => panic!("the restarted Redis lost the pause: {other:?}"),
            }
        })
    });
    let counted = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == UNAVAILABLE_COUNTER)
        .map(|(k, _, _, v)| format!("{:?} {v:?}", k.key()))
        .expect("the counter was recorded");
    assert!(counted.contains("fail_open"), "{counted}");
}

#[tokio::test]
async fn fail_closed_gives_the_named_error_then_reconnects() {
    let Some(mut server) = RedisServer::start("fail_closed_restart") else {
        return;
    };
    let store = store(&server, FailurePolicy::FailClosed).await;
    let (key, policy) = (BucketKey::new("closed"), ten_per_second());
    store
        .admit(&Admission::new(&key, 1, Instant::now(), &policy))
        .await
        .unwrap();

    server.kill();
    let began = std::time::Instant::now();
    for _ in 0..5 {
        let err = store
            .admit(&Admission::new(&key, 1, Instant::now(), &policy))
            .await
            .expect_err("fail closed");
        let why = err
            .source()
            .and_then(|s| s.downcast_ref::<RedisUnavailable>())
            .unwrap_or_else(|| panic!("not a RedisUnavailable: {err:?}"));
        assert!(!why.reason().is_empty());
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    // An observation fails the same way (the layer logs it and lets the response by).
    assert!(store.pause(&key, Instant::now()).await.is_err());

    server.restart();
    until_shared(&store, &key, &policy).await;
    let s = store.stats();
    assert!(s.unavailable >= 6, "{s:?}");
}
