//! `abide fleet`: N client processes on one API key, pacing one quota through Redis (or
//! each alone), against the simulated API over real HTTP.
//!
//! The parent starts `redis-server` (unless `--redis`), serves the simulated API on
//! loopback, and re-runs its own binary N times as `abide fleet-worker` (hidden), each
//! given the scenario on stdin and a common start instant. Each worker runs abide's stack
//! (the preset for the scenario's dialect) for its share of the workload and prints its
//! tally as one JSON line; the parent merges the tallies into one scoreboard row.

use crate::scoreboard::{resolve_scenarios, Resolve};
use abide_sim::strategy::Strategy;
use abide_sim::{FleetPart, Scenario, SimServer, Tally};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: abide fleet [--processes N] [--scenario NAME|FILE] [--redis URL] [--store redis|local]
                   [--seconds S] [--json]

  --processes N      client processes on the one key (default 8)
  --scenario X       a built-in scenario name or a TOML scenario file (default: fleet-8-shared);
                     its workload is shared out, one client per process
  --redis URL        use this Redis (default: start a redis-server on a free loopback port)
  --store KIND       redis: the processes share one quota store through Redis (default);
                     local: each process keeps its own, alone
  --seconds S        size the run so its ideal makespan is about S seconds (default 20)
  --json             print a JSON array with the one row

Prints one row with the scoreboard's keys plus processes, store and
redis_round_trips_per_admission (Redis round trips of admissions per admission).
Exit status: 0 ok, 1 the run failed (no redis-server, a worker failed), 2 usage error.";

const WORKER_USAGE: &str = "\
usage: abide fleet-worker --base URL --process I --processes N --start-unix-ns T
                          [--redis URL --prefix P]   (scenario TOML on stdin; internal)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Redis,
    Local,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Local => "local",
        }
    }
}

struct Args {
    processes: u32,
    scenario: Option<OsString>,
    redis: Option<String>,
    store: StoreKind,
    seconds: f64,
    json: bool,
}

fn value(parser: &mut lexopt::Parser) -> Result<OsString, String> {
    parser.value().map_err(|e| e.to_string())
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        processes: 8,
        scenario: None,
        redis: None,
        store: StoreKind::Redis,
        seconds: 20.0,
        json: false,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("processes") => {
                let v = value(&mut parser)?;
                out.processes = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "--processes {:?} must be a whole number from 1 to 64",
                            v.to_string_lossy()
                        )
                    })?;
            }
            Long("scenario") => out.scenario = Some(value(&mut parser)?),
            Long("redis") => {
                let v = value(&mut parser)?;
                out.redis = Some(
                    v.into_string()
                        .map_err(|_| "--redis needs a UTF-8 URL".to_owned())?,
                );
            }
            Long("store") => {
                let v = value(&mut parser)?;
                out.store = match v.to_str() {
                    Some("redis") => StoreKind::Redis,
                    Some("local") => StoreKind::Local,
                    _ => {
                        return Err(format!(
                            "--store {:?} must be redis or local",
                            v.to_string_lossy()
                        ))
                    }
                };
            }
            Long("seconds") => {
                let v = value(&mut parser)?;
                out.seconds = v
                    .to_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && (0.5..=3600.0).contains(s))
                    .ok_or_else(|| {
                        format!(
                            "--seconds {:?} must be a number from 0.5 to 3600",
                            v.to_string_lossy()
                        )
                    })?;
            }
            Long("json") => out.json = true,
            Short('h') | Long("help") => return Ok(None),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Some(out))
}

/// What a worker prints: its tally and its store's counts.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReport {
    tally: Tally,
    admissions: u64,
    admission_round_trips: u64,
    round_trips: u64,
}

