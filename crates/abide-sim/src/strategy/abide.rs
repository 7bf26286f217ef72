//! `abide` and `abide-retry-only`: the real layers with the preset a user would pick for
//! the scenario's dialect, cost declared.

use super::{Client, ClientContext, SimBody};
use crate::dialect::SimDialect;
use crate::service::RequestTokens;
use abide::AbideLayer;
use abide_cap::Cost;
use abide_retry::{ReplayBody, ReplaySafe};
use http::{Request, Response};
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceBuilder};

/// The preset a user would pick for an API speaking `dialect`, and its name: OpenAI's,
/// Anthropic's, GitHub's and gRPC's own; [`AbideLayer::generic`] for everything else.
pub(super) fn preset(dialect: SimDialect) -> (AbideLayer, &'static str) {
    match dialect {
        SimDialect::OpenAi => (AbideLayer::openai(), "openai()"),
        SimDialect::Anthropic => (AbideLayer::anthropic(), "anthropic()"),
        SimDialect::GitHub => (AbideLayer::github(), "github()"),
        SimDialect::Grpc => (AbideLayer::grpc(), "grpc()"),
        _ => (AbideLayer::generic(), "generic()"),
    }
}

/// Declares what a user knows of each request: its token cost (the `Cost` extension), and
/// that it has no side effects (`ReplaySafe`): every simulated API serves completions
/// (`POST /v1/chat/completions`), whatever headers it speaks, so a 502 or a 504 may be
/// answered by sending it again, as the LLM presets do for every request. Without the
/// mark, the generic preset does not send a POST twice after an ambiguous failure.
fn declare_request(mut req: Request<SimBody>) -> Request<SimBody> {
    if let Some(t) = req.extensions().get::<RequestTokens>().copied() {
        req.extensions_mut()
            .insert(Cost(u32::try_from(t.0).unwrap_or(u32::MAX)));
    }
    req.extensions_mut().insert(ReplaySafe);
    req
}

/// `retry -> cap -> classify -> inner`, the documented order, as the dialect's preset
/// configures them; `with_cap: false` leaves the cap out. Only the jitter RNG is seeded
/// (for reproducible boards), and clients sharing state share the cap's store. The
/// simulated caller does not read bodies, so the answer's body is dropped (which also ends
/// the cap's in-flight permit, as a caller reading it would).
pub(super) fn client<S>(inner: S, ctx: &ClientContext, with_cap: bool) -> Client
where
    S: Service<Request<ReplayBody<SimBody>>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let (layer, _) = preset(ctx.server.dialect);
    let retry = layer.retry().clone().with_seed(ctx.rng(6).u64(..));
    let classify = layer.classifier().clone();
    if with_cap {
        let cap = match &ctx.shared_store {
            Some(store) => layer.cap().clone().with_shared_store(store.clone()),
            None => layer.cap().clone(),
        };
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_request(declare_request)
                .map_response(drop_body)
                .layer(retry)
                .layer(cap)
                .layer(classify)
                .service(inner),
        )
    } else {
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_request(declare_request)
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
