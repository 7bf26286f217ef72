//! The behaviour suite every [`QuotaStore`] must pass (feature `testing`).
//!
//! Each check is an `async fn` taking the store under test; checks use their own bucket
//! keys and pass explicit instants, so they need neither a fresh store nor paused time.
//! [`quota_store_suite!`](crate::quota_store_suite) turns them into one `#[tokio::test]`
//! each:
//!
//! ```text
//! // In a store crate's tests (needs tokio with `macros` and `rt`), as this crate's own
//! // tests/store_suite.rs does for LocalStore:
//! abide_cap::quota_store_suite!(my_store::RedisStore::connect_for_tests());
//! ```
//!
//! A check panics (with a message saying what the store did wrong) when the store
//! breaks the contract.

use crate::store::{
    Admission, BucketPolicy, Decision, Observation, QuotaStore, Rejection, Reservation, Ticket,
};
use crate::{BucketKey, ExhaustionPolicy, Quota};
use abide_classify::{Class, Classification, QuotaScope};
use abide_headers::{Dialect, Limit, RateLimitSnapshot, Scope};
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

fn key(name: &str) -> BucketKey {
    BucketKey::new(&format!("abide-suite/{name}"))
}

async fn admit(store: &dyn QuotaStore, a: Admission<'_>) -> Decision {
    store.admit(&a).await.expect("store failed to admit")
}

async fn admit_at(
    store: &dyn QuotaStore,
    key: &BucketKey,
    cost: u32,
    now: Instant,
    policy: &BucketPolicy,
) -> Decision {
    admit(store, Admission::new(key, cost, now, policy)).await
}

async fn observe(
    store: &dyn QuotaStore,
    key: &BucketKey,
    now: Instant,
    ticket: Option<Ticket>,
    class: &Classification,
    snapshot: &RateLimitSnapshot,
    policy: &BucketPolicy,
) {
    let o = Observation::new(key, now, class, snapshot, policy).with_ticket(ticket);
    store.observe(&o).await.expect("store failed to observe");
}

/// Admits one request at `now` and reports a success carrying `snapshot` for it: the
/// first response teaching the store the limits.
async fn teach(
    store: &dyn QuotaStore,
    key: &BucketKey,
    now: Instant,
    snapshot: &RateLimitSnapshot,
    policy: &BucketPolicy,
) -> Ticket {
    let t = go(admit_at(store, key, 1, now, policy).await, "first");
    let success = Classification::success();
    observe(store, key, now, Some(t), &success, snapshot, policy).await;
    t
}

fn go(d: Decision, what: &str) -> Ticket {
    match d {
        Decision::Go(t) => t,
        other => panic!("{what}: expected Go, store answered {other:?}"),
    }
}

/// Admits `n` requests of cost 1 at `now`, each expected to go at once.
async fn admit_all(
    store: &dyn QuotaStore,
    key: &BucketKey,
    n: usize,
    now: Instant,
    policy: &BucketPolicy,
) -> Vec<Ticket> {
    let mut tickets = Vec::with_capacity(n);
    for i in 0..n {
        let d = admit_at(store, key, 1, now, policy).await;
        tickets.push(go(d, &format!("request {i}")));
    }
    tickets
}

fn wait(d: Decision, what: &str) -> (Instant, Option<Reservation>) {
    match d {
        Decision::Wait { until, reservation } => (until, reservation),
        other => panic!("{what}: expected Wait, store answered {other:?}"),
    }
}

fn reject(d: Decision, what: &str) -> Rejection {
    match d {
        Decision::Reject(r) => r,
        other => panic!("{what}: expected Reject, store answered {other:?}"),
    }
}

fn limit(scope: Scope, limit: u64, remaining: u64, reset: Duration) -> Limit {
    let mut l = Limit::new(scope, Dialect::Other);
    l.limit = Some(limit);
    l.remaining = Some(remaining);
    l.reset = Some(reset);
    l
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// A bucket nobody has seen admits at once.
pub async fn fresh_bucket_admits_at_once(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("fresh");
    let now = Instant::now();
    go(admit_at(store, &k, 1, now, &p).await, "first admission");
    go(admit_at(store, &k, 1, now, &p).await, "second admission");
}

/// A pause holds every admission until its end, and a reserved slot at the end is kept.
pub async fn pause_holds_every_admission_until_its_end(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("pause");
    let now = Instant::now();
    store.pause(&k, now + 2 * S).await.expect("pause");
    let (until, reservation) = wait(admit_at(store, &k, 1, now, &p).await, "during pause");
    assert_eq!(
        until,
        now + 2 * S,
        "the wait must end exactly at the pause's end"
    );
    let back = Admission::new(&k, 1, until, &p).with_reservation(reservation);
    go(admit(store, back).await, "back at the end of the pause");
}

/// A shorter pause never shortens a longer one.
pub async fn shorter_pause_never_shortens_a_longer_one(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("pause-max");
    let now = Instant::now();
    store.pause(&k, now + 5 * S).await.expect("pause");
    store.pause(&k, now + 2 * S).await.expect("pause");
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "during pause");
    assert_eq!(until, now + 5 * S);
}

