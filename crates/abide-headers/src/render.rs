//! Writing a snapshot back as headers in a chosen dialect (for simulated APIs and servers).

use crate::value;
use crate::{Dialect, Limit, QuotaUnit, RateLimitSnapshot, Scope};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime};

/// The snapshot could not be written in the requested dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError {
    dialect: Dialect,
    reason: &'static str,
}

impl RenderError {
    fn new(dialect: Dialect, reason: &'static str) -> Self {
        RenderError { dialect, reason }
    }

    /// The dialect that was asked for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write rate-limit headers in dialect {:?}: {}",
            self.dialect, self.reason
        )
    }
}

impl std::error::Error for RenderError {}

/// Writes `snapshot` into `headers` in `dialect`, relative times measured from `now`
/// (epoch and date dialects need it).
///
/// Every dialect also writes the snapshot's [`retry_after`](RateLimitSnapshot::retry_after)
/// as `Retry-After` in whole seconds rounded up; OpenAI and Anthropic add `retry-after-ms`
/// with millisecond precision. Headers the dialect writes replace any already present.
///
/// What each dialect can carry:
/// - [`Dialect::Ietf`]: every limit, one `RateLimit-Policy` item (`q`, `w`, `qu`, `pk`)
///   and one `RateLimit` item (`r`, `t`, `pk`) per limit, keyed by the scope's name
///   (`requests`, `tokens`, ... for the fixed scopes). Whole seconds.
/// - [`Dialect::IetfDraft07`], [`Dialect::IetfDraft06`], [`Dialect::IetfDraft03`],
///   [`Dialect::XRateLimit`]: one limit (the [most constrained](RateLimitSnapshot::most_constrained),
///   else the first); its window as a `w=` policy where the dialect has one; resets as
///   delta seconds, rounded up.
/// - [`Dialect::OpenAi`]: the `Requests` and `Tokens` limits, resets as Go durations
///   (millisecond precision).
/// - [`Dialect::Anthropic`]: the `Requests`, `Tokens`, `InputTokens` and `OutputTokens`
///   limits, resets as RFC 3339 instants (`now + reset`).
/// - [`Dialect::GitHub`]: one limit; a named scope becomes `x-ratelimit-resource`; the reset
///   is written as epoch seconds (`now + reset`, rounded up).
/// - [`Dialect::RetryAfter`]: only `Retry-After`.
///
/// # Errors
/// [`RenderError`] for a dialect this crate only reads (the vendor tail, [`Dialect::Other`]),
/// or when a reset written as an instant (`now + reset`) is past what `SystemTime` holds.
///
/// # Examples
/// ```
/// use abide_headers::{render, Dialect, Limit, RateLimitHeaders, RateLimitSnapshot, Scope};
/// use std::time::{Duration, SystemTime};
///
/// let mut requests = Limit::new(Scope::Requests, Dialect::OpenAi);
/// requests.limit = Some(500);
/// requests.remaining = Some(0);
/// requests.reset = Some(Duration::from_millis(1500));
/// let snapshot = RateLimitSnapshot::new().with_limit(requests);
///
/// let now = SystemTime::now();
/// let mut headers = http::HeaderMap::new();
/// render(&snapshot, Dialect::OpenAi, now, &mut headers).unwrap();
/// assert_eq!(headers["x-ratelimit-reset-requests"], "1.5s");
/// assert_eq!(RateLimitHeaders::new().with_now(now).extract(&headers), snapshot);
/// ```
pub fn render(
    snapshot: &RateLimitSnapshot,
    dialect: Dialect,
    now: SystemTime,
    headers: &mut HeaderMap,
) -> Result<(), RenderError> {
    let mut w = Writer {
        headers,
        buf: String::new(),
    };
    match dialect {
        Dialect::Ietf => ietf(snapshot, &mut w),
        Dialect::IetfDraft07 => {
            if let Some(l) = one_limit(snapshot) {
                w.set("ratelimit", |b| {
                    let mut sep = "";
                    if let Some(q) = l.limit {
                        write!(b, "limit={q}")?;
                        sep = ", ";
                    }
                    if let Some(r) = l.remaining {
                        write!(b, "{sep}remaining={r}")?;
                        sep = ", ";
                    }
                    if let Some(t) = l.reset {
                        write!(b, "{sep}reset={}", ceil_secs(t))?;
                    }
                    Ok(())
                });
                policy_integer_item(&mut w, l);
            }
        }
        Dialect::IetfDraft06 | Dialect::IetfDraft03 => {
            if let Some(l) = one_limit(snapshot) {
                if let Some(q) = l.limit {
                    if dialect == Dialect::IetfDraft03 {
                        w.set("ratelimit-limit", |b| match l.window {
                            Some(win) => write!(b, "{q}, {q};w={}", ceil_secs(win)),
                            None => write!(b, "{q}"),
                        });
                    } else {
                        w.set("ratelimit-limit", |b| write!(b, "{q}"));
                    }
                }
                w.set_opt("ratelimit-remaining", l.remaining);
                w.set_opt("ratelimit-reset", l.reset.map(ceil_secs));
                if dialect == Dialect::IetfDraft06 {
                    policy_integer_item(&mut w, l);
                }
            }
        }
        Dialect::XRateLimit => {
            if let Some(l) = one_limit(snapshot) {
                w.set_opt("x-ratelimit-limit", l.limit);
                w.set_opt("x-ratelimit-remaining", l.remaining);
                w.set_opt("x-ratelimit-reset", l.reset.map(ceil_secs));
            }
        }
        Dialect::OpenAi => {
            for (scope, suffix) in [(Scope::Requests, "requests"), (Scope::Tokens, "tokens")] {
                let Some(l) = snapshot.get(&scope) else {
                    continue;
                };
                w.set_opt_named("x-ratelimit-limit-", suffix, l.limit);
                w.set_opt_named("x-ratelimit-remaining-", suffix, l.remaining);
                if let Some(reset) = l.reset {
                    w.set_named("x-ratelimit-reset-", suffix, |b| go_duration(b, reset));
                }
            }
        }
        Dialect::Anthropic => {
            for (scope, part) in [
                (Scope::Requests, "requests"),
                (Scope::Tokens, "tokens"),
                (Scope::InputTokens, "input-tokens"),
                (Scope::OutputTokens, "output-tokens"),
            ] {
                let Some(l) = snapshot.get(&scope) else {
                    continue;
                };
                w.set_opt_anthropic(part, "-limit", l.limit);
                w.set_opt_anthropic(part, "-remaining", l.remaining);
                if let Some(reset) = l.reset {
                    let at = reset_at(now, reset, dialect)?;
                    w.set_anthropic(part, "-reset", |b| value::write_rfc3339(at, b));
                }
            }
        }
        Dialect::GitHub => {
            if let Some(l) = one_limit(snapshot) {
                w.set_opt("x-ratelimit-limit", l.limit);
                w.set_opt("x-ratelimit-remaining", l.remaining);
                if let (Some(q), Some(r)) = (l.limit, l.remaining) {
                    w.set_opt("x-ratelimit-used", Some(q.saturating_sub(r)));
                }
                if let Some(reset) = l.reset {
                    // Epoch seconds, rounded up (not a duration: no cap applies).
                    let at = value::epoch(reset_at(now, reset, dialect)?);
                    let secs = at.as_secs() + u64::from(at.subsec_nanos() > 0);
                    w.set_opt("x-ratelimit-reset", Some(secs));
                }
                if let Scope::Named(n) = &l.scope {
                    let name = n.as_str();
                    w.set("x-ratelimit-resource", |b| b.write_str(name));
                }
            }
        }
        Dialect::RetryAfter => {}
        _ => return Err(RenderError::new(dialect, "this dialect is read-only")),
    }
    if let Some(wait) = snapshot.retry_after() {
        w.set_opt("retry-after", Some(ceil_secs(wait)));
        if matches!(dialect, Dialect::OpenAi | Dialect::Anthropic) {
            let ms = wait.as_nanos().div_ceil(1_000_000);
            w.set("retry-after-ms", |b| write!(b, "{ms}"));
        }
    }
    Ok(())
}

