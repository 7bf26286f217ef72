//! The `abide` command: explain a rate-limited response (`inspect`) and compare retry
//! strategies on the simulated API (`scoreboard`).
#![forbid(unsafe_code)]

mod demo;
mod fleet;
mod inspect;
mod random_board;
mod raw;
mod scoreboard;
mod serve;
mod spool;

use std::process::ExitCode;

const USAGE: &str = "\
usage: abide <command> [options]

commands:
  demo [--json]                                   three clients side by side against the simulated API
  inspect [--json] [--now <HTTP-date>] [FILE|-]   explain one raw HTTP response
  scoreboard [--json] [--scenario NAME|FILE]... [--strategy NAME]... [--plot FILE.svg] [--list]
  scoreboard --random N [--seed S] [--emit DIR] [--json] [--strategy NAME]...
                                                  compare retry strategies on the simulated API
  serve [--scenario NAME|FILE] [--addr 127.0.0.1:PORT] [--time-scale X]
                                                  the simulated API over HTTP, in real time
  fleet [--processes N] [--scenario NAME|FILE] [--redis URL] [--store redis|local] [--seconds S] [--json]
                                                  N client processes on one key, sharing one quota through Redis
  spool ls DIR [--json] | spool replay DIR [--base-url URL]
                                                  list or send a deferred-delivery spool
";

/// A command's parsed arguments, or how it ends: `--help` printed its usage (exit 0), or
/// a usage error was reported with the usage (exit 2).
pub(crate) fn parsed<T>(
    command: &str,
    usage: &str,
    parsed: Result<Option<T>, String>,
) -> Result<T, ExitCode> {
    match parsed {
        Ok(Some(args)) => Ok(args),
        Ok(None) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("abide {command}: {e}\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(command) = args.next() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<_> = args.collect();
    match command.to_str() {
        Some("demo") => demo::run(rest),
        Some("fleet") => fleet::run(rest),
        // Internal: one process of `abide fleet`.
        Some("fleet-worker") => fleet::worker(rest),
        Some("inspect") => inspect::run(rest),
        Some("scoreboard") => scoreboard::run(rest),
        Some("serve") => serve::run(rest),
        Some("spool") => spool::run(rest),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("abide: unknown command {command:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