/// A rate-limit verdict with a wait pauses the bucket for exactly that wait.
pub async fn throttle_verdict_pauses_for_the_servers_time(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("throttle");
    let now = Instant::now();
    let t = go(admit_at(store, &k, 1, now, &p).await, "first");
    let verdict = Classification::new(Class::RateLimited, "test").with_retry_after(Some(3 * S));
    observe(
        store,
        &k,
        now + 100 * MS,
        Some(t),
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    let (until, _) = wait(
        admit_at(store, &k, 1, now + 100 * MS, &p).await,
        "after a 429",
    );
    assert_eq!(until, now + 100 * MS + 3 * S);
}

/// A throttle verdict without a wait pauses for the policy's default pause; a zero default
/// means no pause.
pub async fn throttle_without_wait_uses_the_default_pause(store: &dyn QuotaStore) {
    let mut p = BucketPolicy {
        default_pause: 2 * S,
        ..BucketPolicy::default()
    };
    let k = key("throttle-default");
    let now = Instant::now();
    let verdict = Classification::new(Class::RateLimited, "test");
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "after a 429");
    assert_eq!(until, now + 2 * S);

    p.default_pause = Duration::ZERO;
    let k = key("throttle-no-pause");
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    go(admit_at(store, &k, 1, now, &p).await, "no default pause");
}

/// A server's absurd wait never holds a bucket past the policy's maximum pause: past the
/// max server wait it is refused for that long, within it waited for that long.
pub async fn absurd_waits_are_capped(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        max_pause: 10 * S,
        ..BucketPolicy::default()
    };
    let k = key("absurd");
    let now = Instant::now();
    let verdict = Classification::new(Class::RateLimited, "test")
        .with_retry_after(Some(Duration::from_secs(u64::MAX / 4)));
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    // Past the max server wait: refused at once, not waited...
    match reject(
        admit_at(store, &k, 1, now, &p).await,
        "after an absurd wait",
    ) {
        Rejection::ServerWaitTooLong { wait } => assert!(wait > p.max_server_wait),
        other => panic!("expected ServerWaitTooLong, got {other:?}"),
    }
    // ...and for no longer than the maximum pause.
    go(
        admit_at(store, &k, 1, now + 10 * S, &p).await,
        "after the maximum pause",
    );
    // Within the max server wait, the pause is waited, capped at the maximum pause.
    let p = BucketPolicy {
        max_server_wait: Duration::MAX,
        ..p
    };
    let k = key("absurd-waited");
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "after absurd wait");
    assert_eq!(until, now + 10 * S);
}

/// An outage (server errors, an overload without a stated wait) holds the bucket, then
/// lets one probe go at a time; a failed probe holds longer, a success opens it.
pub async fn an_outage_holds_everyone_behind_one_probe(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("outage");
    let now = Instant::now();
    let before = go(admit_at(store, &k, 1, now, &p).await, "before the outage");
    let error = Classification::new(Class::ServerError, "test: 503");
    let none = RateLimitSnapshot::new();
    observe(store, &k, now, Some(before), &error, &none, &p).await;
    let (first_hold, _) = wait(admit_at(store, &k, 1, now, &p).await, "held");
    assert!(
        first_hold >= now + 250 * MS && first_hold <= now + 500 * MS,
        "first hold {:?}",
        first_hold - now
    );
    let probe = go(admit_at(store, &k, 1, first_hold, &p).await, "the probe");
    assert!(
        probe.probe,
        "the first admission after the hold is the probe"
    );
    wait(
        admit_at(store, &k, 1, first_hold, &p).await,
        "another while the probe is out",
    );
    let failed_at = first_hold + 100 * MS;
    observe(store, &k, failed_at, Some(probe), &error, &none, &p).await;
    let (second_hold, _) = wait(admit_at(store, &k, 1, failed_at, &p).await, "held again");
    assert!(
        second_hold >= failed_at + 500 * MS && second_hold <= failed_at + S,
        "a failed probe doubles the hold: {:?}",
        second_hold - failed_at
    );
    let probe = go(
        admit_at(store, &k, 1, second_hold, &p).await,
        "the next probe",
    );
    observe(
        store,
        &k,
        second_hold + 100 * MS,
        Some(probe),
        &Classification::success(),
        &none,
        &p,
    )
    .await;
    let open = go(
        admit_at(store, &k, 1, second_hold + 100 * MS, &p).await,
        "after the probe's success",
    );
    assert!(!open.probe);
}