/// Whole seconds of a duration, rounded up: a client told "0" for 0.4 s would come back
/// too early. Capped as the reader caps, which keeps it a valid structured-field integer.
fn ceil_secs(d: Duration) -> u64 {
    let d = value::cap(d);
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `now + reset` (capped); an error when that instant is past what `SystemTime` holds.
fn reset_at(now: SystemTime, reset: Duration, dialect: Dialect) -> Result<SystemTime, RenderError> {
    now.checked_add(value::cap(reset))
        .ok_or_else(|| RenderError::new(dialect, "reset instant out of range"))
}

fn one_limit(snapshot: &RateLimitSnapshot) -> Option<&Limit> {
    snapshot
        .most_constrained()
        .or_else(|| snapshot.limits().first())
}

/// A Go `time.Duration` string: `1h2m3.5s`, `12ms`, `0s`.
fn go_duration(b: &mut String, d: Duration) -> fmt::Result {
    let d = value::cap(d);
    if d < Duration::from_secs(1)
        && d.subsec_nanos().is_multiple_of(1_000_000)
        && d > Duration::ZERO
    {
        return write!(b, "{}ms", d.subsec_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        write!(b, "{h}h")?;
    }
    if h > 0 || m > 0 {
        write!(b, "{m}m")?;
    }
    write!(b, "{s}")?;
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let mut frac = format!("{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
        write!(b, ".{frac}")?;
    }
    b.write_char('s')
}

fn unit_wire(u: &QuotaUnit) -> &str {
    // The draft-10 registry names; the reader also accepts the plural forms.
    match u {
        QuotaUnit::Requests => "request",
        QuotaUnit::ConcurrentRequests => "concurrency",
        other => other.as_str(),
    }
}

/// Writes a policy name as an RFC 9651 string (escaping `"` and `\`; other characters
/// outside printable ASCII become `?` since sf-string cannot carry them).
fn sf_string(b: &mut String, s: &str) -> fmt::Result {
    b.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                b.push('\\');
                b.push(c);
            }
            ' '..='~' => b.push(c),
            _ => b.push('?'),
        }
    }
    b.push('"');
    Ok(())
}

