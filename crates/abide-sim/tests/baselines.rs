//! Whole runs of the baselines on tiny scenarios whose schedules are computed by hand.
//!
//! Times: a served answer takes `latency_s` (0.2 s unless set), a rejected one 10 ms (the
//! server's `REJECT_LATENCY`). Requests go to clients round-robin; a closed workload has
//! every request arrive at 0.

use abide_sim::strategy::Strategy;
use abide_sim::{run, Row, Scenario};

fn row(toml: &str, strategy: Strategy) -> Row {
    let scenario = Scenario::from_toml("test.toml", toml).unwrap();
    run(&scenario, strategy).unwrap().row
}

/// (succeeded, failed_permanent, lost, attempts, rejected)
fn counts(r: &Row) -> (u64, u64, u64, u64, u64) {
    (
        r.succeeded,
        r.failed_permanent,
        r.lost,
        r.attempts,
        r.rejected,
    )
}

/// 2 requests per 60 s in one fixed window; 3 requests at once.
const FIXED_2_PER_MIN: &str = "name='fixed'\n[server]\ndialect='DIALECT'\nalgorithm='fixed-window'\nwindow_s=60.0\nrequests_per_window=2\n[workload]\nrequests=3\nconcurrency=3\n";

#[test]
fn cookbook_parallel_paces_at_the_declared_rate_and_pauses_after_a_rate_limit() {
    // Declared 2 per minute: capacity 2, back at 1 per 30 s. r0 goes at 0, r1 at 1 ms
    // (one dispatch per 1 ms loop turn), r2 when capacity is back to 1: t = 30 s. The
    // fixed window (0-60 s) is full: 429 "Rate limit reached ..." at 30.01 pauses the loop
    // until 45.01 and re-queues r2; capacity is 1 again at 60 s, in a fresh window: served
    // at 60.2. Latencies 0.2, 0.201, 60.2.
    let r = row(
        &FIXED_2_PER_MIN.replace("DIALECT", "openai"),
        Strategy::CookbookParallel,
    );
    assert_eq!(counts(&r), (3, 0, 0, 4, 1));
    assert_eq!(r.makespan_s, 60.2);
    assert_eq!(r.p50_latency_s, Some(0.201));
}

#[test]
fn cookbook_parallel_pauses_all_dispatching_for_15_s_after_a_rate_limit_error() {
    // 2 per 10 s, declared as the per-minute equivalent 12: a full capacity of 12 lets r0,
    // r1, r2, r3 go at 0, 1, 2, 3 ms; the fixed window takes 2, so r2 and r3 get 429s at
    // 12 and 13 ms. The loop pauses until 15.013 s (15 s after the later one), then sends
    // the re-queued r2 and r3 at 15.013 and 15.014, inside the window 10-20 s: served at
    // 15.213 and 15.214. Without the pause they would be re-sent at once into the full
    // window, five times, and lost.
    let r = row(
        "name='p'\n[server]\ndialect='openai'\nalgorithm='fixed-window'\nwindow_s=10.0\nrequests_per_window=2\n[workload]\nrequests=4\nconcurrency=4\n",
        Strategy::CookbookParallel,
    );
    assert_eq!(counts(&r), (4, 0, 0, 6, 2));
    assert_eq!(r.makespan_s, 15.214);
}

#[test]
fn cookbook_parallel_saves_a_429_problem_document_as_a_result() {
    // The same schedule on an IETF server: its 429 body is a problem document with no
    // "error" key, which the script writes out as r2's result at 30.01: r2 is lost.
    let r = row(
        &FIXED_2_PER_MIN.replace("DIALECT", "ietf"),
        Strategy::CookbookParallel,
    );
    assert_eq!(counts(&r), (2, 0, 1, 3, 1));
    assert_eq!(r.makespan_s, 30.01);
}

#[test]
fn cookbook_parallel_requeues_errors_without_backoff_and_gives_up_after_five_attempts() {
    // A 503 text/plain outage: each answer is aiohttp's ContentTypeError, an error that is
    // not a rate limit, so the request goes straight back: attempts at 0, 0.01, 0.02,
    // 0.03, 0.04, the fifth answer at 0.05 ends it.
    let r = row(
        "name='o'\n[server]\ndialect='openai'\n[[server.outages]]\nstart_s=0.0\nduration_s=1.0\nstatus=503\n[workload]\nrequests=1\n",
        Strategy::CookbookParallel,
    );
    assert_eq!(counts(&r), (0, 0, 1, 5, 0));
    assert_eq!(r.makespan_s, 0.05);
}

