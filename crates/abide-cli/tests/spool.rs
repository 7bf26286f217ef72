//! `abide spool ls` and `abide spool replay` end to end, against a spool written through
//! abide-spool's API and the simulated API on 127.0.0.1.

use abide_spool::{NewEntry, Spool, SpoolConfig};
use std::process::Command;

fn abide(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(args)
        .output()
        .expect("the abide binary runs")
}

/// A spool with three requests, one carrying a key in a header and in the query.
fn spool(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("abide-cli-spool-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir, SpoolConfig::new()).unwrap();
    for i in 0..3 {
        let (parts, ()) = http::Request::post(format!(
            "http://api.example.com/v1/events?api_key=sk-cli-secret-{i}"
        ))
        .header("authorization", "Bearer sk-cli-secret")
        .header("content-type", "application/json")
        .body(())
        .unwrap()
        .into_parts();
        spool
            .push(NewEntry::from_parts(
                &parts,
                bytes::Bytes::from(format!("{{\"n\":{i}}}")),
            ))
            .unwrap();
    }
    dir
}

#[test]
fn ls_lists_what_waits_without_credentials_or_query_strings() {
    let dir = spool("ls");
    let out = abide(&["spool", "ls", dir.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("sk-cli-secret"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["method"], "POST");
    assert_eq!(entries[0]["uri"], "http://api.example.com/v1/events?…");
    assert_eq!(entries[0]["bucket"], "api.example.com");
    assert!(!entries[0]["idempotency_key"].as_str().unwrap().is_empty());
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 0);
    let human = abide(&["spool", "ls", dir.to_str().unwrap()]);
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("3 waiting, 0 dead letters"), "{human}");
}

#[test]
fn replay_delivers_every_entry_to_the_base_url_and_empties_the_spool() {
    let dir = spool("replay");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = abide_sim::SimServer::with_epoch(
        abide_sim::ServerConfig {
            latency: std::time::Duration::from_millis(5),
            ..abide_sim::ServerConfig::default()
        },
        1,
        std::time::SystemTime::now(),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(abide_sim::http::serve(listener, server.clone(), async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let out = abide(&[
        "spool",
        "replay",
        dir.to_str().unwrap(),
        "--base-url",
        &base,
    ]);
    let _ = stop.send(());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("delivered 3, dead-lettered 0, left 0"),
        "{text}"
    );
    assert_eq!(server.with_model(|m| m.served()), 3);
    let left = abide(&["spool", "ls", dir.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&left.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
}

#[test]
fn spool_usage_errors_exit_2_and_a_missing_directory_exits_1() {
    for args in [
        &["spool"][..],
        &["spool", "ls"][..],
        &["spool", "push", "/tmp"][..],
        &["spool", "ls", "/tmp", "--base-url", "http://x"][..],
        &["spool", "replay", "/tmp", "--base-url", "not a url"][..],
    ] {
        assert_eq!(abide(args).status.code(), Some(2), "{args:?}");
    }
    let out = abide(&["spool", "ls", "/no/such/spool"]);
    assert_eq!(out.status.code(), Some(1));
}
