//! The client strategies the scoreboard compares: what users run today, each with its
//! library's defaults, and abide's own layers.
//!
//! Every strategy wraps the same inner service (the simulated API seen through one client's
//! connection) and returns a [`Client`]. Constants cite the source they were read from.

mod abide;
mod baselines;
mod tower_retry;

use crate::dialect::grpc_code;
use abide_retry::ReplayBody;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{BoxError, Service};

pub(crate) use baselines::Looping;

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
    /// `stop_after_attempt(6)`, every error retried, headers ignored.
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
    /// abide's layers with default configuration, cost declared:
    /// `BackoffRetry -> ConcurrencyCap -> QuotaClassifier`.
    Abide,
    /// abide's classifier and retry layers only, to show what the cap adds.
    AbideRetryOnly,
}

impl Strategy {
    /// Every strategy, in board order.
    pub const ALL: [Strategy; 9] = [
        Strategy::None,
        Strategy::Naive,
        Strategy::OpenAiPython,
        Strategy::TowerRetry,
        Strategy::AwsStandard,
        Strategy::AwsAdaptive,
        Strategy::GrpcA6,
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
            Strategy::Abide => "abide",
            Strategy::AbideRetryOnly => "abide-retry-only",
        }
    }

    /// One line on what the strategy is.
    pub fn description(self) -> &'static str {
        match self {
            Strategy::None => "one attempt, no retry",
            Strategy::Naive => "OpenAI cookbook: tenacity random exponential 1..60 s, 6 attempts, headers ignored",
            Strategy::OpenAiPython => "openai-python defaults: 2 retries, 0.5 s doubling to 8 s, honours retry-after(-ms) up to 60 s",
            Strategy::TowerRetry => "tower::retry with ExponentialBackoffMaker defaults (50 ms, x2, jitter 0.99), 5 attempts on 429/5xx",
            Strategy::AwsStandard => "AWS standard: 3 attempts, full jitter 1 s x2 to 20 s, 500-token retry quota",
            Strategy::AwsAdaptive => "AWS adaptive: standard plus a CUBIC client-side rate limiter",
            Strategy::GrpcA6 => "gRPC A6: 5 attempts, 0.1 s x2 to 1 s, retry throttling 10/0.1, grpc-retry-pushback-ms",
            Strategy::Abide => "abide: BackoffRetry + ConcurrencyCap + QuotaClassifier, defaults, cost declared",
            Strategy::AbideRetryOnly => "abide without the cap: BackoffRetry + QuotaClassifier, defaults",
        }
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
            Strategy::Naive => {
                BoxCloneService::new(Looping::new(inner, baselines::Naive::new(ctx)))
            }
            Strategy::OpenAiPython => {
                BoxCloneService::new(Looping::new(inner, baselines::OpenAiPython::new(ctx)))
            }
            Strategy::TowerRetry => tower_retry::client(inner, ctx),
            Strategy::AwsStandard => {
                BoxCloneService::new(Looping::new(inner, baselines::Aws::standard(ctx)))
            }
            Strategy::AwsAdaptive => {
                BoxCloneService::new(Looping::new(inner, baselines::Aws::adaptive(ctx)))
            }
            Strategy::GrpcA6 => {
                BoxCloneService::new(Looping::new(inner, baselines::GrpcA6::new(ctx)))
            }
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
    /// The quota store all clients of the run share (`shared_state = true`), for the
    /// strategies that keep one.
    pub shared_store: Option<abide_cap::LocalStore>,
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

/// The `grpc-status` of an answer, when it has one.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The HTTP status an HTTP-only client library effectively sees. A gRPC answer's
/// non-OK `grpc-status` maps as grpc-gateway's `HTTPStatusFromCode` does
/// (grpc-ecosystem/grpc-gateway `runtime/errors.go`): `RESOURCE_EXHAUSTED` -> 429,
/// `UNAVAILABLE` -> 503, anything else -> 500.
pub(crate) fn effective_status(res: &Response<SimBody>) -> StatusCode {
    match grpc_status(res.headers()) {
        Some(grpc_code::OK) | None => res.status(),
        Some(grpc_code::RESOURCE_EXHAUSTED) => StatusCode::TOO_MANY_REQUESTS,
        Some(grpc_code::UNAVAILABLE) => StatusCode::SERVICE_UNAVAILABLE,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// True when an answer is a success for the caller: 2xx and, on gRPC, status OK.
pub fn is_success(res: &Response<SimBody>) -> bool {
    effective_status(res).is_success()
}

/// `s` seconds as a wait: NaN and negative values are no wait, absurd ones are capped
/// (`Duration::from_secs_f64` would panic on them).
pub(crate) fn duration_secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(1e9))
    } else {
        Duration::ZERO
    }
}
