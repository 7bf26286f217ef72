//! Property tests over random server schedules, in virtual time: the deadline is never
//! overrun, the server's wait is never cut short, quota exhaustion is never retried.

use abide_classify::{Class, Classification};
use abide_retry::{BackoffRetryLayer, DeadlineExceeded, Jitter, ReplayBody, WaitTooLong};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Success,
    RateLimited(u64),
    Unavailable,
    ConnectionError,
    QuotaExhausted,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        (0u64..5000).prop_map(Outcome::RateLimited),
        Just(Outcome::Unavailable),
        Just(Outcome::ConnectionError),
        Just(Outcome::QuotaExhausted),
    ]
}

#[derive(Debug)]
struct Attempt {
    arrived: Instant,
    answered: Option<Instant>,
    outcome: Outcome,
}

fn run(
    steps: Vec<(u64, Outcome)>,
    deadline: Duration,
    max_attempts: u32,
    jitter: Jitter,
    seed: u64,
    method: &'static str,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let log: Arc<Mutex<Vec<Attempt>>> = Arc::default();
        let l = log.clone();
        let service = tower::service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
            let log = l.clone();
            let index = log.lock().unwrap().len();
            let (latency, outcome) = steps[index.min(steps.len() - 1)];
            log.lock().unwrap().push(Attempt {
                arrived: Instant::now(),
                answered: None,
                outcome,
            });
            async move {
                tokio::time::sleep(Duration::from_millis(latency)).await;
                log.lock().unwrap()[index].answered = Some(Instant::now());
                let verdict = match outcome {
                    Outcome::Success => Classification::success(),
                    Outcome::RateLimited(ms) => Classification::new(Class::RateLimited, "test")
                        .with_retry_after(Some(Duration::from_millis(ms))),
                    Outcome::Unavailable => Classification::new(Class::ServerError, "test"),
                    Outcome::QuotaExhausted => Classification::new(Class::QuotaExhausted, "test"),
                    Outcome::ConnectionError => {
                        return Err(std::io::Error::other("connection reset"));
                    }
                };
                let mut res = Response::new(Full::new(Bytes::new()));
                res.extensions_mut().insert(verdict);
                Ok(res)
            }
        });
        let layer = BackoffRetryLayer::new()
            .with_deadline(deadline)
            .with_max_attempts(max_attempts)
            .with_jitter(jitter)
            .with_seed(seed)
            .without_budget();
        let start = Instant::now();
        let request = Request::builder()
            .method(method)
            .uri("http://api.test/")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap();
        let result = layer.layer(service).oneshot(request).await;
        let elapsed = start.elapsed();
        let log = log.lock().unwrap();

        prop_assert!(elapsed <= deadline, "{elapsed:?} > {deadline:?}");
        prop_assert!(log.len() as u32 <= max_attempts);
        for pair in log.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            let answered = prev.answered.expect("a retried attempt had finished");
            if let Outcome::RateLimited(ms) = prev.outcome {
                let waited = next.arrived - answered;
                prop_assert!(
                    waited >= Duration::from_millis(ms),
                    "waited {waited:?} < {ms} ms"
                );
            }
            prop_assert!(
                !matches!(prev.outcome, Outcome::QuotaExhausted | Outcome::Success),
                "retried after {:?}",
                prev.outcome
            );
        }
        if let Err(e) = &result {
            prop_assert!(
                e.is::<DeadlineExceeded>()
                    || e.is::<WaitTooLong>()
                    || e.to_string() == "connection reset",
                "unexpected error {e}"
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_never_overrun_the_deadline_nor_cut_a_server_wait(
        steps in prop::collection::vec((0u64..4000, outcome()), 1..8),
        deadline_ms in 1u64..15_000,
        max_attempts in 1u32..8,
        jitter in prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
        ],
        seed in any::<u64>(),
        post in any::<bool>(),
    ) {
        let method = if post { "POST" } else { "GET" };
        run(steps, Duration::from_millis(deadline_ms), max_attempts, jitter, seed, method)?;
    }
}