/// Without a stated time, each probe refused with exhaustion again doubles the cool-off.
pub async fn a_refused_probe_doubles_the_cool_off(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        cool_off: 10 * S,
        ..BucketPolicy::default()
    };
    let k = key("exhaust-doubling");
    let now = Instant::now();
    let gone = Classification::new(Class::QuotaExhausted, "test: quota gone");
    let none = RateLimitSnapshot::new();
    observe(store, &k, now, None, &gone, &none, &p).await;
    let mut at = now;
    for cool_off in [10 * S, 20 * S, 40 * S] {
        match reject(admit_at(store, &k, 1, at, &p).await, "exhausted") {
            Rejection::Exhausted { retry_in } => assert_eq!(retry_in, Some(cool_off)),
            other => panic!("expected Exhausted, got {other:?}"),
        }
        at += cool_off;
        let probe = go(admit_at(store, &k, 1, at, &p).await, "the probe");
        observe(store, &k, at, Some(probe), &gone, &none, &p).await;
    }
}

/// A pause the server stated, with longer to run than the policy's max server wait, is
/// refused at once with what is left of it; once within the maximum, it is waited.
pub async fn a_stated_wait_past_the_max_server_wait_is_refused(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        max_server_wait: 60 * S,
        ..BucketPolicy::default()
    };
    let k = key("stated-too-long");
    let now = Instant::now();
    let verdict = Classification::new(Class::RateLimited, "test").with_retry_after(Some(120 * S));
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    match reject(admit_at(store, &k, 1, now + S, &p).await, "119 s left") {
        Rejection::ServerWaitTooLong { wait } => assert_eq!(wait, 119 * S),
        other => panic!("expected ServerWaitTooLong, got {other:?}"),
    }
    let (until, _) = wait(
        admit_at(store, &k, 1, now + 61 * S, &p).await,
        "59 s left: within the max",
    );
    assert_eq!(until, now + 120 * S);
}

/// A verdict about one request (`ClientError`: too large, malformed) teaches the bucket
/// nothing, whatever its headers say and whatever wait it states.
pub async fn a_client_error_teaches_nothing(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("client-error");
    let now = Instant::now();
    let verdict =
        Classification::new(Class::ClientError, "test: too large").with_retry_after(Some(60 * S));
    let spent = RateLimitSnapshot::new().with_limit(limit(Scope::Tokens, 10_000, 0, 60 * S));
    observe(store, &k, now, None, &verdict, &spent, &p).await;
    go(
        admit_at(store, &k, 500, now, &p).await,
        "after a client error",
    );
}

/// Exhaustion fails fast, lets exactly one probe through after the reset, and an answer
/// to the probe other than exhaustion reopens the bucket.
pub async fn exhaustion_fails_fast_then_probes_once(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("exhaust");
    let now = Instant::now();
    store.exhaust(&k, now + 10 * S).await.expect("exhaust");
    match reject(admit_at(store, &k, 1, now, &p).await, "while exhausted") {
        Rejection::Exhausted { retry_in } => assert_eq!(retry_in, Some(10 * S)),
        other => panic!("expected Exhausted, got {other:?}"),
    }
    let later = now + 10 * S;
    let probe = go(admit_at(store, &k, 1, later, &p).await, "the probe");
    reject(
        admit_at(store, &k, 1, later, &p).await,
        "a second request while the probe is out",
    );
    observe(
        store,
        &k,
        later + S,
        Some(probe),
        &Classification::success(),
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    go(
        admit_at(store, &k, 1, later + S, &p).await,
        "after the probe succeeded",
    );
}

/// A spent credit or billing quota is not back when a rate limit in the same answer
/// resets: the bucket stays exhausted for the cool-off; an exhaustion of another kind
/// (a daily limit) ends at its limit's reset.
pub async fn a_billing_exhaustion_outlasts_the_rate_limit_reset(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        cool_off: 60 * S,
        ..BucketPolicy::default()
    };
    let now = Instant::now();
    let spent = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 500, 0, 10 * S));
    let billing = Classification::new(Class::QuotaExhausted, "test: credit spent")
        .with_scope(QuotaScope::Billing);
    let daily =
        Classification::new(Class::QuotaExhausted, "test: day spent").with_scope(QuotaScope::Daily);
    for (name, verdict, until) in [("billing", billing, 60 * S), ("daily", daily, 10 * S)] {
        let k = key(name);
        observe(store, &k, now, None, &verdict, &spent, &p).await;
        match reject(admit_at(store, &k, 1, now, &p).await, name) {
            Rejection::Exhausted { retry_in } => assert_eq!(retry_in, Some(until), "{name}"),
            other => panic!("{name}: expected Exhausted, got {other:?}"),
        }
    }
}

