//! The in-process store.

use super::bucket::BucketState;
use super::{Admission, Decision, Observation, QuotaStore, StoreFuture};
use crate::key::{BucketKey, KeyMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

const SHARDS: usize = 16;
/// A shard is swept for idle buckets when it grows past this many (then past twice what
/// the last sweep left), so sweeping costs O(1) amortized per new bucket.
const MIN_SWEEP: usize = 256;

#[derive(Debug)]
struct Shard {
    buckets: KeyMap<BucketState>,
    sweep_at: usize,
}

struct Shared {
    shards: Vec<Mutex<Shard>>,
    idle: Duration,
    max_per_shard: usize,
}

/// The in-process [`QuotaStore`]: bucket state in sharded maps behind short mutexes.
///
/// Clones share the state (it is an `Arc`), so every clone of a layer, and every layer
/// given a clone of the same store, paces one quota together.
///
/// Memory stays bounded whatever the number of distinct keys: a bucket unused for the
/// idle timeout (10 minutes by default) with nothing pending (no pause, exhaustion,
/// reservation or empty window ahead) is dropped when its shard is next swept, and a
/// shard never holds more than its share of [`with_max_buckets`](Self::with_max_buckets):
/// past it, the least recently used buckets go first. An idle bucket costs at most
/// [`MAX_BYTES_PER_BUCKET`](Self::MAX_BYTES_PER_BUCKET) (1,100) bytes of heap, so a
/// store of idle buckets holds at most `max_buckets × 1,100` bytes (110 MB at the
/// default 100,000; 50 to 80 MB with host-sized keys). A bucket in use holds its learned
/// limits too, and one that learned a window keeps when its latest admissions were let
/// go: 64 of them (2 KiB), what an answer has not counted yet; 1,024 (32 KiB) once the
/// window slides, to know when it gives back. Keys are stored with their own bytes, never
/// with the request URI they came from.
///
/// Each bucket's state sits in one of 16 shards, each behind its own short mutex: callers
/// of different buckets rarely meet on a lock, and no lock is shared by all buckets.
///
/// ```
/// use abide_cap::{ConcurrencyCapLayer, LocalStore};
/// use std::time::Duration;
///
/// let store = LocalStore::new().with_idle_timeout(Duration::from_secs(60));
/// // Two layers, one quota.
/// let chat = ConcurrencyCapLayer::new().with_store(store.clone());
/// let embeddings = ConcurrencyCapLayer::new().with_store(store);
/// # let _ = (chat, embeddings);
/// ```
#[derive(Clone)]
pub struct LocalStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("buckets", &self.len())
            .field("idle_timeout", &self.shared.idle)
            .field("max_buckets", &(self.shared.max_per_shard * SHARDS))
            .finish()
    }
}

