//! `abide spool ls` and `abide spool replay`: the deferred-delivery spool from the command
//! line (the `wandb sync` of abide).

use abide::{AbideLayer, ServiceBuilderExt};
use abide_spool::{Entry, Spool, SpoolBody, SpoolConfig, SpoolLayer};
use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: abide spool ls DIR [--json]
       abide spool replay DIR [--base-url URL]

  ls       list the requests waiting in the spool at DIR, and its dead letters
  replay   send them through abide's stack (AbideLayer::generic() on a hyper client), in
           order per bucket, until a pass delivers nothing more; each delivered entry is
           removed, each permanent failure moved to the dead letters
  --json        (ls) print one JSON object: entries, dead_letters, torn
  --base-url U  (replay) send to U's scheme and authority instead of each entry's own

The spool never stores credentials (Authorization, Cookie, x-api-key, ...): add them at
replay time with a stack of your own (abide_spool's SpoolLayer::replayer). URIs are listed
without their query strings, which may carry keys.
Exit status: 0 ok (replay: the spool is empty), 1 the spool cannot be opened (replay:
entries are left for later), 2 usage error.";

enum Command {
    Ls { dir: PathBuf, json: bool },
    Replay { dir: PathBuf, base: Option<Uri> },
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Command>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let (mut verb, mut dir, mut json, mut base) = (None::<String>, None::<PathBuf>, false, None);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") => json = true,
            Long("base-url") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                let uri: Uri = v
                    .to_str()
                    .and_then(|s| s.parse().ok())
                    .filter(|u: &Uri| u.scheme().is_some() && u.authority().is_some())
                    .ok_or_else(|| {
                        format!(
                            "--base-url {:?} is not a URL like http://127.0.0.1:8080",
                            v.to_string_lossy()
                        )
                    })?;
                base = Some(uri);
            }
            Short('h') | Long("help") => return Ok(None),
            Value(v) if verb.is_none() => verb = Some(v.to_string_lossy().into_owned()),
            Value(v) if dir.is_none() => dir = Some(v.into()),
            other => return Err(other.unexpected().to_string()),
        }
    }
    let dir = dir.ok_or("a spool directory is required")?;
    match verb.as_deref() {
        Some("ls") if base.is_none() => Ok(Some(Command::Ls { dir, json })),
        Some("replay") if !json => Ok(Some(Command::Replay { dir, base })),
        Some("ls") => Err("--base-url goes with replay".into()),
        Some("replay") => Err("--json goes with ls".into()),
        Some(other) => Err(format!("unknown spool command {other:?} (ls or replay)")),
        None => Err("a spool command is required (ls or replay)".into()),
    }
}

/// A URI as listed: without its query string, which may carry a key.
fn shown(uri: &Uri) -> String {
    let mut s = String::new();
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        // `user:password@` never shown either.
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        s.push_str(&format!("{scheme}://{host}"));
    }
    s.push_str(uri.path());
    if uri.query().is_some() {
        s.push_str("?…");
    }
    s
}

#[derive(Serialize)]
struct Listed {
    id: u64,
    method: String,
    uri: String,
    bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<u32>,
    body_bytes: usize,
    idempotency_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<String>,
}

fn listed(e: &Entry, verdict: Option<&str>) -> Listed {
    Listed {
        id: e.id.0,
        method: e.method.to_string(),
        uri: shown(&e.uri),
        bucket: e.bucket.clone(),
        cost: e.cost,
        body_bytes: e.body.len(),
        idempotency_key: e.idempotency_key.clone(),
        verdict: verdict.map(str::to_owned),
    }
}

fn open(dir: &PathBuf) -> Result<(Spool, abide_spool::OpenReport), ExitCode> {
    if !dir.is_dir() {
        eprintln!("abide spool: {} is not a directory", dir.display());
        return Err(ExitCode::from(1));
    }
    Spool::open(dir, SpoolConfig::new()).map_err(|e| {
        eprintln!("abide spool: cannot open {}: {e}", dir.display());
        ExitCode::from(1)
    })
}

fn ls(dir: &PathBuf, json: bool) -> ExitCode {
    let (spool, report) = match open(dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let entries: Vec<Listed> = spool.entries().iter().map(|e| listed(e, None)).collect();
    let dead: Vec<Listed> = spool
        .dead_letters()
        .iter()
        .map(|d| listed(&d.entry, Some(&d.verdict)))
        .collect();
    if json {
        let value = serde_json::json!({
            "entries": entries,
            "dead_letters": dead,
            "torn": report.torn.len(),
        });
        println!("{value}");
        return ExitCode::SUCCESS;
    }
    println!(
        "{}: {} waiting, {} dead letters",
        dir.display(),
        entries.len(),
        dead.len()
    );
    for e in &entries {
        println!(
            "  #{:<6} {} {}  bucket {}  {} bytes{}",
            e.id,
            e.method,
            e.uri,
            e.bucket,
            e.body_bytes,
            e.cost.map_or_else(String::new, |c| format!("  cost {c}"))
        );
    }
    for d in &dead {
        println!(
            "  dead #{:<6} {} {}: {}",
            d.id,
            d.method,
            d.uri,
            d.verdict.as_deref().unwrap_or_default()
        );
    }
    for t in &report.torn {
        println!("  torn tail: {t:?}");
    }
    ExitCode::SUCCESS
}

/// Rewrites a request's scheme and authority to `base`'s.
fn rebase<B>(base: &Option<Uri>, mut req: http::Request<B>) -> http::Request<B> {
    if let Some(base) = base {
        let mut parts = http::uri::Parts::from(base.clone());
        parts.path_and_query = req.uri().path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

fn replay(dir: &PathBuf, base: Option<Uri>) -> ExitCode {
    let (spool, _) = match open(dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("abide spool: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<abide::AbideRequestBody<SpoolBody<Full<Bytes>>>>();
    let stack = tower::ServiceBuilder::new()
        .map_request(move |req| rebase(&base, req))
        .abide(AbideLayer::generic())
        .service(client);
    let mut replayer = SpoolLayer::new(spool.clone()).replayer(stack);
    let (mut delivered, mut dead) = (0, 0);
    let left = runtime.block_on(async {
        loop {
            match replayer.run_once().await {
                Ok(pass) => {
                    delivered += pass.delivered;
                    dead += pass.dead_lettered;
                    if pass.left == 0 || pass.delivered + pass.dead_lettered == 0 {
                        return Ok(pass.left);
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    match left {
        Ok(left) => {
            println!("abide spool: delivered {delivered}, dead-lettered {dead}, left {left}");
            if left == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("abide spool: replay stopped: {e}");
            ExitCode::from(1)
        }
    }
}

pub(crate) fn run(args: Vec<OsString>) -> ExitCode {
    match crate::parsed("spool", USAGE, parse_args(args)) {
        Ok(Command::Ls { dir, json }) => ls(&dir, json),
        Ok(Command::Replay { dir, base }) => replay(&dir, base),
        Err(code) => code,
    }
}