/// Under the hold policy, exhaustion makes requests wait instead of failing.
pub async fn exhaustion_holds_under_the_hold_policy(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        exhaustion: ExhaustionPolicy::HoldAndProbe,
        ..BucketPolicy::default()
    };
    let k = key("exhaust-hold");
    let now = Instant::now();
    store.exhaust(&k, now + 10 * S).await.expect("exhaust");
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "held");
    assert_eq!(until, now + 10 * S);
    let too_long = Admission::new(&k, 1, now, &p).with_max_wait(5 * S);
    match reject(admit(store, too_long).await, "hold longer than allowed") {
        Rejection::TooLong { would_wait } => assert_eq!(would_wait, 10 * S),
        other => panic!("expected TooLong, got {other:?}"),
    }
    go(admit_at(store, &k, 1, now + 10 * S, &p).await, "the probe");
    let (until, _) = wait(
        admit_at(store, &k, 1, now + 10 * S, &p).await,
        "held behind the probe",
    );
    assert!(until > now + 10 * S, "held requests ask again later");
}

/// A success from a request sent before the exhaustion does not clear it.
pub async fn stale_success_does_not_clear_exhaustion(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("exhaust-stale");
    let now = Instant::now();
    let old = go(admit_at(store, &k, 1, now, &p).await, "before exhaustion");
    let verdict = Classification::new(Class::QuotaExhausted, "test").with_retry_after(Some(60 * S));
    observe(
        store,
        &k,
        now,
        None,
        &verdict,
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    observe(
        store,
        &k,
        now + S,
        Some(old),
        &Classification::success(),
        &RateLimitSnapshot::new(),
        &p,
    )
    .await;
    match reject(admit_at(store, &k, 1, now + S, &p).await, "still exhausted") {
        Rejection::Exhausted { retry_in } => assert_eq!(retry_in, Some(59 * S)),
        other => panic!("expected Exhausted, got {other:?}"),
    }
}

/// A learned window's remaining quota is spread evenly over the time to its reset, but
/// the schedule may run ahead of the even spread by half the admission's max wait: with
/// 10 left over 10 s and a 10 s max wait, 6 go at once, then one per second.
pub async fn learned_limit_spreads_remaining_over_the_reset(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("spread");
    let now = Instant::now();
    let snap = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 100, 10, 10 * S));
    teach(store, &k, now, &snap, &p).await;
    // A 5 s max wait lets the schedule run 5 s ahead of the even spread (1 s a request).
    let bounded = || Admission::new(&k, 1, now, &p).with_max_wait(5 * S);
    for i in 0..6 {
        go(
            admit(store, bounded()).await,
            &format!("slot {i}, ahead of the spread"),
        );
    }
    let mut last = now;
    for i in 1..5u32 {
        let (until, r) = wait(admit(store, bounded()).await, "paced");
        assert_eq!(
            until,
            now + i * S,
            "slot {} must be {i} s after the first",
            i + 5
        );
        assert!(r.is_some(), "a paced slot is reserved");
        assert!(until > last, "slots are FIFO");
        last = until;
    }
}

/// A window whose reset is within the admission's max wait is used as fast as asked:
/// running dry early costs no caller more than it accepts.
pub async fn a_short_window_is_used_at_once(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("short-window");
    let now = Instant::now();
    let snap = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 100, 10, 10 * S));
    teach(store, &k, now, &snap, &p).await;
    for i in 0..10 {
        go(
            admit_at(store, &k, 1, now, &p).await,
            &format!("request {i} of what remains"),
        );
    }
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "window dry");
    assert_eq!(until, now + 10 * S, "the next one waits for the reset");
}

