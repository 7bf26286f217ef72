//! abide: Tower middleware for clients of rate-limited APIs.
#![forbid(unsafe_code)]

#[cfg(feature = "headers")]
#[doc(inline)]
pub use abide_headers as headers;
