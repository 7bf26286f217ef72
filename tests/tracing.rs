//! Every layer says what it decided through `tracing`: the classifier its verdict and
//! rule, the cap its waits and what a refusal taught it, the retry layer each retry and why.

mod common;

use abide::{AbideLayer, ServiceBuilderExt};
use bytes::Bytes;
use common::Buf;
use http::{Request, Response};
use http_body_util::Full;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tower::{ServiceBuilder, ServiceExt};

/// The tests of this file capture with different level filters, one at a time: `tracing`
/// caches each callsite's interest process-wide, and a callsite first reached on one
/// test's thread while another installs its subscriber can be cached as "never" for both
/// (the registration race in `tracing-core`).
fn one_capture_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_429_is_explained_by_every_layer_in_the_trace() {
    let _serial = one_capture_at_a_time();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let api = tower::service_fn(move |_req: Request<_>| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let response = if first {
                Response::builder()
                    .status(429)
                    .header("retry-after", "2")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(
                        br#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}"#,
                    )))
            } else {
                Response::builder().body(Full::new(Bytes::from_static(b"ok")))
            };
            Ok::<_, std::convert::Infallible>(response.unwrap())
        }
    });
    let client = ServiceBuilder::new().abide(AbideLayer::new()).service(api);

    let status = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let request = Request::get("https://api.example.com/v1/models")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                client.oneshot(request).await.unwrap().status()
            })
    });
    assert_eq!(status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no event {needle:?} in:\n{log}"))
            .to_owned()
    };
    let classified = line("response classified");
    assert!(classified.contains("abide_classify"), "{classified}");
    assert!(classified.contains("class=rate_limited"), "{classified}");
    assert!(classified.contains("retry_after_ms=2000"), "{classified}");
    assert!(classified.contains("reason="), "{classified}");

    let learned = line("the bucket learns from it");
    assert!(learned.contains("abide_cap"), "{learned}");
    assert!(learned.contains("bucket=api.example.com"), "{learned}");

    let retrying = line("retrying");
    assert!(retrying.contains("abide_retry"), "{retrying}");
    assert!(retrying.contains("wait_ms="), "{retrying}");

    // A success is not logged at debug level by the classifier.
    assert_eq!(log.matches("response classified").count(), 1, "{log}");
}

/// A body streamed forever: one frame, then never another.
struct Stalled(bool);

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.0 {
            std::task::Poll::Pending
        } else {
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"{")))))
        }
    }
}

#[test]
fn a_queue_waiting_on_permits_held_by_unread_bodies_is_named_in_a_warning() {
    let _serial = one_capture_at_a_time();
    use abide::cap::{ConcurrencyCapLayer, InFlight};
    use std::time::Duration;

    let run = |read_first: bool| {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let api = tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Stalled(false)))
        });
        let cap = ConcurrencyCapLayer::new()
            .with_in_flight(InFlight::fixed(1))
            .with_max_wait(Duration::from_secs(5));
        let client = ServiceBuilder::new().layer(cap).service(api);
        let second = tracing::subscriber::with_default(subscriber, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
                .block_on(async {
                    let req = || {
                        Request::get("http://api.example.com/v1")
                            .body(String::new())
                            .unwrap()
                    };
                    // The first answer's body holds the only permit and is never finished.
                    let mut first = client.clone().oneshot(req()).await.unwrap();
                    let mut held = None;
                    let reader = if read_first {
                        Some(tokio::spawn(async move {
                            // Reads its one frame 2 s in, then nothing more arrives.
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            let _ = http_body_util::BodyExt::frame(first.body_mut()).await;
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            drop(first);
                        }))
                    } else {
                        held = Some(first);
                        None
                    };
                    let second = client.clone().oneshot(req()).await;
                    drop((reader, held));
                    second.map(|_| ())
                })
        });
        let trace = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (second, trace)
    };

    // Nobody reads the first body: the second request waits its 5 s, fails, and the
    // trace names the bucket and what to do.
    let (second, trace) = run(false);
    assert!(
        second.unwrap_err().to_string().contains("wait"),
        "a WaitTooLong"
    );
    assert!(trace.contains("WARN"), "{trace}");
    assert!(trace.contains("bucket=api.example.com"), "{trace}");
    assert!(trace.contains("read or drop response bodies"), "{trace}");

    // The body moved during the wait (a frame read at 2 s): not idle for the whole wait,
    // so no warning, though the request still waits too long.
    let (second, trace) = run(true);
    assert!(second.is_err());
    assert!(!trace.contains("read or drop response bodies"), "{trace}");
}