/// A window predicted past a reset opens at that reset: no slot of it starts earlier.
pub async fn a_predicted_window_never_opens_early(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("predicted-window");
    let now = Instant::now();
    let mut l = limit(Scope::Requests, 5, 0, S);
    l.window = Some(S);
    let snap = RateLimitSnapshot::new().with_limit(l);
    teach(store, &k, now, &snap, &p).await;
    for i in 0..5 {
        let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "next window");
        assert_eq!(
            until,
            now + S,
            "request {i} goes when the next window opens"
        );
    }
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "window after");
    assert_eq!(until, now + 2 * S);
}

/// OpenAI's and Anthropic's `reset` is the time until the bucket is full again, and the
/// bucket refills continuously: an empty bucket waits for one unit's refill, not for the
/// whole reset.
pub async fn token_bucket_dialects_wait_for_one_unit_not_the_reset(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("refill");
    let now = Instant::now();
    let mut l = limit(Scope::Requests, 60, 0, 60 * S);
    l.dialect = Dialect::OpenAi;
    let snap = RateLimitSnapshot::new().with_limit(l);
    teach(store, &k, now, &snap, &p).await;
    for i in 1..4u32 {
        let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "refill");
        assert_eq!(until, now + i * S, "60 per 60 s refill one per second");
    }
}

/// A token bucket's `remaining` rounds a fraction of a unit away, so `reset / missing`
/// underestimates the time per unit: a smaller estimate than one already seen is let
/// in only slowly, or the client would drift ahead of the refill.
pub async fn a_rounded_refill_estimate_does_not_speed_the_pace_up(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("refill-rounding");
    let now = Instant::now();
    let mut l = limit(Scope::Requests, 60, 0, 60 * S);
    l.dialect = Dialect::OpenAi;
    let snap = RateLimitSnapshot::new().with_limit(l.clone());
    teach(store, &k, now, &snap, &p).await;
    let (until, r) = wait(admit_at(store, &k, 1, now, &p).await, "second");
    assert_eq!(until, now + S);
    let t = go(
        admit(store, Admission::new(&k, 1, until, &p).with_reservation(r)).await,
        "second, at its slot",
    );
    // A third of a unit refilled but not shown: 60 missing, 59.67 s to full.
    l.reset = Some(59 * S + 670 * MS);
    let snap = RateLimitSnapshot::new().with_limit(l);
    observe(
        store,
        &k,
        until,
        Some(t),
        &Classification::success(),
        &snap,
        &p,
    )
    .await;
    let (next, _) = wait(admit_at(store, &k, 1, until, &p).await, "third");
    assert!(
        next - until > 999 * MS,
        "paced at about 1 s per unit, not 0.994 s: {:?}",
        next - until
    );
}

/// A 429 while the server says some remain means it grants less than it advertises:
/// what it said remained is not counted on again.
pub async fn a_429_saying_some_remain_is_not_believed_again(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        default_pause: Duration::ZERO,
        ..BucketPolicy::default()
    };
    let k = key("phantom");
    let now = Instant::now();
    let t = go(admit_at(store, &k, 1, now, &p).await, "first");
    let mut l = limit(Scope::Requests, 60, 12, 48 * S);
    l.dialect = Dialect::OpenAi;
    let snap = RateLimitSnapshot::new().with_limit(l.clone());
    let throttled = Classification::new(Class::RateLimited, "suite");
    observe(store, &k, now, Some(t), &throttled, &snap, &p).await;
    let t = go(
        admit_at(store, &k, 1, now + 5 * S, &p).await,
        "after the refill",
    );
    // 5 s later: 5 refilled, 1 spent; the server says 16 remain, of which 12 never do.
    let mut later = l;
    later.remaining = Some(16);
    later.reset = Some(44 * S);
    let snap = RateLimitSnapshot::new().with_limit(later);
    observe(
        store,
        &k,
        now + 5 * S,
        Some(t),
        &Classification::success(),
        &snap,
        &p,
    )
    .await;
    for i in 0..4 {
        go(
            admit_at(store, &k, 1, now + 5 * S, &p).await,
            &format!("unit {i} of the 4 really left"),
        );
    }
    let (until, _) = wait(
        admit_at(store, &k, 1, now + 5 * S, &p).await,
        "the 12 said to remain are phantom",
    );
    assert_eq!(until, now + 6 * S, "one unit's refill after the answer");
}

