//! The words error messages use, by what they mean: capacity, queue-full, rate-limit,
//! calendar-window and billing phrases, and the kind of limit a message names.

use super::text::{contains, contains_any};
use crate::{Class, Classification, QuotaScope};

/// Queue-full and rejected-execution words: the server is too busy to queue the request
/// (Elasticsearch `es_rejected_execution_exception`, "server busy", "queue is full").
pub(crate) const QUEUE_PHRASES: &[&str] = &[
    "queue is full",
    "queue full",
    "queue capacity",
    "server busy",
    "server is busy",
    "servers are busy",
    "service is busy",
    "system is busy",
    "too many in flight",
    "too many requests in flight",
    "in-flight requests exceeded",
    "rejected execution",
    "rejected_execution",
];

/// Codes meaning the same.
pub(crate) const QUEUE_CODES: &[&str] = &[
    "rejected_execution",
    "server_busy",
    "queue_full",
    "serverbusy",
];

/// Words naming a per-day or per-month window (OpenAI "(RPD)"/"(TPD)", Google "per day").
const CALENDAR_WORDS: &[&str] = &[
    "per day",
    "(rpd)",
    "(tpd)",
    "perday",
    "per_day",
    "per-day",
    "daily",
    "per month",
    "permonth",
    "per_month",
    "per-month",
    "monthly",
    // Salesforce's 24-hour allocation ("TotalRequests Limit exceeded.",
    // developer.salesforce.com app limits cheatsheet, "Total API Request Allocations").
    "totalrequests",
];

/// True when `t` names a per-day or per-month limit: a calendar word and a limit word
/// ("Daily limit reached", "Monthly request quota exceeded", "requests per day (RPD)").
pub(crate) fn names_calendar_limit(t: &[u8]) -> bool {
    contains_any(t, CALENDAR_WORDS)
        && contains_any(
            t,
            &["limit", "quota", "exceeded", "reached", "(rpd)", "(tpd)"],
        )
}

/// Capacity words: the provider, not the client, is short (Anthropic "Overloaded",
/// Gemini "The model is overloaded", OpenAI "currently overloaded", Mistral/others "high
/// demand", "peak load").
pub(crate) const OVERLOAD_PHRASES: &[&str] = &[
    "overloaded",
    "high demand",
    "peak load",
    "over capacity",
    "at capacity",
    "out of capacity",
    "insufficient capacity",
    "experiencing heavy load",
    "heavy traffic",
    "too busy",
];

pub(crate) const RATE_LIMIT_PHRASES: &[&str] = &[
    "rate limit",
    "request limit",
    "requests limit",
    "api limit",
    "call limit",
    "too many calls",
    "request quota",
    "request weight",
    // Cohere: "limited to 40 API calls / minute" (docs.cohere.com/docs/rate-limits).
    "calls / minute",
    "calls/minute",
    "calls per minute",
    "calls per second",
    // A ban with a stated end is a wait (Binance "IP banned until 1659146400000").
    "banned until",
    "blocked until",
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
            "insufficient balance",
            "balance is too low",
            "balance is insufficient",
            "out of credits",
            "run out of credits",
            "ran out of credits",
            "no remaining credits",
            "credits exhausted",
            "credits have been exhausted",
            "account balance",
            "top up your",
            "recharge your",
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
    } else if names_calendar_limit(t) {
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
            "request limit",
            "requests limit",
            "calls / minute",
            "calls per minute",
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
