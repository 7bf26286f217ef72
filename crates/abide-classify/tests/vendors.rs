//! Vendor knowledge, one table row per rule, each citing the documentation or SDK source
//! it follows. Every row goes through the public `classify` function (headers parsed by
//! `abide-headers`, as `abide inspect` does) and through `QuotaClassifierLayer` over a
//! tower-test mock and over loopback (a hyper 1 server on 127.0.0.1, the hyper-util
//! legacy client), which must agree and deliver the body byte for byte.

mod common;

use abide_classify::{classify, Class, Processing};
use common::{check, Case, JSON};
use http::{HeaderMap, StatusCode};
use std::time::Duration;

#[test]
fn openai_and_azure_openai_errors_are_told_apart() {
    check(&[
        Case {
            rule: "OpenAI insufficient_quota (help.openai.com/en/articles/6891831, error-codes guide)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI insufficient_quota with its rate-limit headers: their resets are the rate limits', not the spent credit's",
            status: 429,
            headers: &[
                JSON,
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "8.64s"),
            ],
            body: Some(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI insufficient_quota with code null (older API responses)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":null}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI billing_hard_limit_reached (error-codes guide)",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Billing hard limit has been reached","type":"invalid_request_error","param":null,"code":"billing_hard_limit_reached"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI project spend limit (error.code under type insufficient_quota)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"You have reached the monthly spend limit for this project.","type":"insufficient_quota","param":null,"code":"project_spend_limit_exceeded"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI TPM rate limit with prose wait 3.89s (rate-limits guide)",
            status: 429,
            headers: &[JSON, ("x-ratelimit-limit-tokens", "30000"), ("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "3.89s")],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbC123 on tokens per min (TPM): Limit 30000, Used 29250, Requested 1500. Please try again in 3.89s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "tokens",
            wait_ms: Some(3890),
        },
        Case {
            rule: "OpenAI RPM rate limit, wait only in the body (20s)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-3.5-turbo in organization org-AbC123 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(20_000),
        },
        Case {
            rule: "OpenAI rate limit with a millisecond wait (644ms)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Rate limit reached for text-embedding-3-small in organization org-AbC123 on tokens per min (TPM): Limit 1000000, Used 999800, Requested 610. Please try again in 644ms. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "tokens",
            wait_ms: Some(644),
        },
        Case {
            // Issue 13 supersedes the old row (quota whatever the wait): OpenAI and Groq
            // replenish daily limits continuously, so a stated short wait beats the words.
            rule: "OpenAI per-day limit (RPD) with a stated 9m38.016s wait is a rate limit (platform.openai.com/docs/guides/rate-limits)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-AbC123 on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 9m38.016s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "daily",
            wait_ms: Some(578_016),
        },
        Case {
            rule: "OpenAI per-day limit (RPD) with 'try again in 8.64s' is a rate limit with that wait",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbC123 on requests per day (RPD): Limit 10000, Used 10000, Requested 1. Please try again in 8.64s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "daily",
            wait_ms: Some(8_640),
        },
        Case {
            rule: "Groq per-day token limit with 'try again in 7m12s' (console.groq.com/docs/rate-limits)",
            status: 429,
            headers: &[JSON, ("retry-after", "432")],
            body: Some(r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99850, Requested 1200. Please try again in 7m12s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "daily",
            wait_ms: Some(432_000),
        },
        Case {
            rule: "A per-day limit with no stated wait anywhere is exhaustion",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-4o on requests per day (RPD): Limit 200, Used 200, Requested 1.","type":"requests","code":"rate_limit_exceeded"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "daily",
            wait_ms: None,
        },
        Case {
            // Issue 13 supersedes the old row (quota exhausted): the account is fine, the
            // request must shrink.
            rule: "OpenAI request too large for the TPM limit can never fit: a client error",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Request too large for gpt-4 in organization org-AbC123 on tokens per min (TPM): Limit 10000, Requested 15000. The input or output tokens must be reduced in order to run successfully. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "tokens",
            wait_ms: None,
        },
        Case {
            rule: "A request larger than the whole limit never fits, even beside 'try again in' and a retry-after",
            status: 429,
            headers: &[JSON, ("retry-after", "9"), ("x-should-retry", "true")],
            body: Some(r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbC123 on tokens per min (TPM): Limit 7000, Used 0, Requested ~12903. Please try again in 8.1s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "tokens",
            wait_ms: None,
        },
        Case {
            rule: "Groq 413 request too large on TPM (console.groq.com/docs/errors)",
            status: 413,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Request too large for model `llama3-70b-8192` in organization `org_01` service tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 7705, please reduce your message size and try again.","type":"tokens","code":"rate_limit_exceeded"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "tokens",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI context_length_exceeded is a request error",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI 503 engine overloaded (error-codes guide)",
            status: 503,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"The engine is currently overloaded, please try again later.","type":"server_error","param":null,"code":null}}"#),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI 500 server_error",
            status: 500,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#),
            class: Class::ServerError,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "x-should-retry: false on a 429 (openai-python/anthropic-sdk _should_retry)",
            status: 429,
            headers: &[JSON, ("x-should-retry", "false")],
            body: Some(r#"{"error":{"message":"Rate limit reached.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "x-should-retry: true makes a 409 retryable",
            status: 409,
            headers: &[("x-should-retry", "true")],
            body: None,
            class: Class::ClientError,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "OpenAI 401 invalid_api_key",
            status: 401,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#),
            class: Class::AuthError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Azure OpenAI token rate limit, 'Please retry after 12 seconds' (learn.microsoft.com Azure OpenAI quota)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-02-01 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 12 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "tokens",
            wait_ms: Some(12_000),
        },
        Case {
            rule: "Azure OpenAI call rate limit with a day-long wait is quota",
            status: 429,
            headers: &[JSON, ("retry-after", "86400")],
            body: Some(r#"{"error":{"code":"429","message":"Requests to the Embeddings_Create Operation under Azure OpenAI API version 2023-05-15 have exceeded call rate limit of your current OpenAI S0 pricing tier. Please retry after 86400 seconds."}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "requests",
            wait_ms: Some(86_400_000),
        },
    ]);
}

#[test]
fn anthropic_errors_are_told_apart() {
    check(&[
        Case {
            rule: "Anthropic 429 rate_limit_error with retry-after (docs.anthropic.com/en/api/errors, rate-limits)",
            status: 429,
            headers: &[JSON, ("retry-after", "7"), ("anthropic-ratelimit-input-tokens-limit", "50000"), ("anthropic-ratelimit-input-tokens-remaining", "0"), ("anthropic-ratelimit-input-tokens-reset", "2023-11-14T22:13:27Z")],
            body: Some(r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (1f0c6d2e) of 50,000 input tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "input_tokens",
            wait_ms: Some(7000),
        },
        Case {
            rule: "Anthropic 529 overloaded_error",
            status: 529,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_01"}"#),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Anthropic credit balance too low (400 invalid_request_error)",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Anthropic monthly spend limit: 429 rate_limit_error with details.error_code enforced_spend_limit_reached",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"rate_limit_error","message":"Your organization has reached its monthly spend limit.","details":{"error_code":"enforced_spend_limit_reached"}}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Anthropic workspace usage limit, 'regain access on' a date",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2025-08-01 at 00:00 UTC."}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Anthropic 402 billing_error",
            status: 402,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"billing_error","message":"There is an issue with your payment method."}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Anthropic 401 authentication_error",
            status: 401,
            headers: &[JSON],
            body: Some(r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#),
            class: Class::AuthError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn google_gemini_vertex_and_cloud_errors_are_told_apart() {
    check(&[
        Case {
            rule: "Gemini per-day quota id in QuotaFailure (ai.google.dev/gemini-api/docs/rate-limits)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.5-flash"},"quotaValue":"250"}]},{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#),
            // Issue 13 supersedes the old row (quota whatever RetryInfo says): a daily cap
            // in the details is exhaustion only with no shorter RetryInfo.
            class: Class::RateLimited,
            retryable: true,
            scope: "daily/GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            wait_ms: Some(22_000),
        },
        Case {
            rule: "Gemini per-day quota id with no RetryInfo is exhaustion",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaValue":"250"}]}]}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "daily/GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            wait_ms: None,
        },
        Case {
            rule: "Cloud API ErrorInfo quota_limit naming a per-day cap, no RetryInfo (cloud.google.com/apis/design/errors)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of service 'translate.googleapis.com'.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_limit":"DefaultRequestsPerDayPerProject","quota_metric":"translate.googleapis.com/default_requests","service":"translate.googleapis.com"}}]}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "daily/DefaultRequestsPerDayPerProject",
            wait_ms: None,
        },
        Case {
            rule: "Gemini per-minute quota id: same message, but a transient limit with RetryInfo",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. Please retry in 38.5s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_paid_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel","quotaDimensions":{"location":"global","model":"gemini-2.5-pro"},"quotaValue":"150"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"38s"}]}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/GenerateRequestsPerMinutePerProjectPerModel",
            wait_ms: Some(38_000),
        },
        Case {
            rule: "Vertex AI per-minute quota, no details (cloud.google.com/vertex-ai quotas, error 429)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model with base model: gemini-pro. Please submit a quota increase request. https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai.","status":"RESOURCE_EXHAUSTED"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "Gemini 503 UNAVAILABLE 'The model is overloaded'",
            status: 503,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#),
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Cloud API ErrorInfo RATE_LIMIT_EXCEEDED with quota_limit metadata (cloud.google.com/apis/design/errors)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'sheets.googleapis.com' for consumer 'project_number:1234'.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com","metadata":{"quota_limit":"ReadRequestsPerMinutePerProject","quota_metric":"sheets.googleapis.com/read_requests","service":"sheets.googleapis.com","consumer":"projects/1234"}}]}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/ReadRequestsPerMinutePerProject",
            wait_ms: None,
        },
        Case {
            rule: "Cloud API ErrorInfo BILLING_DISABLED",
            status: 403,
            headers: &[JSON],
            body: Some(r#"{"error":{"code":403,"message":"This API method requires billing to be enabled.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"BILLING_DISABLED","domain":"googleapis.com","metadata":{"service":"translate.googleapis.com"}}]}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
    ]);
}

#[test]
fn aws_throttling_and_service_quotas_are_told_apart() {
    check(&[
        Case {
            rule: "Bedrock ThrottlingException via x-amzn-errortype (aws-sdk-js-v3 THROTTLING_ERROR_CODES)",
            status: 429,
            headers: &[JSON, ("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")],
            body: Some(r#"{"message":"Too many requests, please wait before trying again."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "DynamoDB ProvisionedThroughputExceededException arrives as a 400 (awsJson1_0 __type)",
            status: 400,
            headers: &[("content-type", "application/x-amz-json-1.0")],
            body: Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "API Gateway TooManyRequestsException",
            status: 429,
            headers: &[JSON, ("x-amzn-errortype", "TooManyRequestsException")],
            body: Some(r#"{"message":"Too Many Requests"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "ServiceQuotaExceededException will not clear by waiting",
            status: 402,
            headers: &[JSON, ("x-amzn-errortype", "ServiceQuotaExceededException")],
            body: Some(r#"{"message":"You have exceeded the maximum number of model customization jobs for this account."}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "S3 503 SlowDown XML body (S3 error responses)",
            status: 503,
            headers: &[("content-type", "application/xml")],
            body: Some(r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
    ]);
}

#[test]
fn github_rate_limits_are_told_from_permission_errors() {
    check(&[
        Case {
            rule: "GitHub primary limit: 403 with x-ratelimit-remaining 0, wait until x-ratelimit-reset (REST 'Rate limits')",
            status: 403,
            headers: &[JSON, ("x-ratelimit-limit", "5000"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-used", "5000"), ("x-ratelimit-reset", "1700000060"), ("x-ratelimit-resource", "core")],
            body: Some(r#"{"message":"API rate limit exceeded for user ID 1234.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/core",
            wait_ms: Some(60_000),
        },
        Case {
            rule: "GitHub secondary limit with retry-after",
            status: 429,
            headers: &[JSON, ("retry-after", "30")],
            body: Some(r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ABCD:1234.","documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "GitHub secondary limit without headers: wait at least one minute",
            status: 403,
            headers: &[JSON],
            body: Some(r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(60_000),
        },
        Case {
            rule: "GitHub 403 without rate-limit signs is permissions",
            status: 403,
            headers: &[JSON, ("x-ratelimit-remaining", "4999")],
            body: Some(r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/repos/repos#create-a-repository"}"#),
            class: Class::AuthError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "GitHub GraphQL RATE_LIMITED in a 200 (GraphQL API rate limits)",
            status: 200,
            headers: &[JSON, ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000120"), ("x-ratelimit-resource", "graphql")],
            body: Some(r#"{"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded for user ID 1234."}]}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "unspecified/graphql",
            wait_ms: Some(120_000),
        },
        Case {
            rule: "A GraphQL 200 with an unrelated error stays a success",
            status: 200,
            headers: &[JSON],
            body: Some(r#"{"data":null,"errors":[{"type":"NOT_FOUND","message":"Could not resolve to a Repository."}]}"#),
            class: Class::Success,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn stripe_honeycomb_problem_json_and_tracking_apis_are_classified() {
    check(&[
        Case {
            rule: "Stripe 429 rate_limit (docs.stripe.com/rate-limits)",
            status: 429,
            headers: &[JSON, ("stripe-should-retry", "true")],
            body: Some(r#"{"error":{"code":"rate_limit","doc_url":"https://stripe.com/docs/error-codes/rate-limit","message":"Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.","type":"invalid_request_error"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            // Issue 13 supersedes the old row (server error): contention on one object is
            // a rate limit on concurrency (docs.stripe.com/rate-limits, "Lock contention").
            rule: "Stripe lock_timeout: retry soon, serialize writes (docs.stripe.com/error-codes/lock-timeout)",
            status: 429,
            headers: &[JSON, ("stripe-should-retry", "true")],
            body: Some(r#"{"error":{"code":"lock_timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.","type":"invalid_request_error"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "concurrency",
            wait_ms: None,
        },
        Case {
            rule: "Stripe-Should-Retry: false overrides a 500",
            status: 500,
            headers: &[JSON, ("stripe-should-retry", "false")],
            body: Some(r#"{"error":{"message":"An unknown error occurred","type":"api_error"}}"#),
            class: Class::ServerError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Stripe 402 card_error is a request error, not exhausted quota (docs.stripe.com/error-codes)",
            status: 402,
            headers: &[JSON],
            body: Some(r#"{"error":{"charge":"ch_1","code":"card_declined","decline_code":"insufficient_funds","doc_url":"https://stripe.com/docs/error-codes/card-declined","message":"Your card has insufficient funds.","type":"card_error"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "A billing word in an unrelated 400 stays a request error",
            status: 400,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Invalid billing address: postal code is required.","type":"invalid_request_error","param":"billing_details[address][postal_code]"}}"#),
            class: Class::ClientError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "Honeycomb v1 problem+json rate-limited with IETF RateLimit header (docs.honeycomb.io/api/rate-limit)",
            status: 429,
            headers: &[("content-type", "application/problem+json"), ("ratelimit", "limit=100, remaining=0, reset=54"), ("ratelimit-policy", "100;w=60")],
            body: Some(r#"{"status":429,"type":"https://api.honeycomb.io/problems/rate-limited","title":"You have exceeded your rate limit.","error":"You have exceeded your rate limit.","detail":"You have exceeded your rate limit."}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(54_000),
        },
        Case {
            rule: "JSON:API errors array with a prose wait (Honeycomb v2 shape)",
            status: 429,
            headers: &[("content-type", "application/vnd.api+json")],
            body: Some(r#"{"errors":[{"id":"7a1b","status":"429","code":"rate_limited","title":"Too Many Requests","detail":"Rate limit exceeded. Retry after 30 seconds."}]}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(30_000),
        },
        Case {
            rule: "RFC 9457 section 3 out-of-credit example",
            status: 403,
            headers: &[("content-type", "application/problem+json")],
            body: Some(r#"{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.","detail":"Your current balance is 30, but that costs 50.","instance":"/account/12345/msgs/abc","balance":30,"accounts":["/account/12345","/account/67890"]}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "W&B Inference 429 concurrency limit (docs.wandb.ai support: error 429)",
            status: 429,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"Concurrency limit reached for requests","type":"rate_limit_exceeded"}}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "concurrency",
            wait_ms: None,
        },
        Case {
            rule: "W&B Inference 402 'You exceeded your current quota'",
            status: 402,
            headers: &[JSON],
            body: Some(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details"}}"#),
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "Comet-style 429 with a numeric code and msg",
            status: 429,
            headers: &[JSON, ("retry-after", "15")],
            body: Some(r#"{"code":429,"msg":"Too many requests, rate limit exceeded"}"#),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: Some(15_000),
        },
    ]);
}

#[test]
fn generic_fallback_by_status_code() {
    check(&[
        Case {
            rule: "200",
            status: 200,
            headers: &[],
            body: None,
            class: Class::Success,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "429 plain text",
            status: 429,
            headers: &[("content-type", "text/plain")],
            body: Some("Too Many Requests"),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "429 with Retry-After of two hours is quota",
            status: 429,
            headers: &[("retry-after", "7200")],
            body: None,
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "unspecified",
            wait_ms: Some(7_200_000),
        },
        Case {
            rule: "503 with Retry-After",
            status: 503,
            headers: &[("retry-after", "120")],
            body: None,
            class: Class::ServerError,
            retryable: true,
            scope: "unspecified",
            wait_ms: Some(120_000),
        },
        Case {
            // draft-ietf-httpapi-ratelimit-headers §3/§4: the RateLimit item whose `r=0`
            // names the exhausted policy; the message only says what it counts.
            rule: "IETF 429 names the exhausted policy: its name is the bucket, the kind requests (the drafts' default unit)",
            status: 429,
            headers: &[
                (
                    "ratelimit-policy",
                    "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
                ),
                ("ratelimit", "\"burst\";r=0;t=12, \"daily\";r=600;t=50000"),
                ("retry-after", "12"),
                ("content-type", "text/plain"),
            ],
            body: Some("Too many requests: the burst policy allows 100 requests per minute."),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests/burst",
            wait_ms: Some(12_000),
        },
        Case {
            rule: "OpenAI-style 429 without named policies keeps the scope its body states",
            status: 429,
            headers: &[
                ("x-ratelimit-remaining-requests", "0"),
                ("content-type", "application/json"),
            ],
            body: Some(
                r#"{"error":{"message":"Rate limit reached for requests per min (RPM): Limit 500, Used 500","type":"requests","code":"rate_limit_exceeded"}}"#,
            ),
            class: Class::RateLimited,
            retryable: true,
            scope: "requests",
            wait_ms: None,
        },
        Case {
            rule: "500 HTML page",
            status: 500,
            headers: &[("content-type", "text/html")],
            body: Some("<html><body>Internal Server Error</body></html>"),
            class: Class::ServerError,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "408 Request Timeout is retryable",
            status: 408,
            headers: &[],
            body: None,
            class: Class::ClientError,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "404",
            status: 404,
            headers: &[],
            body: None,
            class: Class::ClientError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "401",
            status: 401,
            headers: &[],
            body: None,
            class: Class::AuthError,
            retryable: false,
            scope: "unspecified",
            wait_ms: None,
        },
        Case {
            rule: "402",
            status: 402,
            headers: &[],
            body: None,
            class: Class::QuotaExhausted,
            retryable: false,
            scope: "billing",
            wait_ms: None,
        },
        Case {
            rule: "529",
            status: 529,
            headers: &[],
            body: None,
            class: Class::Overloaded,
            retryable: true,
            scope: "unspecified",
            wait_ms: None,
        },
    ]);
}

#[test]
fn refusals_are_not_processed_and_5xx_are_ambiguous() {
    let snapshot = abide_headers::RateLimitSnapshot::new();
    let h = HeaderMap::new();
    let p = |s: u16| classify(StatusCode::from_u16(s).unwrap(), &h, None, &snapshot).processing;
    assert_eq!(p(429), Processing::NotProcessed);
    assert_eq!(p(529), Processing::NotProcessed);
    assert_eq!(p(503), Processing::NotProcessed);
    assert_eq!(p(500), Processing::Ambiguous);
    assert_eq!(p(504), Processing::Ambiguous);
    assert_eq!(p(502), Processing::Ambiguous);
    assert_eq!(p(408), Processing::Ambiguous);
    assert_eq!(p(200), Processing::Processed);
    let with_wait =
        abide_headers::RateLimitSnapshot::new().with_retry_after(Duration::from_secs(5));
    assert_eq!(
        classify(StatusCode::SERVICE_UNAVAILABLE, &h, None, &with_wait).processing,
        Processing::NotProcessed
    );
}

/// RFC 9110 §15.6.4: "The 503 (Service Unavailable) status code indicates that the server
/// is currently unable to handle the request due to a temporary overload or scheduled
/// maintenance". The request was not handled, so any method may be retried, with or
/// without a Retry-After and whatever generic error the body names; Anthropic's 529
/// `overloaded_error` likewise. 500, 502 and 504 say nothing about it: ambiguous.
#[test]
fn a_503_is_a_refusal_without_processing_whatever_its_body_rfc_9110_15_6_4() {
    let snapshot = abide_headers::RateLimitSnapshot::new();
    let h = HeaderMap::new();
    let p = |status: u16, body: Option<&str>| {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &h,
            body.map(str::as_bytes),
            &snapshot,
        )
    };
    let openai_server_error = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
    let envoy = "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
    for body in [None, Some(openai_server_error), Some(envoy)] {
        let c = p(503, body);
        assert_eq!(c.class, Class::ServerError, "{body:?}");
        assert!(c.retryable, "{body:?}");
        assert_eq!(c.processing, Processing::NotProcessed, "503 {body:?}");
    }
    let anthropic =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let c = p(529, Some(anthropic));
    assert_eq!(
        (c.class, c.processing),
        (Class::Overloaded, Processing::NotProcessed)
    );
    for status in [500, 502, 504] {
        assert_eq!(
            p(status, Some(openai_server_error)).processing,
            Processing::Ambiguous,
            "{status}"
        );
    }
    // A 503 whose body says the quota is gone is still quota exhaustion, never retried.
    let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
    assert_eq!(p(503, Some(quota)).class, Class::QuotaExhausted);
}

#[test]
fn malformed_truncated_huge_and_binary_bodies_get_a_verdict() {
    let snapshot = abide_headers::RateLimitSnapshot::new();
    let h = HeaderMap::new();
    let c = |status: u16, body: &[u8]| {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &h,
            Some(body),
            &snapshot,
        )
    };

    // Truncated mid-JSON: the code still shows.
    let truncated = br#"{"error":{"message":"You exceeded your current quota, please check","type":"insufficient_quota","code":"insuff"#;
    assert_eq!(c(429, truncated).class, Class::QuotaExhausted);
    // Not UTF-8 at all.
    assert_eq!(
        c(429, &[0xff, 0xfe, 0x00, 0x80, 0xc3]).class,
        Class::RateLimited
    );
    assert_eq!(c(503, &[0xff; 1000]).class, Class::ServerError);
    // Deeply nested JSON does not overflow the stack.
    let deep = "[".repeat(100_000);
    assert_eq!(c(500, deep.as_bytes()).class, Class::ServerError);
    // A huge body with the verdict near the start.
    let mut huge =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}, "pad":""#
            .to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 << 20));
    assert_eq!(c(529, &huge).class, Class::Overloaded);
    // JSON of the wrong shape.
    for odd in [
        &b"null"[..],
        b"42",
        b"\"rate limit\"",
        b"{\"error\": 5}",
        b"{\"errors\": {}}",
        b"",
    ] {
        let v = c(429, odd);
        assert_eq!(
            v.class,
            Class::RateLimited,
            "{:?}",
            String::from_utf8_lossy(odd)
        );
    }
}
