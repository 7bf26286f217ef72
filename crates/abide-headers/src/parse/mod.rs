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
use std::cell::Cell;
use std::time::SystemTime;

/// Which groups of fields are present, found in one pass over the header names so that
/// readers skip (without a lookup) whatever is absent.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen(u32);

impl Seen {
    pub(crate) const RETRY: u32 = 1 << 0;
    pub(crate) const IETF_LIST: u32 = 1 << 1;
    pub(crate) const IETF_POLICY: u32 = 1 << 2;
    pub(crate) const IETF_TRIPLE: u32 = 1 << 3;
    pub(crate) const GITLAB: u32 = 1 << 4;
    pub(crate) const ANTHROPIC: u32 = 1 << 5;
    pub(crate) const OPENAI: u32 = 1 << 6;
    pub(crate) const XRL: u32 = 1 << 7;
    pub(crate) const XRL_USED: u32 = 1 << 8;
    pub(crate) const XRL_LIMIT: u32 = 1 << 9;
    pub(crate) const DISCORD: u32 = 1 << 10;
    pub(crate) const GITHUB: u32 = 1 << 11;
    pub(crate) const ATLASSIAN: u32 = 1 << 12;
    pub(crate) const KONG: u32 = 1 << 13;
    pub(crate) const LINEAR: u32 = 1 << 14;
    pub(crate) const X_RATE_LIMIT: u32 = 1 << 15;
    pub(crate) const X_24H: u32 = 1 << 16;
    pub(crate) const VENDOR: u32 = 1 << 17;

    pub(crate) fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    fn scan(headers: &HeaderMap) -> Self {
        let mut seen = 0;
        for name in headers.keys() {
            seen |= Self::classify(name.as_str());
        }
        Seen(seen)
    }

    fn classify(n: &str) -> u32 {
        if let Some(rest) = n.strip_prefix("x-ratelimit-") {
            return match rest {
                "limit" => Self::XRL | Self::XRL_LIMIT,
                "remaining" | "reset" | "reset-ms" => Self::XRL,
                "used" => Self::XRL | Self::XRL_USED,
                "bucket" | "global" | "scope" | "reset-after" => Self::DISCORD,
                "resource" => Self::GITHUB,
                "nearlimit" | "fillrate" | "interval-seconds" => Self::ATLASSIAN,
                "limit-requests" | "remaining-requests" | "reset-requests" | "limit-tokens"
                | "remaining-tokens" | "reset-tokens" => Self::OPENAI,
                _ if rest.starts_with("requests-") || rest.starts_with("complexity-") => {
                    Self::LINEAR
                }
                _ if rest.starts_with("limit-") || rest.starts_with("remaining-") => Self::KONG,
                _ => 0,
            };
        }
        if let Some(rest) = n.strip_prefix("ratelimit") {
            return match rest {
                "" => Self::IETF_LIST,
                "-policy" => Self::IETF_POLICY,
                // Draft 12: read with the policies and the `RateLimit` list.
                "-partition" => Self::IETF_POLICY,
                "-limit" | "-remaining" | "-reset" => Self::IETF_TRIPLE,
                "-name" | "-observed" | "-resettime" => Self::GITLAB,
                // Per-window gateway headers (`RateLimit-Limit-Minute`).
                _ if rest.starts_with("-limit-") || rest.starts_with("-remaining-") => Self::KONG,
                _ => 0,
            };
        }
        if n.starts_with("anthropic-ratelimit-") {
            return Self::ANTHROPIC;
        }
        if n.starts_with("x-rate-limit") {
            return Self::X_RATE_LIMIT;
        }
        if n.starts_with("x-app-limit-24hour-") || n.starts_with("x-user-limit-24hour-") {
            return Self::X_24H;
        }
        match n {
            "retry-after" | "retry-after-ms" | "x-ms-retry-after-ms" | "x-retry-in" => {
                return Self::RETRY
            }
            "x-shopify-shop-api-call-limit"
            | "sforce-limit-info"
            | "x-sentry-rate-limits"
            | "stripe-rate-limited-reason" => return Self::VENDOR,
            _ => {}
        }
        if n.starts_with("x-hubspot-ratelimit-")
            || n.starts_with("x-ms-ratelimit-")
            || n.starts_with("zendesk-ratelimit-")
        {
            return Self::VENDOR;
        }
        0
    }
}

pub(crate) fn extract(headers: &HeaderMap, now: Option<SystemTime>) -> RateLimitSnapshot {
    let mut snap = RateLimitSnapshot::new();
    extract_into(headers, now, &mut snap);
    snap
}

