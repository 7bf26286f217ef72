//! Error bodies: JSON shapes of OpenAI, Azure OpenAI, Anthropic, Google, AWS, GitHub,
//! Stripe, RFC 9457 problem+json, JSON:API and GraphQL; XML (AWS S3/query protocols) and
//! plain text by phrase.

use super::cost::{self, CostFinding};
use super::fits;
use super::google::DetailHints;
use super::prose;
use super::text::{contains, contains_any, find};
use crate::{Class, Classification, Processing, QuotaScope};
use serde_json::Value;
use std::time::Duration;

/// What a body said: a verdict and/or a wait.
#[derive(Debug, Default)]
pub(crate) struct BodyFinding {
    pub(crate) verdict: Option<Classification>,
    pub(crate) wait: Option<Duration>,
    /// The verdict is about the request itself (it can never fit) and stands whatever
    /// the status says.
    pub(crate) definite: bool,
}

/// Most error objects looked at in a JSON `errors` array.
const MAX_ERRORS: usize = 8;

/// Reads a body prefix. `success` restricts the verdicts to throttling ones (a GraphQL
/// 200 whose `errors` say `RATE_LIMITED`).
pub(crate) fn classify_body(body: &[u8], success: bool) -> BodyFinding {
    let mut fields = Fields::default();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => fields.root(&v),
        Err(_) => {
            // Truncated or not JSON: XML `<Code>`, then the raw text.
            if let Some(code) = xml_code(body) {
                fields.codes.push(code.to_owned());
            }
            // A JSON body cut by the peek limit still names its code early on.
            for code in TEXT_CODES {
                if contains(body, code) {
                    fields.codes.push((*code).to_owned());
                }
            }
            fields
                .texts
                .push(String::from_utf8_lossy(body).into_owned());
        }
    }
    fields.decide(success)
}

/// Codes worth finding in a body that does not parse (truncated JSON).
const TEXT_CODES: &[&str] = &[
    "insufficient_quota",
    "billing_hard_limit_reached",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "enforced_spend_limit_reached",
    "rate_limit_exceeded",
    "rate_limit_error",
    "overloaded_error",
];

#[derive(Default)]
struct Fields {
    codes: Vec<String>,
    texts: Vec<String>,
    hints: DetailHints,
    details_seen: bool,
    /// What a stated GraphQL cost model says (Shopify `extensions.cost`).
    cost: Option<CostFinding>,
}

impl Fields {
    fn root(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else {
            if let Some(s) = v.as_str() {
                self.texts.push(s.to_owned());
            }
            return;
        };
        match obj.get("error") {
            Some(Value::Object(_)) => self.error_object(&obj["error"]),
            Some(Value::String(s)) => self.texts.push(s.clone()),
            _ => {}
        }
        if let Some(Value::Array(errors)) = obj.get("errors") {
            for e in errors.iter().take(MAX_ERRORS) {
                self.error_object(e);
            }
        }
        self.cost = cost::read(v);
        self.error_object(v);
    }

    /// One error object of any of the known shapes.
    fn error_object(&mut self, v: &Value) {
        let Some(obj) = v.as_object() else {
            return;
        };
        for key in [
            "code",
            "type",
            "status",
            "__type",
            "error_code",
            "errorType",
            "reason",
        ] {
            match obj.get(key) {
                Some(Value::String(s)) if !s.is_empty() && s != "error" => {
                    self.codes.push(code_of(s).to_owned())
                }
                Some(Value::Number(n)) if key == "code" => self.codes.push(n.to_string()),
                _ => {}
            }
        }
        for key in [
            "message",
            "Message",
            "msg",
            "detail",
            "title",
            "error_description",
        ] {
            if let Some(Value::String(s)) = obj.get(key) {
                self.texts.push(s.clone());
            }
        }
        if let Some(Value::Object(ext)) = obj.get("extensions") {
            if let Some(Value::String(code)) = ext.get("code") {
                self.codes.push(code.clone());
            }
        }
        match obj.get("details") {
            // Anthropic: `error.details.error_code`.
            Some(d @ Value::Object(_)) => self.error_object(d),
            // Google: google.rpc details as JSON.
            Some(Value::Array(details)) => {
                for d in details.iter().take(MAX_ERRORS) {
                    self.google_detail(d);
                }
            }
            _ => {}
        }
    }

