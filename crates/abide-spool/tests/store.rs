//! The spool store: order, removal, dead letters, caps, permissions, credentials.

mod support;

use abide_spool::{Fsync, Spool, SpoolConfig, SpoolError, WhenFull};
use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use support::{open, raw_bytes, request, TempDir};

#[test]
fn entries_survive_a_reopen_in_order_and_acked_ones_do_not() {
    let dir = TempDir::new("reopen");
    let spool = open(dir.path());
    let ids: Vec<_> = (0..5).map(|n| spool.push(request(n)).unwrap()).collect();
    spool.ack(ids[1]).unwrap();
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    assert!(report.torn.is_empty());
    assert_eq!(report.entries, 4);
    let got: Vec<_> = spool.entries().iter().map(|e| e.id).collect();
    assert_eq!(got, vec![ids[0], ids[2], ids[3], ids[4]]);
    assert_eq!(spool.entries()[0].body, "{\"n\":0}");
    assert_eq!(spool.entries()[0].method, http::Method::POST);
    assert_eq!(spool.entries()[0].uri, "http://127.0.0.1:9/v1/events/0");
    assert_eq!(spool.entries()[0].bucket, "127.0.0.1:9");
}

#[test]
fn ids_keep_increasing_after_every_entry_was_delivered() {
    let dir = TempDir::new("ids");
    let spool = open(dir.path());
    let first = spool.push(request(0)).unwrap();
    spool.ack(first).unwrap();
    drop(spool);
    let spool = open(dir.path());
    let second = spool.push(request(1)).unwrap();
    assert!(second > first, "{second} after {first}");
}

#[test]
fn each_entry_gets_a_distinct_idempotency_key_in_its_headers() {
    let dir = TempDir::new("keys");
    let spool = open(dir.path());
    spool.push(request(0)).unwrap();
    spool.push(request(1)).unwrap();
    let entries = spool.entries();
    assert_ne!(entries[0].idempotency_key, entries[1].idempotency_key);
    for e in &entries {
        assert_eq!(e.headers["idempotency-key"], e.idempotency_key.as_str());
        assert_eq!(e.idempotency_key.len(), 32);
    }
}

#[test]
fn a_request_that_has_an_idempotency_key_keeps_it() {
    let dir = TempDir::new("ownkey");
    let spool = open(dir.path());
    let mut entry = request(0);
    entry
        .headers
        .insert("idempotency-key", "caller-chose-this".parse().unwrap());
    let id = spool.push(entry).unwrap();
    assert_eq!(spool.get(id).unwrap().idempotency_key, "caller-chose-this");
}

#[test]
fn a_dead_letter_keeps_its_verdict_and_leaves_the_live_spool() {
    let dir = TempDir::new("dead");
    let spool = open(dir.path());
    let id = spool.push(request(7)).unwrap();
    spool
        .dead_letter(id, "client_error: 400 Bad Request")
        .unwrap();
    assert!(spool.is_empty());
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), SpoolConfig::new()).unwrap();
    assert_eq!(report.dead_letters, 1);
    assert!(spool.is_empty());
    let dead = spool.dead_letters();
    assert_eq!(dead[0].entry.id, id);
    assert_eq!(dead[0].verdict, "client_error: 400 Bad Request");
    assert!(matches!(spool.ack(id), Err(SpoolError::UnknownEntry(_))));
}

#[test]
fn a_full_spool_that_refuses_names_the_error() {
    let dir = TempDir::new("refuse");
    let config = SpoolConfig::new().with_max_entries(2);
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    spool.push(request(0)).unwrap();
    spool.push(request(1)).unwrap();
    let err = spool.push(request(2)).unwrap_err();
    assert!(matches!(err, SpoolError::Full { entries: 2, .. }), "{err}");
    assert_eq!(spool.len(), 2);
}

#[test]
fn a_full_spool_that_drops_oldest_counts_the_drops() {
    let dir = TempDir::new("drop");
    let config = SpoolConfig::new()
        .with_max_entries(2)
        .with_when_full(WhenFull::DropOldest);
    let (spool, _) = Spool::open(dir.path(), config.clone()).unwrap();
    let ids: Vec<_> = (0..5).map(|n| spool.push(request(n)).unwrap()).collect();
    assert_eq!(spool.stats().dropped, 3);
    drop(spool);
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    let got: Vec<_> = spool.entries().iter().map(|e| e.id).collect();
    assert_eq!(got, ids[3..].to_vec());
}

#[test]
fn the_byte_cap_bounds_live_bytes_and_an_entry_over_it_alone_is_refused() {
    let dir = TempDir::new("bytes");
    let config = SpoolConfig::new().with_max_bytes(400);
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    let mut n = 0;
    while spool.push(request(n)).is_ok() {
        n += 1;
    }
    assert!(n > 0);
    assert!(spool.stats().bytes <= 400);
    let mut big = request(0);
    big.body = bytes::Bytes::from(vec![b'x'; 1000]);
    assert!(matches!(
        spool.push(big),
        Err(SpoolError::EntryTooLarge { max: 400, .. })
    ));
}

