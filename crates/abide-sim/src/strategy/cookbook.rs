//! `cookbook-parallel`: openai-cookbook `examples/api_request_parallel_processor.py`, the
//! script OpenAI's rate-limit guide points to for throttling parallel requests, modelled
//! from its source (read at the version that matches `"rate limit"` in lowercase and logs
//! with `logging.warning`; an older version compared `error["code"] == "429"`).
//!
//! What the script does, and so what this strategy does:
//! - one main loop per process dispatches requests one at a time, a retried request before
//!   a new one (`queue_of_requests_to_retry` is read first), at most one per loop turn of
//!   `seconds_to_sleep_each_loop` (1 ms);
//! - request and token capacity start full at `max_requests_per_minute` /
//!   `max_tokens_per_minute`, refill at that rate / 60 per second capped at the rate, and a
//!   dispatch takes 1 request and the request's token estimate; the loop waits on the
//!   request at its head until both fit, so a request whose estimate exceeds
//!   `max_tokens_per_minute` holds every request behind it forever;
//! - after a rate-limit error the loop pauses all dispatching until 15 s after it
//!   (`seconds_to_pause_after_rate_limit_error`);
//! - an error puts the request straight back in the retry queue (no backoff) while it has
//!   attempts left (`max_attempts` 5, counted at dispatch); then it is written out as
//!   failed;
//! - the answer is judged only by its JSON body (`call_api`): an aiohttp `response.json()`
//!   that raises (a non-JSON media type, an empty or malformed body) or a connection error
//!   is an error; a JSON body with an `"error"` key is an error, a rate-limit error when
//!   `error.message` contains `"rate limit"` (any case); **any other JSON body is saved as
//!   a success, whatever the status**, so a 429 problem document or GitHub's 403 is
//!   written out as a result and the request is lost.
//!
//! Declared limits: the true (enforced) ones, its best case; for a window other than 60 s
//! the per-minute equivalent `limit x 60 / window`, as a user passing floats to
//! `process_api_requests_from_file` would (the command line takes integers only). Below 1
//! request per minute the script never dispatches (capacity never reaches 1): there we
//! declare 1, the least a user who saw nothing happen would try. The token estimate is the
//! request's declared cost (the script counts prompt tokens with tiktoken plus
//! `n x max_tokens`).

use super::looping::{lock, Answer};
use super::wire::json_view;
use super::{clone_request, duration_secs, Client, ClientContext, SimBody};
use crate::model::ServerConfig;
use crate::service::RequestTokens;
use http::{Request, Response};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceExt};

/// `seconds_to_pause_after_rate_limit_error = 15`.
const PAUSE_AFTER_RATE_LIMIT_ERROR: Duration = Duration::from_secs(15);
/// `seconds_to_sleep_each_loop = 0.001`: one dispatch per loop turn at most.
const LOOP_SLEEP: Duration = Duration::from_millis(1);
/// `--max_attempts` default 5.
const MAX_ATTEMPTS: u32 = 5;

/// The script's `max_requests_per_minute` and `max_tokens_per_minute` for this server;
/// `None` where the server sets no such limit (the check never binds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Declared {
    pub(crate) requests_per_minute: Option<f64>,
    pub(crate) tokens_per_minute: Option<f64>,
}

impl Declared {
    pub(crate) fn new(server: &ServerConfig) -> Self {
        let per_minute = |limit: u64| {
            (limit > 0).then(|| {
                server.enforced(limit) as f64 * 60.0 / server.window.as_secs_f64().max(1e-9)
            })
        };
        Declared {
            requests_per_minute: per_minute(server.requests_per_window).map(|r| r.max(1.0)),
            tokens_per_minute: per_minute(server.tokens_per_window),
        }
    }
}

/// Whether the request at the head of the loop can go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fit {
    Now,
    After(Duration),
    Never,
}

/// `available_request_capacity`, `available_token_capacity`, `last_update_time`.
#[derive(Debug)]
struct Capacity {
    declared: Declared,
    requests: f64,
    tokens: f64,
    last_update: Instant,
}

impl Capacity {
    fn new(declared: Declared, now: Instant) -> Self {
        Capacity {
            declared,
            requests: declared.requests_per_minute.unwrap_or(0.0),
            tokens: declared.tokens_per_minute.unwrap_or(0.0),
            last_update: now,
        }
    }

