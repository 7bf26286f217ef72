//! The readers, one module per dialect family, and the order they run in.
//!
//! # Precedence
//! One scan over the header names finds which families are present; only those readers
//! run, in this order, each adding its limits to the snapshot:
//! 1. the wait: `retry-after-ms`, `x-ms-retry-after-ms`, Traefik `X-Retry-In`, then
//!    `Retry-After` (the first that parses wins: millisecond variants over seconds, the
//!    order the OpenAI and Azure SDKs use);
//! 2. Anthropic `anthropic-ratelimit-*`;
//! 3. OpenAI / Azure OpenAI / Groq `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`;
//! 4. the unsuffixed `x-ratelimit-*` group, read by exactly one reader chosen by its most
//!    specific header: Discord (`-bucket`/`-global`/`-scope`/`-reset-after`), else GitHub
//!    (`-resource`), else Atlassian (`-nearlimit`/`-fillrate`/`-interval-seconds`, or an
//!    ISO 8601 reset), else Reddit (`-used` without `-limit`), else generic;
//!    then Kong per-window `x-ratelimit-{limit,remaining}-[name-]minute` and Linear
//!    `x-ratelimit-{requests,complexity}-*`;
//! 5. IETF: `RateLimit` as the draft-07 Dictionary, else as the draft 08+ List joined with
//!    `RateLimit-Policy`; only when `RateLimit` is absent, the `RateLimit-Limit` triple
//!    (drafts 00–06, or GitLab when `RateLimit-Observed`/`-Name` is present);
//! 6. `X-Rate-Limit-*` (X, Okta, Zendesk) and X's 24-hour app/user limits;
//! 7. the vendor tail: Shopify, Salesforce, Sentry, HubSpot, Azure Resource Manager,
//!    Zendesk per-endpoint, Stripe.
//!
//! A limit of unspecified scope that states the same limit and remaining as one already
//! kept from another dialect is that same counter sent under a second name (Zendesk
//! `ratelimit-*` and `x-rate-limit*`; Kong `RateLimit-*` and `X-RateLimit-*-Minute`): it
//! is merged into the kept one (filling its reset and window) instead of being added.

mod ietf;
mod llm;
mod retry;
mod vendor;
mod xrl;

use crate::value::{self, ValueError};
use crate::{Limit, RateLimitSnapshot, Scope};
use http::header::{HeaderMap, HeaderName};
use std::time::SystemTime;

/// Which reader families have at least one header present.
#[derive(Clone, Copy, Default)]
struct Families {
    retry: bool,
    ietf: bool,
    anthropic: bool,
    xrl: bool,
    x_rate_limit: bool,
    vendor: bool,
}

impl Families {
    fn scan(headers: &HeaderMap) -> Self {
        let mut f = Families::default();
        for name in headers.keys() {
            let n = name.as_str();
            if n.starts_with("x-ratelimit-") {
                f.xrl = true;
            } else if n.starts_with("ratelimit") {
                f.ietf = true;
            } else if n.starts_with("anthropic-ratelimit-") {
                f.anthropic = true;
            } else if n.starts_with("x-rate-limit")
                || n.starts_with("x-app-limit-")
                || n.starts_with("x-user-limit-")
            {
                f.x_rate_limit = true;
            } else if matches!(
                n,
                "retry-after" | "retry-after-ms" | "x-ms-retry-after-ms" | "x-retry-in"
            ) {
                f.retry = true;
            } else if n.starts_with("x-shopify-")
                || n.starts_with("sforce-")
                || n.starts_with("x-sentry-")
                || n.starts_with("x-hubspot-ratelimit-")
                || n.starts_with("x-ms-ratelimit-")
                || n.starts_with("zendesk-ratelimit-")
                || n.starts_with("stripe-")
            {
                f.vendor = true;
            }
        }
        f
    }
}

pub(crate) fn extract(headers: &HeaderMap, now: Option<SystemTime>) -> RateLimitSnapshot {
    let mut snap = RateLimitSnapshot::new();
    let families = Families::scan(headers);
    let any = families.retry
        || families.ietf
        || families.anthropic
        || families.xrl
        || families.x_rate_limit
        || families.vendor;
    if !any {
        return snap;
    }
    let now = now
        .or_else(|| text(headers, &http::header::DATE).and_then(|d| value::http_date(d).ok()))
        .unwrap_or_else(SystemTime::now);
    let mut cx = Cx {
        headers,
        now,
        snap: &mut snap,
    };
    if families.retry {
        retry::read(&mut cx);
    }
    if families.anthropic {
        llm::anthropic(&mut cx);
    }
    if families.xrl {
        llm::openai(&mut cx);
        xrl::read(&mut cx);
    }
    if families.ietf {
        ietf::read(&mut cx);
    }
    if families.x_rate_limit {
        xrl::x_rate_limit(&mut cx);
    }
    if families.vendor {
        vendor::read(&mut cx);
    }
    snap
}

