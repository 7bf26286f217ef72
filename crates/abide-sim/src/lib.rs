//! A simulated rate-limited API in virtual time, and the client strategies the
//! `abide scoreboard` compares on it.
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
    Decision, Outage, Outcome, Scope, ServerConfig, ServerModel, MAX_ENFORCE_FACTOR, REJECT_LATENCY,
};
pub use scenario::{
    Arrival, Planned, Scenario, ScenarioError, Workload, MAX_CLIENTS, MAX_CONCURRENCY,
    MAX_REQUESTS, MAX_TIME_LIMIT_S,
};
pub use service::{
    sim_epoch, ConnectionRefused, RequestTokens, ResponseFuture, SimServer, SIM_EPOCH_SECS,
    TOKENS_HEADER,
};
pub mod plot;
pub mod strategy;
pub use metrics::{best_first, deliverable, ideal_makespan, Row};
pub use run::{run, RunResult, Timeline, REQUEST_ID_HEADER};
