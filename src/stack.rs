//! The whole abide stack as one layer.

use abide_cap::{ConcurrencyCap, ConcurrencyCapLayer};
use abide_classify::{QuotaClassifier, QuotaClassifierLayer};
use abide_retry::{BackoffRetry, BackoffRetryLayer};
use std::time::Duration;
use tower_layer::Layer;

/// The full stack in the documented order: [`BackoffRetry`] around [`ConcurrencyCap`]
/// around [`QuotaClassifier`] around the inner service.
///
/// Clones share the cap's bucket state and the retry budget, as the layers do.
///
/// ```
/// use abide::AbideLayer;
/// use abide::cap::{ConcurrencyCapLayer, InFlight};
/// use abide::retry::BackoffRetryLayer;
/// use std::time::Duration;
///
/// let layer = AbideLayer::new()
///     .with_retry(BackoffRetryLayer::new().with_deadline(Duration::from_secs(120)))
///     .with_cap(ConcurrencyCapLayer::new().with_in_flight(InFlight::fixed(8)));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct AbideLayer {
    retry: BackoffRetryLayer,
    cap: ConcurrencyCapLayer,
    classify: QuotaClassifierLayer,
    max_server_wait: Option<Duration>,
}

impl Default for AbideLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AbideLayer {
    /// Every layer with its defaults.
    pub fn new() -> Self {
        AbideLayer {
            retry: BackoffRetryLayer::new(),
            cap: ConcurrencyCapLayer::new(),
            classify: QuotaClassifierLayer::new(),
            max_server_wait: None,
        }
    }

    /// Sets the one wait policy of the stack: the longest server-stated wait worth
    /// taking, in the retry layer
    /// ([`with_max_server_wait`](BackoffRetryLayer::with_max_server_wait)) and in the cap
    /// ([`with_max_server_wait`](ConcurrencyCapLayer::with_max_server_wait)) alike, so the
    /// caller that meets a `Retry-After` and the callers behind it in the cap get one
    /// answer: wait, or fail at once with `WaitTooLong` carrying the stated wait. Both
    /// default to an hour and a minute. Applies to layers given later with
    /// [`with_retry`](Self::with_retry) or [`with_cap`](Self::with_cap) too.
    ///
    /// ```
    /// use abide::AbideLayer;
    /// use std::time::Duration;
    ///
    /// let layer = AbideLayer::new().with_max_server_wait(Duration::from_secs(300));
    /// assert_eq!(layer.retry().max_server_wait(), Duration::from_secs(300));
    /// assert_eq!(layer.cap().max_server_wait(), Duration::from_secs(300));
    /// ```
    pub fn with_max_server_wait(mut self, max: Duration) -> Self {
        self.max_server_wait = Some(max);
        self.retry = self.retry.with_max_server_wait(max);
        self.cap = self.cap.with_max_server_wait(max);
        self
    }

    /// Replaces the retry layer's configuration.
    pub fn with_retry(mut self, retry: BackoffRetryLayer) -> Self {
        self.retry = match self.max_server_wait {
            Some(max) => retry.with_max_server_wait(max),
            None => retry,
        };
        self
    }

    /// Replaces the cap layer's configuration.
    pub fn with_cap(mut self, cap: ConcurrencyCapLayer) -> Self {
        self.cap = match self.max_server_wait {
            Some(max) => cap.with_max_server_wait(max),
            None => cap,
        };
        self
    }

    /// Replaces the classifier's configuration.
    pub fn with_classifier(mut self, classify: QuotaClassifierLayer) -> Self {
        self.classify = classify;
        self
    }

    /// The retry layer's configuration (its stats and budget handles).
    pub fn retry(&self) -> &BackoffRetryLayer {
        &self.retry
    }

    /// The cap layer's configuration (its store).
    pub fn cap(&self) -> &ConcurrencyCapLayer {
        &self.cap
    }

    /// The classifier's configuration.
    pub fn classifier(&self) -> &QuotaClassifierLayer {
        &self.classify
    }
}

impl<S> Layer<S> for AbideLayer {
    type Service = BackoffRetry<ConcurrencyCap<QuotaClassifier<S>>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.retry.layer(self.cap.layer(self.classify.layer(inner)))
    }
}
