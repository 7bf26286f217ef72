//! The scenario keys of the random board: daily limits replenished continuously, limits
//! stated only on 429s, oversized requests; each against hand-computed answers.

use abide_headers::RateLimitHeaders;
use abide_sim::strategy::Strategy;
use abide_sim::{run, Algorithm, Outcome, RequestTokens, Scenario, Scope, ServerConfig, SimServer};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tower::ServiceExt;

async fn send(server: &SimServer, tokens: u64) -> Response<Full<Bytes>> {
    let mut req = Request::new(());
    req.extensions_mut().insert(RequestTokens(tokens));
    server.clone().oneshot(req).await.expect("an answer")
}

async fn text(res: Response<Full<Bytes>>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_daily_limit_refills_continuously_and_says_so_in_openais_words() {
    // 10,000 per day: one request back every 8.64 s.
    let server = SimServer::new(
        ServerConfig {
            requests_per_day: 10_000,
            ..ServerConfig::default()
        },
        1,
    );
    server.with_model(|m| {
        for _ in 0..10_000 {
            assert_eq!(m.decide(Duration::ZERO, 0).outcome, Outcome::Served);
        }
    });
    let res = send(&server, 0).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.extensions().get::<Outcome>(),
        Some(&Outcome::RateLimited(Scope::RequestsPerDay))
    );
    let wait = RateLimitHeaders::new().extract_response(&res).wait();
    assert_eq!(wait, Some(Duration::from_millis(8640)));
    let body = text(res).await;
    assert!(
        body.contains("on requests per day (RPD): Limit 10000, Used 10000, Requested 1. Please try again in 8.64s."),
        "{body}"
    );
    // Waiting the stated 8.64 s is enough for exactly one more.
    tokio::time::advance(Duration::from_millis(8640)).await;
    assert_eq!(send(&server, 0).await.status(), StatusCode::OK);
    assert_eq!(
        send(&server, 0).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_token_limit_counts_each_request_cost() {
    let server = SimServer::new(
        ServerConfig {
            tokens_per_day: 86_400,
            ..ServerConfig::default()
        },
        1,
    );
    assert_eq!(send(&server, 86_000).await.status(), StatusCode::OK);
    // 400 left; 1,000 more need 600 tokens of refill at 1 per second, less the 0.2 s the
    // first request took to answer.
    let res = send(&server, 1_000).await;
    assert_eq!(
        res.extensions().get::<Outcome>(),
        Some(&Outcome::RateLimited(Scope::TokensPerDay))
    );
    assert_eq!(
        RateLimitHeaders::new().extract_response(&res).wait(),
        Some(Duration::from_millis(599_800))
    );
    assert!(text(res).await.contains("tokens per day (TPD)"));
}

#[tokio::test(start_paused = true)]
async fn limits_on_429_only_leave_successes_bare() {
    let server = SimServer::new(
        ServerConfig {
            algorithm: Algorithm::FixedWindow,
            window: Duration::from_secs(10),
            requests_per_window: 1,
            limits_on_429_only: true,
            ..ServerConfig::default()
        },
        1,
    );
    let ok = send(&server, 0).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        RateLimitHeaders::new()
            .extract_response(&ok)
            .limits()
            .is_empty(),
        "{:?}",
        ok.headers()
    );
    let limited = send(&server, 0).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let snapshot = RateLimitHeaders::new().extract_response(&limited);
    let requests = snapshot.requests().expect("the 429 states the limit");
    assert_eq!((requests.limit, requests.remaining), (Some(1), Some(0)));
    // The window ends 10 s after the start; the first answer took 0.2 s.
    assert_eq!(snapshot.wait(), Some(Duration::from_millis(9_800)));
}

#[tokio::test(start_paused = true)]
async fn a_request_larger_than_the_whole_limit_is_refused_every_time_in_openais_words() {
    let server = SimServer::new(
        ServerConfig {
            tokens_per_window: 7_000,
            ..ServerConfig::default()
        },
        1,
    );
    for _ in 0..3 {
        let res = send(&server, 12_903).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.extensions().get::<Outcome>(), Some(&Outcome::TooLarge));
        let body = text(res).await;
        assert!(
            body.contains("Request too large") && body.contains("Limit 7000, Requested 12903"),
            "{body}"
        );
        assert!(body.contains("must be reduced"), "{body}");
        tokio::time::advance(Duration::from_secs(60)).await;
    }
    assert!(Outcome::TooLarge.is_client_error() && !Outcome::TooLarge.is_permanent());
    assert!(!Outcome::TooLarge.is_rejection());
}

