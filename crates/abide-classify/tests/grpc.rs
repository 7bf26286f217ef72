//! gRPC: status codes, gRFC A6 pushback, and google.rpc details in
//! `grpc-status-details-bin` and in `tonic::Status` errors.
#![cfg(feature = "grpc")]

use abide_classify::grpc::decode_status_details;
use abide_classify::{classify_error, classify_grpc, Class, Processing, QuotaScope};
use http::HeaderMap;
use std::collections::HashMap;
use std::time::Duration;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Standard base64 without padding, as gRPC implementations may send it.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn trailers(
    code: Code,
    message: &str,
    details: Option<ErrorDetails>,
    pushback: Option<&str>,
) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", (code as i32).to_string().parse().unwrap());
    t.insert("grpc-message", message.parse().unwrap());
    if let Some(d) = details {
        let status = tonic::Status::with_error_details(code, message, d);
        t.insert(
            "grpc-status-details-bin",
            base64(status.details()).parse().unwrap(),
        );
    }
    if let Some(p) = pushback {
        t.insert("grpc-retry-pushback-ms", p.parse().unwrap());
    }
    t
}

#[test]
fn status_codes_map_to_classes() {
    let cases = [
        (Code::Ok, Class::Success, false),
        (Code::Unavailable, Class::ServerError, true),
        (Code::DeadlineExceeded, Class::ServerError, true),
        (Code::Aborted, Class::ServerError, true),
        (Code::Internal, Class::ServerError, true),
        (Code::Unknown, Class::ServerError, true),
        (Code::Unauthenticated, Class::AuthError, false),
        (Code::PermissionDenied, Class::AuthError, false),
        (Code::InvalidArgument, Class::ClientError, false),
        (Code::NotFound, Class::ClientError, false),
        (Code::FailedPrecondition, Class::ClientError, false),
        (Code::Unimplemented, Class::ClientError, false),
        (Code::ResourceExhausted, Class::RateLimited, true),
    ];
    for (code, class, retryable) in cases {
        let c = classify_grpc(&trailers(code, "", None, None));
        assert_eq!((c.class, c.retryable), (class, retryable), "{code:?}");
    }
}

#[test]
fn resource_exhausted_is_split_by_its_details() {
    // google.rpc.QuotaFailure naming a per-day quota: waiting minutes will not help.
    let daily = ErrorDetails::with_quota_failure_violation(
        "project:1234",
        "Quota exceeded for quota metric 'Requests' and limit 'Requests per day'",
    );
    let c = classify_grpc(&trailers(
        Code::ResourceExhausted,
        "quota",
        Some(daily),
        None,
    ));
    assert_eq!(
        (c.class, c.scope),
        (Class::QuotaExhausted, QuotaScope::Daily)
    );

    // A per-minute quota with RetryInfo: transient, wait as told.
    let mut minute = ErrorDetails::with_quota_failure_violation(
        "project:1234",
        "Quota exceeded for quota metric 'Generate requests' and limit 'requests per minute'",
    );
    minute.set_retry_info(Some(Duration::from_millis(2500)));
    let c = classify_grpc(&trailers(
        Code::ResourceExhausted,
        "quota",
        Some(minute),
        None,
    ));
    assert_eq!(c.class, Class::RateLimited);
    assert_eq!(c.retry_after, Some(Duration::from_millis(2500)));
    assert_eq!(c.processing, Processing::NotProcessed);

    // ErrorInfo BILLING_DISABLED.
    let billing =
        ErrorDetails::with_error_info("BILLING_DISABLED", "googleapis.com", HashMap::new());
    let c = classify_grpc(&trailers(
        Code::ResourceExhausted,
        "billing",
        Some(billing),
        None,
    ));
    assert_eq!(
        (c.class, c.scope),
        (Class::QuotaExhausted, QuotaScope::Billing)
    );

    // Oversized messages are the request's fault (tonic/grpc-go wording).
    let c = classify_grpc(&trailers(
        Code::ResourceExhausted,
        "grpc: received message larger than max (8388608 vs. 4194304)",
        None,
        None,
    ));
    assert_eq!(c.class, Class::ClientError);
}

