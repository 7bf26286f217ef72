//! `ServiceBuilder` methods for the abide layers.

use tower::layer::util::Stack;
use tower::ServiceBuilder;

mod sealed {
    pub trait Sealed<L> {}
    impl<L> Sealed<L> for tower::ServiceBuilder<L> {}
}

/// Adds the abide layers to a [`ServiceBuilder`], outermost first, in the documented order.
///
/// ```
/// use abide::ServiceBuilderExt;
/// use abide::cap::ConcurrencyCapLayer;
/// use abide::classify::QuotaClassifierLayer;
/// use abide::retry::BackoffRetryLayer;
/// use tower::ServiceBuilder;
///
/// let builder = ServiceBuilder::new()
///     .backoff_retry(BackoffRetryLayer::new().with_max_attempts(4))
///     .concurrency_cap(ConcurrencyCapLayer::new())
///     .quota_classifier(QuotaClassifierLayer::new());
/// # let _ = builder;
/// ```
///
/// This trait is sealed: it is implemented for `ServiceBuilder` only.
pub trait ServiceBuilderExt<L>: sealed::Sealed<L> + Sized {
    /// Adds a [`QuotaClassifierLayer`](abide_classify::QuotaClassifierLayer).
    fn quota_classifier<U>(
        self,
        layer: abide_classify::QuotaClassifierLayer<U>,
    ) -> ServiceBuilder<Stack<abide_classify::QuotaClassifierLayer<U>, L>>;

    /// Adds a [`BackoffRetryLayer`](abide_retry::BackoffRetryLayer).
    #[cfg(feature = "retry")]
    fn backoff_retry(
        self,
        layer: abide_retry::BackoffRetryLayer,
    ) -> ServiceBuilder<Stack<abide_retry::BackoffRetryLayer, L>>;

    /// Adds a [`ConcurrencyCapLayer`](abide_cap::ConcurrencyCapLayer).
    #[cfg(feature = "cap")]
    fn concurrency_cap(
        self,
        layer: abide_cap::ConcurrencyCapLayer,
    ) -> ServiceBuilder<Stack<abide_cap::ConcurrencyCapLayer, L>>;

    /// Adds the whole stack ([`AbideLayer`](crate::AbideLayer)).
    #[cfg(all(feature = "retry", feature = "cap"))]
    fn abide(self, layer: crate::AbideLayer) -> ServiceBuilder<Stack<crate::AbideLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn quota_classifier<U>(
        self,
        layer: abide_classify::QuotaClassifierLayer<U>,
    ) -> ServiceBuilder<Stack<abide_classify::QuotaClassifierLayer<U>, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "retry")]
    fn backoff_retry(
        self,
        layer: abide_retry::BackoffRetryLayer,
    ) -> ServiceBuilder<Stack<abide_retry::BackoffRetryLayer, L>> {
        self.layer(layer)
    }

    #[cfg(feature = "cap")]
    fn concurrency_cap(
        self,
        layer: abide_cap::ConcurrencyCapLayer,
    ) -> ServiceBuilder<Stack<abide_cap::ConcurrencyCapLayer, L>> {
        self.layer(layer)
    }

    #[cfg(all(feature = "retry", feature = "cap"))]
    fn abide(self, layer: crate::AbideLayer) -> ServiceBuilder<Stack<crate::AbideLayer, L>> {
        self.layer(layer)
    }
}
