//! IETF draft-ietf-httpapi-ratelimit-headers, every generation, and GitLab (which reuses
//! the draft-03 names with epoch resets).
//!
//! - drafts 00–03: `RateLimit-Limit: 10, 10;w=1, 50;w=60` (the expiring limit, then quota
//!   policies), `RateLimit-Remaining`, `RateLimit-Reset` (delta seconds);
//! - drafts 04–06: the same triple plus `RateLimit-Policy: 10;w=1, 50;w=60`;
//! - draft 07: `RateLimit: limit=10, remaining=5, reset=30` (a Dictionary) plus the
//!   integer `RateLimit-Policy`;
//! - drafts 08–11: `RateLimit-Policy: "burst";q=100;w=60;qu="request";pk=:AQ==:` and
//!   `RateLimit: "burst";r=50;t=30;pk=:AQ==:` (Lists), joined by policy name;
//! - the draft-12 working copy (ietf-wg-httpapi/ratelimit-headers PR #166, issue #158):
//!   `RateLimit: burst;a=50;w=30;c=1` (`a` available, `w` the effective window, i.e. the
//!   time until it resets, `c` the cost of this request), policy ids as Token or String,
//!   and a `RateLimit-Partition: burst;user_id="u1"` field whose fixed dimension values
//!   make the partition key (sorted by dimension, joined with U+001F).
//!
//! Structured fields are parsed with `sfv`'s visitors, which borrow from the header value
//! and do not allocate. A field whose lines do not parse as RFC 9651 says is ignored whole
//! (§4.2: a failed parse of the combined value fails the field).

use super::{malformed, names, text, Cx, Seen};
use crate::value;
use crate::{Dialect, Limit, Name, PartitionKey, QuotaUnit, Scope, MAX_LIMITS};
use http::HeaderName;
use sfv::visitor::{
    DictionaryVisitor, EntryVisitor, Ignored, InnerListVisitor, ItemVisitor, ListVisitor,
    ParameterVisitor,
};
use sfv::{BareItemFromInput, KeyRef, Parser};
use std::convert::Infallible;
use std::time::Duration;

names! {
    RATELIMIT = "ratelimit";
    RATELIMIT_POLICY = "ratelimit-policy";
    RATELIMIT_PARTITION = "ratelimit-partition";
    RATELIMIT_LIMIT = "ratelimit-limit";
    RATELIMIT_REMAINING = "ratelimit-remaining";
    RATELIMIT_RESET = "ratelimit-reset";
    GITLAB_NAME = "ratelimit-name";
    GITLAB_OBSERVED = "ratelimit-observed";
    GITLAB_RESET_TIME = "ratelimit-resettime";
}

/// One list member: a policy (`"name";q=;w=`, or `100;w=60` before draft 08) or a
/// `RateLimit` member (`"name";r=;t=`).
#[derive(Clone, Default)]
struct Member {
    name: Option<Name>,
    /// A bare integer member (drafts before 08: the quota itself).
    int: Option<u64>,
    q: Option<u64>,
    w: Option<Duration>,
    r: Option<u64>,
    t: Option<Duration>,
    /// The cost of this request (`c`, draft 12).
    c: Option<u64>,
    qu: Option<QuotaUnit>,
    pk: Option<PartitionKey>,
    /// `RateLimit-Partition` dimensions with a fixed value, in arrival order.
    dims: Dims,
}

/// The most partition dimensions kept per policy.
const MAX_DIMS: usize = 4;

/// Fixed partition dimension values (`user_id="u1"`), bounded.
#[derive(Clone, Default)]
struct Dims {
    items: [(Option<Name>, Option<Name>); MAX_DIMS],
    len: usize,
}

