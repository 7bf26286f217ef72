//! abide on a tonic `Channel` calling a real tonic gRPC server on loopback: a transient
//! `RESOURCE_EXHAUSTED` with a pushback is waited out; quota exhaustion (a negative
//! pushback, or a per-day `QuotaFailure` detail) is not retried. Virtual time.

use abide::retry::{BackoffRetryLayer, ReplayBody};
use abide::{AbideLayer, ServiceBuilderExt};
use http::uri::PathAndQuery;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
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
use tonic_types::{ErrorDetails, QuotaViolation, StatusExt};
use tower::{Service, ServiceBuilder};

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

/// The server's answers, in order; `None` = OK. Records each call's arrival and text.
#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Option<Status>>>,
    seen: Mutex<Vec<(Instant, String)>>,
}

struct Say(Arc<Script>);

impl tonic::server::UnaryService<EchoRequest> for Say {
    type Response = EchoReply;
    type Future = Ready<Result<tonic::Response<EchoReply>, Status>>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let text = request.into_inner().text;
        self.0
            .seen
            .lock()
            .unwrap()
            .push((Instant::now(), text.clone()));
        let answer = self.0.answers.lock().unwrap().pop_front().flatten();
        ready(match answer {
            Some(status) => Err(status),
            None => Ok(tonic::Response::new(EchoReply { text })),
        })
    }
}

/// The hand-written server side of one unary method (what tonic-build would generate).
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
            if req.uri().path() != SAY {
                return Ok(Status::unimplemented(req.uri().path().to_owned()).into_http());
            }
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            Ok(grpc.unary(Say(script), req).await)
        })
    }
}

async fn start(answers: Vec<Option<Status>>) -> (Arc<Script>, SocketAddr) {
    let script = Arc::new(Script {
        answers: Mutex::new(answers.into()),
        ..Script::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = EchoServer(script.clone());
    tokio::spawn(Server::builder().serve_with_incoming(server, TcpIncoming::from(listener)));
    (script, addr)
}

/// One unary call through abide on a tonic channel.
async fn say(addr: SocketAddr, text: &str) -> Result<EchoReply, Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let stack = ServiceBuilder::new()
        .abide(AbideLayer::new().with_retry(BackoffRetryLayer::new().with_seed(5)))
        // A tonic channel takes tonic's body only.
        .map_request(|r: http::Request<ReplayBody<Body>>| r.map(Body::new))
        .service(channel);
    let mut client = tonic::client::Grpc::new(stack);
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = tonic::Request::new(EchoRequest {
        text: text.to_owned(),
    });
    client
        .unary(
            request,
            PathAndQuery::from_static(SAY),
            ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

fn pushback(ms: &str) -> Status {
    let mut status = Status::resource_exhausted("rate limit exceeded");
    status
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", ms.parse().unwrap());
    status
}

#[tokio::test(start_paused = true)]
async fn a_transient_resource_exhausted_is_retried_after_the_pushback() {
    let (script, addr) = start(vec![Some(pushback("1500")), None]).await;
    let reply = say(addr, "hello").await.unwrap();
    assert_eq!(reply.text, "hello");

    let seen = script.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1, "hello", "the retry carries the same message");
    let gap = seen[1].0 - seen[0].0;
    assert!(gap >= Duration::from_millis(1500), "retried after {gap:?}");
    assert!(gap < Duration::from_millis(2500), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn a_negative_pushback_is_quota_exhaustion_and_is_not_retried() {
    let (script, addr) = start(vec![Some(pushback("-1")), None]).await;
    let status = say(addr, "hello").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "rate limit exceeded",
        "the server's own status"
    );
    assert_eq!(script.seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_per_day_quota_failure_detail_is_not_retried_and_reaches_the_caller_intact() {
    let mut violation = QuotaViolation::new("project:123", "Quota exceeded");
    violation.quota_id = "GenerateRequestsPerDayPerProjectPerModel-FreeTier".into();
    violation.quota_metric = "generativelanguage.googleapis.com/generate_requests".into();
    let details = ErrorDetails::with_quota_failure(vec![violation]);
    let quota = Status::with_error_details(Code::ResourceExhausted, "quota exceeded", details);
    let (script, addr) = start(vec![Some(quota), None]).await;

    let status = say(addr, "hello").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(script.seen.lock().unwrap().len(), 1, "not retried");
    let details = status.get_error_details();
    let failure = details
        .quota_failure()
        .expect("details decode on the caller's side");
    assert_eq!(
        failure.violations[0].quota_id,
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    );
}

#[tokio::test(start_paused = true)]
async fn a_per_minute_quota_failure_detail_is_a_rate_limit_and_is_retried() {
    let mut violation = QuotaViolation::new("project:123", "Quota exceeded");
    violation.quota_id = "GenerateRequestsPerMinutePerProjectPerModel".into();
    let details = ErrorDetails::with_quota_failure(vec![violation]);
    let limited = Status::with_error_details(Code::ResourceExhausted, "quota exceeded", details);
    let (script, addr) = start(vec![Some(limited), None]).await;

    let reply = say(addr, "again").await.unwrap();
    assert_eq!(reply.text, "again");
    assert_eq!(script.seen.lock().unwrap().len(), 2);
}