impl Default for LocalStore {
    fn default() -> Self {
        Self::new()
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Bucket state stays consistent between statements, so a panic elsewhere while the
    // lock was held leaves nothing half-written worth refusing service for.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalStore {
    /// The most heap one bucket holds, in bytes (requested from the allocator): its
    /// entry in its shard's map (key handle and state, 344 bytes, plus a control byte)
    /// times the map's slots per bucket, at most 2 × 8/7 just after the map doubled, plus
    /// the key's own bytes (at most [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) and a 16-byte
    /// header). Measured: 772 bytes each for a million 30-byte keys, 1,016 for 60,800
    /// keys of 256 bytes just past a doubling (`tests/memory.rs`). So the default cap of
    /// 100,000 buckets bounds a store at 110 MB, about 50 to 80 MB with host-sized keys.
    pub const MAX_BYTES_PER_BUCKET: usize = 1_100;

    /// A store with a 10 minute idle timeout and at most 100 000 buckets.
    pub fn new() -> Self {
        Self::build(Duration::from_secs(600), 100_000)
    }

    fn build(idle: Duration, max_buckets: usize) -> Self {
        LocalStore {
            shared: Arc::new(Shared {
                shards: (0..SHARDS)
                    .map(|_| {
                        Mutex::new(Shard {
                            buckets: KeyMap::default(),
                            sweep_at: MIN_SWEEP,
                        })
                    })
                    .collect(),
                idle,
                max_per_shard: max_buckets.div_ceil(SHARDS).max(1),
            }),
        }
    }

    /// Drops buckets unused for `idle` (with nothing pending). Builds a new, empty store:
    /// call it before sharing.
    pub fn with_idle_timeout(self, idle: Duration) -> Self {
        Self::build(idle, self.shared.max_per_shard * SHARDS)
    }

    /// Keeps at most about `max` buckets (rounded up to a multiple of the shard count).
    /// Builds a new, empty store: call it before sharing.
    pub fn with_max_buckets(self, max: usize) -> Self {
        Self::build(self.shared.idle, max)
    }

    /// How many buckets are held now.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| lock(s).buckets.len())
            .sum()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with_bucket<T>(
        &self,
        key: &BucketKey,
        now: Instant,
        f: impl FnOnce(&mut BucketState) -> T,
    ) -> T {
        let index = (key.prehash() >> 32) as usize % SHARDS;
        let mut shard = lock(&self.shared.shards[index]);
        if let Some(bucket) = shard.buckets.get_mut(key) {
            return f(bucket);
        }
        if shard.buckets.len() >= shard.sweep_at || shard.buckets.len() >= self.shared.max_per_shard
        {
            self.sweep(&mut shard, now);
        }
        let bucket = shard
            .buckets
            .entry(key.detached())
            .or_insert_with(|| BucketState::new(now));
        f(bucket)
    }

    fn sweep(&self, shard: &mut Shard, now: Instant) {
        let idle = self.shared.idle;
        shard.buckets.retain(|_, b| !b.is_idle(now, idle));
        let max = self.shared.max_per_shard;
        if shard.buckets.len() >= max {
            // A flood of distinct keys: drop the least recently used down to 3/4 of the
            // cap, so the next overflow is far away.
            let keep = max - max / 4 - 1;
            let mut by_age: Vec<(Instant, BucketKey)> = shard
                .buckets
                .iter()
                .map(|(k, b)| (b.last_used, k.clone()))
                .collect();
            by_age.sort_unstable_by_key(|(at, _)| *at);
            let drop = by_age.len().saturating_sub(keep);
            for (_, key) in by_age.into_iter().take(drop) {
                shard.buckets.remove(&key);
            }
            tracing::debug!(
                dropped = drop,
                "abide-cap: bucket cap reached, dropped least recently used buckets"
            );
        }
        shard.sweep_at = (shard.buckets.len() * 2).max(MIN_SWEEP);
    }
}

impl QuotaStore for LocalStore {
    fn admit(&self, admission: &Admission<'_>) -> StoreFuture<Decision> {
        let decision = self.with_bucket(admission.key, admission.now, |b| b.admit_kept(admission));
        StoreFuture::ready(Ok(decision))
    }

    fn observe(&self, observation: &Observation<'_>) -> StoreFuture<()> {
        self.with_bucket(observation.key, observation.now, |b| {
            b.observe_kept(observation)
        });
        StoreFuture::ready(Ok(()))
    }

    fn pause(&self, key: &BucketKey, until: Instant) -> StoreFuture<()> {
        self.with_bucket(key, Instant::now(), |b| b.pause(until));
        StoreFuture::ready(Ok(()))
    }

    fn exhaust(&self, key: &BucketKey, until: Instant) -> StoreFuture<()> {
        self.with_bucket(key, Instant::now(), |b| b.exhaust(until));
        StoreFuture::ready(Ok(()))
    }

    fn cancel(&self, admission: &Admission<'_>) -> StoreFuture<()> {
        self.with_bucket(admission.key, admission.now, |b| b.cancel(admission));
        StoreFuture::ready(Ok(()))
    }
}
