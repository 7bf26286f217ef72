//! One bucket's state as a value a shared store can keep elsewhere: [`SharedBucket`] runs
//! the same rules as [`LocalStore`](super::LocalStore) and encodes to compact bytes.
//!
//! A store shared by processes (Redis, a database) keeps the bytes and serializes the
//! writers (compare-and-set); the rules stay here, once, so every store decides alike.
//!
//! # The encoding
//!
//! Hand-written, versioned, little-endian: the magic `AB`, a format version, then every
//! field in declaration order. Each instant is a signed count of nanoseconds on a
//! timeline shared by the processes (an [`Anchor`] maps this process's instants onto
//! it), so a state written by one process reads the same in another whose monotonic
//! clock started elsewhere. Decoding checks every length, tag and range and fails with a
//! [`DecodeError`], never a panic; bytes left over are an error too.
//!
//! The codec names every field of every struct it writes (no `..`), so a field added to
//! the bucket state stops this file from compiling until the codec learns it (and bumps
//! [`FORMAT_VERSION`]).

use super::boundary::Boundary;
use super::bucket::{BucketState, Exhausted};
use super::drip::Drip;
use super::learned::{Answer, Learned, Seen, MAX_SCOPES};
use super::outage::Outage;
use super::refill::Refill;
use super::released::Releases;
use super::throttle::{SlowStart, Throttled};
use super::time::{later, nanos, MAX_SPAN};
use super::window::{Pace, Returns};
use super::{Admission, Decision, Observation};
use abide_headers::{Name, Scope, MAX_NAME_LEN};
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

/// The version of the encoding [`SharedBucket::encode`] writes. A store seeing another
/// version (a fleet mid-upgrade) gets a [`DecodeError`] and applies its failure policy.
pub const FORMAT_VERSION: u8 = 12;

const MAGIC: [u8; 2] = *b"AB";

/// Maps this process's [`Instant`]s onto a timeline shared by every process (for
/// instance a Redis server's `TIME` in nanoseconds): `at` is `wire_ns` on that timeline.
///
/// ```
/// use abide_cap::store::Anchor;
/// use tokio::time::Instant;
///
/// let now = Instant::now();
/// let anchor = Anchor::new(now, 1_700_000_000_000_000_000);
/// assert_eq!(anchor.wire_ns(now + std::time::Duration::from_millis(5)), 1_700_000_000_005_000_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    at: Instant,
    wire_ns: i64,
}

impl Anchor {
    /// `at` (an instant of this process) is `wire_ns` on the shared timeline.
    pub fn new(at: Instant, wire_ns: i64) -> Self {
        Anchor { at, wire_ns }
    }

    /// Where `instant` lies on the shared timeline, in nanoseconds (saturating at the
    /// ends of `i64`, about 292 years either side of its zero).
    pub fn wire_ns(&self, instant: Instant) -> i64 {
        let delta = if instant >= self.at {
            i128::try_from((instant - self.at).as_nanos()).unwrap_or(i128::MAX)
        } else {
            -i128::try_from((self.at - instant).as_nanos()).unwrap_or(i128::MAX)
        };
        let wire = i128::from(self.wire_ns).saturating_add(delta);
        i64::try_from(wire).unwrap_or(if wire < 0 { i64::MIN } else { i64::MAX })
    }

    /// The instant of this process at `wire_ns` on the shared timeline, `None` when this
    /// process's clock cannot represent it.
    pub fn instant(&self, wire_ns: i64) -> Option<Instant> {
        let delta = i128::from(wire_ns) - i128::from(self.wire_ns);
        let span = Duration::from_nanos(u64::try_from(delta.unsigned_abs()).ok()?);
        if delta >= 0 {
            self.at.checked_add(span)
        } else {
            self.at.checked_sub(span)
        }
    }
}

/// Bytes that are not a bucket state this version can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    what: &'static str,
    offset: usize,
}

impl DecodeError {
    /// What was wrong, in a few words.
    pub fn reason(&self) -> &'static str {
        self.what
    }

    /// The byte offset where reading failed.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bucket state does not decode: {} at byte {}",
            self.what, self.offset
        )
    }
}

