//! Presets: [`AbideLayer`] configured for the APIs people call most.
//!
//! Each preset is plain configuration: adjust it with the same `with_*` setters as
//! [`AbideLayer::new`] (`AbideLayer::openai().with_max_server_wait(..)`, or replace a whole
//! layer with [`with_retry`](AbideLayer::with_retry) / [`with_cap`](AbideLayer::with_cap)).
//!
//! | preset | bucket | cost | replayed after an ambiguous failure | waits and timeouts |
//! |---|---|---|---|---|
//! | [`openai`](AbideLayer::openai) | host + [`Model`] | [`Cost`](crate::Cost) (tokens) | every request | 600 s per attempt |
//! | [`anthropic`](AbideLayer::anthropic) | host + [`Model`] | [`Cost`](crate::Cost) (tokens) | every request | 600 s per attempt |
//! | [`gemini`](AbideLayer::gemini) | host + model in the path (or [`Model`]) | [`Cost`](crate::Cost) (tokens) | every request | 600 s per attempt |
//! | [`azure_openai`](AbideLayer::azure_openai) | host + deployment in the path | [`Cost`](crate::Cost) (tokens) | every request | 600 s per attempt |
//! | [`github`](AbideLayer::github) | host, apart for `/search` and `/graphql` | 1 per request | idempotent methods only | at most 100 in flight |
//! | [`grpc`](AbideLayer::grpc) | channel origin, else the gRPC service | 1 per call | never (not processed only) | `grpc-timeout`, trailers read |
//! | [`generic`](AbideLayer::generic) | host | [`Cost`](crate::Cost), else 1 | idempotent methods only | defaults |
//!
//! Every preset keeps the stack's wait policy: a server-stated wait is taken up to an hour
//! and a minute (the longest window APIs state, its turn stated in whole seconds), and the
//! same bound applies in the classifier, the retry and the cap layers.

