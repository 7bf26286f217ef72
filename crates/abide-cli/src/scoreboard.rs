//! `abide scoreboard`: every strategy against every scenario of the simulated API, in
//! virtual time. Output is deterministic; the run's wall time goes to stderr.

use abide_sim::strategy::Strategy;
use abide_sim::{best_first, plot, rank_cmp, Row, RunResult, Scenario};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const USAGE: &str = "\
usage: abide scoreboard [--json] [--scenario NAME|FILE]... [--strategy NAME]... [--plot FILE.svg] [--list]
       abide scoreboard --random N [--seed S] [--emit DIR] [--json] [--strategy NAME]...

  --json             print only a JSON array of rows (one per scenario and strategy)
  --scenario X       a built-in scenario name or a TOML scenario file (repeatable; default: all built-ins)
  --strategy NAME    a strategy (repeatable; default: all)
  --plot FILE.svg    write successes and rejections over time per strategy (needs exactly one scenario)
  --list             list the built-in scenarios and the strategies
  --random N         N scenarios drawn at random from the whole scenario space (named random-<S>-<i>)
  --seed S           the seed of the draws (default 1); the same seed gives the same board
  --emit DIR         write each draw as DIR/random-<S>-<i>.toml, loadable with --scenario

Rows are ranked best first: most successes, then most correct permanent-quota endings, then
fewest attempts after exhaustion, then lowest makespan_ratio (at the two decimals shown),
then fewest rejected_per_success, then fewest attempts.
Exit status: 0 ok, 1 bad scenario file (or a run or plot failed), 2 usage error.";

struct Args {
    json: bool,
    scenarios: Vec<OsString>,
    strategies: Vec<String>,
    plot: Option<PathBuf>,
    list: bool,
    random: Option<u32>,
    seed: Option<u64>,
    emit: Option<PathBuf>,
}

/// The most draws `--random` takes (a typo must not ask for a day of runs).
const MAX_RANDOM: u32 = 100_000;

fn number<T: std::str::FromStr>(flag: &str, v: OsString) -> Result<T, String> {
    v.to_str()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("{flag} needs a whole number, got {:?}", v.to_string_lossy()))
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        json: false,
        scenarios: Vec::new(),
        strategies: Vec::new(),
        plot: None,
        list: false,
        random: None,
        seed: None,
        emit: None,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") => out.json = true,
            Long("list") => out.list = true,
            Long("scenario") => out
                .scenarios
                .push(parser.value().map_err(|e| e.to_string())?),
            Long("strategy") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                out.strategies.push(v.to_string_lossy().into_owned());
            }
            Long("plot") => {
                if out.plot.is_some() {
                    return Err("--plot given twice".into());
                }
                out.plot = Some(parser.value().map_err(|e| e.to_string())?.into());
            }
            Long("random") => {
                let n: u32 = number("--random", parser.value().map_err(|e| e.to_string())?)?;
                if n == 0 || n > MAX_RANDOM {
                    return Err(format!(
                        "--random {n}: the number of draws must be in 1..={MAX_RANDOM}"
                    ));
                }
                out.random = Some(n);
            }
            Long("seed") => {
                out.seed = Some(number(
                    "--seed",
                    parser.value().map_err(|e| e.to_string())?,
                )?);
            }
            Long("emit") => out.emit = Some(parser.value().map_err(|e| e.to_string())?.into()),
            Short('h') | Long("help") => return Ok(None),
            other => return Err(other.unexpected().to_string()),
        }
    }
    if out.random.is_none() && (out.seed.is_some() || out.emit.is_some()) {
        return Err("--seed and --emit go with --random".into());
    }
    if out.random.is_some() && !out.scenarios.is_empty() {
        return Err("--random draws its own scenarios: leave out --scenario".into());
    }
    if out.random.is_some() && out.plot.is_some() {
        return Err("--plot needs exactly one --scenario, not --random".into());
    }
    Ok(Some(out))
}

