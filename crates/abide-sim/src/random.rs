//! Random scenarios: draws from the whole space the scenario schema expresses, so that no
//! strategy can be fitted to a fixed board (`abide scoreboard --random N`).
//!
//! Draw `i` of seed `s` is called `random-<s>-<i>` and depends on nothing but `(s, i)`.
//! Each key is drawn independently from the distribution below (log-uniform = uniform in
//! the logarithm, so every order of magnitude is as likely), then the workload is sized so
//! that the [ideal makespan](crate::ideal_makespan) lies between 9 s and 2 h 12 min (10 s
//! to 2 h, give or take 10%); a draw that cannot be sized so (the quota is too fast for
//! 4,000 requests to last 10 s, or a daily limit stretches it past 2 h) is drawn again from
//! the next values of the same RNG.
//!
//! | key | distribution |
//! |---|---|
//! | `server.dialect` | uniform over all ten dialects |
//! | `server.algorithm` | uniform over token bucket, fixed window, sliding window |
//! | `server.window_s` | uniform over 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600 |
//! | limits | 45% requests only, 30% requests and tokens, 10% tokens only, 15% neither (concurrency-bound) |
//! | `server.requests_per_window` | log-uniform 3 ..= 5,000 |
//! | `server.tokens_per_window` | log-uniform 1,000 ..= 2,000,000 |
//! | `workload.tokens_min`, `tokens_max` | mean cost = the token limit / log-uniform 2 ..= 1,000; min 0.2–1 x mean, max 1–2 x mean, at most half the enforced limit; when there is no token limit, 40% declare costs anyway |
//! | `workload.oversized_share` | with a token limit, 20%: uniform 0.005 ..= 0.05 |
//! | `server.latency_s` | log-uniform 0.01 ..= 3 s; `latency_jitter_s` 50% 0, else uniform 0 ..= 0.5 x latency |
//! | `server.max_in_flight` | 40% of concurrency-bound draws and 10% of the others: uniform 1 ..= all callers |
//! | `server.enforce_factor` | 70% 1.0, else uniform 0.5 ..= 1.0 |
//! | `server.retry_after` | 85% true |
//! | `server.limits_on_429_only` | 15% true |
//! | `server.requests_per_day` | 12%: sized to bind, the last requests waiting on its continuous refill for 30–100% of the target makespan |
//! | `server.tokens_per_day` | with token costs, 8%: the same for tokens |
//! | `server.reorder_s` | 30%: log-uniform 0.005 ..= 0.5 s |
//! | `server.whole_second_clock` | 30% true |
//! | `server.quota_requests` | 10%: uniform 30–80% of the requests (exhaustion midway) |
//! | `server.outages` | 0, 1, 2, 3 with probabilities 0.4, 0.3, 0.2, 0.1; status uniform over 500, 502, 503, 504, 529 and connection refused; duration log-uniform 1 ..= 60 s; start uniform over the first 80% of the ideal makespan without them |
//! | `workload.clients` | 55% 1, else uniform 2 ..= 8; `shared_state` 50% when more than one |
//! | `workload.concurrency` | log-uniform 1 ..= 128 (per client) |
//! | `workload.arrival` | 50% closed, 25% poisson at 0.3–1.2 x the quota's rate, 25% bursts of log-uniform 2 ..= 2 x callers at the same mean rate |
//! | `workload.deadline_s` | 20%: uniform 30 ..= 600 s |
//! | `workload.requests` | sized: the target makespan is log-uniform 10 s ..= 2 h, the count 10 ..= 4,000 |
//! | `time_limit_s` | 3 x the ideal, at least the ideal + 10 min |

use crate::dialect::SimDialect;
use crate::limiter::Algorithm;
use crate::metrics::ideal_makespan;
use crate::model::{Outage, DAY};
use crate::scenario::{Arrival, Scenario};
use http::StatusCode;
use std::time::Duration;

/// Fewest requests a draw has.
pub const MIN_REQUESTS: u64 = 10;
/// Most requests a draw has (keeps `--random 200` to seconds per strategy).
pub const MAX_REQUESTS: u64 = 4_000;
/// The shortest ideal makespan aimed at, in seconds.
pub const MIN_IDEAL_S: f64 = 10.0;
/// The longest ideal makespan aimed at, in seconds.
pub const MAX_IDEAL_S: f64 = 7_200.0;

const WINDOWS_S: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];
const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::TokenBucket,
    Algorithm::FixedWindow,
    Algorithm::SlidingWindow,
];
/// Outage statuses; `None` = connection refused.
const OUTAGE_STATUSES: [Option<u16>; 6] =
    [None, Some(500), Some(502), Some(503), Some(504), Some(529)];

/// The name of draw `index` of `seed`.
pub fn name(seed: u64, index: u32) -> String {
    format!("random-{seed}-{index}")
}

