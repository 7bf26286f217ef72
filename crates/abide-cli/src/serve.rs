//! `abide serve`: the simulated API over real HTTP/1.1 and HTTP/2, in real time.

use crate::scoreboard::{resolve_scenarios, Resolve};
use abide_sim::{Scenario, SimServer};
use std::ffi::OsString;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::SystemTime;

const USAGE: &str = "\
usage: abide serve [--scenario NAME|FILE] [--addr 127.0.0.1:PORT] [--time-scale X]

  --scenario X       a built-in scenario name or a TOML scenario file (default: openai-rpm)
  --addr ADDR        the address to listen on (default: 127.0.0.1:8080; port 0 picks a free one)
  --time-scale X     run the scenario's clock X times faster (windows, service times, outages
                     divided by X; default 1)

Serves the scenario's server (its limits, headers, 429 bodies, outages) over HTTP/1.1 and
HTTP/2 on ADDR. Prints `listening on http://ADDR` once ready; stops on Ctrl-C.
A request's token cost comes from its `x-sim-tokens` header. Every answer carries
`x-sim-outcome`, what the server decided (served, rate-limited-requests, ...).
Exit status: 0 stopped by Ctrl-C, 1 bad scenario file or the address cannot be bound, 2 usage error.";

struct Args {
    scenario: Option<OsString>,
    addr: SocketAddr,
    time_scale: f64,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        scenario: None,
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        time_scale: 1.0,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("scenario") => {
                if out.scenario.is_some() {
                    return Err("--scenario given twice (serve runs one server)".into());
                }
                out.scenario = Some(parser.value().map_err(|e| e.to_string())?);
            }
            Long("addr") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                out.addr = v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    format!(
                        "--addr {:?} is not an address like 127.0.0.1:8080",
                        v.to_string_lossy()
                    )
                })?;
            }
            Long("time-scale") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                out.time_scale = v
                    .to_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|x| x.is_finite() && *x > 0.0 && *x <= 1e6)
                    .ok_or_else(|| {
                        format!(
                            "--time-scale {:?} must be a number in (0, 1e6]",
                            v.to_string_lossy()
                        )
                    })?;
            }
            Short('h') | Long("help") => return Ok(None),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Some(out))
}

pub(crate) fn run(args: Vec<OsString>) -> ExitCode {
    let args = match crate::parsed("serve", USAGE, parse_args(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let name = args.scenario.unwrap_or_else(|| "openai-rpm".into());
    let scenario: Scenario = match resolve_scenarios(&[name]) {
        Ok(mut s) => s.remove(0),
        Err(Resolve::BadFile(e)) => {
            eprintln!("abide serve: {e}");
            return ExitCode::from(1);
        }
        Err(Resolve::Unknown(e)) => {
            eprintln!("abide serve: {e}");
            return ExitCode::from(2);
        }
    };
    let scenario = scenario.time_scaled(args.time_scale);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("abide serve: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("abide serve: cannot listen on {}: {e}", args.addr);
                return ExitCode::from(1);
            }
        };
        let addr = listener.local_addr().unwrap_or(args.addr);
        let server =
            SimServer::with_epoch(scenario.server.clone(), scenario.seed, SystemTime::now());
        println!("listening on http://{addr}");
        println!(
            "abide serve: {} ({}), time x{}; stop with Ctrl-C",
            scenario.name,
            crate::random_board::describe(&scenario),
            args.time_scale
        );
        let _ = std::io::stdout().flush();
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        if let Err(e) = abide_sim::http::serve(listener, server.clone(), shutdown).await {
            eprintln!("abide serve: {e}");
            return ExitCode::from(1);
        }
        println!(
            "abide serve: stopped; {} requests served",
            server.with_model(|m| m.served())
        );
        ExitCode::SUCCESS
    })
}