/// Writes each draw as `DIR/<name>.toml`.
fn emit(dir: &Path, scenarios: &[Scenario]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for s in scenarios {
        let path = dir.join(format!("{}.toml", s.name));
        std::fs::write(&path, s.to_toml())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Why the scenarios could not be resolved.
pub(crate) enum Resolve {
    /// A file that cannot be read or is not a valid scenario (exit 1).
    BadFile(String),
    /// Neither a built-in name nor a file (exit 2).
    Unknown(String),
}

pub(crate) fn resolve_scenarios(values: &[OsString]) -> Result<Vec<Scenario>, Resolve> {
    if values.is_empty() {
        return Ok(Scenario::builtins());
    }
    values
        .iter()
        .map(|v| {
            if let Some(s) = v.to_str().and_then(Scenario::builtin) {
                return Ok(s);
            }
            let path = Path::new(v);
            let looks_like_file = path.exists()
                || path.extension().is_some()
                || v.to_string_lossy().contains(std::path::MAIN_SEPARATOR);
            if looks_like_file {
                Scenario::from_file(path).map_err(|e| Resolve::BadFile(e.to_string()))
            } else {
                Err(Resolve::Unknown(format!(
                    "unknown scenario {:?} (not a built-in and no such file); built-ins: {}",
                    v.to_string_lossy(),
                    Scenario::builtin_names().collect::<Vec<_>>().join(", ")
                )))
            }
        })
        .collect()
}

fn resolve_strategies(names: &[String]) -> Result<Vec<Strategy>, String> {
    if names.is_empty() {
        return Ok(Strategy::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Strategy::from_name(n).ok_or_else(|| {
                format!(
                    "unknown strategy {n:?}; strategies: {}",
                    Strategy::ALL.map(Strategy::name).join(", ")
                )
            })
        })
        .collect()
}

fn list() -> String {
    let mut out = String::from("scenarios:\n");
    for s in Scenario::builtins() {
        let w = &s.workload;
        let _ = writeln!(
            out,
            "  {:<24} {} {}, {} requests, {} client(s) x {}",
            s.name,
            s.server.dialect,
            s.server.algorithm.as_str(),
            w.requests,
            w.clients,
            w.concurrency
        );
    }
    out.push_str("strategies:\n");
    for s in Strategy::ALL {
        let _ = writeln!(out, "  {:<24} {}", s.name(), s.description());
    }
    let presets: Vec<String> = abide_sim::SimDialect::ALL
        .iter()
        .map(|d| format!("{d} -> {}", Strategy::abide_preset(*d)))
        .collect();
    let _ = writeln!(out, "abide's preset per dialect: {}", presets.join(", "));
    out
}

/// Runs every pair on up to `threads` worker threads; each pair gets its own runtime, so
/// results do not depend on the thread count.
fn run_all(pairs: &[(Scenario, Strategy)], threads: usize) -> Result<Vec<RunResult>, String> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<RunResult, String>>>> =
        Mutex::new((0..pairs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((scenario, strategy)) = pairs.get(i) else {
                    break;
                };
                let r = abide_sim::run(scenario, *strategy).map_err(|e| {
                    format!("cannot run {} / {}: {e}", scenario.name, strategy.name())
                });
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("a run did not finish".into())))
        .collect()
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn table(rows: &[&Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:>2} {:<22} {:>6} {:>5} {:>5} {:>5} {:>5} {:>8} {:>7} {:>7} {:>6} {:>9} {:>10} {:>9} {:>6} {:>8} {:>8}",
        "#", "strategy", "ok", "perm", "cli", "t/o", "lost", "attempts", "rejected", "rej/ok", "ampl", "after-ex", "makespan", "ideal", "ratio", "p50", "p99"
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>2} {:<22} {:>6} {:>5} {:>5} {:>5} {:>5} {:>8} {:>7} {:>7} {:>6.2} {:>9} {:>9.1}s {:>8.1}s {:>6} {:>7}s {:>7}s",
            i + 1,
            r.strategy,
            r.succeeded,
            r.failed_permanent,
            r.failed_client,
            r.timed_out,
            r.lost,
            r.attempts,
            r.rejected,
            opt(r.rejected_per_success, 3),
            r.amplification,
            r.attempts_after_exhaustion,
            r.makespan_s,
            r.ideal_makespan_s,
            opt(r.makespan_ratio, 2),
            opt(r.p50_latency_s, 2),
            opt(r.p99_latency_s, 2),
        );
    }
    out
}

