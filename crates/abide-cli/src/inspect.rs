//! `abide inspect [--json] [--now <HTTP-date>] [FILE|-]`: explain one raw HTTP response.

use crate::raw::{self, RawResponse};
use abide_classify::{Class, Classification};
use abide_headers::{Limit, RateLimitHeaders, RateLimitSnapshot};
use serde::Serialize;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

/// The most input read; the rest is ignored (and the user told so).
const MAX_INPUT: u64 = 8 * 1024 * 1024;

const USAGE: &str = "usage: abide inspect [--json] [--now <HTTP-date>] [FILE|-]";

struct Args {
    json: bool,
    now: Option<SystemTime>,
    input: Option<OsString>,
}

fn parse_args(args: Vec<OsString>) -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut out = Args {
        json: false,
        now: None,
        input: None,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("json") => out.json = true,
            Long("now") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let text = value.to_string_lossy();
                let now = httpdate::parse_http_date(text.trim())
                    .map_err(|_| format!("--now expects an HTTP-date such as `Sun, 06 Nov 1994 08:49:37 GMT`, got {text:?}"))?;
                out.now = Some(now);
            }
            Short('h') | Long("help") => return Ok(None),
            Value(v) if out.input.is_none() => out.input = Some(v),
            Value(v) => return Err(format!("unexpected extra argument {v:?}")),
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(Some(out))
}

fn read_input(path: Option<&OsString>) -> io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    match path {
        Some(p) if p != "-" => std::fs::File::open(p)?
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)?,
        _ => io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut buf)?,
    };
    let truncated = buf.len() as u64 > MAX_INPUT;
    buf.truncate(MAX_INPUT as usize);
    Ok((buf, truncated))
}

pub(crate) fn run(args: Vec<OsString>) -> ExitCode {
    let args = match crate::parsed("inspect", USAGE, parse_args(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (input, truncated) = match read_input(args.input.as_ref()) {
        Ok(read) => read,
        Err(e) => {
            let name = args
                .input
                .as_ref()
                .map_or("stdin".into(), |p| p.to_string_lossy());
            eprintln!("abide inspect: cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    if truncated {
        eprintln!("abide inspect: input longer than {MAX_INPUT} bytes; only the first {MAX_INPUT} were read");
    }
    let response = match raw::parse(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("abide inspect: not an HTTP response: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &response.warnings {
        eprintln!("abide inspect: {w}");
    }
    let report = Report::new(&response, args.now);
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut out, &report.json())
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(report.human().as_bytes())
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`abide inspect x | head`) is not worth a panic or an error code.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abide inspect: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}

/// What `inspect` found in one response.
struct Report {
    status: http::StatusCode,
    snapshot: RateLimitSnapshot,
    classification: Classification,
    /// What the server said, for people: the gRPC status and details, or the error message
    /// of a JSON or text body.
    said: Vec<String>,
}

/// Seconds as a JSON number: an integer when whole, else rounded to the millisecond.
#[derive(Clone, Copy)]
struct Secs(Duration);

impl Serialize for Secs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.subsec_nanos() == 0 {
            s.serialize_u64(self.0.as_secs())
        } else {
            let ms = self.0.as_secs_f64() * 1000.0;
            s.serialize_f64(ms.round() / 1000.0)
        }
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<Secs>,
    limits: Vec<JsonLimit<'a>>,
    classification: JsonClassification<'a>,
}

#[derive(Serialize)]
struct JsonLimit<'a> {
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_s: Option<Secs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_s: Option<Secs>,
}

#[derive(Serialize)]
struct JsonClassification<'a> {
    class: &'static str,
    retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<Secs>,
    /// The kind of limit hit.
    scope: &'a str,
    /// Which limit, when the server names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'a str>,
}

impl Report {
    fn new(response: &RawResponse, now: Option<SystemTime>) -> Self {
        let extractor = match now {
            Some(now) => RateLimitHeaders::new().with_now(now),
            None => RateLimitHeaders::new(),
        };
        let snapshot = extractor.extract(&response.headers);
        // The classifier reads at most a bounded prefix of the body, as the layer does.
        let body = &response.body[..response.body.len().min(abide_classify::DEFAULT_PEEK_LIMIT)];
        let classification = abide_classify::classify(
            response.status,
            &response.headers,
            (!body.is_empty()).then_some(body),
            &snapshot,
        );
        Report {
            status: response.status,
            snapshot,
            classification,
            said: server_said(&response.headers, body),
        }
    }

    /// The wait before retrying: the classifier's (which also reads the body), else the
    /// one the headers imply.
    fn wait(&self) -> Option<Duration> {
        self.classification
            .retry_after
            .or_else(|| self.snapshot.wait())
    }

