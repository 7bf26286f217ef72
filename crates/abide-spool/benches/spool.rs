//! Spool throughput: entries pushed per second with fsync per entry and batched; entries
//! replayed (sent and acked) per second to an in-process service and through abide's
//! stack on a hyper client to a loopback server; and what the layer costs a request that
//! is not deferrable.
//!
//! `cargo bench -p abide-spool --bench spool -- --quick` runs the criterion groups;
//! `ABIDE_SPOOL_TIMED=10000 cargo bench -p abide-spool --bench spool` instead times one run
//! of that many entries of each kind and prints entries per second.

use abide::{AbideLayer, ServiceBuilderExt};
use abide_spool::{Fsync, NewEntry, Spool, SpoolBody, SpoolConfig, SpoolLayer};
use bytes::Bytes;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Instant;
use tower::{Layer, Service, ServiceExt};

const ENTRIES: u64 = 200;

fn dir(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("abide-spool-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn entry(n: u64, addr: &str) -> NewEntry {
    let request = http::Request::post(format!("http://{addr}/v1/events"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    // A 256-byte telemetry event.
    NewEntry::from_parts(&parts, Bytes::from(format!("{n:0256}")))
}

fn fsyncs() -> [(&'static str, Fsync); 2] {
    [
        ("fsync_per_entry", Fsync::PerEntry),
        (
            "fsync_batched_64",
            Fsync::Batched(NonZeroU32::new(64).unwrap()),
        ),
    ]
}

fn filled(path: &PathBuf, fsync: Fsync, n: u64, addr: &str) -> Spool {
    let _ = std::fs::remove_dir_all(path);
    let spool = Spool::open(path, SpoolConfig::new().with_fsync(fsync))
        .unwrap()
        .0;
    for i in 0..n {
        spool.push(entry(i, addr)).unwrap();
    }
    spool.sync().unwrap();
    spool
}

/// A loopback HTTP/1 server that answers every request 200 with an empty body.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn in_process() -> impl Service<
    http::Request<SpoolBody<Full<Bytes>>>,
    Response = http::Response<()>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<http::Response<()>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_req: http::Request<SpoolBody<Full<Bytes>>>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    })
}

/// abide's generic stack on a hyper client.
fn stack() -> impl Service<
    http::Request<SpoolBody<Full<Bytes>>>,
    Response = http::Response<impl Send>,
    Error = abide::BoxError,
> + Clone {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<abide::AbideRequestBody<SpoolBody<Full<Bytes>>>>();
    tower::ServiceBuilder::new()
        .abide(AbideLayer::generic())
        .service(client)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("spool_push");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    for (name, fsync) in fsyncs() {
        group.bench_function(name, |b| {
            let path = dir(name);
            b.iter_batched(
                || filled(&path, fsync, 0, ""),
                |spool| {
                    for n in 0..ENTRIES {
                        spool.push(entry(n, "127.0.0.1:9")).unwrap();
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
    let runtime = runtime();
    let addr = runtime.block_on(serve()).to_string();
    let mut group = c.benchmark_group("spool_replay");
    group.throughput(Throughput::Elements(ENTRIES));
    group.sample_size(10);
    for (name, fsync) in fsyncs() {
        let path = dir(&format!("replay-{name}"));
        group.bench_function(format!("in_process_{name}"), |b| {
            b.iter_batched(
                || filled(&path, fsync, ENTRIES, &addr),
                |spool| {
                    let mut replayer = SpoolLayer::new(spool).replayer(in_process());
                    let report = runtime.block_on(replayer.run_once()).unwrap();
                    assert_eq!(report.delivered as u64, ENTRIES);
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function(format!("loopback_stack_{name}"), |b| {
            b.iter_batched(
                || filled(&path, fsync, ENTRIES, &addr),
                |spool| {
                    let _guard = runtime.enter();
                    let mut replayer = SpoolLayer::new(spool).replayer(stack());
                    let report = runtime.block_on(replayer.run_once()).unwrap();
                    assert_eq!(report.delivered as u64, ENTRIES);
                },
                BatchSize::PerIteration,
            );
        });
        let _ = std::fs::remove_dir_all(&path);
    }
    group.finish();
}

/// What `Spooled` adds to a request that is not deferrable, against the bare service.
fn passthrough(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let path = dir("passthrough");
    let spool = filled(&path, Fsync::PerEntry, 0, "");
    let request = || {
        http::Request::post("http://127.0.0.1:9/v1/chat")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    };
    let mut group = c.benchmark_group("spooled_passthrough");
    group.bench_function("bare_service", |b| {
        let mut service = in_process();
        b.iter(|| {
            runtime
                .block_on(async {
                    service
                        .ready()
                        .await?
                        .call(request().map(SpoolBody::original))
                        .await
                })
                .unwrap()
        });
    });
    group.bench_function("spooled_not_deferrable", |b| {
        let mut service = SpoolLayer::new(spool.clone()).layer(in_process());
        b.iter(|| {
            runtime
                .block_on(async { service.ready().await?.call(request()).await })
                .unwrap()
        });
    });
    group.finish();
    drop(spool);
    let _ = std::fs::remove_dir_all(&path);
}

/// One timed run of `n` entries of each kind, printed as entries per second.
fn timed(n: u64) {
    let rate = |what: &str, started: Instant| {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{what:<40} {n} entries in {secs:>7.3} s: {:>9.0} entries/s",
            n as f64 / secs
        );
    };
    for (name, fsync) in fsyncs() {
        let path = dir(&format!("timed-{name}"));
        let spool = filled(&path, fsync, 0, "");
        let started = Instant::now();
        for i in 0..n {
            spool.push(entry(i, "127.0.0.1:9")).unwrap();
        }
        spool.sync().unwrap();
        rate(&format!("push, {name}"), started);
        let _ = std::fs::remove_dir_all(&path);
    }
    let runtime = runtime();
    let addr = runtime.block_on(serve()).to_string();
    for (name, fsync) in fsyncs() {
        let path = dir(&format!("timed-replay-{name}"));
        let spool = filled(&path, fsync, n, &addr);
        let started = Instant::now();
        let mut replayer = SpoolLayer::new(spool).replayer(in_process());
        let report = runtime.block_on(replayer.run_once()).unwrap();
        assert_eq!(report.delivered as u64, n);
        rate(&format!("replay in process, {name}"), started);

        let spool = filled(&path, fsync, n, &addr);
        let _guard = runtime.enter();
        let started = Instant::now();
        let mut replayer = SpoolLayer::new(spool).replayer(stack());
        let report = runtime.block_on(replayer.run_once()).unwrap();
        assert_eq!(report.delivered as u64, n);
        rate(&format!("replay loopback stack, {name}"), started);
        let _ = std::fs::remove_dir_all(&path);
    }
}

criterion_group!(benches, push, replay, passthrough);

fn main() {
    if let Some(n) = std::env::var("ABIDE_SPOOL_TIMED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        timed(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
