//! The errors of the spool and of `SpoolLayer`.

use crate::EntryId;
use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a spool operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpoolError {
    /// A new entry would pass the entry or byte cap and the spool refuses when full.
    Full {
        /// Live entries now.
        entries: usize,
        /// Live bytes now.
        bytes: u64,
    },
    /// The entry alone is larger than the spool's byte cap.
    EntryTooLarge {
        /// The entry's size on disk.
        size: u64,
        /// The byte cap.
        max: u64,
    },
    /// The directory is not safe for requests: world-writable, owned by someone else, or
    /// not a directory.
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Another [`Spool`](crate::Spool) holds the directory: another process, or another
    /// `Spool::open` of the same directory in this one (clone the `Spool` instead). Two
    /// writers would interleave segments; the lock is released when the holder is dropped
    /// or its process exits, `kill -9` included.
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// No live entry has this id (already delivered, dropped or dead-lettered).
    UnknownEntry(EntryId),
    /// The file system refused.
    Io {
        /// What the spool was doing.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl SpoolError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| SpoolError::Io {
            action,
            path,
            source,
        }
    }
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::Full { entries, bytes } => {
                write!(f, "spool full ({entries} entries, {bytes} bytes)")
            }
            SpoolError::EntryTooLarge { size, max } => {
                write!(
                    f,
                    "entry of {size} bytes exceeds the spool's cap of {max} bytes"
                )
            }
            SpoolError::UnsafeDirectory { path, why } => {
                write!(f, "refusing spool directory {}: {why}", path.display())
            }
            SpoolError::Locked { path } => write!(
                f,
                "spool directory {} is in use by another process or another open Spool",
                path.display()
            ),
            SpoolError::UnknownEntry(id) => write!(f, "no live spool entry {id}"),
            SpoolError::Io {
                action,
                path,
                source,
            } => write!(f, "spool could not {action} {}: {source}", path.display()),
        }
    }
}

impl Error for SpoolError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SpoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The outcome of a deferrable request that could not go now: it was written to the spool
/// and will be sent by the replayer. Reaches the caller as the `Err` of
/// [`SpoolLayer`](crate::SpoolLayer)'s service; through the facade, `abide::Outcome::of`
/// reads it as `Outcome::Deferred` with the entry's id (or `downcast_ref::<Deferred>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub(crate) id: EntryId,
    pub(crate) idempotency_key: String,
    pub(crate) reason: String,
}

impl Deferred {
    /// The spool entry's id.
    pub fn id(&self) -> EntryId {
        self.id
    }
    /// The `Idempotency-Key` the request will carry when replayed.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }
    /// Why it could not go now, in words.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "deferred to spool entry {} ({})", self.id, self.reason)
    }
}

impl Error for Deferred {}

/// A deferrable request's body was larger than the layer buffers; it was sent as it was
/// and failed, and could not be spooled. The request's own failure is the
/// [`source`](Error::source).
#[derive(Debug)]
pub struct BodyTooLarge {
    pub(crate) limit: usize,
    pub(crate) source: Option<Box<dyn Error + Send + Sync>>,
}

impl BodyTooLarge {
    /// The layer's body buffer limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deferrable request not spooled: its body is over the {} byte buffer limit",
            self.limit
        )
    }
}

impl Error for BodyTooLarge {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
