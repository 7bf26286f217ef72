//! Error bodies: JSON shapes of OpenAI, Azure OpenAI, Anthropic, Google, AWS, GitHub,
//! Stripe, RFC 9457 problem+json, JSON:API and GraphQL; XML (AWS S3/query protocols) and
//! plain text by phrase.

use super::codes::{code_of, code_verdict, Rank};
use super::cost::{self, CostFinding};
use super::fits;
use super::google::DetailHints;
use super::phrases::{
    names_calendar_limit, quota_phrase, scope_from_text, OVERLOAD_PHRASES, QUEUE_CODES,
    QUEUE_PHRASES, RATE_LIMIT_PHRASES,
};
use super::prose;
use super::text::{contains, contains_any, find};
use super::waits;
use crate::{Class, Classification, QuotaScope};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// What a body said: a verdict and/or a wait.
#[derive(Debug, Default)]
pub(crate) struct BodyFinding {
    pub(crate) verdict: Option<Classification>,
    pub(crate) wait: Option<Duration>,
    /// The verdict is about the request itself (it can never fit) and stands whatever
    /// the status says.
    pub(crate) definite: bool,
    /// The body speaks of a full queue or rejected execution (server busy, too many in
    /// flight): on a 429 or 503 that is overload.
    pub(crate) queue_full: bool,
    /// The limit the body names.
    pub(crate) bucket: Option<abide_headers::Name>,
    /// The kind of limit the body's words name, for a verdict the headers made.
    pub(crate) scope: QuotaScope,
}

/// Most error objects looked at in a JSON `errors` array.
const MAX_ERRORS: usize = 8;

/// Reads a body prefix. `success` restricts the verdicts to throttling ones (a GraphQL
/// 200 whose `errors` say `RATE_LIMITED`, a 200 whose error fields say it was rate
/// limited). Instants the body states are measured from `now`.
pub(crate) fn classify_body(body: &[u8], success: bool, now: SystemTime) -> BodyFinding {
    let mut fields = Fields {
        now: Some(now),
        ..Fields::default()
    };
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
            // Plain text is all message: it may speak for itself on a 200 too.
            fields.error_signal = true;
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
    /// The first wait a field states (`retry_after`, `retryAfterMs`, `banned_until`).
    field_wait: Option<Duration>,
    /// The body has the shape of an error (an `error`/`errors` member, a failing status
    /// or `success: false`): its words count on a 2xx too.
    error_signal: bool,
    /// The reference instant for instants the body states.
    now: Option<SystemTime>,
    /// The limit the body names (HubSpot `policyName`, Notion `rate_limit_reason`,
    /// a google.rpc `QuotaFailure` quota id).
    bucket: Option<abide_headers::Name>,
}

/// Fields naming the limit that was hit.
const BUCKET_KEYS: &[&str] = &[
    "policyName",
    "policy_name",
    "rate_limit_reason",
    "rateLimitReason",
    "limit_name",
    "limitName",
];

