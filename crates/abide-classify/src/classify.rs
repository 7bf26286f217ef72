//! The classifier traits, modelled on tower-http's `classify` module and reshaped for
//! rate limits: one per-request classifier sees the head, then (when it asks) a bounded
//! prefix of the body, then (for gRPC) the trailers; every stage returns a full
//! [`Classification`], and a stage that has no opinion returns `None` so rules chain.

use crate::rules;
use crate::{Class, Classification, Processing};
use abide_headers::RateLimitSnapshot;
use http::{HeaderMap, Request, StatusCode};
use std::fmt;
use std::time::Duration;

/// What a classifier sees of a response before its body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The rate-limit headers, parsed once.
    pub snapshot: &'a RateLimitSnapshot,
}

impl<'a> ResponseHead<'a> {
    /// A head from its parts.
    pub fn new(
        status: StatusCode,
        headers: &'a HeaderMap,
        snapshot: &'a RateLimitSnapshot,
    ) -> Self {
        ResponseHead {
            status,
            headers,
            snapshot,
        }
    }
}

/// A bounded prefix of a response body, as read by the peek.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BodyPrefix<'a> {
    /// The bytes read, at most the peek limit.
    pub bytes: &'a [u8],
    /// True when `bytes` is the whole body (the stream ended within the limit and time).
    pub complete: bool,
    /// The trailers, when the stream ended with trailers within the limit and time.
    pub trailers: Option<&'a HeaderMap>,
}

impl<'a> BodyPrefix<'a> {
    /// A prefix from its parts.
    pub fn new(bytes: &'a [u8], complete: bool, trailers: Option<&'a HeaderMap>) -> Self {
        BodyPrefix {
            bytes,
            complete,
            trailers,
        }
    }
}

/// What a classifier decides from a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Final.
    Ready(Classification),
    /// Read a bounded prefix of the body and ask [`ClassifyResponse::classify_body`]; the
    /// verdict given here stands when the body cannot be read.
    PeekBody(Classification),
    /// gRPC: the status comes in the trailers. The verdict given here is attached now; the
    /// final one goes to the response's [`EosClassification`](crate::EosClassification)
    /// when the body ends.
    AwaitTrailers(Classification),
}

/// Makes a per-request [`ClassifyResponse`] (tower-http's `MakeClassifier`).
pub trait MakeClassifier {
    /// The per-request classifier.
    type Classifier: ClassifyResponse;

    /// Makes the classifier for one request; it may remember what it needs from the
    /// request (method, path).
    fn make_classifier<B>(&self, request: &Request<B>) -> Self::Classifier;
}

/// Classifies one response, stage by stage. Every method returns `None` when the rule has
/// no opinion, so the next rule in a [`Chain`] decides.
pub trait ClassifyResponse {
    /// The head stage.
    fn classify_head(&mut self, head: &ResponseHead<'_>) -> Option<Decision>;

    /// The body stage, called after a [`Decision::PeekBody`].
    fn classify_body(
        &mut self,
        head: &ResponseHead<'_>,
        body: &BodyPrefix<'_>,
    ) -> Option<Classification> {
        let _ = (head, body);
        None
    }

    /// The end of stream, called after a [`Decision::AwaitTrailers`] with the trailers, or
    /// `None` when the stream ended without any.
    fn classify_trailers(&mut self, trailers: Option<&HeaderMap>) -> Option<Classification> {
        let _ = trailers;
        None
    }
}

/// No rules: every stage has no opinion. The default user rule set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRules;

impl MakeClassifier for NoRules {
    type Classifier = NoRules;
    fn make_classifier<B>(&self, _: &Request<B>) -> NoRules {
        NoRules
    }
}

impl ClassifyResponse for NoRules {
    fn classify_head(&mut self, _: &ResponseHead<'_>) -> Option<Decision> {
        None
    }
}

/// Two rule sets, the first consulted first at every stage.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chain<A, B> {
    first: A,
    second: B,
}

impl<A, B> Chain<A, B> {
    /// `first`, then `second`.
    pub fn new(first: A, second: B) -> Self {
        Chain { first, second }
    }
}

