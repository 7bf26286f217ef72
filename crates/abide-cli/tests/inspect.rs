//! End-to-end tests of the built `abide inspect` binary on the shipped example responses.

use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/responses")
        .join(name)
}

fn abide(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the abide binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    // The child may stop reading early (it caps its input); a broken pipe is fine then.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("abide exits")
}

fn inspect_json(file: &str) -> Value {
    let path = example(file);
    let out = abide(&["inspect", "--json", path.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "abide inspect {file} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("JSON output is UTF-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one JSON object: {stdout}"
    );
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

/// The limits sorted by scope, so the tests do not depend on header order.
fn limits(v: &Value) -> Vec<Value> {
    let mut limits = v["limits"].as_array().expect("limits is an array").clone();
    limits.sort_by_key(|l| l["scope"].as_str().unwrap_or_default().to_owned());
    limits
}

#[test]
fn openai_token_429_reports_both_windows_and_the_wait() {
    let v = inspect_json("openai-429-tokens.http");
    assert_eq!(v["status"], 429);
    assert_eq!(v["retry_after_s"], json!(4));
    assert_eq!(
        limits(&v),
        vec![
            json!({"scope": "requests", "limit": 500, "remaining": 499, "reset_s": 0.12}),
            json!({"scope": "tokens", "limit": 30000, "remaining": 0, "reset_s": 3.89}),
        ]
    );
    assert_eq!(v["classification"]["class"], "rate_limited");
    assert_eq!(v["classification"]["retryable"], true);
    assert_eq!(v["classification"]["scope"], "tokens");
    // No bucket named: the key is omitted, not null.
    assert_eq!(v["classification"].get("bucket"), None);
}

#[test]
fn openai_insufficient_quota_is_not_retryable() {
    let v = inspect_json("openai-429-insufficient-quota.http");
    assert_eq!(v["status"], 429);
    assert_eq!(v["limits"], json!([]));
    assert_eq!(v["classification"]["class"], "quota_exhausted");
    assert_eq!(v["classification"]["retryable"], false);
}

#[test]
fn anthropic_resets_are_measured_from_the_date_header() {
    let v = inspect_json("anthropic-429.http");
    assert_eq!(v["retry_after_s"], json!(17));
    assert_eq!(
        limits(&v),
        vec![
            json!({"scope": "input_tokens", "limit": 40000, "remaining": 0, "reset_s": 17}),
            json!({"scope": "output_tokens", "limit": 8000, "remaining": 8000, "reset_s": 0}),
            json!({"scope": "requests", "limit": 50, "remaining": 49, "reset_s": 1}),
        ]
    );
    assert_eq!(v["classification"]["class"], "rate_limited");
    assert_eq!(v["classification"]["scope"], "input_tokens");
}

#[test]
fn github_epoch_reset_becomes_seconds_from_date() {
    let v = inspect_json("github-403-rate-limit.http");
    assert_eq!(v["status"], 403);
    assert_eq!(v["retry_after_s"], json!(1234));
    assert_eq!(
        limits(&v),
        vec![json!({"scope": "core", "limit": 5000, "remaining": 0, "reset_s": 1234})]
    );
    // A 403 with x-ratelimit-remaining: 0 is GitHub's primary rate limit, not a permission error.
    assert_eq!(v["classification"]["class"], "rate_limited");
    // The kind is what the limit counts; the bucket is the resource GitHub names.
    assert_eq!(v["classification"]["scope"], "requests");
    assert_eq!(v["classification"]["bucket"], "core");
}

#[test]
fn ietf_policies_are_joined_by_name() {
    let v = inspect_json("ietf-429.http");
    assert_eq!(v["retry_after_s"], json!(12));
    assert_eq!(
        limits(&v),
        vec![
            json!({"scope": "burst", "limit": 100, "remaining": 0, "reset_s": 12, "window_s": 60}),
            json!({"scope": "daily", "limit": 1000, "remaining": 600, "reset_s": 50000, "window_s": 86400}),
        ]
    );
    assert_eq!(v["classification"]["scope"], "requests");
    assert_eq!(v["classification"]["bucket"], "burst");
}

#[test]
fn honeycomb_draft07_dictionary_is_read() {
    let v = inspect_json("honeycomb-429.http");
    assert_eq!(v["retry_after_s"], json!(30));
    let l = limits(&v);
    assert_eq!(l.len(), 1, "{v}");
    assert_eq!(l[0]["limit"], 100);
    assert_eq!(l[0]["remaining"], 0);
    assert_eq!(l[0]["reset_s"], 30);
    assert_eq!(l[0]["window_s"], 60);
}

#[test]
fn grpc_resource_exhausted_with_retry_info_is_rate_limited() {
    let v = inspect_json("grpc-resource-exhausted.http");
    assert_eq!(v["status"], 200);
    assert_eq!(v["classification"]["class"], "rate_limited");
    assert_eq!(v["classification"]["retryable"], true);
    assert_eq!(v["classification"]["retry_after_s"], json!(1.5));
}

#[test]
fn retry_after_http_date_is_relative_to_the_response_date() {
    let v = inspect_json("retry-after-date-503.http");
    assert_eq!(v["retry_after_s"], json!(120));
}

#[test]
fn now_flag_overrides_the_date_header() {
    let path = example("retry-after-date-503.http");
    let out = abide(
        &[
            "inspect",
            "--json",
            "--now",
            "Fri, 27 Nov 2026 03:01:30 GMT",
            path.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["retry_after_s"], json!(30));
}

#[test]
fn stdin_is_read_when_no_file_or_a_dash_is_given() {
    let input = b"HTTP/1.1 429 Too Many Requests\nretry-after-ms: 1500\n\n";
    for args in [&["inspect", "--json"][..], &["inspect", "--json", "-"][..]] {
        let out = abide(args, input);
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["retry_after_s"], json!(1.5));
        assert_eq!(v["limits"], json!([]));
    }
}

#[test]
fn unknown_fields_are_omitted_not_null() {
    let out = abide(&["inspect", "--json"], b"HTTP/1.1 200 OK\n\n");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.get("retry_after_s"), None);
    assert_eq!(v["classification"]["class"], "success");
    assert_eq!(v["classification"].get("retry_after_s"), None);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("null"));
}

