//! The workload driver: runs one (scenario, strategy) pair in virtual time and measures it.

use crate::dialect::StatedWait;
use crate::http::HttpConnection;
use crate::metrics::{ideal_makespan, percentile, round, Row};
use crate::model::Outcome;
use crate::scenario::{Arrival, Scenario};
use crate::service::{ConnectionRefused, RequestTokens, SimServer, TOKENS_HEADER};
use crate::strategy::{is_success, ClientContext, SimBody, Strategy};
use crate::SimDialect;
use abide_cap::{LocalStore, QuotaStore};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderName, Method, Request, Response};
use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};

/// The request header carrying a logical request's id (kept by every retry, as headers
/// are), so the harness can tell which logical request each attempt belongs to.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-sim-request-id");

/// When each attempt's answer arrived, by kind, for plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Seconds from the start at which a served answer arrived.
    pub successes: Vec<f64>,
    /// Seconds from the start at which a rejection (rate limit or overload) arrived.
    pub rejections: Vec<f64>,
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// The scoreboard row.
    pub row: Row,
    /// Answers over time.
    pub timeline: Timeline,
}

/// One process's share of a fleet run ([`run_part_over_http`]): the logical requests of
/// the clients `c` with `c % processes == process`, through `store`.
#[derive(Clone, Debug)]
pub struct FleetPart {
    /// This process's index, from 0.
    pub process: u32,
    /// How many processes share the run.
    pub processes: u32,
    /// The quota store every client of this process uses (a store shared by the fleet, or
    /// this process's own); `None`: as the scenario says.
    pub store: Option<Arc<dyn QuotaStore>>,
}

/// What one process of a fleet run measured: counts, latencies and the end of its last
/// request. Serializable, so a worker process can hand it to the parent, which
/// [`merge`](Tally::merge)s the parts and makes the row with [`fleet_row`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Latencies of the succeeded requests, in seconds.
    pub latencies: Vec<f64>,
    /// Requests ended on a permanent quota error.
    pub failed_permanent: u64,
    /// Oversized requests ended without success.
    pub failed_client: u64,
    /// Requests ended by their deadline.
    pub timed_out: u64,
    /// Lost requests that gave up alone on an outage, or on refusals stating no wait.
    pub gave_up_alone: u64,
    /// Attempts sent.
    pub attempts: u64,
    /// Rejections received.
    pub rejected: u64,
    /// Attempts sent after a permanent quota error.
    pub after_exhaustion: u64,
    /// Seconds from the start until the last request ended.
    pub makespan_s: f64,
    /// Every request ended within the time limit.
    pub finished: bool,
    /// Answers over time.
    pub timeline: Timeline,
}

impl Tally {
    /// The fleet's tally: counts added, latencies and timelines pooled, the latest end.
    pub fn merge(parts: impl IntoIterator<Item = Tally>) -> Tally {
        let mut all = Tally {
            finished: true,
            ..Tally::default()
        };
        for p in parts {
            all.latencies.extend(p.latencies);
            all.failed_permanent += p.failed_permanent;
            all.failed_client += p.failed_client;
            all.timed_out += p.timed_out;
            all.gave_up_alone += p.gave_up_alone;
            all.attempts += p.attempts;
            all.rejected += p.rejected;
            all.after_exhaustion += p.after_exhaustion;
            all.makespan_s = all.makespan_s.max(p.makespan_s);
            all.finished &= p.finished;
            all.timeline.successes.extend(p.timeline.successes);
            all.timeline.rejections.extend(p.timeline.rejections);
        }
        all.timeline.successes.sort_by(f64::total_cmp);
        all.timeline.rejections.sort_by(f64::total_cmp);
        all
    }
}

#[derive(Debug, Default)]
struct Stats {
    attempts: u64,
    rejected: u64,
    after_exhaustion: u64,
    /// Answers counted so far, in the order they arrived.
    answers: u64,
    /// Per client (or the one shared state): the number of the first answer that told it
    /// the quota is gone for good.
    exhausted: Vec<Option<u64>>,
    /// Per request: its latest answer.
    last: Vec<Option<LastAnswer>>,
    /// Logical requests of each client picked up by a caller and not yet ended.
    active: Vec<u32>,
    timeline: Timeline,
}

/// How the clients reach the server: in process (virtual time) or over HTTP (real time).
#[derive(Clone, Debug)]
enum Connection {
    InProcess(SimServer),
    Http(Box<HttpConnection>),
}

/// One client's connection: counts every attempt and what the server made of it.
#[derive(Clone, Debug)]
struct Probe {
    connection: Connection,
    start: Instant,
    /// Whose knowledge of exhaustion this client has: its own index, or 0 for every client
    /// when they share state (the strategy keeps a store all clients read).
    knows: usize,
    stats: Arc<Mutex<Stats>>,
}