    /// "update available capacity": refill at the declared rate / 60 per second, capped.
    fn update(&mut self, now: Instant) {
        let seconds = now
            .saturating_duration_since(self.last_update)
            .as_secs_f64();
        if let Some(rpm) = self.declared.requests_per_minute {
            self.requests = (self.requests + rpm * seconds / 60.0).min(rpm);
        }
        if let Some(tpm) = self.declared.tokens_per_minute {
            self.tokens = (self.tokens + tpm * seconds / 60.0).min(tpm);
        }
        self.last_update = now;
    }

    fn fit(&self, tokens: u64) -> Fit {
        let tokens = tokens as f64;
        let mut wait: f64 = 0.0;
        if let Some(rpm) = self.declared.requests_per_minute {
            if self.requests < 1.0 {
                wait = wait.max((1.0 - self.requests) / (rpm / 60.0));
            }
        }
        if let Some(tpm) = self.declared.tokens_per_minute {
            if tokens > tpm {
                return Fit::Never;
            }
            if self.tokens < tokens {
                wait = wait.max((tokens - self.tokens) / (tpm / 60.0));
            }
        }
        if wait > 0.0 {
            // The loop looks again on its next turn: never sooner than 1 ms (a float
            // residue's wait of a few nanoseconds would otherwise spin in place).
            Fit::After(duration_secs(wait).max(LOOP_SLEEP))
        } else {
            Fit::Now
        }
    }

    fn take(&mut self, tokens: u64) {
        if self.declared.requests_per_minute.is_some() {
            self.requests -= 1.0;
        }
        if self.declared.tokens_per_minute.is_some() {
            self.tokens -= tokens as f64;
        }
    }
}

/// What `call_api` makes of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Written out as the request's result: the request is done.
    Saved,
    /// An error: re-queued while attempts are left; a rate-limit error pauses the loop.
    Error { rate_limit: bool },
}

/// aiohttp's `is_expected_content_type(ct, "application/json")`:
/// `re.match(r"^application/(?:[\w.+-]+?\+)?json", ct)`.
fn aiohttp_accepts_json(media_type: &str) -> bool {
    let Some(rest) = media_type.strip_prefix("application/") else {
        return false;
    };
    if rest.starts_with("json") {
        return true;
    }
    let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '+' | '-');
    rest.char_indices().any(|(i, c)| {
        c == '+' && i > 0 && rest[..i].chars().all(word) && rest[i + 1..].starts_with("json")
    })
}

/// `call_api`'s judgement of one answer.
pub(crate) fn verdict(answer: &Answer) -> Verdict {
    const ERROR: Verdict = Verdict::Error { rate_limit: false };
    // Any exception (a connection error, aiohttp's ContentTypeError, a JSON decode error,
    // a TypeError in the checks below) is an error, never a rate-limit error.
    let Ok(res) = answer else { return ERROR };
    let view = json_view(res);
    if !view.media_type.as_deref().is_some_and(aiohttp_accepts_json) {
        return ERROR;
    }
    // An empty body reads as None, and `"error" in None` raises.
    let Ok(response) = serde_json::from_slice::<Value>(&view.body) else {
        return ERROR;
    };
    // `if "error" in response`: a key of a dict, an element of a list, a substring of a
    // string; anything else raises.
    let has_error = match &response {
        Value::Object(m) => m.contains_key("error"),
        Value::Array(a) => a.contains(&Value::from("error")),
        Value::String(s) => s.contains("error"),
        _ => return ERROR,
    };
    if !has_error {
        return Verdict::Saved;
    }
    // `"rate limit" in response["error"].get("message", "").lower()`; a shape where that
    // raises is still an error.
    let rate_limit = match response.get("error") {
        Some(Value::Object(e)) => match e.get("message") {
            Some(Value::String(m)) => m.to_lowercase().contains("rate limit"),
            _ => false,
        },
        _ => false,
    };
    Verdict::Error { rate_limit }
}

/// A request waiting at the loop for its dispatch.
#[derive(Debug)]
struct Ticket {
    tokens: u64,
    go: oneshot::Sender<()>,
}

/// The script's main loop for one process.
#[derive(Debug)]
struct Dispatcher {
    capacity: Capacity,
    last_rate_limit_error: Arc<Mutex<Option<Instant>>>,
    new: mpsc::UnboundedReceiver<Ticket>,
    retry: mpsc::UnboundedReceiver<Ticket>,
}

