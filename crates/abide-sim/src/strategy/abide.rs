//! `abide` and `abide-retry-only`: the real layers, default configuration, cost declared.

use super::{Client, ClientContext, SimBody};
use crate::service::RequestTokens;
use abide_cap::{ConcurrencyCapLayer, Cost};
use abide_classify::QuotaClassifierLayer;
use abide_retry::{BackoffRetryLayer, ReplayBody};
use http::{Request, Response};
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceBuilder};

/// Declares a request's token cost to the cap, as a user does with the `Cost` extension.
fn declare_cost(mut req: Request<SimBody>) -> Request<SimBody> {
    if let Some(t) = req.extensions().get::<RequestTokens>().copied() {
        req.extensions_mut()
            .insert(Cost(u32::try_from(t.0).unwrap_or(u32::MAX)));
    }
    req
}

/// `retry -> cap -> classify -> inner`, the documented order; `with_cap: false` leaves the
/// cap out. Only the jitter RNG is seeded (for reproducible boards); everything else is
/// each layer's `new()`. The simulated caller does not read bodies, so the answer's body is
/// dropped (which also ends the cap's in-flight permit, as a caller reading it would).
pub(super) fn client<S>(inner: S, ctx: &ClientContext, with_cap: bool) -> Client
where
    S: Service<Request<ReplayBody<SimBody>>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let retry = BackoffRetryLayer::new().with_seed(ctx.rng(6).u64(..));
    let classify = QuotaClassifierLayer::new();
    if with_cap {
        let cap = match &ctx.shared_store {
            Some(store) => ConcurrencyCapLayer::new().with_store(store.clone()),
            None => ConcurrencyCapLayer::new(),
        };
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_request(declare_cost)
                .map_response(drop_body)
                .layer(retry)
                .layer(cap)
                .layer(classify)
                .service(inner),
        )
    } else {
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_request(declare_cost)
                .map_response(drop_body)
                .layer(retry)
                .layer(classify)
                .service(inner),
        )
    }
}

fn drop_body<B>(res: Response<B>) -> Response<SimBody> {
    res.map(|_| SimBody::default())
}