fn sf_bytes(b: &mut String, bytes: &[u8]) -> fmt::Result {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    b.push(':');
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b.push('=');
            }
        }
    }
    b.push(':');
    Ok(())
}

fn ietf(snapshot: &RateLimitSnapshot, w: &mut Writer<'_>) {
    let limits = snapshot.limits();
    if limits.iter().any(|l| l.limit.is_some()) {
        w.set("ratelimit-policy", |b| {
            let mut first = true;
            for l in limits.iter().filter(|l| l.limit.is_some()) {
                if !first {
                    b.write_str(", ")?;
                }
                first = false;
                sf_string(b, l.scope.as_str())?;
                if let Some(q) = l.limit {
                    write!(b, ";q={q}")?;
                }
                if let Some(win) = l.window {
                    write!(b, ";w={}", ceil_secs(win))?;
                }
                // A token limit says what it counts (`qu`), or a reader takes the
                // policy for a request count.
                let tokens = matches!(
                    l.scope,
                    Scope::Tokens | Scope::InputTokens | Scope::OutputTokens
                );
                if let Some(u) = l.unit.as_ref().or(tokens.then_some(&QuotaUnit::Tokens)) {
                    b.write_str(";qu=")?;
                    sf_string(b, unit_wire(u))?;
                }
                if let Some(pk) = &l.partition_key {
                    b.write_str(";pk=")?;
                    sf_bytes(b, pk.as_bytes())?;
                }
            }
            Ok(())
        });
    }
    let live = |l: &&Limit| l.remaining.is_some() || l.reset.is_some() || l.limit.is_none();
    if limits.iter().any(|l| live(&l)) {
        w.set("ratelimit", |b| {
            let mut first = true;
            for l in limits.iter().filter(live) {
                if !first {
                    b.write_str(", ")?;
                }
                first = false;
                sf_string(b, l.scope.as_str())?;
                if let Some(r) = l.remaining {
                    write!(b, ";r={r}")?;
                }
                if let Some(t) = l.reset {
                    write!(b, ";t={}", ceil_secs(t))?;
                }
                if let Some(pk) = &l.partition_key {
                    b.write_str(";pk=")?;
                    sf_bytes(b, pk.as_bytes())?;
                }
            }
            Ok(())
        });
    }
}

/// The draft 04–07 `RateLimit-Policy: 100;w=60` item for one limit.
fn policy_integer_item(w: &mut Writer<'_>, l: &Limit) {
    if let (Some(q), Some(win)) = (l.limit, l.window) {
        w.set("ratelimit-policy", |b| {
            write!(b, "{q};w={}", ceil_secs(win))
        });
    }
}

struct Writer<'a> {
    headers: &'a mut HeaderMap,
    buf: String,
}