impl<A: MakeClassifier, B: MakeClassifier> MakeClassifier for Chain<A, B> {
    type Classifier = Chain<A::Classifier, B::Classifier>;
    fn make_classifier<R>(&self, request: &Request<R>) -> Self::Classifier {
        Chain::new(
            self.first.make_classifier(request),
            self.second.make_classifier(request),
        )
    }
}

impl<A: ClassifyResponse, B: ClassifyResponse> ClassifyResponse for Chain<A, B> {
    fn classify_head(&mut self, head: &ResponseHead<'_>) -> Option<Decision> {
        self.first
            .classify_head(head)
            .or_else(|| self.second.classify_head(head))
    }
    fn classify_body(
        &mut self,
        head: &ResponseHead<'_>,
        body: &BodyPrefix<'_>,
    ) -> Option<Classification> {
        self.first
            .classify_body(head, body)
            .or_else(|| self.second.classify_body(head, body))
    }
    fn classify_trailers(&mut self, trailers: Option<&HeaderMap>) -> Option<Classification> {
        self.first
            .classify_trailers(trailers)
            .or_else(|| self.second.classify_trailers(trailers))
    }
}

/// A head rule from a closure; see [`rule_fn`].
#[derive(Clone, Copy)]
pub struct RuleFn<F>(F);

impl<F> fmt::Debug for RuleFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuleFn")
    }
}

