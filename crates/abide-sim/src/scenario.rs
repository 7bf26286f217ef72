//! Scenarios: a server and a workload, built in or loaded from TOML.
//!
//! The schema (every key but `name`, `server.dialect` and `workload.requests` has a
//! default; unknown keys are errors):
//!
//! ```toml
//! name = "openai-tier1"        # required
//! seed = 1                     # default 1
//! time_limit_s = 7200.0        # virtual-time cap on a run; default 7200
//!
//! [server]
//! dialect = "openai"           # required: ietf | ietf-draft07 | ietf-draft03 | x-ratelimit | openai | anthropic | github | grpc | retry-after-only | none
//! algorithm = "token-bucket"   # token-bucket (default; burst = one window's limit) | fixed-window | sliding-window
//! window_s = 60.0              # required when a per-window limit is set
//! requests_per_window = 500    # default 0 = no request limit
//! tokens_per_window = 0        # default 0 = no token limit; a request's cost is its tokens
//! retry_after = true           # send a wait with each 429 / overload; default true
//! latency_s = 0.2              # mean service time of an accepted request; default 0.2
//! latency_jitter_s = 0.0       # uniform +/- jitter; default 0
//! max_in_flight = 0            # server concurrency limit, answered with overload; default 0 = none
//! quota_requests = 0           # lifetime successes allowed, then permanent quota errors; default 0
//! enforce_factor = 1.0         # enforces limit x factor while advertising the plain limit
//! requests_per_day = 0         # a daily request limit replenished continuously (OpenAI/Groq RPD); 0 = none
//! tokens_per_day = 0           # the same for tokens (TPD); 0 = none
//! limits_on_429_only = false   # true: rate-limit headers only on 429 answers, none on successes
//! reorder_s = 0.0              # each request reaches the limiter up to this much later (uniform),
//!                              # so concurrent requests are admitted out of order; default 0
//! whole_second_clock = false   # true: resets and waits stated from a whole-second Date, the
//!                              # server's clock at a random fraction of a second
//! idempotency = false          # true: a repeat of a served Idempotency-Key gets its success
//!                              # again, unprocessed and uncharged
//!
//! [[server.outages]]           # zero or more
//! start_s = 30.0
//! duration_s = 15.0
//! status = 503                 # 500 | 502 | 503 | 504 | 529; 0 = connection refused
//!
//! [workload]
//! clients = 1                  # clients sharing one key (one quota); default 1
//! shared_state = false         # true: clients share one QuotaStore; default false
//! requests = 1000              # total logical requests over all clients; required
//! concurrency = 16             # caller tasks per client; default 16
//! arrival = "closed"           # closed (default) | poisson | burst
//! rate_per_s = 0.0             # poisson: mean arrivals per second over all clients
//! burst_every_s = 0.0          # burst: burst_size requests arrive together every burst_every_s
//! burst_size = 0
//! tokens_min = 0               # cost per request, uniform in [tokens_min, tokens_max]
//! tokens_max = 0
//! deadline_s = 0.0             # overall deadline per logical request; default 0 = none
//! oversized_share = 0.0        # share of requests costing more tokens than the whole limit
//!                              # (answered "Request too large" every time); needs a token limit
//! ```

use crate::dialect::SimDialect;
use crate::limiter::Algorithm;
use crate::model::{Outage, ServerConfig, MAX_ENFORCE_FACTOR};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// Caps on workload sizes, so that a typo cannot ask for a run that never ends.
pub const MAX_REQUESTS: u64 = 1_000_000;
/// The most clients a scenario may have.
pub const MAX_CLIENTS: u32 = 1_000;
/// The most caller tasks per client.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// The longest virtual run, in seconds (one week).
pub const MAX_TIME_LIMIT_S: f64 = 7.0 * 86_400.0;

/// A scenario file could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    source_name: String,
    message: String,
}

impl ScenarioError {
    fn new(source_name: &str, message: impl Into<String>) -> Self {
        ScenarioError {
            source_name: source_name.to_owned(),
            message: message.into(),
        }
    }

    /// The file (or built-in name) the error is about.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// What is wrong, naming the key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source_name, self.message.trim_end())
    }
}

