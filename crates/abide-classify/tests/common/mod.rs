//! The table harness shared by the vendor tests: every row goes through the public
//! `classify` function (headers parsed by `abide-headers`, as `abide inspect` does) and
//! through `QuotaClassifierLayer` over a tower-test mock and over loopback (a hyper 1
//! server on 127.0.0.1, the hyper-util legacy client), which must agree and deliver the
//! body byte for byte.
#![allow(dead_code, unreachable_pub)]

use abide_classify::{classify, Class, Classification, QuotaClassifierLayer};
use abide_headers::RateLimitHeaders;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

/// The instant responses are read at (GitHub epoch resets are relative to it).
pub const NOW: u64 = 1_700_000_000;

pub struct Case {
    /// The rule and where it comes from.
    pub rule: &'static str,
    pub status: u16,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: Option<&'static str>,
    pub class: Class,
    pub retryable: bool,
    /// The scope kind, then `/bucket` when the server names one (`requests/core`).
    pub scope: &'static str,
    pub wait_ms: Option<u64>,
}

pub fn run(case: &Case) -> Classification {
    let mut headers = HeaderMap::new();
    for (k, v) in case.headers {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let snapshot = RateLimitHeaders::new().with_now(now).extract(&headers);
    classify(
        StatusCode::from_u16(case.status).unwrap(),
        &headers,
        case.body.map(str::as_bytes),
        &snapshot,
    )
}

/// The same case through the layer over a tower-test mock: the verdict it attaches and
/// the body the caller reads.
async fn through_layer(case: &Case) -> (Classification, Bytes) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let layer = QuotaClassifierLayer::new()
        .with_graphql(true)
        .with_headers(RateLimitHeaders::new().with_now(now));
    let (mock, mut handle) = mock::pair::<Request<()>, Response<Full<Bytes>>>();
    let mut svc = layer.layer(mock);
    let mut response = Response::new(Full::new(Bytes::from_static(
        case.body.unwrap_or("").as_bytes(),
    )));
    *response.status_mut() = StatusCode::from_u16(case.status).unwrap();
    for (k, v) in case.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let served = tokio::spawn(async move {
        let (_req, send) = handle.next_request().await.unwrap();
        send.send_response(response);
    });
    let request = Request::builder()
        .uri("https://api.example.com/graphql")
        .body(())
        .unwrap();
    let res = svc.ready().await.unwrap().call(request).await.unwrap();
    served.await.unwrap();
    let verdict = res.extensions().get::<Classification>().unwrap().clone();
    (verdict, res.into_body().collect().await.unwrap().to_bytes())
}

/// A case as the loopback server sends it.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// The cases over loopback: a hyper server answers `/N/graphql` with case N; a hyper-util
/// client behind the layer asks for each.
async fn through_hyper(cases: &[Case]) -> Vec<(Classification, Bytes)> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let canned: std::sync::Arc<Vec<Canned>> = std::sync::Arc::new(
        cases
            .iter()
            .map(|c| Canned {
                status: c.status,
                headers: c
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: Bytes::from_static(c.body.unwrap_or("").as_bytes()),
            })
            .collect(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let canned = canned.clone();
            let answer = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let n: usize = req.uri().path().split('/').nth(1).unwrap().parse().unwrap();
                let c = canned[n].clone();
                let mut res = Response::new(Full::new(c.body));
                *res.status_mut() = StatusCode::from_u16(c.status).unwrap();
                for (k, v) in c.headers {
                    res.headers_mut().append(
                        HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        HeaderValue::from_str(&v).unwrap(),
                    );
                }
                std::future::ready(Ok::<_, std::convert::Infallible>(res))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer),
            );
        }
    });
    let now = UNIX_EPOCH + Duration::from_secs(NOW);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let svc = QuotaClassifierLayer::new()
        .with_graphql(true)
        .with_headers(RateLimitHeaders::new().with_now(now))
        .layer(client);
    let mut out = Vec::new();
    for n in 0..cases.len() {
        let req = Request::get(format!("http://{addr}/{n}/graphql"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        let verdict = res.extensions().get::<Classification>().unwrap().clone();
        out.push((verdict, res.into_body().collect().await.unwrap().to_bytes()));
    }
    out
}

/// The kind and the bucket as the tables write them: `requests/core`, `tokens`.
pub fn scope_of(c: &Classification) -> String {
    match &c.bucket {
        Some(b) => format!("{}/{}", c.scope, b),
        None => c.scope.as_str().to_owned(),
    }
}

pub fn check(cases: &[Case]) {
    let _ = SystemTime::now;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failures = Vec::new();
    let over_hyper = rt.block_on(through_hyper(cases));
    for (case, (wire, wire_body)) in cases.iter().zip(over_hyper) {
        let got = run(case);
        let (layered, body) = rt.block_on(through_layer(case));
        if wire != got {
            failures.push(format!(
                "{}: over hyper {wire:?}, classify says {got:?}",
                case.rule
            ));
        }
        if wire_body != case.body.unwrap_or("").as_bytes() {
            failures.push(format!("{}: body changed over hyper", case.rule));
        }
        if layered != got {
            failures.push(format!(
                "{}: layer says {layered:?}, classify says {got:?}",
                case.rule
            ));
        }
        if body != case.body.unwrap_or("").as_bytes() {
            failures.push(format!("{}: body changed on the way", case.rule));
        }
        let wait = got.retry_after.map(|d| d.as_millis() as u64);
        if got.class != case.class
            || got.retryable != case.retryable
            || scope_of(&got) != case.scope
            || wait != case.wait_ms
        {
            failures.push(format!(
                "{}: want {:?} retryable={} scope={} wait={:?}; got {:?} retryable={} scope={} wait={:?} ({})",
                case.rule,
                case.class,
                case.retryable,
                case.scope,
                case.wait_ms,
                got.class,
                got.retryable,
                scope_of(&got),
                wait,
                got.reason
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

pub const JSON: (&str, &str) = ("content-type", "application/json");
