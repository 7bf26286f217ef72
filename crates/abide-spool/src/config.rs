//! How a spool is bounded, synced and redacted.

use http::HeaderName;
use std::num::NonZeroU32;

/// When appended records are flushed to stable storage with `fsync`.
///
/// Either way each record is handed to the kernel with one `write` before the call that
/// appended it returns, so a killed process (`kill -9`, a panic, an OOM kill) loses nothing
/// that was reported as spooled. The difference is a power loss or a kernel crash:
/// [`PerEntry`](Fsync::PerEntry) loses nothing reported, [`Batched`](Fsync::Batched) may
/// lose the last records since the previous sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// `fsync` after every record.
    PerEntry,
    /// `fsync` after this many records, when a segment is closed, on
    /// [`Spool::sync`](crate::Spool::sync) and when the spool is dropped.
    Batched(NonZeroU32),
}

/// What [`Spool::push`](crate::Spool::push) does when a new entry would pass the entry or
/// byte cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse the new entry with [`SpoolError::Full`](crate::SpoolError::Full).
    Refuse,
    /// Drop the oldest entries (of any bucket) until the new one fits; each drop is counted
    /// in [`SpoolStats::dropped`](crate::SpoolStats::dropped).
    DropOldest,
}

/// The headers a spool never writes unless told otherwise: the ones that carry credentials.
pub const DEFAULT_REDACTED: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

/// The default entry cap.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// The default byte cap: 256 MiB (see [`SpoolConfig::with_max_bytes`]).
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// The default size at which a segment file is closed and a new one begun: 8 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// The configuration of a [`Spool`](crate::Spool).
///
/// # Credentials
///
/// `Authorization`, `Proxy-Authorization`, `Cookie`, `x-api-key` and `api-key` are removed
/// before an entry is written, and so is every header named with
/// [`with_redacted_header`](SpoolConfig::with_redacted_header). The spool files never see
/// them. Replay sends the entry through a stack of the replayer's own, which adds the
/// credentials again: put a layer that sets the header (for example tower-http's
/// `SetRequestHeaderLayer::overriding(AUTHORIZATION, value)`, or a `map_request` that
/// inserts the current key) in the service given to
/// [`SpoolLayer::replayer`](crate::SpoolLayer::replayer). A rotated key is then picked up
/// at replay time, and a key revoked meanwhile fails as an auth error (dead-lettered) rather
/// than leaking from a file. [`keep_credentials`](SpoolConfig::keep_credentials) turns the
/// default list off, for a spool on an encrypted volume of a single-user machine.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub(crate) fsync: Fsync,
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: u64,
    pub(crate) when_full: WhenFull,
    pub(crate) segment_bytes: u64,
    pub(crate) redacted: Vec<HeaderName>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SpoolConfig {
    /// `fsync` per entry, [`DEFAULT_MAX_ENTRIES`], [`DEFAULT_MAX_BYTES`], refuse when full,
    /// [`DEFAULT_REDACTED`] headers not written.
    pub fn new() -> Self {
        Self {
            fsync: Fsync::PerEntry,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            when_full: WhenFull::Refuse,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            redacted: DEFAULT_REDACTED
                .iter()
                .map(|name| HeaderName::from_static(name))
                .collect(),
        }
    }

    /// When records are synced to stable storage.
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// The most live entries the spool holds (at least 1).
    pub fn with_max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// The most bytes the spool holds (at least 1).
    ///
    /// A new entry is *full* (see [`WhenFull`]) when the live entries, framing included,
    /// would pass `max`. The files on disk hold the live entries plus the records of
    /// entries already delivered, dropped or dead-lettered; when they pass `max`, the
    /// oldest segments holding such records are compacted (their live entries copied
    /// forward, the file deleted), so the segment files stay within `max` plus about one
    /// segment ([`with_segment_bytes`](SpoolConfig::with_segment_bytes)), and one more
    /// while a compaction runs, whatever the order in which entries leave. Two things are
    /// outside the cap: a damaged segment reported by [`Spool::open`](crate::Spool::open)
    /// (kept as it is, for inspection; compaction stops at it), and the dead-letter file,
    /// which grows only with permanent failures and is the operator's to read and clear.
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max.max(1);
        self
    }

    /// What to do when a new entry would pass a cap.
    pub fn with_when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// The size at which a segment file is closed and a new one begun (at least 4 KiB).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(4096);
        self
    }

    /// Never write this header either (on top of the default credential headers).
    pub fn with_redacted_header(mut self, name: HeaderName) -> Self {
        if !self.redacted.contains(&name) {
            self.redacted.push(name);
        }
        self
    }

    /// Write the default credential headers too; headers named with
    /// [`with_redacted_header`](SpoolConfig::with_redacted_header) afterwards are still
    /// left out.
    pub fn keep_credentials(mut self) -> Self {
        self.redacted.clear();
        self
    }
}
