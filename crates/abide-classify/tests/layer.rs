//! The layer through tower-test mocks: verdicts land in the extensions, bodies reach the
//! caller byte for byte, slow bodies cannot hang it, errors pass through.

use abide_classify::{
    rule_fn, BodyPrefix, Class, Classification, ClassifyResponse, Decision, EosClassification,
    MakeClassifier, QuotaClassifierLayer, QuotaScope, ResponseHead,
};
use abide_headers::RateLimitSnapshot;
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends `request` through a classifier over a mock that answers `response`.
async fn through<U, B>(
    layer: QuotaClassifierLayer<U>,
    request: Request<()>,
    response: Response<B>,
) -> Response<abide_classify::ResponseBody<B>>
where
    U: MakeClassifier + Clone,
    U::Classifier: Send + Sync + 'static,
    B: Body + Send + 'static,
{
    let (mock, mut handle) = mock::pair::<Request<()>, Response<B>>();
    let mut svc = layer.layer(mock);
    let served = tokio::spawn(async move {
        let (_req, send) = handle.next_request().await.expect("a request");
        send.send_response(response);
    });
    let res = svc.ready().await.unwrap().call(request).await.unwrap();
    served.await.unwrap();
    res
}

fn json(status: u16, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn verdict<B>(res: &Response<B>) -> &Classification {
    res.extensions()
        .get::<Classification>()
        .expect("a Classification")
}

#[tokio::test]
async fn a_success_gets_a_verdict_and_a_snapshot_and_its_body_untouched() {
    let response = Response::builder()
        .header("x-ratelimit-limit-requests", "500")
        .header("x-ratelimit-remaining-requests", "499")
        .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
        .unwrap();
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    assert_eq!(verdict(&res).class, Class::Success);
    let snapshot = res.extensions().get::<RateLimitSnapshot>().unwrap();
    assert_eq!(snapshot.requests().unwrap().remaining, Some(499));
    assert_eq!(res.body().size_hint().exact(), Some(11));
    assert_eq!(
        &res.into_body().collect().await.unwrap().to_bytes()[..],
        b"{\"ok\":true}"
    );
}

#[tokio::test]
async fn a_quota_429_split_over_frames_is_classified_and_replayed_frame_by_frame() {
    let text = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let chunks: Vec<Bytes> = text
        .as_bytes()
        .chunks(7)
        .map(Bytes::copy_from_slice)
        .collect();
    let frames = chunks
        .clone()
        .into_iter()
        .map(|c| Ok::<_, Infallible>(Frame::data(c)));
    let response = Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap();
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    let v = verdict(&res);
    assert_eq!(
        (v.class, v.retryable, &v.scope),
        (Class::QuotaExhausted, false, &QuotaScope::Billing)
    );
    let mut body = res.into_body();
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        got.push(frame.unwrap().into_data().unwrap());
    }
    assert_eq!(got, chunks, "same frames, same order");
}

#[tokio::test]
async fn a_body_larger_than_the_peek_limit_is_judged_by_its_prefix_and_delivered_whole() {
    let mut text =
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"pad":""#
            .to_vec();
    text.extend((0..1_000_000).map(|i| b'a' + (i % 26) as u8));
    text.extend_from_slice(b"\"}");
    let expected = Bytes::from(text);
    let frames: Vec<_> = expected
        .chunks(8192)
        .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let response = Response::builder()
        .status(529)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap();
    let layer = QuotaClassifierLayer::new().with_peek_limit(16 * 1024);
    let res = through(layer, Request::new(()), response).await;
    let v = verdict(&res);
    assert_eq!(v.class, Class::Overloaded);
    assert_eq!(v.reason.0, "body: overloaded");
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        expected
    );
}

