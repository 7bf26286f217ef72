//! Errors of the inner service: connection failures, timeouts, `tonic::Status`.

use crate::{Class, Classification, Processing};
use std::error::Error;
use std::io;

/// How deep the `source()` chain is followed.
const MAX_DEPTH: usize = 16;

pub(crate) fn classify_error(error: &(dyn Error + 'static)) -> Classification {
    let mut current = Some(error);
    let mut depth = 0;
    while let Some(e) = current {
        if let Some(c) = one(e) {
            return c;
        }
        depth += 1;
        if depth >= MAX_DEPTH {
            break;
        }
        current = e.source();
    }
    Classification::new(
        Class::ServerError,
        "error: unrecognised inner service error",
    )
}

fn timeout() -> Classification {
    // The request may have reached the server: only idempotent requests may be retried.
    Classification::new(Class::ServerError, "error: timeout").with_processing(Processing::Ambiguous)
}

fn one(e: &(dyn Error + 'static)) -> Option<Classification> {
    if let Some(v) = e.downcast_ref::<crate::Verdict>() {
        return Some(v.classification().clone());
    }
    #[cfg(feature = "grpc")]
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        return Some(tonic_status(status));
    }
    #[cfg(feature = "hyper")]
    if let Some(c) = hyper_errors(e) {
        return Some(c);
    }
    if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
        return Some(timeout());
    }
    if e.is::<tower::load_shed::error::Overloaded>() {
        return Some(
            Classification::new(
                Class::ServerError,
                "error: inner service not ready (load shed)",
            )
            .with_processing(Processing::NotProcessed),
        );
    }
    let io = e.downcast_ref::<io::Error>()?;
    Some(match io.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::NotConnected => {
            Classification::new(Class::ServerError, "error: connection refused")
                .with_processing(Processing::NotProcessed)
        }
        io::ErrorKind::TimedOut => timeout(),
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => {
            Classification::new(Class::ServerError, "error: connection lost")
                .with_processing(Processing::Ambiguous)
        }
        // An io error that is not itself recognised: look further down the chain.
        _ => return None,
    })
}

#[cfg(feature = "hyper")]
fn hyper_errors(e: &(dyn Error + 'static)) -> Option<Classification> {
    if let Some(err) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
        if err.is_connect() {
            return Some(
                Classification::new(Class::ServerError, "error: connect failed")
                    .with_processing(Processing::NotProcessed),
            );
        }
        return None;
    }
    let err = e.downcast_ref::<hyper::Error>()?;
    Some(if err.is_timeout() {
        timeout()
    } else if err.is_canceled() || err.is_incomplete_message() || err.is_closed() {
        Classification::new(Class::ServerError, "error: connection closed")
            .with_processing(Processing::Ambiguous)
    } else if err.is_user() {
        Classification::new(Class::ClientError, "error: request could not be sent")
            .with_processing(Processing::NotProcessed)
    } else {
        Classification::new(Class::ServerError, "error: http protocol error")
            .with_processing(Processing::Ambiguous)
    })
}

#[cfg(feature = "grpc")]
fn tonic_status(status: &tonic::Status) -> Classification {
    let hints = if status.details().is_empty() {
        Default::default()
    } else {
        match crate::grpc::decode_status_proto(status.details()) {
            Ok(d) => d.hints(),
            Err(err) => {
                tracing::debug!(error = %err, "tonic::Status details ignored");
                Default::default()
            }
        }
    };
    let pushback = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
        .map(|v| super::grpc::pushback(&v));
    super::grpc::classify_code(
        status.code() as i32,
        status.message().as_bytes(),
        &hints,
        pushback,
    )
}
