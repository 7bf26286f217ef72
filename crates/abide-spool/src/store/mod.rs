//! The spool store: append-only segment files of framed records in one directory.
//!
//! A segment `NNNNNNNNNNNNNNNNNNNN.seg` (zero-padded; greater than every older segment's
//! number and at least the id of every entry spooled after it was begun) is a sequence of
//! [frames](crate::frame), each holding a *put* (a new entry, or a copy made by compaction)
//! or a *remove* (an entry delivered, dropped or dead-lettered). Opening the spool reads
//! every segment in order and keeps the entries put and not removed. Segments are deleted
//! from the oldest on, once they hold no live entry: a remove is always in the same or a
//! later segment than its put, so deleting a prefix never brings an entry back. When the
//! files pass the byte cap, the oldest segment holding removed entries is *compacted*: its
//! live entries are copied to the active segment and synced, then the file is deleted (see
//! `Inner::compact` for why that is safe). Dead letters go to `dead-letter.log`, written
//! (and synced) before the remove that takes the entry out of the live spool; an entry
//! found in both is dead. The file `lock` holds an exclusive `flock` while a [`Spool`] has
//! the directory open.

mod dir;
mod scan;

pub use scan::TornTail;

use crate::config::{Fsync, SpoolConfig, WhenFull};
use crate::entry::{DeadLetter, Entry, EntryId, Record, Removal};
use crate::{frame, SpoolError};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const SEGMENT_EXT: &str = "seg";
const DEAD_LETTER_FILE: &str = "dead-letter.log";

/// What [`Spool::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Live entries found.
    pub entries: usize,
    /// Dead letters found.
    pub dead_letters: usize,
    /// Files whose ends could not be read. The tail of the newest segment is cut off (it
    /// can only be an interrupted write); other files are left as they are, unread past the
    /// damage.
    pub torn: Vec<TornTail>,
}

/// Counters since the spool was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Live entries.
    pub entries: usize,
    /// Bytes of live entries, framing included: what the byte cap counts.
    pub bytes: u64,
    /// Bytes of the segment files: the live entries, and the records of entries removed
    /// that compaction has not reclaimed yet (see [`SpoolConfig::with_max_bytes`]). The
    /// dead-letter file is not counted.
    pub disk_bytes: u64,
    /// Entries spooled.
    pub pushed: u64,
    /// Entries removed after delivery.
    pub delivered: u64,
    /// Entries dropped to make room ([`WhenFull::DropOldest`]).
    pub dropped: u64,
    /// Entries moved to the dead-letter part.
    pub dead_lettered: u64,
    /// `fsync` calls made on segment and dead-letter files.
    pub fsyncs: u64,
    /// Segment files compacted: their live entries copied forward, the file deleted.
    pub compacted: u64,
}

/// A durable local spool of requests in a directory. Cheap to clone; clones share it.
///
/// One [`Spool`] at a time may have a directory open: [`Spool::open`] takes an exclusive
/// advisory lock on the directory's `lock` file and fails with [`SpoolError::Locked`] while
/// another process, or another `Spool` of this one, holds it. Clone the `Spool` to share it.
///
/// # Examples
///
/// ```
/// use abide_spool::{NewEntry, Spool, SpoolConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("abide-spool-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let (spool, report) = Spool::open(&dir, SpoolConfig::new())?;
/// assert!(report.torn.is_empty());
/// let request = http::Request::post("https://api.example.com/v1/events").body(())?;
/// let (parts, ()) = request.into_parts();
/// let id = spool.push(NewEntry::from_parts(&parts, bytes::Bytes::from("{}")))?;
/// assert_eq!(spool.entries()[0].id, id);
/// spool.ack(id)?;
/// assert!(spool.is_empty());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Spool {
    inner: Arc<Mutex<Inner>>,
}

/// A request to spool: the parts [`Spool::push`] writes.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// The method.
    pub method: http::Method,
    /// The URI.
    pub uri: http::Uri,
    /// The headers; credential headers are removed by the spool.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
    /// The bucket key.
    pub bucket: String,
    /// The cost.
    pub cost: Option<u32>,
}

