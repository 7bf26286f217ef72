use super::*;
use crate::dialect::SimDialect;
use crate::limiter::Algorithm;
use crate::model::Outage;
use crate::service::SimServer;
use crate::strategy::test_support::{answer, answer_with_body, refused};
use http::StatusCode;

/// The real server's answer to one request at `t = 0` (after `warm_up` accepted ones).
async fn server_answer(config: ServerConfig, warm_up: usize) -> Answer {
    let server = SimServer::new(config, 1);
    let request = || {
        let mut req = Request::new(SimBody::default());
        *req.method_mut() = http::Method::POST;
        req
    };
    for _ in 0..warm_up {
        server.clone().oneshot(request()).await.unwrap();
    }
    server.oneshot(request()).await
}

fn limited(dialect: SimDialect) -> ServerConfig {
    ServerConfig {
        dialect,
        algorithm: Algorithm::FixedWindow,
        requests_per_window: 1,
        ..ServerConfig::default()
    }
}

const RATE_LIMIT: Verdict = Verdict::Error { rate_limit: true };
const ERROR: Verdict = Verdict::Error { rate_limit: false };

#[tokio::test(start_paused = true)]
async fn the_script_judges_the_simulated_vendors_answers_by_their_json_body() {
    let cases = [
        // Served answers are JSON without an "error" key.
        (
            SimDialect::OpenAi,
            ServerConfig::default(),
            0,
            Verdict::Saved,
        ),
        // OpenAI's and Anthropic's 429 messages say "Rate limit" / "rate limit".
        (
            SimDialect::OpenAi,
            limited(SimDialect::OpenAi),
            1,
            RATE_LIMIT,
        ),
        (
            SimDialect::Anthropic,
            limited(SimDialect::Anthropic),
            1,
            RATE_LIMIT,
        ),
        // A 429 problem document and GitHub's 403 have no "error" key: saved as results.
        (
            SimDialect::Ietf,
            limited(SimDialect::Ietf),
            1,
            Verdict::Saved,
        ),
        (
            SimDialect::GitHub,
            limited(SimDialect::GitHub),
            1,
            Verdict::Saved,
        ),
        // text/plain: aiohttp's ContentTypeError, an error but not a rate-limit error.
        (
            SimDialect::RetryAfterOnly,
            limited(SimDialect::RetryAfterOnly),
            1,
            ERROR,
        ),
        // The exhausted quota's message does not say "rate limit".
        (
            SimDialect::OpenAi,
            ServerConfig {
                quota_requests: 1,
                ..ServerConfig::default()
            },
            1,
            ERROR,
        ),
        // gRPC through a JSON gateway: a google.rpc.Status body, no "error" key.
        (
            SimDialect::Grpc,
            limited(SimDialect::Grpc),
            1,
            Verdict::Saved,
        ),
    ];
    for (dialect, config, warm_up, expected) in cases {
        let config = ServerConfig { dialect, ..config };
        let a = server_answer(config, warm_up).await;
        assert_eq!(verdict(&a), expected, "{dialect}: {a:?}");
    }
    let outage = |status| ServerConfig {
        outages: vec![Outage {
            start: Duration::ZERO,
            duration: Duration::from_secs(1),
            status,
        }],
        ..ServerConfig::default()
    };
    // 503 text/plain, 502 text/html: errors; a 500 with OpenAI's JSON error: an error.
    for status in [502, 503, 500, 529] {
        let a = server_answer(outage(StatusCode::from_u16(status).ok()), 0).await;
        assert_eq!(verdict(&a), ERROR, "{status}");
    }
    assert_eq!(verdict(&server_answer(outage(None), 0).await), ERROR);
}

#[test]
fn aiohttp_reads_json_media_types_as_its_regex_does() {
    for ok in [
        "application/json",
        "application/problem+json",
        "application/vnd.api+json",
        "application/json-seq",
    ] {
        assert!(aiohttp_accepts_json(ok), "{ok}");
    }
    for no in [
        "text/plain",
        "application/grpc",
        "text/json",
        "application/+json",
    ] {
        assert!(!aiohttp_accepts_json(no), "{no}");
    }
    let json = [("content-type", "application/json")];
    assert_eq!(verdict(&answer(200, &json)), ERROR, "an empty body is None");
    assert_eq!(verdict(&answer_with_body(200, &json, "{")), ERROR);
    assert_eq!(verdict(&answer_with_body(200, &json, "7")), ERROR);
    assert_eq!(
        verdict(&answer_with_body(500, &json, "[1]")),
        Verdict::Saved
    );
    assert_eq!(
        verdict(&answer_with_body(200, &json, r#"{"error":"RATE LIMIT"}"#)),
        ERROR,
        "a string error has no .get: an error, no pause"
    );
    assert_eq!(
        verdict(&answer_with_body(
            400,
            &json,
            r#"{"error":{"message":"Rate LIMIT hit"}}"#
        )),
        RATE_LIMIT,
        "any status, any case"
    );
    assert_eq!(verdict(&refused()), ERROR);
}

#[test]
fn the_declared_limits_are_the_true_ones_per_minute() {
    let declared = |window_s: u64, requests: u64, tokens: u64, factor: f64| {
        Declared::new(&ServerConfig {
            window: Duration::from_secs(window_s),
            requests_per_window: requests,
            tokens_per_window: tokens,
            enforce_factor: factor,
            ..ServerConfig::default()
        })
    };
    let d = declared(60, 500, 90_000, 0.8);
    assert_eq!(d.requests_per_minute, Some(400.0));
    assert_eq!(d.tokens_per_minute, Some(72_000.0));
    // 5 per second is 300 per minute; 6000 tokens per hour are 100 per minute.
    assert_eq!(declared(1, 5, 0, 1.0).requests_per_minute, Some(300.0));
    assert_eq!(declared(3600, 0, 6000, 1.0).tokens_per_minute, Some(100.0));
    assert_eq!(declared(3600, 0, 6000, 1.0).requests_per_minute, None);
    // 20 per hour is a third per minute, where the script never sends: 1.
    assert_eq!(declared(3600, 20, 0, 1.0).requests_per_minute, Some(1.0));
}

#[test]
fn capacity_starts_full_and_refills_at_the_rate_over_sixty() {
    let t0 = Instant::now();
    let declared = Declared {
        requests_per_minute: Some(60.0),
        tokens_per_minute: Some(600.0),
    };
    let mut c = Capacity::new(declared, t0);
    assert_eq!(c.fit(600), Fit::Now);
    assert_eq!(c.fit(601), Fit::Never);
    c.take(600);
    // 1 request per second and 10 tokens per second come back.
    assert_eq!(c.fit(50), Fit::After(Duration::from_secs(5)));
    c.update(t0 + Duration::from_secs(2));
    assert_eq!(c.fit(50), Fit::After(Duration::from_secs(3)));
    for _ in 0..59 {
        c.take(0);
    }
    // Refilled to its cap of 60 by t0 + 2 s; 59 more taken leave 1.
    assert_eq!(c.fit(0), Fit::Now);
    c.take(0);
    assert_eq!(c.fit(0), Fit::After(Duration::from_secs(1)));
    c.update(t0 + Duration::from_secs(3600));
    assert_eq!((c.requests, c.tokens), (60.0, 600.0));
    // A float residue short of a whole request waits one loop turn, not zero.
    c.requests = 1.0 - 1e-12;
    assert_eq!(c.fit(0), Fit::After(LOOP_SLEEP));
}
