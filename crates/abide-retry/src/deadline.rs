//! The overall deadline of one logical request: config, request extension, `grpc-timeout`.

use http::{HeaderName, HeaderValue};
use std::time::Duration;

/// The header gRPC clients use to tell the server (and us) how long the call may take.
/// A `HeaderName`, not a `&str`: a lookup by string parses the name on every request.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The farthest deadline kept (about ten years); a later one is taken as this, so every
/// timer instant stays far from the end of `Instant`'s range.
pub(crate) const MAX_DEADLINE: Duration = Duration::from_secs(10 * 366 * 86_400);

pub use abide_classify::Deadline;

/// Parses a `grpc-timeout` value: 1 to 8 digits then a unit (`H`, `M`, `S`, `m`, `u`, `n`).
/// Anything else is `None` (and ignored by the caller).
///
/// ```
/// use abide_retry::parse_grpc_timeout;
/// use std::time::Duration;
///
/// assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
/// assert_eq!(parse_grpc_timeout(b"123456789S"), None); // more than 8 digits
/// ```
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Writes a `grpc-timeout` value for `d` in the finest unit that fits in 8 digits, rounded
/// down so the server never believes it has longer than we do.
pub(crate) fn encode_grpc_timeout(d: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = d.as_nanos();
    let units: [(u128, &str); 6] = [
        (1, "n"),
        (1_000, "u"),
        (1_000_000, "m"),
        (1_000_000_000, "S"),
        (60_000_000_000, "M"),
        (3_600_000_000_000, "H"),
    ];
    for (per, unit) in units {
        let n = nanos / per;
        if n <= MAX {
            return HeaderValue::from_str(&format!("{n}{unit}"))
                .unwrap_or_else(|_| HeaderValue::from_static("0n"));
        }
    }
    HeaderValue::from_static("99999999H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_decode_in_every_unit() {
        let cases: &[(&[u8], Option<Duration>)] = &[
            (b"1H", Some(Duration::from_secs(3600))),
            (b"2M", Some(Duration::from_secs(120))),
            (b"3S", Some(Duration::from_secs(3))),
            (b"4m", Some(Duration::from_millis(4))),
            (b"5u", Some(Duration::from_micros(5))),
            (b"6n", Some(Duration::from_nanos(6))),
            (b"99999999H", Some(Duration::from_secs(99_999_999 * 3600))),
            (b"0m", Some(Duration::ZERO)),
            (b"", None),
            (b"S", None),
            (b"1", None),
            (b"1s", None),
            (b"-1S", None),
            (b"1.5S", None),
            (b"123456789m", None),
            (b" 1S", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_grpc_timeout(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn grpc_timeouts_encode_in_the_finest_unit_that_fits() {
        let enc = |d| encode_grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(enc(Duration::from_nanos(15)), "15n");
        assert_eq!(enc(Duration::from_millis(50)), "50000000n");
        assert_eq!(enc(Duration::from_millis(250)), "250000u");
        assert_eq!(enc(Duration::from_secs(2)), "2000000u");
        assert_eq!(enc(Duration::from_secs(100_000)), "100000S");
        assert_eq!(enc(Duration::MAX), "99999999H");
        for d in [1u64, 999, 123_456_789, 10_000_000_000_000] {
            let d = Duration::from_nanos(d);
            let back = parse_grpc_timeout(enc(d).as_bytes()).unwrap();
            assert!(back <= d, "rounded down: {d:?} -> {back:?}");
        }
    }
}
