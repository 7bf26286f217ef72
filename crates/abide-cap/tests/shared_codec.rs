//! `SharedBucket`'s encoding: every state the rules reach survives a round trip exactly
//! (and decides alike afterwards); arbitrary or truncated bytes fail with an error, never
//! a panic.

use abide_cap::store::{
    Admission, Anchor, BucketPolicy, Decision, Observation, SharedBucket, Ticket, FORMAT_VERSION,
};
use abide_cap::{BucketKey, ExhaustionPolicy, Quota};
use abide_classify::{Class, Classification};
use abide_headers::{Dialect, Limit, RateLimitSnapshot, Scope};
use proptest::prelude::*;
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
enum Op {
    Admit {
        cost: u32,
        reserved: bool,
    },
    Observe {
        class: u8,
        dialect: u8,
        scopes: u8,
        remaining: u64,
        reset_ms: u64,
        wait_ms: Option<u64>,
    },
    Pause {
        ms: u64,
    },
    Exhaust {
        ms: u64,
    },
    Cancel {
        cost: u32,
    },
    Elapse {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..2_000, any::<bool>()).prop_map(|(cost, reserved)| Op::Admit { cost, reserved }),
        4 => (0u8..7, 0u8..3, 0u8..4, 0u64..200, 0u64..120_000, proptest::option::of(0u64..5_000))
            .prop_map(|(class, dialect, scopes, remaining, reset_ms, wait_ms)| Op::Observe {
                class, dialect, scopes, remaining, reset_ms, wait_ms,
            }),
        1 => (0u64..10_000).prop_map(|ms| Op::Pause { ms }),
        1 => (0u64..10_000).prop_map(|ms| Op::Exhaust { ms }),
        1 => (1u32..100).prop_map(|cost| Op::Cancel { cost }),
        3 => (0u64..3_000).prop_map(|ms| Op::Elapse { ms }),
    ]
}

fn policy(declared: bool, hold: bool) -> BucketPolicy {
    let mut p = BucketPolicy::default();
    if declared {
        p.request_quota = Some(Quota::per_second(NonZeroU32::new(20).unwrap()));
        p.cost_quota = Some(Quota::per_minute(NonZeroU32::new(40_000).unwrap()));
    }
    if hold {
        p.exhaustion = ExhaustionPolicy::HoldAndProbe;
    }
    p
}

fn snapshot(dialect: u8, scopes: u8, remaining: u64, reset: Duration) -> RateLimitSnapshot {
    let dialect = [Dialect::OpenAi, Dialect::Other, Dialect::Anthropic][usize::from(dialect) % 3];
    let mut s = RateLimitSnapshot::new();
    let all = [Scope::Requests, Scope::Tokens, Scope::named("core")];
    for (i, scope) in all.into_iter().take(usize::from(scopes)).enumerate() {
        let mut l = Limit::new(scope, dialect);
        l.limit = Some(100 * (i as u64 + 1) + remaining);
        l.remaining = Some(remaining * (i as u64 + 1));
        l.reset = Some(reset);
        l.window = (i == 2).then_some(Duration::from_secs(60));
        s.push(l);
    }
    s
}