impl Fields {
    fn root(&mut self, v: &Value) {
        let obj = match v {
            Value::Object(obj) => obj,
            Value::String(s) => return self.texts.push(s.clone()),
            // Salesforce answers with an array of errors:
            // `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`.
            Value::Array(errors) => {
                for e in errors.iter().take(MAX_ERRORS) {
                    if let Some(obj) = e.as_object() {
                        self.error_signal |= error_shaped(obj) || obj.contains_key("errorCode");
                    }
                    self.error_object(e);
                }
                return;
            }
            _ => return,
        };
        self.error_signal |= error_shaped(obj);
        match obj.get("error") {
            Some(Value::Object(inner)) => {
                self.error_object(&obj["error"]);
                // Google APIs nest the legacy `errors` list inside `error`.
                if let Some(Value::Array(errors)) = inner.get("errors") {
                    for e in errors.iter().take(MAX_ERRORS) {
                        self.error_object(e);
                    }
                }
            }
            Some(Value::String(s)) => {
                // A one-word error is a code too (Slack `"error":"ratelimited"`,
                // Zendesk `"error":"TooManyRequests"`).
                if !s.contains(char::is_whitespace) && s.len() <= 64 {
                    self.codes.push(code_of(s).to_owned());
                }
                self.texts.push(s.clone());
            }
            _ => {}
        }
        // Shopify REST: `{"errors": "Exceeded 2 calls per second for api client. ..."}`.
        if let Some(Value::String(s)) = obj.get("errors") {
            self.texts.push(s.clone());
        }
        if let Some(Value::Array(errors)) = obj.get("errors") {
            for e in errors.iter().take(MAX_ERRORS) {
                match e {
                    Value::String(s) => self.texts.push(s.clone()),
                    e => self.error_object(e),
                }
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
            "errorCode",
            "error_type",
            "errorType",
            // PayPal `name: RATE_LIMIT_REACHED`, DigitalOcean/Heroku `id: too_many_requests`.
            "name",
            "id",
            "reason",
        ] {
            match obj.get(key) {
                Some(Value::String(s)) if !s.is_empty() && s != "error" => {
                    self.codes.push(code_of(s).to_owned())
                }
                Some(Value::Number(n)) if key == "code" || key == "status" => {
                    self.codes.push(n.to_string())
                }
                _ => {}
            }
        }
        for key in ["status_code", "statusCode", "http_status", "httpStatus"] {
            if let Some(Value::Number(n)) = obj.get(key) {
                self.codes.push(n.to_string());
            }
        }
        for key in [
            "message",
            "Message",
            "msg",
            "detail",
            "title",
            "error_description",
            "error_message",
            "errorMessage",
            "error_msg",
            "status_message",
            "statusMessage",
            "description",
            "errorSummary",
            "error_summary",
            "faultstring",
        ] {
            if let Some(Value::String(s)) = obj.get(key) {
                self.texts.push(s.clone());
            }
        }
        self.waits_in(obj, 0);
        // Dropbox: `"reason": {".tag": "too_many_write_operations"}`.
        if let Some(Value::String(tag)) = obj.get("reason").and_then(|r| r.get(".tag")) {
            self.codes.push(tag.clone());
        }
        if self.bucket.is_none() {
            // Beside the error, or one level down (Notion `additional_data.rate_limit_reason`).
            let nested = ["additional_data", "metadata"]
                .iter()
                .filter_map(|k| obj.get(*k).and_then(Value::as_object));
            self.bucket = std::iter::once(obj)
                .chain(nested)
                .find_map(|o| {
                    BUCKET_KEYS
                        .iter()
                        .find_map(|k| o.get(*k).and_then(Value::as_str))
                })
                .filter(|b| !b.is_empty())
                .map(abide_headers::Name::new);
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

    /// The first wait a field states, in `obj` and the metadata objects beside it
    /// (OpenRouter `error.metadata.headers`), bounded in depth and width.
    fn waits_in(&mut self, obj: &serde_json::Map<String, Value>, depth: usize) {
        const NESTED: &[&str] = &[
            "metadata",
            "meta",
            "headers",
            "data",
            "rate_limit",
            "ratelimit",
        ];
        let Some(now) = self.now else { return };
        for (k, v) in obj.iter().take(64) {
            if self.field_wait.is_some() {
                return;
            }
            if let Some(w) = waits::field_wait(k, v, now) {
                self.field_wait = Some(w);
            } else if depth < 2 && NESTED.contains(&k.as_str()) {
                if let Value::Object(inner) = v {
                    self.waits_in(inner, depth + 1);
                }
            }
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
                        if self.bucket.is_none() {
                            let id = s(v, "quotaId");
                            if !id.is_empty() {
                                self.bucket = Some(abide_headers::Name::new(&id));
                            }
                        }
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
                    // Cloud APIs name the limit: `"quota_limit": "ReadRequestsPerMinutePerProject"`.
                    if let (None, Some(Value::String(limit))) =
                        (&self.bucket, meta.get("quota_limit"))
                    {
                        self.bucket = Some(abide_headers::Name::new(limit));
                    }
                    for value in meta.values().filter_map(Value::as_str) {
                        self.hints.quota_text(value.as_bytes());
                    }
                }
            }
            _ => {}
        }
    }

    fn decide(self, success: bool) -> BodyFinding {
        let now = self.now.unwrap_or_else(SystemTime::now);
        let text_wait = self
            .texts
            .iter()
            .find_map(|t| prose::find_wait(t.as_bytes(), now));
        let cost_wait = match self.cost {
            Some(CostFinding::Wait(w)) => Some(w),
            _ => None,
        };
        let wait = self
            .hints
            .retry_delay
            .or(cost_wait)
            .or(self.field_wait)
            .or(text_wait);
        let queue_full = self
            .texts
            .iter()
            .any(|t| contains_any(t.as_bytes(), QUEUE_PHRASES))
            || self
                .codes
                .iter()
                .any(|c| contains_any(c.as_bytes(), QUEUE_CODES));
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
            queue_full,
            scope: self
                .texts
                .iter()
                .map(|t| scope_from_text(t.as_bytes()))
                .find(|s| *s != QuotaScope::Unspecified)
                .unwrap_or_default(),
            bucket: self.bucket,
        }
    }

