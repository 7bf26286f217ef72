//! Absurd deadlines and cancelled retries: no panic, nothing held after a drop.

use abide_classify::{Class, Classification};
use abide_retry::{BackoffRetryLayer, BoxError, Deadline, ReplayBody, RetryBudget};
use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::Full;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<Full<Bytes>>;

fn request() -> Request<Full<Bytes>> {
    Request::get("http://api.test/v1")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap()
}

/// The latest instant `now + d` can reach (virtual time is paused, so `now` holds still).
fn last_instant() -> Instant {
    let now = Instant::now();
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if now.checked_add(Duration::from_secs(mid)).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let at = now + Duration::from_secs(lo);
    (0..1_000_000_000u32)
        .rev()
        .step_by(1_000)
        .find_map(|n| at.checked_add(Duration::from_nanos(u64::from(n))))
        .unwrap_or(at)
}

#[tokio::test(start_paused = true)]
async fn a_deadline_at_the_end_of_time_does_not_panic() {
    let (service, mut handle) = mock::pair::<Req, Res>();
    let mut req = request();
    req.extensions_mut().insert(Deadline::at(last_instant()));
    let call = tokio::spawn(
        BackoffRetryLayer::new()
            .with_seed(1)
            .layer(service)
            .oneshot(req),
    );
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(Full::new(Bytes::from_static(b"ok"))));
    let res: Result<Res, BoxError> = call.await.expect("no panic");
    assert_eq!(res.unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_retry_dropped_while_waiting_gives_its_budget_token_back() {
    let budget = RetryBudget::new(0.0, 0, 1);
    let layer = BackoffRetryLayer::new()
        .with_seed(1)
        .with_budget(budget.clone());
    let (service, mut handle) = mock::pair::<Req, Res>();
    let call = tokio::spawn(layer.layer(service).oneshot(request()));
    let (_, send) = handle.next_request().await.unwrap();
    let mut refused = Response::builder()
        .status(429)
        .body(Full::default())
        .unwrap();
    refused.extensions_mut().insert(
        Classification::new(Class::RateLimited, "test")
            .with_retry_after(Some(Duration::from_secs(5))),
    );
    send.send_response(refused);
    // The retry is decided (its token taken), then the caller gives up while it waits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(budget.balance(), 0.0, "the waiting retry holds the token");
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(
        budget.balance(),
        1.0,
        "a retry that was never sent does not count against the budget"
    );
}

/// A failed response's body that is always ready with another empty frame, until `left`
/// runs out; counts the frames read.
struct EmptyFrames {
    left: usize,
    read: Arc<AtomicUsize>,
}

impl http_body::Body for EmptyFrames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        self.read.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
    }
}

#[tokio::test(start_paused = true)]
async fn draining_a_body_of_endless_empty_frames_stops_at_the_drain_limit() {
    const FRAMES: usize = 1_000_000;
    let read = Arc::new(AtomicUsize::new(0));
    let (service, mut handle) = mock::pair::<Req, Response<EmptyFrames>>();
    let layer = BackoffRetryLayer::new().with_seed(1).with_drain_limit(1024);
    let call = tokio::spawn(layer.layer(service).oneshot(request()));
    let (_, send) = handle.next_request().await.unwrap();
    let body = EmptyFrames {
        left: FRAMES,
        read: read.clone(),
    };
    send.send_response(Response::builder().status(503).body(body).unwrap());
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(Response::new(EmptyFrames {
        left: 0,
        read: Arc::new(AtomicUsize::new(0)),
    }));
    assert_eq!(call.await.unwrap().unwrap().status(), 200);
    // Each frame counts as at least one byte: a body that never ends cannot keep the
    // retry future spinning inside one poll.
    let read = read.load(Ordering::Relaxed);
    assert!(read <= 1025, "read {read} empty frames");
}
