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
    /// default to an hour and a minute. A max past the classifier's
    /// [long wait](QuotaClassifierLayer::with_long_wait) (an hour and a minute too)
    /// raises it to the max, so a wait the stack is set to take is never read as quota
    /// exhaustion; the cap raises its own bounds likewise
    /// ([`with_max_server_wait`](ConcurrencyCapLayer::with_max_server_wait)). Applies
    /// to layers given later with [`with_retry`](Self::with_retry),
    /// [`with_cap`](Self::with_cap) or [`with_classifier`](Self::with_classifier) too.
    ///
    /// ```
    /// use abide::AbideLayer;
    /// use std::time::Duration;
    ///
    /// let layer = AbideLayer::new().with_max_server_wait(Duration::from_secs(300));
    /// assert_eq!(layer.retry().max_server_wait(), Duration::from_secs(300));
    /// assert_eq!(layer.cap().max_server_wait(), Duration::from_secs(300));
    /// // Within the classifier's long wait, which stays an hour and a minute.
    /// assert_eq!(layer.classifier().long_wait(), Duration::from_secs(3660));
    ///
    /// let day = Duration::from_secs(86_400);
    /// let layer = AbideLayer::new().with_max_server_wait(day);
    /// assert_eq!(layer.classifier().long_wait(), day);
    /// assert_eq!(layer.cap().max_pause(), day);
    /// ```
    pub fn with_max_server_wait(mut self, max: Duration) -> Self {
        self.max_server_wait = Some(max);
        self.retry = self.retry.with_max_server_wait(max);
        self.cap = self.cap.with_max_server_wait(max);
        if max > self.classify.long_wait() {
            self.classify = self.classify.with_long_wait(max);
        }
        self
    }

    /// `classify`, its long wait raised to the max server wait if that is longer.
    fn classify_within(&self, classify: QuotaClassifierLayer) -> QuotaClassifierLayer {
        match self.max_server_wait {
            Some(max) if max > classify.long_wait() => classify.with_long_wait(max),
            _ => classify,
        }
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
        self.classify = self.classify_within(classify);
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