use crate::stack::AbideLayer;
use abide_cap::{authority_key, BucketKey, ConcurrencyCapLayer, InFlight};
use abide_classify::QuotaClassifierLayer;
use abide_retry::BackoffRetryLayer;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A request extension naming the model a request is for, for APIs that limit each model
/// separately (OpenAI, Anthropic, Gemini): the presets put each model in its own bucket.
///
/// ```
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(abide::Model::new("gpt-4o-mini"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Model(Arc<str>);

impl Model {
    /// A model name, as the API spells it.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Model(name.into())
    }

    /// The model name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest one attempt at an LLM completion may take: the 600 s default request
/// timeout of the vendors' SDKs (openai/openai-python `src/openai/_constants.py` and
/// anthropics/anthropic-sdk-python `src/anthropic/_constants.py`: `DEFAULT_TIMEOUT`).
/// Its expiry is an ambiguous failure, retried because completions are replay safe. It
/// times the server only: a request the cap holds (a pause, a paced slot, an outage) has
/// not started its attempt yet.
pub const LLM_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(600);

/// The most requests GitHub allows in flight at once ("No more than 100 concurrent
/// requests are allowed", GitHub REST API docs, "Rate limits for the REST API", secondary
/// rate limits).
pub const GITHUB_MAX_IN_FLIGHT: usize = 100;

/// `host/model` when the request carries a [`Model`], else the host.
fn host_and_model(parts: &http::request::Parts) -> BucketKey {
    let host = authority_key(parts);
    match parts.extensions.get::<Model>() {
        Some(model) => BucketKey::new(&format!("{}/{}", host.as_str(), model.as_str())),
        None => host,
    }
}

/// The path segment after `marker` (`/models/{model}:generateContent`,
/// `/deployments/{name}/...`), cut at `:` (Gemini's `model:method`).
fn path_segment_after<'a>(path: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &path[path.find(marker)? + marker.len()..];
    let segment = rest.split(['/', ':']).next()?;
    (!segment.is_empty()).then_some(segment)
}

fn gemini_key(parts: &http::request::Parts) -> BucketKey {
    match path_segment_after(parts.uri.path(), "/models/") {
        Some(model) => BucketKey::new(&format!("{}/{model}", authority_key(parts).as_str())),
        None => host_and_model(parts),
    }
}

fn azure_key(parts: &http::request::Parts) -> BucketKey {
    match path_segment_after(parts.uri.path(), "/deployments/") {
        Some(deployment) => {
            BucketKey::new(&format!("{}/{deployment}", authority_key(parts).as_str()))
        }
        None => host_and_model(parts),
    }
}

fn github_key(parts: &http::request::Parts) -> BucketKey {
    let host = authority_key(parts);
    let path = parts.uri.path();
    // Search and GraphQL have limits of their own, apart from the core REST limit
    // (GitHub docs, "Rate limits for the REST API": the `search` and `graphql` resources
    // of `x-ratelimit-resource`).
    if path.starts_with("/search/") || path == "/search" {
        BucketKey::new(&format!("{}/search", host.as_str()))
    } else if path.starts_with("/graphql") {
        BucketKey::new(&format!("{}/graphql", host.as_str()))
    } else {
        host
    }
}

/// The gRPC bucket: the URI's authority (the channel origin, set by a client built with
/// `tonic::client::Grpc::with_origin` or a generated client's `with_origin`), else the
/// `Host` header, else the gRPC service of the path (`/pkg.Service/Method` →
/// `grpc:pkg.Service`). Never one shared `"default"`.
pub(crate) fn grpc_key(parts: &http::request::Parts) -> BucketKey {
    if parts.uri.authority().is_some() || parts.headers.contains_key(http::header::HOST) {
        return authority_key(parts);
    }
    let service = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    BucketKey::new(&format!("grpc:{service}"))
}

/// The retry layer of an LLM API: completions have no side effects, so an ambiguous
/// failure (a 502, a reset connection, a cut attempt) is retried for a POST too, as the
/// vendors' SDKs do (openai/openai-python `src/openai/_base_client.py` `_should_retry`:
/// 408, 409, 429 and every 5xx, and timeouts, whatever the method).
fn llm_retry() -> BackoffRetryLayer {
    BackoffRetryLayer::new()
        .with_replay_safe(true)
        .with_attempt_timeout(LLM_ATTEMPT_TIMEOUT)
}

impl AbideLayer {
    /// The defaults, for any HTTP API: [`AbideLayer::new`].
    pub fn generic() -> Self {
        Self::new()
    }

    /// OpenAI (`api.openai.com`).
    ///
    /// - **Bucket**: host, and the [`Model`] extension when set: limits are per model
    ///   ("rate limits vary by the model being used", OpenAI docs, "Rate limits").
    /// - **Cost**: the [`Cost`](crate::Cost) extension, in tokens (prompt + `max_tokens`):
    ///   the `x-ratelimit-*-tokens` headers pace it and correct it.
    /// - **Replay**: every request (completions have no side effects; the SDK retries
    ///   5xx and timeouts for every method, `_base_client.py` `_should_retry`). No
    ///   `Idempotency-Key` is added: the API reference documents none for these calls.
    /// - **Timeouts**: 600 s per attempt ([`LLM_ATTEMPT_TIMEOUT`]).
    ///
    /// ```
    /// use abide::{AbideLayer, Cost, Model};
    /// let layer = AbideLayer::openai();
    /// let mut request = http::Request::post("https://api.openai.com/v1/chat/completions")
    ///     .body(String::from("{}"))
    ///     .unwrap();
    /// request.extensions_mut().insert(Model::new("gpt-4o-mini"));
    /// request.extensions_mut().insert(Cost(1_200));
    /// # let _ = (layer, request);
    /// ```
    pub fn openai() -> Self {
        Self::new()
            .with_retry(llm_retry())
            .with_cap(ConcurrencyCapLayer::new().with_key_fn(host_and_model))
    }

    /// Anthropic (`api.anthropic.com`).
    ///
    /// - **Bucket**: host, and the [`Model`] extension when set: limits are per model
    ///   class (Anthropic docs, "Rate limits").
    /// - **Cost**: [`Cost`](crate::Cost) in tokens; the `anthropic-ratelimit-*-tokens`
    ///   headers pace it.
    /// - **Replay**: every request, as the SDK does (anthropics/anthropic-sdk-python
    ///   `src/anthropic/_base_client.py` `_should_retry`); 529 `overloaded_error` is
    ///   retried with backoff.
    /// - **Timeouts**: 600 s per attempt ([`LLM_ATTEMPT_TIMEOUT`]).
    pub fn anthropic() -> Self {
        Self::new()
            .with_retry(llm_retry())
            .with_cap(ConcurrencyCapLayer::new().with_key_fn(host_and_model))
    }

    /// Google Gemini (`generativelanguage.googleapis.com`, Vertex AI).
    ///
    /// - **Bucket**: host and the model named in the path
    ///   (`/v1beta/models/{model}:generateContent`), else the [`Model`] extension: limits
    ///   are per project and model (Gemini API docs, "Rate limits").
    /// - **Cost**: [`Cost`](crate::Cost) in tokens.
    /// - **Replay**: every request; the SDK retries 408, 429 and 5xx for every method
    ///   (googleapis/python-genai `google/genai/_api_client.py`, retry options).
    ///   Per-day `QuotaFailure` details are quota exhaustion, never retried.
    /// - **Timeouts**: 600 s per attempt ([`LLM_ATTEMPT_TIMEOUT`]).
    pub fn gemini() -> Self {
        Self::new()
            .with_retry(llm_retry())
            .with_cap(ConcurrencyCapLayer::new().with_key_fn(gemini_key))
    }

    /// Azure OpenAI (`{resource}.openai.azure.com`).
    ///
    /// - **Bucket**: host and the deployment of the path
    ///   (`/openai/deployments/{deployment}/chat/completions`): quota is assigned per
    ///   deployment (Azure docs, "Azure OpenAI quotas and limits").
    /// - **Cost**: [`Cost`](crate::Cost) in tokens (TPM).
    /// - **Replay**: every request, as the OpenAI SDK's `AzureOpenAI` client does.
    /// - **Timeouts**: 600 s per attempt ([`LLM_ATTEMPT_TIMEOUT`]).
    pub fn azure_openai() -> Self {
        Self::new()
            .with_retry(llm_retry())
            .with_cap(ConcurrencyCapLayer::new().with_key_fn(azure_key))
    }

    /// GitHub's REST and GraphQL APIs (`api.github.com`, GitHub Enterprise hosts).
    ///
    /// - **Bucket**: host; `/search` and `/graphql` apart, as they have limits of their
    ///   own (`x-ratelimit-resource`).
    /// - **Cost**: 1 per request (the REST limit counts requests).
    /// - **Replay**: idempotent methods only: a POST creates issues, comments, releases.
    /// - **Waits**: the hourly primary limit's reset is waited for (up to an hour and a
    ///   minute, the stack's default); at most [`GITHUB_MAX_IN_FLIGHT`] requests in flight, the
    ///   secondary limit on concurrency.
    pub fn github() -> Self {
        Self::new().with_cap(
            ConcurrencyCapLayer::new()
                .with_key_fn(github_key)
                .with_in_flight(InFlight::adaptive(10, 1, GITHUB_MAX_IN_FLIGHT)),
        )
    }

    /// Any gRPC service behind tonic.
    ///
    /// - **Bucket**: the channel origin, which tonic puts in the URI when the client is
    ///   built with `tonic::client::Grpc::with_origin` (generated clients:
    ///   `XClient::with_origin`); without one, the gRPC service of the path
    ///   (`grpc:pkg.Service`), never one shared `"default"`.
    /// - **Cost**: 1 per call.
    /// - **Replay**: only what the server did not process (`RESOURCE_EXHAUSTED`,
    ///   `UNAVAILABLE` before processing), as gRPC's retry design allows (grpc/proposal
    ///   `A6-client-retries.md`).
    /// - **Status in trailers**: read before the response is returned (unary calls), so
    ///   a `RESOURCE_EXHAUSTED` in the trailers is classified and retried.
    /// - **Timeouts**: the `grpc-timeout` header is the request's deadline.
    ///
    /// With the `grpc` feature, [`grpc::GrpcLayer`](crate::grpc::GrpcLayer) wraps this
    /// stack for a tonic `Channel` and reports local refusals as `tonic::Status`.
    pub fn grpc() -> Self {
        Self::new()
            .with_retry(BackoffRetryLayer::new().with_grpc_timeout(true))
            .with_cap(ConcurrencyCapLayer::new().with_key_fn(grpc_key))
            .with_classifier(QuotaClassifierLayer::new().with_grpc_trailer_peek(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str) -> http::request::Parts {
        http::Request::get(uri).body(()).unwrap().into_parts().0
    }

    #[test]
    fn gemini_buckets_by_the_model_in_the_path() {
        let p = parts("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent");
        assert_eq!(
            gemini_key(&p).as_str(),
            "generativelanguage.googleapis.com/gemini-2.0-flash"
        );
    }

    #[test]
    fn azure_buckets_by_deployment() {
        let p = parts("https://acme.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21");
        assert_eq!(azure_key(&p).as_str(), "acme.openai.azure.com/gpt4o-prod");
    }

    #[test]
    fn github_search_and_graphql_have_buckets_of_their_own() {
        assert_eq!(
            github_key(&parts("https://api.github.com/search/code?q=x")).as_str(),
            "api.github.com/search"
        );
        assert_eq!(
            github_key(&parts("https://api.github.com/graphql")).as_str(),
            "api.github.com/graphql"
        );
        assert_eq!(
            github_key(&parts("https://api.github.com/repos/a/b")).as_str(),
            "api.github.com"
        );
    }

    #[test]
    fn a_grpc_call_without_origin_is_bucketed_by_its_service_not_default() {
        assert_eq!(
            grpc_key(&parts("/abide.test.Echo/Say")).as_str(),
            "grpc:abide.test.Echo"
        );
        assert_eq!(
            grpc_key(&parts("http://10.0.0.1:50051/abide.test.Echo/Say")).as_str(),
            "10.0.0.1:50051"
        );
    }
}