/// Draw `index` of `seed`: the same scenario every time.
pub fn draw(seed: u64, index: u32) -> Scenario {
    let mut rng = fastrand::Rng::with_seed(
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(u64::from(index).wrapping_mul(0xd1b5_4a32_d192_ed03))
            ^ 0x7a4d_0d1c_e5ca_1e5d,
    );
    let mut last = None;
    for _ in 0..64 {
        let s = attempt(&mut rng, seed, index);
        let ideal = ideal_makespan(&s, &s.plan());
        if (MIN_IDEAL_S * 0.9..=MAX_IDEAL_S * 1.1).contains(&ideal) {
            return s;
        }
        last = Some(s);
    }
    // Unreachable in practice (a draw fits far more often than 1 in 64); keep the last.
    last.unwrap_or_else(|| attempt(&mut rng, seed, index))
}

/// Draws `0..n` of `seed`.
pub fn draws(seed: u64, n: u32) -> Vec<Scenario> {
    (0..n).map(|i| draw(seed, i)).collect()
}

/// Log-uniform in `[lo, hi]`.
fn log_uniform(rng: &mut fastrand::Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.f64() * (hi.ln() - lo.ln())).exp()
}

/// Uniform in `[lo, hi]`.
fn uniform(rng: &mut fastrand::Rng, lo: f64, hi: f64) -> f64 {
    lo + rng.f64() * (hi - lo)
}

/// Rounded to `step` (so the TOML file states round numbers).
fn round_to(x: f64, step: f64) -> f64 {
    ((x / step).round() * step * 1e6).round() / 1e6
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    rng.f64() < p
}

