//! Absurd configuration and deadlines end in an answer or a clear error, never a panic.

use abide_cap::{ConcurrencyCapLayer, Deadline};
use std::convert::Infallible;
use std::time::Duration;
use tower::{Layer, ServiceExt};

fn ok_api() -> impl tower::Service<
    http::Request<String>,
    Response = http::Response<String>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(|_req: http::Request<String>| async {
        Ok::<_, Infallible>(http::Response::new(String::from("ok")))
    })
}

fn request_with(deadline: Deadline) -> http::Request<String> {
    let mut req = http::Request::get("http://api.example.com/v1")
        .body(String::new())
        .unwrap();
    req.extensions_mut().insert(deadline);
    req
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_max_wait_and_an_unrepresentable_deadline_do_not_panic() {
    // `Deadline::within(Duration::MAX)` cannot be resolved to an instant: the request
    // then has no deadline, and the (unbounded) max wait must not be added to `now`.
    let svc = ConcurrencyCapLayer::new()
        .with_max_wait(Duration::MAX)
        .layer(ok_api());
    let res = svc
        .oneshot(request_with(Deadline::within(Duration::MAX)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