impl Dims {
    fn add(&mut self, key: &str, value: &str) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = (Some(Name::new(key)), Some(Name::new(value)));
            self.len += 1;
        }
    }

    /// The partition key: the values sorted by dimension name, joined with U+001F (the
    /// construction PR #166 proposes). `None` when no dimension has a fixed value.
    fn key(&self) -> Option<PartitionKey> {
        if self.len == 0 {
            return None;
        }
        let mut dims: Vec<(&str, &str)> = self.items[..self.len]
            .iter()
            .filter_map(|(k, v)| Some((k.as_ref()?.as_str(), v.as_ref()?.as_str())))
            .collect();
        dims.sort_by(|a, b| a.0.cmp(b.0));
        let joined = dims
            .iter()
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
            .join("\u{1f}");
        Some(PartitionKey::new(joined.as_bytes()))
    }
}

impl Member {
    /// The quota this member states: `q` (`l` in some revisions) or the bare integer.
    fn quota(&self) -> Option<u64> {
        self.q.or(self.int)
    }
}

/// The members of one list field, at most [`MAX_LIMITS`] kept.
#[derive(Default)]
struct Members {
    items: [Member; MAX_LIMITS],
    len: usize,
    dropped: bool,
}

impl Members {
    fn as_slice(&self) -> &[Member] {
        &self.items[..self.len]
    }

    fn add(&mut self, m: Member) {
        if self.len == MAX_LIMITS {
            self.dropped = true;
        } else {
            self.items[self.len] = m;
            self.len += 1;
        }
    }
}

/// Parses every line of a list field into `Members`; `None` (reported) when a line is
/// not a valid RFC 9651 List.
fn parse_list(cx: &Cx<'_>, name: &HeaderName) -> Option<Members> {
    let mut members = Members::default();
    let mut any = false;
    for line in cx.headers.get_all(name) {
        any = true;
        let bytes = trim(line.as_bytes());
        if bytes.is_empty() {
            continue;
        }
        if let Err(e) = Parser::new(bytes).parse_list_with_visitor(&mut members) {
            malformed(name, line.to_str().unwrap_or("<binary>"), e);
            return None;
        }
    }
    any.then_some(members)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end]
}

impl<'de> ListVisitor<'de> for &mut Members {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self) -> Result<impl EntryVisitor<'de>, Self::Error> {
        Ok(Entry(self))
    }

    fn finish(self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct Entry<'a>(&'a mut Members);

impl<'de> EntryVisitor<'de> for Entry<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        tracing::debug!("ignoring an inner list in a rate-limit field");
        Ok(Ignored)
    }
}

impl<'de, 'a> ItemVisitor<'de> for Entry<'a> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Self::Error> {
        let mut m = Member::default();
        match bare {
            BareItemFromInput::String(s) => m.name = Some(Name::new(s.as_str())),
            BareItemFromInput::Token(t) => m.name = Some(Name::new(t.as_str())),
            BareItemFromInput::Integer(i) => m.int = nonneg(i64::from(i), "quota"),
            _ => tracing::debug!(
                "ignoring a rate-limit member that is neither a name nor an integer"
            ),
        }
        Ok(Params { members: self.0, m })
    }
}

struct Params<'a> {
    members: &'a mut Members,
    m: Member,
}

fn nonneg(i: i64, what: &'static str) -> Option<u64> {
    match u64::try_from(i) {
        Ok(v) => Some(v.min(value::MAX_COUNT)),
        Err(_) => {
            tracing::debug!(
                param = what,
                value = i,
                "ignoring negative rate-limit parameter"
            );
            None
        }
    }
}

fn int_param(v: &BareItemFromInput<'_>, what: &'static str) -> Option<u64> {
    match v {
        BareItemFromInput::Integer(i) => nonneg(i64::from(*i), what),
        _ => {
            tracing::debug!(
                param = what,
                "ignoring rate-limit parameter that is not an integer"
            );
            None
        }
    }
}

fn unit(s: &str) -> QuotaUnit {
    match s {
        "request" | "requests" => QuotaUnit::Requests,
        "content-bytes" => QuotaUnit::ContentBytes,
        "concurrency" | "concurrent-requests" => QuotaUnit::ConcurrentRequests,
        "tokens" | "token" => QuotaUnit::Tokens,
        other => QuotaUnit::Other(Name::new(other)),
    }
}