const OVERSIZED: &str = r#"
name = "oversized"
seed = 4
[server]
dialect = "openai"
window_s = 60.0
tokens_per_window = 100000
[workload]
requests = 200
tokens_min = 100
tokens_max = 200
oversized_share = 0.1
"#;

#[test]
fn oversized_requests_end_as_client_errors_not_losses_nor_exhaustion() {
    let s = Scenario::from_toml("oversized.toml", OVERSIZED).unwrap();
    let plan = s.plan();
    let oversized = plan.iter().filter(|p| p.oversized).count() as u64;
    // 10% of 200, give or take the draw.
    assert!((8..=35).contains(&oversized), "{oversized}");
    assert!(plan
        .iter()
        .all(|p| p.oversized == (p.tokens > 100_000)
            && (p.oversized || (100..=200).contains(&p.tokens))));
    assert!(plan
        .iter()
        .filter(|p| p.oversized)
        .all(|p| p.tokens <= 300_000));
    // One attempt each: the oversized ones are answered "too large" and end as client errors.
    let row = run(&s, Strategy::None).unwrap().row;
    assert_eq!(row.failed_client, oversized);
    assert_eq!((row.succeeded, row.lost), (200 - oversized, 0));
    assert_eq!((row.rejected, row.attempts_after_exhaustion), (0, 0));
    // The ideal counts only what fits: 200 - oversized requests within the burst, 0.2 s.
    let rounds = (200 - oversized).div_ceil(16) as f64;
    assert!(
        (row.ideal_makespan_s - 0.2 * rounds).abs() < 1e-6,
        "{}",
        row.ideal_makespan_s
    );
}

#[test]
fn the_new_keys_default_to_off_and_are_checked() {
    let base = "name = 't'\n[server]\ndialect = 'openai'\n[workload]\nrequests = 10\n";
    let s = Scenario::from_toml("t.toml", base).unwrap();
    assert_eq!((s.server.requests_per_day, s.server.tokens_per_day), (0, 0));
    assert!(!s.server.limits_on_429_only);
    assert_eq!(s.workload.oversized_share, 0.0);
    let bad = base.replace("requests = 10", "requests = 10\noversized_share = 0.1");
    let msg = Scenario::from_toml("t.toml", &bad).unwrap_err().to_string();
    assert!(
        msg.contains("oversized_share") && msg.contains("token limit"),
        "{msg}"
    );
    let bad = base.replace("requests = 10", "requests = 10\noversized_share = 1.5");
    assert!(Scenario::from_toml("t.toml", &bad).is_err());
    let gateway = base.replace(
        "[workload]",
        "[[server.outages]]\nstart_s = 1.0\nduration_s = 1.0\nstatus = 504\n[workload]",
    );
    assert_eq!(
        Scenario::from_toml("t.toml", &gateway)
            .unwrap()
            .server
            .outages[0]
            .status,
        Some(StatusCode::GATEWAY_TIMEOUT)
    );
    // Every built-in survives the trip through its TOML.
    for s in Scenario::builtins() {
        assert_eq!(Scenario::from_toml(&s.name, &s.to_toml()).unwrap(), s);
    }
}

#[test]
fn a_lone_caller_giving_up_on_an_outage_is_counted_apart_within_lost() {
    let text = |concurrency: u32| {
        format!(
            "name = 'alone'\n[server]\ndialect = 'openai'\n[[server.outages]]\nstart_s = 0.0\nduration_s = 100.0\nstatus = 503\n[workload]\nrequests = 4\nconcurrency = {concurrency}\n"
        )
    };
    // One caller: each request meets the outage alone and gives up on its 503.
    let s = Scenario::from_toml("alone.toml", &text(1)).unwrap();
    let row = run(&s, Strategy::None).unwrap().row;
    assert_eq!((row.lost, row.gave_up_alone), (4, 4));
    // Four callers at once: only the last to end was alone.
    let s = Scenario::from_toml("busy.toml", &text(4)).unwrap();
    let row = run(&s, Strategy::None).unwrap().row;
    assert_eq!((row.lost, row.gave_up_alone), (4, 1));
}

