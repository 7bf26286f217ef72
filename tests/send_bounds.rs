//! Compile-time checks: each layer's future and body are `Send` (the bodies `Sync` too)
//! when the inner service's are, alone and as the whole stack over a hyper-util client, so
//! the stack can be spawned on a multi-threaded runtime.

use abide::cap::ConcurrencyCap;
use abide::retry::{BackoffRetry, ReplayBody};
use abide::AbideLayer;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tower::{Layer, Service};

type Body = Full<Bytes>;
type Hyper = Client<HttpConnector, ReplayBody<Body>>;
type HyperOnce = Client<HttpConnector, Body>;

fn assert_send<T: Send>() {}
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn the_retry_layer_over_a_hyper_client_has_a_send_future_and_a_sync_replay_body() {
    assert_send::<abide::retry::ResponseFuture<Hyper, Body, Incoming>>();
    assert_send_sync::<ReplayBody<Body>>();
    assert_send_sync::<BackoffRetry<Hyper>>();
    assert_send::<<BackoffRetry<Hyper> as Service<Request<Body>>>::Future>();
}

#[test]
fn the_cap_layer_over_a_hyper_client_has_a_send_future_and_a_send_sync_body() {
    assert_send::<abide::cap::ResponseFuture<HyperOnce, Body>>();
    assert_send_sync::<abide::cap::ResponseBody<Incoming>>();
    assert_send_sync::<ConcurrencyCap<HyperOnce>>();
    assert_send::<<ConcurrencyCap<HyperOnce> as Service<Request<Body>>>::Future>();
}

#[test]
fn the_whole_stack_over_a_hyper_client_is_send_and_sync_with_a_send_future() {
    type Stack = <AbideLayer as Layer<Hyper>>::Service;
    assert_send_sync::<Stack>();
    assert_send::<<Stack as Service<Request<Body>>>::Future>();
    assert_send_sync::<<Stack as Service<Request<Body>>>::Response>();
}
