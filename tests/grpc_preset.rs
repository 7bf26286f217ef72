//! `GrpcLayer` (the `grpc()` preset) on real tonic channels to real tonic servers on
//! loopback: a status in the trailers is classified; each channel origin is its own
//! bucket; the stack's own refusals reach tonic callers as `RESOURCE_EXHAUSTED` and
//! `DEADLINE_EXCEEDED` with the reason. Virtual time.
#![cfg(feature = "grpc")]

use abide::grpc::GrpcLayer;
use abide::retry::BackoffRetryLayer;
use abide::AbideLayer;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, Uri};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::{Layer, Service};

#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    text: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    text: String,
}

const SAY: &str = "/abide.test.Echo/Say";

/// One scripted answer.
enum Answer {
    Ok,
    /// A status as tonic sends it (trailers-only).
    Status(Status),
    /// A 200 whose status comes in the trailers, after the headers.
    InTrailers(Code, &'static str),
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Instant>>,
}

struct Say(Option<Status>);

impl tonic::server::UnaryService<EchoRequest> for Say {
    type Response = EchoReply;
    type Future = Ready<Result<tonic::Response<EchoReply>, Status>>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let text = request.into_inner().text;
        ready(match self.0.take() {
            Some(status) => Err(status),
            None => Ok(tonic::Response::new(EchoReply { text })),
        })
    }
}

/// A body of trailers only: what a server streaming headers first sends on failure.
struct Trailers(Option<HeaderMap>);

impl http_body::Body for Trailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|t| Ok(http_body::Frame::trailers(t))))
    }
}

#[derive(Clone)]
struct EchoServer(Arc<Script>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<Body>> for EchoServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let script = self.0.clone();
        Box::pin(async move {
            script.seen.lock().unwrap().push(Instant::now());
            let answer = script
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Ok);
            let status = match answer {
                Answer::Ok => None,
                Answer::Status(status) => Some(status),
                Answer::InTrailers(code, pushback) => {
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", (code as i32).to_string().parse().unwrap());
                    trailers.insert("grpc-message", "slow down".parse().unwrap());
                    trailers.insert("grpc-retry-pushback-ms", pushback.parse().unwrap());
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(Body::new(Trailers(Some(trailers))))
                        .unwrap();
                    return Ok(response);
                }
            };
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            Ok(grpc.unary(Say(status), req).await)
        })
    }
}

async fn start(answers: Vec<Answer>) -> (Arc<Script>, Uri) {
    let script = Arc::new(Script {
        answers: Mutex::new(answers.into()),
        ..Script::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = EchoServer(script.clone());
    tokio::spawn(Server::builder().serve_with_incoming(server, TcpIncoming::from(listener)));
    (script, format!("http://{addr}").parse().unwrap())
}

type Stack = <GrpcLayer as Layer<Channel>>::Service;

async fn client(layer: &GrpcLayer, origin: &Uri) -> tonic::client::Grpc<Stack> {
    let channel = Channel::builder(origin.clone()).connect().await.unwrap();
    tonic::client::Grpc::with_origin(layer.layer(channel), origin.clone())
}

async fn say(client: &mut tonic::client::Grpc<Stack>, text: &str) -> Result<EchoReply, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    client
        .unary(
            tonic::Request::new(EchoRequest {
                text: text.to_owned(),
            }),
            PathAndQuery::from_static(SAY),
            ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

fn quota_gone() -> Status {
    let mut status = Status::resource_exhausted("quota exceeded");
    status
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", "-1".parse().unwrap());
    status
}

#[tokio::test(start_paused = true)]
async fn a_resource_exhausted_in_the_trailers_is_waited_out() {
    let (script, origin) = start(vec![Answer::InTrailers(Code::ResourceExhausted, "1500")]).await;
    let layer = GrpcLayer::with_stack(
        AbideLayer::grpc().with_retry(
            BackoffRetryLayer::new()
                .with_grpc_timeout(true)
                .with_seed(2),
        ),
    );
    let mut c = client(&layer, &origin).await;
    assert_eq!(say(&mut c, "hi").await.unwrap().text, "hi");
    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[1] - seen[0] >= Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_refusal_of_the_stack_reaches_tonic_as_resource_exhausted_with_the_reason() {
    let (script, origin) = start(vec![Answer::Status(quota_gone())]).await;
    let layer = GrpcLayer::new();
    let mut c = client(&layer, &origin).await;

    let first = say(&mut c, "a").await.unwrap_err();
    assert_eq!(first.code(), Code::ResourceExhausted);
    assert_eq!(first.message(), "quota exceeded", "the server's own status");

    let later = say(&mut c, "b").await.unwrap_err();
    assert_eq!(later.code(), Code::ResourceExhausted, "{later:?}");
    assert!(
        later.message().starts_with("abide: quota of bucket"),
        "{}",
        later.message()
    );
    assert!(
        later
            .message()
            .contains(origin.authority().unwrap().as_str()),
        "the reason names the bucket: {}",
        later.message()
    );
    assert_eq!(
        script.seen.lock().unwrap().len(),
        1,
        "the refusal was not sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deadline_the_pushback_would_pass_reaches_tonic_as_deadline_exceeded() {
    let mut throttled = Status::resource_exhausted("slow down");
    throttled
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", "10000".parse().unwrap());
    let (_script, origin) = start(vec![Answer::Status(throttled)]).await;
    let layer = GrpcLayer::with_stack(
        AbideLayer::grpc()
            .with_retry(BackoffRetryLayer::new().with_deadline(Duration::from_secs(3))),
    );
    let mut c = client(&layer, &origin).await;
    let status = say(&mut c, "a").await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().starts_with("abide: request deadline"),
        "{}",
        status.message()
    );
}

#[tokio::test(start_paused = true)]
async fn each_channel_origin_is_its_own_bucket() {
    let (exhausted, a) = start(vec![Answer::Status(quota_gone())]).await;
    let (healthy, b) = start(vec![]).await;
    // One layer, one store: the buckets are apart only by origin.
    let layer = GrpcLayer::new();
    let mut to_a = client(&layer, &a).await;
    let mut to_b = client(&layer, &b).await;

    assert_eq!(
        say(&mut to_a, "x").await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    assert_eq!(
        say(&mut to_a, "x").await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    assert_eq!(
        say(&mut to_b, "y").await.unwrap().text,
        "y",
        "b is not blocked by a"
    );
    assert_eq!(exhausted.seen.lock().unwrap().len(), 1);
    assert_eq!(healthy.seen.lock().unwrap().len(), 1);
}