/// A reservation given back frees its slot for the next admission, for declared and
/// learned limits alike.
pub async fn a_cancelled_reservation_gives_its_slot_back(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        request_quota: Some(Quota::per_second(nz(1))),
        ..BucketPolicy::default()
    };
    let k = key("cancel");
    let now = Instant::now();
    // Learned: 10 left over 10 s, spread one per second.
    let snap = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 100, 10, 10 * S));
    teach(store, &k, now, &snap, &p).await;
    let bounded = || Admission::new(&k, 1, now, &p).with_max_wait(2 * S);
    let (until, reservation) = wait(admit(store, bounded()).await, "second");
    assert_eq!(until, now + S);
    assert!(reservation.is_some(), "a paced slot is reserved");
    store
        .cancel(&bounded().with_reservation(reservation))
        .await
        .expect("store failed to cancel");
    let (until, _) = wait(admit(store, bounded()).await, "third");
    assert_eq!(
        until,
        now + S,
        "the third takes the slot the second gave back"
    );
}

/// With no limit in any header, a 429 cuts the send rate to a share of what drew it:
/// after the pause, the waiting requests are let out paced, not all at once; more 429s
/// of the same burst do not cut it again.
pub async fn a_429_without_limit_headers_paces_the_requests_after_the_pause(
    store: &dyn QuotaStore,
) {
    let p = BucketPolicy::default();
    let k = key("throttle-rate");
    let now = Instant::now();
    let tickets = admit_all(store, &k, 10, now, &p).await;
    let throttled = Classification::new(Class::RateLimited, "suite").with_retry_after(Some(S));
    let empty = RateLimitSnapshot::new();
    for t in &tickets[..3] {
        // 10 sent in 1 s drew the 429s: at most 7 per second after the pause.
        observe(store, &k, now + S, Some(*t), &throttled, &empty, &p).await;
    }
    let mut last = now;
    for i in 0..5u32 {
        let (until, _) = wait(admit_at(store, &k, 1, now + S, &p).await, "after the pause");
        if i == 0 {
            assert_eq!(until, now + 2 * S, "the first goes when the pause ends");
        } else {
            let gap = until - last;
            assert!(
                gap > 100 * MS && gap < 150 * MS,
                "paced near 7 per second, not released at once: gap {gap:?}"
            );
        }
        last = until;
    }
}

/// A slot of the learned send rate given back (its admission dropped while waiting)
/// goes to the next admission: dropped requests do not push the pace further out.
pub async fn a_cancelled_reservation_gives_its_send_rate_slot_back(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("throttle-cancel");
    let now = Instant::now();
    let tickets = admit_all(store, &k, 10, now, &p).await;
    let throttled = Classification::new(Class::RateLimited, "suite").with_retry_after(Some(S));
    let empty = RateLimitSnapshot::new();
    observe(store, &k, now + S, Some(tickets[0]), &throttled, &empty, &p).await;
    let at = now + S;
    let admission = || Admission::new(&k, 1, at, &p).with_max_wait(10 * S);
    let mut slots = Vec::new();
    for _ in 0..3 {
        slots.push(wait(admit(store, admission()).await, "paced"));
    }
    let (last, reservation) = slots[2];
    assert!(reservation.is_some() && last > slots[1].0, "{slots:?}");
    store
        .cancel(&admission().with_reservation(reservation))
        .await
        .expect("store failed to cancel");
    let (until, _) = wait(admit(store, admission()).await, "after the cancel");
    assert_eq!(until, last, "the next admission takes the slot given back");
}

/// A limit with nothing remaining holds every admission until its reset.
pub async fn remaining_zero_waits_until_the_reset(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("zero");
    let now = Instant::now();
    let snap = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 10, 0, 7 * S));
    teach(store, &k, now, &snap, &p).await;
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "empty window");
    assert_eq!(until, now + 7 * S);
}

/// What the bucket admitted after the observed request counts against `remaining`.
pub async fn later_admissions_are_subtracted_from_remaining(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("uncounted");
    let now = Instant::now();
    let first = go(admit_at(store, &k, 1, now, &p).await, "first");
    go(admit_at(store, &k, 1, now, &p).await, "second");
    go(admit_at(store, &k, 1, now, &p).await, "third");
    // The first response says 3 remain: the second and third already took two of them.
    let snap = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 10, 3, 6 * S));
    observe(
        store,
        &k,
        now,
        Some(first),
        &Classification::success(),
        &snap,
        &p,
    )
    .await;
    go(admit_at(store, &k, 1, now, &p).await, "the last one left");
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "window used up");
    assert_eq!(until, now + 6 * S);
}