#[tokio::test]
async fn malformed_and_non_utf8_bodies_get_a_verdict_and_reach_the_caller_byte_for_byte() {
    let bodies: [&'static [u8]; 4] = [
        b"\xff\xfe\x00\x80garbage\xc3",
        br#"{"error":{"type":"rate_limit_error","message":"cut off he"#,
        b"",
        b"<html>429</html>",
    ];
    for raw in bodies {
        let response = Response::builder()
            .status(429)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(raw)))
            .unwrap();
        let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
        assert_eq!(verdict(&res).class, Class::RateLimited);
        assert_eq!(
            &res.into_body().collect().await.unwrap().to_bytes()[..],
            raw
        );
    }
}

/// A body that sends `first`, then nothing for `stall`, then `rest`.
struct SlowBody {
    first: Option<Bytes>,
    stall: Pin<Box<tokio::time::Sleep>>,
    rest: Option<Bytes>,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(f))));
        }
        if self.stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.rest.take().map(|r| Ok(Frame::data(r))))
    }
}

use std::future::Future;

#[tokio::test(start_paused = true)]
async fn a_stalled_body_cannot_hang_the_response() {
    let body = SlowBody {
        first: Some(Bytes::from_static(
            br#"{"error":{"type":"rate_limit_error","#,
        )),
        stall: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
        rest: Some(Bytes::from_static(br#""message":"slow"}}"#)),
    };
    let response = Response::builder()
        .status(429)
        .header("content-type", "application/json")
        .header("retry-after", "3")
        .body(body)
        .unwrap();
    let start = tokio::time::Instant::now();
    let layer = QuotaClassifierLayer::new().with_peek_timeout(Duration::from_millis(500));
    let res = through(layer, Request::new(()), response).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(500),
        "answered at the peek timeout"
    );
    let v = verdict(&res);
    assert_eq!(v.class, Class::RateLimited);
    assert_eq!(v.retry_after, Some(Duration::from_secs(3)));
    // The caller still gets every byte once the server sends the rest.
    let all = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &all[..],
        br#"{"error":{"type":"rate_limit_error","message":"slow"}}"#
    );
    assert!(start.elapsed() >= Duration::from_secs(3600));
}

#[derive(Debug)]
struct Broken;
impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset mid-body")
    }
}
impl std::error::Error for Broken {}

#[tokio::test]
async fn a_body_error_during_the_peek_reaches_the_caller_after_the_bytes_read() {
    let frames = vec![
        Ok(Frame::data(Bytes::from_static(b"{\"error\":"))),
        Err(Broken),
        Ok(Frame::data(Bytes::from_static(b"never"))),
    ];
    let response = Response::builder()
        .status(500)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap();
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    assert_eq!(verdict(&res).class, Class::ServerError);
    let mut body = res.into_body();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        &b"{\"error\":"[..]
    );
    assert!(body.frame().await.unwrap().is_err());
    assert!(
        body.frame().await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through_unchanged() {
    let (mock, mut handle) = mock::pair::<Request<()>, Response<Full<Bytes>>>();
    let mut svc = QuotaClassifierLayer::new().layer(mock);
    tokio::spawn(async move {
        let (_req, send) = handle.next_request().await.unwrap();
        send.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    });
    let err: BoxError = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    let io = err
        .downcast_ref::<std::io::Error>()
        .expect("the inner error itself");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    let c = abide_classify::classify_error(err.as_ref());
    assert_eq!(c.processing, abide_classify::Processing::NotProcessed);
}

#[tokio::test]
async fn user_rules_run_before_the_built_in_ones() {
    let suspended = rule_fn(|head: &ResponseHead<'_>| {
        (head.status.as_u16() == 429 && head.headers.contains_key("x-acme-suspended"))
            .then(|| Classification::new(Class::QuotaExhausted, "acme: account suspended"))
    });
    let layer = QuotaClassifierLayer::new().with_rule(suspended);
    let mut response = json(
        429,
        r#"{"error":{"type":"rate_limit_error","message":"x"}}"#,
    );
    response
        .headers_mut()
        .insert("x-acme-suspended", "1".parse().unwrap());
    let res = through(layer.clone(), Request::new(()), response).await;
    assert_eq!(verdict(&res).reason.0, "acme: account suspended");
    // Without the header the rule passes and the built-in rules decide.
    let res = through(
        layer,
        Request::new(()),
        json(
            429,
            r#"{"error":{"type":"rate_limit_error","message":"x"}}"#,
        ),
    )
    .await;
    assert_eq!(verdict(&res).class, Class::RateLimited);
}

