#![allow(dead_code, unreachable_pub)]
//! Helpers shared by the spool's tests.

use abide_spool::{NewEntry, Spool, SpoolConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh private directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "abide-spool-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn request(n: u32) -> NewEntry {
    let request = http::Request::post(format!("http://127.0.0.1:9/v1/events/{n}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    NewEntry::from_parts(&parts, bytes::Bytes::from(format!("{{\"n\":{n}}}")))
}

pub fn open(dir: &Path) -> Spool {
    Spool::open(dir, SpoolConfig::new()).unwrap().0
}

/// Every file of the spool directory, concatenated.
pub fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}
