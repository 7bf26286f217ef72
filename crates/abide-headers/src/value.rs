//! Shared value primitives: bounded integers, finite non-negative decimals, Go durations,
//! HTTP-dates, RFC 3339 timestamps and epoch instants. None of them allocates.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counts above this are capped: no real quota is that large, and capping keeps every
/// sum and product below `u64::MAX` (the RFC 9651 integer range is 15 digits too).
pub(crate) const MAX_COUNT: u64 = 999_999_999_999_999;

/// Durations above this (about 10 years) are capped: no server wait or window is longer,
/// and `SystemTime + Duration` cannot overflow.
pub(crate) const MAX_SECS: u64 = 10 * 366 * 86_400;

/// Longest numeric text read; anything longer is malformed. Bounds the work per value.
const MAX_NUMBER_LEN: usize = 40;

/// Why a value was rejected (reported in `tracing` debug events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueError {
    Empty,
    Negative,
    NotANumber,
    TooLong,
    NotADuration,
    NotADate,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::Empty => "empty value",
            ValueError::Negative => "negative value",
            ValueError::NotANumber => "not a number",
            ValueError::TooLong => "value too long",
            ValueError::NotADuration => "not a duration",
            ValueError::NotADate => "not a date",
        })
    }
}

/// Trims optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from both ends.
#[inline]
pub(crate) fn trim_ows(s: &str) -> &str {
    // Byte by byte: both are ASCII, so every cut is at a char boundary.
    let b = s.as_bytes();
    let (mut start, mut end) = (0, b.len());
    while start < end && matches!(b[start], b' ' | b'\t') {
        start += 1;
    }
    while end > start && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    &s[start..end]
}

/// A non-negative integer count, capped at [`MAX_COUNT`]. Leading zeros are fine; a sign,
/// a fraction or any other character is not.
pub(crate) fn count(s: &str) -> Result<u64, ValueError> {
    let s = trim_ows(s);
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    if s.starts_with('-') {
        return Err(ValueError::Negative);
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return Err(ValueError::NotANumber),
        };
        // Saturate instead of overflowing; the cap below applies either way.
        n = n.saturating_mul(10).saturating_add(d).min(MAX_COUNT + 1);
    }
    Ok(n.min(MAX_COUNT))
}

/// A count that may be written as a decimal (Reddit sends `598.0`); the fraction is
/// dropped (a partial request is not a request).
pub(crate) fn count_lenient(s: &str) -> Result<u64, ValueError> {
    fixed(s).map(|x| x.whole.min(MAX_COUNT))
}

/// A non-negative decimal read exactly, without going through binary floating point:
/// whole units and the fraction in nanounits (digits past the ninth are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fixed {
    pub(crate) whole: u64,
    pub(crate) nanos: u32,
}

impl Fixed {
    /// As seconds, capped at [`MAX_SECS`].
    pub(crate) fn secs(self) -> Duration {
        if self.whole >= MAX_SECS {
            Duration::from_secs(MAX_SECS)
        } else {
            Duration::new(self.whole, self.nanos)
        }
    }

    /// As milliseconds, capped at [`MAX_SECS`].
    pub(crate) fn millis(self) -> Duration {
        Fixed {
            whole: self.whole / 1000,
            nanos: (self.whole % 1000) as u32 * 1_000_000 + self.nanos / 1000,
        }
        .secs()
    }
}

/// [`decimal`]'s syntax, read exactly into a [`Fixed`]. Huge values saturate.
pub(crate) fn fixed(s: &str) -> Result<Fixed, ValueError> {
    let s = trim_ows(s);
    check_decimal(s)?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole = int.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    let mut nanos = 0u32;
    let mut scale = 100_000_000u32;
    for b in frac.bytes().take(9) {
        nanos += u32::from(b - b'0') * scale;
        scale /= 10;
    }
    Ok(Fixed { whole, nanos })
}

/// The checks every numeric text passes first: not empty, not too long, no minus sign.
fn check_number_text(s: &str) -> Result<(), ValueError> {
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    if s.len() > MAX_NUMBER_LEN {
        return Err(ValueError::TooLong);
    }
    if s.starts_with('-') {
        return Err(ValueError::Negative);
    }
    Ok(())
}

