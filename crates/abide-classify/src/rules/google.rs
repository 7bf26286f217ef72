//! google.rpc error details (`QuotaFailure`, `ErrorInfo`, `RetryInfo`) reduced to what decides
//! a verdict. Fed from JSON error bodies (Gemini, Vertex, Cloud APIs) and from gRPC
//! `grpc-status-details-bin`.

use super::text::contains_any;
use crate::{Class, Classification, QuotaScope};
use std::time::Duration;

/// What the details said, accumulated field by field.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DetailHints {
    pub(crate) retry_delay: Option<Duration>,
    quota_failure: bool,
    daily: bool,
    short_window: bool,
    tokens: bool,
    requests: bool,
    billing: bool,
    rate_limit_reason: bool,
    auth_reason: bool,
}

impl DetailHints {
    /// A `QuotaFailure` violation: its quota id, metric, subject or description.
    pub(crate) fn quota_violation(&mut self, fields: &[&str]) {
        self.quota_failure = true;
        for f in fields {
            self.quota_text(f.as_bytes());
        }
    }

    /// Any text naming a quota (an `ErrorInfo` `quota_limit` value, for instance).
    pub(crate) fn quota_text(&mut self, t: &[u8]) {
        // Google quota ids read `GenerateRequestsPerDayPerProjectPerModel-FreeTier`,
        // `..._requests_per_minute_per_project_...` or prose "per day".
        if contains_any(
            t,
            &[
                "perday",
                "per_day",
                "per day",
                "daily",
                "-day",
                "permonth",
                "per_month",
                "per month",
                "monthly",
            ],
        ) {
            self.daily = true;
        }
        if contains_any(
            t,
            &[
                "perminute",
                "per_minute",
                "per minute",
                "persecond",
                "per_second",
                "per second",
            ],
        ) {
            self.short_window = true;
        }
        if contains_any(t, &["token"]) {
            self.tokens = true;
        }
        if contains_any(t, &["request"]) {
            self.requests = true;
        }
    }

    /// An `ErrorInfo` reason (google.rpc ErrorInfo, `reason` field).
    pub(crate) fn reason(&mut self, reason: &str) {
        match reason {
            "RATE_LIMIT_EXCEEDED" | "RESOURCE_EXHAUSTED" | "RATE_LIMITED" => {
                self.rate_limit_reason = true
            }
            "BILLING_DISABLED" | "BILLING_NOT_ACTIVE" | "INSUFFICIENT_FUNDS" => self.billing = true,
            "API_KEY_INVALID"
            | "API_KEY_EXPIRED"
            | "ACCESS_TOKEN_EXPIRED"
            | "CREDENTIALS_MISSING"
            | "ACCESS_TOKEN_SCOPE_INSUFFICIENT" => self.auth_reason = true,
            _ => {}
        }
    }

    /// A `RetryInfo` delay.
    pub(crate) fn retry_delay(&mut self, delay: Duration) {
        self.retry_delay = Some(delay.min(super::prose::MAX_WAIT));
    }

    /// The verdict the details support, if they decide one.
    pub(crate) fn verdict(&self) -> Option<Classification> {
        let c = if self.billing {
            Classification::new(Class::QuotaExhausted, "google.rpc: billing")
                .with_scope(QuotaScope::Billing)
        } else if self.auth_reason {
            Classification::new(Class::AuthError, "google.rpc ErrorInfo: credentials")
        } else if self.daily && self.retry_delay.is_none() {
            Classification::new(
                Class::QuotaExhausted,
                "google.rpc QuotaFailure: per-day quota",
            )
            .with_scope(QuotaScope::Daily)
        } else if self.daily {
            // A stated RetryInfo beats the quota's name (the long-wait rule still turns
            // a wait of hours into exhaustion).
            Classification::new(
                Class::RateLimited,
                "google.rpc QuotaFailure: per-day quota with RetryInfo",
            )
            .with_scope(QuotaScope::Daily)
        } else if self.quota_failure || self.rate_limit_reason || self.retry_delay.is_some() {
            let scope = if self.tokens {
                QuotaScope::Tokens
            } else if self.requests {
                QuotaScope::Requests
            } else {
                QuotaScope::Unspecified
            };
            let reason = if self.quota_failure && self.short_window {
                "google.rpc QuotaFailure: short-window quota"
            } else if self.quota_failure {
                "google.rpc QuotaFailure"
            } else if self.rate_limit_reason {
                "google.rpc ErrorInfo: RATE_LIMIT_EXCEEDED"
            } else {
                "google.rpc RetryInfo"
            };
            Classification::new(Class::RateLimited, reason).with_scope(scope)
        } else {
            return None;
        };
        Some(c.with_retry_after(self.retry_delay))
    }
}
