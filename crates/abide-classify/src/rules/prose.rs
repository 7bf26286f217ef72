//! A hand-written scanner for waits stated in prose ("Please try again in 3.89s",
//! "Please retry after 12 seconds", "9m38.016s") and in protobuf-JSON durations ("38s").

use super::text::find_from;
use std::time::{Duration, SystemTime};

/// Waits longer than this are clamped: a server cannot make the client wait a year.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Phrases after which servers state a wait.
const TRIGGERS: &[&str] = &[
    "try again in",
    "try again after",
    "try after",
    "request after",
    "retry after",
    "retry in",
    "retrying in",
    "retry-after:",
    "wait for",
    "wait",
    "resets in",
    "reset in",
    // Followed by an instant ("banned until 1659146400000", "retry at 2026-11-27T03:05Z").
    "until",
    "retry at",
    "try again at",
    "resets at",
    "reset at",
    "available at",
];

/// Finds the first wait stated after a trigger phrase in `text`: a duration in any unit
/// the text names, or (measured from `now`) an RFC 3339 instant or an epoch in seconds or
/// milliseconds.
pub(crate) fn find_wait(text: &[u8], now: SystemTime) -> Option<Duration> {
    let mut best: Option<(usize, Duration)> = None;
    for trigger in TRIGGERS {
        let mut from = 0;
        while let Some(at) = find_from(text, trigger, from) {
            from = at + trigger.len();
            // "wait" inside "await"/"waiting" is not a trigger.
            if at > 0 && text[at - 1].is_ascii_alphabetic() {
                continue;
            }
            let rest = &text[from..];
            if let Some(wait) = parse_after(rest).or_else(|| instant_after(rest, now)) {
                if best.is_none_or(|(pos, _)| at < pos) {
                    best = Some((at, wait));
                }
                break;
            }
        }
    }
    best.map(|(_, w)| w)
}

/// Parses a duration right after a trigger, skipping blanks and filler words.
fn parse_after(rest: &[u8]) -> Option<Duration> {
    // "Retry after: 21 seconds" (Akamai).
    let rest = skip_blanks(rest);
    let rest = rest.strip_prefix(b":").unwrap_or(rest);
    let mut s = skip_blanks(rest);
    for filler in ["about ", "approximately ", "approx. ", "~"] {
        if s.len() >= filler.len() && s[..filler.len()].eq_ignore_ascii_case(filler.as_bytes()) {
            s = skip_blanks(&s[filler.len()..]);
        }
    }
    parse_duration_prefix(s).map(|(d, _)| d)
}

/// An instant right after a trigger: RFC 3339 / ISO 8601 text or an epoch of at least 10
/// digits (seconds, or milliseconds when 13), as the time from `now` until it.
fn instant_after(rest: &[u8], now: SystemTime) -> Option<Duration> {
    let s = skip_blanks(rest);
    let len = s
        .iter()
        .take(64)
        .take_while(|b| !matches!(b, b' ' | b',' | b';' | b')' | b'"' | b'\'' | b'\n'))
        .count();
    let word = std::str::from_utf8(&s[..len]).ok()?.trim_end_matches('.');
    if word.len() >= 10 && word.len() <= 16 && word.bytes().all(|b| b.is_ascii_digit()) {
        let x: f64 = word.parse().ok()?;
        return Some(super::waits::epoch_wait(x, now));
    }
    if word.len() >= 10 && word.as_bytes()[4] == b'-' {
        return super::waits::text_instant(word, now);
    }
    None
}

fn skip_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

/// Parses a whole duration string such as `"38s"`, `"1.5s"`, `"9m38.016s"`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    match parse_duration_prefix(s.as_bytes()) {
        Some((d, used)) if used == s.len() => Some(d),
        _ => None,
    }
}

/// Parses a duration at the start of `s`: Go style compounds (`9m38.016s`, `644ms`,
/// `1h2m`) or a number and a unit word (`12 seconds`, `1 minute`). Returns the duration
/// and the bytes used.
fn parse_duration_prefix(s: &[u8]) -> Option<(Duration, usize)> {
    let mut total = 0f64;
    let mut i = 0;
    let mut parts = 0;
    loop {
        let (value, used) = number(&s[i..])?;
        let mut j = i + used;
        // A unit word may follow a space ("12 seconds"); compounds have none ("9m38s").
        let spaced = parts == 0 && s.get(j) == Some(&b' ');
        if spaced {
            j += 1;
        }
        let (unit_secs, unit_len) = unit(&s[j..])?;
        j += unit_len;
        total += value * unit_secs;
        parts += 1;
        i = j;
        // Continue a compound only when a digit follows directly.
        if spaced || !s.get(i).is_some_and(u8::is_ascii_digit) || parts >= 4 {
            break;
        }
    }
    // A number too large for a float (`inf`) is as absurd as any huge one: capped below.
    if total.is_nan() || total < 0.0 {
        return None;
    }
    let capped = total.min(MAX_WAIT.as_secs_f64());
    Some((Duration::from_secs_f64(capped), i))
}