/// A sliding window (its reset moves on with the spends) gives its oldest spends back
/// before its stated reset, even when one answer counts two more spends than this bucket
/// made: a server's count can be off by one each way (a spend ageing out just before
/// the answer, a concurrent one landing just before it), which is not others spending.
pub async fn a_sliding_count_off_by_two_still_gives_spends_back(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("sliding-off-by-two");
    let t0 = Instant::now();
    let success = Classification::success();
    let answer = |remaining| {
        RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 40, remaining, 10 * S))
    };
    // Admits `n` at `sent`; the last one's answer at `answered` says `remaining` are left.
    let (kr, pr, ok) = (&k, &p, &success);
    let spend = |n, sent, answered, remaining| async move {
        let tickets = admit_all(store, kr, n, sent, pr).await;
        let last = tickets.last().copied();
        observe(store, kr, answered, last, ok, &answer(remaining), pr).await;
    };
    // Twenty at once, answered at 0.5 s: 20 remain and the newest spend ages out in 10 s.
    spend(20, t0, t0 + 500 * MS, 20).await;
    // Ten more at 4 s, answered at 4.5 s: 8 remain (ten were spent, the count says
    // twelve) and the reset moved on by 4 s: the window slides.
    let at = t0 + 4500 * MS;
    spend(10, t0 + 4 * S, at, 8).await;
    admit_all(store, &k, 8, at, &p).await;
    let (until, _) = wait(admit_at(store, &k, 1, at, &p).await, "window spent");
    // The first twenty age out from 10.5 s on; the stated reset is 14.5 s.
    assert!(
        until >= t0 + 10 * S,
        "before the oldest spend aged out: {until:?}"
    );
    assert!(
        until < t0 + 12 * S,
        "waited for the reset, not the oldest spends: {:?} after the start",
        until - t0
    );
}

/// With several scopes, each admission waits for the most constrained one.
pub async fn most_constrained_scope_governs(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("scopes");
    let now = Instant::now();
    let t = go(admit_at(store, &k, 500, now, &p).await, "first");
    let snap = RateLimitSnapshot::new()
        .with_limit(limit(Scope::Requests, 1000, 100, 10 * S))
        .with_limit(limit(Scope::Tokens, 10_000, 1_000, 10 * S));
    observe(
        store,
        &k,
        now,
        Some(t),
        &Classification::success(),
        &snap,
        &p,
    )
    .await;
    // A 3 s max wait lets the schedule run 3 s ahead of the even spread.
    let bounded = || Admission::new(&k, 500, now, &p).with_max_wait(3 * S);
    go(admit(store, bounded()).await, "first 500 tokens");
    let (until, _) = wait(admit(store, bounded()).await, "next 500 tokens");
    assert_eq!(
        until,
        now + 2 * S,
        "1000 tokens over 10 s: 500 tokens take 5 s, less 3 s ahead"
    );
}

/// A rejection for too long a wait reserves nothing: the next admission gets the slot.
pub async fn rejected_wait_reserves_nothing(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        request_quota: Some(Quota::per_second(nz(1))),
        ..BucketPolicy::default()
    };
    let k = key("reject-long");
    let now = Instant::now();
    go(admit_at(store, &k, 1, now, &p).await, "first");
    let short = Admission::new(&k, 1, now, &p).with_max_wait(100 * MS);
    match reject(admit(store, short).await, "wait past max") {
        Rejection::TooLong { would_wait } => assert_eq!(would_wait, S),
        other => panic!("expected TooLong, got {other:?}"),
    }
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "next admission");
    assert_eq!(
        until,
        now + S,
        "the rejected request must not have taken the slot"
    );
}

/// A slot reserved before a pause does not let its request into the pause.
pub async fn reservation_before_a_pause_moves_after_it(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        request_quota: Some(Quota::per_second(nz(1))),
        ..BucketPolicy::default()
    };
    let k = key("reserve-pause");
    let now = Instant::now();
    go(admit_at(store, &k, 1, now, &p).await, "first");
    let (until, reservation) = wait(admit_at(store, &k, 1, now, &p).await, "second");
    assert_eq!(until, now + S);
    store.pause(&k, now + 5 * S).await.expect("pause");
    let back = Admission::new(&k, 1, until, &p).with_reservation(reservation);
    let (again, _) = wait(admit(store, back).await, "reserved slot inside the pause");
    assert!(
        again >= now + 5 * S,
        "must wait for the pause's end, got {:?}",
        again - now
    );
}

/// A declared requests quota paces with GCRA and its burst.
pub async fn declared_request_quota_paces_with_its_burst(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        request_quota: Some(Quota::per_second(nz(2))),
        ..BucketPolicy::default()
    };
    let k = key("declared");
    let now = Instant::now();
    go(admit_at(store, &k, 1, now, &p).await, "burst 1");
    go(admit_at(store, &k, 1, now, &p).await, "burst 2");
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "third");
    assert_eq!(until, now + 500 * MS);
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "fourth");
    assert_eq!(until, now + S);
}

