//! Deferred delivery for clients of rate-limited APIs: a request that can wait, and cannot
//! go now, is written to a durable local spool and sent later.
//!
//! The ML-tracking services say what to do when rate-limited: keep the data locally and
//! upload it once the limit clears (W&B's `wandb sync`, Comet's `OfflineExperiment` and
//! `comet upload`). This crate does that for any API behind a tower stack.
//!
//! # The store
//!
//! [`Spool`] is a directory of append-only segment files. Each record is framed as
//! `magic | length | CRC-32 | payload` (see the `frame` module's layout), written with one
//! `write` call and synced per [`Fsync`]. A crash mid-write leaves a torn tail that the next
//! [`Spool::open`] detects, reports in [`OpenReport::torn`] and cuts off; a damaged frame is
//! never read as a record.
//!
//! The directory is the user's: files are created 0600 in a directory created 0700, and
//! [`Spool::open`] refuses a world-writable directory or one owned by another user
//! ([`SpoolError::UnsafeDirectory`]). One [`Spool`] holds it at a time: an exclusive
//! advisory lock on its `lock` file, released when the `Spool` is dropped or its process
//! dies, makes a second open fail with [`SpoolError::Locked`] instead of interleaving
//! segments (clone the `Spool` to share it within a process).
//!
//! The spool is bounded by an entry cap and a byte cap ([`SpoolConfig::with_max_entries`],
//! [`SpoolConfig::with_max_bytes`]); a full spool refuses new entries or drops the oldest
//! ([`WhenFull`]). The byte cap bounds the disk too: when the segment files pass it, the
//! oldest segments that hold delivered entries are compacted, so one bucket that never
//! drains cannot pin every file it has an entry in.
//!
//! # Replay
//!
//! [`Replayer`] (from [`SpoolLayer::replayer`]) sends the entries through the stack, in
//! order per bucket and the buckets side by side, so each bucket goes at the pace the
//! stack learned for it and a bucket held back delays only its own entries.
//!
//! # Why not an embedded database
//!
//! Why not an embedded database such as `redb`: the spool's access pattern is a queue
//! (append, read in order, remove from the front), which append-only segments serve with
//! one sequential write per entry and deletion of whole files, while a B-tree store brings
//! copy-on-write pages, a compaction story and a far larger dependency for features a queue
//! does not use. The framing is a dozen lines that can be property-tested whole, and the
//! only new dependency is `crc32fast` (small, `no_std`-capable, SIMD-accelerated, the CRC
//! that `flate2` and `png` use).
#![forbid(unsafe_code)]

mod body;
mod config;
mod entry;
mod error;
mod frame;
mod key;
mod layer;
mod not_now;
mod replay;
mod service;
mod store;

/// The error type of [`Spooled`] and of the stacks it wraps.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub use body::SpoolBody;
pub use layer::{Deferrable, SpoolLayer, DEFAULT_MAX_BODY};
pub use not_now::{error_not_now, not_now};
pub use replay::{ReplayReport, Replayer, DEFAULT_CONCURRENT_BUCKETS};
pub use service::{ResponseFuture, Spooled};

pub use config::{
    Fsync, SpoolConfig, WhenFull, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_REDACTED,
    DEFAULT_SEGMENT_BYTES,
};
pub use entry::{DeadLetter, Entry, EntryId};
pub use error::{BodyTooLarge, Deferred, SpoolError};
pub use store::{NewEntry, OpenReport, Spool, SpoolStats, TornTail};