/// [`extract`] into `snap`, which is emptied first.
pub(crate) fn extract_into(
    headers: &HeaderMap,
    now: Option<SystemTime>,
    snap: &mut RateLimitSnapshot,
) {
    snap.clear();
    let seen = Seen::scan(headers);
    if seen == Seen::default() {
        return;
    }
    let mut cx = Cx {
        headers,
        now: Cell::new(now),
        seen,
        snap,
    };
    if seen.has(Seen::RETRY) {
        retry::read(&mut cx);
    }
    if seen.has(Seen::ANTHROPIC) {
        llm::anthropic(&mut cx);
    }
    if seen.has(Seen::OPENAI) {
        llm::openai(&mut cx);
    }
    xrl::read(&mut cx);
    if seen.has(Seen::IETF_LIST | Seen::IETF_POLICY | Seen::IETF_TRIPLE | Seen::GITLAB) {
        ietf::read(&mut cx);
    }
    if seen.has(Seen::X_RATE_LIMIT | Seen::X_24H) {
        xrl::x_rate_limit(&mut cx);
    }
    if seen.has(Seen::VENDOR) {
        vendor::read(&mut cx);
    }
}

/// What every reader needs: the headers, the reference instant, and the snapshot to fill.
pub(crate) struct Cx<'a> {
    pub(crate) headers: &'a HeaderMap,
    /// The reference instant, found on first use ([`Cx::now`]): the dialects that state
    /// only counts and relative resets (OpenAI's) never read the clock or `Date`.
    now: Cell<Option<SystemTime>>,
    pub(crate) seen: Seen,
    pub(crate) snap: &'a mut RateLimitSnapshot,
}

impl Cx<'_> {
    /// The reference instant: the one given, else the response's `Date`, else the clock.
    pub(crate) fn now(&self) -> SystemTime {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = text(self.headers, &http::header::DATE)
            .and_then(|d| value::http_date(d).ok())
            .unwrap_or_else(SystemTime::now);
        self.now.set(Some(now));
        now
    }

    /// Adds a limit, merging a generic duplicate into the counter already kept (see the
    /// module docs).
    pub(crate) fn push(&mut self, limit: Limit) {
        // A header that carries no numbers creates no limit.
        if limit.limit.is_none()
            && limit.remaining.is_none()
            && limit.reset.is_none()
            && limit.window.is_none()
        {
            tracing::debug!(scope = %limit.scope, "ignoring a rate limit that states no numbers");
            return;
        }
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
        self.field_of(name, self.text(name), parse)
    }

    /// [`field`](Self::field) of a value already looked up (by [`texts`]).
    pub(crate) fn field_of<T>(
        &self,
        name: &HeaderName,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        let s = value?;
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
        self.count_of(name, self.text(name))
    }

    /// [`count`](Self::count) of a value already looked up (by [`texts`]).
    pub(crate) fn count_of(&self, name: &HeaderName, value: Option<&str>) -> Option<u64> {
        let s = value?;
        if s == "-1" {
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

/// [`text`] of each of `names`, all starting with `prefix`, found in one pass over the
/// fields rather than one lookup (a hash of the name) each: a dialect's family of fields
/// comes at the cost of a walk over the response's fields.
pub(crate) fn texts<'h, const N: usize>(
    headers: &'h HeaderMap,
    prefix: &str,
    names: [&HeaderName; N],
) -> [Option<&'h str>; N] {
    #[derive(Clone, Copy)]
    enum Slot<'h> {
        Absent,
        Value(&'h str),
        Malformed,
    }
    let mut slots = [Slot::Absent; N];
    for (name, line) in headers {
        let n = name.as_str();
        if !n.starts_with(prefix) {
            continue;
        }
        let Some(i) = names.iter().position(|candidate| candidate.as_str() == n) else {
            continue;
        };
        let line = line.to_str().map(value::trim_ows);
        slots[i] = match (slots[i], line) {
            (Slot::Absent, Ok(first)) => Slot::Value(first),
            (Slot::Absent, Err(_)) => {
                tracing::debug!(field = %name, "ignoring rate-limit field that is not visible ASCII");
                Slot::Malformed
            }
            (Slot::Value(first), Ok(again)) if again == first => Slot::Value(first),
            (Slot::Value(_), _) => {
                tracing::debug!(field = %name, "ignoring rate-limit field with conflicting repeated lines");
                Slot::Malformed
            }
            (Slot::Malformed, _) => Slot::Malformed,
        };
    }
    slots.map(|slot| match slot {
        Slot::Value(s) => Some(s),
        Slot::Absent | Slot::Malformed => None,
    })
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
