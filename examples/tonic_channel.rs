//! `abide::grpc::GrpcLayer` (the `grpc()` preset) on a real tonic `Channel` to a real tonic
//! server on 127.0.0.1. The server answers `RESOURCE_EXHAUSTED` with a pushback once
//! (abide waits it out), then says the quota is gone (a negative pushback): the next call
//! is refused by abide without being sent, as `RESOURCE_EXHAUSTED` with the reason.
//!
//! ```sh
//! cargo run --example tonic_channel --features grpc
//! ```

use abide::grpc::GrpcLayer;
use abide::Attempts;
use http::uri::PathAndQuery;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::Status;
use tonic_prost::ProstCodec;
use tower::{BoxError, Service, ServiceBuilder};

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

const SAY: &str = "/example.Echo/Say";

fn with_pushback(message: &str, ms: &str) -> Status {
    let mut status = Status::resource_exhausted(message.to_owned());
    status
        .metadata_mut()
        .insert("grpc-retry-pushback-ms", ms.parse().expect("ascii"));
    status
}

/// The unary method; its answers come from a shared script (`None` = OK).
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

/// The server side of one method, as tonic-build would generate it.
#[derive(Clone)]
struct EchoServer(Arc<Mutex<VecDeque<Option<Status>>>>);

impl Service<http::Request<Body>> for EchoServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let answer = self
            .0
            .lock()
            .map(|mut q| q.pop_front().flatten())
            .unwrap_or(None);
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
            Ok(grpc.unary(Say(answer), req).await)
        })
    }
}

async fn say(
    client: &mut tonic::client::Grpc<<GrpcLayer as tower::Layer<Channel>>::Service>,
    text: &str,
) -> Result<tonic::Response<EchoReply>, Status> {
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
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let script = vec![
        Some(with_pushback("slow down", "300")),
        None,
        Some(with_pushback("quota exceeded for today", "-1")),
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin: http::Uri = format!("http://{}", listener.local_addr()?).parse()?;
    let server = EchoServer(Arc::new(Mutex::new(script.into())));
    tokio::spawn(Server::builder().serve_with_incoming(server, TcpIncoming::from(listener)));

    let channel = Channel::builder(origin.clone()).connect().await?;
    let stack = ServiceBuilder::new()
        .layer(GrpcLayer::new())
        .service(channel);
    // The origin in each request's URI makes the channel's bucket.
    let mut client = tonic::client::Grpc::with_origin(stack, origin);

    let started = Instant::now();
    let reply = say(&mut client, "hello").await?;
    let attempts = reply.extensions().get::<Attempts>().map_or(1, |a| a.count);
    println!(
        "reply {:?} after {attempts} attempts, {:.1} s (the server's pushback was 300 ms)",
        reply.get_ref().text,
        started.elapsed().as_secs_f64()
    );

    let gone = say(&mut client, "again")
        .await
        .expect_err("the quota is gone");
    println!("server: {:?} {:?}", gone.code(), gone.message());
    let refused = say(&mut client, "and again")
        .await
        .expect_err("refused locally");
    println!("abide:  {:?} {:?}", refused.code(), refused.message());
    if refused.code() != tonic::Code::ResourceExhausted {
        return Err(format!("unexpected status {refused:?}").into());
    }
    Ok(())
}
