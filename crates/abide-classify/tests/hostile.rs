//! Hostile responses: whatever a server sends (bodies, headers, gRPC metadata, frame
//! floods), classifying it never panics, never hangs, and every wait stays capped.

use abide_classify::{classify, classify_grpc, Class, QuotaClassifierLayer};
use abide_headers::{RateLimitHeaders, RateLimitSnapshot};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{service_fn, Layer, ServiceExt};

/// No wait the classifier reports is longer than this (30 days).
const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

fn text_429(body: &str) -> abide_classify::Classification {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    classify(
        StatusCode::TOO_MANY_REQUESTS,
        &headers,
        Some(body.as_bytes()),
        &RateLimitSnapshot::new(),
    )
}

#[test]
fn a_stated_wait_too_large_for_a_float_is_capped_like_any_absurd_wait() {
    let huge = text_429("Please try again in 99999999999999999999s.");
    assert_eq!(huge.retry_after, Some(MAX_WAIT));
    let overflowing = text_429(&format!("Please try again in {}s.", "9".repeat(400)));
    assert_eq!(overflowing.retry_after, Some(MAX_WAIT));
    assert_eq!(overflowing.class, huge.class);
    let overflowing_hours = text_429(&format!("retry after {} hours", "9".repeat(306)));
    assert_eq!(overflowing_hours.retry_after, Some(MAX_WAIT));
}

#[test]
fn json_nested_past_the_parser_depth_limit_is_read_as_text() {
    for depth in [127, 129, 100_000] {
        let mut body = "{\"details\":".repeat(depth);
        body.push_str("{\"message\":\"rate limit, retry in 2s\"}");
        body.push_str(&"}".repeat(depth));
        let c = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            Some(body.as_bytes()),
            &RateLimitSnapshot::new(),
        );
        assert_eq!(c.class, Class::RateLimited, "depth {depth}");
        let arrays = "[".repeat(depth);
        let c = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            Some(arrays.as_bytes()),
            &RateLimitSnapshot::new(),
        );
        assert_eq!(c.class, Class::ServerError, "depth {depth}");
    }
}

/// A body that is always ready with another empty data frame, and fails the test if it is
/// polled without end.
struct EmptyFrames {
    polls: usize,
}

const POLL_BUDGET: usize = 1_000_000;

impl Body for EmptyFrames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls += 1;
        assert!(
            self.polls < POLL_BUDGET,
            "the peek polled the body without end"
        );
        Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::new()
    }
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_empty_frames_cannot_hang_the_peek() {
    for grpc in [false, true] {
        let api = service_fn(move |_req: Request<()>| async move {
            let builder = if grpc {
                Response::builder().header("content-type", "application/grpc")
            } else {
                Response::builder()
                    .status(429)
                    .header("content-type", "application/json")
            };
            Ok::<_, Infallible>(builder.body(EmptyFrames { polls: 0 }).unwrap())
        });
        let layer = QuotaClassifierLayer::new().with_grpc_trailer_peek(true);
        let res = layer.layer(api).oneshot(Request::new(())).await.unwrap();
        let verdict = res
            .extensions()
            .get::<abide_classify::Classification>()
            .unwrap();
        if !grpc {
            assert_eq!(verdict.class, Class::RateLimited);
        }
    }
}

#[test]
fn a_grpc_pushback_too_large_to_hold_is_a_capped_wait_not_a_refusal() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("8"));
    trailers.insert(
        "grpc-retry-pushback-ms",
        HeaderValue::from_static("99999999999999999999999"),
    );
    let c = classify_grpc(&trailers);
    assert_eq!(
        (c.class, c.retry_after),
        (Class::RateLimited, Some(MAX_WAIT))
    );
    trailers.insert(
        "grpc-retry-pushback-ms",
        HeaderValue::from_static("-99999999999999999999999"),
    );
    assert_eq!(classify_grpc(&trailers).class, Class::QuotaExhausted);
}

#[test]
fn grpc_details_that_are_not_base64_or_not_protobuf_are_ignored() {
    for details in [
        &b"%%%"[..],
        b"AAAA",
        b"////////",
        b"CAgSBGJvb20aDAoKdHlwZS5nb29nbGU=",
        b"\xff\xfe",
    ] {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("8"));
        if let Ok(v) = HeaderValue::from_bytes(details) {
            trailers.insert("grpc-status-details-bin", v);
        }
        assert_eq!(classify_grpc(&trailers).class, Class::RateLimited);
    }
}

#[test]
fn an_absurd_grpc_retry_delay_is_capped() {
    // google.rpc.Status{code: 8, details: [Any{RetryInfo{retry_delay: {seconds: i64::MAX}}}]}.
    let status = status_with_retry_delay(i64::MAX, 0);
    let encoded = base64(&status);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("8"));
    trailers.insert(
        "grpc-status-details-bin",
        HeaderValue::from_str(&encoded).unwrap(),
    );
    let c = classify_grpc(&trailers);
    assert_eq!(c.retry_after, Some(MAX_WAIT));
    let details = abide_classify::grpc::decode_status_details(encoded.as_bytes()).unwrap();
    assert!(details.retry_delay.is_some_and(|d| d <= MAX_WAIT));
}

