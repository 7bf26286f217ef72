//! The spool's one decision: is this outcome "not now" (worth deferring)?
//!
//! Built on what the stack reports today: the [`Classification`] the classifier puts in a
//! response's extensions, and the named errors of `abide-retry` and `abide-cap` anywhere in
//! an error's `source` chain. When the facade's outcome model lands, this is the one
//! function to switch over to it.

use abide_classify::{Class, Classification, Verdict};
use http::Response;
use std::error::Error;

/// Why an outcome means "not now", in words; `None` when it means "done" (success, or a
/// failure that waiting cannot fix, such as a client or auth error, a cost that never
/// fits) or when nothing says the server is out of quota.
///
/// "Not now" is: a response the stack handed back as quota exhausted, rate limited or
/// overloaded (the retry layer gave up on it); the retry layer's `WaitTooLong`,
/// `DeadlineExceeded` or `BudgetExhausted`; the cap's `WaitTooLong`, `BucketExhausted` or
/// `QueueFull` (a local refusal).
pub fn not_now<B, E>(result: &Result<Response<B>, E>) -> Option<String>
where
    E: AsRef<dyn Error + Send + Sync + 'static>,
{
    match result {
        Ok(response) => response
            .extensions()
            .get::<Classification>()
            .and_then(deferrable_class),
        Err(error) => error_not_now(error.as_ref()),
    }
}

fn deferrable_class(c: &Classification) -> Option<String> {
    match c.class {
        Class::QuotaExhausted | Class::RateLimited | Class::Overloaded => {
            Some(format!("{}: {}", c.class, c.reason))
        }
        _ => None,
    }
}

/// The same decision for an error alone.
pub fn error_not_now(error: &(dyn Error + Send + Sync + 'static)) -> Option<String> {
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = current {
        let named = e.is::<abide_retry::WaitTooLong>()
            || e.is::<abide_retry::DeadlineExceeded>()
            || e.is::<abide_retry::BudgetExhausted>()
            || e.is::<abide_cap::error::WaitTooLong>()
            || e.is::<abide_cap::error::BucketExhausted>()
            || e.is::<abide_cap::error::QueueFull>();
        if named {
            return Some(e.to_string());
        }
        if e.is::<abide_cap::error::CostTooHigh>() {
            // Never fits, whatever the wait: not worth a spool entry.
            return None;
        }
        if let Some(v) = e.downcast_ref::<Verdict>() {
            if let Some(reason) = deferrable_class(v.classification()) {
                return Some(reason);
            }
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    type BoxError = Box<dyn Error + Send + Sync>;

    fn response_with(class: Class) -> Result<Response<()>, BoxError> {
        let mut r = Response::new(());
        r.extensions_mut()
            .insert(Classification::new(class, "test rule"));
        Ok(r)
    }

    #[test]
    fn quota_exhausted_and_throttled_responses_are_not_now() {
        for class in [Class::QuotaExhausted, Class::RateLimited, Class::Overloaded] {
            assert!(not_now(&response_with(class)).is_some(), "{class}");
        }
    }

    #[test]
    fn successes_and_request_errors_are_final() {
        for class in [
            Class::Success,
            Class::ClientError,
            Class::AuthError,
            Class::ServerError,
        ] {
            assert_eq!(not_now(&response_with(class)), None, "{class}");
        }
        assert_eq!(not_now::<(), BoxError>(&Ok(Response::new(()))), None);
    }

    #[test]
    fn the_caps_wait_too_long_is_not_now_and_an_io_error_is_not() {
        let e: BoxError = Box::new(abide_cap::error::WaitTooLong::new(
            std::time::Duration::from_secs(600),
            std::time::Duration::from_secs(30),
        ));
        assert!(not_now::<(), _>(&Err(e)).unwrap().contains("600"));
        let e: BoxError = Box::new(std::io::Error::other("connection refused"));
        assert_eq!(not_now::<(), _>(&Err(e)), None);
    }
}