impl std::error::Error for ScenarioError {}

/// How logical requests arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Arrival {
    /// All at once; each client's caller tasks take the next one as soon as they are free.
    Closed,
    /// A Poisson process with this mean rate over all clients, per second.
    Poisson {
        /// Mean arrivals per second.
        rate_per_s: f64,
    },
    /// `size` requests together every `every`, the first burst at 0.
    Burst {
        /// Time between bursts.
        every: Duration,
        /// Requests per burst.
        size: u64,
    },
}

/// The clients and what they ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Clients sharing one key.
    pub clients: u32,
    /// Clients share one quota store (the `abide` strategies); baselines have no such state.
    pub shared_state: bool,
    /// Logical requests over all clients.
    pub requests: u64,
    /// Caller tasks per client.
    pub concurrency: u32,
    /// How requests arrive.
    pub arrival: Arrival,
    /// Smallest cost in tokens.
    pub tokens_min: u64,
    /// Largest cost in tokens.
    pub tokens_max: u64,
    /// Deadline per logical request.
    pub deadline: Option<Duration>,
    /// Share of requests whose cost exceeds the whole token limit (they can never succeed).
    pub oversized_share: f64,
}

/// One logical request of a workload, as planned before the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planned {
    /// When it arrives, from the run's start.
    pub arrival: Duration,
    /// Which client sends it.
    pub client: u32,
    /// Its cost in tokens.
    pub tokens: u64,
    /// It costs more than the whole token limit: the server refuses it every time.
    pub oversized: bool,
}

/// A server and a workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The scenario's name.
    pub name: String,
    /// Seeds every random choice of a run (server jitter, arrivals, costs, client jitter).
    pub seed: u64,
    /// Virtual-time cap on a run.
    pub time_limit: Duration,
    /// The server.
    pub server: ServerConfig,
    /// The workload.
    pub workload: Workload,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: String,
    #[serde(default = "one")]
    seed: u64,
    #[serde(default = "default_time_limit")]
    time_limit_s: f64,
    server: FileServer,
    workload: FileWorkload,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    dialect: SimDialect,
    #[serde(default)]
    algorithm: FileAlgorithm,
    window_s: Option<f64>,
    #[serde(default)]
    requests_per_window: u64,
    #[serde(default)]
    tokens_per_window: u64,
    #[serde(default = "yes")]
    retry_after: bool,
    #[serde(default = "default_latency")]
    latency_s: f64,
    #[serde(default)]
    latency_jitter_s: f64,
    #[serde(default)]
    max_in_flight: u32,
    #[serde(default)]
    quota_requests: u64,
    #[serde(default = "one_f64")]
    enforce_factor: f64,
    #[serde(default)]
    requests_per_day: u64,
    #[serde(default)]
    tokens_per_day: u64,
    #[serde(default)]
    limits_on_429_only: bool,
    #[serde(default)]
    reorder_s: f64,
    #[serde(default)]
    whole_second_clock: bool,
    #[serde(default)]
    idempotency: bool,
    #[serde(default)]
    outages: Vec<FileOutage>,
}

