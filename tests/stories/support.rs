//! A scripted server behind `retry -> cap -> server`, with a log of every attempt.

use abide::cap::{ConcurrencyCapLayer, Cost};
use abide::classify::Classification;
use abide::retry::{Attempts, BackoffRetryLayer, ReplayBody};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

pub(crate) type Body = Full<Bytes>;
pub(crate) type Client = BoxCloneService<Request<Body>, Response<Body>, BoxError>;

/// What the scripted server does with one attempt.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// An answer: status, headers, and the verdict the classifier gives it.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        verdict: Option<Classification>,
        body: &'static str,
        /// Served this much later than the server's latency.
        extra: Duration,
    },
    /// The connection fails with this error kind.
    Fail(io::ErrorKind),
    /// No answer, ever.
    Hang,
}

impl Reply {
    pub(crate) fn ok() -> Self {
        Reply::status(200)
    }

    pub(crate) fn status(status: u16) -> Self {
        Reply::Answer {
            status,
            headers: Vec::new(),
            verdict: None,
            body: "{}",
            extra: Duration::ZERO,
        }
    }

    pub(crate) fn later_by(mut self, by: Duration) -> Self {
        if let Reply::Answer { extra, .. } = &mut self {
            *extra = by;
        }
        self
    }

    pub(crate) fn body(mut self, text: &'static str) -> Self {
        if let Reply::Answer { body, .. } = &mut self {
            *body = text;
        }
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name, value.into()));
        }
        self
    }

    pub(crate) fn verdict(mut self, c: Classification) -> Self {
        if let Reply::Answer { verdict, .. } = &mut self {
            *verdict = Some(c);
        }
        self
    }
}

/// One attempt as the server saw it.
#[derive(Clone, Debug)]
pub(crate) struct Arrival {
    pub(crate) at: Instant,
    pub(crate) id: String,
    /// The status answered (0: a connection failure or no answer).
    pub(crate) status: u16,
}

type Script = Box<dyn FnMut(Instant, &str, u32) -> Reply + Send>;

/// The scripted server: `script(now, request id, declared cost)` answers each attempt.
#[derive(Clone)]
pub(crate) struct Api {
    script: Arc<Mutex<Script>>,
    log: Arc<Mutex<Vec<Arrival>>>,
    latency: Duration,
}

impl Api {
    pub(crate) fn new(
        latency: Duration,
        script: impl FnMut(Instant, &str, u32) -> Reply + Send + 'static,
    ) -> Self {
        Api {
            script: Arc::new(Mutex::new(Box::new(script))),
            log: Arc::new(Mutex::new(Vec::new())),
            latency,
        }
    }

    pub(crate) fn arrivals(&self) -> Vec<Arrival> {
        self.log.lock().unwrap().clone()
    }