/// The human report: a table per scenario, best first, and where abide ranks.
fn human(scenarios: &[Scenario], rows: &[Row]) -> String {
    let mut out = String::new();
    let mut abide_ranks = Vec::new();
    for s in scenarios {
        let mut mine: Vec<&Row> = rows.iter().filter(|r| r.scenario == s.name).collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_by(|a, b| best_first(a, b));
        let first = mine[0];
        let _ = writeln!(
            out,
            "{} ({} {}, {} requests, {} client(s), ideal {:.1} s)",
            s.name,
            s.server.dialect,
            s.server.algorithm.as_str(),
            s.workload.requests,
            s.workload.clients,
            first.ideal_makespan_s
        );
        out.push_str(&table(&mine));
        if let Some(pos) = mine.iter().position(|r| r.strategy == "abide") {
            // Rows that differ only by name share a rank; say so rather than let the
            // alphabet decide.
            let tied = mine
                .iter()
                .filter(|r| rank_cmp(r, mine[pos]).is_eq())
                .count();
            let rank = mine
                .iter()
                .position(|r| rank_cmp(r, mine[pos]).is_eq())
                .unwrap_or(pos);
            abide_ranks.push((s.name.as_str(), rank + 1, mine.len(), tied));
        }
        out.push('\n');
    }
    if abide_ranks.is_empty() {
        out.push_str("abide: not on this board (the `abide` strategy was not selected)\n");
    } else {
        let firsts = abide_ranks.iter().filter(|(_, p, _, _)| *p == 1).count();
        let detail: Vec<String> = abide_ranks
            .iter()
            .map(|(n, p, m, tied)| match tied {
                1 => format!("{n} {p}/{m}"),
                t => format!("{n} {p}/{m} (tied with {})", t - 1),
            })
            .collect();
        let _ = writeln!(
            out,
            "abide ranks first in {firsts} of {} scenarios: {}",
            abide_ranks.len(),
            detail.join(", ")
        );
    }
    out
}

pub(crate) fn run(args: Vec<OsString>) -> ExitCode {
    let started = Instant::now();
    let args = match crate::parsed("scoreboard", USAGE, parse_args(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.list {
        print!("{}", list());
        return ExitCode::SUCCESS;
    }
    let seed = args.seed.unwrap_or(1);
    let resolved = match args.random {
        Some(n) => Ok(abide_sim::random::draws(seed, n)),
        None => resolve_scenarios(&args.scenarios),
    };
    let scenarios = match resolved {
        Ok(s) => s,
        Err(Resolve::BadFile(e)) => {
            eprintln!("abide scoreboard: {e}");
            return ExitCode::from(1);
        }
        Err(Resolve::Unknown(e)) => {
            eprintln!("abide scoreboard: {e}");
            return ExitCode::from(2);
        }
    };
    let strategies = match resolve_strategies(&args.strategies) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("abide scoreboard: {e}");
            return ExitCode::from(2);
        }
    };
    if args.plot.is_some() && scenarios.len() != 1 {
        eprintln!("abide scoreboard: --plot needs exactly one --scenario\n{USAGE}");
        return ExitCode::from(2);
    }
    if let Some(dir) = &args.emit {
        if let Err(e) = emit(dir, &scenarios) {
            eprintln!("abide scoreboard: {e}");
            return ExitCode::from(1);
        }
    }
    let pairs: Vec<(Scenario, Strategy)> = scenarios
        .iter()
        .flat_map(|s| strategies.iter().map(move |st| (s.clone(), *st)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let results = match run_all(&pairs, threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("abide scoreboard: {e}");
            return ExitCode::from(1);
        }
    };
    let rows: Vec<Row> = results.iter().map(|r| r.row.clone()).collect();
    let text = if args.json {
        match serde_json::to_string_pretty(&rows) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("abide scoreboard: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else if args.random.is_some() {
        crate::random_board::human(seed, &scenarios, &rows)
    } else {
        human(&scenarios, &rows)
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    if let Some(path) = &args.plot {
        let runs: Vec<(&str, &abide_sim::Timeline)> = results
            .iter()
            .map(|r| (r.row.strategy.as_str(), &r.timeline))
            .collect();
        let svg = plot::svg(&scenarios[0].name, &runs);
        if let Err(e) = std::fs::write(path, svg) {
            eprintln!("abide scoreboard: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    eprintln!(
        "abide scoreboard: {} runs in {:.2} s wall time",
        pairs.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_strategies_and_scenario_names_are_usage_errors() {
        assert!(resolve_strategies(&["tower".into()]).is_err());
        assert!(matches!(
            resolve_scenarios(&["openai".into()]),
            Err(Resolve::Unknown(_))
        ));
        assert!(matches!(
            resolve_scenarios(&["does/not/exist.toml".into()]),
            Err(Resolve::BadFile(_))
        ));
    }
}
