//! The whole abide stack as one layer.

use abide_cap::{ConcurrencyCap, ConcurrencyCapLayer};
use abide_classify::{QuotaClassifier, QuotaClassifierLayer};
use abide_retry::{BackoffRetry, BackoffRetryLayer};
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
        }
    }

    /// Replaces the retry layer's configuration.
    pub fn with_retry(mut self, retry: BackoffRetryLayer) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the cap layer's configuration.
    pub fn with_cap(mut self, cap: ConcurrencyCapLayer) -> Self {
        self.cap = cap;
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
}

impl<S> Layer<S> for AbideLayer {
    type Service = BackoffRetry<ConcurrencyCap<QuotaClassifier<S>>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.retry.layer(self.cap.layer(self.classify.layer(inner)))
    }
}