/// A rule from a closure over the response head: `Some(verdict)` decides (no body peek),
/// `None` passes to the next rule.
///
/// ```
/// use abide_classify::{rule_fn, Class, Classification, ResponseHead};
///
/// // This API answers 418 when the account is suspended.
/// let rule = rule_fn(|head: &ResponseHead<'_>| {
///     (head.status.as_u16() == 418)
///         .then(|| Classification::new(Class::QuotaExhausted, "acme: account suspended"))
/// });
/// # let _ = rule;
/// ```
pub fn rule_fn<F>(f: F) -> RuleFn<F>
where
    F: Fn(&ResponseHead<'_>) -> Option<Classification> + Clone,
{
    RuleFn(f)
}

impl<F> MakeClassifier for RuleFn<F>
where
    F: Fn(&ResponseHead<'_>) -> Option<Classification> + Clone,
{
    type Classifier = RuleFn<F>;
    fn make_classifier<B>(&self, _: &Request<B>) -> Self::Classifier {
        self.clone()
    }
}

impl<F> ClassifyResponse for RuleFn<F>
where
    F: Fn(&ResponseHead<'_>) -> Option<Classification>,
{
    fn classify_head(&mut self, head: &ResponseHead<'_>) -> Option<Decision> {
        (self.0)(head).map(Decision::Ready)
    }
}

/// The built-in rules (status codes, rate-limit headers, vendor error bodies, gRPC).
/// Always consulted last.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRules {
    pub(crate) opts: rules::Options,
    pub(crate) graphql: bool,
    pub(crate) success_peek: bool,
}

impl DefaultRules {
    /// The built-in rules with their defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also peek 2xx JSON responses to GraphQL endpoints (request path ending in
    /// `graphql`, or a `application/graphql-response+json` response) for throttling
    /// errors such as GitHub's `RATE_LIMITED` in a 200. Off by default.
    pub fn with_graphql(mut self, on: bool) -> Self {
        self.graphql = on;
        self
    }

    /// Also peek every 2xx JSON response, whatever its path, for an error-shaped body
    /// that says it was rate limited or out of quota (Google Maps `"status":
    /// "OVER_QUERY_LIMIT"` in a 200, `{"ok": false, "error": "ratelimited"}`). A success
    /// payload that merely mentions rate limits stays a success. Off by default: it costs
    /// a bounded peek of every successful JSON response.
    pub fn with_success_peek(mut self, on: bool) -> Self {
        self.success_peek = on;
        self
    }

    /// Retryable verdicts whose stated wait exceeds `threshold` become
    /// [`QuotaExhausted`](Class::QuotaExhausted) (default
    /// [`DEFAULT_LONG_WAIT`](crate::DEFAULT_LONG_WAIT), an hour and a minute).
    pub fn with_long_wait(mut self, threshold: Duration) -> Self {
        self.opts.long_wait = threshold;
        self
    }

    /// The stated wait past which a retryable verdict becomes
    /// [`QuotaExhausted`](Class::QuotaExhausted).
    ///
    /// ```
    /// use abide_classify::{DefaultRules, DEFAULT_LONG_WAIT};
    /// use std::time::Duration;
    ///
    /// assert_eq!(DefaultRules::new().long_wait(), DEFAULT_LONG_WAIT);
    /// let rules = DefaultRules::new().with_long_wait(Duration::from_secs(600));
    /// assert_eq!(rules.long_wait(), Duration::from_secs(600));
    /// ```
    pub fn long_wait(&self) -> Duration {
        self.opts.long_wait
    }
}

/// The per-request classifier of [`DefaultRules`].
#[derive(Debug, Clone, Copy)]
pub struct DefaultClassifier {
    opts: rules::Options,
    graphql_request: bool,
    head_request: bool,
    graphql: bool,
    success_peek: bool,
}

impl MakeClassifier for DefaultRules {
    type Classifier = DefaultClassifier;
    fn make_classifier<B>(&self, request: &Request<B>) -> DefaultClassifier {
        let path = request.uri().path().as_bytes();
        DefaultClassifier {
            opts: self.opts,
            graphql: self.graphql,
            graphql_request: self.graphql
                && path.len() >= 7
                && path[path.len() - 7..].eq_ignore_ascii_case(b"graphql"),
            head_request: request.method() == http::Method::HEAD,
            success_peek: self.success_peek,
        }
    }
}

impl ClassifyResponse for DefaultClassifier {
    fn classify_head(&mut self, head: &ResponseHead<'_>) -> Option<Decision> {
        let c = rules::classify(head.status, head.headers, None, head.snapshot, self.opts);
        if rules::grpc::is_grpc(head.headers)
            && head.status == StatusCode::OK
            && !head.headers.contains_key(rules::grpc::GRPC_STATUS)
        {
            return Some(Decision::AwaitTrailers(c));
        }
        // A success is peeked only when asked to: test the flags before any header, so
        // the common success reads no more headers here.
        let success = c.class == Class::Success;
        if success && !self.success_peek && !self.graphql {
            return Some(Decision::Ready(c));
        }
        if self.head_request || !body_readable(head.headers, head.status) {
            return Some(Decision::Ready(c));
        }
        let peek = if success {
            (self.success_peek
                || (self.graphql && (self.graphql_request || graphql_response(head.headers))))
                && json(head.headers)
        } else {
            true
        };
        Some(if peek {
            Decision::PeekBody(c)
        } else {
            Decision::Ready(c)
        })
    }

    fn classify_body(
        &mut self,
        head: &ResponseHead<'_>,
        body: &BodyPrefix<'_>,
    ) -> Option<Classification> {
        Some(rules::classify(
            head.status,
            head.headers,
            Some(body.bytes),
            head.snapshot,
            self.opts,
        ))
    }

    fn classify_trailers(&mut self, trailers: Option<&HeaderMap>) -> Option<Classification> {
        Some(
            trailers
                .and_then(rules::grpc::classify_metadata)
                .unwrap_or_else(missing_grpc_status),
        )
    }
}

/// A gRPC stream that ended without a status is a failure, not a silent success.
pub(crate) fn missing_grpc_status() -> Classification {
    Classification::new(Class::ServerError, "grpc: stream ended without grpc-status")
        .with_processing(Processing::Ambiguous)
}

fn content_type(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
}

fn json(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| rules::text::contains(t, "json"))
}

fn graphql_response(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|t| rules::text::contains(t, "graphql"))
}

/// True when the body can hold a readable error: text-like content, not compressed, not empty.
fn body_readable(headers: &HeaderMap, status: StatusCode) -> bool {
    if matches!(status.as_u16(), 204 | 304) {
        return false;
    }
    if headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
    {
        return false;
    }
    if headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return false;
    }
    match content_type(headers) {
        None => true,
        Some(t) => {
            rules::text::contains_any(t, &["json", "xml", "problem", "graphql"])
                || (t.len() >= 5 && t[..5].eq_ignore_ascii_case(b"text/"))
        }
    }
}
