//! `RateLimitHeaders::extract` against the `rate-limits` crate on headers both read.
//!
//! Each case is a realistic response head: the rate-limit fields plus the ordinary fields
//! every response carries (both libraries have to look past them).
//!
//! Run: `cargo bench --bench headers -- --quick`

use abide::headers::RateLimitHeaders;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

const NOW: u64 = 1_700_000_000;

fn response(rate_limit_fields: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let ordinary = [
        ("date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("content-type", "application/json; charset=utf-8"),
        ("content-length", "1432"),
        ("server", "nginx"),
        ("cache-control", "no-cache"),
        ("vary", "Accept-Encoding"),
        ("x-request-id", "7c1f3d2a-9b4e-4f4e-8d2a-0c9e3b1a5f6d"),
        ("strict-transport-security", "max-age=31536000"),
    ];
    for (k, v) in ordinary {
        map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    for (k, v) in rate_limit_fields {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn cases() -> Vec<(&'static str, HeaderMap)> {
    let reset = (NOW + 600).to_string();
    vec![
        (
            "x-ratelimit",
            response(&[
                ("x-ratelimit-limit", "60".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset.clone()),
            ]),
        ),
        (
            "ietf-draft03",
            response(&[
                ("ratelimit-limit", "100".into()),
                ("ratelimit-remaining", "0".into()),
                ("ratelimit-reset", "30".into()),
            ]),
        ),
        (
            "github",
            response(&[
                ("x-ratelimit-limit", "5000".into()),
                ("x-ratelimit-remaining", "4987".into()),
                ("x-ratelimit-used", "13".into()),
                ("x-ratelimit-reset", reset),
                ("x-ratelimit-resource", "core".into()),
            ]),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let abide = RateLimitHeaders::new().with_now(now);
    for (name, headers) in cases() {
        // Both must understand the case, or the comparison means nothing.
        let ours = abide.extract(&headers);
        assert_eq!(ours.limits().len(), 1, "{name}: {ours:?}");
        let theirs = rate_limits::RateLimit::new(&headers);
        assert!(theirs.is_ok(), "{name}: rate-limits failed: {theirs:?}");
        assert_eq!(
            theirs.unwrap().limit(),
            ours.limits()[0].limit.map(|l| l as usize)
        );

        let mut group = c.benchmark_group(name);
        group.bench_function("abide", |b| b.iter(|| abide.extract(black_box(&headers))));
        group.bench_function("rate-limits", |b| {
            b.iter(|| rate_limits::RateLimit::new(black_box(&headers)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
