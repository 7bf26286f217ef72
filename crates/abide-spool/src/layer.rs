//! [`SpoolLayer`]: configuration only.

use crate::{Replayer, Spool, Spooled};
use http::request::Parts;
use std::fmt;
use std::sync::Arc;
use tower_layer::Layer;

/// The request extension that marks a request as deferrable: if it cannot go now, spool it.
///
/// ```
/// let mut request = http::Request::post("https://api.example.com/v1/events").body(()).unwrap();
/// request.extensions_mut().insert(abide_spool::Deferrable);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deferrable;

/// The default body buffer limit of a deferrable request: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

type Predicate = Arc<dyn Fn(&Parts) -> bool + Send + Sync>;

/// Deferred delivery, outside the stack: a deferrable request whose outcome is "not now"
/// (see [`not_now`](crate::not_now)) is written to the [`Spool`] and the caller gets a
/// [`Deferred`](crate::Deferred) error carrying the entry id; every other outcome passes
/// through. A layer that adds failures: its service's error is [`BoxError`](crate::BoxError)
/// (`Deferred`, [`BodyTooLarge`](crate::BodyTooLarge), [`SpoolError`](crate::SpoolError), or
/// the inner service's error).
///
/// ```text
/// caller
///   └─ SpoolLayer          deferrable and not now? write to the spool, answer Deferred
///        └─ BackoffRetry → ConcurrencyCap → QuotaClassifier → client
/// ```
///
/// # Examples
///
/// ```
/// use abide_spool::{Spool, SpoolConfig, SpoolLayer};
/// use tower::ServiceBuilder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("abide-spool-layer-doc-{}", std::process::id()));
/// let (spool, _report) = Spool::open(&dir, SpoolConfig::new())?;
/// let layer = SpoolLayer::new(spool)
///     // Telemetry can wait; everything else fails as usual.
///     .with_predicate(|parts| parts.uri.path().starts_with("/v1/events"));
/// let api = tower::service_fn(|_req: http::Request<abide_spool::SpoolBody<String>>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(()))
/// });
/// let client = ServiceBuilder::new().layer(layer.clone()).service(api);
/// // Later, or in another task: `layer.replayer(stack).run_until_empty(pause)`.
/// # drop(client);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SpoolLayer {
    pub(crate) spool: Spool,
    pub(crate) predicate: Predicate,
    pub(crate) max_body: usize,
}

impl fmt::Debug for SpoolLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpoolLayer")
            .field("spool", &self.spool.dir())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl SpoolLayer {
    /// Spools into `spool` the requests that carry the [`Deferrable`] extension, with bodies
    /// up to [`DEFAULT_MAX_BODY`].
    pub fn new(spool: Spool) -> Self {
        SpoolLayer {
            spool,
            predicate: Arc::new(|parts: &Parts| parts.extensions.get::<Deferrable>().is_some()),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Decide deferrability with a predicate on the request instead of the extension.
    pub fn with_predicate<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.predicate = Arc::new(predicate);
        self
    }

    /// The largest body a deferrable request may have to be spooled. A larger one is sent
    /// as it is (its first `max` bytes buffered, the rest streamed) and, if it cannot go
    /// now, fails as it would have, wrapped in [`BodyTooLarge`](crate::BodyTooLarge).
    pub fn with_max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// A replayer that sends the spooled entries through `service`: give it the same stack
    /// the layer wraps (with the credentials layer, see [`SpoolConfig`](crate::SpoolConfig)).
    ///
    /// `B` is the body type of the requests the wrapped stack takes inside a
    /// [`SpoolBody`](crate::SpoolBody); it is usually inferred.
    pub fn replayer<S, B>(&self, service: S) -> Replayer<S, B>
    where
        S: tower_service::Service<http::Request<crate::SpoolBody<B>>>,
    {
        Replayer::new(self.spool.clone(), service)
    }
}

impl<S> Layer<S> for SpoolLayer {
    type Service = Spooled<S>;

    fn layer(&self, inner: S) -> Spooled<S> {
        Spooled {
            inner,
            layer: self.clone(),
        }
    }
}