    fn json(&self) -> JsonReport<'_> {
        JsonReport {
            status: self.status.as_u16(),
            retry_after_s: self.wait().map(Secs),
            limits: self
                .snapshot
                .limits()
                .iter()
                .map(|l| JsonLimit {
                    scope: l.scope.as_str(),
                    limit: l.limit,
                    remaining: l.remaining,
                    reset_s: l.reset.map(Secs),
                    window_s: l.window.map(Secs),
                })
                .collect(),
            classification: JsonClassification {
                class: self.classification.class.as_str(),
                retryable: self.classification.retryable,
                retry_after_s: self.classification.retry_after.map(Secs),
                scope: self.classification.scope.as_str(),
                bucket: self.classification.bucket.as_ref().map(|b| b.as_str()),
            },
        }
    }

    fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let c = &self.classification;
        let reason = match self.status.canonical_reason() {
            Some(reason) => format!(" {reason}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "HTTP {}{reason}: {}{}",
            self.status.as_u16(),
            describe_class(c.class),
            match (c.scope.as_str(), &c.bucket) {
                ("unspecified", None) => String::new(),
                (scope, None) => format!(" (scope: {scope})"),
                (scope, Some(bucket)) => format!(" (scope: {scope}, bucket: {bucket})"),
            }
        );
        let _ = writeln!(out, "  rule: {}", c.reason);
        if let Some(why) = explain(c) {
            let _ = writeln!(out, "  why: {why}");
        }
        for line in &self.said {
            let _ = writeln!(out, "  server says: {line}");
        }
        if self.snapshot.limits().is_empty() {
            let _ = writeln!(out, "  limits: none stated in the headers");
        } else {
            let _ = writeln!(out, "  limits:");
            for l in self.snapshot.limits() {
                let _ = writeln!(out, "    {}", describe_limit(l));
            }
        }
        if self.snapshot.is_truncated() {
            let _ = writeln!(
                out,
                "    (more limits were stated; only the first {} are kept)",
                abide_headers::MAX_LIMITS
            );
        }
        let advice = match (c.class, self.wait()) {
            (Class::Success, _) => "nothing to do: the request succeeded.".to_string(),
            (_, _) if !c.retryable && c.class == Class::QuotaExhausted => {
                "do not retry: waiting will not bring this quota back. Check billing, plan or daily limits.".to_string()
            }
            (_, Some(wait)) if c.retryable => {
                format!("wait {} before retrying; no sooner.", show_secs(wait))
            }
            (_, None) if c.retryable => {
                "retry with exponential backoff and jitter; the server stated no wait.".to_string()
            }
            (Class::AuthError, _) => "fix the credentials or permissions; retrying will not help.".to_string(),
            // Only a request larger than the whole limit is a client error about tokens.
            (Class::ClientError, _) if c.scope == abide_classify::QuotaScope::Tokens => {
                "make the request smaller: it is larger than the whole limit, so no wait lets it through (the account is fine).".to_string()
            }
            _ => "change the request; retrying it as is will not help.".to_string(),
        };
        let _ = writeln!(out, "  what to do: {advice}");
        out
    }
}

/// What the verdict means, in words, for the kinds of limit that change what to do.
fn explain(c: &Classification) -> Option<&'static str> {
    use abide_classify::QuotaScope;
    Some(match (c.class, c.scope) {
        (Class::ClientError, QuotaScope::Tokens) => {
            "the request is larger than the whole limit; the account is fine, the request must shrink."
        }
        (Class::RateLimited, QuotaScope::Daily) => {
            "a per-day or per-month limit, but the server stated a short wait: it refills continuously, so waiting that long helps."
        }
        (Class::QuotaExhausted, QuotaScope::Daily) => {
            "a per-day or per-month limit is used up and no shorter wait was stated; it comes back when the period resets."
        }
        (Class::QuotaExhausted, QuotaScope::Billing) => {
            "credits, balance, billing or a spend limit ran out; no wait brings them back."
        }
        (Class::RateLimited, QuotaScope::Concurrency) => {
            "too many requests at once, or another request holds the object: send fewer at a time (serialize writes) and retry soon."
        }
        (Class::RateLimited, QuotaScope::Requests) => "too many requests in the window.",
        (Class::RateLimited, QuotaScope::Tokens | QuotaScope::InputTokens | QuotaScope::OutputTokens) => {
            "too many tokens in the window; smaller or fewer requests get through sooner."
        }
        (Class::Overloaded, _) => {
            "the provider is short of capacity (busy, queue full, high demand); this is not your quota."
        }
        (Class::QuotaExhausted, _) if c.retry_after.is_some() => {
            "the stated wait is so long that the quota is as good as gone for now."
        }
        _ => return None,
    })
}

