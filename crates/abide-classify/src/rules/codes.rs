//! Error codes, vendor by vendor, and the verdict each carries.

use crate::{Class, Classification, Processing, QuotaScope};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rank {
    Quota,
    RateLimit,
    Overload,
    Server,
    Auth,
    Client,
}

/// The part of an error code that names it: AWS `__type` values read
/// `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException` and
/// `x-amzn-errortype` values `ThrottlingException:http://internal.amazon.com/...`;
/// problem+json types are URIs whose last segment names the problem.
pub(crate) fn code_of(s: &str) -> &str {
    let s = s.rsplit('#').next().unwrap_or(s);
    let s = if s.starts_with("http://") || s.starts_with("https://") {
        s.trim_end_matches('/').rsplit('/').next().unwrap_or(s)
    } else {
        s.split(':').next().unwrap_or(s)
    };
    s.trim()
}

/// The verdict an error code carries, with its rank.
pub(crate) fn code_verdict(code: &str) -> Option<(Rank, Classification)> {
    let mut buf = [0u8; 64];
    let code = code_of(code);
    if code.len() > buf.len() {
        return None;
    }
    for (i, b) in code.bytes().enumerate() {
        buf[i] = if b == b'-' {
            b'_'
        } else {
            b.to_ascii_lowercase()
        };
    }
    let norm = std::str::from_utf8(&buf[..code.len()]).ok()?;
    let c = |class, reason| Classification::new(class, reason);
    let billing =
        |reason| Classification::new(Class::QuotaExhausted, reason).with_scope(QuotaScope::Billing);
    Some(match norm {
        // OpenAI error codes (platform.openai.com/docs/guides/error-codes): credits,
        // spend and billing limits, all sent as 429.
        "insufficient_quota" => (Rank::Quota, billing("openai: insufficient_quota")),
        "billing_hard_limit_reached"
        | "billing_not_active"
        | "credit_balance_exhausted"
        | "organization_spend_limit_exceeded"
        | "project_spend_limit_exceeded" => {
            (Rank::Quota, billing("openai: billing or spend limit"))
        }
        // Anthropic (docs.anthropic.com/en/api/errors): monthly spend limit, billing.
        "enforced_spend_limit_reached" | "billing_error" => {
            (Rank::Quota, billing("anthropic: spend limit or billing"))
        }
        "out_of_credit" | "out_of_credits" | "insufficient_credits" | "insufficient_funds"
        | "insufficient_balance" | "payment_required" | "credits_exhausted" => {
            (Rank::Quota, billing("body: out of credit"))
        }
        // Google Maps Platform web services: `"status": "OVER_DAILY_LIMIT"` means a
        // missing key, billing not enabled or a self-imposed cap exceeded
        // (developers.google.com/maps/documentation/geocoding/requests-geocoding#StatusCodes).
        "over_daily_limit" => (Rank::Quota, billing("google maps: OVER_DAILY_LIMIT")),
        "servicequotaexceededexception" => (
            Rank::Quota,
            c(Class::QuotaExhausted, "aws: ServiceQuotaExceededException"),
        ),
        // Short-window limits.
        "rate_limit_exceeded"
        | "rate_limit_error"
        | "rate_limit"
        | "rate_limited"
        | "ratelimited"
        | "ratelimitexceeded"
        | "rate_limit_reached"
        | "too_many_requests"
        | "toomanyrequests"
        | "throttled"
        | "429"
        | "resource_exhausted"
        // Google APIs (Drive, Calendar, ...) `errors[].reason` (developers.google.com/drive/api/guides/handle-errors).
        | "userratelimitexceeded"
        // Google Maps `"status": "OVER_QUERY_LIMIT"` in a 200.
        | "over_query_limit"
        // Salesforce `REQUEST_LIMIT_EXCEEDED` (concurrent or 24-hour total, the message says which).
        | "request_limit_exceeded"
        // Microsoft Graph `activityLimitReached` (learn.microsoft.com/graph/errors).
        | "activitylimitreached"
        // Okta `E0000047` (developer.okta.com/docs/reference/error-codes).
        | "e0000047" => (
            Rank::RateLimit,
            c(Class::RateLimited, "body: rate-limit error code"),
        ),
        // AWS SDK throttling codes (aws-sdk-js-v3 service-error-classification constants,
        // smithy-rs aws-runtime retries classifiers).
        "throttling"
        | "throttlingexception"
        | "throttledexception"
        | "requestthrottledexception"
        | "toomanyrequestsexception"
        | "provisionedthroughputexceededexception"
        | "transactioninprogressexception"
        | "requestlimitexceeded"
        | "bandwidthlimitexceeded"
        | "limitexceededexception"
        | "requestthrottled"
        | "slowdown"
        | "priorrequestnotcomplete"
        | "ec2throttledexception"
        // monday.com GraphQL (developer.monday.com/api-reference/docs/rate-limits).
        | "complexityexception"
        | "complexity_budget_exhausted"
        | "rate_limit_exceeded_exception" => (
            Rank::RateLimit,
            c(Class::RateLimited, "aws: throttling error code"),
        ),
        // Google `dailyLimitExceeded` (Daily Limit Exceeded, reset at midnight Pacific) and
        // YouTube Data API `quotaExceeded` (the 10,000-unit daily quota,
        // developers.google.com/youtube/v3/docs/errors).
        "dailylimitexceeded" | "quotaexceeded" => (
            Rank::RateLimit,
            c(Class::RateLimited, "google: daily quota exceeded").with_scope(QuotaScope::Daily),
        ),
        // Dropbox: other writes hold the namespace (developers.dropbox.com/dbx-performance-guide).
        "too_many_write_operations" => (
            Rank::RateLimit,
            c(Class::RateLimited, "dropbox: too_many_write_operations")
                .with_scope(QuotaScope::Concurrency),
        ),
        // Notion 529 `service_overload` (developers.notion.com/reference/request-limits).
        "service_overload" => (Rank::Overload, c(Class::Overloaded, "body: service overload")),
        // A query costing more than any budget allows (Shopify MAX_COST_EXCEEDED).
        "max_cost_exceeded" | "query_too_complex" | "max_complexity_exceeded" => {
            (Rank::Quota, super::fits::never_fits())
        }
        "overloaded_error" | "overloaded" | "engine_overloaded" | "server_overloaded" => {
            (Rank::Overload, c(Class::Overloaded, "body: overloaded"))
        }
        // Stripe: another request holds the object; retry soon, nothing was done.
        // Stripe: another request holds the object (docs.stripe.com/error-codes#lock-timeout,
        // docs.stripe.com/rate-limits "lock contention"): retry soon, serialize writes.
        "lock_timeout" => (
            Rank::RateLimit,
            c(Class::RateLimited, "stripe: lock_timeout, object busy")
                .with_scope(QuotaScope::Concurrency),
        ),
        "modelnotreadyexception" => (
            Rank::Server,
            c(Class::ServerError, "aws: ModelNotReadyException")
                .with_processing(Processing::NotProcessed),
        ),
        "api_error"
        | "server_error"
        | "internal_error"
        | "internalerror"
        | "internalfailure"
        | "internal_server_error"
        | "serviceunavailable"
        | "serviceunavailableexception"
        | "service_unavailable"
        | "unavailable"
        | "internal"
        | "requesttimeout"
        | "requesttimeoutexception"
        | "timeout_error"
        | "deadline_exceeded" => (
            Rank::Server,
            c(Class::ServerError, "body: server error code"),
        ),
        "authentication_error"
        | "permission_error"
        | "invalid_api_key"
        | "unauthenticated"
        | "permission_denied"
        | "unauthorized"
        | "forbidden"
        | "accessdeniedexception"
        | "unrecognizedclientexception"
        | "expiredtokenexception"
        | "invalidsignatureexception" => (Rank::Auth, c(Class::AuthError, "body: auth error code")),
        "context_length_exceeded" => (
            Rank::Client,
            c(Class::ClientError, "openai: context_length_exceeded"),
        ),
        // Stripe card errors (402): another card is needed, not more quota.
        "card_error" | "card_declined" => {
            (Rank::Client, c(Class::ClientError, "stripe: card error"))
        }
        "invalid_request_error"
        | "not_found_error"
        | "request_too_large"
        | "invalid_argument"
        | "validationexception"
        | "not_found"
        | "failed_precondition" => (
            Rank::Client,
            c(Class::ClientError, "body: request error code"),
        ),
        _ => return None,
    })
}

/// The verdict an error code carries, for header-borne codes (`x-amzn-errortype`).
pub(crate) fn header_code_verdict(code: &str) -> Option<Classification> {
    code_verdict(code).map(|(_, c)| c)
}
