//! Decoding of gRPC `grpc-status-details-bin` into the google.rpc details that matter for
//! rate limits: `RetryInfo`, `QuotaFailure`, `ErrorInfo`, `Help`.
//!
//! ```
//! use abide_classify::grpc::decode_status_details;
//!
//! // Not base64: a clear error, never a panic.
//! assert!(decode_status_details(b"%%%").is_err());
//! ```

use crate::rules::google::DetailHints;
use prost::Message;
use std::fmt;
use std::time::Duration;

/// The google.rpc details carried by a gRPC status, reduced to the fields a client acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusDetails {
    /// The status code inside the details (normally equal to `grpc-status`).
    pub code: i32,
    /// The status message inside the details.
    pub message: String,
    /// `RetryInfo.retry_delay`, when present and not negative; capped at 30 days.
    pub retry_delay: Option<Duration>,
    /// `QuotaFailure` violations.
    pub quota_violations: Vec<QuotaViolation>,
    /// `ErrorInfo`, when present.
    pub error_info: Option<ErrorInfo>,
    /// `Help` links.
    pub help_links: Vec<HelpLink>,
}

/// One `google.rpc.QuotaFailure.Violation`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaViolation {
    /// What was over quota (`project:123`, ...).
    pub subject: String,
    /// Why, in prose.
    pub description: String,
    /// The quota metric (`generativelanguage.googleapis.com/generate_content_free_tier_requests`).
    pub quota_metric: String,
    /// The quota id (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`).
    pub quota_id: String,
}

/// `google.rpc.ErrorInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// The reason (`RATE_LIMIT_EXCEEDED`, `BILLING_DISABLED`, ...).
    pub reason: String,
    /// The domain (`googleapis.com`).
    pub domain: String,
    /// Metadata pairs, sorted by key.
    pub metadata: Vec<(String, String)>,
}

/// One `google.rpc.Help.Link`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HelpLink {
    /// What the link is about.
    pub description: String,
    /// Where it points.
    pub url: String,
}

/// Why `grpc-status-details-bin` could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DetailsError {
    /// The value is not base64.
    Base64,
    /// The bytes are not a `google.rpc.Status` message.
    Protobuf,
}

impl fmt::Display for DetailsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetailsError::Base64 => "grpc-status-details-bin is not base64",
            DetailsError::Protobuf => "grpc-status-details-bin is not a google.rpc.Status",
        })
    }
}

impl std::error::Error for DetailsError {}

/// Largest details value decoded; anything longer is refused rather than parsed.
const MAX_DETAILS: usize = 64 * 1024;

/// Decodes the value of a `grpc-status-details-bin` header or trailer (base64, standard or
/// URL-safe alphabet, padding optional) into [`StatusDetails`]. Details of unknown types
/// are skipped; a detail of a known type that fails to decode is skipped with a
/// `tracing` debug event.
///
/// # Errors
///
/// [`DetailsError::Base64`] when the value is not base64 (or longer than 64 KiB),
/// [`DetailsError::Protobuf`] when the bytes are not a `google.rpc.Status`.
pub fn decode_status_details(value: &[u8]) -> Result<StatusDetails, DetailsError> {
    if value.len() > MAX_DETAILS {
        return Err(DetailsError::Base64);
    }
    let bytes = crate::rules::grpc::base64_decode(value).ok_or(DetailsError::Base64)?;
    decode_status_proto(&bytes)
}

/// Decodes raw (not base64) `google.rpc.Status` bytes, as `tonic::Status::details` holds them.
///
/// # Errors
///
/// [`DetailsError::Protobuf`] when the bytes are not a `google.rpc.Status`.
pub fn decode_status_proto(bytes: &[u8]) -> Result<StatusDetails, DetailsError> {
    use tonic_types::pb;
    let status = pb::Status::decode(bytes).map_err(|_| DetailsError::Protobuf)?;
    let mut out = StatusDetails {
        code: status.code,
        message: status.message,
        ..StatusDetails::default()
    };
    for any in status.details {
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        let value = &any.value[..];
        let ok = match name {
            "google.rpc.RetryInfo" => pb::RetryInfo::decode(value)
                .map(|r| {
                    out.retry_delay = r.retry_delay.and_then(|d| {
                        let secs = u64::try_from(d.seconds).ok()?;
                        let nanos = u32::try_from(d.nanos).ok()?;
                        let delay = Duration::new(secs, nanos.min(999_999_999));
                        Some(delay.min(crate::rules::prose::MAX_WAIT))
                    });
                })
                .is_ok(),
            "google.rpc.QuotaFailure" => pb::QuotaFailure::decode(value)
                .map(|q| {
                    out.quota_violations
                        .extend(q.violations.into_iter().map(|v| QuotaViolation {
                            subject: v.subject,
                            description: v.description,
                            quota_metric: v.quota_metric,
                            quota_id: v.quota_id,
                        }));
                })
                .is_ok(),
            "google.rpc.ErrorInfo" => pb::ErrorInfo::decode(value)
                .map(|e| {
                    let mut metadata: Vec<_> = e.metadata.into_iter().collect();
                    metadata.sort();
                    out.error_info = Some(ErrorInfo {
                        reason: e.reason,
                        domain: e.domain,
                        metadata,
                    });
                })
                .is_ok(),
            "google.rpc.Help" => pb::Help::decode(value)
                .map(|h| {
                    out.help_links.extend(h.links.into_iter().map(|l| HelpLink {
                        description: l.description,
                        url: l.url,
                    }));
                })
                .is_ok(),
            _ => true,
        };
        if !ok {
            tracing::debug!(type_url = %any.type_url, "undecodable google.rpc detail skipped");
        }
    }
    Ok(out)
}

impl StatusDetails {
    pub(crate) fn hints(&self) -> DetailHints {
        let mut h = DetailHints::default();
        if let Some(d) = self.retry_delay {
            h.retry_delay(d);
        }
        for v in &self.quota_violations {
            h.quota_violation(&[&v.quota_id, &v.quota_metric, &v.subject, &v.description]);
        }
        if let Some(info) = &self.error_info {
            h.reason(&info.reason);
            for (_, value) in &info.metadata {
                h.quota_text(value.as_bytes());
            }
        }
        h
    }
}