impl StdError for DecodeError {}

/// One bucket's state, with the rules every store applies, as a value: what a store
/// shared by processes keeps (encoded) between calls.
///
/// The methods are those of [`QuotaStore`](super::QuotaStore) on one bucket, answered at
/// once: the caller owns the state and decides where it lives.
///
/// ```
/// use abide_cap::store::{Admission, Anchor, BucketPolicy, Decision, SharedBucket};
/// use abide_cap::BucketKey;
/// use std::time::Duration;
/// use tokio::time::Instant;
///
/// let (key, policy, now) = (BucketKey::new("api"), BucketPolicy::default(), Instant::now());
/// let mut bucket = SharedBucket::new(now);
/// bucket.pause(now + Duration::from_secs(2));
///
/// // Written by one process...
/// let bytes = bucket.encode(&Anchor::new(now, 0));
/// // ...read by another, whose clock reads `later` at the same moment.
/// let later = now + Duration::from_secs(100);
/// let mut theirs = SharedBucket::decode(&bytes, &Anchor::new(later, 0))?;
/// let d = theirs.admit(&Admission::new(&key, 1, later, &policy));
/// assert!(matches!(d, Decision::Wait { until, .. } if until == later + Duration::from_secs(2)));
/// # Ok::<(), abide_cap::store::DecodeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedBucket {
    state: BucketState,
}

impl SharedBucket {
    /// A bucket nobody has seen, first seen at `now`.
    pub fn new(now: Instant) -> Self {
        SharedBucket {
            state: BucketState::new(now),
        }
    }

    /// Admits one attempt (see [`QuotaStore::admit`](super::QuotaStore::admit)).
    pub fn admit(&mut self, admission: &Admission<'_>) -> Decision {
        self.state.admit(admission)
    }

    /// Learns from one outcome (see [`QuotaStore::observe`](super::QuotaStore::observe)).
    pub fn observe(&mut self, observation: &Observation<'_>) {
        self.state.observe(observation);
    }

    /// Pauses the bucket until `until`, never shortening a longer pause.
    pub fn pause(&mut self, until: Instant) {
        self.state.pause(until);
    }

    /// Marks the bucket exhausted until `until`, when one probe may go.
    pub fn exhaust(&mut self, until: Instant) {
        self.state.exhaust(until);
    }

    /// Gives back the slot of `admission.reservation` (see
    /// [`QuotaStore::cancel`](super::QuotaStore::cancel)).
    pub fn cancel(&mut self, admission: &Admission<'_>) {
        self.state.cancel(admission);
    }

    /// Whether dropping the bucket at `now` loses nothing but history: unused for `idle`
    /// and nothing pending (what [`LocalStore`](super::LocalStore) sweeps).
    pub fn is_idle(&self, now: Instant, idle: Duration) -> bool {
        self.state.is_idle(now, idle)
    }

    /// When a store may forget the bucket: `idle` after the last instant it holds (its
    /// last use, the end of a pause, a reserved slot, a learned reset, an exhaustion's or
    /// outage's hold and probe lease). From then on, unless it is exhausted or in an
    /// outage, it [is idle](Self::is_idle). An exhausted bucket or one in an outage is
    /// forgotten `idle` after its hold and lease too: whoever comes next finds a fresh
    /// bucket and goes, as a probe would have.
    pub fn expires_at(&self, idle: Duration) -> Instant {
        let BucketState {
            epoch: _,
            requests: _,
            units: _,
            paused_until,
            stated_until,
            exhausted,
            outage,
            request_tat,
            cost_tat,
            learned,
            throttled,
            drip,
            born: _,
            releases: _,
            last_used,
        } = &self.state;
        let mut last = *last_used;
        let mut see = |at: Option<Instant>| {
            if let Some(at) = at {
                last = last.max(at);
            }
        };
        see(*paused_until);
        see(stated_until.map(|(until, _)| until));
        if let Some(ex) = exhausted {
            see(Some(ex.until));
            see(ex.probe_lease);
        }
        if let Some(o) = outage {
            see(Some(o.until));
            see(o.probe_lease);
        }
        see(*request_tat);
        see(*cost_tat);
        for l in learned {
            see(Some(l.pace.tat));
            see(Some(l.pace.reset_at));
            see(l.refill.map(|r| r.tat));
        }
        see(throttled.map(|t| t.tat));
        see(drip.as_ref().map(|d| d.next));
        later(last, idle)
    }