/// `google.rpc.Status{code: 8, details: [RetryInfo{retry_delay: {seconds, nanos}}]}` encoded.
fn status_with_retry_delay(seconds: i64, nanos: i32) -> Vec<u8> {
    let mut duration = vec![0x08];
    duration.extend(varint(seconds as u64));
    duration.push(0x10);
    duration.extend(varint(i64::from(nanos) as u64));
    let mut retry_info = vec![0x0a, duration.len() as u8];
    retry_info.extend(duration);
    let type_url = b"type.googleapis.com/google.rpc.RetryInfo";
    let mut any = vec![0x0a, type_url.len() as u8];
    any.extend_from_slice(type_url);
    any.push(0x12);
    any.push(retry_info.len() as u8);
    any.extend(retry_info);
    let mut status = vec![0x08, 0x08, 0x1a, any.len() as u8];
    status.extend(any);
    status
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn headers_extracted_at_any_instant_classify_without_panic() {
    let mut headers = HeaderMap::new();
    headers.insert("x-ratelimit-limit", HeaderValue::from_static("10"));
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    headers.insert(
        "x-ratelimit-reset",
        HeaderValue::from_static("18000000000000000000"),
    );
    headers.insert(
        "retry-after",
        HeaderValue::from_static("99999999999999999999"),
    );
    let snapshot = RateLimitHeaders::new().extract(&headers);
    let c = classify(StatusCode::TOO_MANY_REQUESTS, &headers, None, &snapshot);
    assert!(!c.retryable);
    assert!(c.retry_after.is_some());
}

mod never_panic {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn status() -> impl Strategy<Value = StatusCode> {
        prop_oneof![
            select(vec![200u16, 400, 402, 403, 408, 429, 500, 503, 529]),
            100u16..=999,
        ]
        .prop_map(|s| StatusCode::from_u16(s).unwrap())
    }

    fn content_type() -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(select(vec![
            "application/json",
            "application/problem+json",
            "application/graphql-response+json",
            "application/xml",
            "text/plain",
            "text/html",
            "application/grpc",
            "application/grpc+proto",
            "application/octet-stream",
        ]))
    }

    /// Bodies: raw bytes, prose with absurd numbers, and JSON-ish error shapes.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "(try again in|retry after|Please wait|resets in|retry-after:) ?(about |~)?[0-9]{0,400}(\\.[0-9]{0,40})? ?(s|ms|us|µs|ns|m|h|d|seconds|minutes|hours|days)?([0-9]{1,30}(s|m|h))?[ .]?"
                .prop_map(String::into_bytes),
            "\\{\"error\":\\{\"(code|type|status|message|details|reason)\":(\"[a-zA-Z_ 0-9.]{0,40}\"|[0-9]{0,30}|\\[\\{\"@type\":\"type.googleapis.com/google.rpc.(RetryInfo|QuotaFailure|ErrorInfo)\",\"(retryDelay|violations|metadata|reason)\":(\"[0-9]{0,400}(\\.[0-9]{0,12})?s\"|\\[\\{\"quotaId\":\"[a-zA-Z]{0,20}\"\\}\\]|\\{\"k\":\"[a-z ]{0,20}\"\\})\\}\\]|null)(,\"message\":\"[ -~]{0,80}\")?\\}?\\}?"
                .prop_map(String::into_bytes),
            "<Error><Code>[ -~]{0,80}(</Code>)?".prop_map(String::into_bytes),
            // Issue 13 shapes: limits and requested sizes, wait fields in any unit,
            // GraphQL cost models, instants after triggers.
            "(Limit|limit:) ~?[0-9,]{0,25}, (Used [0-9]{0,20}, )?Requested ~?[0-9,]{0,25}\\.( Please try again in [0-9]{0,6}s\\.)?"
                .prop_map(String::into_bytes),
            "\\{\"error\":\"x\",\"(retry_after|retryAfterMs|retry_at|banned_until|reset|estimated_time|rateLimitNext)\":(-?[0-9]{0,40}(\\.[0-9]{0,10})?(e[0-9]{1,3})?|\"[ -~]{0,40}\"|null|\\[\\])\\}"
                .prop_map(String::into_bytes),
            "\\{\"errors\":\\[\\{\"extensions\":\\{\"code\":\"THROTTLED\"\\}\\}\\],\"extensions\":\\{\"cost\":\\{\"requestedQueryCost\":-?[0-9]{0,30}(\\.[0-9]{0,5})?(e[0-9]{1,3})?,\"throttleStatus\":\\{\"maximumAvailable\":[0-9]{0,30},\"currentlyAvailable\":-?[0-9]{0,30},\"restoreRate\":[0-9]{0,30}(\\.[0-9]{0,5})?(e-?[0-9]{1,3})?\\}\\}\\}\\}"
                .prop_map(String::into_bytes),
            "(banned until|retry at|try after|Retry after:) [0-9T:.Z+-]{0,40}".prop_map(String::into_bytes),
        ]
    }

    fn header_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            "[ -~]{0,80}",
            "-?[0-9]{0,40}",
            proptest::collection::vec(any::<u8>(), 0..120).prop_map(|b| super::base64(&b)),
        ]
        .prop_filter_map("valid header value", |s| HeaderValue::from_str(&s).ok())
    }

    fn metadata() -> impl Strategy<Value = HeaderMap> {
        let name = select(vec![
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "grpc-retry-pushback-ms",
            "retry-after",
            "x-ratelimit-remaining",
            "x-ratelimit-resource",
            "x-should-retry",
            "stripe-should-retry",
            "x-amzn-errortype",
            "content-length",
            "content-encoding",
        ]);
        proptest::collection::vec((name, header_value()), 0..8).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (n, v) in pairs {
                map.append(n, v);
            }
            map
        })
    }

    proptest! {
        #[test]
        fn any_response_classifies_without_panic_and_with_a_capped_wait(
            status in status(),
            content_type in content_type(),
            body in proptest::option::of(body()),
            mut headers in metadata(),
        ) {
            if let Some(t) = content_type {
                headers.insert("content-type", HeaderValue::from_static(t));
            }
            let snapshot = RateLimitHeaders::new().extract(&headers);
            let c = classify(status, &headers, body.as_deref(), &snapshot);
            // The header wait is capped at about ten years, body and gRPC waits at 30 days.
            let cap = Duration::from_secs(10 * 366 * 86_400);
            prop_assert!(c.retry_after.is_none_or(|w| w <= cap), "{:?}", c);
            let g = classify_grpc(&headers);
            prop_assert!(g.retry_after.is_none_or(|w| w <= MAX_WAIT), "{:?}", g);
        }

        // Frames of any sizes (empty ones too): the caller gets the body byte for byte,
        // and the verdict is the one the whole body gets.
        #[test]
        fn any_body_split_any_way_is_judged_whole_and_replayed_byte_for_byte(
            status in select(vec![400u16, 403, 429, 500, 503, 529]),
            body in body(),
            cuts in proptest::collection::vec(0usize..600, 0..12),
        ) {
            use http_body_util::{BodyExt, StreamBody};
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.extend([0, body.len()]);
            cuts.sort_unstable();
            let frames: Vec<Result<Frame<Bytes>, Infallible>> = cuts
                .windows(2)
                .map(|w| Ok(Frame::data(Bytes::copy_from_slice(&body[w[0]..w[1]]))))
                .collect();
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(StreamBody::new(futures_util::stream::iter(frames)))
                .unwrap();
            let expected = classify(
                response.status(),
                response.headers(),
                Some(&body),
                &RateLimitSnapshot::new(),
            );
            let mut slot = Some(response);
            let api = service_fn(move |_req: Request<()>| {
                let r = slot.take().expect("one request");
                async move { Ok::<_, Infallible>(r) }
            });
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let (verdict, bytes) = rt.block_on(async move {
                let res = QuotaClassifierLayer::new()
                    .layer(api)
                    .oneshot(Request::new(()))
                    .await
                    .unwrap();
                let verdict = res.extensions().get::<abide_classify::Classification>().cloned();
                (verdict, res.into_body().collect().await.unwrap().to_bytes())
            });
            prop_assert_eq!(verdict, Some(expected));
            prop_assert_eq!(&bytes[..], &body[..]);
        }

        #[test]
        fn any_grpc_retry_delay_is_read_capped(seconds in any::<i64>(), nanos in any::<i32>()) {
            let encoded = super::base64(&status_with_retry_delay(seconds, nanos));
            let d = abide_classify::grpc::decode_status_details(encoded.as_bytes()).unwrap();
            prop_assert!(d.retry_delay.is_none_or(|w| w <= MAX_WAIT));
            prop_assert_eq!(d.retry_delay.is_some(), seconds >= 0 && nanos >= 0);
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("8"));
            trailers.insert("grpc-status-details-bin", HeaderValue::from_str(&encoded).unwrap());
            prop_assert_eq!(classify_grpc(&trailers).retry_after, d.retry_delay);
        }

        #[test]
        fn any_grpc_status_details_decode_or_fail_cleanly(
            raw in proptest::collection::vec(any::<u8>(), 0..256),
            as_base64 in any::<bool>(),
        ) {
            let value = if as_base64 { super::base64(&raw).into_bytes() } else { raw };
            if let Ok(d) = abide_classify::grpc::decode_status_details(&value) {
                prop_assert!(d.retry_delay.is_none_or(|w| w <= MAX_WAIT));
            }
            if let Ok(d) = abide_classify::grpc::decode_status_proto(&value) {
                prop_assert!(d.retry_delay.is_none_or(|w| w <= MAX_WAIT));
            }
        }
    }
}