impl<'de> ParameterVisitor<'de> for Params<'_> {
    type Out = ();
    type Error = Infallible;

    fn parameter(&mut self, key: &'de KeyRef, v: BareItemFromInput<'de>) -> Result<(), Infallible> {
        // RFC 9651: a repeated parameter's last value wins, so every arm overwrites.
        let m = &mut self.m;
        match key.as_str() {
            "q" | "l" => m.q = int_param(&v, "q"),
            "w" | "window" => m.w = int_param(&v, "w").map(|s| value::cap(Duration::from_secs(s))),
            // Draft 12 renames `r` to `a` (available) and `t` to `w` on `RateLimit` items.
            "r" | "a" => m.r = int_param(&v, "r"),
            "t" => m.t = int_param(&v, "t").map(|s| value::cap(Duration::from_secs(s))),
            "c" => m.c = int_param(&v, "c"),
            "qu" => {
                m.qu = match &v {
                    BareItemFromInput::String(s) => Some(unit(s.as_str())),
                    BareItemFromInput::Token(t) => Some(unit(t.as_str())),
                    _ => {
                        tracing::debug!("ignoring a quota unit that is not a string");
                        None
                    }
                }
            }
            "pk" => {
                m.pk = match &v {
                    BareItemFromInput::ByteSequence(b) => Some(PartitionKey::new(b)),
                    BareItemFromInput::String(s) => Some(PartitionKey::new(s.as_str().as_bytes())),
                    BareItemFromInput::Token(t) => Some(PartitionKey::new(t.as_str().as_bytes())),
                    _ => {
                        tracing::debug!("ignoring a partition key that is not a byte sequence");
                        None
                    }
                }
            }
            // `RateLimit-Partition` dimensions with a fixed value; extension parameters
            // (`comment`, vendor ones) are not ours to read.
            k => match &v {
                BareItemFromInput::String(s) => m.dims.add(k, s.as_str()),
                BareItemFromInput::Token(t) => m.dims.add(k, t.as_str()),
                _ => {}
            },
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Infallible> {
        self.members.add(self.m);
        Ok(())
    }
}

/// The draft-07 `RateLimit` dictionary's three keys.
#[derive(Default)]
struct Draft07 {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
    seen: bool,
}

#[derive(Clone, Copy)]
enum Key07 {
    Limit,
    Remaining,
    Reset,
}

impl<'de> DictionaryVisitor<'de> for &mut Draft07 {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Infallible> {
        let k = match key.as_str() {
            "limit" => Some(Key07::Limit),
            "remaining" => Some(Key07::Remaining),
            "reset" => Some(Key07::Reset),
            _ => None,
        };
        Ok(k.map(|k| Entry07 { d: self, k }))
    }

    fn finish(self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct Entry07<'a> {
    d: &'a mut Draft07,
    k: Key07,
}

impl<'de> EntryVisitor<'de> for Entry07<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl ItemVisitor<'de>, Infallible> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Infallible> {
        Ok(Ignored)
    }
}

impl<'de> ItemVisitor<'de> for Entry07<'_> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        bare: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Infallible> {
        let v = int_param(&bare, "draft-07 member");
        self.d.seen = true;
        // Last value wins for a repeated key (RFC 9651 §4.2.2).
        match self.k {
            Key07::Limit => self.d.limit = v,
            Key07::Remaining => self.d.remaining = v,
            Key07::Reset => self.d.reset = v.map(|s| value::cap(Duration::from_secs(s))),
        }
        Ok(Ignored)
    }
}