    /// The state as bytes, its instants placed on the shared timeline by `anchor`.
    pub fn encode(&self, anchor: &Anchor) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::with_capacity(128),
            anchor,
        };
        w.out.extend_from_slice(&MAGIC);
        w.u8(FORMAT_VERSION);
        w.bucket(&self.state);
        w.out
    }

    /// Reads a state written by [`encode`](Self::encode) (by any process on the same
    /// timeline), its instants mapped into this process by `anchor`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the bytes are not a whole state of [`FORMAT_VERSION`]:
    /// wrong magic or version, truncated, a bad tag or length, an instant this process
    /// cannot represent, or bytes left over.
    pub fn decode(bytes: &[u8], anchor: &Anchor) -> Result<Self, DecodeError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            anchor,
        };
        if r.take(2)? != MAGIC {
            return Err(r.error_at(0, "not a bucket state (bad magic)"));
        }
        if r.u8()? != FORMAT_VERSION {
            return Err(r.error_at(2, "unknown format version"));
        }
        let state = r.bucket()?;
        if r.pos != bytes.len() {
            return Err(r.error("bytes left over"));
        }
        Ok(SharedBucket { state })
    }
}

const SCOPE_REQUESTS: u8 = 0;
const SCOPE_TOKENS: u8 = 1;
const SCOPE_INPUT: u8 = 2;
const SCOPE_OUTPUT: u8 = 3;
const SCOPE_NAMED: u8 = 4;
const SCOPE_UNSPECIFIED: u8 = 5;

