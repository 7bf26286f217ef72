//! A verdict carried by an error that an abide layer raises itself.

use crate::Classification;
use std::error::Error;
use std::fmt;

/// The [`Classification`] of an error an abide layer raised itself rather than the server
/// (for instance the cap refusing an attempt because the bucket's quota is exhausted).
///
/// A layer's named error returns a `Verdict` from [`Error::source`]; [`classify_error`]
/// finds it on the source chain and returns its classification, so the layers above know
/// what the refusal means without depending on the layer that raised it. Callers keep
/// `downcast_ref`-ing the named error itself.
///
/// [`classify_error`]: crate::classify_error
///
/// ```
/// use abide_classify::{classify_error, Class, Classification, Verdict};
/// use std::{error::Error, fmt};
///
/// #[derive(Debug)]
/// struct OutOfCredit(Verdict);
/// impl fmt::Display for OutOfCredit {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("out of credit")
///     }
/// }
/// impl Error for OutOfCredit {
///     fn source(&self) -> Option<&(dyn Error + 'static)> {
///         Some(&self.0)
///     }
/// }
///
/// let error = OutOfCredit(Verdict::new(
///     Classification::new(Class::QuotaExhausted, "local: bucket exhausted"),
/// ));
/// assert_eq!(classify_error(&error).class, Class::QuotaExhausted);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict(Classification);

impl Verdict {
    /// Wraps a classification.
    pub fn new(classification: Classification) -> Self {
        Verdict(classification)
    }

    /// The classification.
    pub fn classification(&self) -> &Classification {
        &self.0
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "classified {} ({})", self.0.class, self.0.reason)
    }
}

impl Error for Verdict {}