impl NewEntry {
    /// An entry from request parts: bucket from an `abide_cap::BucketKey` extension or the
    /// URI's authority, cost from an `abide_cap::Cost` extension.
    pub fn from_parts(parts: &http::request::Parts, body: bytes::Bytes) -> Self {
        let bucket = match parts.extensions.get::<abide_cap::BucketKey>() {
            Some(key) => key.as_str().to_owned(),
            None => abide_cap::authority_key(parts).as_str().to_owned(),
        };
        NewEntry {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body,
            bucket,
            cost: parts.extensions.get::<abide_cap::Cost>().map(|c| c.0),
        }
    }
}

#[derive(Debug)]
struct Segment {
    /// The number in the file name: greater than every older segment's, and at least the
    /// id of every entry spooled after the segment was begun.
    first: u64,
    path: PathBuf,
    /// The file's length.
    len: u64,
    /// Live entries put in this file, and their framed bytes.
    live: usize,
    live_bytes: u64,
    /// Unreadable past some point: never compacted (what it holds past the damage is
    /// unknown), and compaction stops at it.
    damaged: bool,
}

#[derive(Debug)]
struct Live {
    entry: Entry,
    size: u64,
    segment: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: SpoolConfig,
    segments: Vec<Segment>,
    /// The last segment's file, open for appending.
    active: File,
    /// The length of every segment file together.
    disk: u64,
    live: BTreeMap<EntryId, Live>,
    dead: Vec<DeadLetter>,
    dead_file: Option<File>,
    next_id: u64,
    unsynced: u32,
    stats: SpoolStats,
    buf: Vec<u8>,
    /// Holds the directory's lock while open; dropped last.
    _lock: File,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`.
    ///
    /// # Errors
    ///
    /// [`SpoolError::UnsafeDirectory`] when `dir` is world-writable, owned by another user
    /// or not a directory; [`SpoolError::Locked`] when another `Spool` has it open;
    /// [`SpoolError::Io`] when it cannot be read or written.
    pub fn open(
        dir: impl AsRef<Path>,
        config: SpoolConfig,
    ) -> Result<(Spool, OpenReport), SpoolError> {
        let dir = dir.as_ref().to_path_buf();
        let lock = dir::prepare(&dir)?;
        let (inner, report) = Inner::load(dir, config, lock)?;
        Ok((
            Spool {
                inner: Arc::new(Mutex::new(inner)),
            },
            report,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written record visible: the
        // frame check rejects it. Keep going with the state as it is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a new entry and returns its id. Credential headers are removed and an
    /// `Idempotency-Key` is added when the request has none. Once this returns, the entry
    /// survives the process being killed (and, with [`Fsync::PerEntry`], a power loss).
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] when the spool is full and refuses; [`SpoolError::EntryTooLarge`]
    /// when the entry alone passes the byte cap; [`SpoolError::Io`] when writing fails.
    pub fn push(&self, entry: NewEntry) -> Result<EntryId, SpoolError> {
        self.lock().push(entry)
    }

    /// Removes an entry after it was delivered.
    ///
    /// # Errors
    ///
    /// [`SpoolError::UnknownEntry`] when it is not live; [`SpoolError::Io`].
    pub fn ack(&self, id: EntryId) -> Result<(), SpoolError> {
        self.lock().remove(id, Removal::Delivered)
    }

    /// Moves an entry to the dead-letter part with the verdict that made it permanent.
    ///
    /// # Errors
    ///
    /// [`SpoolError::UnknownEntry`] when it is not live; [`SpoolError::Io`].
    pub fn dead_letter(&self, id: EntryId, verdict: &str) -> Result<(), SpoolError> {
        self.lock().dead_letter(id, verdict)
    }

    /// The live entries, oldest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().live.values().map(|l| l.entry.clone()).collect()
    }

    /// One live entry.
    pub fn get(&self, id: EntryId) -> Option<Entry> {
        self.lock().live.get(&id).map(|l| l.entry.clone())
    }

    /// The dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead.clone()
    }

    /// The number of live entries.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters since the spool was opened.
    pub fn stats(&self) -> SpoolStats {
        let inner = self.lock();
        SpoolStats {
            entries: inner.live.len(),
            disk_bytes: inner.disk,
            ..inner.stats
        }
    }

    /// The directory.
    pub fn dir(&self) -> PathBuf {
        self.lock().dir.clone()
    }

    /// Syncs what [`Fsync::Batched`] has not synced yet.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Io`].
    pub fn sync(&self) -> Result<(), SpoolError> {
        self.lock().sync()
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.{SEGMENT_EXT}")
}

