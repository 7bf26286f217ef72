//! No permit or queue place leaks, whatever is dropped when (property test, virtual time).

mod support;

use abide_cap::{BucketKey, ConcurrencyCapLayer, InFlight};
use http_body_util::BodyExt;
use proptest::prelude::*;
use std::time::Duration;
use support::{request, Script, Server};
use tower::{Layer, ServiceExt};

#[derive(Clone, Copy, Debug)]
enum Fate {
    /// Read the whole body.
    Complete,
    /// Drop the response future after the given time (waiting, or in flight).
    DropFuture(u64),
    /// Read one frame, then drop the body.
    DropBodyEarly,
    /// Stop reading the body after the given time.
    DropBodyLate(u64),
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        Just(Fate::Complete),
        (0u64..400).prop_map(Fate::DropFuture),
        Just(Fate::DropBodyEarly),
        (0u64..400).prop_map(Fate::DropBodyLate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_permit_or_queue_place_leaks_under_random_cancellation(
        fates in proptest::collection::vec((fate(), 0u64..500), 1..24),
        cap in 1usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (stats, max_concurrent) = rt.block_on(async move {
            // A window limit makes some requests wait in pacing, so drops hit every state.
            let server = Server::new(
                Script::Window { limit: 5, window: Duration::from_secs(1), token_limit: None },
                Duration::from_millis(50),
            )
            .with_body_chunks(3)
            .with_body_gap(Duration::from_millis(40));
            let svc = ConcurrencyCapLayer::new()
                .with_in_flight(InFlight::fixed(cap))
                .with_max_queue(8)
                .layer(server.clone());
            let mut tasks = Vec::new();
            for (fate, start_ms) in fates {
                let svc = svc.clone();
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(start_ms)).await;
                    let call = svc.oneshot(request(None));
                    match fate {
                        Fate::Complete => {
                            if let Ok(r) = call.await {
                                let _ = r.into_body().collect().await;
                            }
                        }
                        Fate::DropFuture(ms) => {
                            let _ = tokio::time::timeout(Duration::from_millis(ms), call).await;
                        }
                        Fate::DropBodyEarly => {
                            if let Ok(r) = call.await {
                                let mut body = r.into_body();
                                let _ = body.frame().await;
                            }
                        }
                        Fate::DropBodyLate(ms) => {
                            if let Ok(r) = call.await {
                                let body = r.into_body();
                                let _ = tokio::time::timeout(Duration::from_millis(ms), body.collect()).await;
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            (svc.stats(&BucketKey::new("api.example.com")), server.max_concurrent())
        });
        if let Some(stats) = stats {
            prop_assert_eq!(stats.in_flight, 0, "leaked permits");
            prop_assert_eq!(stats.queued, 0, "leaked queue places");
            prop_assert_eq!(stats.limit, Some(cap), "the fixed cap changed");
        }
        prop_assert!(max_concurrent <= cap, "server saw {} at once, cap {}", max_concurrent, cap);
    }
}
