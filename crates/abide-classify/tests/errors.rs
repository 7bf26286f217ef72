//! `classify_error`: the inner service's errors, found anywhere in the `source()` chain.

use abide_classify::{classify_error, Class, Processing};
use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

/// An error wrapping another, as clients wrap transport errors.
#[derive(Debug)]
struct Wrapped(Box<dyn Error + Send + Sync>);

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.0.as_ref())
    }
}

#[test]
fn io_errors_say_whether_the_server_saw_the_request() {
    let cases = [
        (io::ErrorKind::ConnectionRefused, Processing::NotProcessed),
        (io::ErrorKind::TimedOut, Processing::Ambiguous),
        (io::ErrorKind::ConnectionReset, Processing::Ambiguous),
        (io::ErrorKind::BrokenPipe, Processing::Ambiguous),
        (io::ErrorKind::UnexpectedEof, Processing::Ambiguous),
    ];
    for (kind, processing) in cases {
        let wrapped = Wrapped(Box::new(io::Error::from(kind)));
        let c = classify_error(&wrapped);
        assert_eq!(
            (c.class, c.retryable, c.processing),
            (Class::ServerError, true, processing),
            "{kind:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn tower_and_tokio_timeouts_are_ambiguous() {
    let tokio_elapsed =
        tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
            .await
            .unwrap_err();
    let c = classify_error(&Wrapped(Box::new(tokio_elapsed)));
    assert_eq!(
        (c.reason.0, c.processing),
        ("error: timeout", Processing::Ambiguous)
    );

    let tower_elapsed: Box<dyn Error + Send + Sync> = tower::timeout::error::Elapsed::new().into();
    assert_eq!(
        classify_error(tower_elapsed.as_ref()).reason.0,
        "error: timeout"
    );
}

#[test]
fn unknown_errors_are_retryable_but_ambiguous() {
    let c = classify_error(&fmt::Error);
    assert_eq!(
        (c.class, c.retryable, c.processing),
        (Class::ServerError, true, Processing::Ambiguous)
    );
}

#[test]
fn a_self_referencing_chain_of_any_depth_terminates() {
    let mut e: Box<dyn Error + Send + Sync> = Box::new(fmt::Error);
    for _ in 0..100 {
        e = Box::new(Wrapped(e));
    }
    assert_eq!(classify_error(e.as_ref()).class, Class::ServerError);
}