#[test]
fn retry_pushback_follows_grfc_a6() {
    let c = classify_grpc(&trailers(Code::Unavailable, "", None, Some("750")));
    assert_eq!(c.retry_after, Some(Duration::from_millis(750)));
    // Negative: do not retry. On RESOURCE_EXHAUSTED that is quota exhaustion.
    let c = classify_grpc(&trailers(Code::ResourceExhausted, "", None, Some("-1")));
    assert_eq!((c.class, c.retryable), (Class::QuotaExhausted, false));
    // Unparsable: do not retry either.
    let c = classify_grpc(&trailers(Code::Unavailable, "", None, Some("soon")));
    assert!(!c.retryable);
}

#[test]
fn status_details_decode_into_retry_quota_error_info_and_help() {
    let mut d = ErrorDetails::with_retry_info(Some(Duration::from_secs(3)));
    d.add_quota_failure_violation("project:1", "per minute")
        .set_error_info(
            "RATE_LIMIT_EXCEEDED",
            "googleapis.com",
            HashMap::from([(
                "quota_limit".to_string(),
                "ReadRequestsPerMinutePerProject".to_string(),
            )]),
        )
        .add_help_link("quota docs", "https://cloud.google.com/docs/quotas");
    let status = tonic::Status::with_error_details(Code::ResourceExhausted, "slow down", d);
    let padded = {
        let mut s = base64(status.details());
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    };
    let details = decode_status_details(padded.as_bytes()).unwrap();
    assert_eq!(details.code, Code::ResourceExhausted as i32);
    assert_eq!(details.message, "slow down");
    assert_eq!(details.retry_delay, Some(Duration::from_secs(3)));
    assert_eq!(details.quota_violations[0].subject, "project:1");
    let info = details.error_info.as_ref().unwrap();
    assert_eq!(info.reason, "RATE_LIMIT_EXCEEDED");
    assert_eq!(info.metadata[0].1, "ReadRequestsPerMinutePerProject");
    assert_eq!(
        details.help_links[0].url,
        "https://cloud.google.com/docs/quotas"
    );
    // Unpadded decodes the same.
    assert_eq!(
        decode_status_details(base64(status.details()).as_bytes()).unwrap(),
        details
    );
}

#[test]
fn bad_details_are_ignored_and_the_code_still_decides() {
    let mut t = trailers(Code::ResourceExhausted, "", None, None);
    t.insert("grpc-status-details-bin", "!!!not base64".parse().unwrap());
    assert_eq!(classify_grpc(&t).class, Class::RateLimited);
    t.insert(
        "grpc-status-details-bin",
        base64(b"\xff\xff\xff\xff").parse().unwrap(),
    );
    assert_eq!(classify_grpc(&t).class, Class::RateLimited);
    assert!(decode_status_details(b"%%").is_err());
    let mut t = HeaderMap::new();
    t.insert("grpc-status", "eight".parse().unwrap());
    assert_eq!(classify_grpc(&t).class, Class::ServerError);
    assert_eq!(classify_grpc(&HeaderMap::new()).class, Class::ServerError);
}

#[test]
fn tonic_status_errors_are_classified_with_their_details_and_pushback() {
    let d = ErrorDetails::with_quota_failure_violation("project:1", "requests per day");
    let status = tonic::Status::with_error_details(Code::ResourceExhausted, "quota", d);
    assert_eq!(classify_error(&status).class, Class::QuotaExhausted);

    let mut meta = tonic::metadata::MetadataMap::new();
    meta.insert("grpc-retry-pushback-ms", "200".parse().unwrap());
    let status = tonic::Status::with_metadata(Code::Unavailable, "down", meta);
    let c = classify_error(&status);
    assert_eq!(
        (c.class, c.retry_after),
        (Class::ServerError, Some(Duration::from_millis(200)))
    );

    assert_eq!(
        classify_error(&tonic::Status::unauthenticated("no")).class,
        Class::AuthError
    );
}