/// Runs `ops` on a fresh bucket from `start`; returns the bucket, the last decision's
/// reservation and the time reached.
fn run(ops: &[Op], start: Instant, p: &BucketPolicy) -> (SharedBucket, Instant) {
    let key = BucketKey::new("codec");
    let mut b = SharedBucket::new(start);
    let mut now = start;
    let mut last = None;
    for op in ops {
        match *op {
            Op::Admit { cost, reserved } => {
                let a = Admission::new(&key, cost, now, p)
                    .with_max_wait(Duration::from_secs(30))
                    .with_reservation(if reserved { last } else { None });
                if let Decision::Wait { reservation, .. } = b.admit(&a) {
                    last = reservation;
                }
            }
            Op::Observe {
                class,
                dialect,
                scopes,
                remaining,
                reset_ms,
                wait_ms,
            } => {
                let class = [
                    Class::Success,
                    Class::RateLimited,
                    Class::QuotaExhausted,
                    Class::Overloaded,
                    Class::ServerError,
                    Class::ClientError,
                    Class::AuthError,
                ][usize::from(class)];
                let c = Classification::new(class, "codec test")
                    .with_retry_after(wait_ms.map(Duration::from_millis));
                let s = snapshot(dialect, scopes, remaining, Duration::from_millis(reset_ms));
                let ticket = last.map(|r| r.ticket);
                b.observe(&Observation::new(&key, now, &c, &s, p).with_ticket(ticket));
            }
            Op::Pause { ms } => b.pause(now + Duration::from_millis(ms)),
            Op::Exhaust { ms } => b.exhaust(now + Duration::from_millis(ms)),
            Op::Cancel { cost } => {
                b.cancel(&Admission::new(&key, cost, now, p).with_reservation(last));
            }
            Op::Elapse { ms } => now += Duration::from_millis(ms),
        }
    }
    (b, now)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_reachable_state_round_trips_and_decides_alike(
        ops in proptest::collection::vec(op(), 0..60),
        declared: bool,
        hold: bool,
        shift_ms in 0u64..10_000_000,
    ) {
        let p = policy(declared, hold);
        let start = Instant::now();
        let (bucket, now) = run(&ops, start, &p);
        let here = Anchor::new(start, 1_700_000_000_000_000_000);
        let bytes = bucket.encode(&here);
        // Same process: the same state, byte for byte.
        let back = SharedBucket::decode(&bytes, &here).expect("decodes");
        prop_assert_eq!(&back.encode(&here), &bytes);
        prop_assert_eq!(format!("{back:?}"), format!("{bucket:?}"));
        // Another process, whose clock reads `shift` more at the same moment: every
        // instant moves by exactly `shift`, so it decides the same, shifted.
        let shift = Duration::from_millis(shift_ms);
        let there = Anchor::new(start + shift, 1_700_000_000_000_000_000);
        let mut theirs = SharedBucket::decode(&bytes, &there).expect("decodes there");
        prop_assert_eq!(&theirs.encode(&there), &bytes);
        let mut ours = back;
        let key = BucketKey::new("codec");
        let a = Admission::new(&key, 1, now, &p).with_max_wait(Duration::from_secs(30));
        let b = Admission::new(&key, 1, now + shift, &p).with_max_wait(Duration::from_secs(30));
        let (mine, other) = (ours.admit(&a), theirs.admit(&b));
        // A ticket's release is an instant of the clock that admitted it.
        let moved = |t: Ticket| Ticket { released: t.released.map(|r| r + shift), ..t };
        match (mine, other) {
            (Decision::Go(x), Decision::Go(y)) => prop_assert_eq!(moved(x), y),
            (Decision::Wait { until: x, reservation: rx }, Decision::Wait { until: y, reservation: ry }) => {
                prop_assert_eq!(x + shift, y);
                prop_assert_eq!(rx.map(|r| (moved(r.ticket), r.at + shift)), ry.map(|r| (r.ticket, r.at)));
            }
            (Decision::Reject(x), Decision::Reject(y)) => prop_assert_eq!(x, y),
            (x, y) => prop_assert!(false, "decided {x:?} here and {y:?} there"),
        }
        // The expiry covers everything pending: past it, an ordinary bucket is idle.
        let idle = Duration::from_secs(600);
        let expiry = ours.expires_at(idle);
        prop_assert!(expiry >= now);
        let exhausted_or_down = format!("{ours:?}");
        if exhausted_or_down.contains("exhausted: None") && exhausted_or_down.contains("outage: None") {
            prop_assert!(ours.is_idle(expiry, idle), "not idle at its expiry: {ours:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let anchor = Anchor::new(Instant::now(), 0);
        let _ = SharedBucket::decode(&bytes, &anchor);
        // The same with a valid header, so decoding goes past the first check.
        let mut framed = vec![b'A', b'B', FORMAT_VERSION];
        framed.extend_from_slice(&bytes);
        let _ = SharedBucket::decode(&framed, &anchor);
    }

    #[test]
    fn truncated_or_corrupted_states_fail_cleanly(
        ops in proptest::collection::vec(op(), 0..40),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let p = policy(true, false);
        let start = Instant::now();
        let (bucket, _) = run(&ops, start, &p);
        let anchor = Anchor::new(start, 0);
        let bytes = bucket.encode(&anchor);
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert!(SharedBucket::decode(short, &anchor).is_err(), "a truncated state decoded");
        let mut longer = bytes.clone();
        longer.push(0);
        let err = SharedBucket::decode(&longer, &anchor).unwrap_err();
        prop_assert_eq!(err.reason(), "bytes left over");
        let mut corrupted = bytes.clone();
        corrupted[flip.index(bytes.len())] ^= xor;
        // May decode (a flipped counter is still a counter); must not panic.
        if let Ok(b) = SharedBucket::decode(&corrupted, &anchor) {
            let key = BucketKey::new("codec");
            let mut b = b;
            let ops = [
                Op::Admit { cost: 5, reserved: false },
                Op::Observe { class: 1, dialect: 0, scopes: 3, remaining: 3, reset_ms: 900, wait_ms: None },
                Op::Observe { class: 0, dialect: 2, scopes: 2, remaining: 0, reset_ms: 0, wait_ms: None },
                Op::Observe { class: 4, dialect: 1, scopes: 3, remaining: 9, reset_ms: 60_000, wait_ms: None },
                Op::Cancel { cost: 5 },
            ];
            for op in &ops {
                let _ = b.admit(&Admission::new(&key, 7, start, &p));
                if let Op::Observe { class, dialect, scopes, remaining, reset_ms, .. } = *op {
                    let c = Classification::new(
                        [Class::Success, Class::RateLimited, Class::ServerError][usize::from(class) % 3],
                        "corrupted",
                    );
                    let s = snapshot(dialect, scopes, remaining, Duration::from_millis(reset_ms));
                    b.observe(&Observation::new(&key, start, &c, &s, &p));
                }
            }
            let _ = b.expires_at(Duration::from_secs(600));
        }
    }
}

#[test]
fn a_state_of_another_version_is_refused_by_name() {
    let now = Instant::now();
    let anchor = Anchor::new(now, 0);
    let mut bytes = SharedBucket::new(now).encode(&anchor);
    bytes[2] = FORMAT_VERSION + 1;
    let err = SharedBucket::decode(&bytes, &anchor).unwrap_err();
    assert_eq!((err.reason(), err.offset()), ("unknown format version", 2));
    assert!(err.to_string().contains("unknown format version at byte 2"));
    let err = SharedBucket::decode(b"{}", &anchor).unwrap_err();
    assert_eq!(err.reason(), "not a bucket state (bad magic)");
}

#[test]
fn a_fresh_state_is_small() {
    let now = Instant::now();
    let bytes = SharedBucket::new(now).encode(&Anchor::new(now, 0));
    assert!(bytes.len() <= 64, "{} bytes", bytes.len());
}

/// A send rate learned from bare 429s, backed off, then slow-started by two successes in
/// a row: its slow start survives the round trip and goes on deciding alike.
#[test]
fn a_slow_started_send_rate_round_trips() {
    let start = Instant::now();
    let key = BucketKey::new("codec");
    let p = BucketPolicy::default();
    let none = RateLimitSnapshot::new();
    let mut b = SharedBucket::new(start);
    let mut now = start;
    // Admits one request (waiting for its slot if it must, or asking again when told to:
    // a backed-off send rate holds everyone behind its probe) and answers it 10 ms later.
    let send = |b: &mut SharedBucket, now: &mut Instant, class: Class| {
        let ticket = loop {
            let a = Admission::new(&key, 1, *now, &p).with_max_wait(Duration::from_secs(600));
            match b.admit(&a) {
                Decision::Go(t) => break t,
                Decision::Wait {
                    until,
                    reservation: Some(r),
                } => {
                    *now = until;
                    let a = Admission::new(&key, 1, *now, &p).with_reservation(Some(r));
                    match b.admit(&a) {
                        Decision::Go(t) => break t,
                        d => panic!("reserved slot refused: {d:?}"),
                    }
                }
                Decision::Wait {
                    until,
                    reservation: None,
                } => *now = until,
                d => panic!("not admitted: {d:?}"),
            }
        };
        *now += Duration::from_millis(10);
        let c = Classification::new(class, "codec test");
        b.observe(&Observation::new(&key, *now, &c, &none, &p).with_ticket(Some(ticket)));
    };
    for _ in 0..3 {
        send(&mut b, &mut now, Class::RateLimited);
    }
    send(&mut b, &mut now, Class::Success);
    send(&mut b, &mut now, Class::Success);
    let debug = format!("{b:?}");
    assert!(debug.contains("slow_start: Some"), "{debug}");
    let anchor = Anchor::new(start, 1_700_000_000_000_000_000);
    let bytes = b.encode(&anchor);
    let mut back = SharedBucket::decode(&bytes, &anchor).expect("decodes");
    assert_eq!(format!("{back:?}"), debug);
    let a = Admission::new(&key, 1, now, &p).with_max_wait(Duration::from_secs(600));
    assert_eq!(
        format!("{:?}", back.admit(&a)),
        format!("{:?}", b.admit(&a))
    );
}