/// A non-negative decimal number at the start of `s`.
fn number(s: &[u8]) -> Option<(f64, usize)> {
    let int = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if int == 0 {
        return None;
    }
    let mut len = int;
    if s.get(len) == Some(&b'.') {
        let frac = s[len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if frac > 0 {
            len += 1 + frac;
        }
    }
    let text = std::str::from_utf8(&s[..len]).ok()?;
    text.parse::<f64>().ok().map(|v| (v, len))
}

/// A unit at the start of `s`: its length in seconds and the bytes used. The unit must end
/// at a non-letter so "5 security" is not "5 s".
fn unit(s: &[u8]) -> Option<(f64, usize)> {
    const UNITS: &[(&str, f64)] = &[
        ("milliseconds", 1e-3),
        ("millisecond", 1e-3),
        ("msec", 1e-3),
        ("ms", 1e-3),
        ("microseconds", 1e-6),
        ("us", 1e-6),
        ("\u{b5}s", 1e-6),
        ("nanoseconds", 1e-9),
        ("ns", 1e-9),
        ("seconds", 1.0),
        ("second", 1.0),
        ("secs", 1.0),
        ("sec", 1.0),
        ("s", 1.0),
        ("minutes", 60.0),
        ("minute", 60.0),
        ("mins", 60.0),
        ("min", 60.0),
        ("m", 60.0),
        ("hours", 3600.0),
        ("hour", 3600.0),
        ("hrs", 3600.0),
        ("hr", 3600.0),
        ("h", 3600.0),
        ("days", 86400.0),
        ("day", 86400.0),
        ("d", 86400.0),
    ];
    for (name, secs) in UNITS {
        let n = name.as_bytes();
        if s.len() >= n.len()
            && s[..n.len()].eq_ignore_ascii_case(n)
            && !s.get(n.len()).is_some_and(u8::is_ascii_alphabetic)
        {
            return Some((*secs, n.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn at() -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn instants_after_triggers_are_measured_from_now() {
        // Binance (developers.binance.com, "LIMITS"): "IP banned until 1659146400000".
        let ban = b"Way too much request weight used; IP banned until 1700000060000. Please use WebSocket Streams.";
        assert_eq!(find_wait(ban, at()), ms(60_000));
        assert_eq!(
            find_wait(b"retry at 2023-11-14T22:13:50Z.", at()),
            ms(30_000)
        );
        assert_eq!(find_wait(b"blocked until 1700000010", at()), ms(10_000));
        // Not an instant: short numbers, words, dates that do not parse.
        assert_eq!(find_wait(b"valid until 12", at()), None);
        assert_eq!(find_wait(b"wait until tomorrow", at()), None);
        assert_eq!(find_wait(b"until 2023-99-99T99:99:99Z", at()), None);
    }

    #[test]
    fn prose_waits_from_vendor_messages_parse() {
        // OpenAI rate-limit messages (platform.openai.com/docs/guides/rate-limits).
        let cases: &[(&str, Option<Duration>)] = &[
            (
                "Limit 10000, Used 9000. Please try again in 3.89s. Visit",
                ms(3890),
            ),
            ("Please try again in 20s.", ms(20_000)),
            ("Please try again in 644ms.", ms(644)),
            ("Please try again in 9m38.016s.", ms(578_016)),
            ("Please try again in 1h2m3s.", ms(3_723_000)),
            // Azure OpenAI (learn.microsoft.com quota docs).
            ("Please retry after 12 seconds. Please go here", ms(12_000)),
            ("Rate limit is exceeded. Try again in 5 seconds.", ms(5_000)),
            // Gemini message text.
            (
                "Please retry in 10.689924287s.",
                Some(Duration::from_nanos(10_689_924_287)),
            ),
            ("retry after 1 minute", ms(60_000)),
            ("Please try again in 2 hours", ms(7_200_000)),
            ("Please wait a few minutes before you try again", None),
            ("awaiting 5s", None),
            ("no wait here", None),
            ("try again in 5 security", None),
            ("try again in 99999999999999999999999999h", Some(MAX_WAIT)),
        ];
        for (text, want) in cases {
            let got = find_wait(text.as_bytes(), at()).map(|d| d.as_millis());
            assert_eq!(got, want.map(|d| d.as_millis()), "{text}");
        }
    }

    #[test]
    fn protobuf_json_durations_parse_whole() {
        assert_eq!(parse_duration("38s"), ms(38_000));
        assert_eq!(parse_duration("1.5s"), ms(1500));
        assert_eq!(parse_duration("38s trailing"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
    }
}