    fn verdict(&self, success: bool) -> Option<Classification> {
        // On a 2xx, words count only in a body shaped like an error: a success payload
        // may well talk about rate limits.
        let words = !success || self.error_signal;
        let texts = || {
            self.texts
                .iter()
                .map(|t| t.as_bytes())
                .filter(move |_| words)
        };
        // A per-day or per-month window is the kind that matters most (it decides whether
        // waiting helps), so it beats what the code says is counted ("type": "requests").
        let scope = || {
            if texts().any(names_calendar_limit) {
                return QuotaScope::Daily;
            }
            self.codes
                .iter()
                .find_map(|c| match c.to_ascii_lowercase().as_str() {
                    "tokens" => Some(QuotaScope::Tokens),
                    "input_tokens" => Some(QuotaScope::InputTokens),
                    "output_tokens" => Some(QuotaScope::OutputTokens),
                    "requests" | "too_many_requests" | "toomanyrequests" => {
                        Some(QuotaScope::Requests)
                    }
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
        if self.details_seen && words {
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
        if !success {
            if let Some(c) = texts().find_map(quota_phrase) {
                return Some(c);
            }
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
        if !success && texts().any(names_calendar_limit) {
            return Some(
                Classification::new(Class::RateLimited, "body: per-day or per-month limit")
                    .with_scope(QuotaScope::Daily),
            );
        }
        None
    }
}

/// True when a JSON object has the shape of an error: a non-empty `error`/`errors`
/// member, `success`/`ok` false, or a failing `status`/`code`/`status_code`.
fn error_shaped(obj: &serde_json::Map<String, Value>) -> bool {
    let present = |k: &str| match obj.get(k) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let failing = |k: &str| match obj.get(k) {
        Some(Value::Number(n)) => {
            n.as_u64().is_some_and(|n| n >= 400) || n.as_i64().is_some_and(|n| n < 0)
        }
        Some(Value::String(s)) => {
            matches!(
                s.to_ascii_lowercase().as_str(),
                "error" | "fail" | "failed" | "failure" | "throttled" | "rate_limited"
            )
        }
        _ => false,
    };
    present("error")
        || present("errors")
        || matches!(obj.get("success"), Some(Value::Bool(false)))
        || matches!(obj.get("ok"), Some(Value::Bool(false)))
        || ["status", "code", "status_code", "statusCode"]
            .iter()
            .any(|k| failing(k))
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