#[test]
fn human_output_says_what_to_do() {
    let path = example("openai-429-tokens.http");
    let out = abide(&["inspect", path.to_str().unwrap()], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("HTTP 429"), "{text}");
    assert!(text.contains("rate limited"), "{text}");
    assert!(text.contains("wait 4 s before retrying"), "{text}");

    let path = example("openai-429-insufficient-quota.http");
    let text = String::from_utf8(abide(&["inspect", path.to_str().unwrap()], b"").stdout).unwrap();
    assert!(text.contains("do not retry"), "{text}");
}

#[test]
fn human_output_quotes_what_the_server_said() {
    let text = |file: &str| {
        let path = example(file);
        let out = abide(&["inspect", path.to_str().unwrap()], b"");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let grpc = text("grpc-resource-exhausted.http");
    assert!(
        grpc.contains("grpc-status 8: Quota exceeded for quota metric 'Requests'"),
        "{grpc}"
    );
    assert!(grpc.contains("RetryInfo: retry in 1.5 s"), "{grpc}");
    assert!(
        grpc.contains("QuotaFailure: project:demo-project"),
        "{grpc}"
    );
    let openai = text("openai-429-tokens.http");
    assert!(
        openai.contains("server says: Rate limit reached for gpt-4o"),
        "{openai}"
    );
    let overloaded = text("anthropic-529-overloaded.http");
    assert!(
        overloaded.starts_with("HTTP 529: the provider is overloaded"),
        "{overloaded}"
    );
    let github = text("github-403-rate-limit.http");
    assert!(
        github.contains("(scope: requests, bucket: core)"),
        "{github}"
    );
}

#[test]
fn input_that_is_not_a_response_exits_1_with_a_message() {
    for garbage in [
        &b""[..],
        b"hello",
        b"\x00\x01\x02\xff\xfe",
        b"HTTP/1.1 4290 X\n\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let out = abide(&["inspect"], garbage);
        assert_eq!(out.status.code(), Some(1), "input {garbage:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not an HTTP response"));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["inspect", "--bogus"][..],
        &["inspect", "--now", "yesterday"][..],
        &["inspect", "a", "b"][..],
        &["inspect", "/nonexistent/response.http"][..],
        &["no-such-command"][..],
        &[][..],
    ] {
        let out = abide(args, b"");
        assert_eq!(out.status.code(), Some(2), "args {args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn huge_input_is_capped_and_still_explained() {
    // 9 MiB: over the 8 MiB cap. The headers come first, so the verdict stands.
    let mut input =
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 2\r\ncontent-type: text/plain\r\n\r\n"
            .to_vec();
    input.resize(9 * 1024 * 1024, b'x');
    let out = abide(&["inspect", "--json"], &input);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only the first"));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["retry_after_s"], json!(2));
}

#[test]
fn hostile_headers_never_crash_the_binary() {
    let input = b"HTTP/1.1 429 X\r\n\
        retry-after: 99999999999999999999999\r\n\
        x-ratelimit-remaining: NaN\r\n\
        x-ratelimit-reset: -5\r\n\
        ratelimit: \"unterminated;r=\r\n\
        ratelimit-policy: ;;;,,,\"\r\n\
        anthropic-ratelimit-tokens-reset: 9999-99-99T99:99:99Z\r\n\
        x-ratelimit-reset-tokens: 1e400s\r\n\
        \r\n\xff\xfe{\"error\":";
    let out = abide(&["inspect", "--json"], input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 429);
}

#[test]
fn a_request_larger_than_the_whole_limit_is_a_client_error_explained_in_words() {
    let v = inspect_json("openai-429-request-too-large.http");
    assert_eq!(v["classification"]["class"], "client_error");
    assert_eq!(v["classification"]["retryable"], false);
    assert_eq!(v["classification"]["scope"], "tokens");
    assert_eq!(v["classification"].get("retry_after_s"), None);
    let path = example("openai-429-request-too-large.http");
    let text = String::from_utf8(abide(&["inspect", path.to_str().unwrap()], b"").stdout).unwrap();
    assert!(text.contains("make the request smaller"), "{text}");
    assert!(text.contains("larger than the whole limit"), "{text}");
}

#[test]
fn a_per_day_limit_with_a_short_stated_wait_is_a_rate_limit_explained_in_words() {
    let v = inspect_json("openai-429-per-day-short-wait.http");
    assert_eq!(v["classification"]["class"], "rate_limited");
    assert_eq!(v["classification"]["scope"], "daily");
    assert_eq!(v["classification"]["retry_after_s"], json!(8.64));
    let path = example("openai-429-per-day-short-wait.http");
    let text = String::from_utf8(abide(&["inspect", path.to_str().unwrap()], b"").stdout).unwrap();
    assert!(
        text.contains("why: a per-day or per-month limit, but the server stated a short wait"),
        "{text}"
    );
    assert!(text.contains("wait 8.64 s before retrying"), "{text}");
}

#[test]
fn a_200_whose_body_says_rate_limited_is_not_a_success() {
    let v = inspect_json("generic-200-rate-limited.http");
    assert_eq!(v["status"], 200);
    assert_eq!(v["classification"]["class"], "rate_limited");
    // retry_at is measured from the response's Date header.
    assert_eq!(v["classification"]["retry_after_s"], json!(45));
}

#[test]
fn queue_full_words_on_a_429_are_overload_explained_in_words() {
    let v = inspect_json("elasticsearch-429-rejected.http");
    assert_eq!(v["classification"]["class"], "overloaded");
    let path = example("elasticsearch-429-rejected.http");
    let text = String::from_utf8(abide(&["inspect", path.to_str().unwrap()], b"").stdout).unwrap();
    assert!(
        text.contains("why: the provider is short of capacity"),
        "{text}"
    );
}