    async fn answer(self, req: Request<ReplayBody<Body>>) -> Result<Response<Body>, BoxError> {
        let now = Instant::now();
        let id = req
            .headers()
            .get("x-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let cost = req.extensions().get::<Cost>().map_or(1, |c| c.0);
        let reply = (self.script.lock().unwrap())(now, &id, cost);
        let status = match &reply {
            Reply::Answer { status, .. } => *status,
            _ => 0,
        };
        self.log.lock().unwrap().push(Arrival {
            at: now,
            id,
            status,
        });
        let extra = match &reply {
            Reply::Answer { extra, .. } => *extra,
            _ => Duration::ZERO,
        };
        tokio::time::sleep(self.latency + extra).await;
        match reply {
            Reply::Answer {
                status,
                headers,
                verdict,
                body,
                ..
            } => {
                let mut res = Response::builder().status(status);
                for (name, value) in headers {
                    res = res.header(name, value);
                }
                let mut res = res
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap();
                if let Some(v) = verdict {
                    res.extensions_mut().insert(v);
                }
                Ok(res)
            }
            Reply::Fail(kind) => Err(Box::new(io::Error::new(kind, "scripted failure"))),
            Reply::Hang => std::future::pending().await,
        }
    }
}

/// `retry -> cap -> api`; the api attaches its own verdicts (no classifier).
pub(crate) fn client(api: &Api, retry: BackoffRetryLayer, cap: ConcurrencyCapLayer) -> Client {
    let api = api.clone();
    let inner = tower::service_fn(move |req| api.clone().answer(req));
    let svc = ServiceBuilder::new()
        .layer(retry)
        .layer(cap)
        .service(inner)
        .map_response(|res: Response<_>| {
            let (parts, body) = res.into_parts();
            drop(body);
            Response::from_parts(parts, Full::new(Bytes::new()))
        });
    BoxCloneService::new(svc)
}

pub(crate) fn request(id: impl ToString, cost: Option<u32>) -> Request<Body> {
    let mut req = Request::post("https://api.example.com/v1/chat")
        .header("x-id", id.to_string())
        .body(Full::new(Bytes::from_static(b"{\"prompt\":\"hi\"}")))
        .unwrap();
    if let Some(c) = cost {
        req.extensions_mut().insert(Cost(c));
    }
    req
}

/// The result of one call: when it ended and how.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) at: Instant,
    pub(crate) result: Result<(u16, u32), BoxError>,
}

impl Done {
    pub(crate) fn ok(&self) -> bool {
        matches!(self.result, Ok((200, _)))
    }
}

/// Sends `req` and records when and how it ended (status and attempts, or the error).
pub(crate) async fn call(client: Client, req: Request<Body>) -> Done {
    let result = client.oneshot(req).await.map(|res| {
        let attempts = res.extensions().get::<Attempts>().map_or(0, |a| a.count);
        (res.status().as_u16(), attempts)
    });
    Done {
        at: Instant::now(),
        result,
    }
}

/// Sends every request at once (one task each) and waits for all of them.
pub(crate) async fn call_all(client: &Client, reqs: Vec<Request<Body>>) -> Vec<Done> {
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|r| tokio::spawn(call(client.clone(), r)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// `callers` callers, each sending `each` requests one after another (`make(caller, i)`),
/// all at once; checks that every request succeeded and returns when the last one ended.
pub(crate) async fn in_turn(
    client: &Client,
    callers: usize,
    each: usize,
    make: fn(usize, usize) -> Request<Body>,
) -> Instant {
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                for i in 0..each {
                    done.push(call(c.clone(), make(caller, i)).await);
                }
                done
            })
        })
        .collect();
    let mut last = Instant::now();
    for task in tasks {
        for d in task.await.unwrap() {
            assert!(d.ok(), "every request is delivered: {d:?}");
            last = last.max(d.at);
        }
    }
    last
}

/// Sends every request at once, checks that every one succeeded, and says how long the
/// last one took to end.
pub(crate) async fn all_succeed(client: &Client, reqs: Vec<Request<Body>>) -> Duration {
    let start = Instant::now();
    let all = call_all(client, reqs).await;
    let failed: Vec<_> = all.iter().filter(|d| !d.ok()).collect();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    all.iter().map(|d| d.at - start).max().unwrap_or_default()
}

pub(crate) const MS: Duration = Duration::from_millis(1);
pub(crate) const S: Duration = Duration::from_secs(1);

/// A GET: idempotent, so retried after ambiguous failures too.
pub(crate) fn get(id: impl ToString) -> Request<Body> {
    Request::get("https://api.example.com/v1/models")
        .header("x-id", id.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// `layer -> api`, the whole stack (its classifier gives the verdicts).
pub(crate) fn abide_client(api: &Api, layer: abide::AbideLayer) -> Client {
    let api = api.clone();
    let inner = tower::service_fn(move |req| api.clone().answer(req));
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(inner)
        .map_response(|res: Response<_>| {
            let (parts, body) = res.into_parts();
            drop(body);
            Response::from_parts(parts, Full::new(Bytes::new()))
        });
    BoxCloneService::new(svc)
}