/// A user rule that reads the body: "ACME-QUOTA" anywhere means quota.
#[derive(Clone, Debug)]
struct AcmeBody;

impl MakeClassifier for AcmeBody {
    type Classifier = AcmeBody;
    fn make_classifier<B>(&self, _: &Request<B>) -> AcmeBody {
        AcmeBody
    }
}

impl ClassifyResponse for AcmeBody {
    fn classify_head(&mut self, _: &ResponseHead<'_>) -> Option<Decision> {
        None
    }
    fn classify_body(
        &mut self,
        _: &ResponseHead<'_>,
        body: &BodyPrefix<'_>,
    ) -> Option<Classification> {
        body.bytes
            .windows(10)
            .any(|w| w == b"ACME-QUOTA")
            .then(|| Classification::new(Class::QuotaExhausted, "acme: quota code"))
    }
}

#[tokio::test]
async fn user_body_rules_see_the_peeked_prefix_first() {
    let layer = QuotaClassifierLayer::new().with_rule(AcmeBody);
    let res = through(
        layer,
        Request::new(()),
        json(429, r#"{"code":"ACME-QUOTA"}"#),
    )
    .await;
    assert_eq!(verdict(&res).reason.0, "acme: quota code");
}

#[tokio::test]
async fn graphql_200s_are_peeked_only_when_asked() {
    let body = r#"{"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded for user ID 1."}]}"#;
    let req = || {
        Request::builder()
            .uri("https://api.github.com/graphql")
            .body(())
            .unwrap()
    };
    let res = through(QuotaClassifierLayer::new(), req(), json(200, body)).await;
    assert_eq!(verdict(&res).class, Class::Success);
    let res = through(
        QuotaClassifierLayer::new().with_graphql(true),
        req(),
        json(200, body),
    )
    .await;
    assert_eq!(verdict(&res).class, Class::RateLimited);
    assert_eq!(
        &res.into_body().collect().await.unwrap().to_bytes()[..],
        body.as_bytes()
    );
}

#[tokio::test]
async fn compressed_and_head_responses_are_not_peeked() {
    let mut gz = json(429, "\x1f\u{8b}not really gzip");
    gz.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let res = through(QuotaClassifierLayer::new(), Request::new(()), gz).await;
    assert_eq!(verdict(&res).reason.0, "status 429");
    let head = Request::builder().method("HEAD").body(()).unwrap();
    let res = through(QuotaClassifierLayer::new(), head, json(503, "")).await;
    assert_eq!(verdict(&res).reason.0, "status 503");
}

/// A body made of prepared frames.
type FrameBody = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn grpc_response(frames: Vec<Frame<Bytes>>) -> Response<FrameBody> {
    let frames: Vec<_> = frames.into_iter().map(Ok).collect();
    Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap()
}

#[tokio::test]
async fn a_grpc_status_in_the_trailers_is_classified_when_the_body_ends() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "8".parse().unwrap());
    trailers.insert(
        "grpc-message",
        "Quota exceeded for requests per minute".parse().unwrap(),
    );
    trailers.insert("grpc-retry-pushback-ms", "1500".parse().unwrap());
    let response = grpc_response(vec![
        Frame::data(Bytes::from_static(b"\0\0\0\0\0")),
        Frame::trailers(trailers),
    ]);
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    assert_eq!(
        verdict(&res).class,
        Class::Success,
        "provisional until the trailers"
    );
    let eos = res.extensions().get::<EosClassification>().unwrap().clone();
    assert!(eos.get().is_none());
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "8");
    let v = eos.get().expect("set at end of stream");
    assert_eq!(
        (v.class, v.retry_after),
        (Class::RateLimited, Some(Duration::from_millis(1500)))
    );
}

