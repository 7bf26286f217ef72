//! Memory per bucket in [`LocalStore`], counted by a global allocator, and the bound that
//! keeps a flood of distinct keys from growing it without limit.
//!
//! The counter (`stats_alloc`) is process-wide, so the tests of this binary take turns
//! (one lock) and run on current-thread runtimes in paused virtual time.

use abide_cap::store::{Admission, BucketPolicy, QuotaStore};
use abide_cap::{BucketKey, LocalStore};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::sync::Mutex;
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One test counts at a time.
static COUNTING: Mutex<()> = Mutex::new(());

/// The bound `LocalStore`'s docs state for one idle bucket, in bytes.
const BYTES_PER_BUCKET: usize = LocalStore::MAX_BYTES_PER_BUCKET;

/// Key number `i`, `len` bytes long (at least 15).
fn key(i: usize, len: usize) -> String {
    let mut key = format!("tenant-{i:07}.");
    while key.len() < len {
        key.push('a');
    }
    key
}

/// Admits one request on each of `keys` distinct keys of `len` bytes (as a request would: the key is
/// made from a string, and the store keeps it); the heap growth it leaves behind.
async fn grow(store: &LocalStore, keys: usize, len: usize) -> usize {
    let policy = BucketPolicy::default();
    let now = Instant::now();
    let region = Region::new(GLOBAL);
    for i in 0..keys {
        let key = BucketKey::new(&key(i, len));
        let decision = store.admit(&Admission::new(&key, 1, now, &policy)).await;
        assert!(decision.is_ok());
    }
    let change = region.change();
    // A reallocation's growth is in `bytes_allocated` already.
    change
        .bytes_allocated
        .saturating_sub(change.bytes_deallocated)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

/// Bytes per idle bucket, measured: with room for every key, each one stays.
fn bytes_per_bucket(keys: usize, len: usize) -> f64 {
    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    runtime().block_on(async {
        let store = LocalStore::new().with_max_buckets(2 * keys);
        let grown = grow(&store, keys, len).await;
        assert_eq!(store.len(), keys);
        grown as f64 / keys as f64
    })
}

/// Near the worst case the bound is for: keys of the longest length kept, and each of the
/// 16 shards holding about 3,800 buckets, just past the point where its map doubled to
/// 8,192 slots (it holds 3,584 before that), so most of the map is spare capacity.
#[test]
fn an_idle_bucket_costs_no_more_than_the_documented_bytes() {
    let per_bucket = bytes_per_bucket(16 * 3_800, abide_cap::MAX_KEY_LEN);
    println!(
        "60,800 buckets, 256-byte keys: {per_bucket:.0} bytes each (bound {BYTES_PER_BUCKET})"
    );
    assert!(
        per_bucket <= BYTES_PER_BUCKET as f64,
        "{per_bucket:.0} bytes per bucket, documented bound {BYTES_PER_BUCKET}"
    );
}

/// The measurement: a million distinct keys (host-like, 30 bytes) in a store with
/// room for them all. Ignored by default for time (about ten seconds in a debug build,
/// one in release); the test above runs the same measurement near the worst case.
#[test]
#[ignore = "a million keys: run with --ignored"]
fn a_million_distinct_keys_cost_no_more_than_the_documented_bytes_each() {
    let per_bucket = bytes_per_bucket(1_000_000, 30);
    println!(
        "1,000,000 buckets, 30-byte keys: {per_bucket:.0} bytes each (bound {BYTES_PER_BUCKET})"
    );
    assert!(
        per_bucket <= BYTES_PER_BUCKET as f64,
        "{per_bucket:.0} bytes per bucket, documented bound {BYTES_PER_BUCKET}"
    );
}

/// A flood of distinct keys into the store's default configuration's shape (a cap on
/// buckets): the store keeps at most its cap, and at most the bound's bytes for each.
#[test]
fn a_flood_of_distinct_keys_stays_within_max_buckets_and_their_bytes() {
    let _turn = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let max = 8_000;
    runtime().block_on(async {
        let store = LocalStore::new().with_max_buckets(max);
        let grown = grow(&store, 20 * max, 30).await;
        assert!(
            store.len() <= max,
            "{} buckets held, at most {max}",
            store.len()
        );
        let bound = max * BYTES_PER_BUCKET;
        assert!(
            grown <= bound,
            "{grown} bytes held for {max} buckets, bound {bound}"
        );
    });
}
