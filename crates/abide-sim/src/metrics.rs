//! The scoreboard's row and the analytic lower bound on a scenario's makespan.

use crate::limiter::Algorithm;
use crate::scenario::{Planned, Scenario};
use serde::Serialize;
use std::cmp::Ordering;
use std::time::Duration;

/// One (scenario, strategy) result: the JSON object `abide scoreboard --json` prints.
///
/// A logical request ends in exactly one of `succeeded`, `failed_permanent` (its last
/// answer was the server's permanent quota error, or it got no answer and its client had
/// already received one and refused it locally: correct for requests beyond the quota),
/// `timed_out` (its deadline passed) or `lost` (given up, or unfinished at the time limit,
/// while the server would still have served it; the goal is 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Strategy name.
    pub strategy: String,
    /// Clients sharing the key.
    pub clients: u32,
    /// Logical requests.
    pub requests: u64,
    /// Logical requests that succeeded.
    pub succeeded: u64,
    /// Logical requests that ended on a permanent quota error.
    pub failed_permanent: u64,
    /// Logical requests ended by their deadline.
    pub timed_out: u64,
    /// `requests - succeeded - failed_permanent - timed_out`.
    pub lost: u64,
    /// Attempts sent (every retry included).
    pub attempts: u64,
    /// Rate-limit and overload answers received (429, GitHub's 403, 529; gRPC
    /// `RESOURCE_EXHAUSTED` and `UNAVAILABLE`), permanent quota errors excluded.
    pub rejected: u64,
    /// `rejected / succeeded`; `null` when nothing succeeded.
    pub rejected_per_success: Option<f64>,
    /// `attempts / requests`.
    pub amplification: f64,
    /// Attempts a client sent after it had received a permanent quota error.
    pub attempts_after_exhaustion: u64,
    /// Virtual time until the last logical request ended (the time limit if some never did).
    pub makespan_s: f64,
    /// The analytic lower bound, [`ideal_makespan`].
    pub ideal_makespan_s: f64,
    /// `makespan_s / ideal_makespan_s`; `null` when the ideal is 0.
    pub makespan_ratio: Option<f64>,
    /// Median latency of succeeded requests (arrival, or caller pickup in closed
    /// workloads, to success); `null` when none succeeded.
    pub p50_latency_s: Option<f64>,
    /// 99th percentile latency of succeeded requests; `null` when none succeeded.
    pub p99_latency_s: Option<f64>,
}

/// Orders two rows of one scenario best first:
/// 1. more successes;
/// 2. more requests ended correctly on a permanent quota error;
/// 3. fewer attempts sent after a permanent quota error (retrying what cannot succeed is
///    the costliest mistake a client makes);
/// 4. the lower makespan ratio, compared at the two decimals the table shows (a
///    difference under 0.5% of the ideal is noise next to the rejections it may cost);
/// 5. fewer rejections per success; 6. fewer attempts; 7. by name (a total order).
pub fn best_first(a: &Row, b: &Row) -> Ordering {
    rank_cmp(a, b).then(a.strategy.cmp(&b.strategy))
}

/// [`best_first`] without the final tie-break by name: `Equal` means the two rows tie.
pub fn rank_cmp(a: &Row, b: &Row) -> Ordering {
    let opt = |x: Option<f64>| x.unwrap_or(f64::INFINITY);
    let shown = |x: Option<f64>| (opt(x) * 100.0).round();
    b.succeeded
        .cmp(&a.succeeded)
        .then(b.failed_permanent.cmp(&a.failed_permanent))
        .then(
            a.attempts_after_exhaustion
                .cmp(&b.attempts_after_exhaustion),
        )
        .then(shown(a.makespan_ratio).total_cmp(&shown(b.makespan_ratio)))
        .then(opt(a.rejected_per_success).total_cmp(&opt(b.rejected_per_success)))
        .then(a.attempts.cmp(&b.attempts))
}

/// Rounds to microseconds so JSON stays short (and identical run to run).
pub(crate) fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The nearest-rank percentile `p` (0..=1) of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Requests the server can ever serve: all, or the lifetime quota when smaller.
pub fn deliverable(scenario: &Scenario) -> u64 {
    let q = scenario.server.quota_requests;
    if q > 0 {
        scenario.workload.requests.min(q)
    } else {
        scenario.workload.requests
    }
}

/// When the last of `units` units can be admitted by a limit of `limit` per `window`
/// (windows aligned at 0, a token bucket starting full), at the earliest.
fn admission_bound(algorithm: Algorithm, limit: u64, window: Duration, units: u64) -> f64 {
    if limit == 0 || units == 0 {
        return 0.0;
    }
    let w = window.as_secs_f64();
    match algorithm {
        // The burst (one window's limit) at 0, then `limit / window` per second.
        Algorithm::TokenBucket => units.saturating_sub(limit) as f64 * w / limit as f64,
        // At most `limit` units in any window: the last unit is in window ceil(units/limit)-1.
        _ => (units.div_ceil(limit) - 1) as f64 * w,
    }
}