/// A `redis-server` this command started: free loopback port, own directory, no
/// persistence; killed when dropped.
struct OwnRedis {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl OwnRedis {
    fn start() -> Result<OwnRedis, String> {
        let dir = std::env::temp_dir().join(format!("abide-fleet-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| format!("no free port: {e}"))?;
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    format!("cannot start redis-server ({e}); install it or pass --redis URL")
                })?;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(OwnRedis {
                        child,
                        url: format!("redis://127.0.0.1:{port}/"),
                        dir,
                    });
                }
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Err("redis-server did not start".into())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The scenario as the fleet runs it: one client per process, sized (time-scaled) so its
/// ideal makespan is about `seconds`; returns it and the time factor.
fn fleet_scenario(mut scenario: Scenario, processes: u32, seconds: f64) -> (Scenario, f64) {
    scenario.workload.clients = processes;
    scenario.workload.shared_state = true;
    let ideal = abide_sim::ideal_makespan(&scenario, &scenario.plan());
    let factor = if ideal > 0.0 { ideal / seconds } else { 1.0 };
    (scenario.time_scaled(factor), factor)
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

pub(crate) fn run(args: Vec<OsString>) -> ExitCode {
    let args = match crate::parsed("fleet", USAGE, parse_args(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let name = args
        .scenario
        .clone()
        .unwrap_or_else(|| "fleet-8-shared".into());
    let scenario = match resolve_scenarios(&[name]) {
        Ok(mut s) => s.remove(0),
        Err(Resolve::BadFile(e)) => {
            eprintln!("abide fleet: {e}");
            return ExitCode::from(1);
        }
        Err(Resolve::Unknown(e)) => {
            eprintln!("abide fleet: {e}");
            return ExitCode::from(2);
        }
    };
    match fleet(&args, scenario) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abide fleet: {e}");
            ExitCode::from(1)
        }
    }
}

fn fleet(args: &Args, scenario: Scenario) -> Result<(), String> {
    let (scenario, factor) = fleet_scenario(scenario, args.processes, args.seconds);
    let _own_redis;
    let redis = match (args.store, &args.redis) {
        (StoreKind::Local, _) => None,
        (StoreKind::Redis, Some(url)) => Some(url.clone()),
        (StoreKind::Redis, None) => {
            let own = OwnRedis::start()?;
            let url = own.url.clone();
            _own_redis = own;
            Some(url)
        }
    };
    // One prefix per run: runs sharing a Redis never share buckets.
    let prefix = format!(
        "abide-fleet:{}-{}:",
        std::process::id(),
        unix_ns(SystemTime::now()) % 1_000_000_000_000
    );
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address: {e}"))?;
    // The workers start together, once all are up (process start and connecting take
    // well under this).
    let lead = Duration::from_millis(1_000 + 100 * u64::from(args.processes));
    let start_wall = SystemTime::now() + lead;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let toml = scenario.to_toml();
    let mut workers = Vec::new();
    for process in 0..args.processes {
        let mut cmd = Command::new(&exe);
        cmd.arg("fleet-worker")
            .args(["--base", &format!("http://{addr}")])
            .args(["--process", &process.to_string()])
            .args(["--processes", &args.processes.to_string()])
            .args(["--start-unix-ns", &unix_ns(start_wall).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = &redis {
            cmd.args(["--redis", url]).args(["--prefix", &prefix]);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(toml.as_bytes())
                .map_err(|e| format!("cannot hand the scenario to a worker: {e}"))?;
        }
        workers.push(Worker(child));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let server_scenario = scenario.clone();
    let served = runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // The server's windows start with the workers: built at the common start.
        let wait = start_wall
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
        let server = SimServer::with_epoch(
            server_scenario.server.clone(),
            server_scenario.seed,
            SystemTime::now(),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(abide_sim::http::serve(listener, server, async {
            let _ = stopped.await;
        }));
        Ok::<_, std::io::Error>((stop, serving))
    });
    let (stop, serving) = served.map_err(|e| format!("cannot serve the simulated API: {e}"))?;

    // Each worker ends by itself within the scenario's time limit; a hung one is killed.
    let limit = lead + scenario.time_limit + Duration::from_secs(30);
    let reports = collect(workers, limit)?;
    let _ = stop.send(());
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), serving).await;
    });