struct Writer<'a> {
    out: Vec<u8>,
    anchor: &'a Anchor,
}

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn instant(&mut self, at: Instant) {
        let ns = self.anchor.wire_ns(at);
        self.out.extend_from_slice(&ns.to_le_bytes());
    }
    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u32(d.subsec_nanos());
    }
    fn option<T>(&mut self, v: &Option<T>, mut f: impl FnMut(&mut Self, &T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn bucket(&mut self, s: &BucketState) {
        let BucketState {
            epoch,
            requests,
            units,
            paused_until,
            stated_until,
            exhausted,
            outage,
            request_tat,
            cost_tat,
            learned,
            throttled,
            drip,
            born,
            releases: _,
            last_used,
        } = s;
        self.u64(*epoch);
        self.u64(*requests);
        self.u64(*units);
        self.option(paused_until, |w, at| w.instant(*at));
        self.option(stated_until, |w, (until, end)| {
            w.instant(*until);
            w.instant(*end);
        });
        self.option(exhausted, |w, ex| w.exhausted(ex));
        self.option(outage, |w, o| w.outage(o));
        self.option(request_tat, |w, at| w.instant(*at));
        self.option(cost_tat, |w, at| w.instant(*at));
        // At most MAX_SCOPES entries, far below 256.
        let n = learned.len().min(MAX_SCOPES).min(usize::from(u8::MAX));
        self.u8(n as u8);
        for l in &learned[..n] {
            self.learned(l);
        }
        self.option(throttled, |w, t| w.throttled(t));
        self.option(drip, |w, d| w.drip(d));
        self.instant(*born);
        self.instant(*last_used);
    }

    fn exhausted(&mut self, ex: &Exhausted) {
        let Exhausted {
            until,
            epoch,
            probe_lease,
            refused_probes,
        } = ex;
        self.instant(*until);
        self.u64(*epoch);
        self.option(probe_lease, |w, at| w.instant(*at));
        self.u32(*refused_probes);
    }

    fn outage(&mut self, o: &Outage) {
        let Outage {
            failures,
            until,
            probe_lease,
            epoch,
            began,
            struck,
            prober,
            others,
        } = o;
        self.u32(*failures);
        self.instant(*until);
        self.option(probe_lease, |w, at| w.instant(*at));
        self.u64(*epoch);
        self.instant(*began);
        self.u32(*struck);
        self.u64(*prober);
        self.bool(*others);
    }

    fn scope(&mut self, scope: &Scope) {
        let named = |w: &mut Self, name: &str| {
            w.u8(SCOPE_NAMED);
            // Names are at most MAX_NAME_LEN (128) bytes.
            let bytes = &name.as_bytes()[..name.len().min(MAX_NAME_LEN)];
            w.u8(bytes.len() as u8);
            w.out.extend_from_slice(bytes);
        };
        match scope {
            Scope::Requests => self.u8(SCOPE_REQUESTS),
            Scope::Tokens => self.u8(SCOPE_TOKENS),
            Scope::InputTokens => self.u8(SCOPE_INPUT),
            Scope::OutputTokens => self.u8(SCOPE_OUTPUT),
            Scope::Unspecified => self.u8(SCOPE_UNSPECIFIED),
            Scope::Named(name) => named(self, name.as_str()),
            // A kind of scope this codec does not know yet travels as its name.
            other => named(self, other.as_str()),
        }
    }

    fn learned(&mut self, l: &Learned) {
        let Learned {
            scope,
            counts_cost,
            applied,
            pace,
            refill,
            window_evidence,
            bucket_evidence,
            last,
            // Only steers this process's own spends (see `Releases`).
            refills: _,
            seen,
        } = l;
        self.scope(scope);
        self.bool(*counts_cost);
        self.u64(*applied);
        self.pace(pace);
        self.option(refill, |w, r| w.refill(r));
        self.u8(*window_evidence);
        self.u8(*bucket_evidence);
        self.option(last, |w, a| {
            let Answer {
                at,
                capacity,
                missing,
                full_at,
            } = a;
            w.instant(*at);
            w.u64(*capacity);
            w.u64(*missing);
            w.instant(*full_at);
        });
        self.option(seen, |w, s| {
            let Seen {
                remaining,
                requests,
                units,
                evidence,
            } = s;
            w.u64(*remaining);
            w.u64(*requests);
            w.u64(*units);
            w.u8(*evidence);
        });
    }

    fn pace(&mut self, p: &Pace) {
        let Pace {
            remaining,
            reset_at,
            span_ns,
            per,
            limit,
            window,
            tat,
            rolled,
            opens,
            returns,
            sliding,
            stated_reset,
            stated_remaining,
            boundary,
            released,
        } = p;
        self.u64(*remaining);
        self.instant(*reset_at);
        self.u64(*span_ns);
        self.u64(*per);
        self.option(limit, |w, v| w.u64(*v));
        self.option(window, |w, d| w.duration(*d));
        self.instant(*tat);
        self.bool(*rolled);
        self.instant(*opens);
        self.option(returns, |w, r| {
            let Returns {
                first,
                from,
                unit_ns,
                taken,
                // What this process let go is kept by it alone (see `Releases`).
                counted: _,
            } = r;
            w.instant(*first);
            w.instant(*from);
            w.u64(*unit_ns);
            w.u64(*taken);
        });
        self.bool(*sliding);
        self.instant(*stated_reset);
        self.u64(*stated_remaining);
        self.option(&boundary.span, |w, (lo, hi)| {
            w.instant(*lo);
            w.instant(*hi);
        });
        self.bool(boundary.agreed);
        self.option(released, |w, at| w.instant(*at));
    }

    fn refill(&mut self, r: &Refill) {
        let Refill {
            capacity,
            phantom,
            unit_ns,
            basis,
            others_per_s,
            drawn,
            sample,
            refused,
            tat,
        } = r;
        self.u64(*capacity);
        self.u64(*phantom);
        self.u64(*unit_ns);
        self.u64(*basis);
        self.f64(*others_per_s);
        self.f64(*drawn);
        self.option(sample, |w, (at, level, mine)| {
            w.instant(*at);
            w.u64(*level);
            w.u64(*mine);
        });
        self.u64(*refused);
        self.instant(*tat);
    }

    fn drip(&mut self, d: &Drip) {
        let Drip {
            interval,
            next,
            anchor,
            anchor_requests,
            served,
            refused,
        } = d;
        self.u64(nanos(*interval));
        self.instant(*next);
        self.instant(*anchor);
        self.u64(*anchor_requests);
        self.u32(*served);
        self.instant(*refused);
    }

    fn throttled(&mut self, t: &Throttled) {
        let Throttled {
            rate,
            drew,
            cut_at,
            cut_requests,
            served,
            slow_start,
            tat,
            resumes,
        } = t;
        self.f64(*rate);
        self.f64(*drew);
        self.instant(*cut_at);
        self.u64(*cut_requests);
        self.bool(*served);
        self.option(slow_start, |w, s| {
            w.f64(s.rate);
            w.option(&s.reached, |w, at| w.instant(*at));
        });
        self.instant(*tat);
        self.instant(*resumes);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    anchor: &'a Anchor,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &'static str) -> DecodeError {
        self.error_at(self.pos, what)
    }
    fn error_at(&self, offset: usize, what: &'static str) -> DecodeError {
        DecodeError { what, offset }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error("truncated"))?;
        let bytes = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.error_at(self.pos - 1, "bad boolean")),
        }
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, DecodeError> {
        let at = self.pos;
        let v = f64::from_bits(self.u64()?);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error_at(at, "non-finite number"))
        }
    }
    fn instant(&mut self) -> Result<Instant, DecodeError> {
        let at = self.pos;
        let ns = i64::from_le_bytes(self.array()?);
        self.anchor
            .instant(ns)
            .ok_or_else(|| self.error_at(at, "instant out of this clock's range"))
    }
    fn duration(&mut self) -> Result<Duration, DecodeError> {
        let secs = self.u64()?;
        let at = self.pos;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(self.error_at(at, "bad duration"));
        }
        Ok(Duration::new(secs, nanos))
    }
    fn option<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(self.error_at(self.pos - 1, "bad option tag")),
        }
    }

    fn bucket(&mut self) -> Result<BucketState, DecodeError> {
        let epoch = self.u64()?;
        let requests = self.u64()?;
        let units = self.u64()?;
        let paused_until = self.option(Self::instant)?;
        let stated_until = self.option(|r| Ok((r.instant()?, r.instant()?)))?;
        let exhausted = self.option(Self::exhausted)?;
        let outage = self.option(Self::outage)?.map(Box::new);
        let request_tat = self.option(Self::instant)?;
        let cost_tat = self.option(Self::instant)?;
        let n = usize::from(self.u8()?);
        if n > MAX_SCOPES {
            return Err(self.error_at(self.pos - 1, "too many learned scopes"));
        }
        let mut learned = Vec::with_capacity(n);
        for _ in 0..n {
            learned.push(self.learned()?);
        }
        let throttled = self.option(Self::throttled)?;
        let drip = self.option(Self::drip)?.map(Box::new);
        let born = self.instant()?;
        let last_used = self.instant()?;
        Ok(BucketState {
            epoch,
            requests,
            units,
            paused_until,
            stated_until,
            exhausted,
            outage,
            request_tat,
            cost_tat,
            learned,
            throttled,
            drip,
            born,
            // Kept by `LocalStore` alone: these answers count by the ticket counters.
            releases: Releases::default(),
            last_used,
        })
    }

    fn exhausted(&mut self) -> Result<Exhausted, DecodeError> {
        Ok(Exhausted {
            until: self.instant()?,
            epoch: self.u64()?,
            probe_lease: self.option(Self::instant)?,
            refused_probes: self.u32()?,
        })
    }

    fn outage(&mut self) -> Result<Outage, DecodeError> {
        Ok(Outage {
            failures: self.u32()?,
            until: self.instant()?,
            probe_lease: self.option(Self::instant)?,
            epoch: self.u64()?,
            began: self.instant()?,
            struck: self.u32()?,
            prober: self.u64()?,
            others: self.bool()?,
        })
    }

    fn scope(&mut self) -> Result<Scope, DecodeError> {
        let at = self.pos;
        Ok(match self.u8()? {
            SCOPE_REQUESTS => Scope::Requests,
            SCOPE_TOKENS => Scope::Tokens,
            SCOPE_INPUT => Scope::InputTokens,
            SCOPE_OUTPUT => Scope::OutputTokens,
            SCOPE_UNSPECIFIED => Scope::Unspecified,
            SCOPE_NAMED => {
                let len = usize::from(self.u8()?);
                if len > MAX_NAME_LEN {
                    return Err(self.error_at(self.pos - 1, "scope name too long"));
                }
                let name_at = self.pos;
                let bytes = self.take(len)?;
                let name = std::str::from_utf8(bytes)
                    .map_err(|_| self.error_at(name_at, "scope name is not UTF-8"))?;
                Scope::Named(Name::new(name))
            }
            _ => return Err(self.error_at(at, "unknown scope")),
        })
    }

    fn learned(&mut self) -> Result<Learned, DecodeError> {
        Ok(Learned {
            scope: self.scope()?,
            counts_cost: self.bool()?,
            applied: self.u64()?,
            pace: self.pace()?,
            refill: self.option(Self::refill)?,
            window_evidence: self.u8()?,
            bucket_evidence: self.u8()?,
            last: self.option(|r| {
                Ok(Answer {
                    at: r.instant()?,
                    capacity: r.u64()?,
                    missing: r.u64()?,
                    full_at: r.instant()?,
                })
            })?,
            refills: false,
            seen: self.option(|r| {
                Ok(Seen {
                    remaining: r.u64()?,
                    requests: r.u64()?,
                    units: r.u64()?,
                    evidence: r.u8()?,
                })
            })?,
        })
    }

    fn pace(&mut self) -> Result<Pace, DecodeError> {
        Ok(Pace {
            remaining: self.u64()?,
            reset_at: self.instant()?,
            span_ns: self.u64()?,
            per: self.u64()?,
            limit: self.option(Self::u64)?,
            window: self.option(Self::duration)?,
            tat: self.instant()?,
            rolled: self.bool()?,
            opens: self.instant()?,
            returns: self.option(|r| {
                Ok(Returns {
                    first: r.instant()?,
                    from: r.instant()?,
                    unit_ns: r.u64()?,
                    taken: r.u64()?,
                    counted: None,
                })
            })?,
            sliding: self.bool()?,
            stated_reset: self.instant()?,
            stated_remaining: self.u64()?,
            boundary: Boundary {
                span: self.option(|r| Ok((r.instant()?, r.instant()?)))?,
                agreed: self.bool()?,
            },
            released: self.option(Self::instant)?,
        })
    }

    fn refill(&mut self) -> Result<Refill, DecodeError> {
        Ok(Refill {
            capacity: self.u64()?,
            phantom: self.u64()?,
            unit_ns: self.u64()?,
            basis: self.u64()?,
            others_per_s: self.f64()?,
            drawn: self.f64()?,
            sample: self.option(|r| Ok((r.instant()?, r.u64()?, r.u64()?)))?,
            refused: self.u64()?,
            tat: self.instant()?,
        })
    }

    fn drip(&mut self) -> Result<Drip, DecodeError> {
        Ok(Drip {
            interval: Duration::from_nanos(self.u64()?).min(MAX_SPAN),
            next: self.instant()?,
            anchor: self.instant()?,
            anchor_requests: self.u64()?,
            served: self.u32()?,
            refused: self.instant()?,
        })
    }

    fn throttled(&mut self) -> Result<Throttled, DecodeError> {
        Ok(Throttled {
            rate: self.f64()?,
            drew: self.f64()?,
            cut_at: self.instant()?,
            cut_requests: self.u64()?,
            served: self.bool()?,
            slow_start: self.option(|r| {
                Ok(SlowStart {
                    rate: r.f64()?,
                    reached: r.option(Self::instant)?,
                })
            })?,
            tat: self.instant()?,
            resumes: self.instant()?,
        })
    }
}
