//! Testing your own abide stack with `tower-test`: a mock API you answer by hand, in
//! virtual time, so a test of "waits exactly as long as the server asked" takes no time.
//!
//! ```sh
//! cargo run --example tower_test
//! ```
//!
//! The same code works in a `#[tokio::test(start_paused = true)]`.

use abide::{AbideLayer, AbideService, Model, Outcome, ReplayBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_test::mock;

type Req = Request<ReplayBody<Full<Bytes>>>;
type Res = Response<Full<Bytes>>;

fn chat(model: &str) -> Request<Full<Bytes>> {
    let mut request = Request::post("https://api.openai.com/v1/chat/completions")
        .body(Full::new(Bytes::from_static(br#"{"messages":[]}"#)))
        .expect("a valid request");
    request.extensions_mut().insert(Model::new(model));
    request
}

fn answer(status: u16, headers: &[(&str, &str)], body: &'static str) -> Res {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid response")
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), BoxError> {
    let (api, mut handle) = mock::pair::<Req, Res>();
    let client: AbideService<mock::Mock<Req, Res>> = ServiceBuilder::new()
        .layer(AbideLayer::openai())
        .service(api);

    // 1. A 429 with `Retry-After: 2`: the retry comes 2 s later (virtual), same body.
    let start = Instant::now();
    let call = tokio::spawn(client.clone().oneshot(chat("gpt-4o")));
    let (first, send) = handle.next_request().await.expect("the first attempt");
    // Read each attempt's body before answering it: a retry takes the body over.
    let first = first.into_body().collect().await?.to_bytes();
    send.send_response(answer(429, &[("retry-after", "2")], "{}"));
    let (retry, send) = handle.next_request().await.expect("the retry");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let retry = retry.into_body().collect().await?.to_bytes();
    assert_eq!(first, retry, "the retry sends the same body");
    send.send_response(answer(200, &[], r#"{"choices":[]}"#));
    let result = call.await?;
    assert_eq!(Outcome::of(&result), Outcome::Success { attempts: 2 });
    println!(
        "429 + Retry-After 2: retried after {waited:?}, {}",
        Outcome::of(&result)
    );

    // 2. The account is out of credits: reported at once, and the next call is not sent.
    let call = tokio::spawn(client.clone().oneshot(chat("gpt-4o")));
    let (_, send) = handle.next_request().await.expect("the request");
    send.send_response(answer(
        429,
        &[("content-type", "application/json")],
        r#"{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota"}}"#,
    ));
    let result = call.await?;
    assert!(matches!(
        Outcome::of(&result),
        Outcome::QuotaExhausted { .. }
    ));
    let later = tokio::spawn(client.clone().oneshot(chat("gpt-4o")));
    assert!(
        timeout(Duration::from_secs(5), handle.next_request())
            .await
            .is_err(),
        "nothing reaches the API"
    );
    let later = later.await?;
    println!(
        "insufficient_quota: {}; next call: {}",
        Outcome::of(&result),
        Outcome::of(&later)
    );
    assert!(matches!(
        Outcome::of(&later),
        Outcome::QuotaExhausted { .. }
    ));
    Ok(())
}