#[tokio::test]
async fn a_grpc_stream_ending_without_a_status_is_not_a_silent_success() {
    let response = grpc_response(vec![Frame::data(Bytes::from_static(b"\0\0\0\0\0"))]);
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    let eos = res.extensions().get::<EosClassification>().unwrap().clone();
    res.into_body().collect().await.unwrap();
    assert_eq!(eos.get().unwrap().class, Class::ServerError);
}

#[tokio::test]
async fn a_trailers_only_grpc_response_is_classified_at_once() {
    let response = Response::builder()
        .header("content-type", "application/grpc+proto")
        .header("grpc-status", "8")
        .header("grpc-retry-pushback-ms", "-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = through(QuotaClassifierLayer::new(), Request::new(()), response).await;
    let v = verdict(&res);
    assert_eq!((v.class, v.retryable), (Class::QuotaExhausted, false));
    assert!(res.extensions().get::<EosClassification>().is_none());
}

#[test]
fn the_service_is_clone_and_send_and_its_future_is_send() {
    fn send<T: Send>(_: &T) {}
    let svc = QuotaClassifierLayer::new().layer(tower::service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let mut clone = svc.clone();
    send(&clone);
    let fut = clone.call(Request::new(()));
    send(&fut);
}

/// A body that sends each frame after its delay.
struct Scripted {
    script: std::collections::VecDeque<(Duration, Frame<Bytes>)>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Scripted {
    fn new(script: Vec<(Duration, Frame<Bytes>)>) -> Self {
        Scripted {
            script: script.into(),
            sleep: None,
        }
    }
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Some((delay, _)) = self.script.front() else {
            return Poll::Ready(None);
        };
        let delay = *delay;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.sleep = None;
        Poll::Ready(self.script.pop_front().map(|(_, f)| Ok(f)))
    }
}

fn grpc_scripted(script: Vec<(Duration, Frame<Bytes>)>) -> Response<Scripted> {
    Response::builder()
        .header("content-type", "application/grpc")
        .body(Scripted::new(script))
        .unwrap()
}

fn exhausted_trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "8".parse().unwrap());
    t.insert("grpc-retry-pushback-ms", "900".parse().unwrap());
    t
}

#[tokio::test(start_paused = true)]
async fn with_trailer_peek_a_unary_grpc_verdict_is_final_before_the_response_returns() {
    let response = grpc_scripted(vec![
        (
            Duration::ZERO,
            Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")),
        ),
        (
            Duration::from_millis(30),
            Frame::trailers(exhausted_trailers()),
        ),
    ]);
    let layer = QuotaClassifierLayer::new().with_grpc_trailer_peek(true);
    let res = through(layer, Request::new(()), response).await;
    let v = verdict(&res);
    assert_eq!(
        (v.class, v.retry_after),
        (Class::RateLimited, Some(Duration::from_millis(900)))
    );
    assert!(res.extensions().get::<EosClassification>().is_none());
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "8");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
}

#[tokio::test(start_paused = true)]
async fn with_trailer_peek_a_slow_grpc_stream_is_returned_at_the_timeout_and_judged_at_its_end() {
    let response = grpc_scripted(vec![
        (
            Duration::ZERO,
            Frame::data(Bytes::from_static(b"\0\0\0\0\x01a")),
        ),
        (
            Duration::from_secs(60),
            Frame::data(Bytes::from_static(b"\0\0\0\0\x01b")),
        ),
        (
            Duration::from_secs(60),
            Frame::trailers(exhausted_trailers()),
        ),
    ]);
    let start = tokio::time::Instant::now();
    let layer = QuotaClassifierLayer::new()
        .with_grpc_trailer_peek(true)
        .with_peek_timeout(Duration::from_secs(1));
    let res = through(layer, Request::new(()), response).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(verdict(&res).class, Class::Success, "provisional");
    let eos = res.extensions().get::<EosClassification>().unwrap().clone();
    let collected = res.into_body().collect().await.unwrap();
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x01a\0\0\0\0\x01b");
    assert_eq!(eos.get().unwrap().class, Class::RateLimited);
}