/// One draw, sized; the caller checks the ideal and draws again when it is out of range.
fn attempt(rng: &mut fastrand::Rng, seed: u64, index: u32) -> Scenario {
    let mut s = blank();
    s.name = name(seed, index);
    s.seed = rng.u64(1..=u64::from(u32::MAX));
    let server = &mut s.server;
    server.dialect = SimDialect::ALL[rng.usize(..SimDialect::ALL.len())];
    server.algorithm = ALGORITHMS[rng.usize(..ALGORITHMS.len())];
    server.window = secs(WINDOWS_S[rng.usize(..WINDOWS_S.len())]);
    let (requests, tokens) = match rng.f64() {
        x if x < 0.45 => (true, false),
        x if x < 0.75 => (true, true),
        x if x < 0.85 => (false, true),
        _ => (false, false),
    };
    server.requests_per_window = if requests {
        log_uniform(rng, 3.0, 5000.0).round() as u64
    } else {
        0
    };
    server.tokens_per_window = if tokens {
        log_uniform(rng, 1000.0, 2_000_000.0).round() as u64
    } else {
        0
    };
    server.latency = secs(round_to(log_uniform(rng, 0.01, 3.0), 0.001));
    server.latency_jitter = if chance(rng, 0.5) {
        Duration::ZERO
    } else {
        secs(round_to(
            uniform(rng, 0.0, 0.5) * server.latency.as_secs_f64(),
            0.001,
        ))
    };
    server.enforce_factor = if chance(rng, 0.7) {
        1.0
    } else {
        round_to(uniform(rng, 0.5, 1.0), 0.01)
    };
    server.retry_after = chance(rng, 0.85);
    server.limits_on_429_only = chance(rng, 0.15);
    server.quota_requests = 0;
    server.requests_per_day = 0;
    server.tokens_per_day = 0;
    server.outages.clear();

    let w = &mut s.workload;
    w.clients = if chance(rng, 0.55) { 1 } else { rng.u32(2..=8) };
    w.shared_state = w.clients > 1 && chance(rng, 0.5);
    w.concurrency = log_uniform(rng, 1.0, 128.0).round() as u32;
    let callers = u64::from(w.clients) * u64::from(w.concurrency);
    let bound_by_slots = !requests && !tokens;
    server.max_in_flight = if chance(rng, if bound_by_slots { 0.4 } else { 0.1 }) {
        rng.u64(1..=callers) as u32
    } else {
        0
    };

    // Token costs: against the token limit when there is one, else declared anyway by some.
    let enforced_tokens = server.enforced(server.tokens_per_window);
    let (tokens_min, tokens_max) = if tokens {
        let mean = server.tokens_per_window as f64 / log_uniform(rng, 2.0, 1000.0);
        let max = (mean * uniform(rng, 1.0, 2.0)).min(enforced_tokens as f64 / 2.0);
        let min = (mean * uniform(rng, 0.2, 1.0)).min(max);
        (min.round().max(1.0) as u64, max.round().max(1.0) as u64)
    } else if chance(rng, 0.4) {
        let max = log_uniform(rng, 10.0, 4000.0).round() as u64;
        (rng.u64(1..=max), max)
    } else {
        (0, 0)
    };
    w.tokens_min = tokens_min.min(tokens_max);
    w.tokens_max = tokens_max;
    w.oversized_share = if tokens && chance(rng, 0.2) {
        round_to(uniform(rng, 0.005, 0.05), 0.001)
    } else {
        0.0
    };
    w.deadline = chance(rng, 0.2).then(|| secs(round_to(uniform(rng, 30.0, 600.0), 1.0)));

    // The rate the quota allows, per second, and the target makespan.
    let mean_cost = (w.tokens_min + w.tokens_max) as f64 / 2.0;
    let slots = if server.max_in_flight > 0 {
        callers.min(u64::from(server.max_in_flight))
    } else {
        callers
    };
    let window_s = server.window.as_secs_f64();
    let mut rate = slots as f64 / server.latency.as_secs_f64().max(0.001);
    if requests {
        rate = rate.min(server.enforced(server.requests_per_window) as f64 / window_s);
    }
    if tokens && mean_cost > 0.0 {
        rate = rate.min(enforced_tokens as f64 / window_s / mean_cost);
    }
    let target = log_uniform(rng, MIN_IDEAL_S, MAX_IDEAL_S);
    let arrival = rng.f64();
    let arrival_rate = round_to(rate * uniform(rng, 0.3, 1.2), 0.001).max(0.001);
    let burst_size = log_uniform(rng, 2.0, (2 * callers).max(2) as f64).round() as u64;
    w.arrival = match arrival {
        x if x < 0.5 => Arrival::Closed,
        x if x < 0.75 => Arrival::Poisson {
            rate_per_s: arrival_rate,
        },
        _ => Arrival::Burst {
            every: secs(round_to(burst_size as f64 / arrival_rate, 0.1).max(0.1)),
            size: burst_size,
        },
    };

    // Size the request count to the target, then correct by the ideal it gives.
    w.requests = ((target * rate) as u64).clamp(MIN_REQUESTS, MAX_REQUESTS);
    for _ in 0..3 {
        let ideal = ideal_makespan(&s, &s.plan());
        if ideal <= 0.0 {
            break;
        }
        let scaled = (s.workload.requests as f64 * target / ideal).round() as u64;
        s.workload.requests = scaled.clamp(MIN_REQUESTS, MAX_REQUESTS);
    }

    // Daily limits that bind: the last requests wait on the day's continuous refill.
    let n = s.workload.requests;
    if chance(rng, 0.12) {
        let spill = uniform(rng, 0.3, 1.0) * target / DAY.as_secs_f64();
        s.server.requests_per_day = ((n as f64 / (1.0 + spill)).ceil() as u64).max(1);
    }
    if s.workload.tokens_max > 0 && chance(rng, 0.08) {
        let total: u64 = s
            .plan()
            .iter()
            .filter(|p| !p.oversized)
            .map(|p| p.tokens)
            .sum();
        let spill = uniform(rng, 0.3, 1.0) * target / DAY.as_secs_f64();
        // Never below one request's cost, or every request would be too large.
        s.server.tokens_per_day =
            ((total as f64 / (1.0 + spill)).ceil() as u64).max(s.workload.tokens_max * 4);
    }
    if chance(rng, 0.1) {
        s.server.quota_requests = ((n as f64 * uniform(rng, 0.3, 0.8)).round() as u64).max(1);
    }
    // Outages fall in the first 80% of the run the quota allows.
    let span = ideal_makespan(&s, &s.plan());
    let outages = match rng.f64() {
        x if x < 0.4 => 0,
        x if x < 0.7 => 1,
        x if x < 0.9 => 2,
        _ => 3,
    };
    for _ in 0..outages {
        let status = OUTAGE_STATUSES[rng.usize(..OUTAGE_STATUSES.len())];
        s.server.outages.push(Outage {
            start: secs(round_to(uniform(rng, 0.0, 0.8 * span), 0.1)),
            duration: secs(round_to(log_uniform(rng, 1.0, 60.0), 0.1)),
            status: status.and_then(|c| StatusCode::from_u16(c).ok()),
        });
    }
    s.server.outages.sort_by_key(|o| o.start);
    // The realism of ordinary server-side limiters: out-of-order admission, whole seconds.
    if chance(rng, 0.3) {
        s.server.reorder = secs(round_to(log_uniform(rng, 0.005, 0.5), 0.001));
    }
    s.server.whole_second_clock = chance(rng, 0.3);
    let ideal = ideal_makespan(&s, &s.plan());
    s.time_limit = secs((ideal * 3.0).max(ideal + 600.0).ceil());
    s
}

/// The scenario every draw starts from: the schema's defaults.
fn blank() -> Scenario {
    Scenario::from_toml(
        "random",
        "name = \"random\"\n[server]\ndialect = \"openai\"\n[workload]\nrequests = 10\n",
    )
    .expect("the defaults are a valid scenario")
}