/// What every reader needs: the headers, the reference instant, and the snapshot to fill.
pub(crate) struct Cx<'a> {
    pub(crate) headers: &'a HeaderMap,
    pub(crate) now: SystemTime,
    pub(crate) snap: &'a mut RateLimitSnapshot,
}

impl Cx<'_> {
    /// Adds a limit, merging a generic duplicate into the counter already kept (see the
    /// module docs).
    pub(crate) fn push(&mut self, limit: Limit) {
        if limit.scope == Scope::Unspecified && limit.limit.is_some() {
            if let Some(kept) = self.snap.limits_mut().iter_mut().find(|k| {
                k.dialect != limit.dialect
                    && k.limit == limit.limit
                    && k.remaining == limit.remaining
            }) {
                kept.reset = kept.reset.or(limit.reset);
                kept.window = kept.window.or(limit.window);
                return;
            }
        }
        if !self.snap.push(limit) {
            tracing::debug!(
                max = crate::MAX_LIMITS,
                "more rate limits than kept; dropping the rest"
            );
        }
    }

    /// The value of a single-valued field (see [`text`]).
    pub(crate) fn text(&self, name: &HeaderName) -> Option<&str> {
        text(self.headers, name)
    }

    /// A single-valued field parsed with `parse`; a malformed value is reported and `None`.
    pub(crate) fn field<T>(
        &self,
        name: &HeaderName,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        let s = self.text(name)?;
        match parse(s) {
            Ok(v) => Some(v),
            Err(why) => {
                malformed(name, s, why);
                None
            }
        }
    }

    /// A count field. Azure OpenAI sends `-1` when it does not know; that is unknown, not
    /// an error worth reporting.
    pub(crate) fn count(&self, name: &HeaderName) -> Option<u64> {
        let s = self.text(name)?;
        if value::trim_ows(s) == "-1" {
            tracing::debug!(field = %name, "-1 sentinel: value unknown");
            return None;
        }
        match value::count(s) {
            Ok(v) => Some(v),
            Err(why) => {
                malformed(name, s, why);
                None
            }
        }
    }
}

/// Reports a malformed field value (the value is cut short: it came from a server).
pub(crate) fn malformed(name: &HeaderName, value: &str, why: impl std::fmt::Display) {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    tracing::debug!(field = %name, value = &value[..end], reason = %why, "ignoring malformed rate-limit field");
}

/// The value of a field that has one value. Repeated lines are combined as RFC 9110 §5.3
/// says; for a singleton field that is only meaningful when every line says the same, so
/// conflicting lines make the field malformed. Values that are not visible ASCII are
/// malformed too.
pub(crate) fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    let Ok(first) = first.to_str() else {
        tracing::debug!(field = %name, "ignoring rate-limit field that is not visible ASCII");
        return None;
    };
    let first = value::trim_ows(first);
    for other in lines {
        if other.to_str().map(value::trim_ows).ok() != Some(first) {
            tracing::debug!(field = %name, "ignoring rate-limit field with conflicting repeated lines");
            return None;
        }
    }
    Some(first)
}

/// Every element of a list field (RFC 9110 §5.6.1 `#element`), across repeated lines,
/// trimmed, empty elements skipped. Lines that are not visible ASCII are reported and
/// skipped. Stops after `MAX_ELEMENTS` to bound the work.
pub(crate) fn list<'h, 'n>(
    headers: &'h HeaderMap,
    name: &'n HeaderName,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    const MAX_ELEMENTS: usize = 64;
    headers
        .get_all(name)
        .iter()
        .filter_map(move |v| match v.to_str() {
            Ok(s) => Some(s),
            Err(_) => {
                tracing::debug!(field = %name, "ignoring rate-limit field line that is not visible ASCII");
                None
            }
        })
        .flat_map(|s| s.split(','))
        .map(value::trim_ows)
        .filter(|s| !s.is_empty())
        .take(MAX_ELEMENTS)
}

/// Shorthand for a header name known at compile time.
macro_rules! names {
    ($($id:ident = $s:literal;)*) => {
        $(pub(crate) const $id: http::header::HeaderName = http::header::HeaderName::from_static($s);)*
    };
}
pub(crate) use names;