/// Reads the IETF fields (and GitLab's use of them).
pub(super) fn read(cx: &mut Cx<'_>) {
    let policy = if cx.seen.has(Seen::IETF_POLICY) {
        parse_list(cx, &RATELIMIT_POLICY)
    } else {
        None
    };
    if cx.seen.has(Seen::IETF_LIST) {
        if let Some(d) = draft07(cx) {
            let mut l = Limit::new(Scope::Unspecified, Dialect::IetfDraft07);
            l.limit = d.limit;
            l.remaining = d.remaining;
            l.reset = d.reset;
            push_with_policies(cx, l, policy.as_ref(), Dialect::IetfDraft07);
        } else if let Some(live) = parse_list(cx, &RATELIMIT) {
            join(cx, policy.as_ref(), Some(&live));
        } else if policy.is_some() {
            join(cx, policy.as_ref(), None);
        }
    } else if cx.seen.has(Seen::IETF_TRIPLE | Seen::GITLAB) {
        if cx.seen.has(Seen::GITLAB) {
            gitlab(cx);
        } else {
            triple(cx, policy.as_ref());
        }
    } else if policy.is_some() {
        join(cx, policy.as_ref(), None);
    }
}

/// The draft-07 dictionary, when `RateLimit` is one with at least one of its keys. A
/// draft-08 list of token names also parses as a Dictionary, but without these keys.
fn draft07(cx: &Cx<'_>) -> Option<Draft07> {
    let mut d = Draft07::default();
    for line in cx.headers.get_all(&RATELIMIT) {
        let bytes = trim(line.as_bytes());
        if bytes.is_empty() {
            continue;
        }
        Parser::new(bytes)
            .parse_dictionary_with_visitor(&mut d)
            .ok()?;
    }
    d.seen.then_some(d)
}

/// Drafts 08+: one limit per policy name, `RateLimit` members joined to their policy.
fn join(cx: &mut Cx<'_>, policy: Option<&Members>, live: Option<&Members>) {
    let start = cx.snap.limits().len();
    let mut truncated = false;
    if let Some(policy) = policy {
        truncated |= policy.dropped;
        for p in policy.as_slice() {
            let mut l = match &p.name {
                Some(n) => Limit::new(Scope::Named(n.clone()), Dialect::Ietf),
                // An integer policy without a triple or dictionary to attach to (drafts
                // 04–07 sent alone).
                None => Limit::new(Scope::Unspecified, Dialect::IetfDraft06),
            };
            l.limit = p.quota();
            l.window = p.w;
            l.unit = p.qu.clone();
            l.partition_key = p.pk.clone();
            cx.push(l);
        }
    }
    if let Some(live) = live {
        truncated |= live.dropped;
        for m in live.as_slice() {
            let Some(name) = &m.name else {
                tracing::debug!("ignoring a RateLimit member without a policy name");
                continue;
            };
            let found = cx.snap.limits_mut()[start..]
                .iter_mut()
                .find(|l| matches!(&l.scope, Scope::Named(n) if n == name));
            // Draft 12: `w` on a `RateLimit` item is the effective window, the time
            // until the quota resets.
            let reset = m.t.or(m.w);
            match found {
                Some(l) => {
                    l.remaining = m.r;
                    l.reset = reset;
                    l.cost = m.c;
                    if l.partition_key.is_none() {
                        l.partition_key = m.pk.clone();
                    }
                }
                None => {
                    let mut l = Limit::new(Scope::Named(name.clone()), Dialect::Ietf);
                    l.remaining = m.r;
                    l.reset = reset;
                    l.cost = m.c;
                    l.partition_key = m.pk.clone();
                    cx.push(l);
                }
            }
        }
    }
    if truncated {
        cx.snap.mark_truncated();
    }
    if cx.headers.contains_key(&RATELIMIT_PARTITION) {
        partition(cx, start);
    }
}

/// `RateLimit-Partition` (draft 12 working copy): each member names a policy and carries
/// its partition dimensions as parameters; fixed values make the key of limits that state
/// none. A field that does not parse is ignored whole, like the others.
fn partition(cx: &mut Cx<'_>, start: usize) {
    let Some(members) = parse_list(cx, &RATELIMIT_PARTITION) else {
        return;
    };
    for m in members.as_slice() {
        let (Some(name), Some(key)) = (&m.name, m.dims.key()) else {
            continue;
        };
        if let Some(l) = cx.snap.limits_mut()[start..]
            .iter_mut()
            .find(|l| matches!(&l.scope, Scope::Named(n) if n == name))
        {
            if l.partition_key.is_none() {
                l.partition_key = Some(key);
            }
        }
    }
}