#[derive(Deserialize, Serialize, Default, Clone, Copy)]
enum FileAlgorithm {
    #[default]
    #[serde(rename = "token-bucket")]
    TokenBucket,
    #[serde(rename = "fixed-window")]
    FixedWindow,
    #[serde(rename = "sliding-window")]
    SlidingWindow,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileOutage {
    start_s: f64,
    duration_s: f64,
    status: u16,
}

#[derive(Deserialize, Serialize, Default, Clone, Copy)]
enum FileArrival {
    #[default]
    #[serde(rename = "closed")]
    Closed,
    #[serde(rename = "poisson")]
    Poisson,
    #[serde(rename = "burst")]
    Burst,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileWorkload {
    #[serde(default = "one_u32")]
    clients: u32,
    #[serde(default)]
    shared_state: bool,
    requests: u64,
    #[serde(default = "default_concurrency")]
    concurrency: u32,
    #[serde(default)]
    arrival: FileArrival,
    #[serde(default)]
    rate_per_s: f64,
    #[serde(default)]
    burst_every_s: f64,
    #[serde(default)]
    burst_size: u64,
    #[serde(default)]
    tokens_min: u64,
    #[serde(default)]
    tokens_max: u64,
    #[serde(default)]
    deadline_s: f64,
    #[serde(default)]
    oversized_share: f64,
}

fn one() -> u64 {
    1
}
fn one_u32() -> u32 {
    1
}
fn one_f64() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_time_limit() -> f64 {
    7200.0
}
fn default_latency() -> f64 {
    0.2
}
fn default_concurrency() -> u32 {
    16
}

/// Checks that a number of seconds is finite and in `[0, max]`.
fn seconds(src: &str, key: &str, value: f64, max: f64) -> Result<Duration, ScenarioError> {
    if !value.is_finite() || value < 0.0 {
        return Err(ScenarioError::new(
            src,
            format!("key `{key}`: {value} is not a number of seconds >= 0"),
        ));
    }
    if value > max {
        return Err(ScenarioError::new(
            src,
            format!("key `{key}`: {value} s is more than the maximum {max} s"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

impl Scenario {
    /// Parses a scenario from TOML text; `source_name` (a file name) prefixes every error.
    ///
    /// # Errors
    /// A [`ScenarioError`] naming the source and the key: TOML syntax, an unknown key, a
    /// missing required key, a value of the wrong type or out of range.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, ScenarioError> {
        let file: FileScenario =
            toml::from_str(text).map_err(|e| ScenarioError::new(source_name, e.to_string()))?;
        Self::validate(source_name, file)
    }

    /// Loads a scenario file.
    ///
    /// # Errors
    /// A [`ScenarioError`] naming the file when it cannot be read or is not a valid
    /// scenario (see [`from_toml`](Self::from_toml)).
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::new(&name, format!("cannot read: {e}")))?;
        Self::from_toml(&name, &text)
    }

    fn validate(src: &str, f: FileScenario) -> Result<Self, ScenarioError> {
        let s = &f.server;
        let w = &f.workload;
        let err = |msg: String| ScenarioError::new(src, msg);
        if f.name.trim().is_empty() {
            return Err(err("key `name`: must not be empty".into()));
        }
        let time_limit = seconds(src, "time_limit_s", f.time_limit_s, MAX_TIME_LIMIT_S)?;
        if time_limit.is_zero() {
            return Err(err("key `time_limit_s`: must be > 0".into()));
        }
        let has_limit = s.requests_per_window > 0 || s.tokens_per_window > 0;
        let window = match s.window_s {
            Some(v) => {
                let d = seconds(src, "server.window_s", v, MAX_TIME_LIMIT_S)?;
                if d.is_zero() {
                    return Err(err("key `server.window_s`: must be > 0".into()));
                }
                d
            }
            None if has_limit => {
                return Err(err(
                    "missing key `server.window_s` (required when requests_per_window or tokens_per_window is set)".into(),
                ))
            }
            None => Duration::from_secs(60),
        };
        let latency = seconds(src, "server.latency_s", s.latency_s, 3600.0)?;
        let latency_jitter = seconds(src, "server.latency_jitter_s", s.latency_jitter_s, 3600.0)?;
        let reorder = seconds(src, "server.reorder_s", s.reorder_s, 3600.0)?;
        if !s.enforce_factor.is_finite() || s.enforce_factor <= 0.0 {
            return Err(err(format!(
                "key `server.enforce_factor`: {} must be > 0",
                s.enforce_factor
            )));
        }
        let mut outages = Vec::with_capacity(s.outages.len());
        for (i, o) in s.outages.iter().enumerate() {
            let status = match o.status {
                0 => None,
                500 | 502 | 503 | 504 | 529 => StatusCode::from_u16(o.status).ok(),
                other => {
                    return Err(err(format!(
                    "key `server.outages[{i}].status`: {other} is not one of 500, 502, 503, 504, 529, 0"
                )))
                }
            };
            outages.push(Outage {
                start: seconds(
                    src,
                    &format!("server.outages[{i}].start_s"),
                    o.start_s,
                    MAX_TIME_LIMIT_S,
                )?,
                duration: seconds(
                    src,
                    &format!("server.outages[{i}].duration_s"),
                    o.duration_s,
                    MAX_TIME_LIMIT_S,
                )?,
                status,
            });
        }
        if w.requests == 0 || w.requests > MAX_REQUESTS {
            return Err(err(format!(
                "key `workload.requests`: {} is not in 1..={MAX_REQUESTS}",
                w.requests
            )));
        }
        if w.clients == 0 || w.clients > MAX_CLIENTS {
            return Err(err(format!(
                "key `workload.clients`: {} is not in 1..={MAX_CLIENTS}",
                w.clients
            )));
        }
        if w.concurrency == 0 || w.concurrency > MAX_CONCURRENCY {
            return Err(err(format!(
                "key `workload.concurrency`: {} is not in 1..={MAX_CONCURRENCY}",
                w.concurrency
            )));
        }
        if w.tokens_min > w.tokens_max {
            return Err(err(format!(
                "key `workload.tokens_min`: {} is more than tokens_max {}",
                w.tokens_min, w.tokens_max
            )));
        }
        let arrival = match w.arrival {
            FileArrival::Closed => Arrival::Closed,
            FileArrival::Poisson => {
                if !w.rate_per_s.is_finite() || w.rate_per_s <= 0.0 {
                    return Err(err(format!(
                        "key `workload.rate_per_s`: {} must be > 0 for poisson arrivals",
                        w.rate_per_s
                    )));
                }
                Arrival::Poisson {
                    rate_per_s: w.rate_per_s,
                }
            }
            FileArrival::Burst => {
                let every = seconds(
                    src,
                    "workload.burst_every_s",
                    w.burst_every_s,
                    MAX_TIME_LIMIT_S,
                )?;
                if every.is_zero() || w.burst_size == 0 {
                    return Err(err(
                        "keys `workload.burst_every_s` and `workload.burst_size` must be > 0 for burst arrivals".into(),
                    ));
                }
                Arrival::Burst {
                    every,
                    size: w.burst_size,
                }
            }
        };
        let deadline = seconds(src, "workload.deadline_s", w.deadline_s, MAX_TIME_LIMIT_S)?;
        if !(0.0..=1.0).contains(&w.oversized_share) {
            return Err(err(format!(
                "key `workload.oversized_share`: {} is not a share in [0, 1]",
                w.oversized_share
            )));
        }
        if w.oversized_share > 0.0 && s.tokens_per_window == 0 && s.tokens_per_day == 0 {
            return Err(err(
                "key `workload.oversized_share`: needs a token limit (server.tokens_per_window or server.tokens_per_day)".into(),
            ));
        }
        Ok(Scenario {
            name: f.name.clone(),
            seed: f.seed,
            time_limit,
            server: ServerConfig {
                dialect: s.dialect,
                algorithm: match s.algorithm {
                    FileAlgorithm::TokenBucket => Algorithm::TokenBucket,
                    FileAlgorithm::FixedWindow => Algorithm::FixedWindow,
                    FileAlgorithm::SlidingWindow => Algorithm::SlidingWindow,
                },
                window,
                requests_per_window: s.requests_per_window,
                tokens_per_window: s.tokens_per_window,
                retry_after: s.retry_after,
                latency,
                latency_jitter,
                max_in_flight: s.max_in_flight,
                quota_requests: s.quota_requests,
                enforce_factor: s.enforce_factor.min(MAX_ENFORCE_FACTOR),
                outages,
                requests_per_day: s.requests_per_day,
                tokens_per_day: s.tokens_per_day,
                limits_on_429_only: s.limits_on_429_only,
                reorder,
                whole_second_clock: s.whole_second_clock,
                idempotency: s.idempotency,
            },
            workload: Workload {
                clients: w.clients,
                shared_state: w.shared_state,
                requests: w.requests,
                concurrency: w.concurrency,
                arrival,
                tokens_min: w.tokens_min,
                tokens_max: w.tokens_max,
                deadline: (!deadline.is_zero()).then_some(deadline),
                oversized_share: w.oversized_share,
            },
        })
    }

    /// The advertised token limit an oversized request exceeds: the window's, else the
    /// day's (0 when the scenario has no token limit).
    pub fn token_limit(&self) -> u64 {
        match (self.server.tokens_per_window, self.server.tokens_per_day) {
            (0, day) => day,
            (window, _) => window,
        }
    }

    /// The scenario with time compressed `factor` times (`abide serve --time-scale`): every
    /// window, service time, outage, upstream delay, burst interval, deadline and the time
    /// limit divided by `factor`, Poisson rates multiplied by it; limits per window stay,
    /// so the quota is `factor` times faster in real time. Daily limits keep their day.
    /// A factor that is not finite and positive leaves the scenario as it is.
    pub fn time_scaled(&self, factor: f64) -> Scenario {
        if !factor.is_finite() || factor <= 0.0 || factor == 1.0 {
            return self.clone();
        }
        let scale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() / factor);
        let mut s = self.clone();
        let srv = &mut s.server;
        srv.window = scale(srv.window);
        srv.latency = scale(srv.latency);
        srv.latency_jitter = scale(srv.latency_jitter);
        srv.reorder = scale(srv.reorder);
        for o in &mut srv.outages {
            o.start = scale(o.start);
            o.duration = scale(o.duration);
        }
        let w = &mut s.workload;
        w.deadline = w.deadline.map(scale);
        w.arrival = match w.arrival {
            Arrival::Poisson { rate_per_s } => Arrival::Poisson {
                rate_per_s: rate_per_s * factor,
            },
            Arrival::Burst { every, size } => Arrival::Burst {
                every: scale(every),
                size,
            },
            other => other,
        };
        s.time_limit = scale(s.time_limit);
        s
    }

    /// The scenario in the file schema: [`from_toml`](Self::from_toml) of the text gives
    /// back this scenario (every key is written, defaults included).
    pub fn to_toml(&self) -> String {
        let s = &self.server;
        let w = &self.workload;
        let secs = |d: Duration| d.as_secs_f64();
        let (arrival, rate_per_s, burst_every_s, burst_size) = match w.arrival {
            Arrival::Closed => (FileArrival::Closed, 0.0, 0.0, 0),
            Arrival::Poisson { rate_per_s } => (FileArrival::Poisson, rate_per_s, 0.0, 0),
            Arrival::Burst { every, size } => (FileArrival::Burst, 0.0, secs(every), size),
        };
        let file = FileScenario {
            name: self.name.clone(),
            seed: self.seed,
            time_limit_s: secs(self.time_limit),
            server: FileServer {
                dialect: s.dialect,
                algorithm: match s.algorithm {
                    Algorithm::FixedWindow => FileAlgorithm::FixedWindow,
                    Algorithm::SlidingWindow => FileAlgorithm::SlidingWindow,
                    _ => FileAlgorithm::TokenBucket,
                },
                window_s: Some(secs(s.window)),
                requests_per_window: s.requests_per_window,
                tokens_per_window: s.tokens_per_window,
                retry_after: s.retry_after,
                latency_s: secs(s.latency),
                latency_jitter_s: secs(s.latency_jitter),
                max_in_flight: s.max_in_flight,
                quota_requests: s.quota_requests,
                enforce_factor: s.enforce_factor,
                requests_per_day: s.requests_per_day,
                tokens_per_day: s.tokens_per_day,
                limits_on_429_only: s.limits_on_429_only,
                reorder_s: secs(s.reorder),
                whole_second_clock: s.whole_second_clock,
                idempotency: s.idempotency,
                outages: s
                    .outages
                    .iter()
                    .map(|o| FileOutage {
                        start_s: secs(o.start),
                        duration_s: secs(o.duration),
                        status: o.status.map_or(0, |c| c.as_u16()),
                    })
                    .collect(),
            },
            workload: FileWorkload {
                clients: w.clients,
                shared_state: w.shared_state,
                requests: w.requests,
                concurrency: w.concurrency,
                arrival,
                rate_per_s,
                burst_every_s,
                burst_size,
                tokens_min: w.tokens_min,
                tokens_max: w.tokens_max,
                deadline_s: w.deadline.map_or(0.0, secs),
                oversized_share: w.oversized_share,
            },
        };
        // Every field is a plain number, string, bool or table: serialization cannot fail.
        toml::to_string(&file).unwrap_or_default()
    }

    /// The built-in scenario called `name`.
    pub fn builtin(name: &str) -> Option<Scenario> {
        BUILTINS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Self::from_toml(n, text).expect("built-in scenarios are valid"))
    }

    /// Every built-in scenario, in board order.
    pub fn builtins() -> Vec<Scenario> {
        BUILTINS
            .iter()
            .map(|(n, text)| Self::from_toml(n, text).expect("built-in scenarios are valid"))
            .collect()
    }

    /// The names of the built-in scenarios, in board order.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTINS.iter().map(|(n, _)| *n)
    }

