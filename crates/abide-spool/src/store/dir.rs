//! The spool directory: owner-only files in a directory the user owns, held by one
//! [`Spool`](crate::Spool) at a time.

use crate::SpoolError;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The lock file. Holding an exclusive advisory lock (`flock`) on it is what owns the
/// directory; the kernel releases it when the holder exits, `kill -9` included. Being
/// created by this process, its owner is also our effective user (no `unsafe` `getuid`
/// needed), which the ownership check compares with the directory's.
pub(crate) const LOCK_FILE: &str = "lock";

/// Creates `dir` (0700) if missing, refuses it unless it is a directory owned by this user
/// and not writable by others, and takes its lock. The returned file holds the lock until
/// it is dropped.
pub(crate) fn prepare(dir: &Path) -> Result<File, SpoolError> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(SpoolError::io("create directory", dir))?;
    }
    let meta = fs::metadata(dir).map_err(SpoolError::io("inspect directory", dir))?;
    let unsafe_dir = |why| SpoolError::UnsafeDirectory {
        path: dir.to_path_buf(),
        why,
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory"));
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(unsafe_dir("world-writable"));
    }
    let path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(SpoolError::io("create lock file", &path))?;
    let me = lock
        .metadata()
        .map_err(SpoolError::io("inspect lock file", &path))?
        .uid();
    if me != meta.uid() {
        return Err(unsafe_dir("owned by another user"));
    }
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(SpoolError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(SpoolError::Io {
            action: "lock",
            path,
            source,
        }),
    }
}

/// Creates a new owner-only file (fails if it exists) and makes its name durable.
pub(crate) fn create_file(dir: &Path, name: &str) -> Result<File, SpoolError> {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .append(true)
        .read(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(SpoolError::io("create", &path))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Opens an existing file for appending.
pub(crate) fn open_append(path: &Path) -> Result<File, SpoolError> {
    OpenOptions::new()
        .append(true)
        .read(true)
        .open(path)
        .map_err(SpoolError::io("open", path))
}

/// Makes creations and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SpoolError::io("sync directory", dir))
}