fn check_decimal(s: &str) -> Result<(), ValueError> {
    check_number_text(s)?;
    let mut digits = 0;
    let mut dots = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return Err(ValueError::NotANumber),
        }
    }
    if digits == 0 || dots > 1 {
        return Err(ValueError::NotANumber);
    }
    Ok(())
}

/// A finite, non-negative decimal: `digits [ "." digits ]` (also `.5` and `5.`). Rejects
/// signs, exponents, `NaN`, `inf` and words, which Rust's float parser would accept.
pub(crate) fn decimal(s: &str) -> Result<f64, ValueError> {
    let s = trim_ows(s);
    check_decimal(s)?;
    s.parse::<f64>().map_err(|_| ValueError::NotANumber)
}

/// Delta seconds: a decimal (floats tolerated, as some servers send `Retry-After: 1.5`).
pub(crate) fn delta_secs(s: &str) -> Result<Duration, ValueError> {
    fixed(s).map(Fixed::secs)
}

/// Milliseconds (integer or decimal) as a duration.
pub(crate) fn millis(s: &str) -> Result<Duration, ValueError> {
    fixed(s).map(Fixed::millis)
}

/// Caps a duration at [`MAX_SECS`].
pub(crate) fn cap(d: Duration) -> Duration {
    d.min(Duration::from_secs(MAX_SECS))
}

/// A Go `time.Duration` string as OpenAI, Azure OpenAI and Groq send it: `6m0s`, `1.5s`,
/// `12ms`, `2m59.56s`, `1h2m3s`, `0s`. A bare number is read as seconds (some proxies strip
/// the unit). Units: `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`.
pub(crate) fn go_duration(s: &str) -> Result<Duration, ValueError> {
    let s = trim_ows(s);
    check_number_text(s)?;
    if let Ok(secs) = fixed(s) {
        return Ok(secs.secs());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    // Whole numbers of a unit (what OpenAI sends: `6m0s`, `12ms`) add up exactly in
    // integers; only a fraction (`1.5s`) goes through floating point.
    let mut whole_nanos: u128 = 0;
    let mut fraction_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(ValueError::NotADuration)?;
        if num_end == 0 {
            return Err(ValueError::NotADuration);
        }
        let number = &rest[..num_end];
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit: u64 = match &rest[..unit_end] {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return Err(ValueError::NotADuration),
        };
        rest = &rest[unit_end..];
        if number.bytes().all(|b| b.is_ascii_digit()) {
            let n = number.bytes().fold(0u64, |n, b| {
                n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            });
            whole_nanos = whole_nanos.saturating_add(u128::from(n) * u128::from(nanos_per_unit));
        } else {
            let value = decimal(number).map_err(|_| ValueError::NotADuration)?;
            fraction_nanos += value * nanos_per_unit as f64;
        }
    }
    let max_nanos = u128::from(MAX_SECS) * 1_000_000_000;
    let nanos = if fraction_nanos == 0.0 {
        whole_nanos.min(max_nanos)
    } else {
        (whole_nanos as f64 + fraction_nanos)
            .round()
            .min(max_nanos as f64) as u128
    };
    // At most MAX_SECS × 10^9, far below u64::MAX.
    Ok(Duration::from_nanos(
        u64::try_from(nanos).unwrap_or(u64::MAX),
    ))
}

