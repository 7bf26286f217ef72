//! `abide serve` and `abide demo` end to end, as processes, on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts `abide serve` with `args` on a free port; returns the child and its address.
fn serve(args: &[&str]) -> (Child, String, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_abide"))
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("abide serve starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    (child, addr, out)
}

/// One HTTP/1.1 request on a fresh connection; returns the raw answer.
fn post(addr: &str, tokens: u64) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nx-sim-tokens: {tokens}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    child.wait().unwrap()
}

#[test]
fn serve_answers_with_the_scenarios_limits_and_stops_on_ctrl_c() {
    let dir = std::env::temp_dir().join(format!("abide-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tiny.toml");
    std::fs::write(
        &file,
        "name = 'tiny'\n[server]\ndialect = 'openai'\nalgorithm = 'fixed-window'\nwindow_s = 600.0\nrequests_per_window = 2\nlatency_s = 0.01\n[workload]\nrequests = 10\n",
    )
    .unwrap();
    let (mut child, addr, mut out) = serve(&["--scenario", file.to_str().unwrap()]);
    let ok = post(&addr, 5);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("x-ratelimit-limit-requests: 2"), "{ok}");
    assert!(ok.contains("x-sim-outcome: served"), "{ok}");
    assert!(post(&addr, 5).starts_with("HTTP/1.1 200"));
    let limited = post(&addr, 5);
    assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
    assert!(limited.contains("rate_limit_exceeded"), "{limited}");
    assert!(
        limited.contains("x-sim-outcome: rate-limited-requests"),
        "{limited}"
    );
    let status = interrupt(&mut child);
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped; 2 requests served"), "{rest}");
}

#[test]
fn serve_speaks_http2_with_prior_knowledge() {
    let (mut child, addr, _out) = serve(&["--scenario", "openai-rpm", "--time-scale", "10"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("an HTTP/2 handshake");
        tokio::spawn(conn);
        let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let res = send.send_request(req).await.unwrap();
        (
            res.version(),
            res.status(),
            res.headers().get("x-ratelimit-limit-requests").cloned(),
        )
    });
    assert_eq!(status.0, http::Version::HTTP_2);
    assert_eq!(status.1, 200);
    assert_eq!(status.2.unwrap(), "500");
    assert!(interrupt(&mut child).success());
}

#[test]
fn serve_usage_errors_exit_2_and_bad_files_exit_1() {
    for args in [
        &["serve", "--time-scale", "0"][..],
        &["serve", "--time-scale", "fast"][..],
        &["serve", "--addr", "localhost"][..],
        &["serve", "--scenario", "no-such-scenario"][..],
        &["serve", "--bogus"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_abide"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(["serve", "--scenario", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_demo_prints_one_json_row_per_client_in_its_documented_keys() {
    let out = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(["demo", "--json"])
        .output()
        .expect("abide demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let first = &text[..text.find('}').expect("a row")];
    let keys = [
        "client",
        "requests",
        "succeeded",
        "lost",
        "rejected",
        "elapsed_s",
        "ideal_s",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| first.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "keys in order: {first}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is only JSON");
    let rows = rows.as_array().unwrap();
    let clients: Vec<&str> = rows.iter().map(|r| r["client"].as_str().unwrap()).collect();
    assert_eq!(clients, ["none", "naive", "abide"]);
    for row in rows {
        assert_eq!(row.as_object().unwrap().len(), keys.len(), "{row}");
        assert_eq!(row["requests"], 240);
        assert!(row["elapsed_s"].as_f64().unwrap() <= 61.0, "{row}");
    }
    // A single attempt each cannot get through a 60-request window with 240 requests.
    assert!(rows[0]["lost"].as_u64().unwrap() > 100, "{}", rows[0]);
    assert!(rows[0]["rejected"].as_u64().unwrap() > 100, "{}", rows[0]);
    // abide delivers every request the server would serve, through the outage too.
    assert_eq!(rows[2]["lost"], 0, "{}", rows[2]);
    assert_eq!(rows[2]["succeeded"], 239, "{}", rows[2]);
}