    let (mut admissions, mut admission_round_trips, mut round_trips) = (0u64, 0u64, 0u64);
    let mut tallies = Vec::new();
    for r in reports {
        admissions += r.admissions;
        admission_round_trips += r.admission_round_trips;
        round_trips += r.round_trips;
        tallies.push(r.tally);
    }
    let row = abide_sim::fleet_row(&scenario, Strategy::Abide, Tally::merge(tallies));
    let per_admission = (redis.is_some() && admissions > 0)
        .then(|| round3(admission_round_trips as f64 / admissions as f64));
    let mut json = serde_json::to_value(&row).map_err(|e| e.to_string())?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("processes".into(), args.processes.into());
        obj.insert("store".into(), args.store.name().into());
        obj.insert(
            "redis_round_trips_per_admission".into(),
            per_admission.into(),
        );
        obj.insert(
            "redis_round_trips_per_request".into(),
            (redis.is_some() && row.requests > 0)
                .then(|| round3(round_trips as f64 / row.requests as f64))
                .into(),
        );
        obj.insert("time_scale".into(), round3(factor).into());
    }
    if args.json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(vec![json]))
            .map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        let deliverable = row.requests - row.failed_client - row.failed_permanent;
        println!(
            "abide fleet: {} processes on one key, store {}, scenario {} (time x{:.2})",
            args.processes,
            args.store.name(),
            row.scenario,
            factor
        );
        println!(
            "  succeeded {}/{deliverable}, lost {}, 429s {} ({} per success), attempts {}",
            row.succeeded,
            row.lost,
            row.rejected,
            row.rejected_per_success
                .map_or("-".into(), |r| format!("{r:.3}")),
            row.attempts
        );
        println!(
            "  makespan {:.2} s (ideal {:.2} s, {}x), p50 {} s, p99 {} s",
            row.makespan_s,
            row.ideal_makespan_s,
            row.makespan_ratio.map_or("-".into(), |r| format!("{r:.3}")),
            row.p50_latency_s.map_or("-".into(), |r| format!("{r:.3}")),
            row.p99_latency_s.map_or("-".into(), |r| format!("{r:.3}")),
        );
        if let Some(r) = per_admission {
            println!("  Redis round trips per admission {r:.3} ({round_trips} round trips in all)");
        }
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A worker process, killed if still running when dropped (the fleet failed).
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Reads each worker's report, within `limit` overall.
fn collect(workers: Vec<Worker>, limit: Duration) -> Result<Vec<WorkerReport>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut held = Vec::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let Some(out) = w.0.stdout.take() else {
            return Err("a worker has no output".into());
        };
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(out).read_line(&mut line);
            let report = read.map_err(|e| e.to_string()).and_then(|_| {
                serde_json::from_str::<WorkerReport>(&line).map_err(|e| e.to_string())
            });
            let _ = tx.send((i, report));
        });
        held.push(w);
    }
    drop(tx);
    let deadline = std::time::Instant::now() + limit;
    let mut reports = Vec::new();
    for _ in 0..held.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, Ok(report))) => reports.push(report),
            Ok((i, Err(e))) => return Err(format!("worker {i} failed: {e}")),
            Err(_) => return Err(format!("the workers did not finish within {limit:?}")),
        }
    }
    for mut w in held {
        match w.0.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("a worker exited with {status}")),
            Err(e) => return Err(format!("cannot wait for a worker: {e}")),
        }
    }
    Ok(reports)
}

struct WorkerArgs {
    base: http::Uri,
    process: u32,
    processes: NonZeroU32,
    start_unix_ns: u128,
    redis: Option<String>,
    prefix: String,
}

fn parse_worker(args: Vec<OsString>) -> Result<Option<WorkerArgs>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut base, mut process, mut processes, mut start, mut redis, mut prefix) =
        (None, None, None, None, None, String::from("abide-fleet:"));
    fn text(v: OsString, flag: &str) -> Result<String, String> {
        v.into_string().map_err(|_| format!("{flag} needs UTF-8"))
    }
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("base") => {
                let v = text(value(&mut parser)?, "--base")?;
                base = Some(v.parse().map_err(|e| format!("--base {v:?}: {e}"))?);
            }
            Long("process") => {
                let v = text(value(&mut parser)?, "--process")?;
                process = Some(v.parse().map_err(|e| format!("--process {v:?}: {e}"))?);
            }
            Long("processes") => {
                let v = text(value(&mut parser)?, "--processes")?;
                processes = Some(v.parse().map_err(|e| format!("--processes {v:?}: {e}"))?);
            }
            Long("start-unix-ns") => {
                let v = text(value(&mut parser)?, "--start-unix-ns")?;
                start = Some(
                    v.parse()
                        .map_err(|e| format!("--start-unix-ns {v:?}: {e}"))?,
                );
            }
            Long("redis") => redis = Some(text(value(&mut parser)?, "--redis")?),
            Long("prefix") => prefix = text(value(&mut parser)?, "--prefix")?,
            Short('h') | Long("help") => return Ok(None),
            other => return Err(other.unexpected().to_string()),
        }
    }
    let missing = |flag: &str| format!("{flag} is required");
    let processes: NonZeroU32 = processes.ok_or_else(|| missing("--processes"))?;
    let process: u32 = process.ok_or_else(|| missing("--process"))?;
    if process >= processes.get() {
        return Err(format!(
            "--process {process} must be below --processes {processes}"
        ));
    }
    Ok(Some(WorkerArgs {
        base: base.ok_or_else(|| missing("--base"))?,
        process,
        processes,
        start_unix_ns: start.ok_or_else(|| missing("--start-unix-ns"))?,
        redis,
        prefix,
    }))
}

