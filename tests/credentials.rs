//! Nothing the stack logs or labels carries a credential: the whole stack (metrics,
//! retry, cap, classifier) runs requests with a key in a header and in the query string,
//! through throttles, quota exhaustion and local refusals, and the captured trace (every
//! level, every target) and metrics are searched for the key.
#![cfg(feature = "metrics")]

mod common;

use abide::metrics::{MetricsLayer, ATTEMPTS, REQUESTS};
use abide::{AbideLayer, Outcome};
use common::{insufficient_quota, Buf, Reply, Script};
use http::Request;
use metrics_util::debugging::DebuggingRecorder;
use tower::{Layer, ServiceExt};

const HEADER_KEY: &str = "sk-proj-HEADERSECRET0123456789";
const QUERY_KEY: &str = "AIzaQUERYSECRET9876543210";

fn request(model: &str) -> Request<common::Body> {
    let mut req = Request::post(format!(
        "https://api.example.com/v1/chat/completions?key={QUERY_KEY}&alt=json"
    ))
    .header("authorization", format!("Bearer {HEADER_KEY}"))
    .header("x-api-key", HEADER_KEY)
    .body(common::Body::from(r#"{"messages":[]}"#))
    .unwrap();
    req.extensions_mut().insert(abide::Model::new(model));
    req
}

async fn traffic() -> Vec<String> {
    let api = Script::new([
        Reply::status(429)
            .header("retry-after", "2")
            .header("x-ratelimit-remaining-requests", "0")
            .body(r#"{"error":{"message":"Rate limit reached for requests"}}"#),
        Reply::ok(),
        Reply::status(502),
        Reply::ok(),
        insufficient_quota(),
    ]);
    let client = MetricsLayer::new().layer(AbideLayer::openai().layer(api.service()));
    let mut outcomes = Vec::new();
    for model in ["a", "a", "b", "b"] {
        let result = client.clone().oneshot(request(model)).await;
        let outcome = Outcome::of(&result);
        outcomes.push(outcome.to_string());
        if let Err(e) = result {
            outcomes.push(format!("{e} / {e:?}"));
        }
    }
    outcomes
}

#[test]
fn no_key_reaches_the_trace_the_metrics_or_the_errors() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let outcomes = metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(subscriber, || runtime.block_on(traffic()))
    });

    let trace = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let metrics = format!("{:?}", snapshotter.snapshot().into_vec());
    let errors = outcomes.join("\n");

    // Something was captured, with the documented names: the search below means something.
    assert!(
        trace.contains("request ended") && trace.contains("bucket"),
        "{trace}"
    );
    assert!(
        trace.contains("retrying") || trace.contains("retry"),
        "{trace}"
    );
    assert!(
        metrics.contains(REQUESTS) && metrics.contains(ATTEMPTS),
        "{metrics}"
    );
    assert!(metrics.contains("api.example.com"), "{metrics}");
    assert!(metrics.contains("quota_exhausted"), "{metrics}");
    assert!(errors.contains("quota"), "{errors}");

    for (what, text) in [
        ("trace", &trace),
        ("metrics", &metrics),
        ("errors", &errors),
    ] {
        for secret in [HEADER_KEY, QUERY_KEY, "HEADERSECRET", "QUERYSECRET", "key="] {
            assert!(!text.contains(secret), "{what} carries {secret:?}:\n{text}");
        }
    }
}