fn lock(m: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn request_id<B>(req: &Request<B>) -> Option<usize> {
    req.headers()
        .get(&REQUEST_ID_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl<B> Service<Request<B>> for Probe
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = ProbeFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ProbeFuture {
        {
            let mut s = lock(&self.stats);
            s.attempts += 1;
            if s.exhausted.get(self.knows).copied().flatten().is_some() {
                s.after_exhaustion += 1;
            }
        }
        let id = request_id(&req);
        let inner: Answer = match &mut self.connection {
            Connection::InProcess(server) => Box::pin(server.call(req)),
            Connection::Http(http) => http.call(req),
        };
        ProbeFuture {
            id,
            inner,
            knows: self.knows,
            stats: self.stats.clone(),
            start: self.start,
        }
    }
}

/// An attempt's answer on its way (boxed: this is the harness, not library code).
type Answer = Pin<Box<dyn Future<Output = Result<Response<SimBody>, BoxError>> + Send>>;

pin_project! {
    struct ProbeFuture {
        #[pin]
        inner: Answer,
        id: Option<usize>,
        knows: usize,
        stats: Arc<Mutex<Stats>>,
        start: Instant,
    }
}

impl Future for ProbeFuture {
    type Output = Result<Response<SimBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        // What was answered, and whether it said when to come back.
        let answered = match &result {
            Ok(res) => res.extensions().get::<Outcome>().map(|&o| {
                let stated = res.extensions().get::<StatedWait>().is_none_or(|s| s.0);
                (o, stated)
            }),
            Err(e) if e.is::<ConnectionRefused>() => Some((Outcome::Refused, false)),
            Err(_) => None,
        };
        if let Some((outcome, stated_wait)) = answered {
            let t = this.start.elapsed().as_secs_f64();
            let mut s = lock(this.stats);
            s.answers += 1;
            let seq = s.answers;
            if outcome.is_rejection() {
                s.rejected += 1;
                s.timeline.rejections.push(t);
            } else if outcome == Outcome::Served {
                s.timeline.successes.push(t);
            }
            if outcome.is_permanent() {
                if let Some(e) = s.exhausted.get_mut(*this.knows) {
                    e.get_or_insert(seq);
                }
            }
            if let Some(slot) = this.id.and_then(|id| s.last.get_mut(id)) {
                *slot = Some(LastAnswer {
                    outcome,
                    seq,
                    stated_wait,
                });
            }
        }
        Poll::Ready(result)
    }
}

/// A request's latest answer: what it was, its number among all answers, and whether it
/// said when to come back ([`StatedWait`]).
#[derive(Clone, Copy, Debug)]
struct LastAnswer {
    outcome: Outcome,
    seq: u64,
    stated_wait: bool,
}

impl LastAnswer {
    /// Whether a lone caller giving up on it is the loss a client may accept: an outage,
    /// or a refusal with no word of when to come back (the retry layer's at most 6
    /// attempts within 40 s end it), both longer than its retry window.
    fn leaves_a_lone_caller_nothing(self) -> bool {
        match self.outcome {
            Outcome::Outage(_) | Outcome::Refused => true,
            Outcome::RateLimited(_) => !self.stated_wait,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Succeeded(f64),
    FailedPermanent,
    FailedClient,
    TimedOut,
    Lost,
    /// Lost by a request that was alone in its client when it gave up on an outage (or
    /// on refusals that stated no wait).
    GaveUpAlone,
}

/// How a logical request ended, and when (seconds from the start).
type Ended = (End, f64);

/// Builds the request a caller sends for logical request `id`.
fn build_request(id: usize, tokens: u64, dialect: SimDialect) -> Request<SimBody> {
    let (uri, content_type) = if dialect == SimDialect::Grpc {
        (
            "http://api.sim.local/sim.v1.Completions/Create",
            "application/grpc",
        )
    } else {
        (
            "http://api.sim.local/v1/chat/completions",
            "application/json",
        )
    };
    let mut req = Request::new(SimBody::new(Bytes::from_static(
        br#"{"model":"sim-model"}"#,
    )));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = http::Uri::from_static(uri);
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(REQUEST_ID_HEADER, HeaderValue::from(id as u64));
    headers.insert(TOKENS_HEADER, HeaderValue::from(tokens));
    req.extensions_mut().insert(RequestTokens(tokens));
    req
}

/// Runs `strategy` on `scenario` on a fresh current-thread runtime with a paused clock:
/// the same inputs give the same result, byte for byte.
///
/// # Errors
/// Only when the runtime cannot be built.
pub fn run(scenario: &Scenario, strategy: Strategy) -> std::io::Result<RunResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    // The server is built inside the runtime: outside it, tokio's `Instant::now` reads
    // the real clock, and real microseconds would leak into the virtual run.
    Ok(rt.block_on(async {
        let server = SimServer::new(scenario.server.clone(), scenario.seed);
        let start = server.start();
        let epoch = server.now_wall() - server.elapsed();
        let connection = Connection::InProcess(server);
        let tally = drive(
            scenario,
            strategy,
            connection,
            start,
            epoch,
            Arc::new(|_| {}),
            None,
        )
        .await;
        result(scenario, strategy, tally)
    }))
}

/// Runs `strategy` on `scenario` in real time against the simulated API served over HTTP
/// at `base` (see [`http::serve`](crate::http::serve); serve a fresh
/// [`SimServer`] built from the same scenario and seed for each run). `on_end` is told of
/// each logical request as it ends (`true` when it succeeded), for progress displays.
///
/// Counts come from the [`OUTCOME_HEADER`](crate::http::OUTCOME_HEADER) of each answer, so
/// the row means what it means in virtual time; the makespan is wall time.
pub async fn run_over_http(
    scenario: &Scenario,
    strategy: Strategy,
    base: http::Uri,
    on_end: Arc<dyn Fn(bool) + Send + Sync>,
) -> RunResult {
    let connection = Connection::Http(Box::new(HttpConnection::new(base)));
    let tally = drive(
        scenario,
        strategy,
        connection,
        Instant::now(),
        std::time::SystemTime::now(),
        on_end,
        None,
    )
    .await;
    result(scenario, strategy, tally)
}

/// Runs one process's [`FleetPart`] of `scenario` in real time against the simulated API
/// at `base`, from `start` (the same moment in every process of the fleet: arrivals and
/// the makespan count from it). [`Tally::merge`] the parts, then [`fleet_row`].
pub async fn run_part_over_http(
    scenario: &Scenario,
    strategy: Strategy,
    base: http::Uri,
    part: FleetPart,
    start: Instant,
) -> Tally {
    let connection = Connection::Http(Box::new(HttpConnection::new(base)));
    let epoch = std::time::SystemTime::now() - start.elapsed();
    drive(
        scenario,
        strategy,
        connection,
        start,
        epoch,
        Arc::new(|_| {}),
        Some(part),
    )
    .await
}

/// The scoreboard row of a whole fleet run from its merged [`Tally`].
pub fn fleet_row(scenario: &Scenario, strategy: Strategy, tally: Tally) -> Row {
    result(scenario, strategy, tally).row
}

async fn drive(
    scenario: &Scenario,
    strategy: Strategy,
    connection: Connection,
    start: Instant,
    epoch: std::time::SystemTime,
    on_end: Arc<dyn Fn(bool) + Send + Sync>,
    part: Option<FleetPart>,
) -> Tally {
    let plan = scenario.plan();
    let w = &scenario.workload;
    let clients = w.clients as usize;
    let stats = Arc::new(Mutex::new(Stats {
        exhausted: vec![None; clients],
        active: vec![0; clients],
        last: vec![None; plan.len()],
        ..Stats::default()
    }));
    let shared_store = match part.as_ref() {
        Some(FleetPart {
            store: Some(store), ..
        }) => Some(store.clone()),
        _ => w
            .shared_state
            .then(|| Arc::new(LocalStore::new()) as Arc<dyn QuotaStore>),
    };
    let mine = |client: u32| {
        part.as_ref()
            .is_none_or(|p| client % p.processes.max(1) == p.process)
    };
    let shared = w.shared_state && strategy.shares_state();
    let services: Vec<_> = (0..clients)
        .map(|c| {
            let probe = Probe {
                connection: connection.clone(),
                start,
                knows: if shared { 0 } else { c },
                stats: stats.clone(),
            };
            let ctx = ClientContext {
                client: c as u32,
                seed: scenario.seed,
                start,
                epoch,
                shared_store: shared_store.clone(),
                server: scenario.server.clone(),
            };
            strategy.client(probe, &ctx)
        })
        .collect();
    let callers: Vec<_> = (0..clients)
        .map(|_| Arc::new(Semaphore::new(w.concurrency as usize)))
        .collect();
    let ends: Arc<Mutex<Vec<Option<Ended>>>> = Arc::new(Mutex::new(vec![None; plan.len()]));
    let open_loop = !matches!(w.arrival, Arrival::Closed);

    let mut tasks = JoinSet::new();
    for (id, p) in plan.iter().enumerate() {
        if !mine(p.client) {
            continue;
        }
        let svc = services[p.client as usize].clone();
        let callers = callers[p.client as usize].clone();
        let ends = ends.clone();
        let stats = stats.clone();
        let req = build_request(id, p.tokens, scenario.server.dialect);
        let arrival = start + p.arrival;
        let deadline = w.deadline;
        let client = p.client as usize;
        let knows = if shared { 0 } else { client };
        let oversized = p.oversized;
        let on_end = on_end.clone();
        tasks.spawn(async move {
            tokio::time::sleep_until(arrival).await;
            let Ok(_caller) = callers.acquire_owned().await else {
                return;
            };
            let began = if open_loop { arrival } else { Instant::now() };
            if let Some(a) = lock(&stats).active.get_mut(client) {
                *a += 1;
            }
            let call = svc.oneshot(req);
            let result = match deadline {
                Some(d) => tokio::time::timeout(d, call).await.ok(),
                None => Some(call.await),
            };
            let end = match result {
                None => End::TimedOut,
                Some(Ok(res)) if is_success(&res) => End::Succeeded(began.elapsed().as_secs_f64()),
                Some(_) => {
                    let s = lock(&stats);
                    let alone = s.active.get(client) == Some(&1);
                    let answered = s.last.get(id).copied().flatten();
                    let last = answered.map(|a| a.outcome);
                    let exhausted_at = s.exhausted.get(knows).copied().flatten();
                    // Ended by the server's permanent quota error: its own last answer, or
                    // refused locally by a client that received one after this request's
                    // last answer (none at all, or a 429 it was waiting out): the quota
                    // was gone for good, so no later attempt could have been served.
                    let refused_after_exhaustion =
                        exhausted_at.is_some_and(|at| answered.is_none_or(|a| a.seq < at));
                    if last.is_some_and(Outcome::is_permanent) || refused_after_exhaustion {
                        End::FailedPermanent
                    } else if oversized || last.is_some_and(Outcome::is_client_error) {
                        // A request too large for the whole limit can never succeed: any
                        // ending of it is correct, a local refusal included.
                        End::FailedClient
                    } else if alone
                        && answered.is_some_and(LastAnswer::leaves_a_lone_caller_nothing)
                    {
                        End::GaveUpAlone
                    } else {
                        End::Lost
                    }
                }
            };
            if let Some(a) = lock(&stats).active.get_mut(client) {
                *a -= 1;
            }
            let done = start.elapsed().as_secs_f64();
            on_end(matches!(end, End::Succeeded(_)));
            if let Some(slot) = ends.lock().unwrap_or_else(|e| e.into_inner()).get_mut(id) {
                *slot = Some((end, done));
            }
        });
    }
    let finished = tokio::time::timeout_at(start + scenario.time_limit, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    tasks.abort_all();

    let ends = ends.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let stats = std::mem::take(&mut *lock(&stats));
    let mut tally = Tally {
        attempts: stats.attempts,
        rejected: stats.rejected,
        after_exhaustion: stats.after_exhaustion,
        finished,
        timeline: stats.timeline,
        ..Tally::default()
    };
    for (end, done) in ends.iter().flatten() {
        tally.makespan_s = tally.makespan_s.max(*done);
        match end {
            End::Succeeded(lat) => tally.latencies.push(*lat),
            End::FailedPermanent => tally.failed_permanent += 1,
            End::FailedClient => tally.failed_client += 1,
            End::TimedOut => tally.timed_out += 1,
            End::GaveUpAlone => tally.gave_up_alone += 1,
            End::Lost => {}
        }
    }
    tally
}

/// The row of a run from its tally.
fn result(scenario: &Scenario, strategy: Strategy, tally: Tally) -> RunResult {
    let w = &scenario.workload;
    let plan = scenario.plan();
    let Tally {
        mut latencies,
        failed_permanent,
        failed_client,
        timed_out,
        gave_up_alone,
        attempts,
        rejected,
        after_exhaustion,
        mut makespan_s,
        finished,
        timeline,
    } = tally;
    let succeeded = latencies.len() as u64;
    if !finished {
        makespan_s = scenario.time_limit.as_secs_f64();
    }
    latencies.sort_by(f64::total_cmp);
    let requests = w.requests;
    let ideal = ideal_makespan(scenario, &plan);
    let row = Row {
        scenario: scenario.name.clone(),
        strategy: strategy.name().to_owned(),
        clients: w.clients,
        requests,
        succeeded,
        failed_permanent,
        failed_client,
        timed_out,
        lost: requests.saturating_sub(succeeded + failed_permanent + failed_client + timed_out),
        gave_up_alone,
        attempts,
        rejected,
        rejected_per_success: (succeeded > 0).then(|| round(rejected as f64 / succeeded as f64)),
        amplification: round(attempts as f64 / requests as f64),
        attempts_after_exhaustion: after_exhaustion,
        makespan_s: round(makespan_s),
        ideal_makespan_s: round(ideal),
        makespan_ratio: (ideal > 0.0).then(|| round(makespan_s / ideal)),
        p50_latency_s: percentile(&latencies, 0.5).map(round),
        p99_latency_s: percentile(&latencies, 0.99).map(round),
    };
    RunResult { row, timeline }
}