/// The hidden `abide fleet-worker`: one process of a fleet.
pub(crate) fn worker(args: Vec<OsString>) -> ExitCode {
    let args = match crate::parsed("fleet-worker", WORKER_USAGE, parse_worker(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut toml = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut toml) {
        eprintln!("abide fleet-worker: cannot read the scenario: {e}");
        return ExitCode::from(1);
    }
    let scenario = match Scenario::from_toml("fleet scenario", &toml) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("abide fleet-worker: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("abide fleet-worker: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(work(args, scenario));
    match result.and_then(|r| serde_json::to_string(&r).map_err(|e| e.to_string())) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("abide fleet-worker: {e}");
            ExitCode::from(1)
        }
    }
}

async fn work(args: WorkerArgs, scenario: Scenario) -> Result<WorkerReport, String> {
    let redis = match &args.redis {
        Some(url) => Some(
            abide_redis::RedisStore::builder(url)
                .with_prefix(&args.prefix)
                .with_failure_policy(abide_redis::FailurePolicy::FailOpen {
                    fleet_size: args.processes,
                })
                .connect()
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let store: Arc<dyn abide_cap::QuotaStore> = match &redis {
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(abide_cap::LocalStore::new()),
    };
    let now_ns = unix_ns(SystemTime::now());
    let ahead = Duration::from_nanos(
        u64::try_from(args.start_unix_ns.saturating_sub(now_ns)).unwrap_or(u64::MAX),
    );
    let start = tokio::time::Instant::now() + ahead.min(Duration::from_secs(60));
    tokio::time::sleep_until(start).await;
    let part = FleetPart {
        process: args.process,
        processes: args.processes.get(),
        store: Some(store),
    };
    let tally =
        abide_sim::run_part_over_http(&scenario, Strategy::Abide, args.base, part, start).await;
    let stats = redis.map(|r| r.stats()).unwrap_or_default();
    Ok(WorkerReport {
        tally,
        admissions: stats.admissions,
        admission_round_trips: stats.admission_round_trips,
        round_trips: stats.round_trips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_scenario_is_sized_to_the_asked_seconds() {
        let s = Scenario::builtin("fleet-8-shared").unwrap();
        let (scaled, factor) = fleet_scenario(s, 4, 10.0);
        assert_eq!(scaled.workload.clients, 4);
        assert!(factor > 1.0);
        let ideal = abide_sim::ideal_makespan(&scaled, &scaled.plan());
        assert!((ideal - 10.0).abs() < 1.0, "ideal {ideal}");
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        let parse = |a: &[&str]| parse_args(a.iter().map(OsString::from).collect());
        assert!(parse(&["--processes", "0"]).is_err());
        assert!(parse(&["--store", "etcd"]).is_err());
        assert!(parse(&["--seconds", "nan"]).is_err());
        let ok = parse(&["--processes", "2", "--store", "local", "--seconds", "3"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (ok.processes, ok.store, ok.seconds),
            (2, StoreKind::Local, 3.0)
        );
        let worker = |a: &[&str]| parse_worker(a.iter().map(OsString::from).collect());
        assert!(worker(&["--process", "3", "--processes", "2"]).is_err());
    }
}
