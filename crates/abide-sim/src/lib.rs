//! A simulated rate-limited API in virtual time, and the client strategies the
//! `abide scoreboard` compares on it.
//!
//! ```
//! use abide_sim::strategy::Strategy;
//! use abide_sim::{run, Scenario};
//!
//! // A scenario file (or a built-in: `Scenario::builtin("openai-rpm")`).
//! let scenario = Scenario::from_toml("tiny.toml", r#"
//!     name = "tiny"
//!     [server]
//!     dialect = "openai"
//!     window_s = 10.0
//!     requests_per_window = 20
//!     [workload]
//!     requests = 50
//! "#).unwrap();
//!
//! // Fifty requests against 20 per 10 s, in milliseconds of real time.
//! let result = run(&scenario, Strategy::OpenAiPython).unwrap();
//! let row = &result.row;
//! assert_eq!(row.succeeded + row.failed_permanent + row.failed_client + row.timed_out + row.lost, 50);
//! // The bound: 30 requests after the burst at 2 per second, plus the 0.2 s service time.
//! assert_eq!(row.ideal_makespan_s, 15.2);
//! ```
//!
//! # The server model
//!
//! [`ServerModel`] decides each request's fate from an injected `now`: outages, the
//! lifetime quota, the concurrency limit, then request and token limits per window
//! ([`Algorithm`]: token bucket, fixed or sliding window), enforcing `limit x
//! enforce_factor` while advertising `limit`. [`SimServer`] is the model as a
//! `tower::Service<http::Request<B>>` on `tokio::time`: virtual under a paused clock, real
//! otherwise (for serving it over HTTP). Answers are what the chosen [`SimDialect`] sends:
//! rate-limit headers rendered with [`abide_headers::render`], the vendor's 429 and quota
//! bodies, 529 overload, gRPC status and `grpc-retry-pushback-ms`. Each answer carries its
//! [`Outcome`] in the response extensions.
//!
//! # Request cost
//!
//! A request's cost in tokens comes from its [`RequestTokens`] extension, else from the
//! [`TOKENS_HEADER`] (`x-sim-tokens`) header, else it is 0. The workload driver sets both;
//! the `abide` strategies also declare it to the cap as `abide_cap::Cost`.
//!
//! # Runs
//!
//! [`run`] plays a [`Scenario`]'s workload through one [`strategy::Strategy`] per client on
//! a fresh current-thread runtime with a paused clock and returns a [`Row`] (the
//! scoreboard's JSON object) and a [`Timeline`]. [`ideal_makespan`] is the analytic lower
//! bound the row is compared with.
#![forbid(unsafe_code)]

mod dialect;
mod limiter;
mod metrics;
mod model;
mod run;
mod scenario;
mod service;

pub use dialect::SimDialect;
pub use limiter::Algorithm;
pub use model::{
    service_times, upstream_delays, Decision, Outage, Outcome, Scope, ServerConfig, ServerModel,
    DAY, MAX_ENFORCE_FACTOR, REJECT_LATENCY,
};
pub use scenario::{
    Arrival, Planned, Scenario, ScenarioError, Workload, MAX_CLIENTS, MAX_CONCURRENCY,
    MAX_REQUESTS, MAX_TIME_LIMIT_S,
};
pub use service::{
    sim_epoch, ConnectionRefused, RequestTokens, ResponseFuture, SimServer, SIM_EPOCH_SECS,
    TOKENS_HEADER,
};
pub mod http;
pub mod plot;
pub mod random;
pub mod strategy;
pub use metrics::{best_first, deliverable, ideal_makespan, rank_cmp, Row};
pub use run::{
    fleet_row, run, run_over_http, run_part_over_http, FleetPart, RunResult, Tally, Timeline,
    REQUEST_ID_HEADER,
};