#[test]
fn cookbook_parallel_runs_one_loop_per_process_each_at_the_full_limit() {
    // 2 clients each declare the key's 2 per minute (token-bucket server: burst 2, 1 back
    // per 30 s). At 0 both send one (accepted), at 1 ms both send another: 429s at 0.011,
    // each loop pauses until 15.011. Each loop's capacity is back to 1 at 30 s: both send;
    // the server has 1 back, so one is served (30.1) and one refused (pause until 45.01);
    // that one goes at 60 s, when its capacity and the server's are back: served at 60.1.
    let r = row(
        "name='two'\n[server]\ndialect='openai'\nwindow_s=60.0\nrequests_per_window=2\nlatency_s=0.1\n[workload]\nclients=2\nrequests=4\nconcurrency=2\n",
        Strategy::CookbookParallel,
    );
    assert_eq!(counts(&r), (4, 0, 0, 7, 3));
    assert_eq!(r.makespan_s, 60.1);
}

#[test]
fn governor_admits_the_burst_then_one_request_per_interval() {
    // Quota::per_minute(3): 3 at 0, then one every 20 s: at 20 and 40, all within the
    // token-bucket server's limit: the last served at 40.2, no rejection.
    let toml = "name='g'\n[server]\ndialect='openai'\nALGOwindow_s=60.0\nrequests_per_window=3\n[workload]\nrequests=5\nconcurrency=5\n";
    let r = row(&toml.replace("ALGO", ""), Strategy::GovernorReqwestRetry);
    assert_eq!(counts(&r), (5, 0, 0, 5, 0));
    assert_eq!(r.makespan_s, 40.2);
    // A fixed-window server has no room left before 60 s: the requests let through at 20
    // and 40 get 429s; reqwest-retry ignores the Retry-After and retries within
    // U[0,1) x 1, 2, 4 s, all inside the full window: 4 attempts each, then lost.
    let r = row(
        &toml.replace("ALGO", "algorithm='fixed-window'\n"),
        Strategy::GovernorReqwestRetry,
    );
    assert_eq!(counts(&r), (3, 0, 2, 3 + 2 * 4, 2 * 4));
    assert!(
        r.makespan_s >= 40.04 && r.makespan_s <= 47.04,
        "{}",
        r.makespan_s
    );
}

#[test]
fn governor_waits_on_the_token_limiter_for_the_declared_cost() {
    // 100 tokens per minute, each request 60: one token back every 0.6 s. r0 at 0 (40
    // left), r1 needs 20 more: 12 s; r2 needs 60 from 0: 36 s later, at 48 s.
    let r = row(
        "name='t'\n[server]\ndialect='openai'\nwindow_s=60.0\ntokens_per_window=100\n[workload]\nrequests=3\nconcurrency=3\ntokens_min=60\ntokens_max=60\n",
        Strategy::GovernorReqwestRetry,
    );
    assert_eq!(counts(&r), (3, 0, 0, 3, 0));
    assert_eq!(r.makespan_s, 48.2);
    assert_eq!(r.p50_latency_s, Some(12.2));
}

#[test]
fn async_openai_does_not_retry_insufficient_quota_where_openai_python_does() {
    // 2 successes allowed, then OpenAI's 429 insufficient_quota. One caller: 0.2 + 0.2,
    // then two refusals of 10 ms each, not retried.
    let toml = "name='q'\n[server]\ndialect='openai'\nquota_requests=2\n[workload]\nrequests=4\nconcurrency=1\n";
    let r = row(toml, Strategy::AsyncOpenAi);
    assert_eq!(counts(&r), (2, 2, 0, 4, 0));
    assert_eq!(r.makespan_s, 0.42);
    let sdk = row(toml, Strategy::OpenAiPython);
    assert_eq!(counts(&sdk), (2, 2, 0, 2 + 2 * 3, 0));
}

