//! The spool directory: owner-only files in a directory the user owns.

use crate::SpoolError;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The file whose owner proves who we are (no `unsafe` `getuid` needed): created by this
/// process, so its owner is our effective user.
const OWNER_PROBE: &str = ".owner";

/// Creates `dir` (0700) if missing, then refuses it unless it is a directory owned by this
/// user and not writable by others.
pub(crate) fn prepare(dir: &Path) -> Result<(), SpoolError> {
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
    let probe = dir.join(OWNER_PROBE);
    let probe_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&probe)
        .map_err(SpoolError::io("create owner probe", &probe))?;
    let me = probe_file
        .metadata()
        .map_err(SpoolError::io("inspect owner probe", &probe))?
        .uid();
    if me != meta.uid() {
        return Err(unsafe_dir("owned by another user"));
    }
    Ok(())
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