impl Writer<'_> {
    fn set_name(&mut self, name: HeaderName, f: impl FnOnce(&mut String) -> fmt::Result) {
        self.buf.clear();
        if f(&mut self.buf).is_err() {
            return;
        }
        // Everything written above is visible ASCII, so this cannot fail; stay quiet if
        // it ever does rather than panic in a server.
        if let Ok(v) = HeaderValue::from_str(&self.buf) {
            self.headers.insert(name, v);
        }
    }

    fn set(&mut self, name: &'static str, f: impl FnOnce(&mut String) -> fmt::Result) {
        self.set_name(HeaderName::from_static(name), f);
    }

    fn set_opt(&mut self, name: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.set(name, |b| write!(b, "{v}"));
        }
    }

    fn set_named(
        &mut self,
        prefix: &str,
        suffix: &str,
        f: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        let mut name = String::with_capacity(prefix.len() + suffix.len());
        name.push_str(prefix);
        name.push_str(suffix);
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            self.set_name(name, f);
        }
    }

    fn set_opt_named(&mut self, prefix: &str, suffix: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.set_named(prefix, suffix, |b| write!(b, "{v}"));
        }
    }

    fn set_anthropic(
        &mut self,
        part: &str,
        field: &str,
        f: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        let mut name = String::from("anthropic-ratelimit-");
        name.push_str(part);
        self.set_named(&name, field, f);
    }

    fn set_opt_anthropic(&mut self, part: &str, field: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.set_anthropic(part, field, |b| write!(b, "{v}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_are_written_the_way_go_prints_them() {
        let s = |d| {
            let mut b = String::new();
            go_duration(&mut b, d).unwrap();
            b
        };
        assert_eq!(s(Duration::from_secs(360)), "6m0s");
        assert_eq!(s(Duration::from_millis(1500)), "1.5s");
        assert_eq!(s(Duration::from_millis(12)), "12ms");
        assert_eq!(s(Duration::from_millis(179_560)), "2m59.56s");
        assert_eq!(s(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(s(Duration::ZERO), "0s");
    }

    #[test]
    fn an_ietf_token_policy_says_it_counts_tokens() {
        let mut tokens = Limit::new(Scope::Tokens, Dialect::Ietf);
        tokens.limit = Some(10_000);
        tokens.remaining = Some(4_000);
        tokens.window = Some(Duration::from_secs(60));
        let snapshot = RateLimitSnapshot::new().with_limit(tokens);
        let mut headers = HeaderMap::new();
        render(
            &snapshot,
            Dialect::Ietf,
            SystemTime::UNIX_EPOCH,
            &mut headers,
        )
        .unwrap();
        assert_eq!(
            headers["ratelimit-policy"],
            "\"tokens\";q=10000;w=60;qu=\"tokens\""
        );
        let read = crate::RateLimitHeaders::new().extract(&headers);
        assert_eq!(read.limits()[0].unit, Some(QuotaUnit::Tokens));
    }

    #[test]
    fn read_only_dialects_are_an_error_that_names_the_dialect() {
        let mut headers = HeaderMap::new();
        let snapshot = RateLimitSnapshot::new().with_retry_after(Duration::from_secs(1));
        let err = render(
            &snapshot,
            Dialect::Kong,
            SystemTime::UNIX_EPOCH,
            &mut headers,
        )
        .unwrap_err();
        assert_eq!(err.dialect(), Dialect::Kong);
        assert!(err.to_string().contains("Kong"), "{err}");
        assert!(headers.is_empty(), "nothing is written on error");
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds_with_exact_milliseconds_beside_it() {
        let mut headers = HeaderMap::new();
        let snapshot = RateLimitSnapshot::new().with_retry_after(Duration::from_millis(1200));
        render(
            &snapshot,
            Dialect::OpenAi,
            SystemTime::UNIX_EPOCH,
            &mut headers,
        )
        .unwrap();
        assert_eq!(headers["retry-after"], "2");
        assert_eq!(headers["retry-after-ms"], "1200");
        let mut headers = HeaderMap::new();
        render(
            &snapshot,
            Dialect::GitHub,
            SystemTime::UNIX_EPOCH,
            &mut headers,
        )
        .unwrap();
        assert_eq!(headers["retry-after"], "2");
        assert!(!headers.contains_key("retry-after-ms"));
    }

    #[test]
    fn byte_sequences_are_standard_padded_base64() {
        let s = |bytes: &[u8]| {
            let mut b = String::new();
            sf_bytes(&mut b, bytes).unwrap();
            b
        };
        assert_eq!(s(b""), "::");
        assert_eq!(s(b"f"), ":Zg==:");
        assert_eq!(s(b"fo"), ":Zm8=:");
        assert_eq!(s(b"foo"), ":Zm9v:");
        assert_eq!(s(b"foob"), ":Zm9vYg==:");
    }
}
