//! `LocalStore` passes the `QuotaStore` behaviour suite, and keeps memory bounded.

use abide_cap::store::{Admission, BucketPolicy, Decision, QuotaStore};
use abide_cap::{BucketKey, LocalStore};
use std::time::Duration;
use tokio::time::Instant;

abide_cap::quota_store_suite!(abide_cap::LocalStore::new());

#[tokio::test]
async fn a_million_distinct_keys_keep_memory_bounded_by_idle_eviction() {
    let store = LocalStore::new().with_idle_timeout(Duration::from_millis(100));
    let policy = BucketPolicy::default();
    let start = Instant::now();
    let mut most = 0;
    for i in 0..1_000_000u64 {
        let key = BucketKey::new(&format!("tenant-{i}"));
        // One new key per microsecond: about 100 000 are within the idle timeout at once.
        let now = start + Duration::from_micros(i);
        let d = store.admit(&Admission::new(&key, 1, now, &policy)).await;
        assert!(matches!(d, Ok(Decision::Go(_))));
        if i % 10_000 == 0 {
            most = most.max(store.len());
        }
    }
    most = most.max(store.len());
    assert!(most <= 250_000, "held {most} buckets");
}

#[tokio::test]
async fn a_flood_of_keys_never_exceeds_the_bucket_cap() {
    let store = LocalStore::new().with_max_buckets(1_600);
    let policy = BucketPolicy::default();
    let now = Instant::now();
    for i in 0..50_000u64 {
        let key = BucketKey::new(&format!("flood-{i}"));
        let _ = store.admit(&Admission::new(&key, 1, now, &policy)).await;
        assert!(store.len() <= 1_600, "held {} buckets", store.len());
    }
}

#[tokio::test]
async fn a_paused_bucket_survives_idle_sweeps() {
    let store = LocalStore::new().with_idle_timeout(Duration::from_millis(1));
    let policy = BucketPolicy::default();
    let now = Instant::now();
    let paused = BucketKey::new("paused");
    store
        .pause(&paused, now + Duration::from_secs(3600))
        .await
        .unwrap();
    for i in 0..5_000u64 {
        let key = BucketKey::new(&format!("other-{i}"));
        let at = now + Duration::from_millis(i);
        let _ = store.admit(&Admission::new(&key, 1, at, &policy)).await;
    }
    let d = store
        .admit(&Admission::new(
            &paused,
            1,
            now + Duration::from_secs(10),
            &policy,
        ))
        .await
        .unwrap();
    assert!(matches!(d, Decision::Wait { .. }), "pause lost: {d:?}");
}