    /// The workload's logical requests: arrival time, client and cost, from the seed.
    /// Requests go to clients round-robin.
    pub fn plan(&self) -> Vec<Planned> {
        let w = &self.workload;
        let mut rng = fastrand::Rng::with_seed(self.seed ^ 0x0005_eed0_fa11_1e55);
        let mut t = 0.0f64;
        (0..w.requests)
            .map(|i| {
                let arrival = match w.arrival {
                    Arrival::Closed => Duration::ZERO,
                    Arrival::Poisson { rate_per_s } => {
                        if i > 0 {
                            // Exponential inter-arrival times; 1 - f64() is in (0, 1].
                            t += -(1.0 - rng.f64()).ln() / rate_per_s;
                        }
                        Duration::from_secs_f64(t)
                    }
                    Arrival::Burst { every, size } => {
                        every.saturating_mul(u32::try_from(i / size).unwrap_or(u32::MAX))
                    }
                };
                let mut tokens = if w.tokens_max > 0 {
                    rng.u64(w.tokens_min..=w.tokens_max)
                } else {
                    0
                };
                // Drawn only when asked for, so plans without oversized requests are
                // the same as before the key existed.
                let oversized = w.oversized_share > 0.0 && rng.f64() < w.oversized_share;
                if oversized {
                    // Between just over the limit and three times it.
                    let limit = self.token_limit();
                    tokens = rng.u64(limit + 1..=limit.saturating_mul(3).max(limit + 1));
                }
                Planned {
                    arrival,
                    client: u32::try_from(i % u64::from(w.clients)).unwrap_or(0),
                    tokens,
                    oversized,
                }
            })
            .collect()
    }
}

/// The built-in scenarios, written in the file schema so that they and files go through
/// the same loader.
const BUILTINS: [(&str, &str); 18] = [
    (
        "openai-rpm",
        r#"name = "openai-rpm"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 500
latency_s = 0.5
latency_jitter_s = 0.2
[workload]
requests = 1500
concurrency = 32
"#,
    ),
    (
        "openai-tpm",
        r#"name = "openai-tpm"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 500
tokens_per_window = 90000
latency_s = 1.0
latency_jitter_s = 0.5
[workload]
requests = 400
concurrency = 16
tokens_min = 200
tokens_max = 1000
"#,
    ),
    (
        "ietf-policy",
        r#"name = "ietf-policy"
[server]
dialect = "ietf"
algorithm = "fixed-window"
window_s = 10.0
requests_per_window = 100
latency_s = 0.2
[workload]
requests = 1000
concurrency = 16
"#,
    ),
    (
        "github-hourly",
        r#"name = "github-hourly"
[server]
dialect = "github"
algorithm = "fixed-window"
window_s = 3600.0
requests_per_window = 300
latency_s = 0.3
[workload]
requests = 400
concurrency = 8
"#,
    ),
    (
        "retry-after-only",
        r#"name = "retry-after-only"
[server]
dialect = "retry-after-only"
window_s = 60.0
requests_per_window = 120
latency_s = 0.3
[workload]
requests = 400
concurrency = 16
"#,
    ),
    (
        "no-headers",
        r#"name = "no-headers"
[server]
dialect = "none"
window_s = 60.0
requests_per_window = 120
latency_s = 0.3
[workload]
requests = 300
concurrency = 16
"#,
    ),
    (
        "outage",
        r#"name = "outage"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 600
latency_s = 0.2
[[server.outages]]
start_s = 20.0
duration_s = 20.0
status = 503
[[server.outages]]
start_s = 60.0
duration_s = 10.0
status = 0
[workload]
requests = 1200
concurrency = 16
"#,
    ),
    (
        "quota-exhausted",
        r#"name = "quota-exhausted"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 600
quota_requests = 300
latency_s = 0.2
[workload]
requests = 500
concurrency = 16
"#,
    ),
    (
        "overload",
        r#"name = "overload"
[server]
dialect = "anthropic"
max_in_flight = 8
latency_s = 1.0
latency_jitter_s = 0.3
[workload]
requests = 400
concurrency = 32
"#,
    ),
    (
        "shared-key-4",
        r#"name = "shared-key-4"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 300
latency_s = 0.3
[workload]
clients = 4
requests = 1000
concurrency = 8
"#,
    ),
    (
        "fleet-8-shared",
        r#"name = "fleet-8-shared"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 600
latency_s = 0.3
[workload]
clients = 8
shared_state = true
requests = 1600
concurrency = 8
"#,
    ),
    (
        "poisson-under-capacity",
        r#"name = "poisson-under-capacity"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 600
latency_s = 0.5
latency_jitter_s = 0.2
[workload]
requests = 600
concurrency = 16
arrival = "poisson"
rate_per_s = 6.0
"#,
    ),
    (
        "bursty",
        r#"name = "bursty"
[server]
dialect = "x-ratelimit"
algorithm = "sliding-window"
window_s = 10.0
requests_per_window = 50
latency_s = 0.2
[workload]
requests = 500
concurrency = 100
arrival = "burst"
burst_every_s = 20.0
burst_size = 100
deadline_s = 60.0
"#,
    ),
    (
        "grpc-pushback",
        r#"name = "grpc-pushback"
[server]
dialect = "grpc"
window_s = 1.0
requests_per_window = 20
latency_s = 0.1
[workload]
requests = 600
concurrency = 16
"#,
    ),
    (
        "lying-headers",
        r#"name = "lying-headers"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 600
enforce_factor = 0.8
latency_s = 0.2
[workload]
requests = 1200
concurrency = 16
"#,
    ),
    (
        "oversized-mixed",
        r#"name = "oversized-mixed"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 500
tokens_per_window = 60000
latency_s = 0.8
latency_jitter_s = 0.3
[workload]
requests = 600
concurrency = 16
tokens_min = 100
tokens_max = 800
oversized_share = 0.02
"#,
    ),
    (
        "openai-daily",
        r#"name = "openai-daily"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 3000
requests_per_day = 10000
latency_s = 0.3
latency_jitter_s = 0.1
[workload]
requests = 10200
concurrency = 32
"#,
    ),
    (
        "gateway-flaps",
        r#"name = "gateway-flaps"
[server]
dialect = "openai"
window_s = 60.0
requests_per_window = 1200
latency_s = 0.4
latency_jitter_s = 0.1
[[server.outages]]
start_s = 10.0
duration_s = 2.0
status = 502
[[server.outages]]
start_s = 25.0
duration_s = 3.0
status = 504
[[server.outages]]
start_s = 40.0
duration_s = 30.0
status = 503
[[server.outages]]
start_s = 90.0
duration_s = 2.0
status = 502
[[server.outages]]
start_s = 100.0
duration_s = 1.5
status = 504
[workload]
requests = 2000
concurrency = 24
"#,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[server]
dialect = "openai"
[workload]
requests = 10
"#;

    #[test]
    fn every_builtin_loads_under_its_own_name() {
        let names: Vec<_> = Scenario::builtin_names().collect();
        assert_eq!(
            names,
            [
                "openai-rpm",
                "openai-tpm",
                "ietf-policy",
                "github-hourly",
                "retry-after-only",
                "no-headers",
                "outage",
                "quota-exhausted",
                "overload",
                "shared-key-4",
                "fleet-8-shared",
                "poisson-under-capacity",
                "bursty",
                "grpc-pushback",
                "lying-headers",
                "oversized-mixed",
                "openai-daily",
                "gateway-flaps",
            ]
        );
        for s in Scenario::builtins() {
            assert_eq!(Scenario::builtin(&s.name).as_ref(), Some(&s));
        }
    }

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let s = Scenario::from_toml("t.toml", MINIMAL).unwrap();
        assert_eq!(s.seed, 1);
        assert_eq!(s.time_limit, Duration::from_secs(7200));
        assert_eq!(s.server.algorithm, Algorithm::TokenBucket);
        assert!(s.server.retry_after);
        assert_eq!(s.server.latency, Duration::from_millis(200));
        assert_eq!(s.server.enforce_factor, 1.0);
        assert_eq!(s.workload.clients, 1);
        assert_eq!(s.workload.concurrency, 16);
        assert_eq!(s.workload.arrival, Arrival::Closed);
        assert_eq!(s.workload.deadline, None);
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file_and_the_key() {
        let text = MINIMAL.replace("requests = 10", "requests = 10\nrequets_per_s = 3");
        let e = Scenario::from_toml("bad.toml", &text).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("bad.toml: "), "{msg}");
        assert!(msg.contains("requets_per_s"), "{msg}");
    }

    #[test]
    fn a_missing_required_key_is_an_error_naming_the_file_and_the_key() {
        let text = MINIMAL.replace("requests = 10", "clients = 2");
        let msg = Scenario::from_toml("bad.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("bad.toml: ") && msg.contains("requests"),
            "{msg}"
        );

        let text = MINIMAL.replace(
            "dialect = \"openai\"",
            "requests_per_window = 5\ndialect = \"openai\"",
        );
        let msg = Scenario::from_toml("bad.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("server.window_s"), "{msg}");

        let text = MINIMAL.replace("dialect = \"openai\"\n", "");
        let msg = Scenario::from_toml("bad.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("dialect"), "{msg}");
    }

    #[test]
    fn out_of_range_values_are_errors_naming_the_key() {
        for (from, to, key) in [
            ("requests = 10", "requests = 0", "workload.requests"),
            ("requests = 10", "requests = 10\nconcurrency = 0", "workload.concurrency"),
            ("dialect = \"openai\"", "dialect = \"openai\"\nlatency_s = -1.0", "server.latency_s"),
            (
                "dialect = \"openai\"",
                "dialect = \"openai\"\n[[server.outages]]\nstart_s = 1.0\nduration_s = 1.0\nstatus = 404",
                "server.outages[0].status",
            ),
            ("requests = 10", "requests = 10\narrival = \"poisson\"", "workload.rate_per_s"),
        ] {
            let text = MINIMAL.replace(from, to);
            let msg = Scenario::from_toml("f.toml", &text).unwrap_err().to_string();
            assert!(msg.contains(key), "{key}: {msg}");
        }
    }

    #[test]
    fn an_unknown_dialect_is_an_error() {
        let text = MINIMAL.replace("\"openai\"", "\"openia\"");
        let msg = Scenario::from_toml("f.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("openia"), "{msg}");
    }

    #[test]
    fn plans_are_deterministic_and_follow_the_arrival_process() {
        let s = Scenario::builtin("bursty").unwrap();
        let plan = s.plan();
        assert_eq!(plan, s.plan());
        assert_eq!(plan.len(), 500);
        assert_eq!(plan[99].arrival, Duration::ZERO);
        assert_eq!(plan[100].arrival, Duration::from_secs(20));
        assert_eq!(plan[499].arrival, Duration::from_secs(80));

        let p = Scenario::builtin("poisson-under-capacity").unwrap().plan();
        let last = p.last().unwrap().arrival.as_secs_f64();
        // 600 arrivals at 6/s: about 100 s (the sum of 599 exponentials; 5 sigma is ~20 s).
        assert!((80.0..120.0).contains(&last), "{last}");
        assert!(p.windows(2).all(|w| w[0].arrival <= w[1].arrival));

        let t = Scenario::builtin("openai-tpm").unwrap().plan();
        assert!(t.iter().all(|r| (200..=1000).contains(&r.tokens)));
        let clients = Scenario::builtin("shared-key-4").unwrap().plan();
        assert_eq!(clients[5].client, 1);
    }
}