impl Dispatcher {
    async fn run(mut self) {
        while let Some(mut ticket) = self.next().await {
            if self.wait_for_capacity(&mut ticket).await {
                self.capacity.take(ticket.tokens);
                // A caller gone at this instant has still spent the capacity, as the
                // script's task would have.
                let _ = ticket.go.send(());
                tokio::time::sleep(LOOP_SLEEP).await;
            }
        }
    }

    /// The next request: a retry first, else a new one; `None` when the clients are gone.
    async fn next(&mut self) -> Option<Ticket> {
        if let Ok(t) = self.retry.try_recv() {
            return Some(t);
        }
        if let Ok(t) = self.new.try_recv() {
            return Some(t);
        }
        tokio::select! {
            biased;
            t = self.retry.recv() => t,
            t = self.new.recv() => t,
        }
    }

    /// Waits out the pause and the capacity for `ticket`; false when its caller gave up
    /// meanwhile (its deadline passed), which frees the loop for the next request.
    async fn wait_for_capacity(&mut self, ticket: &mut Ticket) -> bool {
        loop {
            if ticket.go.is_closed() {
                return false;
            }
            let now = Instant::now();
            let paused_until = lock(&self.last_rate_limit_error)
                .map(|t| t + PAUSE_AFTER_RATE_LIMIT_ERROR)
                .filter(|until| *until > now);
            let wait = match paused_until {
                Some(until) => Fit::After(until - now),
                None => {
                    self.capacity.update(now);
                    self.capacity.fit(ticket.tokens)
                }
            };
            match wait {
                Fit::Now => return true,
                Fit::After(d) => tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = ticket.go.closed() => return false,
                },
                Fit::Never => {
                    ticket.go.closed().await;
                    return false;
                }
            }
        }
    }
}

/// The loop's queues, shared by the clones of one client.
#[derive(Debug)]
struct Shared {
    new: mpsc::UnboundedSender<Ticket>,
    retry: mpsc::UnboundedSender<Ticket>,
    last_rate_limit_error: Arc<Mutex<Option<Instant>>>,
    /// The loop, until the first request starts it on the runtime.
    dispatcher: Mutex<Option<Dispatcher>>,
}

/// One process running the script.
#[derive(Clone, Debug)]
struct CookbookParallel<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> CookbookParallel<S> {
    fn new(inner: S, server: &ServerConfig) -> Self {
        let (new_tx, new_rx) = mpsc::unbounded_channel();
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let last_rate_limit_error = Arc::new(Mutex::new(None));
        let dispatcher = Dispatcher {
            capacity: Capacity::new(Declared::new(server), Instant::now()),
            last_rate_limit_error: last_rate_limit_error.clone(),
            new: new_rx,
            retry: retry_rx,
        };
        CookbookParallel {
            inner,
            shared: Arc::new(Shared {
                new: new_tx,
                retry: retry_tx,
                last_rate_limit_error,
                dispatcher: Mutex::new(Some(dispatcher)),
            }),
        }
    }
}

fn stopped() -> BoxError {
    "cookbook-parallel: the dispatch loop stopped".into()
}

impl<S> Service<Request<SimBody>> for CookbookParallel<S>
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<SimBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<SimBody>) -> Self::Future {
        if let Some(dispatcher) = lock(&self.shared.dispatcher).take() {
            tokio::spawn(dispatcher.run());
        }
        let mut inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let tokens = req.extensions().get::<RequestTokens>().map_or(0, |t| t.0);
            let mut attempts_left = MAX_ATTEMPTS;
            let mut retrying = false;
            loop {
                let (go, dispatched) = oneshot::channel();
                let queue = if retrying { &shared.retry } else { &shared.new };
                queue.send(Ticket { tokens, go }).map_err(|_| stopped())?;
                dispatched.await.map_err(|_| stopped())?;
                attempts_left -= 1;
                let answer = inner.ready().await?.call(clone_request(&req)).await;
                match verdict(&answer) {
                    Verdict::Saved => return answer,
                    Verdict::Error { rate_limit } => {
                        if rate_limit {
                            *lock(&shared.last_rate_limit_error) = Some(Instant::now());
                        }
                        if attempts_left == 0 {
                            return answer;
                        }
                        retrying = true;
                    }
                }
            }
        })
    }
}

/// One script per client process, declared at the server's true limits.
pub(super) fn client<S>(inner: S, ctx: &ClientContext) -> Client
where
    S: Service<Request<SimBody>, Response = Response<SimBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneService::new(CookbookParallel::new(inner, &ctx.server))
}

#[cfg(test)]
mod tests;
