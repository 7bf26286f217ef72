//! `BackoffRetry` in front of a hyper-util client talking to a real hyper server on
//! loopback, in virtual time.

use abide_retry::{Attempts, BackoffRetryLayer, BoxError, ReplayBody, Stop};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

/// One scripted answer.
#[derive(Clone, Default)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: &'static str,
    /// Answer after reading only this many body frames (None: read it all).
    read_frames: Option<usize>,
    /// Send `Date: now - 1h` and `Retry-After: <that date + n s>` as HTTP-dates.
    retry_at_date_plus: Option<u64>,
}

fn reply(status: u16) -> Reply {
    Reply {
        status,
        ..Reply::default()
    }
}

impl Reply {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What the server saw of one request.
#[derive(Debug)]
struct Seen {
    at: Instant,
    method: http::Method,
    body: Vec<u8>,
}

#[derive(Default)]
struct Server {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    answered: Notify,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> (Arc<Server>, SocketAddr) {
        let server = Arc::new(Server {
            replies: Mutex::new(replies.into()),
            ..Server::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                let service = hyper::service::service_fn(move |req| s.clone().handle(req));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (server, addr)
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let at = Instant::now();
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| reply(200));
        let method = req.method().clone();
        let mut body = req.into_body();
        let mut bytes = Vec::new();
        let mut frames = 0;
        while reply.read_frames.is_none_or(|n| frames < n) {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                    frames += 1;
                }
                _ => break,
            }
        }
        self.seen.lock().unwrap().push(Seen {
            at,
            method,
            body: bytes,
        });
        let mut res = Response::builder().status(reply.status);
        for (name, value) in &reply.headers {
            res = res.header(*name, value);
        }
        if let Some(n) = reply.retry_at_date_plus {
            // A server clock an hour behind ours: only measuring from its Date is right.
            let date = SystemTime::now() - Duration::from_secs(3600);
            res = res.header("date", httpdate::fmt_http_date(date)).header(
                "retry-after",
                httpdate::fmt_http_date(date + Duration::from_secs(n)),
            );
        }
        self.answered.notify_one();
        Ok(res
            .body(Full::new(Bytes::from_static(reply.body.as_bytes())))
            .unwrap())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.seen.lock().unwrap()
    }
}

fn client<B>() -> Client<hyper_util::client::legacy::connect::HttpConnector, ReplayBody<B>>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

fn layer() -> BackoffRetryLayer {
    BackoffRetryLayer::new().with_seed(3)
}

async fn send(
    layer: &BackoffRetryLayer,
    addr: SocketAddr,
    method: &str,
) -> Result<Response<Incoming>, BoxError> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}/v1/chat"))
        .body(Full::new(Bytes::from_static(b"{\"prompt\":\"hi\"}")))
        .unwrap();
    layer.layer(client()).oneshot(req).await
}

static ERROR_BODY: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

fn gap(seen: &[Seen]) -> Duration {
    seen[1].at - seen[0].at
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_seconds_is_waited_out() {
    let (server, addr) =
        Server::start(vec![reply(429).header("retry-after", "2"), reply(200)]).await;
    let res = send(&layer(), addr, "POST").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.extensions().get::<Attempts>().unwrap().count, 2);
    let seen = server.seen();
    assert!(gap(&seen) >= Duration::from_secs(2), "{:?}", gap(&seen));
    assert_eq!(seen[1].body, b"{\"prompt\":\"hi\"}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_is_measured_from_the_servers_date() {
    let mut first = reply(429);
    first.retry_at_date_plus = Some(3);
    let (server, addr) = Server::start(vec![first, reply(200)]).await;
    let res = send(&layer(), addr, "GET").await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = server.seen();
    assert!(gap(&seen) >= Duration::from_secs(3), "{:?}", gap(&seen));
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_from_a_real_server_is_honoured() {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        let (server, addr) = Server::start(vec![reply(429).header(name, "2500"), reply(200)]).await;
        let res = send(&layer(), addr, "GET").await.unwrap();
        assert_eq!(res.status(), 200);
        let seen = server.seen();
        assert!(
            gap(&seen) >= Duration::from_millis(2500),
            "{name}: {:?}",
            gap(&seen)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_after_a_502_is_not_retried_but_after_a_429_it_is() {
    let (server, addr) = Server::start(vec![reply(502), reply(200)]).await;
    let res = send(&layer(), addr, "POST").await.unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(
        res.extensions().get::<Attempts>().unwrap().stop,
        Stop::NotIdempotent
    );
    assert_eq!(server.seen().len(), 1);

    let (server, addr) = Server::start(vec![reply(429), reply(200)]).await;
    let res = send(&layer(), addr, "POST").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.seen().len(), 2);
    assert!(server.seen().iter().all(|s| s.method == "POST"));
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempts_body_is_drained_so_the_connection_is_reused() {
    let mut error = reply(503);
    // Larger than what hyper reads along with the head, so it must be read to reuse.
    error.body = ERROR_BODY.get_or_init(|| "x".repeat(32 * 1024).leak());
    let (server, addr) = Server::start(vec![error.clone(), error, reply(200)]).await;
    let res = send(&layer(), addr, "GET").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(server.seen().len(), 3);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "one connection for all"
    );
}

#[tokio::test(start_paused = true)]
async fn a_streaming_upload_is_replayed_byte_exact_after_an_early_answer() {
    let mut early = reply(503);
    early.read_frames = Some(3);
    let (server, addr) = Server::start(vec![early, reply(200)]).await;
    let (mut tx, body) = Channel::<Bytes, BoxError>::new(2);
    let chunk = |i: u8| Bytes::from(vec![b'a' + i; 1000]);
    let expected: Vec<u8> = (0..10u8).flat_map(|i| vec![b'a' + i; 1000]).collect();
    let s = server.clone();
    let writer = tokio::spawn(async move {
        for i in 0..3 {
            tx.send_data(chunk(i)).await.unwrap();
        }
        // The rest is produced only after the server has answered the first attempt.
        s.answered.notified().await;
        for i in 3..10 {
            tx.send_data(chunk(i)).await.unwrap();
        }
    });
    let req = Request::put(format!("http://{addr}/upload"))
        .body(body)
        .unwrap();
    let res = layer().layer(client()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    writer.await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(&seen[0].body[..], &expected[..3000]);
    assert_eq!(seen[1].body.len(), expected.len());
    assert!(seen[1].body == expected, "no byte duplicated or dropped");
}
