//! Crash safety: a child process spools and replays, and is killed with SIGKILL at 50
//! seeded random points. After every kill, each entry whose deferral the child reported is
//! still in the spool or was delivered; at the end every one is delivered, none twice at a
//! server that de-duplicates by `Idempotency-Key`.
//!
//! Every tenth entry goes to a second bucket the server refuses (429) until the final
//! drain, so those entries stay live while the rest are delivered around them: the child's
//! small byte cap then makes the spool compact its segments, and the kills land inside
//! compactions and concurrent per-bucket replays too.
//!
//! The child is this test binary run again with `ABIDE_SPOOL_CRASH_CHILD` set (the ignored
//! `child_process` test is its entry point). Everything stays on 127.0.0.1.

mod support;

use abide_spool::{Fsync, NewEntry, Spool, SpoolBody, SpoolConfig, SpoolLayer};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::TempDir;

const CHILD_ENV: &str = "ABIDE_SPOOL_CRASH_CHILD";
const KILLS: usize = 50;
/// The child's byte cap and segment size.
const MAX_BYTES: u64 = 32 * 1024;
const SEGMENT_BYTES: u64 = 4096;

/// The server: the first request with a key is processed, later ones are answered 200 and
/// counted as repeats.
#[derive(Default)]
struct Ledger {
    by_key: HashMap<String, u64>,
    processed: HashMap<u64, u32>,
    repeats: u64,
    /// Whether `/later` is accepted yet.
    open: bool,
}

async fn serve(ledger: Arc<Mutex<Ledger>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let ledger = ledger.clone();
                    async move {
                        let later = req.uri().path() == "/later";
                        let key = req
                            .headers()
                            .get("idempotency-key")
                            .map(|v| v.to_str().unwrap_or("").to_owned());
                        let body = req.into_body().collect().await?.to_bytes();
                        let n: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
                        let mut l = ledger.lock().unwrap();
                        if later && !l.open {
                            let mut refused = Response::new(Full::new(Bytes::new()));
                            *refused.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                            return Ok(refused);
                        }
                        let key = key.expect("every replayed request carries a key");
                        if l.by_key.insert(key, n).is_some() {
                            l.repeats += 1;
                        } else {
                            *l.processed.entry(n).or_default() += 1;
                        }
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn spooled_numbers(dir: &Path) -> HashSet<u64> {
    let (spool, _report) = Spool::open(dir, SpoolConfig::new()).unwrap();
    spool
        .entries()
        .iter()
        .map(|e| std::str::from_utf8(&e.body).unwrap().parse().unwrap())
        .collect()
}

fn child(dir: &Path, addr: SocketAddr, start: u64, drain: bool) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("CRASH_ADDR", addr.to_string())
        .env("CRASH_START", start.to_string())
        .env("CRASH_DRAIN", if drain { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_at_fifty_points_no_reported_entry_is_lost_and_none_is_delivered_twice() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let addr = runtime.block_on(serve(ledger.clone()));
    let dir = TempDir::new("crash");
    let mut rng = fastrand::Rng::with_seed(16);
    let mut reported: HashSet<u64> = HashSet::new();
    let mut next = 0u64;
    let mut compactions = 0;
    for round in 0..KILLS {
        let mut process = child(dir.path(), addr, next, false);
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut compacted = 0;
        let wait_for = rng.usize(1..25);
        for _ in 0..wait_for {
            match lines.next() {
                Some(Ok(line)) => record(&line, &mut reported, &mut compacted),
                _ => break,
            }
        }
        std::thread::sleep(Duration::from_micros(rng.u64(0..2_000)));
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        // Lines written before the kill were reported: read them to the end of the pipe.
        for line in lines.map_while(Result::ok) {
            record(&line, &mut reported, &mut compacted);
        }
        compactions += compacted;
        let disk = segment_bytes(dir.path());
        assert!(
            disk <= MAX_BYTES + 2 * SEGMENT_BYTES + 1024,
            "round {round}: {disk} bytes of segments"
        );
        let spooled = spooled_numbers(dir.path());
        let l = ledger.lock().unwrap();
        for n in &reported {
            assert!(
                spooled.contains(n) || l.processed.contains_key(n),
                "round {round}: entry {n} was reported spooled and is neither spooled nor delivered"
            );
        }
        assert!(
            l.processed.values().all(|&c| c == 1),
            "round {round}: a request processed twice"
        );
        // Numbers the child spooled but had no time to report are not pushed again.
        next = reported
            .iter()
            .chain(spooled.iter())
            .chain(l.processed.keys())
            .max()
            .map_or(0, |m| m + 1);
    }
    ledger.lock().unwrap().open = true;
    let status = child(dir.path(), addr, next, true).wait().unwrap();
    assert!(status.success());
    assert!(spooled_numbers(dir.path()).is_empty());
    let l = ledger.lock().unwrap();
    for n in &reported {
        assert_eq!(l.processed.get(n), Some(&1), "entry {n}");
    }
    assert!(compactions > 0, "the children never compacted");
    assert!(
        reported.len() >= KILLS,
        "only {} entries reported",
        reported.len()
    );
    eprintln!(
        "crash test: {} entries reported, {} processed, {} repeats answered by key, {} segments compacted",
        reported.len(),
        l.processed.len(),
        l.repeats,
        compactions
    );
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Reads one line of the child: an entry reported spooled, or its compaction count.
fn record(line: &str, reported: &mut HashSet<u64>, compacted: &mut u64) {
    if let Some(n) = line.strip_prefix("pushed ") {
        reported.insert(n.trim().parse().unwrap());
    } else if let Some(n) = line.strip_prefix("compacted ") {
        *compacted = (*compacted).max(n.trim().parse().unwrap());
    }
}

/// The child: push entries (reporting each once `push` returned), replay every few pushes;
/// in drain mode, replay until the spool is empty and exit.
#[test]
#[ignore = "the crash test's child process; run by killed_at_fifty_points_..."]
fn child_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let addr: SocketAddr = std::env::var("CRASH_ADDR").unwrap().parse().unwrap();
    let start: u64 = std::env::var("CRASH_START").unwrap().parse().unwrap();
    let drain = std::env::var("CRASH_DRAIN").unwrap() == "1";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = SpoolConfig::new()
        .with_fsync(Fsync::PerEntry)
        .with_segment_bytes(SEGMENT_BYTES)
        .with_max_bytes(MAX_BYTES);
    let (spool, _report) = Spool::open(&dir, config).unwrap();
    let layer = SpoolLayer::new(spool.clone());
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<SpoolBody<Full<Bytes>>>();
    let mut replayer = layer.replayer(client);
    runtime.block_on(async move {
        if drain {
            replayer
                .run_until_empty(Duration::from_millis(10))
                .await
                .unwrap();
            return;
        }
        let mut stdout = std::io::stdout();
        for n in start.. {
            let path = if n % 10 == 0 { "later" } else { "ingest" };
            let mut request = Request::post(format!("http://{addr}/{path}"))
                .body(())
                .unwrap();
            if n % 10 == 0 {
                request
                    .extensions_mut()
                    .insert(abide_cap::BucketKey::new("later"));
            }
            let (parts, ()) = request.into_parts();
            spool
                .push(NewEntry::from_parts(&parts, Bytes::from(n.to_string())))
                .unwrap();
            writeln!(stdout, "pushed {n}").unwrap();
            stdout.flush().unwrap();
            if n % 3 == 2 {
                replayer.run_once().await.unwrap();
                writeln!(stdout, "compacted {}", spool.stats().compacted).unwrap();
            }
        }
    });
}
