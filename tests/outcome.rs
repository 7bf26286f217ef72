//! `Outcome::of` reads every ending of a request, the server's answer or a local refusal,
//! first call or later, in the same shape. Virtual time, a scripted API.

mod common;

use abide::cap::ConcurrencyCapLayer;
use abide::retry::BackoffRetryLayer;
use abide::{AbideLayer, Class, Cost, Outcome, Quota};
use common::{chat, insufficient_quota, Reply, Script};
use std::io;
use std::num::NonZeroU32;
use std::time::Duration;
use tower::{Layer, ServiceExt};

const HOST: &str = "api.example.com";

async fn outcome(layer: AbideLayer, replies: Vec<Reply>) -> (Outcome, Script) {
    let api = Script::new(replies);
    let result = layer.layer(api.service()).oneshot(chat(HOST, "m")).await;
    (Outcome::of(&result), api)
}

#[tokio::test(start_paused = true)]
async fn answers_read_as_what_the_server_meant() {
    let cases = [
        (Reply::ok(), Outcome::Success { attempts: 1 }),
        (
            Reply::status(400).body(r#"{"error":{"message":"bad"}}"#),
            Outcome::ClientError {
                status: Some(http::StatusCode::BAD_REQUEST),
            },
        ),
        (
            Reply::status(401),
            Outcome::AuthError {
                status: http::StatusCode::UNAUTHORIZED,
            },
        ),
    ];
    for (reply, want) in cases {
        let (got, _) = outcome(AbideLayer::openai(), vec![reply]).await;
        assert_eq!(got, want);
    }
}

#[tokio::test(start_paused = true)]
async fn quota_exhaustion_reads_the_same_from_the_server_and_from_the_cap() {
    let api = Script::new([insufficient_quota()]);
    let client = AbideLayer::openai().layer(api.service());
    let first = client.clone().oneshot(chat(HOST, "m")).await;
    assert!(first.is_ok(), "the server's own answer is returned");
    let later = client.oneshot(chat(HOST, "m")).await;
    assert!(later.is_err(), "the cap refuses without sending");
    assert!(matches!(
        Outcome::of(&first),
        Outcome::QuotaExhausted { .. }
    ));
    assert!(matches!(
        Outcome::of(&later),
        Outcome::QuotaExhausted { .. }
    ));
    assert_eq!(api.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_wait_too_long_reads_the_same_first_and_later_with_the_stated_wait() {
    let api = Script::new([Reply::status(429).header("retry-after", "300")]);
    let client = AbideLayer::openai()
        .with_max_server_wait(Duration::from_secs(60))
        .layer(api.service());
    let first = client.clone().oneshot(chat(HOST, "m")).await;
    let later = client.oneshot(chat(HOST, "m")).await;
    match Outcome::of(&first) {
        Outcome::WaitTooLong { wait, max } => {
            assert_eq!(wait, Duration::from_secs(300));
            assert_eq!(max, Duration::from_secs(60));
        }
        other => panic!("first: {other:?}"),
    }
    match Outcome::of(&later) {
        Outcome::WaitTooLong { wait, max } => {
            assert!(
                wait > Duration::from_secs(290) && wait <= Duration::from_secs(300),
                "{wait:?}"
            );
            assert_eq!(max, Duration::from_secs(60));
        }
        other => panic!("later: {other:?}"),
    }
    assert_eq!(api.count(), 1, "the later call was not sent");
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_give_up_after_the_attempts_with_their_count() {
    let layer = AbideLayer::openai().with_retry(
        BackoffRetryLayer::new()
            .with_replay_safe(true)
            .with_max_attempts(3)
            .with_seed(3),
    );
    let (got, api) = outcome(layer, vec![Reply::status(500); 5]).await;
    assert_eq!(
        got,
        Outcome::GaveUp {
            attempts: 3,
            class: Class::ServerError,
            status: Some(http::StatusCode::INTERNAL_SERVER_ERROR)
        }
    );
    assert_eq!(api.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_a_wait_would_pass_reads_as_deadline() {
    let layer = AbideLayer::openai()
        .with_retry(BackoffRetryLayer::new().with_deadline(Duration::from_secs(5)));
    let throttled = Reply::status(429).header("retry-after", "10");
    let (got, _) = outcome(layer, vec![throttled; 3]).await;
    assert!(
        matches!(got, Outcome::Deadline { attempts: Some(1) }),
        "{got:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_attempt_of_a_request_not_safe_to_replay_reads_as_timed_out() {
    let layer = AbideLayer::generic()
        .with_retry(BackoffRetryLayer::new().with_attempt_timeout(Duration::from_secs(30)));
    let (got, api) = outcome(layer, vec![Reply::Slow(Duration::from_secs(60))]).await;
    assert_eq!(
        got,
        Outcome::TimedOut {
            timeout: Duration::from_secs(30)
        }
    );
    assert_eq!(api.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_the_declared_quota_is_a_client_error_never_sent() {
    let quota = Quota::per_minute(NonZeroU32::new(1_000).unwrap());
    let layer = AbideLayer::openai().with_cap(ConcurrencyCapLayer::new().with_cost_quota(quota));
    let api = Script::new([]);
    let mut request = chat(HOST, "m");
    request.extensions_mut().insert(Cost(5_000));
    let result = layer.layer(api.service()).oneshot(request).await;
    assert_eq!(Outcome::of(&result), Outcome::ClientError { status: None });
    assert_eq!(api.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_on_a_post_not_safe_to_replay_reads_as_failed() {
    let (got, _) = outcome(
        AbideLayer::generic(),
        vec![Reply::Fail(io::ErrorKind::ConnectionReset)],
    )
    .await;
    assert!(
        matches!(
            got,
            Outcome::Failed {
                class: Class::ServerError,
                status: None
            }
        ),
        "{got:?}"
    );
}

#[test]
fn outcome_names_are_stable() {
    let names: Vec<_> = [
        Outcome::Success { attempts: 1 },
        Outcome::QuotaExhausted { retry_in: None },
        Outcome::ClientError { status: None },
        Outcome::Deadline { attempts: None },
        Outcome::WaitTooLong {
            wait: Duration::ZERO,
            max: Duration::ZERO,
        },
    ]
    .iter()
    .map(Outcome::as_str)
    .collect();
    assert_eq!(
        names,
        [
            "success",
            "quota_exhausted",
            "client_error",
            "deadline",
            "wait_too_long"
        ]
    );
}

/// A deferrable request whose quota is gone is spooled, and reads as `Deferred` with the
/// entry's id: the same one call as every other ending.
#[cfg(feature = "spool")]
#[tokio::test(start_paused = true)]
async fn a_deferred_request_reads_as_deferred_with_its_spool_entry() {
    use abide::spool::{Deferrable, Spool, SpoolConfig, SpoolLayer};
    let dir = std::env::temp_dir().join(format!("abide-outcome-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(&dir, SpoolConfig::new()).unwrap();
    let api = Script::new(vec![insufficient_quota()]);
    let stack = AbideLayer::generic().layer(api.service());
    let client = SpoolLayer::new(spool.clone()).layer(stack);
    let mut req = chat(HOST, "m");
    req.extensions_mut().insert(Deferrable);
    let result = client.oneshot(req).await;
    let outcome = Outcome::of(&result);
    let Outcome::Deferred {
        id,
        idempotency_key,
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(spool.entries()[0].id.0, *id);
    assert_eq!(&spool.entries()[0].idempotency_key, idempotency_key);
    assert_eq!(outcome.as_str(), "deferred");
    let _ = std::fs::remove_dir_all(&dir);
}