fn describe_class(class: Class) -> &'static str {
    match class {
        Class::Success => "success",
        Class::RateLimited => "rate limited (a short-window limit; waiting helps)",
        Class::QuotaExhausted => "quota exhausted (waiting will not help)",
        Class::Overloaded => "the provider is overloaded (transient)",
        Class::ServerError => "server error (transient)",
        Class::ClientError => "client error (the request must change)",
        Class::AuthError => "authentication or permission error",
        _ => "unrecognized class",
    }
}

fn show_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{} s", (s * 1000.0).round() / 1000.0)
    }
}

fn describe_limit(l: &Limit) -> String {
    let mut s = format!("{}:", l.scope);
    match (l.remaining, l.limit) {
        (Some(r), Some(n)) => s.push_str(&format!(" {r} of {n} left")),
        (Some(r), None) => s.push_str(&format!(" {r} left")),
        (None, Some(n)) => s.push_str(&format!(" limit {n}")),
        (None, None) => {}
    }
    if let Some(window) = l.window {
        s.push_str(&format!(" per {}", show_secs(window)));
    }
    if let Some(reset) = l.reset {
        s.push_str(&format!(", resets in {}", show_secs(reset)));
    }
    if l.is_exhausted() {
        s.push_str("  <- exhausted");
    }
    s.push_str(&format!("  [{:?} headers]", l.dialect));
    s
}

/// The longest excerpt of a server message shown.
const MAX_SAID: usize = 240;

fn excerpt(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() <= MAX_SAID {
        return text;
    }
    let mut end = MAX_SAID;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// What the server said in words: gRPC status, message and decoded details; else the
/// error message of a JSON body (`error.message`, `message`, `error`, `detail`, `title`);
/// else the start of a text body.
fn server_said(headers: &http::HeaderMap, body: &[u8]) -> Vec<String> {
    let mut said = Vec::new();
    if let Some(code) = headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
        let message = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .map(percent_decode)
            .unwrap_or_default();
        said.push(excerpt(&format!("grpc-status {code}: {message}")));
        if let Some(details) = headers.get("grpc-status-details-bin") {
            match abide_classify::grpc::decode_status_details(details.as_bytes()) {
                Ok(d) => {
                    if let Some(delay) = d.retry_delay {
                        said.push(format!("RetryInfo: retry in {}", show_secs(delay)));
                    }
                    for v in d.quota_violations.iter().take(4) {
                        said.push(excerpt(&format!(
                            "QuotaFailure: {} {} {}",
                            v.subject, v.quota_id, v.description
                        )));
                    }
                    if let Some(info) = &d.error_info {
                        said.push(excerpt(&format!(
                            "ErrorInfo: {} ({})",
                            info.reason, info.domain
                        )));
                    }
                    for link in d.help_links.iter().take(2) {
                        said.push(excerpt(&format!("Help: {} {}", link.description, link.url)));
                    }
                }
                Err(e) => said.push(format!("grpc-status-details-bin unreadable: {e}")),
            }
        }
        return said;
    }
    if body.is_empty() {
        return said;
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let message = [
            "/error/message",
            "/message",
            "/error",
            "/detail",
            "/title",
            "/errors/0/message",
            "/errors/0/detail",
        ]
        .iter()
        .find_map(|p| json.pointer(p).and_then(serde_json::Value::as_str));
        if let Some(m) = message {
            said.push(excerpt(m));
        }
    } else if let Ok(text) = std::str::from_utf8(body) {
        let looks_like_text = !text.trim_start().starts_with('<');
        if looks_like_text && !text.trim().is_empty() {
            said.push(excerpt(text));
        }
    }
    said
}

/// `grpc-message` is percent-encoded (gRPC HTTP/2 protocol spec); bad escapes stay as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_decoded_and_bad_escapes_kept() {
        assert_eq!(percent_decode("Quota%20exceeded"), "Quota exceeded");
        assert_eq!(percent_decode("100%25"), "100%");
        assert_eq!(percent_decode("bad %zz and %4"), "bad %zz and %4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%E2%9C%93"), "\u{2713}");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let long = "é".repeat(500);
        let cut = excerpt(&long);
        assert!(cut.ends_with("..."));
        assert!(cut.len() <= MAX_SAID + 3);
        assert_eq!(excerpt("  two\n\twords  "), "two words");
    }

    #[test]
    fn json_error_messages_are_found_in_common_shapes() {
        let said = |body: &str| server_said(&http::HeaderMap::new(), body.as_bytes());
        assert_eq!(said(r#"{"error":{"message":"slow down"}}"#), ["slow down"]);
        assert_eq!(
            said(r#"{"message":"API rate limit exceeded"}"#),
            ["API rate limit exceeded"]
        );
        assert_eq!(said(r#"{"errors":[{"detail":"too many"}]}"#), ["too many"]);
        assert!(said(r#"{"error":{"code":429}}"#).is_empty());
        assert!(said("<html>busy</html>").is_empty());
        assert_eq!(said("plain words"), ["plain words"]);
    }
}