/// Pushes `main` with its window taken from the policy stating the same quota, then the
/// other policies as limits of their own (quota and window only).
fn push_with_policies(
    cx: &mut Cx<'_>,
    mut main: Limit,
    policy: Option<&Members>,
    dialect: Dialect,
) {
    let matched = policy.and_then(|p| {
        p.as_slice()
            .iter()
            .position(|m| m.name.is_none() && m.quota().is_some() && m.quota() == main.limit)
    });
    if main.window.is_none() {
        if let (Some(i), Some(p)) = (matched, policy) {
            main.window = p.as_slice()[i].w;
        }
    }
    cx.push(main);
    let Some(policy) = policy else { return };
    for (i, p) in policy.as_slice().iter().enumerate() {
        if Some(i) == matched {
            continue;
        }
        let mut l = match &p.name {
            Some(n) => Limit::new(Scope::Named(n.clone()), Dialect::Ietf),
            None => Limit::new(Scope::Unspecified, dialect),
        };
        l.limit = p.quota();
        l.window = p.w;
        l.unit = p.qu.clone();
        l.partition_key = p.pk.clone();
        cx.push(l);
    }
    if policy.dropped {
        cx.snap.mark_truncated();
    }
}

/// An sf-integer count: digits only, at most 15 of them (RFC 9651 §3.3.1). Unlike the
/// plain `x-ratelimit-*` counts, a longer number breaks the field's grammar and is
/// dropped, not capped.
fn sf_count(s: &str) -> Result<u64, value::ValueError> {
    let digits = value::trim_ows(s);
    if digits.len() > 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(value::ValueError::TooLong);
    }
    value::count(s)
}

/// A field's bare value and its `w` parameter, for the draft-00-style fields that take
/// parameters after the number (`RateLimit-Remaining: 76;w=21600`). Other parameters are
/// ignored; a malformed `w` is dropped on its own.
fn with_params<'h>(cx: &Cx<'h>, name: &HeaderName) -> (Option<&'h str>, Option<Duration>) {
    let Some(s) = text(cx.headers, name) else {
        return (None, None);
    };
    let mut parts = s.split(';').map(value::trim_ows);
    let bare = parts.next().filter(|b| !b.is_empty());
    let w = parts
        .filter_map(|p| p.strip_prefix("w="))
        .find_map(|w| match sf_count(w) {
            Ok(secs) => Some(value::cap(Duration::from_secs(secs))),
            Err(why) => {
                malformed(name, s, why);
                None
            }
        });
    (bare, w)
}

/// A reset value (see [`reset`]) already cut from its parameters.
fn reset_value(cx: &Cx<'_>, name: &HeaderName, s: &str) -> Option<Duration> {
    let whole = value::trim_ows(s).split('.').next().unwrap_or_default();
    let parsed = match value::fixed(s) {
        // An integer part over 15 digits breaks the sf-integer grammar: dropped.
        Ok(_) if whole.len() > 15 => Err(value::ValueError::TooLong),
        Ok(x) => Ok(value::reset_by_magnitude(x, cx.now())),
        Err(value::ValueError::NotANumber) => {
            value::http_date(s).map(|t| value::until(t, cx.now()))
        }
        Err(e) => Err(e),
    };
    parsed.map_err(|why| malformed(name, s, why)).ok()
}

/// A reset that servers send as delta seconds (the drafts) or epoch seconds (GitLab and
/// others reusing the name): decided by magnitude; an HTTP-date is tolerated too.
fn reset(cx: &Cx<'_>, name: &HeaderName) -> Option<Duration> {
    let now = cx.now();
    cx.field(name, |s| match value::fixed(s) {
        Ok(x) => Ok(value::reset_by_magnitude(x, now)),
        Err(value::ValueError::NotANumber) => value::http_date(s).map(|t| value::until(t, now)),
        Err(e) => Err(e),
    })
}

