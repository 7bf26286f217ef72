//! The client strategies the scoreboard compares: what users run today, each with its
//! library's defaults, and abide's own layers.
//!
//! Every strategy wraps the same inner service (the simulated API seen through one client's
//! connection) and returns a [`Client`]. Constants cite the source they were read from.

mod abide;
mod async_openai;
mod aws;
mod cookbook;
mod governor;
mod grpc;
mod looping;
mod openai;
mod tower_retry;
mod wire;

use crate::model::ServerConfig;
use abide_retry::ReplayBody;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use looping::Looping;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{BoxError, Service};

pub use wire::is_success;
pub(crate) use wire::{duration_secs, effective_status, grpc_status};

/// The body type of the simulated clients' requests and the server's answers.
pub type SimBody = Full<Bytes>;

/// A client as the scoreboard drives it: one per simulated process.
pub type Client = BoxCloneService<Request<SimBody>, Response<SimBody>, BoxError>;

/// A client strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Strategy {
    /// One attempt, no retry.
    None,
    /// OpenAI cookbook's recipe: tenacity `wait_random_exponential(min=1, max=60)`,
    /// `stop_after_attempt(6)` around an `OpenAI()` client call, so each of the 6 attempts
    /// is a full SDK call with the SDK's own retries.
    Naive,
    /// The official OpenAI Python SDK's defaults.
    OpenAiPython,
    /// `tower::retry::Retry` with tower's `ExponentialBackoffMaker` defaults.
    TowerRetry,
    /// AWS SDK standard retry mode.
    AwsStandard,
    /// AWS SDK adaptive retry mode.
    AwsAdaptive,
    /// gRPC retry policy with A6 retry throttling and server pushback.
    GrpcA6,
    /// OpenAI cookbook's `api_request_parallel_processor.py`: request and token buckets
    /// at the true limits, a 15 s pause after a rate-limit error, 5 attempts.
    CookbookParallel,
    /// The Rust `async-openai` crate's built-in retry (0.37+).
    AsyncOpenAi,
    /// governor `Quota::per_minute` at the true limits in front of a reqwest-retry
    /// `ExponentialBackoff` client.
    GovernorReqwestRetry,
    /// abide's layers with default configuration, cost declared:
    /// `BackoffRetry -> ConcurrencyCap -> QuotaClassifier`.
    Abide,
    /// abide's classifier and retry layers only, to show what the cap adds.
    AbideRetryOnly,
}

impl Strategy {
    /// Every strategy, in board order.
    pub const ALL: [Strategy; 12] = [
        Strategy::None,
        Strategy::Naive,
        Strategy::OpenAiPython,
        Strategy::TowerRetry,
        Strategy::AwsStandard,
        Strategy::AwsAdaptive,
        Strategy::GrpcA6,
        Strategy::CookbookParallel,
        Strategy::AsyncOpenAi,
        Strategy::GovernorReqwestRetry,
        Strategy::Abide,
        Strategy::AbideRetryOnly,
    ];

