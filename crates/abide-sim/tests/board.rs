//! Whole runs: determinism, and that each ending is counted where it belongs.

use abide_sim::strategy::Strategy;
use abide_sim::{run, Scenario};

fn scenario(text: &str) -> Scenario {
    Scenario::from_toml("test.toml", text).unwrap()
}

const SMALL: &str = r#"
name = "small"
seed = 3
[server]
dialect = "openai"
window_s = 2.0
requests_per_window = 10
latency_s = 0.1
latency_jitter_s = 0.05
[[server.outages]]
start_s = 3.0
duration_s = 1.0
status = 503
[workload]
requests = 60
concurrency = 8
tokens_min = 10
tokens_max = 50
"#;

#[test]
fn the_same_inputs_give_byte_identical_rows_for_every_strategy() {
    let s = scenario(SMALL);
    for strategy in Strategy::ALL {
        let a = run(&s, strategy).unwrap();
        let b = run(&s, strategy).unwrap();
        assert_eq!(
            serde_json::to_string(&a.row).unwrap(),
            serde_json::to_string(&b.row).unwrap(),
            "{strategy}"
        );
        assert_eq!(a.timeline, b.timeline, "{strategy}");
        let r = &a.row;
        assert_eq!(
            r.succeeded + r.failed_permanent + r.failed_client + r.timed_out + r.lost,
            r.requests,
            "{strategy}"
        );
        assert!(r.attempts >= r.requests, "{strategy}");
    }
}

#[test]
fn a_different_seed_changes_the_run() {
    let a = run(&scenario(SMALL), Strategy::Naive).unwrap();
    let b = run(
        &scenario(&SMALL.replace("seed = 3", "seed = 4")),
        Strategy::Naive,
    )
    .unwrap();
    assert_ne!(a.timeline, b.timeline);
}

#[test]
fn requests_beyond_the_quota_fail_permanently_and_later_attempts_are_counted() {
    let s = scenario(
        "name='q'\n[server]\ndialect='openai'\nquota_requests=4\n[workload]\nrequests=10\nconcurrency=1\n",
    );
    let r = run(&s, Strategy::None).unwrap().row;
    assert_eq!((r.succeeded, r.failed_permanent, r.lost), (4, 6, 0));
    // One attempt found the quota gone; the five after it were sent knowing.
    assert_eq!(r.attempts_after_exhaustion, 5);
    let r = run(&s, Strategy::OpenAiPython).unwrap().row;
    // openai-python retries a 429 whatever its body: 3 attempts each for the last 6.
    assert_eq!((r.failed_permanent, r.attempts), (6, 4 + 6 * 3));
    assert_eq!(r.attempts_after_exhaustion, 6 * 3 - 1);
}

#[test]
fn a_refused_connection_loses_requests_that_are_not_retried() {
    let s = scenario(
        "name='o'\n[server]\ndialect='openai'\n[[server.outages]]\nstart_s=0.0\nduration_s=1.0\nstatus=0\n[workload]\nrequests=5\nconcurrency=5\n",
    );
    let none = run(&s, Strategy::None).unwrap().row;
    assert_eq!((none.succeeded, none.lost, none.rejected), (0, 5, 0));
    let sdk = run(&s, Strategy::OpenAiPython).unwrap().row;
    assert_eq!((sdk.succeeded, sdk.lost), (5, 0));
}

#[test]
fn deadlines_end_requests_as_timed_out_and_the_time_limit_caps_the_makespan() {
    let limited = "name='d'\n[server]\ndialect='openai'\nalgorithm='fixed-window'\nwindow_s=100.0\nrequests_per_window=1\n[workload]\nrequests=2\nconcurrency=2\n";
    let with_deadline =
        scenario(&limited.replace("concurrency=2", "concurrency=2\ndeadline_s=3.0"));
    let r = run(&with_deadline, Strategy::Naive).unwrap().row;
    assert_eq!((r.succeeded, r.timed_out, r.lost), (1, 1, 0));

    let capped = scenario(&limited.replace("name='d'", "name='d'\ntime_limit_s=5.0"));
    let r = run(&capped, Strategy::Naive).unwrap().row;
    assert_eq!((r.succeeded, r.lost), (1, 1));
    assert_eq!(r.makespan_s, 5.0);
    // The ideal: the second request in the second window, at 100 s, + 0.2 s.
    assert_eq!(r.ideal_makespan_s, 100.2);
    assert_eq!(r.makespan_ratio, Some((5.0f64 / 100.2 * 1e6).round() / 1e6));
}
