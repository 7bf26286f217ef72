//! The stories of issue 12, each through the public API in virtual time: what a user
//! meets against a real server, and what the stack must do about it.
//!
//! The server is scripted in the test. Where a story depends on the classifier's verdict
//! (a request too large, a daily limit with a short stated wait), the script attaches the
//! [`Classification`] the classifier gives for that answer, so these tests pin the retry
//! and cap side whatever the classifier's rules.

mod support;

mod concurrency;
mod line;
mod outage;
mod per_request;
mod refill;
mod scopes;
mod timeout;
mod wait_policy;