#[test]
fn delivered_segments_are_deleted_and_the_rest_kept() {
    let dir = TempDir::new("segments");
    let config = SpoolConfig::new().with_segment_bytes(4096);
    let (spool, _) = Spool::open(dir.path(), config.clone()).unwrap();
    let ids: Vec<_> = (0..200).map(|n| spool.push(request(n)).unwrap()).collect();
    let count = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    let before = count(dir.path());
    assert!(before > 3, "{before} segments");
    for id in &ids[..150] {
        spool.ack(*id).unwrap();
    }
    let after = count(dir.path());
    assert!(after < before, "{after} of {before} segments left");
    drop(spool);
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    let got: Vec<_> = spool.entries().iter().map(|e| e.id).collect();
    assert_eq!(got, ids[150..].to_vec());
}

#[test]
fn batched_fsync_syncs_less_often_and_loses_nothing_on_reopen() {
    let dir = TempDir::new("batched");
    let config = SpoolConfig::new().with_fsync(Fsync::Batched(NonZeroU32::new(10).unwrap()));
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    for n in 0..25 {
        spool.push(request(n)).unwrap();
    }
    assert_eq!(spool.stats().fsyncs, 2);
    drop(spool);
    assert_eq!(open(dir.path()).len(), 25);
}

#[test]
fn files_are_owner_only_and_a_world_writable_directory_is_refused() {
    let dir = TempDir::new("perms");
    let spool = open(dir.path());
    let id = spool.push(request(0)).unwrap();
    spool.dead_letter(id, "client_error").unwrap();
    for item in std::fs::read_dir(dir.path()).unwrap() {
        let meta = item.unwrap().metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let created = std::fs::metadata(dir.path()).unwrap().permissions().mode();
    assert_eq!(created & 0o777, 0o700);
    drop(spool);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Spool::open(dir.path(), SpoolConfig::new()).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::UnsafeDirectory {
                why: "world-writable",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn credential_headers_leave_no_trace_in_the_files() {
    let dir = TempDir::new("secrets");
    let config =
        SpoolConfig::new().with_redacted_header(http::HeaderName::from_static("x-team-token"));
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    let mut entry = request(0);
    for (name, value) in [
        ("authorization", "Bearer sk-SECRET-aaaa"),
        ("proxy-authorization", "Basic SECRET-bbbb"),
        ("cookie", "session=SECRET-cccc"),
        ("x-api-key", "SECRET-dddd"),
        ("api-key", "SECRET-eeee"),
        ("x-team-token", "SECRET-ffff"),
    ] {
        entry
            .headers
            .insert(http::HeaderName::from_static(name), value.parse().unwrap());
    }
    let id = spool.push(entry).unwrap();
    spool.dead_letter(id, "auth_error").unwrap();
    spool.push(request(1)).unwrap();
    let raw = raw_bytes(dir.path());
    assert!(!raw.is_empty());
    for needle in [
        "SECRET",
        "authorization",
        "cookie",
        "api-key",
        "x-team-token",
    ] {
        assert!(
            !raw.windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
            "{needle} found in the spool files"
        );
    }
    // The rest of the request is there.
    assert!(raw.windows(12).any(|w| w == b"content-type"));
}

#[test]
fn keep_credentials_writes_them_for_who_asks() {
    let dir = TempDir::new("keep");
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new().keep_credentials()).unwrap();
    let mut entry = request(0);
    entry.headers.insert("x-api-key", "k".parse().unwrap());
    let id = spool.push(entry).unwrap();
    assert_eq!(spool.get(id).unwrap().headers["x-api-key"], "k");
}

#[test]
fn a_directory_open_in_one_spool_is_refused_to_a_second_until_the_first_is_dropped() {
    let dir = TempDir::new("lock");
    let spool = open(dir.path());
    let err = Spool::open(dir.path(), SpoolConfig::new()).unwrap_err();
    assert!(
        matches!(&err, SpoolError::Locked { path } if path == dir.path()),
        "{err}"
    );
    assert!(err.to_string().contains("in use"), "{err}");
    // A clone shares the one lock and writes as usual.
    spool.clone().push(request(0)).unwrap();
    drop(spool);
    assert_eq!(open(dir.path()).len(), 1);
}

#[test]
fn a_directory_owned_by_another_user_is_refused() {
    let dir = TempDir::new("owner");
    drop(open(dir.path()));
    // Handing the directory to `nobody` takes root; as anyone else there is no directory
    // of another user that this user may write in, so the check cannot be reached.
    if let Err(e) = std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)) {
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        eprintln!("not root: the ownership check is not exercised");
        return;
    }
    let err = Spool::open(dir.path(), SpoolConfig::new()).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::UnsafeDirectory {
                why: "owned by another user",
                ..
            }
        ),
        "{err}"
    );
}

/// The segment files' total length.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// An entry of bucket `bucket`.
fn in_bucket(n: u32, bucket: &str) -> abide_spool::NewEntry {
    let mut entry = request(n);
    entry.bucket = bucket.into();
    entry
}

