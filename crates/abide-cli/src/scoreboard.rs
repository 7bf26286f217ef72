//! `abide scoreboard` (placeholder until abide-sim lands).
use std::ffi::OsString;
use std::process::ExitCode;

pub(crate) fn run(_args: Vec<OsString>) -> ExitCode {
    eprintln!("abide scoreboard: not built yet");
    ExitCode::from(2)
}
