//! Issue 13's corrections, one table row per rule: requests that can never fit, stated
//! short waits that beat words, capacity words, lock contention, GraphQL cost models.

mod common;

use abide_classify::Class;
use common::{check, Case, JSON};

#[test]
fn capacity_words_mean_overload_whatever_the_status() {
    check(&[
        Case {
            rule: "Capacity words on a 429 rate-limit code are overload (Mistral 'high demand')",
            status: 429,
            headers: &[JSON],
            body: Some(
                r#"{"object":"error","message":"Service tier capacity exceeded for this model: the model is experiencing high demand. Please retry later.","type":"rate_limit_exceeded","code":"3505"}"#,
            ),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Capacity words on a 500 are overload",
            status: 500,
            headers: &[JSON],
            body: Some(
                r#"{"error":{"message":"We are at capacity right now. Please try again in 30 seconds.","type":"server_error"}}"#,
            ),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "Peak load on a 503 plain text",
            status: 503,
            headers: &[("content-type", "text/plain")],
            body: Some("Our servers are under peak load; retry in 2 minutes."),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(120_000),
        },
        Case {
            rule: "OpenAI 429 'engine is currently overloaded' (error-codes guide)",
            status: 429,
            headers: &[JSON],
            body: Some(
                r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"requests","param":null,"code":null}}"#,
            ),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn graphql_cost_models_state_the_wait() {
    check(&[
        Case {
            rule: "Shopify THROTTLED: wait (requestedQueryCost - currentlyAvailable) / restoreRate (shopify.dev/docs/api/usage/rate-limits)",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":752,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":152,"restoreRate":100.0}}}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(6_000),
        },
        Case {
            rule: "Shopify query costing more than the bucket holds can never run",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"errors":[{"message":"Query cost is 2450, which exceeds the single query max cost limit (1000).","extensions":{"code":"MAX_COST_EXCEEDED","cost":2450,"maxCost":1000}}],"extensions":{"cost":{"requestedQueryCost":2450,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":1000,"restoreRate":50.0}}}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "tokens",
            wait_ms: None,
        },
        Case {
            rule: "Shopify success with a cost report stays a success",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"data":{"shop":{"name":"x"}},"extensions":{"cost":{"requestedQueryCost":1,"actualQueryCost":1,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":999,"restoreRate":50.0}}}}"#),
            class: Class::Success,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "A malformed cost model is ignored field by field: the throttle stands without a wait",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}],"extensions":{"cost":{"requestedQueryCost":"lots","throttleStatus":{"maximumAvailable":"x","currentlyAvailable":null,"restoreRate":0}}}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn the_scope_is_the_kind_of_limit_and_the_bucket_its_name() {
    check(&[
        Case {
            rule: "Discord bucket: kind requests, bucket the X-RateLimit-Bucket id (discord.com/developers/docs/topics/rate-limits)",
            status: 429,
            headers: &[
                JSON,
                ("x-ratelimit-limit", "5"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "64.57"),
                ("x-ratelimit-bucket", "abcd1234"),
                ("x-ratelimit-scope", "user"),
            ],
            body: Some(r#"{"message":"You are being rate limited.","retry_after":64.57,"global":false}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/abcd1234",
            wait_ms: Some(64_570),
        },
        Case {
            rule: "GitHub search resource names the bucket (docs.github.com REST rate limits, x-ratelimit-resource)",
            status: 403,
            headers: &[JSON, ("x-ratelimit-limit", "30"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000030"), ("x-ratelimit-resource", "search")],
            body: Some(r#"{"message":"API rate limit exceeded for user ID 1."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/search",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "'rate exceeded' means requests (AWS 'Rate exceeded')",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "Output token words mean output tokens (Anthropic OTPM)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 8,000 output tokens per minute."}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "output_tokens",
            wait_ms: None,
        },
        Case {
            rule: "IETF qu=\"concurrent-requests\" policy: kind concurrency, bucket the policy name",
            status: 429,
            headers: &[("ratelimit-policy", "\"inflight\";q=10;qu=\"concurrent-requests\""), ("ratelimit", "\"inflight\";r=0;t=1")],
            body: None,
            class: Class::RateLimited,
            retryable: true,
            scope: "concurrency/inflight",
            wait_ms: Some(1_000),
        },
        Case {
            rule: "No kind stated, no name: unspecified, no bucket",
            status: 429,
            headers: &[],
            body: None,
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn new_header_formats_reach_the_verdict() {
    check(&[
        Case {
            rule: "IETF draft-12 RateLimit a=0;w=12 names the bucket and the wait (ietf-wg-httpapi/ratelimit-headers PR #166)",
            status: 429,
            headers: &[("ratelimit-policy", "burst;q=100;w=60"), ("ratelimit", "burst;a=0;w=12;c=1")],
            body: None,
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/burst",
            wait_ms: Some(12_000),
        },
        Case {
            rule: "Kong per-window headers: the exhausted minute window (docs.konghq.com rate-limiting plugin)",
            status: 429,
            headers: &[("x-ratelimit-limit-minute", "100"), ("x-ratelimit-remaining-minute", "0"), ("x-ratelimit-limit-hour", "1000"), ("x-ratelimit-remaining-hour", "900"), ("retry-after", "17")],
            body: Some(r#"{"message":"API rate limit exceeded"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(17_000),
        },
        Case {
            rule: "X-RateLimit-Reset-Ms gives the wait in milliseconds",
            status: 429,
            headers: &[("x-ratelimit-limit", "10"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-ms", "1500")],
            body: None,
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(1_500),
        },
        Case {
            rule: "An sf-integer over 15 digits is dropped: the limit is not exhausted by a clamp",
            status: 429,
            headers: &[("ratelimit-limit", "1000000000000000000"), ("ratelimit-remaining", "0;w=60"), ("ratelimit-reset", "5")],
            body: None,
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(5_000),
        },
    ]);
}