    /// The strategy's name on the board.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Naive => "naive",
            Strategy::OpenAiPython => "openai-python",
            Strategy::TowerRetry => "tower-retry",
            Strategy::AwsStandard => "aws-standard",
            Strategy::AwsAdaptive => "aws-adaptive",
            Strategy::GrpcA6 => "grpc-a6",
            Strategy::CookbookParallel => "cookbook-parallel",
            Strategy::AsyncOpenAi => "async-openai",
            Strategy::GovernorReqwestRetry => "governor-reqwest-retry",
            Strategy::Abide => "abide",
            Strategy::AbideRetryOnly => "abide-retry-only",
        }
    }

    /// One line on what the strategy is.
    pub fn description(self) -> &'static str {
        match self {
            Strategy::None => "one attempt, no retry",
            Strategy::Naive => "OpenAI cookbook: tenacity random exponential 1..60 s, 6 attempts, each an openai-python call with its 2 retries",
            Strategy::OpenAiPython => "openai-python defaults: 2 retries, 0.5 s doubling to 8 s, honours retry-after(-ms) up to 120 s, no retry past it",
            Strategy::TowerRetry => "tower::retry with ExponentialBackoffMaker defaults (50 ms, x2, jitter 0.99), 5 attempts on 429/5xx",
            Strategy::AwsStandard => "AWS standard: 3 attempts, full jitter 1 s x2 to 20 s, 500-token retry quota",
            Strategy::AwsAdaptive => "AWS adaptive: standard plus a CUBIC client-side rate limiter",
            Strategy::GrpcA6 => "gRPC A6: 5 attempts, 0.1 s x2 to 1 s x U(0.8, 1.2), retry throttling 10/0.1, grpc-retry-pushback-ms",
            Strategy::CookbookParallel => "OpenAI cookbook parallel processor: RPM/TPM buckets at the true limits, 15 s pause after a rate limit, 5 attempts, no backoff",
            Strategy::AsyncOpenAi => "async-openai: 3 retries on 429 (not insufficient_quota), 5xx, connect; integer Retry-After, else 100 ms x2 to 8 s",
            Strategy::GovernorReqwestRetry => "governor Quota::per_minute (or the window's) at the true limits + reqwest-retry: 3 retries, U[0,1) x 1 s x2^n, Retry-After ignored",
            Strategy::Abide => "abide: the preset a user would pick for the dialect (BackoffRetry + ConcurrencyCap + QuotaClassifier), cost declared",
            Strategy::AbideRetryOnly => "abide without the cap: the preset's BackoffRetry + QuotaClassifier",
        }
    }

    /// The `AbideLayer` preset the `abide` strategies use against a server speaking
    /// `dialect`: the one a user would pick (`openai()`, `anthropic()`, `github()`,
    /// `grpc()`; `generic()` for every other dialect).
    pub fn abide_preset(dialect: crate::SimDialect) -> &'static str {
        abide::preset(dialect).1
    }

    /// True for the strategies that keep the state clients share when a scenario says
    /// `shared_state = true` (a [`ClientContext::shared_store`]): what one client learns,
    /// such as a permanent quota error, every client of the run knows.
    pub fn shares_state(self) -> bool {
        matches!(self, Strategy::Abide)
    }

    /// The strategy called `name`.
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Wraps `inner` (one client's connection to the API) in this strategy. The
    /// connection takes plain requests and the replayable ones abide's retry layer sends.
    pub fn client<S>(self, inner: S, ctx: &ClientContext) -> Client
    where
        S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
            + Service<Request<ReplayBody<SimBody>>, Response = Response<SimBody>, Error = BoxError>
            + Clone
            + Send
            + 'static,
        <S as Service<Request<SimBody>>>::Future: Send + 'static,
        <S as Service<Request<ReplayBody<SimBody>>>>::Future: Send + 'static,
    {
        match self {
            Strategy::None => BoxCloneService::new(inner),
            Strategy::Naive => BoxCloneService::new(Looping::new(inner, openai::Naive::new(ctx))),
            Strategy::OpenAiPython => {
                BoxCloneService::new(Looping::new(inner, openai::OpenAiPython::new(ctx)))
            }
            Strategy::TowerRetry => tower_retry::client(inner, ctx),
            Strategy::AwsStandard => {
                BoxCloneService::new(Looping::new(inner, aws::Aws::standard(ctx)))
            }
            Strategy::AwsAdaptive => {
                BoxCloneService::new(Looping::new(inner, aws::Aws::adaptive(ctx)))
            }
            Strategy::GrpcA6 => BoxCloneService::new(Looping::new(inner, grpc::GrpcA6::new(ctx))),
            Strategy::CookbookParallel => cookbook::client(inner, ctx),
            Strategy::AsyncOpenAi => {
                BoxCloneService::new(Looping::new(inner, async_openai::AsyncOpenAi))
            }
            Strategy::GovernorReqwestRetry => governor::client(inner, ctx),
            Strategy::Abide => abide::client(inner, ctx, true),
            Strategy::AbideRetryOnly => abide::client(inner, ctx, false),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a strategy knows about the client it builds.
#[derive(Clone, Debug)]
pub struct ClientContext {
    /// The client's index.
    pub client: u32,
    /// The scenario's seed; each client derives its own RNG from it.
    pub seed: u64,
    /// The run's start (tokio time).
    pub start: Instant,
    /// The wall-clock reading at `start`.
    pub epoch: SystemTime,
    /// The quota store all clients of the run share (`shared_state = true`, or a fleet's
    /// store), for the strategies that keep one.
    pub shared_store: Option<std::sync::Arc<dyn abide_cap::QuotaStore>>,
    /// The scenario's server, for the baselines whose users declare its limits to a static
    /// client-side limiter (they declare the true, enforced limits: their best case).
    pub server: ServerConfig,
}

impl ClientContext {
    /// A seeded RNG for this client and a purpose (`salt`), distinct per strategy part.
    pub(crate) fn rng(&self, salt: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(
            self.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(u64::from(self.client).wrapping_mul(0xbf58_476d_1ce4_e5b9))
                .wrapping_add(salt),
        )
    }

    /// A shared, seeded RNG.
    pub(crate) fn shared_rng(&self, salt: u64) -> Arc<Mutex<fastrand::Rng>> {
        Arc::new(Mutex::new(self.rng(salt)))
    }

    /// The client's wall clock.
    pub(crate) fn now_wall(&self) -> SystemTime {
        self.epoch + self.start.elapsed()
    }

    /// Seconds since the run's start (the clock the AWS limiters read).
    pub(crate) fn now_secs(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

/// Copies a request for another attempt (the body is `Bytes`-backed: cheap).
pub(crate) fn clone_request(req: &Request<SimBody>) -> Request<SimBody> {
    let mut r = Request::new(req.body().clone());
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    *r.extensions_mut() = req.extensions().clone();
    r
}

/// Fixtures shared by the strategies' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::looping::Answer;
    use super::{ClientContext, SimBody};
    use crate::model::ServerConfig;
    use bytes::Bytes;
    use http::{Response, StatusCode};
    use tokio::time::Instant;

    /// Client 0 of a run with seed 7 and the default server.
    pub(crate) fn ctx() -> ClientContext {
        ClientContext {
            client: 0,
            seed: 7,
            start: Instant::now(),
            epoch: crate::service::sim_epoch(),
            shared_store: None,
            server: ServerConfig::default(),
        }
    }

    /// An answer with this status and these headers and no body.
    pub(crate) fn answer(status: u16, headers: &[(&str, &str)]) -> Answer {
        answer_with_body(status, headers, "")
    }

    /// An answer with this status, headers and body.
    pub(crate) fn answer_with_body(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut res = Response::new(SimBody::new(Bytes::from(body.to_owned())));
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in headers {
            res.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Ok(res)
    }

    /// A refused connection, as the simulated outage returns it.
    pub(crate) fn refused() -> Answer {
        Err(crate::service::ConnectionRefused::new().into())
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;

    #[test]
    fn the_board_lists_every_strategy_once_by_its_contract_name() {
        let names: Vec<_> = Strategy::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "none",
                "naive",
                "openai-python",
                "tower-retry",
                "aws-standard",
                "aws-adaptive",
                "grpc-a6",
                "cookbook-parallel",
                "async-openai",
                "governor-reqwest-retry",
                "abide",
                "abide-retry-only",
            ]
        );
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
            let d = s.description();
            assert!(!d.is_empty() && !d.contains('\n'), "{s}: {d:?}");
        }
        assert_eq!(Strategy::from_name("cookbook"), None);
    }
}
