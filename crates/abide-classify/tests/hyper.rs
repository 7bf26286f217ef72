//! End to end over loopback: a real hyper 1 server on 127.0.0.1 (port 0) sends vendor
//! responses, a hyper-util legacy client behind `QuotaClassifierLayer` receives them.

use abide_classify::{
    classify_error, Class, Classification, Processing, QuotaClassifierLayer, QuotaScope,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tower::{Layer, ServiceExt};

const QUOTA: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
const TPM: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-AbC123 on tokens per min (TPM): Limit 30000, Used 29250, Requested 1500. Please try again in 3.89s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
const OVERLOADED: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;

/// The body the server sends for `path`.
fn body_for(path: &str) -> Bytes {
    match path {
        "/quota" => Bytes::from_static(QUOTA.as_bytes()),
        "/tpm" => Bytes::from_static(TPM.as_bytes()),
        "/overloaded" => Bytes::from_static(OVERLOADED.as_bytes()),
        // 200 KiB of non-UTF-8 bytes after an error prefix: judged by the prefix,
        // delivered whole.
        "/huge" => {
            let mut v =
                br#"{"error":{"type":"rate_limit_error","message":"slow down"},"x":""#.to_vec();
            v.extend((0..200 * 1024).map(|i| (i % 251) as u8 | 0x80));
            Bytes::from(v)
        }
        _ => Bytes::from_static(b"{\"id\":\"chatcmpl-1\"}"),
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let (status, extra): (u16, Option<(&str, &str)>) = match path {
        "/quota" | "/huge" => (429, None),
        "/tpm" => (429, Some(("x-ratelimit-remaining-tokens", "0"))),
        "/overloaded" => (529, Some(("retry-after", "2"))),
        _ => (200, Some(("x-ratelimit-remaining-requests", "499"))),
    };
    let mut res = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some((k, v)) = extra {
        res = res.header(k, v);
    }
    Ok(res.body(Full::new(body_for(path))).unwrap())
}

async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Serves until the test's runtime shuts down.
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer)),
            );
        }
    });
    addr
}

#[tokio::test]
async fn vendor_responses_over_loopback_are_classified_and_delivered_whole() {
    let addr = server().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = QuotaClassifierLayer::new().layer(client);

    let get = |path: &str| {
        Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let expect = [
        ("/", Class::Success, QuotaScope::Unspecified, None),
        ("/quota", Class::QuotaExhausted, QuotaScope::Billing, None),
        (
            "/tpm",
            Class::RateLimited,
            QuotaScope::Tokens,
            Some(Duration::from_millis(3890)),
        ),
        (
            "/overloaded",
            Class::Overloaded,
            QuotaScope::Unspecified,
            Some(Duration::from_secs(2)),
        ),
        ("/huge", Class::RateLimited, QuotaScope::Unspecified, None),
    ];
    for (path, class, scope, wait) in expect {
        let res = svc.clone().oneshot(get(path)).await.unwrap();
        let v = res.extensions().get::<Classification>().unwrap().clone();
        assert_eq!(
            (v.class, &v.scope, v.retry_after),
            (class, &scope, wait),
            "{path}"
        );
        assert!(res
            .extensions()
            .get::<abide_headers::RateLimitSnapshot>()
            .is_some());
        let got = res.into_body().collect().await.unwrap().to_bytes();
        let want = body_for(path);
        assert_eq!(got, want, "{path}: body delivered byte for byte");
    }
}

#[tokio::test]
async fn a_refused_connection_is_classified_as_not_processed() {
    // Bind then drop a listener: nothing listens on that port any more.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = QuotaClassifierLayer::new().layer(client);
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert!(err.is_connect(), "the client's own error passes through");
    let c = classify_error(&err);
    assert_eq!(
        (c.class, c.retryable, c.processing),
        (Class::ServerError, true, Processing::NotProcessed)
    );
}
