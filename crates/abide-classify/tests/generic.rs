//! The generic reading, for vendors no rule names: words and shapes, not names. The
//! vendors here are invented (Zorblax, Quuxly, Fnord, ...) or are real ones with no rule of
//! their own (Elasticsearch, Binance, DeepSeek), so the rows test the reading, not a list.

mod common;

use abide_classify::Class;
use common::{check, Case, JSON};

/// The instant of `common::NOW` as the `Date` header states it: body instants and epochs
/// are measured from it.
const DATE: (&str, &str) = ("date", "Tue, 14 Nov 2023 22:13:20 GMT");

#[test]
fn a_200_whose_body_says_it_was_rate_limited_is_not_a_success() {
    check(&[
        Case {
            rule: "Zorblax: 200 with status error and a rate-limit message",
            status: 200,
            headers: &[JSON],
            body: Some(
                r#"{"status":"error","message":"Rate limit exceeded, retry in 30 seconds"}"#,
            ),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "Quuxly: 200 with ok false and error 'ratelimited'",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"ok":false,"error":"ratelimited"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "GraphQL errors with a throttling code in extensions (Linear RATELIMITED shape)",
            status: 200,
            headers: &[JSON],
            body: Some(
                r#"{"data":null,"errors":[{"message":"Too many requests","extensions":{"code":"RATELIMITED"}}]}"#,
            ),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "GraphQL complexity budget with a reset (monday.com ComplexityException shape)",
            status: 200,
            headers: &[JSON],
            body: Some(
                r#"{"errors":[{"message":"Complexity budget exhausted, query cost 30001 budget remaining 29999 out of 1000000 reset in 50 seconds","extensions":{"code":"ComplexityException"}}]}"#,
            ),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(50_000),
        },
        Case {
            rule: "A success payload that talks about rate limits stays a success",
            status: 200,
            headers: &[JSON],
            body: Some(
                r#"{"title":"Rate limit reached: how to handle 429s","message":"Too many requests? Slow down.","items":[]}"#,
            ),
            class: Class::Success,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "A 200 with success true stays a success",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"success":true,"message":"daily quota report ready","retry_after":5}"#),
            class: Class::Success,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn a_403_is_a_rate_limit_when_it_speaks_of_limits_and_auth_when_of_permissions() {
    check(&[
        Case {
            rule: "Fnord: 403 'Request limit exceeded ... Try again in 2 minutes'",
            status: 403,
            headers: &[JSON],
            body: Some(
                r#"{"error":"Request limit exceeded for this API key. Try again in 2 minutes."}"#,
            ),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(120_000),
        },
        Case {
            rule: "Fnord: 403 with rate-limit headers saying nothing remains",
            status: 403,
            headers: &[
                JSON,
                ("x-ratelimit-limit", "60"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "30"),
            ],
            body: Some(r#"{"message":"Forbidden"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "Fnord: 403 that speaks of permissions is auth",
            status: 403,
            headers: &[JSON],
            body: Some(
                r#"{"error":{"message":"You do not have permission to access this resource."}}"#,
            ),
            class: Class::AuthError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn credit_balance_and_billing_words_mean_exhaustion_whatever_the_status() {
    check(&[
        Case {
            rule: "DeepSeek 402 'Insufficient Balance' (api-docs.deepseek.com/quick_start/error_codes)",
            status: 402,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Wibble: 403 'run out of credits'",
            status: 403,
            headers: &[JSON],
            body: Some(r#"{"message":"Your account has run out of credits. Top up your balance to continue."}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Wibble: 429 'credit balance is too low' even with a retry-after",
            status: 429,
            headers: &[JSON, ("retry-after", "5")],
            body: Some(r#"{"detail":"Your credit balance is too low to run this job."}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: Some(5_000),
        },
    ]);
}

#[test]
fn queue_full_and_rejected_execution_on_a_429_or_503_are_overload() {
    check(&[
        Case {
            rule: "Elasticsearch 429 es_rejected_execution_exception (elastic.co docs, 'Rejected requests')",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"root_cause":[{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation [shard_detail=...]"}],"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"},"status":429}"#),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Blorp: 503 plain text 'Server busy'",
            status: 503,
            headers: &[("content-type", "text/plain"), ("retry-after", "3")],
            body: Some("Server busy, please retry later."),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(3_000),
        },
        Case {
            rule: "Blorp: 429 'request queue is full'",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":"The request queue is full; too many requests in flight."}"#),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Queue words on a 400 are not overload",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Invalid queue name: queue is full of typos","type":"invalid_request_error"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn a_wait_stated_anywhere_in_the_body_in_any_unit_is_the_wait() {
    check(&[
        Case {
            rule: "Discord body retry_after in seconds, no headers (discord.com/developers/docs/topics/rate-limits)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(64_570),
        },
        Case {
            rule: "Zorblax: retryAfterMs in milliseconds",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":"slow down","retryAfterMs":2500}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(2_500),
        },
        Case {
            rule: "Quuxly: an ISO instant in error details",
            status: 429,
            headers: &[JSON, DATE],
            body: Some(r#"{"error":{"message":"Too many requests","details":{"retry_at":"2023-11-14T22:14:50Z"}}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(90_000),
        },
        Case {
            rule: "Binance 418 IP ban until an epoch in ms (developers.binance.com spot API 'LIMITS')",
            status: 418,
            headers: &[JSON, DATE],
            body: Some(r#"{"code":-1003,"msg":"Way too much request weight used; IP banned until 1700000060000. Please use WebSocket Streams for live updates to avoid bans."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(60_000),
        },
        Case {
            rule: "Fnord: 'please retry after 1500 ms' in prose",
            status: 429,
            headers: &[("content-type", "text/plain")],
            body: Some("Throttled: please retry after 1500 ms"),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(1_500),
        },
        Case {
            rule: "OpenRouter-style metadata.headers with an epoch-ms X-RateLimit-Reset",
            status: 429,
            headers: &[JSON, DATE],
            body: Some(r#"{"error":{"message":"Rate limit exceeded: free-models-per-min.","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1700000042000"}}}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(42_000),
        },
        Case {
            rule: "Malformed wait fields are ignored one by one",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":"slow down","retry_after":"soon","retryAfterMs":-4,"reset_at":"yesterday"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn a_daily_or_monthly_limit_by_name_with_no_shorter_wait_is_exhaustion() {
    check(&[
        Case {
            rule: "Wibble: 'Monthly request quota exceeded', no wait",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":"Monthly request quota exceeded for your plan."}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "daily",
            wait_ms: None,
        },
        Case {
            rule: "Wibble: 'Daily limit reached. Try again in 45 seconds.' is a rate limit",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":"Daily limit reached. Try again in 45 seconds."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "daily",
            wait_ms: Some(45_000),
        },
        Case {
            rule: "Wibble: a daily limit with a 10-hour Retry-After is exhaustion",
            status: 429,
            headers: &[JSON, ("retry-after", "36000")],
            body: Some(r#"{"error":"Daily limit reached."}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "daily",
            wait_ms: Some(36_000_000),
        },
        Case {
            rule: "Calendar words without a limit word are not a daily limit",
            status: 500,
            headers: &[JSON],
            body: Some(r#"{"error":"The daily report job crashed"}"#),
            class: Class::ServerError,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

/// The layer peeks 2xx bodies only when asked: GraphQL paths with `with_graphql`, any
/// JSON with `with_success_peek` (Google Maps answers `OVER_QUERY_LIMIT` in a 200 at
/// `/maps/api/geocode/json`).
#[tokio::test]
async fn the_layer_reads_2xx_json_for_failures_when_asked_and_delivers_the_body() {
    use abide_classify::{Classification, QuotaClassifierLayer};
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, Service, ServiceExt};
    use tower_test::mock;

    const BODY: &str = r#"{"results":[],"status":"OVER_QUERY_LIMIT","error_message":"You have exceeded your rate-limit for this API."}"#;
    async fn verdict(layer: QuotaClassifierLayer) -> (Classification, Bytes) {
        let (mock, mut handle) = mock::pair::<Request<()>, Response<Full<Bytes>>>();
        let mut svc = layer.layer(mock);
        let served = tokio::spawn(async move {
            let (_req, send) = handle.next_request().await.unwrap();
            let mut res = Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
            res.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            send.send_response(res);
        });
        let req = Request::get("https://maps.googleapis.com/maps/api/geocode/json")
            .body(())
            .unwrap();
        let res = svc.ready().await.unwrap().call(req).await.unwrap();
        served.await.unwrap();
        let c = res.extensions().get::<Classification>().unwrap().clone();
        (c, res.into_body().collect().await.unwrap().to_bytes())
    }
    let (plain, body) = verdict(QuotaClassifierLayer::new()).await;
    assert_eq!(
        plain.class,
        Class::Success,
        "no peek of successes by default"
    );
    assert_eq!(body, BODY.as_bytes());
    let (peeked, body) = verdict(QuotaClassifierLayer::new().with_success_peek(true)).await;
    assert_eq!(peeked.class, Class::RateLimited);
    assert_eq!(body, BODY.as_bytes(), "the body reaches the caller whole");
}