    fn google_detail(&mut self, d: &Value) {
        let Some(kind) = d.get("@type").and_then(Value::as_str) else {
            return;
        };
        let kind = kind.rsplit('/').next().unwrap_or_default();
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        match kind {
            "google.rpc.RetryInfo" => {
                if let Some(delay) = d
                    .get("retryDelay")
                    .and_then(Value::as_str)
                    .and_then(prose::parse_duration)
                {
                    self.details_seen = true;
                    self.hints.retry_delay(delay);
                }
            }
            "google.rpc.QuotaFailure" => {
                if let Some(Value::Array(vs)) = d.get("violations") {
                    for v in vs.iter().take(MAX_ERRORS) {
                        self.details_seen = true;
                        let fields = [
                            s(v, "quotaId"),
                            s(v, "quotaMetric"),
                            s(v, "subject"),
                            s(v, "description"),
                        ];
                        let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
                        self.hints.quota_violation(&refs);
                    }
                }
            }
            "google.rpc.ErrorInfo" => {
                self.details_seen = true;
                self.hints.reason(&s(d, "reason"));
                if let Some(Value::Object(meta)) = d.get("metadata") {
                    for value in meta.values().filter_map(Value::as_str) {
                        self.hints.quota_text(value.as_bytes());
                    }
                }
            }
            _ => {}
        }
    }

    fn decide(self, success: bool) -> BodyFinding {
        let text_wait = self
            .texts
            .iter()
            .find_map(|t| prose::find_wait(t.as_bytes()));
        let cost_wait = match self.cost {
            Some(CostFinding::Wait(w)) => Some(w),
            _ => None,
        };
        let wait = self.hints.retry_delay.or(cost_wait).or(text_wait);
        let verdict = self.verdict(success);
        let definite = verdict.as_ref().is_some_and(fits::is_never_fits);
        let verdict = verdict.map(|c| {
            if definite {
                return c;
            }
            let wait = c.retry_after.or(wait);
            c.with_retry_after(wait)
        });
        BodyFinding {
            verdict,
            wait,
            definite,
        }
    }

    fn verdict(&self, success: bool) -> Option<Classification> {
        let texts = || self.texts.iter().map(|t| t.as_bytes());
        // A per-day or per-month window is the kind that matters most (it decides whether
        // waiting helps), so it beats what the code says is counted ("type": "requests").
        let scope = || {
            if texts().any(|t| contains_any(t, CALENDAR_PHRASES)) {
                return QuotaScope::Daily;
            }
            self.codes
                .iter()
                .find_map(|c| match c.as_str() {
                    "tokens" => Some(QuotaScope::Tokens),
                    "input_tokens" => Some(QuotaScope::InputTokens),
                    "output_tokens" => Some(QuotaScope::OutputTokens),
                    "requests" => Some(QuotaScope::Requests),
                    _ => None,
                })
                .or_else(|| {
                    texts()
                        .map(scope_from_text)
                        .find(|s| *s != QuotaScope::Unspecified)
                })
                .unwrap_or_default()
        };
        let by_rank = |rank: Rank| {
            self.codes
                .iter()
                .filter_map(|c| code_verdict(c))
                .find(|(r, _)| *r == rank)
                .map(|(_, c)| c)
        };
        // Structured google.rpc details decide first: Gemini says "You exceeded your
        // current quota" for per-minute limits too, only the quota id tells them apart.
        if self.details_seen {
            if let Some(v) = self.hints.verdict() {
                return Some(v);
            }
        }
        if let Some(c) = by_rank(Rank::Quota) {
            return Some(c);
        }
        // A request larger than the whole limit can never fit, whatever else is said.
        if self.cost == Some(CostFinding::NeverFits) || texts().any(fits::text_never_fits) {
            return Some(fits::never_fits());
        }
        if let Some(c) = texts().find_map(quota_phrase) {
            return Some(c);
        }
        // Capacity words mean overload whatever the status or code says.
        if let Some(c) = by_rank(Rank::Overload).or_else(|| {
            texts()
                .any(|t| contains_any(t, OVERLOAD_PHRASES))
                .then(|| Classification::new(Class::Overloaded, "body: capacity words"))
        }) {
            return Some(c);
        }
        if let Some(mut c) = by_rank(Rank::RateLimit) {
            if c.scope == QuotaScope::Unspecified {
                c.scope = scope();
            }
            return Some(c);
        }
        if !success {
            for rank in [Rank::Server, Rank::Auth, Rank::Client] {
                if let Some(c) = by_rank(rank) {
                    return Some(c);
                }
            }
        }
        if texts().any(|t| contains_any(t, RATE_LIMIT_PHRASES)) {
            let secondary = texts().any(|t| contains(t, "secondary rate limit"));
            let reason = if secondary {
                "github: secondary rate limit"
            } else {
                "body: rate limit message"
            };
            return Some(Classification::new(Class::RateLimited, reason).with_scope(scope()));
        }
        // A per-day or per-month limit by name: a rate limit when a wait is stated, else
        // exhaustion (decided once every wait is known, in `finish`).
        if texts().any(|t| contains_any(t, CALENDAR_PHRASES)) {
            return Some(
                Classification::new(Class::RateLimited, "body: per-day or per-month limit")
                    .with_scope(QuotaScope::Daily),
            );
        }
        None
    }
}