/// Drafts 00–06: `RateLimit-Limit` (expiring limit, then policies before draft 04),
/// `-Remaining`, `-Reset`, and `RateLimit-Policy` from draft 04.
fn triple(cx: &mut Cx<'_>, policy: Option<&Members>) {
    let dialect = if policy.is_some() {
        Dialect::IetfDraft06
    } else {
        Dialect::IetfDraft03
    };
    let mut main = Limit::new(Scope::Unspecified, dialect);
    let mut inline_policies = None;
    // Fast path for the usual bare number; lists of policies go through the SF parser.
    // An sf-integer has at most 15 digits (RFC 9651 §3.3.1): a longer one is dropped.
    let plain = cx.text(&RATELIMIT_LIMIT).and_then(|s| sf_count(s).ok());
    if plain.is_some() {
        main.limit = plain;
    } else if cx.headers.contains_key(&RATELIMIT_LIMIT) {
        match parse_list(cx, &RATELIMIT_LIMIT) {
            Some(mut members) if members.len > 0 && members.items[0].int.is_some() => {
                main.limit = members.items[0].int;
                main.window = members.items[0].w;
                // The rest are quota policies (`10, 10;w=1, 50;w=60`).
                members.items.rotate_left(1);
                members.len -= 1;
                inline_policies = Some(members);
            }
            Some(_) => malformed(
                &RATELIMIT_LIMIT,
                text(cx.headers, &RATELIMIT_LIMIT).unwrap_or(""),
                "no expiring limit",
            ),
            None => {}
        }
    }
    // Parameters may follow every field's value (`76;w=21600` on Remaining too).
    let (remaining, w_remaining) = with_params(cx, &RATELIMIT_REMAINING);
    main.remaining = remaining.and_then(|s| {
        sf_count(s)
            .map_err(|why| malformed(&RATELIMIT_REMAINING, s, why))
            .ok()
    });
    let (reset_text, w_reset) = with_params(cx, &RATELIMIT_RESET);
    main.reset = reset_text.and_then(|s| reset_value(cx, &RATELIMIT_RESET, s));
    main.window = main.window.or(w_remaining).or(w_reset);
    if main.limit.is_none() && main.remaining.is_none() && main.reset.is_none() {
        return;
    }
    // Weights & Biases sends only `RateLimit-Remaining` (0–1000 scale) and `-Reset`: the
    // remaining is kept as stated, with no scope or unit claimed for it.
    push_with_policies(cx, main, policy.or(inline_policies.as_ref()), dialect);
}

/// GitLab (<https://docs.gitlab.com/ee/administration/settings/user_and_ip_rate_limits.html>,
/// "Response headers"): `RateLimit-Name`, `-Limit`, `-Observed`, `-Remaining`, `-Reset`
/// (epoch seconds), `-ResetTime` (HTTP-date).
fn gitlab(cx: &mut Cx<'_>) {
    let scope = match cx.text(&GITLAB_NAME) {
        Some(n) if !n.is_empty() => Scope::Named(Name::new(n)),
        _ => Scope::Unspecified,
    };
    let mut l = Limit::new(scope, Dialect::GitLab);
    l.limit = cx.field(&RATELIMIT_LIMIT, value::count);
    l.remaining = cx.count(&RATELIMIT_REMAINING);
    if l.remaining.is_none() {
        // `Observed` is the requests counted this period: the remainder follows from it.
        if let (Some(limit), Some(observed)) = (l.limit, cx.count(&GITLAB_OBSERVED)) {
            l.remaining = Some(limit.saturating_sub(observed));
        }
    }
    let now = cx.now();
    l.reset = reset(cx, &RATELIMIT_RESET).or_else(|| {
        cx.field(&GITLAB_RESET_TIME, |s| {
            value::http_date(s).map(|t| value::until(t, now))
        })
    });
    cx.push(l);
}