#[test]
fn a_lone_caller_giving_up_on_refusals_that_state_no_wait_is_counted_apart() {
    // One request a minute, four callers in turn, no retries: the first is served, the
    // others are refused alone.
    let text = |dialect: &str, retry_after: bool| {
        format!(
            "name = 'refused'\n[server]\ndialect = '{dialect}'\nalgorithm = 'fixed-window'\nwindow_s = 60.0\nrequests_per_window = 1\nretry_after = {retry_after}\n[workload]\nrequests = 4\nconcurrency = 1\n"
        )
    };
    let row = |dialect: &str, retry_after: bool| {
        let s = Scenario::from_toml("t.toml", &text(dialect, retry_after)).unwrap();
        let row = run(&s, Strategy::None).unwrap().row;
        (row.succeeded, row.lost, row.gave_up_alone)
    };
    // Nothing says when to come back: an outage of 429s to a lone caller.
    assert_eq!(row("retry-after-only", false), (1, 3, 3));
    assert_eq!(row("none", true), (1, 3, 3));
    // A stated wait, or headers showing the limit spent until its reset: ending is a loss.
    assert_eq!(row("retry-after-only", true), (1, 3, 0));
    assert_eq!(row("grpc", true), (1, 3, 0));
    assert_eq!(row("ietf", false), (1, 3, 0));
    // Headers saying quota remains while the server refuses (2 stated, 1 granted): they
    // say nothing of when to come back.
    let overstating = text("ietf", false).replace(
        "requests_per_window = 1\n",
        "requests_per_window = 2\nenforce_factor = 0.5\n",
    );
    let s = Scenario::from_toml("t.toml", &overstating).unwrap();
    let r = run(&s, Strategy::None).unwrap().row;
    assert_eq!((r.succeeded, r.lost, r.gave_up_alone), (1, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_whole_second_clock_states_resets_from_the_whole_second_date() {
    let config = ServerConfig {
        algorithm: Algorithm::FixedWindow,
        window: Duration::from_secs(1),
        requests_per_window: 1,
        whole_second_clock: true,
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let server = SimServer::new(config.clone(), 3);
    let phase = server.with_model(|m| m.clock_phase());
    assert!(
        phase > Duration::ZERO && phase < Duration::from_secs(1),
        "{phase:?}"
    );
    // The server's wall clock starts `phase` past the whole second.
    assert_eq!(server.now_wall(), abide_sim::sim_epoch() + phase);
    assert_eq!(send(&server, 0).await.status(), StatusCode::OK);
    // At 0.1 s the window (which truly ends at 1 s) is spent. Its end, on the wall clock,
    // falls in the whole second ceil(phase + 1); the Date says floor(phase + 0.1).
    let res = send(&server, 0).await;
    let wall = phase + Duration::from_millis(100);
    let end = phase + Duration::from_secs(1);
    let stated = end.as_secs() + u64::from(end.subsec_nanos() > 0) - wall.as_secs();
    let snapshot = RateLimitHeaders::new().extract_response(&res);
    assert_eq!(snapshot.wait(), Some(Duration::from_secs(stated)));
    assert!(
        stated >= 1,
        "never less than the truth, rounded to whole seconds"
    );
    // The same server without the whole-second clock states the exact 0.9 s.
    let exact = SimServer::new(
        ServerConfig {
            whole_second_clock: false,
            ..config
        },
        3,
    );
    send(&exact, 0).await;
    let res = send(&exact, 0).await;
    assert_eq!(
        RateLimitHeaders::new().extract_response(&res).wait(),
        Some(Duration::from_millis(900))
    );
}

#[tokio::test(start_paused = true)]
async fn a_reordering_server_admits_concurrent_requests_out_of_the_order_sent() {
    // Ten requests sent together to a server allowing five: with upstream delays, which five
    // pass is not "the first five sent", and every answer comes later than the service time.
    let server = SimServer::new(
        ServerConfig {
            algorithm: Algorithm::FixedWindow,
            window: Duration::from_secs(60),
            requests_per_window: 5,
            reorder: Duration::from_millis(200),
            latency: Duration::from_millis(100),
            ..ServerConfig::default()
        },
        9,
    );
    let started = tokio::time::Instant::now();
    let answers = futures_util::future::join_all((0..10).map(|_| send(&server, 0))).await;
    let passed: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status() == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(passed.len(), 5);
    assert_ne!(passed, [0, 1, 2, 3, 4], "admitted in the order sent");
    assert!(started.elapsed() > Duration::from_millis(100));
    assert!(started.elapsed() <= Duration::from_millis(300));
    // Deterministic: the same seed admits the same five.
    let again = SimServer::new(server.with_model(|m| m.config().clone()), 9);
    let answers = futures_util::future::join_all((0..10).map(|_| send(&again, 0))).await;
    let same: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status() == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(same, passed);
}

#[test]
fn clients_sharing_state_know_of_an_exhaustion_another_one_received() {
    // Two processes on one key sharing abide's store; the quota ends after 20 successes.
    // Requests arrive one at a time, alternating between the clients: request 20 (client
    // 0's) receives the permanent error, and client 1 refuses its next ones locally from
    // the shared state before it ever receives one itself: correct endings, not losses.
    let s = Scenario::from_toml(
        "shared.toml",
        "name = 'shared'\n[server]\ndialect = 'openai'\nquota_requests = 20\n[workload]\nclients = 2\nshared_state = true\nrequests = 60\narrival = 'poisson'\nrate_per_s = 1.0\n",
    )
    .unwrap();
    let row = run(&s, Strategy::Abide).unwrap().row;
    assert_eq!(
        (row.succeeded, row.failed_permanent, row.lost),
        (20, 40, 0),
        "{row:?}"
    );
    assert_eq!(row.attempts_after_exhaustion, 0, "{row:?}");
    // The ideal waits for the last arrival, deliverable or not: ending the requests beyond
    // the quota as they arrive is ideal.
    let ratio = row.makespan_ratio.unwrap();
    assert!((1.0..1.02).contains(&ratio), "{row:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_server_answers_a_repeated_key_without_processing_it() {
    let server = SimServer::new(
        ServerConfig {
            idempotency: true,
            quota_requests: 2,
            ..ServerConfig::default()
        },
        1,
    );
    let keyed = |key: &str| {
        let mut req = Request::new(());
        req.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        server.clone().oneshot(req)
    };
    assert_eq!(keyed("a").await.unwrap().status(), StatusCode::OK);
    let again = keyed("a").await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.extensions().get::<Outcome>(),
        Some(&Outcome::Repeated)
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    // The repeat was not charged: one more success fits the quota of 2, then exhaustion.
    assert_eq!(keyed("b").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        keyed("c").await.unwrap().extensions().get::<Outcome>(),
        Some(&Outcome::QuotaExhausted)
    );
    assert_eq!(server.with_model(|m| (m.served(), m.repeated())), (2, 1));
    // A top-up brings the quota back.
    server.with_model(|m| m.extend_quota(1));
    assert_eq!(keyed("c").await.unwrap().status(), StatusCode::OK);
    // Without the key the same server processes every request.
    let plain = SimServer::new(ServerConfig::default(), 1);
    let mut r = Request::new(());
    r.headers_mut()
        .insert("idempotency-key", "a".parse().unwrap());
    plain.clone().oneshot(r).await.unwrap();
    let mut r = Request::new(());
    r.headers_mut()
        .insert("idempotency-key", "a".parse().unwrap());
    assert_eq!(
        plain
            .clone()
            .oneshot(r)
            .await
            .unwrap()
            .extensions()
            .get::<Outcome>(),
        Some(&Outcome::Served)
    );
}

#[test]
fn a_request_waiting_out_a_429_when_its_client_learns_the_quota_is_gone_ends_correctly() {
    // Two processes without shared state, each with 20 requests, 10 at a time, on a key
    // of 4 requests per 10 s and 12 in all: both draw 429s. A request waiting out its
    // 429 when its client receives the permanent error is refused locally: no later
    // attempt could have been served, so that ending is correct, not a loss.
    let s = Scenario::from_toml(
        "waiting.toml",
        "name = 'waiting'\n[server]\ndialect = 'openai'\nquota_requests = 12\nrequests_per_window = 4\nwindow_s = 10.0\nretry_after = false\n[workload]\nclients = 2\nrequests = 40\nconcurrency = 10\n",
    )
    .unwrap();
    let row = run(&s, Strategy::Abide).unwrap().row;
    assert!(row.rejected > 0, "the clients must draw 429s: {row:?}");
    assert_eq!(
        (row.succeeded, row.failed_permanent, row.lost),
        (12, 28, 0),
        "{row:?}"
    );
}
