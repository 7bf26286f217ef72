//! Story 9: a request the server refused keeps its place in the line, so a busy bucket
//! never refuses the same request until its attempts run out.

use abide_sim::strategy::Strategy;
use abide_sim::{run, Scenario};

/// A sliding window of 15 s that advertises nothing, states only `Retry-After` and
/// grants 4 requests (70 % of 6); one client, 25 callers in turn, 700 requests.
const CROWDED_WINDOW: &str = r#"
name = "crowded-window"
seed = 7
time_limit_s = 20000.0
[server]
dialect = "retry-after-only"
algorithm = "sliding-window"
window_s = 15.0
requests_per_window = 6
enforce_factor = 0.7
retry_after = true
latency_s = 0.549
latency_jitter_s = 0.025
[workload]
clients = 1
requests = 700
concurrency = 25
arrival = "closed"
"#;

/// The cap lets a window's grant go, and now and then one more, which the server
/// refuses. The callers wait for in-flight permits in a line, first come first served,
/// and a refused request came back to its end: with 25 callers in turn and 5 let through
/// each window, a place keeps its rank in the window, and the request in the rank the
/// server refused was refused again every time it came back. Five requests were each
/// refused 32 times and lost (with 300 requests, none was lost, and the unlucky ones
/// took 19 minutes where the others took 90 s).
#[test]
fn a_refused_request_keeps_its_place_in_the_line() {
    let scenario = Scenario::from_toml("crowded-window.toml", CROWDED_WINDOW).unwrap();
    let row = run(&scenario, Strategy::Abide).unwrap().row;
    assert_eq!(row.lost, 0, "{row:?}");
    assert_eq!(row.succeeded, 700, "{row:?}");
    // 4 a window is one every 3.75 s: 25 callers wait about 94 s each.
    let p99 = row.p99_latency_s.unwrap_or(f64::INFINITY);
    assert!(p99 < 120.0, "a request waited {p99:.0} s: {row:?}");
    // Within 5 % of the ideal (the window's own grant).
    let ratio = row.makespan_ratio.unwrap_or(f64::INFINITY);
    assert!(ratio < 1.05, "{row:?}");
}
