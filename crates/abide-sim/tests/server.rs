//! The simulated API seen from outside: what each dialect sends parses back with
//! `abide-headers` and `abide-classify`, the algorithms admit their limit per window,
//! outages and quota exhaustion happen when configured.

use abide_classify::{classify, classify_grpc, Class};
use abide_headers::{RateLimitHeaders, Scope};
use abide_sim::{
    Algorithm, ConnectionRefused, Outage, Outcome, RequestTokens, ServerConfig, SimDialect,
    SimServer,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tower::{BoxError, ServiceExt};

fn server(config: ServerConfig) -> SimServer {
    SimServer::new(config, 1)
}

async fn send(server: &SimServer, tokens: u64) -> Result<Response<Full<Bytes>>, BoxError> {
    let mut req = Request::new(());
    req.extensions_mut().insert(RequestTokens(tokens));
    server.clone().oneshot(req).await
}

async fn body(res: Response<Full<Bytes>>) -> (http::response::Parts, Bytes) {
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

fn limited(dialect: SimDialect) -> ServerConfig {
    ServerConfig {
        dialect,
        algorithm: Algorithm::FixedWindow,
        window: Duration::from_secs(60),
        requests_per_window: 3,
        ..ServerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn every_header_dialect_parses_back_to_the_advertised_limit_and_wait() {
    for dialect in SimDialect::ALL {
        if matches!(dialect, SimDialect::Grpc) {
            continue;
        }
        let s = server(limited(dialect));
        let ok = send(&s, 0).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{dialect}");
        let snapshot = RateLimitHeaders::new().extract_response(&ok);
        match dialect {
            SimDialect::None | SimDialect::RetryAfterOnly => {
                assert!(snapshot.limits().is_empty(), "{dialect}: {snapshot:?}")
            }
            _ => {
                let l = snapshot
                    .limits()
                    .first()
                    .unwrap_or_else(|| panic!("{dialect}: no limit in {:?}", ok.headers()));
                assert_eq!(l.limit, Some(3), "{dialect}");
                assert_eq!(l.remaining, Some(2), "{dialect}");
                // Reset: the window's end, 60 s away (dates and epochs round to seconds).
                let reset = l.reset.unwrap_or_default().as_secs_f64();
                assert!((59.0..=61.0).contains(&reset), "{dialect}: reset {reset}");
            }
        }
        send(&s, 0).await.unwrap();
        send(&s, 0).await.unwrap();
        tokio::time::advance(Duration::from_secs(20)).await;
        let rejected = send(&s, 0).await.unwrap();
        let expected_status = if dialect == SimDialect::GitHub {
            403
        } else {
            429
        };
        assert_eq!(rejected.status().as_u16(), expected_status, "{dialect}");
        assert_eq!(
            rejected.extensions().get::<Outcome>(),
            Some(&Outcome::RateLimited(abide_sim::Scope::Requests))
        );
        let snapshot = RateLimitHeaders::new().extract_response(&rejected);
        let (parts, bytes) = body(rejected).await;
        if dialect == SimDialect::None {
            assert!(snapshot.is_empty(), "{dialect}: {snapshot:?}");
        } else {
            // About 40 s left in the window (the server's own clock is 20.01 s in).
            let wait = snapshot.wait().unwrap_or_default().as_secs_f64();
            assert!((39.0..=41.0).contains(&wait), "{dialect}: wait {wait}");
        }
        let verdict = classify(parts.status, &parts.headers, Some(&bytes), &snapshot);
        assert_eq!(verdict.class, Class::RateLimited, "{dialect}: {verdict:?}");
        assert!(verdict.retryable, "{dialect}");
    }
}

#[tokio::test(start_paused = true)]
async fn openai_and_anthropic_send_millisecond_waits_and_both_scopes() {
    for dialect in [SimDialect::OpenAi, SimDialect::Anthropic] {
        let s = server(ServerConfig {
            dialect,
            window: Duration::from_secs(60),
            requests_per_window: 100,
            tokens_per_window: 1000,
            latency: Duration::ZERO,
            ..ServerConfig::default()
        });
        send(&s, 900).await.unwrap();
        let rejected = send(&s, 200).await.unwrap();
        assert_eq!(rejected.status(), 429);
        // 100 tokens missing at 1000/60 s: 6 s exactly.
        assert_eq!(rejected.headers()["retry-after-ms"], "6000", "{dialect}");
        let snapshot = RateLimitHeaders::new().extract_response(&rejected);
        assert_eq!(
            snapshot.tokens().and_then(|l| l.remaining),
            Some(100),
            "{dialect}"
        );
        assert_eq!(
            snapshot.requests().and_then(|l| l.remaining),
            Some(99),
            "{dialect}"
        );
        let (parts, bytes) = body(rejected).await;
        let verdict = classify(parts.status, &parts.headers, Some(&bytes), &snapshot);
        assert_eq!(verdict.class, Class::RateLimited, "{dialect}");
    }
}

#[tokio::test(start_paused = true)]
async fn quota_exhaustion_reads_as_permanent_in_every_http_dialect() {
    for dialect in SimDialect::ALL {
        if dialect == SimDialect::Grpc {
            continue;
        }
        let s = server(ServerConfig {
            dialect,
            quota_requests: 2,
            ..ServerConfig::default()
        });
        assert_eq!(send(&s, 0).await.unwrap().status(), 200);
        assert_eq!(send(&s, 0).await.unwrap().status(), 200);
        let res = send(&s, 0).await.unwrap();
        assert_eq!(
            res.extensions().get::<Outcome>(),
            Some(&Outcome::QuotaExhausted)
        );
        let snapshot = RateLimitHeaders::new().extract_response(&res);
        let (parts, bytes) = body(res).await;
        let verdict = classify(parts.status, &parts.headers, Some(&bytes), &snapshot);
        assert_eq!(
            verdict.class,
            Class::QuotaExhausted,
            "{dialect}: {verdict:?}"
        );
        assert!(!verdict.retryable, "{dialect}");
    }
}

#[tokio::test(start_paused = true)]
async fn overload_answers_529_with_the_time_until_a_slot_frees() {
    let s = server(ServerConfig {
        dialect: SimDialect::Anthropic,
        max_in_flight: 1,
        latency: Duration::from_secs(2),
        ..ServerConfig::default()
    });
    let s2 = s.clone();
    let first = tokio::spawn(async move { send(&s2, 0).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let res = send(&s, 0).await.unwrap();
    assert_eq!(res.status().as_u16(), 529);
    assert_eq!(res.headers()["retry-after-ms"], "1500");
    let snapshot = RateLimitHeaders::new().extract_response(&res);
    let (parts, bytes) = body(res).await;
    assert!(bytes.starts_with(br#"{"type":"error","error":{"type":"overloaded_error""#));
    let verdict = classify(parts.status, &parts.headers, Some(&bytes), &snapshot);
    assert_eq!(verdict.class, Class::Overloaded);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn grpc_answers_carry_status_and_pushback_in_headers() {
    let s = server(ServerConfig {
        dialect: SimDialect::Grpc,
        window: Duration::from_secs(1),
        requests_per_window: 1,
        quota_requests: 2,
        ..ServerConfig::default()
    });
    let ok = send(&s, 0).await.unwrap();
    assert_eq!(ok.headers()["grpc-status"], "0");
    let limited = send(&s, 0).await.unwrap();
    assert_eq!(limited.status(), 200);
    assert_eq!(limited.headers()["grpc-status"], "8");
    // The first answer took its 200 ms service time: 800 ms left in the bucket's refill.
    assert_eq!(limited.headers()["grpc-retry-pushback-ms"], "800");
    let verdict = classify_grpc(limited.headers());
    assert_eq!(verdict.class, Class::RateLimited, "{verdict:?}");
    assert_eq!(verdict.retry_after, Some(Duration::from_millis(800)));

    tokio::time::advance(Duration::from_secs(1)).await;
    send(&s, 0).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    let exhausted = send(&s, 0).await.unwrap();
    assert_eq!(exhausted.headers()["grpc-status"], "8");
    assert_eq!(exhausted.headers()["grpc-retry-pushback-ms"], "-1");
    let verdict = classify_grpc(exhausted.headers());
    assert!(!verdict.retryable, "{verdict:?}");
}

#[tokio::test(start_paused = true)]
async fn each_algorithm_admits_exactly_its_limit_per_window() {
    for algorithm in [
        Algorithm::TokenBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindow,
    ] {
        let s = server(ServerConfig {
            algorithm,
            window: Duration::from_secs(10),
            requests_per_window: 4,
            ..ServerConfig::default()
        });
        for window in 0..3 {
            let mut served = 0;
            for _ in 0..10 {
                if send(&s, 0).await.unwrap().status() == 200 {
                    served += 1;
                }
            }
            assert_eq!(served, 4, "{algorithm:?} window {window}");
            // The ten answers took 10 ms each; sleep to the next window's start.
            tokio::time::sleep(Duration::from_millis(9_900)).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn outages_refuse_connections_or_answer_their_status_only_while_on() {
    let s = server(ServerConfig {
        outages: vec![
            Outage {
                start: Duration::from_secs(5),
                duration: Duration::from_secs(5),
                status: Some(StatusCode::BAD_GATEWAY),
            },
            Outage {
                start: Duration::from_secs(20),
                duration: Duration::from_secs(5),
                status: None,
            },
        ],
        ..ServerConfig::default()
    });
    assert_eq!(send(&s, 0).await.unwrap().status(), 200);
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(send(&s, 0).await.unwrap().status(), 502);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(send(&s, 0).await.unwrap().status(), 200);
    tokio::time::advance(Duration::from_secs(10)).await;
    let err = send(&s, 0).await.unwrap_err();
    assert!(err.downcast_ref::<ConnectionRefused>().is_some(), "{err}");
    // Its source chain reads as a refused connection: safe to retry whatever the method.
    let verdict = abide_classify::classify_error(err.as_ref());
    assert_eq!(verdict.processing, abide_classify::Processing::NotProcessed);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(send(&s, 0).await.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn request_cost_comes_from_the_extension_or_the_header() {
    let s = server(ServerConfig {
        algorithm: Algorithm::FixedWindow,
        window: Duration::from_secs(60),
        tokens_per_window: 100,
        ..ServerConfig::default()
    });
    let by_header = Request::builder()
        .header("x-sim-tokens", "60")
        .body(())
        .unwrap();
    assert_eq!(s.clone().oneshot(by_header).await.unwrap().status(), 200);
    // 40 left: a 50-token request by extension is refused.
    let res = send(&s, 50).await.unwrap();
    assert_eq!(res.status(), 429);
    let snapshot = RateLimitHeaders::new().extract_response(&res);
    assert_eq!(
        snapshot.get(&Scope::Tokens).and_then(|l| l.remaining),
        Some(40)
    );
}