#[test]
fn a_full_spool_by_bytes_drops_the_oldest_and_counts_them() {
    let dir = TempDir::new("dropbytes");
    let config = SpoolConfig::new()
        .with_max_bytes(1000)
        .with_when_full(WhenFull::DropOldest);
    let (spool, _) = Spool::open(dir.path(), config.clone()).unwrap();
    let ids: Vec<_> = (0..40).map(|n| spool.push(request(n)).unwrap()).collect();
    let stats = spool.stats();
    assert!(stats.bytes <= 1000, "{stats:?}");
    assert!(stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.dropped as usize + spool.len(), 40);
    // The newest are kept, in order.
    let kept: Vec<_> = spool.entries().iter().map(|e| e.id).collect();
    assert_eq!(kept, ids[40 - kept.len()..].to_vec());
    drop(spool);
    let (spool, _) = Spool::open(dir.path(), config).unwrap();
    let reopened: Vec<_> = spool.entries().iter().map(|e| e.id).collect();
    assert_eq!(reopened, kept);
}

#[test]
fn a_full_spool_by_bytes_refuses_with_the_named_error_and_takes_entries_again_once_drained() {
    let dir = TempDir::new("refusebytes");
    let (spool, _) = Spool::open(dir.path(), SpoolConfig::new().with_max_bytes(1000)).unwrap();
    let mut ids = Vec::new();
    let err = loop {
        match spool.push(request(ids.len() as u32)) {
            Ok(id) => ids.push(id),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, SpoolError::Full { entries, bytes } if entries == ids.len() && bytes <= 1000),
        "{err}"
    );
    assert_eq!(spool.stats().dropped, 0);
    spool.ack(ids[0]).unwrap();
    spool.push(request(99)).unwrap();
}

#[test]
fn a_stuck_bucket_does_not_let_the_files_grow_past_the_byte_cap() {
    // One bucket never drains while another drains at once: every segment keeps a live
    // entry of the stuck bucket. Without compaction the files would hold every entry ever
    // spooled; with it they stay within the cap and a segment (and one during a compaction).
    let dir = TempDir::new("stuck");
    let (max, segment) = (32 * 1024, 4096);
    let config = SpoolConfig::new()
        .with_max_bytes(max)
        .with_segment_bytes(segment)
        .with_fsync(Fsync::Batched(NonZeroU32::new(64).unwrap()));
    let (spool, _) = Spool::open(dir.path(), config.clone()).unwrap();
    let mut stuck = Vec::new();
    let mut peak = 0;
    for n in 0..3000 {
        if n % 40 == 0 {
            stuck.push(spool.push(in_bucket(n, "stuck")).unwrap());
        } else {
            let id = spool.push(in_bucket(n, "drains")).unwrap();
            spool.ack(id).unwrap();
        }
        peak = peak.max(segment_bytes(dir.path()));
    }
    let stats = spool.stats();
    assert_eq!(stats.disk_bytes, segment_bytes(dir.path()));
    assert!(stats.compacted > 0, "{stats:?}");
    assert!(stats.bytes < max, "{stats:?}");
    // Entries of about 200 bytes, 4 KiB segments: at most 2 segments' worth of
    // slack past the cap (a record's worth of rounding each).
    assert!(peak <= max + 2 * segment + 512, "peak {peak} bytes");
    assert_eq!(
        spool.entries().iter().map(|e| e.id).collect::<Vec<_>>(),
        stuck
    );
    drop(spool);
    let (spool, report) = Spool::open(dir.path(), config).unwrap();
    assert!(report.torn.is_empty());
    let reopened: Vec<_> = spool.entries();
    assert_eq!(reopened.iter().map(|e| e.id).collect::<Vec<_>>(), stuck);
    assert!(reopened.iter().all(|e| e.bucket == "stuck"));
}

#[test]
fn a_crash_between_a_compactions_copy_and_its_delete_doubles_no_entry() {
    let dir = TempDir::new("compactcrash");
    let config = SpoolConfig::new()
        .with_max_bytes(8 * 1024)
        .with_segment_bytes(4096)
        .with_fsync(Fsync::Batched(NonZeroU32::new(64).unwrap()));
    let (spool, _) = Spool::open(dir.path(), config.clone()).unwrap();
    let mut n = 0;
    // Until a compaction has run: before each push, keep a copy of every segment; a
    // segment the push deleted is put back, as if the process died right before the delete.
    loop {
        let before: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
            .collect();
        let compacted = spool.stats().compacted;
        let bucket = if n % 10 == 0 { "stuck" } else { "drains" };
        let id = spool.push(in_bucket(n, bucket)).unwrap();
        if bucket == "drains" {
            spool.ack(id).unwrap();
        }
        n += 1;
        assert!(n < 10_000, "no compaction happened");
        if spool.stats().compacted > compacted {
            let live: Vec<_> = spool.entries();
            drop(spool);
            let mut restored = 0;
            for (path, bytes) in &before {
                if !path.exists() {
                    std::fs::write(path, bytes).unwrap();
                    restored += 1;
                }
            }
            assert!(restored > 0, "a compaction deletes a segment");
            let (reopened, report) = Spool::open(dir.path(), config.clone()).unwrap();
            assert!(report.torn.is_empty());
            assert_eq!(reopened.entries(), live);
            return;
        }
    }
}