/// A declared cost quota weighs each admission by its cost and refuses what can never fit.
pub async fn declared_cost_quota_weighs_cost(store: &dyn QuotaStore) {
    let p = BucketPolicy {
        cost_quota: Some(Quota::per_second(nz(1000))),
        ..BucketPolicy::default()
    };
    let k = key("declared-cost");
    let now = Instant::now();
    go(admit_at(store, &k, 1000, now, &p).await, "whole burst");
    let (until, _) = wait(admit_at(store, &k, 500, now, &p).await, "half more");
    assert_eq!(until, now + 500 * MS);
    match reject(admit_at(store, &k, 1001, now, &p).await, "over the burst") {
        Rejection::TooCostly { cost, max } => assert_eq!((cost, max), (1001, 1000)),
        other => panic!("expected TooCostly, got {other:?}"),
    }
}

/// Buckets do not share state.
pub async fn buckets_are_independent(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let a = key("independent-a");
    let b = key("independent-b");
    let now = Instant::now();
    store.pause(&a, now + 9 * S).await.expect("pause");
    wait(admit_at(store, &a, 1, now, &p).await, "paused bucket");
    go(admit_at(store, &b, 1, now, &p).await, "other bucket");
}

/// An older response observed after a newer one does not undo what the newer taught.
pub async fn older_observation_does_not_override_a_newer_one(store: &dyn QuotaStore) {
    let p = BucketPolicy::default();
    let k = key("stale-observation");
    let now = Instant::now();
    let old = go(admit_at(store, &k, 1, now, &p).await, "old");
    let new = go(admit_at(store, &k, 1, now, &p).await, "new");
    let empty = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 10, 0, 8 * S));
    observe(
        store,
        &k,
        now,
        Some(new),
        &Classification::success(),
        &empty,
        &p,
    )
    .await;
    let plenty = RateLimitSnapshot::new().with_limit(limit(Scope::Requests, 10, 9, 8 * S));
    observe(
        store,
        &k,
        now,
        Some(old),
        &Classification::success(),
        &plenty,
        &p,
    )
    .await;
    let (until, _) = wait(admit_at(store, &k, 1, now, &p).await, "newest says empty");
    assert_eq!(until, now + 8 * S);
}

/// Generates one `#[tokio::test]` per check of [`crate::testing`] for the store built by
/// `$make` (an expression evaluated once per test).
#[macro_export]
macro_rules! quota_store_suite {
    ($make:expr) => {
        $crate::quota_store_suite!(@tests $make;
            fresh_bucket_admits_at_once,
            pause_holds_every_admission_until_its_end,
            shorter_pause_never_shortens_a_longer_one,
            throttle_verdict_pauses_for_the_servers_time,
            throttle_without_wait_uses_the_default_pause,
            absurd_waits_are_capped,
            an_outage_holds_everyone_behind_one_probe,
            a_refused_probe_doubles_the_cool_off,
            a_stated_wait_past_the_max_server_wait_is_refused,
            a_client_error_teaches_nothing,
            exhaustion_fails_fast_then_probes_once,
            exhaustion_holds_under_the_hold_policy,
            a_billing_exhaustion_outlasts_the_rate_limit_reset,
            stale_success_does_not_clear_exhaustion,
            learned_limit_spreads_remaining_over_the_reset,
            a_short_window_is_used_at_once,
            a_predicted_window_never_opens_early,
            token_bucket_dialects_wait_for_one_unit_not_the_reset,
            a_429_saying_some_remain_is_not_believed_again,
            a_rounded_refill_estimate_does_not_speed_the_pace_up,
            a_cancelled_reservation_gives_its_slot_back,
            a_429_without_limit_headers_paces_the_requests_after_the_pause,
            a_cancelled_reservation_gives_its_send_rate_slot_back,
            remaining_zero_waits_until_the_reset,
            later_admissions_are_subtracted_from_remaining,
            a_sliding_count_off_by_two_still_gives_spends_back,
            most_constrained_scope_governs,
            rejected_wait_reserves_nothing,
            reservation_before_a_pause_moves_after_it,
            declared_request_quota_paces_with_its_burst,
            declared_cost_quota_weighs_cost,
            buckets_are_independent,
            older_observation_does_not_override_a_newer_one,
        );
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let store = $make;
                $crate::testing::$check(&store).await;
            }
        )*
    };
}
