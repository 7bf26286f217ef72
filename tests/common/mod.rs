//! A scripted API for the facade's tests: answers from a queue, a log of what arrived.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub type Body = Full<Bytes>;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// The connection fails with this error kind.
    Fail(io::ErrorKind),
    /// Answers 200 after this long.
    Slow(Duration),
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Answer {
            status,
            headers: Vec::new(),
            body: "{}".into(),
        }
    }

    pub fn ok() -> Self {
        Reply::status(200)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name, value.into()));
        }
        self
    }

    pub fn body(mut self, text: &str) -> Self {
        if let Reply::Answer { body, .. } = &mut self {
            *body = text.to_owned();
        }
        self
    }
}

/// What arrived: when, the URI, and the body.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub uri: String,
    pub body: Bytes,
}

/// The API: answers in order, then 200s.
#[derive(Clone, Default)]
pub struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Script {
    pub fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Script {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            seen: Arc::default(),
        }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// URIs that arrived, in order.
    pub fn uris(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.uri.clone())
            .collect()
    }

    /// The inner service: takes any body, answers `Full<Bytes>`.
    pub fn service<B>(
        &self,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<Body>,
        Error = io::Error,
        Future = BoxFuture<Result<Response<Body>, io::Error>>,
    > + Clone
           + Send
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
    {
        let script = self.clone();
        tower::service_fn(move |req: Request<B>| {
            let script = script.clone();
            Box::pin(async move {
                let uri = req.uri().to_string();
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => Bytes::new(),
                };
                script.seen.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    uri,
                    body,
                });
                let reply = script
                    .replies
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(Reply::ok);
                match reply {
                    Reply::Answer {
                        status,
                        headers,
                        body,
                    } => {
                        let mut res = Response::builder().status(status);
                        for (name, value) in headers {
                            res = res.header(name, value);
                        }
                        Ok(res.body(Full::new(Bytes::from(body))).unwrap())
                    }
                    Reply::Fail(kind) => Err(io::Error::new(kind, "scripted failure")),
                    Reply::Slow(wait) => {
                        tokio::time::sleep(wait).await;
                        Ok(Response::new(Full::new(Bytes::from_static(b"{}"))))
                    }
                }
            }) as BoxFuture<Result<Response<Body>, io::Error>>
        })
    }
}

/// A chat completion POST for `model`, with the facade's `Model` extension.
pub fn chat(host: &str, model: &str) -> Request<Body> {
    let mut req = Request::post(format!("https://{host}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(r#"{{"model":"{model}"}}"#))))
        .unwrap();
    req.extensions_mut().insert(abide::Model::new(model));
    req
}

/// OpenAI's answer when the account is out of credits.
pub fn insufficient_quota() -> Reply {
    Reply::status(429)
        .header("content-type", "application/json")
        .body(r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"insufficient_quota"}}"#)
}

/// Where a test's `tracing` subscriber writes: a shared buffer the test reads back.
#[derive(Clone, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