/// Words naming a per-day or per-month limit (OpenAI "(RPD)"/"(TPD)", Google "per day").
const CALENDAR_PHRASES: &[&str] = &[
    "per day",
    "(rpd)",
    "(tpd)",
    "daily limit",
    "daily quota",
    "perday",
    "per month",
    "monthly limit",
    "monthly quota",
    "permonth",
];

/// Capacity words: the provider, not the client, is short (Anthropic "Overloaded",
/// Gemini "The model is overloaded", OpenAI "currently overloaded", Mistral/others "high
/// demand", "peak load").
const OVERLOAD_PHRASES: &[&str] = &[
    "overloaded",
    "high demand",
    "peak load",
    "over capacity",
    "at capacity",
    "out of capacity",
    "insufficient capacity",
    "experiencing heavy load",
    "heavy traffic",
];

const RATE_LIMIT_PHRASES: &[&str] = &[
    "rate limit",
    "ratelimit",
    "rate-limit",
    "too many requests",
    "throttl",
    "slow down",
    "concurrency limit",
];

/// Phrases that mean waiting seconds or minutes will not help.
pub(crate) fn quota_phrase(t: &[u8]) -> Option<Classification> {
    if contains_any(
        t,
        &[
            "credit balance",
            "exceeded your current quota",
            "spend limit",
            "spending limit",
            "usage limit",
            "plan and billing",
            "billing details",
            "billing hard limit",
            "billing to be enabled",
            "billing is disabled",
            "billing is not active",
            "billing account",
            "out of credit",
            "insufficient credit",
            "not have enough credit",
            "regain access on",
            "payment required",
        ],
    ) {
        return Some(
            Classification::new(Class::QuotaExhausted, "body: credits or billing")
                .with_scope(QuotaScope::Billing),
        );
    }
    None
}

/// What kind of limit a message says was hit (issue 13: "requests per", "too many
/// requests", "rate exceeded", "request rate" are requests; token words tokens;
/// "concurrent" concurrency).
pub(crate) fn scope_from_text(t: &[u8]) -> QuotaScope {
    if contains_any(t, &["concurren", "in flight", "in-flight", "simultaneous"]) {
        QuotaScope::Concurrency
    } else if contains_any(t, CALENDAR_PHRASES) || contains_any(t, &["daily", "monthly"]) {
        QuotaScope::Daily
    } else if contains_any(
        t,
        &["input token", "input_token", "prompt token", "input-token"],
    ) {
        QuotaScope::InputTokens
    } else if contains_any(
        t,
        &[
            "output token",
            "output_token",
            "completion token",
            "output-token",
        ],
    ) {
        QuotaScope::OutputTokens
    } else if contains(t, "token") {
        QuotaScope::Tokens
    } else if contains_any(
        t,
        &[
            "requests per",
            "requests_per",
            "request per",
            "(rpm)",
            "(rps)",
            "call rate",
            "request rate",
            "rate of requests",
            "too many requests",
            "rate exceeded",
            "number of requests",
        ],
    ) {
        QuotaScope::Requests
    } else {
        QuotaScope::Unspecified
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Rank {
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
fn code_verdict(code: &str) -> Option<(Rank, Classification)> {
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
        "out_of_credit" | "insufficient_credits" | "insufficient_funds" | "payment_required" => {
            (Rank::Quota, billing("body: out of credit"))
        }
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
        | "resource_exhausted" => (
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
        | "ec2throttledexception" => (
            Rank::RateLimit,
            c(Class::RateLimited, "aws: throttling error code"),
        ),
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

/// The text of the first `<Code>` element of an XML error body (S3 `SlowDown`, EC2
/// `RequestLimitExceeded`, query-protocol `Throttling`).
fn xml_code(body: &[u8]) -> Option<&str> {
    let start = find(body, "<code>")? + "<code>".len();
    let len = body[start..].iter().take(64).position(|&b| b == b'<')?;
    std::str::from_utf8(&body[start..start + len])
        .ok()
        .map(str::trim)
}