fn read_file(path: &Path) -> Result<Vec<u8>, SpoolError> {
    fs::read(path).map_err(SpoolError::io("read", path))
}

impl Inner {
    fn load(
        dir: PathBuf,
        config: SpoolConfig,
        lock: File,
    ) -> Result<(Inner, OpenReport), SpoolError> {
        let mut report = OpenReport::default();
        let mut firsts = Vec::new();
        for item in fs::read_dir(&dir).map_err(SpoolError::io("list", &dir))? {
            let path = item.map_err(SpoolError::io("list", &dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXT) {
                continue;
            }
            if let Some(first) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            {
                firsts.push((first, path));
            }
        }
        firsts.sort();
        let mut live: BTreeMap<EntryId, Live> = BTreeMap::new();
        let mut next_id = firsts.last().map_or(1, |(first, _)| *first).max(1);
        let mut segments = Vec::with_capacity(firsts.len());
        let mut damaged_tail = false;
        let count = firsts.len();
        for (i, (first, path)) in firsts.into_iter().enumerate() {
            let bytes = read_file(&path)?;
            let scanned = scan::scan(path.clone(), &bytes);
            let mut len = bytes.len() as u64;
            let mut damaged = false;
            if let Some(torn) = scanned.torn {
                if i + 1 == count && torn.truncated {
                    // An interrupted append: cut it off so new frames follow good ones.
                    let file = dir::open_append(&path)?;
                    file.set_len(scanned.good_len)
                        .and_then(|()| file.sync_all())
                        .map_err(SpoolError::io("truncate torn tail of", &path))?;
                    len = scanned.good_len;
                } else {
                    // Damage, not a cut write: keep the file as it is (and append to a new
                    // segment, so new frames never sit behind unreadable bytes).
                    damaged = true;
                    damaged_tail = i + 1 == count;
                }
                tracing::warn!(file = %torn.file.display(), offset = torn.offset, bytes = torn.bytes, truncated = torn.truncated, "spool: unreadable tail");
                report.torn.push(torn);
            }
            for record in scanned.records {
                match record {
                    Record::Put(entry) => {
                        next_id = next_id.max(entry.id.0 + 1);
                        let size = encoded_len(&Record::Put(entry.clone()));
                        // A later put of the same id is a copy made by compaction.
                        live.insert(
                            entry.id,
                            Live {
                                entry,
                                size,
                                segment: first,
                            },
                        );
                    }
                    Record::Remove(id, _) => {
                        live.remove(&id);
                    }
                    Record::Dead(_) => {}
                }
            }
            segments.push(Segment {
                first,
                path,
                len,
                live: 0,
                live_bytes: 0,
                damaged,
            });
        }
        let dead_path = dir.join(DEAD_LETTER_FILE);
        let mut dead = Vec::new();
        if dead_path.exists() {
            let bytes = read_file(&dead_path)?;
            let scanned = scan::scan(dead_path.clone(), &bytes);
            let rewrite = scanned.torn.is_some();
            if let Some(torn) = scanned.torn {
                tracing::warn!(file = %torn.file.display(), offset = torn.offset, "spool: unreadable dead-letter tail");
                report.torn.push(torn);
            }
            for record in scanned.records {
                if let Record::Dead(letter) = record {
                    // Written before its remove: a crash between the two leaves it in both.
                    live.remove(&letter.entry.id);
                    next_id = next_id.max(letter.entry.id.0 + 1);
                    dead.push(letter);
                }
            }
            if rewrite {
                rewrite_dead_letters(&dir, &dead)?;
            }
        }
        for l in live.values() {
            if let Some(s) = segments.iter_mut().find(|s| s.first == l.segment) {
                s.live += 1;
                s.live_bytes += l.size;
            }
        }
        let active = match segments.last() {
            Some(s) if !damaged_tail && s.len < config.segment_bytes => dir::open_append(&s.path)?,
            last => {
                let first = next_id.max(last.map_or(0, |s| s.first + 1));
                let file = dir::create_file(&dir, &segment_name(first))?;
                segments.push(Segment {
                    first,
                    path: dir.join(segment_name(first)),
                    len: 0,
                    live: 0,
                    live_bytes: 0,
                    damaged: false,
                });
                file
            }
        };
        report.entries = live.len();
        report.dead_letters = dead.len();
        let bytes = live.values().map(|l| l.size).sum();
        let disk = segments.iter().map(|s| s.len).sum();
        let mut inner = Inner {
            dir,
            config,
            segments,
            active,
            disk,
            live,
            dead,
            dead_file: None,
            next_id,
            unsynced: 0,
            stats: SpoolStats {
                bytes,
                ..SpoolStats::default()
            },
            buf: Vec::new(),
            _lock: lock,
        };
        inner.collect()?;
        inner.compact()?;
        Ok((inner, report))
    }

    fn active(&mut self) -> &mut Segment {
        self.segments.last_mut().expect("an active segment")
    }

    fn push(&mut self, new: NewEntry) -> Result<EntryId, SpoolError> {
        let id = EntryId(self.next_id);
        let mut headers = new.headers;
        for name in &self.config.redacted {
            headers.remove(name);
        }
        let idempotency_key = match headers
            .get(abide_retry::IDEMPOTENCY_KEY)
            .and_then(|v| v.to_str().ok())
        {
            Some(key) if !key.is_empty() => key.to_owned(),
            _ => {
                let key = crate::key::new_idempotency_key();
                headers.insert(
                    abide_retry::IDEMPOTENCY_KEY,
                    http::HeaderValue::from_str(&key).expect("hex is a valid header value"),
                );
                key
            }
        };
        let entry = Entry {
            id,
            method: new.method,
            uri: new.uri,
            headers,
            body: new.body,
            bucket: new.bucket,
            cost: new.cost,
            idempotency_key,
        };
        let record = Record::Put(entry);
        let size = encoded_len(&record);
        self.make_room(size)?;
        self.append(&record)?;
        let Record::Put(entry) = record else {
            unreachable!("built as a put above")
        };
        self.next_id += 1;
        let active = self.active();
        active.live += 1;
        active.live_bytes += size;
        let segment = active.first;
        self.live.insert(
            id,
            Live {
                entry,
                size,
                segment,
            },
        );
        self.stats.bytes += size;
        self.stats.pushed += 1;
        self.roll_if_due()?;
        self.compact()?;
        Ok(id)
    }

    fn make_room(&mut self, size: u64) -> Result<(), SpoolError> {
        if size > self.config.max_bytes {
            return Err(SpoolError::EntryTooLarge {
                size,
                max: self.config.max_bytes,
            });
        }
        let full = |s: &Self| {
            s.live.len() >= s.config.max_entries || s.stats.bytes + size > s.config.max_bytes
        };
        while full(self) {
            match self.config.when_full {
                WhenFull::Refuse => {
                    return Err(SpoolError::Full {
                        entries: self.live.len(),
                        bytes: self.stats.bytes,
                    })
                }
                WhenFull::DropOldest => {
                    let oldest = *self.live.keys().next().expect("full means not empty");
                    self.remove(oldest, Removal::Dropped)?;
                    self.stats.dropped += 1;
                }
            }
        }
        Ok(())
    }

    fn remove(&mut self, id: EntryId, why: Removal) -> Result<(), SpoolError> {
        if !self.live.contains_key(&id) {
            return Err(SpoolError::UnknownEntry(id));
        }
        self.append(&Record::Remove(id, why))?;
        let gone = self.live.remove(&id).expect("checked above");
        self.stats.bytes -= gone.size;
        if why == Removal::Delivered {
            self.stats.delivered += 1;
        }
        if let Some(s) = self.segments.iter_mut().find(|s| s.first == gone.segment) {
            s.live -= 1;
            s.live_bytes -= gone.size;
        }
        self.roll_if_due()?;
        self.collect()?;
        self.compact()
    }

    fn dead_letter(&mut self, id: EntryId, verdict: &str) -> Result<(), SpoolError> {
        let entry = match self.live.get(&id) {
            Some(l) => l.entry.clone(),
            None => return Err(SpoolError::UnknownEntry(id)),
        };
        let letter = DeadLetter {
            entry,
            verdict: verdict.to_owned(),
        };
        let path = self.dir.join(DEAD_LETTER_FILE);
        if self.dead_file.is_none() {
            let file = if path.exists() {
                dir::open_append(&path)?
            } else {
                dir::create_file(&self.dir, DEAD_LETTER_FILE)?
            };
            self.dead_file = Some(file);
        }
        let mut buf = Vec::new();
        frame_record(&Record::Dead(letter.clone()), &mut buf);
        let file = self.dead_file.as_mut().expect("opened above");
        file.write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(SpoolError::io("write", &path))?;
        self.stats.fsyncs += 1;
        self.dead.push(letter);
        self.remove(id, Removal::DeadLettered)?;
        self.stats.dead_lettered += 1;
        Ok(())
    }

    /// Writes a record and syncs it as [`Fsync`] says.
    fn append(&mut self, record: &Record) -> Result<(), SpoolError> {
        self.write(record)?;
        let due = match self.config.fsync {
            Fsync::PerEntry => true,
            Fsync::Batched(n) => self.unsynced >= n.get(),
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// One `write` per record, so a killed process leaves either the whole frame in the
    /// page cache or a torn tail the next open cuts off.
    fn write(&mut self, record: &Record) -> Result<(), SpoolError> {
        self.buf.clear();
        frame_record(record, &mut self.buf);
        let len = self.active().len;
        let path = &self.segments.last().expect("an active segment").path;
        if let Err(e) = self.active.write_all(&self.buf) {
            // Leave no partial frame for later frames to follow (they would be unreadable).
            if self.active.set_len(len).is_err() {
                tracing::warn!(file = %path.display(), "spool: could not cut a failed write; starting a new segment");
                let path = path.clone();
                // The file's length is unknown now: count it as damaged.
                self.active().damaged = true;
                self.roll().map_err(|_| SpoolError::io("write", &path)(e))?;
                return Err(SpoolError::Io {
                    action: "write",
                    path,
                    source: std::io::Error::other("write failed; segment closed"),
                });
            }
            return Err(SpoolError::io("write", path)(e));
        }
        let written = self.buf.len() as u64;
        self.active().len += written;
        self.disk += written;
        self.unsynced += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced == 0 {
            return Ok(());
        }
        let path = &self.segments.last().expect("an active segment").path;
        self.active
            .sync_data()
            .map_err(SpoolError::io("sync", path))?;
        self.unsynced = 0;
        self.stats.fsyncs += 1;
        Ok(())
    }

    fn roll_if_due(&mut self) -> Result<(), SpoolError> {
        if self.active().len >= self.config.segment_bytes {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment and begins a new one.
    fn roll(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        let first = self.next_id.max(self.active().first + 1);
        self.active = dir::create_file(&self.dir, &segment_name(first))?;
        self.segments.push(Segment {
            first,
            path: self.dir.join(segment_name(first)),
            len: 0,
            live: 0,
            live_bytes: 0,
            damaged: false,
        });
        Ok(())
    }

    /// Deletes the oldest segments while they hold no live entry (never the active one).
    fn collect(&mut self) -> Result<(), SpoolError> {
        let mut deleted = false;
        while self.segments.len() > 1 && self.segments[0].live == 0 {
            let old = self.segments.remove(0);
            fs::remove_file(&old.path).map_err(SpoolError::io("delete", &old.path))?;
            self.disk -= old.len;
            deleted = true;
        }
        if deleted {
            dir::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Keeps the files within about one segment of the byte cap. While they are over it,
    /// the oldest closed segment that holds anything but live entries (delivered entries,
    /// removes) has its live entries copied to the active segment, synced, and is deleted.
    ///
    /// Why deleting it cannot bring a removed entry back: every older segment holds only
    /// live entries and no removes, so no remove in the deleted file is about an entry of a
    /// file that stays. A crash between the copy and the delete leaves an entry in two
    /// files; opening keeps the later copy (same id, same key), so nothing is doubled.
    fn compact(&mut self) -> Result<(), SpoolError> {
        // Each pass deletes a segment that exists now; this many passes rewrite them all.
        let mut passes = self.segments.len();
        while passes > 0 && self.disk > self.config.max_bytes {
            passes -= 1;
            let closed = self.segments.len() - 1;
            let Some(at) = self.segments[..closed]
                .iter()
                .position(|s| s.damaged || s.len > s.live_bytes)
            else {
                return Ok(());
            };
            if self.segments[at].damaged {
                // What it holds past the damage is unknown; keep it and all after it.
                return Ok(());
            }
            let first = self.segments[at].first;
            let moving: Vec<EntryId> = self
                .live
                .iter()
                .filter(|(_, l)| l.segment == first)
                .map(|(id, _)| *id)
                .collect();
            for id in moving {
                let record = Record::Put(self.live[&id].entry.clone());
                self.write(&record)?;
                let active = self.active();
                active.live += 1;
                let to = active.first;
                let l = self.live.get_mut(&id).expect("live");
                l.segment = to;
                let size = l.size;
                self.active().live_bytes += size;
                let old = &mut self.segments[at];
                old.live -= 1;
                old.live_bytes -= size;
                if self.active().len >= self.config.segment_bytes {
                    // The new segment goes at the end; `at` stays where it is.
                    self.roll()?;
                }
            }
            // The copies are on disk before the original goes.
            self.sync()?;
            let old = self.segments.remove(at);
            fs::remove_file(&old.path).map_err(SpoolError::io("delete", &old.path))?;
            self.disk -= old.len;
            dir::sync_dir(&self.dir)?;
            self.stats.compacted += 1;
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "spool: final sync failed");
        }
    }
}

/// Replaces a damaged dead-letter file with the letters that could be read from it.
fn rewrite_dead_letters(dir: &Path, letters: &[DeadLetter]) -> Result<(), SpoolError> {
    let tmp_name = format!("{DEAD_LETTER_FILE}.tmp");
    let tmp = dir.join(&tmp_name);
    if tmp.exists() {
        fs::remove_file(&tmp).map_err(SpoolError::io("delete", &tmp))?;
    }
    let mut file = dir::create_file(dir, &tmp_name)?;
    let mut buf = Vec::new();
    for letter in letters {
        frame_record(&Record::Dead(letter.clone()), &mut buf);
    }
    file.write_all(&buf)
        .and_then(|()| file.sync_all())
        .map_err(SpoolError::io("write", &tmp))?;
    let path = dir.join(DEAD_LETTER_FILE);
    fs::rename(&tmp, &path).map_err(SpoolError::io("replace", &path))?;
    dir::sync_dir(dir)
}

fn frame_record(record: &Record, out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    record.encode(&mut payload);
    frame::encode(&payload, out);
}

fn encoded_len(record: &Record) -> u64 {
    let mut out = Vec::new();
    frame_record(record, &mut out);
    out.len() as u64
}
