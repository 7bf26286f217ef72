//! The simulated API over real HTTP: a server for HTTP/1.1 and HTTP/2 on a TCP listener
//! (`abide serve`, `abide demo`), and the client connection the workload driver uses to
//! reach it.
//!
//! Answers are the same bytes [`SimServer`] produces in process, plus one header a real
//! API does not send, [`OUTCOME_HEADER`] (`x-sim-outcome`), so that a harness on the other
//! side of the wire can count what the server decided without parsing vendor bodies. A
//! refused connection (an outage with status 0) closes the connection without an answer.

use crate::model::{Outcome, Scope};
use crate::service::{ConnectionRefused, SimServer};
use crate::strategy::SimBody;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderName, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tower::{BoxError, Service};

/// The header naming the server's [`Outcome`] on every answer served over HTTP.
pub const OUTCOME_HEADER: HeaderName = HeaderName::from_static("x-sim-outcome");

/// The [`OUTCOME_HEADER`] value of an outcome.
pub fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Served => "served",
        Outcome::RateLimited(Scope::Requests) => "rate-limited-requests",
        Outcome::RateLimited(Scope::Tokens) => "rate-limited-tokens",
        Outcome::RateLimited(Scope::RequestsPerDay) => "rate-limited-requests-per-day",
        Outcome::RateLimited(Scope::TokensPerDay) => "rate-limited-tokens-per-day",
        Outcome::Overloaded => "overloaded",
        Outcome::QuotaExhausted => "quota-exhausted",
        Outcome::TooLarge => "too-large",
        Outcome::Outage(_) => "outage",
        Outcome::Refused => "refused",
        Outcome::Repeated => "repeated",
    }
}

/// The outcome an [`OUTCOME_HEADER`] value names (`outage` takes the answer's status).
pub fn parse_outcome(value: &str, status: StatusCode) -> Option<Outcome> {
    Some(match value {
        "served" => Outcome::Served,
        "rate-limited-requests" => Outcome::RateLimited(Scope::Requests),
        "rate-limited-tokens" => Outcome::RateLimited(Scope::Tokens),
        "rate-limited-requests-per-day" => Outcome::RateLimited(Scope::RequestsPerDay),
        "rate-limited-tokens-per-day" => Outcome::RateLimited(Scope::TokensPerDay),
        "overloaded" => Outcome::Overloaded,
        "quota-exhausted" => Outcome::QuotaExhausted,
        "too-large" => Outcome::TooLarge,
        "outage" => Outcome::Outage(status),
        "refused" => Outcome::Refused,
        "repeated" => Outcome::Repeated,
        _ => return None,
    })
}

/// Serves `server` on `listener` (HTTP/1.1 and HTTP/2, prior knowledge or upgrade-free
/// detection) until `shutdown` completes; connections in progress then end with the task.
///
/// # Errors
/// None today: accept errors (a file-descriptor limit, say) are logged and retried.
pub async fn serve<F>(listener: TcpListener, server: SimServer, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()>,
{
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "abide serve: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let sim = server.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut sim = sim.clone();
            async move {
                match sim.call(req).await {
                    Ok(mut res) => {
                        if let Some(o) = res.extensions().get::<Outcome>().copied() {
                            res.headers_mut()
                                .insert(OUTCOME_HEADER, HeaderValue::from_static(outcome_name(o)));
                        }
                        Ok(res)
                    }
                    // A refused connection: no answer; hyper closes the connection.
                    Err(e) => Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        e.to_string(),
                    )),
                }
            }
        });
        connections.spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
    Ok(())
}

/// A client connection to a simulated API served over HTTP, as the workload driver's
/// inner service: takes requests with any body (buffered, they are small), sends them to
/// `base` (scheme and authority; the request's path is kept), and returns the answer with
/// its body read and its [`Outcome`] (from [`OUTCOME_HEADER`]) in the extensions. A
/// transport failure (the server closed the connection unanswered) is a
/// [`ConnectionRefused`] error, as the in-process server returns it.
#[derive(Clone, Debug)]
pub struct HttpConnection {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Uri,
}

impl HttpConnection {
    /// A connection pool to the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        HttpConnection {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base,
        }
    }
}

impl<B> Service<Request<B>> for HttpConnection
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<SimBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let client = self.client.clone();
        let base = self.base.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let mut uri = http::uri::Parts::from(base);
            uri.path_and_query = parts.uri.path_and_query().cloned();
            parts.uri = Uri::from_parts(uri)?;
            let req = Request::from_parts(parts, Full::new(body));
            let res = match client.request(req).await {
                Ok(res) => res,
                Err(e) => {
                    tracing::debug!(error = %e, "simulated API: connection failed");
                    return Err(ConnectionRefused::new().into());
                }
            };
            let (mut parts, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            let outcome = parts
                .headers
                .get(&OUTCOME_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_outcome(v, parts.status));
            if let Some(o) = outcome {
                parts.extensions.insert(o);
            }
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}
