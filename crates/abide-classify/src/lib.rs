//! Tell a transient rate limit from permanent quota exhaustion, overload and errors.
#![forbid(unsafe_code)]

mod classification;

pub use classification::{Class, Classification, Processing, QuotaScope, Reason};

/// Placeholder until the layer lands.
#[derive(Debug)]
pub struct QuotaClassifier;