/// An HTTP-date in any of the three RFC 9110 §5.6.7 forms (IMF-fixdate, RFC 850, asctime).
pub(crate) fn http_date(s: &str) -> Result<SystemTime, ValueError> {
    httpdate::parse_http_date(trim_ows(s)).map_err(|_| ValueError::NotADate)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn digits_n(s: &[u8], n: usize) -> Option<(u32, &[u8])> {
    if s.len() < n {
        return None;
    }
    let mut v = 0u32;
    for &b in &s[..n] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some((v, &s[n..]))
}

fn expect(s: &[u8], c: u8) -> Option<&[u8]> {
    match s.first() {
        Some(&b) if b == c => Some(&s[1..]),
        _ => None,
    }
}

/// An RFC 3339 timestamp (`2024-05-01T12:00:30Z`, `2024-05-01T12:00:30.25+02:00`), as
/// Anthropic sends. Also accepts ISO 8601 without seconds (`2024-05-01T12:00Z`, Atlassian),
/// `t`/space as the separator, `z`, `+0200`-style offsets, up to 9 fraction digits.
pub(crate) fn rfc3339(s: &str) -> Result<SystemTime, ValueError> {
    rfc3339_inner(trim_ows(s).as_bytes()).ok_or(ValueError::NotADate)
}

fn rfc3339_inner(s: &[u8]) -> Option<SystemTime> {
    let (year, s) = digits_n(s, 4)?;
    let s = expect(s, b'-')?;
    let (month, s) = digits_n(s, 2)?;
    let s = expect(s, b'-')?;
    let (day, s) = digits_n(s, 2)?;
    let s = match s.first()? {
        b'T' | b't' | b' ' => &s[1..],
        _ => return None,
    };
    let (hour, s) = digits_n(s, 2)?;
    let s = expect(s, b':')?;
    let (minute, mut s) = digits_n(s, 2)?;
    let mut second = 0;
    let mut nanos = 0u32;
    if let Some(rest) = expect(s, b':') {
        let (sec, rest) = digits_n(rest, 2)?;
        second = sec;
        s = rest;
        if let Some(mut rest) = expect(s, b'.').or_else(|| expect(s, b',')) {
            let mut scale = 100_000_000u32;
            let mut any = false;
            while let Some(&b) = rest.first() {
                if !b.is_ascii_digit() {
                    break;
                }
                // Digits past nanoseconds are ignored, but still consumed.
                nanos += u32::from(b - b'0') * scale;
                scale /= 10;
                any = true;
                rest = &rest[1..];
            }
            if !any {
                return None;
            }
            s = rest;
        }
    }
    let offset_secs: i64 = match s {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, rest) = digits_n(rest, 2)?;
            let rest = expect(rest, b':').unwrap_or(rest);
            let (om, rest) = digits_n(rest, 2)?;
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    // A leap second (:60) is read as the next second's start.
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Writes `t` as RFC 3339 in UTC with as many fraction digits as it needs (none, 3, or 9),
/// so that [`rfc3339`] reads back the same instant.
pub(crate) fn write_rfc3339(t: SystemTime, out: &mut impl fmt::Write) -> fmt::Result {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )?;
    let nanos = since.subsec_nanos();
    if nanos == 0 {
    } else if nanos.is_multiple_of(1_000_000) {
        write!(out, ".{:03}", nanos / 1_000_000)?;
    } else {
        write!(out, ".{nanos:09}")?;
    }
    out.write_char('Z')
}

/// Seconds since the epoch of `t` (zero before the epoch).
pub(crate) fn epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A reset value that is either delta seconds, epoch seconds or epoch milliseconds,
/// decided by magnitude against `now` rather than by header name (servers disagree):
/// - below half of `now` in epoch seconds (and below 10^8 s ≈ 3 years in any case) it
///   is a delta: no server states a reset decades away;
/// - below 100 × `now` in epoch seconds it is an epoch in seconds (epoch milliseconds
///   are about 1000 × larger);
/// - anything larger is an epoch in milliseconds.
///
/// Returns the time from `now` to the reset; an instant already past is zero.
pub(crate) fn reset_by_magnitude(x: Fixed, now: SystemTime) -> Duration {
    let now_s = epoch(now).as_secs();
    let delta_below = (now_s / 2).max(100_000_000);
    let epoch_s_below = now_s.saturating_mul(100).max(100_000_000_000);
    if x.whole < delta_below {
        x.secs()
    } else if x.whole < epoch_s_below {
        since_epoch(Duration::new(x.whole, x.nanos), now)
    } else {
        // Epoch milliseconds; beyond year ~5000 it is nonsense, capped.
        let ms = Fixed {
            whole: x.whole.min(epoch_s_below.saturating_mul(1000)),
            nanos: x.nanos,
        };
        let secs = ms.whole / 1000;
        let nanos = (ms.whole % 1000) as u32 * 1_000_000 + ms.nanos / 1000;
        since_epoch(Duration::new(secs, nanos), now)
    }
}

/// Time from `now` until the instant `since` after the epoch. An instant too far away for
/// `SystemTime` (the reference instant itself may be far in the future) is the cap.
fn since_epoch(since: Duration, now: SystemTime) -> Duration {
    UNIX_EPOCH
        .checked_add(since)
        .map_or(Duration::from_secs(MAX_SECS), |t| until(t, now))
}

/// Time from `now` until `t`; zero when `t` is already past. Capped at [`MAX_SECS`].
pub(crate) fn until(t: SystemTime, now: SystemTime) -> Duration {
    cap(t.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reject_signs_words_and_fractions_and_cap_huge_values() {
        assert_eq!(count("42"), Ok(42));
        assert_eq!(count(" 007\t"), Ok(7));
        assert_eq!(count("-1"), Err(ValueError::Negative));
        assert_eq!(count("1.5"), Err(ValueError::NotANumber));
        assert_eq!(count("ten"), Err(ValueError::NotANumber));
        assert_eq!(count(""), Err(ValueError::Empty));
        assert_eq!(count("99999999999999999999"), Ok(MAX_COUNT));
        assert_eq!(count(&"9".repeat(1000)), Ok(MAX_COUNT));
    }

    #[test]
    fn decimals_reject_nan_infinity_exponents_and_negatives() {
        assert_eq!(decimal("1.5"), Ok(1.5));
        assert_eq!(decimal(".5"), Ok(0.5));
        for bad in [
            "NaN", "nan", "inf", "infinity", "-1", "1e3", "+1", "1.2.3", ".", "", "1 2",
        ] {
            assert!(decimal(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn fixed_point_decimals_are_exact() {
        assert_eq!(
            fixed("1700000002.250"),
            Ok(Fixed {
                whole: 1_700_000_002,
                nanos: 250_000_000
            })
        );
        assert_eq!(
            fixed("0.1").map(Fixed::secs),
            Ok(Duration::from_millis(100))
        );
        assert_eq!(fixed("1.0000000019"), Ok(Fixed { whole: 1, nanos: 1 }));
        assert_eq!(
            fixed("1250.5").map(Fixed::millis),
            Ok(Duration::from_micros(1_250_500))
        );
        assert_eq!(
            fixed(&"9".repeat(40)).map(Fixed::secs),
            Ok(Duration::from_secs(MAX_SECS))
        );
    }

    #[test]
    fn go_durations_in_every_form_openai_and_groq_send() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration("6m0s"), Ok(ms(360_000)));
        assert_eq!(go_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(go_duration("12ms"), Ok(ms(12)));
        assert_eq!(go_duration("2m59.56s"), Ok(ms(179_560)));
        assert_eq!(go_duration("1h2m3s"), Ok(ms(3_723_000)));
        assert_eq!(go_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(go_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(go_duration("7"), Ok(ms(7000)));
        for bad in ["", "s", "5x", "-1s", "1.2.3s", "m5", "NaNs", "infs"] {
            assert!(go_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            go_duration("99999999999h"),
            Ok(Duration::from_secs(MAX_SECS))
        );
    }

    #[test]
    fn rfc3339_reads_offsets_fractions_and_minutes_only_forms() {
        let t = |s| rfc3339(s).map(|t| epoch(t).as_millis());
        assert_eq!(t("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(t("2024-05-01T12:00:30Z"), Ok(1_714_564_830_000));
        assert_eq!(t("2024-05-01T14:00:30.25+02:00"), Ok(1_714_564_830_250));
        assert_eq!(t("2024-05-01t12:00z"), Ok(1_714_564_800_000));
        assert_eq!(t("2024-05-01T12:00:30.250-0000"), Ok(1_714_564_830_250));
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-05-01",
            "2024-05-01T25:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
            "garbage",
        ] {
            assert!(rfc3339(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rfc3339_written_reads_back_to_the_same_instant() {
        for nanos in [
            0u64,
            1_714_564_830_000_000_000,
            1_714_564_830_250_000_000,
            1_714_564_830_123_456_789,
        ] {
            let t = UNIX_EPOCH + Duration::from_nanos(nanos);
            let mut s = String::new();
            write_rfc3339(t, &mut s).unwrap();
            assert_eq!(rfc3339(&s), Ok(t), "{s}");
        }
    }

    #[test]
    fn reset_magnitude_tells_deltas_epoch_seconds_and_epoch_millis_apart() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            reset_by_magnitude(fixed("30").unwrap(), now),
            Duration::from_secs(30)
        );
        assert_eq!(
            reset_by_magnitude(fixed("1700000060").unwrap(), now),
            Duration::from_secs(60)
        );
        assert_eq!(
            reset_by_magnitude(fixed("1700000060500").unwrap(), now),
            Duration::from_millis(60_500)
        );
        // A past instant is zero, never negative.
        assert_eq!(
            reset_by_magnitude(fixed("1600000000").unwrap(), now),
            Duration::ZERO
        );
    }
}
