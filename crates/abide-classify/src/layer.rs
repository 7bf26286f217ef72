//! The layer: configuration only.

use crate::classify::{Chain, DefaultRules, MakeClassifier, NoRules};
use crate::QuotaClassifier;
use abide_headers::RateLimitHeaders;
use std::time::Duration;
use tower_layer::Layer;

/// Default number of body bytes the classifier reads from a failure response.
pub const DEFAULT_PEEK_LIMIT: usize = 64 * 1024;

/// Default time the classifier waits for a failure response's body prefix.
pub const DEFAULT_PEEK_TIMEOUT: Duration = Duration::from_secs(2);

/// Applies [`QuotaClassifier`]: attaches a [`Classification`](crate::Classification) and a
/// [`RateLimitSnapshot`](abide_headers::RateLimitSnapshot) to every response.
///
/// `U` is the user's rules, consulted before the built-in ones ([`with_rule`](Self::with_rule)).
#[derive(Debug, Clone)]
pub struct QuotaClassifierLayer<U = NoRules> {
    pub(crate) config: Config<U>,
}

/// Shared configuration of the layer and its service.
#[derive(Debug, Clone)]
pub(crate) struct Config<U> {
    pub(crate) user: U,
    pub(crate) defaults: DefaultRules,
    pub(crate) peek: PeekConfig,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PeekConfig {
    pub(crate) limit: usize,
    pub(crate) timeout: Duration,
    pub(crate) headers: RateLimitHeaders,
    pub(crate) grpc_trailers: bool,
}

impl Default for QuotaClassifierLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl QuotaClassifierLayer {
    /// The built-in rules, a 64 KiB / 2 s body peek, GraphQL peeking off.
    pub fn new() -> Self {
        QuotaClassifierLayer {
            config: Config {
                user: NoRules,
                defaults: DefaultRules::new(),
                peek: PeekConfig {
                    limit: DEFAULT_PEEK_LIMIT,
                    timeout: DEFAULT_PEEK_TIMEOUT,
                    headers: RateLimitHeaders::new(),
                    grpc_trailers: false,
                },
            },
        }
    }
}

impl<U> QuotaClassifierLayer<U> {
    /// Adds rules consulted before the built-in ones (and after rules added earlier).
    ///
    /// ```
    /// use abide_classify::{rule_fn, Class, Classification, QuotaClassifierLayer, ResponseHead};
    /// use http::{Request, Response};
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // This API answers 418 when the account is suspended: no retry can help.
    /// let suspended = rule_fn(|head: &ResponseHead<'_>| {
    ///     (head.status.as_u16() == 418)
    ///         .then(|| Classification::new(Class::QuotaExhausted, "acme: account suspended"))
    /// });
    /// let api = service_fn(|_req: Request<()>| async {
    ///     Ok::<_, std::convert::Infallible>(
    ///         Response::builder().status(418).body(String::new()).unwrap(),
    ///     )
    /// });
    ///
    /// let client = QuotaClassifierLayer::new().with_rule(suspended).layer(api);
    /// let response = client.oneshot(Request::new(())).await?;
    /// let verdict = response.extensions().get::<Classification>().unwrap();
    /// assert_eq!(verdict.class, Class::QuotaExhausted);
    /// assert_eq!(verdict.reason.0, "acme: account suspended");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_rule<R: MakeClassifier>(self, rule: R) -> QuotaClassifierLayer<Chain<U, R>> {
        let Config {
            user,
            defaults,
            peek,
        } = self.config;
        QuotaClassifierLayer {
            config: Config {
                user: Chain::new(user, rule),
                defaults,
                peek,
            },
        }
    }

    /// Reads at most `limit` bytes of a failure body (0 turns the peek off), in at most
    /// 1024 frames.
    pub fn with_peek_limit(mut self, limit: usize) -> Self {
        self.config.peek.limit = limit;
        self
    }

    /// Waits at most `timeout` for the body prefix; then classifies what arrived.
    pub fn with_peek_timeout(mut self, timeout: Duration) -> Self {
        self.config.peek.timeout = timeout;
        self
    }

    /// Also peeks 2xx GraphQL responses for throttling errors (see
    /// [`DefaultRules::with_graphql`]).
    pub fn with_graphql(mut self, on: bool) -> Self {
        self.config.defaults = self.config.defaults.with_graphql(on);
        self
    }

    /// Also peeks every 2xx JSON response for a body that says it failed (see
    /// [`DefaultRules::with_success_peek`]): Google Maps `OVER_QUERY_LIMIT`, Slack-style
    /// `{"ok": false, "error": "ratelimited"}`. Costs a bounded peek per success.
    pub fn with_success_peek(mut self, on: bool) -> Self {
        self.config.defaults = self.config.defaults.with_success_peek(on);
        self
    }

    /// Retryable verdicts stating a wait longer than `threshold` become quota
    /// exhaustion (default [`DEFAULT_LONG_WAIT`](crate::DEFAULT_LONG_WAIT), an hour and a
    /// minute).
    pub fn with_long_wait(mut self, threshold: Duration) -> Self {
        self.config.defaults = self.config.defaults.with_long_wait(threshold);
        self
    }

    /// The stated wait past which a retryable verdict becomes quota exhaustion (see
    /// [`with_long_wait`](Self::with_long_wait)).
    pub fn long_wait(&self) -> Duration {
        self.config.defaults.long_wait()
    }

    /// gRPC: when the status comes in the trailers, read the response (within the peek
    /// limit and timeout) up to its trailers before returning it, so the
    /// [`Classification`](crate::Classification) in the extensions is final. Meant for
    /// unary calls, whose responses are small: a retry layer outside can then act on a
    /// trailer `RESOURCE_EXHAUSTED`. Streams longer than the limit or slower than the
    /// timeout are returned as they are, with the verdict left to the
    /// [`EosClassification`](crate::EosClassification). Off by default.
    pub fn with_grpc_trailer_peek(mut self, on: bool) -> Self {
        self.config.peek.grpc_trailers = on;
        self
    }

    /// Uses `headers` to read rate-limit headers (for instance with a fixed `now`).
    pub fn with_headers(mut self, headers: RateLimitHeaders) -> Self {
        self.config.peek.headers = headers;
        self
    }
}

impl<S, U: Clone> Layer<S> for QuotaClassifierLayer<U> {
    type Service = QuotaClassifier<S, U>;

    fn layer(&self, inner: S) -> Self::Service {
        QuotaClassifier {
            inner,
            config: self.config.clone(),
        }
    }
}
