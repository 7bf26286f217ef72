//! `RedisStore` on a real `redis-server`: two stores ("processes") pace one quota
//! together, one admission costs one round trip, keys are laid out and expire as
//! documented, and a state that is not one is refused by name.

mod support;

use abide_cap::store::{Admission, BucketPolicy, Decision, Observation, QuotaStore};
use abide_cap::{BucketKey, Quota, StoreError};
use abide_classify::{Class, Classification};
use abide_headers::RateLimitSnapshot;
use abide_redis::{FailurePolicy, RedisStore, RedisUnavailable};
use std::error::Error as _;
use std::num::NonZeroU32;
use std::time::Duration;
use support::{RedisServer, ServedStore};
use tokio::time::Instant;

fn per_second(n: u32) -> BucketPolicy {
    let mut p = BucketPolicy::default();
    p.request_quota =
        Some(Quota::per_second(NonZeroU32::new(n).unwrap()).allow_burst(NonZeroU32::MIN));
    p
}

/// When the admission may go: now, or the start of its reserved slot.
fn slot(d: Decision, now: Instant) -> Instant {
    match d {
        Decision::Go(_) => now,
        Decision::Wait {
            reservation: Some(r),
            ..
        } => r.at,
        other => panic!("expected a slot, got {other:?}"),
    }
}

#[tokio::test]
async fn two_processes_on_one_server_pace_one_declared_quota_together() {
    let Some(server) = RedisServer::start("two_processes") else {
        return;
    };
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let b = RedisStore::connect(&server.url()).await.unwrap();
    let (key, policy) = (BucketKey::new("api.example.com"), per_second(10));
    let now = Instant::now();
    let mut slots = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { &a } else { &b };
        let d = store
            .admit(&Admission::new(&key, 1, now, &policy))
            .await
            .unwrap();
        slots.push(slot(d, now));
    }
    // One schedule: 10 per second between the two, not 10 each. The two anchors to the
    // server's TIME differ by less than a round trip.
    slots.sort();
    for pair in slots.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(95),
            "slots {gap:?} apart: {slots:?}"
        );
    }
    assert!(slots[19] - now >= Duration::from_millis(1_850));
    // Each admission found the other's write: a second round trip, never more.
    for s in [a.stats(), b.stats()] {
        assert_eq!(s.admissions, 10);
        assert!(s.admission_round_trips <= 20, "{s:?}");
        assert!(s.conflicts >= 9, "{s:?}");
    }
}

#[tokio::test]
async fn a_pause_one_process_learns_holds_the_others() {
    let Some(server) = RedisServer::start("pause_shared") else {
        return;
    };
    let a = RedisStore::connect(&server.url()).await.unwrap();
    let b = RedisStore::connect(&server.url()).await.unwrap();
    let (key, policy) = (BucketKey::new("shared-429"), BucketPolicy::default());
    let now = Instant::now();
    let t = match a
        .admit(&Admission::new(&key, 1, now, &policy))
        .await
        .unwrap()
    {
        Decision::Go(t) => t,
        other => panic!("{other:?}"),
    };
    let verdict = Classification::new(Class::RateLimited, "test: 429")
        .with_retry_after(Some(Duration::from_secs(7)));
    let none = RateLimitSnapshot::new();
    a.observe(&Observation::new(&key, now, &verdict, &none, &policy).with_ticket(Some(t)))
        .await
        .unwrap();
    match b
        .admit(&Admission::new(&key, 1, now, &policy))
        .await
        .unwrap()
    {
        Decision::Wait { until, .. } => {
            let stated = now + Duration::from_secs(7);
            let skew = if until > stated {
                until - stated
            } else {
                stated - until
            };
            assert!(
                skew < Duration::from_millis(20),
                "paused until {skew:?} off"
            );
        }
        other => panic!("the other process did not see the pause: {other:?}"),
    }
}

#[tokio::test]
async fn one_process_alone_needs_one_round_trip_per_admission() {
    let Some(served) = ServedStore::start("one_round_trip").await else {
        return;
    };
    let store = &served.store;
    let (key, policy) = (BucketKey::new("alone"), per_second(1_000));
    let start = Instant::now();
    for i in 0..200u32 {
        let now = start + Duration::from_millis(u64::from(i));
        store
            .admit(&Admission::new(&key, 1, now, &policy))
            .await
            .unwrap();
    }
    let s = store.stats();
    assert_eq!(
        (s.admissions, s.admission_round_trips, s.conflicts),
        (200, 200, 0)
    );
    assert_eq!(s.round_trips_per_admission(), Some(1.0));
}

#[tokio::test]
async fn keys_are_hash_tagged_under_the_prefix_and_expire_when_idle() {
    let Some(served) = ServedStore::start_with("keys", |b| {
        b.with_prefix("fleet-a:")
            .with_idle_timeout(Duration::from_secs(30))
    })
    .await
    else {
        return;
    };
    let (store, url) = (&served.store, served.server.url());
    let key = BucketKey::new("api.openai.com/{gpt}");
    assert_eq!(store.redis_key(&key), "fleet-a:{api.openai.com/%7Bgpt%7D}");
    let now = Instant::now();
    store
        .pause(&key, now + Duration::from_secs(60))
        .await
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(keys, vec![store.redis_key(&key)]);
    // Kept for the idle timeout after the pause ends: about 90 s.
    let ttl: i64 = redis::cmd("PTTL")
        .arg(store.redis_key(&key))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((85_000..=90_500).contains(&ttl), "ttl {ttl} ms");
    // Another prefix is another fleet.
    let other = RedisStore::builder(&url)
        .with_prefix("fleet-b:")
        .connect()
        .await
        .unwrap();
    let d = other
        .admit(&Admission::new(&key, 1, now, &BucketPolicy::default()))
        .await
        .unwrap();
    assert!(matches!(d, Decision::Go(_)), "{d:?}");
}

#[tokio::test]
async fn a_value_that_is_not_a_bucket_state_is_refused_by_name_or_replaced_by_policy() {
    let Some(server) = RedisServer::start("garbage") else {
        return;
    };
    let closed = RedisStore::builder(&server.url())
        .with_failure_policy(FailurePolicy::FailClosed)
        .connect()
        .await
        .unwrap();
    let open = RedisStore::connect(&server.url()).await.unwrap();
    let key = BucketKey::new("garbage");
    let client = redis::Client::open(server.url().as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg(closed.redis_key(&key))
        .arg("v")
        .arg("7")
        .arg("s")
        .arg("not a state")
        .query_async(&mut raw)
        .await
        .unwrap();
    let policy = BucketPolicy::default();
    let now = Instant::now();
    let err: StoreError = closed
        .admit(&Admission::new(&key, 1, now, &policy))
        .await
        .unwrap_err();
    let why = err
        .source()
        .and_then(|s| s.downcast_ref::<RedisUnavailable>())
        .expect("a RedisUnavailable");
    assert!(why.reason().contains("bad magic"), "{why}");
    let d = open
        .admit(&Admission::new(&key, 1, now, &policy))
        .await
        .unwrap();
    assert!(matches!(d, Decision::Go(_)), "{d:?}");
    assert_eq!(open.stats().unavailable, 1);
}

#[tokio::test]
async fn connecting_to_nothing_fails_with_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let err = RedisStore::builder(&format!("redis://:secret-password@127.0.0.1:{port}/"))
        .with_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        !format!("{err} {err:?}").contains("secret-password"),
        "{err:?}"
    );
    let bad = RedisStore::connect("http://nowhere").await.unwrap_err();
    assert!(bad.to_string().contains("invalid Redis URL"), "{bad}");
}