/// The analytic lower bound on a scenario's makespan, in seconds.
///
/// With `D` = [`deliverable`] requests, `lat` = the shortest service time
/// (`latency - jitter`, at least 0) and `C` = the most requests in flight at once
/// (`clients x concurrency`, or `max_in_flight` when smaller), the last deliverable request
/// cannot be admitted before the latest of:
///
/// - **arrivals**: the `D`-th arrival;
/// - **requests**: `(D - L) x W / L` for a token bucket (a full burst of `L` at 0, then `L`
///   per window `W`), `(ceil(D / L) - 1) x W` for fixed and sliding windows, where `L` is
///   the *enforced* request limit (`enforce_factor` applied);
/// - **tokens**: the same with `T` = the sum of the `D` smallest request costs in place of
///   `D` and the enforced token limit in place of `L`;
/// - **concurrency**: `(ceil(D / C) - 1) x lat` of server up-time (each slot serves one
///   request per `lat`), converted to wall time by adding the outages it spans;
///
/// and no admission happens during an outage, so a bound that falls inside one moves to
/// its end. The makespan is at least that admission time plus `lat`.
pub fn ideal_makespan(scenario: &Scenario, plan: &[Planned]) -> f64 {
    let server = &scenario.server;
    let d = deliverable(scenario).min(plan.len() as u64);
    if d == 0 {
        return 0.0;
    }
    let lat = server
        .latency
        .saturating_sub(server.latency_jitter)
        .as_secs_f64();

    let mut arrivals: Vec<f64> = plan.iter().map(|p| p.arrival.as_secs_f64()).collect();
    arrivals.sort_by(f64::total_cmp);
    let a_arrival = arrivals[(d - 1) as usize];

    let a_requests = if server.requests_per_window > 0 {
        admission_bound(
            server.algorithm,
            server.enforced(server.requests_per_window),
            server.window,
            d,
        )
    } else {
        0.0
    };

    let a_tokens = if server.tokens_per_window > 0 {
        let mut costs: Vec<u64> = plan.iter().map(|p| p.tokens).collect();
        costs.sort_unstable();
        let total: u64 = costs.iter().take(d as usize).sum();
        admission_bound(
            server.algorithm,
            server.enforced(server.tokens_per_window),
            server.window,
            total,
        )
    } else {
        0.0
    };

    let mut slots = u64::from(scenario.workload.clients) * u64::from(scenario.workload.concurrency);
    if server.max_in_flight > 0 {
        slots = slots.min(u64::from(server.max_in_flight));
    }
    let uptime_needed = (d.div_ceil(slots.max(1)) - 1) as f64 * lat;
    let mut outages: Vec<(f64, f64)> = server
        .outages
        .iter()
        .map(|o| (o.start.as_secs_f64(), (o.start + o.duration).as_secs_f64()))
        .collect();
    outages.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Up-time to wall time: every outage starting before the point pushes it back.
    let mut a_concurrency = uptime_needed;
    for &(start, end) in &outages {
        if start <= a_concurrency {
            a_concurrency += (end - start.max(0.0)).max(0.0);
        }
    }

    let mut admit = a_arrival.max(a_requests).max(a_tokens).max(a_concurrency);
    // Out of any outage it falls in (outages may chain, so loop until stable).
    loop {
        let before = admit;
        for &(start, end) in &outages {
            if admit >= start && admit < end {
                admit = end;
            }
        }
        if admit == before {
            break;
        }
    }
    admit + lat
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(strategy: &str, succeeded: u64, after_exhaustion: u64, ratio: f64, rej: f64) -> Row {
        Row {
            scenario: "s".into(),
            strategy: strategy.into(),
            clients: 1,
            requests: 100,
            succeeded,
            failed_permanent: 0,
            timed_out: 0,
            lost: 100 - succeeded,
            attempts: 100,
            rejected: 0,
            rejected_per_success: Some(rej),
            amplification: 1.0,
            attempts_after_exhaustion: after_exhaustion,
            makespan_s: ratio * 10.0,
            ideal_makespan_s: 10.0,
            makespan_ratio: Some(ratio),
            p50_latency_s: None,
            p99_latency_s: None,
        }
    }

    fn ranked(mut rows: Vec<Row>) -> Vec<String> {
        rows.sort_by(best_first);
        rows.into_iter().map(|r| r.strategy).collect()
    }

    #[test]
    fn successes_rank_before_speed() {
        let fast_but_lossy = row("a", 90, 0, 0.5, 0.0);
        let complete = row("b", 100, 0, 1.5, 1.0);
        assert_eq!(ranked(vec![fast_but_lossy, complete]), ["b", "a"]);
    }

    #[test]
    fn hammering_an_exhausted_quota_ranks_below_stopping() {
        let hammers = row("a", 100, 196, 1.0, 0.0);
        let stops = row("b", 100, 0, 1.05, 0.0);
        assert_eq!(ranked(vec![hammers, stops]), ["b", "a"]);
    }

    #[test]
    fn makespan_differences_below_the_shown_precision_fall_to_rejections() {
        let noisy = row("a", 100, 0, 1.0051, 0.035);
        let quiet = row("b", 100, 0, 1.0059, 0.0);
        assert_eq!(ranked(vec![noisy.clone(), quiet.clone()]), ["b", "a"]);
        // A visible makespan difference still wins over rejections.
        let slow_quiet = row("c", 100, 0, 1.03, 0.0);
        assert_eq!(ranked(vec![slow_quiet, noisy]), ["a", "c"]);
    }

    #[test]
    fn rows_equal_but_for_the_name_tie() {
        let a = row("a", 100, 0, 1.0, 0.0);
        let b = row("b", 100, 0, 1.0, 0.0);
        assert_eq!(rank_cmp(&a, &b), Ordering::Equal);
        assert_eq!(best_first(&a, &b), Ordering::Less);
    }

    fn scenario(text: &str) -> Scenario {
        Scenario::from_toml("t.toml", text).unwrap()
    }

    fn ideal(text: &str) -> f64 {
        let s = scenario(text);
        ideal_makespan(&s, &s.plan())
    }

    #[test]
    fn a_token_bucket_bound_is_the_burst_then_the_rate() {
        // 1500 requests, 500/min burst: 1000 more at 500/60 per second = 120 s, + 0.5 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nwindow_s=60.0\nrequests_per_window=500\nlatency_s=0.5\n[workload]\nrequests=1500\nconcurrency=32\n",
        );
        assert!((v - 120.5).abs() < 1e-9, "{v}");
    }

    #[test]
    fn a_window_bound_counts_whole_windows() {
        // 1000 requests, 100 per 10 s window: the last in window 9, at 90 s, + 0.2 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='ietf'\nalgorithm='fixed-window'\nwindow_s=10.0\nrequests_per_window=100\n[workload]\nrequests=1000\n",
        );
        assert!((v - 90.2).abs() < 1e-9, "{v}");
    }

    #[test]
    fn the_enforced_limit_not_the_advertised_one_sets_the_bound() {
        // 1200 at an enforced 480/min: (1200 - 480) / 8 per s = 90 s, + 0.2 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nwindow_s=60.0\nrequests_per_window=600\nenforce_factor=0.8\n[workload]\nrequests=1200\n",
        );
        assert!((v - 90.2).abs() < 1e-9, "{v}");
    }

    #[test]
    fn concurrency_bounds_an_unlimited_server() {
        // 400 requests through 8 server slots of 0.7 s minimum: 50 rounds = 49 x 0.7 + 0.7.
        let v = ideal(
            "name='t'\n[server]\ndialect='anthropic'\nmax_in_flight=8\nlatency_s=1.0\nlatency_jitter_s=0.3\n[workload]\nrequests=400\nconcurrency=32\n",
        );
        assert!((v - 35.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn only_deliverable_requests_count_under_a_quota() {
        // 300 of 500 deliverable, all within the burst; 16 callers: 19 rounds of 0.2 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nwindow_s=60.0\nrequests_per_window=600\nquota_requests=300\n[workload]\nrequests=500\n",
        );
        assert!((v - 3.8).abs() < 1e-9, "{v}");
    }

    #[test]
    fn outages_push_the_bound_back_by_the_time_they_take() {
        // 160 requests, 16 callers, 1 s each: 9 s of up-time, then the last round's 1 s.
        // A 5 s outage at 2 s pushes the 9 s to 14 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nlatency_s=1.0\n[[server.outages]]\nstart_s=2.0\nduration_s=5.0\nstatus=503\n[workload]\nrequests=160\n",
        );
        assert!((v - 15.0).abs() < 1e-9, "{v}");
        // A bound that lands inside an outage moves to its end.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nlatency_s=1.0\n[[server.outages]]\nstart_s=12.0\nduration_s=5.0\nstatus=0\n[workload]\nrequests=160\narrival='burst'\nburst_every_s=13.0\nburst_size=80\n",
        );
        // Second burst arrives at 13 s, inside the outage: admitted at 17 s at the earliest.
        assert!((v - 18.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn token_limits_bound_by_the_cheapest_deliverable_tokens() {
        // Every request costs exactly 100: 50 requests = 5000 tokens at 1000 per 10 s
        // fixed window: 5 windows, the last starting at 40 s.
        let v = ideal(
            "name='t'\n[server]\ndialect='openai'\nalgorithm='fixed-window'\nwindow_s=10.0\ntokens_per_window=1000\nlatency_s=0.0\n[workload]\nrequests=50\ntokens_min=100\ntokens_max=100\n",
        );
        assert!((v - 40.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn the_nearest_rank_percentile_picks_an_observed_value() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
