//! Heap allocations on the success path of the whole stack, counted by a global allocator.
//!
//! After warm-up, a successful request through `AbideLayer::generic()` allocates only what
//! the contracts of the stack require, and the test pins the exact count, so any new
//! allocation on the success path fails it:
//!
//! - **the retry copy of the request head** (`Template`): the inner service consumes the
//!   request, so a retry needs its own copy of the headers, made before the first attempt
//!   (tower's `retry::Policy::clone_request` makes the same copy). It costs what
//!   `HeaderMap::clone` costs for this request, measured here on an identical request: the
//!   map's two tables, plus one shared handle per header value still owned by a single
//!   buffer (`bytes` makes such a value shareable on its first clone).
//! - **the replay record of the body** ([`ReplayBody`](abide::retry::ReplayBody)): one
//!   record shared by the attempt that sends the body and the copy kept for a retry (an
//!   `Arc`), holding the original body pinned on the heap (a `Box`: the body type need not
//!   be `Unpin`, and the crate has no `unsafe`), plus the data's shared handle when the
//!   recorded frame was owned by one buffer (measured like the header values). A body of
//!   one frame is recorded inline, without a list.
//! - **the response's extensions**: [`Classification`](abide::Classification),
//!   [`RateLimitSnapshot`](abide::headers::RateLimitSnapshot) and
//!   [`Attempts`](abide::retry::Attempts), the documented outputs of the stack. `http`
//!   boxes each value and allocates its map (and the map's table) on the first insert.
//!
//! Everything else (bucket lookups, admission, the permit, header parsing, classification,
//! counters, the budget) allocates nothing. Requests and responses are built before the
//! counted region: they are the caller's and the API's allocations, not the stack's.
//!
//! The counter (`stats_alloc`, a `GlobalAlloc` wrapper over the system allocator, so this
//! crate keeps `forbid(unsafe_code)`) is process-wide: this binary holds this one test and
//! the runtime is current-thread, so nothing else allocates while it counts.

use abide::AbideLayer;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tower::{Layer, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Requests sent before counting: buckets, learned limits and lazily built statics exist.
const WARM_UP: usize = 32;
/// Requests counted.
const COUNTED: usize = 500;
/// `Classification`, `RateLimitSnapshot`, `Attempts`: one box each, plus the map's box and
/// its hash table on the first insert (the table's first capacity holds three entries).
const EXTENSION_ALLOCATIONS: usize = 5;
/// The replay record: the `Arc` shared by the sent body and the retry copy, and the `Box`
/// pinning the original body.
const REPLAY_ALLOCATIONS: usize = 2;

const PROMPT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}"#;

/// A body as a client builds one: a JSON document serialized into a fresh buffer.
fn body() -> Bytes {
    Bytes::from(PROMPT.as_bytes().to_vec())
}

/// A request as a client builds one: URI and credential from runtime strings, a static
/// content type, a body that is already in memory.
fn request(key: &str) -> Request<Full<Bytes>> {
    let uri: Uri = String::from("https://api.openai.com/v1/chat/completions")
        .parse()
        .expect("a URI");
    let mut request = Request::new(Full::new(body()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {key}")).expect("a header value"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request
}

/// A 200 with the rate-limit headers OpenAI sends, limits far above this test's rate.
fn response() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    for (name, value) in [
        ("content-type", "application/json"),
        ("x-ratelimit-limit-requests", "10000000"),
        ("x-ratelimit-remaining-requests", "9999999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "100000000"),
        ("x-ratelimit-remaining-tokens", "99999990"),
        ("x-ratelimit-reset-tokens", "0s"),
    ] {
        response.headers_mut().insert(
            http::HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    response
}

/// What `HeaderMap::clone` allocates for a fresh request like [`request`]'s.
fn header_copy_allocations() -> usize {
    let fresh = request("sk-test-0123456789abcdef");
    let region = Region::new(GLOBAL);
    let copy = fresh.headers().clone();
    let allocations = region.change().allocations;
    drop(copy);
    allocations
}

/// What sharing a fresh body buffer costs (the replay record keeps a handle on it).
fn body_share_allocations() -> usize {
    let fresh = body();
    let region = Region::new(GLOBAL);
    let shared = fresh.clone();
    let allocations = region.change().allocations;
    drop(shared);
    allocations
}

#[test]
fn a_successful_request_allocates_only_its_retry_copy_and_its_extensions() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let total = WARM_UP + COUNTED;
    // Built up front: the caller's and the API's allocations are not counted.
    let responses: Arc<Mutex<Vec<Response<Full<Bytes>>>>> =
        Arc::new(Mutex::new((0..total).map(|_| response()).collect()));
    let mut requests: Vec<_> = (0..total)
        .map(|i| request(&format!("sk-test-{i:016x}")))
        .collect();
    requests.reverse();
    let api = {
        let responses = responses.clone();
        tower::service_fn(
            move |request: Request<abide::AbideRequestBody<Full<Bytes>>>| {
                let responses = responses.clone();
                async move {
                    // Send the body, as a client does (the replay record keeps it).
                    let mut body = request.into_body();
                    while let Some(frame) = body.frame().await {
                        frame.expect("a request body frame");
                    }
                    let response = responses
                        .lock()
                        .expect("the response pool")
                        .pop()
                        .expect("a prepared response");
                    Ok::<_, Infallible>(response)
                }
            },
        )
    };
    let service = AbideLayer::generic().layer(api);
    let per_copy = header_copy_allocations();
    let per_body = body_share_allocations();

    let counted = rt.block_on(async {
        let mut send = |n: usize| {
            let service = service.clone();
            let batch: Vec<_> = (0..n).map(|_| requests.pop().expect("a request")).collect();
            async move {
                let mut region = None;
                for (i, request) in batch.into_iter().enumerate() {
                    if i == 0 {
                        region = Some(Region::new(GLOBAL));
                    }
                    let response = service.clone().oneshot(request).await.expect("a success");
                    assert!(response.status().is_success());
                    // Read to the end, as a caller does: that releases the permit.
                    let mut body = response.into_body();
                    while let Some(frame) = body.frame().await {
                        frame.expect("a frame");
                    }
                }
                region.map(|r| r.change())
            }
        };
        let _ = send(WARM_UP).await;
        send(COUNTED).await.expect("counted requests")
    });

    let expected = per_copy + per_body + REPLAY_ALLOCATIONS + EXTENSION_ALLOCATIONS;
    let per_request = counted.allocations as f64 / COUNTED as f64;
    assert_eq!(
        counted.allocations,
        COUNTED * expected,
        "{per_request:.2} allocations per request, expected {expected}: {per_copy} for the \
         retry copy of the headers, {REPLAY_ALLOCATIONS} + {per_body} for the body's replay \
         record, {EXTENSION_ALLOCATIONS} for the response extensions \
         ({} reallocations, {} bytes)",
        counted.reallocations,
        counted.bytes_allocated,
    );
    assert_eq!(
        counted.reallocations, 0,
        "reallocations on the success path"
    );
}