#[test]
fn async_openai_honours_an_integer_retry_after_and_retries_only_openai_shaped_429s() {
    // 1 request per 60 s fixed window, 2 requests: r1's 429 at 0.01 says Retry-After: 60
    // (the window's end, seen from t = 0): the retry at 60.01 is served at 60.21.
    let toml = "name='r'\n[server]\ndialect='DIALECT'\nalgorithm='fixed-window'\nwindow_s=60.0\nrequests_per_window=1\n[workload]\nrequests=2\nconcurrency=2\n";
    let r = row(&toml.replace("DIALECT", "openai"), Strategy::AsyncOpenAi);
    assert_eq!(counts(&r), (2, 0, 0, 3, 1));
    assert_eq!(r.makespan_s, 60.21);
    // A text/plain 429 does not parse as OpenAI's error: returned at once, r1 lost.
    let r = row(
        &toml.replace("DIALECT", "retry-after-only"),
        Strategy::AsyncOpenAi,
    );
    assert_eq!(counts(&r), (1, 0, 1, 2, 1));
    assert_eq!(r.makespan_s, 0.2);
}

#[test]
fn naive_wraps_the_sdk_so_a_wait_the_sdk_refuses_is_retried_by_tenacity() {
    // 1 request per 600 s: r1's 429 states a wait of 600 s, over the SDK's 120 s, so each
    // SDK call raises at once; tenacity retries after 1, U(1,2), U(1,4), U(1,8), U(1,16) s,
    // all inside the window: 6 attempts, 6 rejections, lost. The SDK alone gives up after
    // its first attempt.
    let toml = "name='n'\n[server]\ndialect='openai'\nalgorithm='fixed-window'\nwindow_s=WINDOW\nrequests_per_window=1\n[workload]\nrequests=2\nconcurrency=2\n";
    let r = row(&toml.replace("WINDOW", "600.0"), Strategy::Naive);
    assert_eq!(counts(&r), (1, 0, 1, 7, 6));
    assert!(
        r.makespan_s >= 5.06 && r.makespan_s <= 31.06,
        "{}",
        r.makespan_s
    );
    let sdk = row(&toml.replace("WINDOW", "600.0"), Strategy::OpenAiPython);
    assert_eq!(counts(&sdk), (1, 0, 1, 2, 1));
    // 1 per 100 s: the SDK inside naive honours the 100 s wait (retry-after-ms 100000 from
    // the decision at 0, received at 0.01): served at 100.21, no tenacity retry.
    let r = row(&toml.replace("WINDOW", "100.0"), Strategy::Naive);
    assert_eq!(counts(&r), (2, 0, 0, 3, 1));
    assert_eq!(r.makespan_s, 100.21);
}

#[test]
fn cookbook_parallel_holds_every_request_behind_one_larger_than_its_token_capacity() {
    // 100 tokens per minute, every request costs 150: the loop waits on the first for
    // capacity that never comes, nothing is sent, and the run ends at its time limit.
    // governor answers InsufficientCapacity at once: nothing is sent either, nothing waits.
    let toml = "name='big'\ntime_limit_s=30.0\n[server]\ndialect='openai'\nwindow_s=60.0\ntokens_per_window=100\n[workload]\nrequests=2\nconcurrency=2\ntokens_min=150\ntokens_max=150\n";
    let r = row(toml, Strategy::CookbookParallel);
    assert_eq!((r.succeeded, r.attempts, r.makespan_s), (0, 0, 30.0));
    let r = row(toml, Strategy::GovernorReqwestRetry);
    assert_eq!((r.succeeded, r.attempts, r.makespan_s), (0, 0, 0.0));
}

#[test]
fn cookbook_parallel_frees_its_loop_when_a_waiting_caller_gives_up() {
    // Declared 1 per minute: r0 goes at 0; r1 and r2 wait for capacity (back at 60 s) and
    // reach their 5 s deadline first: timed out, never sent.
    let r = row(
        "name='dl'\n[server]\ndialect='openai'\nwindow_s=60.0\nrequests_per_window=1\n[workload]\nrequests=3\nconcurrency=3\ndeadline_s=5.0\n",
        Strategy::CookbookParallel,
    );
    assert_eq!((r.succeeded, r.timed_out, r.attempts), (1, 2, 1));
    assert_eq!(r.makespan_s, 5.0);
}
