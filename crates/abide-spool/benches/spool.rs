//! Spool throughput: entries pushed per second with fsync per entry and batched, and
//! entries replayed (sent to an in-process service and acked) per second.

use abide_spool::{Fsync, NewEntry, Spool, SpoolBody, SpoolConfig, SpoolLayer};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http_body_util::Full;
use std::num::NonZeroU32;
use std::path::PathBuf;

const ENTRIES: u64 = 200;

fn dir(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("abide-spool-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn entry(n: u64) -> NewEntry {
    let request = http::Request::post("http://127.0.0.1:9/v1/events")
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    // A 256-byte telemetry event.
    NewEntry::from_parts(&parts, Bytes::from(format!("{n:0256}")))
}

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("spool_push");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    for (name, fsync) in [
        ("fsync_per_entry", Fsync::PerEntry),
        (
            "fsync_batched_64",
            Fsync::Batched(NonZeroU32::new(64).unwrap()),
        ),
    ] {
        group.bench_function(name, |b| {
            let path = dir(name);
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&path);
                    Spool::open(&path, SpoolConfig::new().with_fsync(fsync))
                        .unwrap()
                        .0
                },
                |spool| {
                    for n in 0..ENTRIES {
                        spool.push(entry(n)).unwrap();
                    }
                    spool.sync().unwrap();
                },
                BatchSize::PerIteration,
            );
            let _ = std::fs::remove_dir_all(&path);
        });
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("spool_replay");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    let path = dir("replay");
    group.bench_function("ack_fsync_per_entry", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&path);
                let spool = Spool::open(&path, SpoolConfig::new()).unwrap().0;
                for n in 0..ENTRIES {
                    spool.push(entry(n)).unwrap();
                }
                spool
            },
            |spool| {
                let api = tower::service_fn(|_req: http::Request<SpoolBody<Full<Bytes>>>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(()))
                });
                let mut replayer = SpoolLayer::new(spool).replayer(api);
                let report = runtime.block_on(replayer.run_once()).unwrap();
                assert_eq!(report.delivered as u64, ENTRIES);
            },
            BatchSize::PerIteration,
        );
    });
    let _ = std::fs::remove_dir_all(&path);
    group.finish();
}

criterion_group!(benches, push, replay);
criterion_main!(benches);
