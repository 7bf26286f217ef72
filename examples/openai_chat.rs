//! Chat completions through `AbideLayer::openai()` on a hyper-util client, with each
//! request's cost declared in tokens, and every ending read with `abide::Outcome`.
//!
//! ```sh
//! cargo run --example openai_chat                      # a simulated OpenAI API on 127.0.0.1
//! ABIDE_BASE_URL=http://127.0.0.1:8080 cargo run --example openai_chat   # any other server
//! ```
//!
//! The simulated API allows 20 requests and 20 000 tokens per second (OpenAI's
//! `x-ratelimit-*` headers and 429 bodies); 40 requests of 900 tokens each go at once, and
//! abide spaces them so none is lost. About two seconds.

use abide::{AbideLayer, Cost, Model, Outcome, ReplayBody};
use abide_sim::{ServerConfig, SimDialect, SimServer};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinSet;
use tower::{BoxError, ServiceBuilder, ServiceExt};

const REQUESTS: usize = 40;
/// Prompt tokens (an estimate) plus `max_tokens`: what OpenAI counts against the TPM limit.
const PROMPT_TOKENS: u32 = 400;
const MAX_TOKENS: u32 = 500;

/// Starts the simulated API on an ephemeral loopback port; returns its base URL.
async fn simulated_api() -> Result<String, BoxError> {
    let config = ServerConfig {
        dialect: SimDialect::OpenAi,
        window: Duration::from_secs(1),
        requests_per_window: 20,
        tokens_per_window: 20_000,
        latency: Duration::from_millis(30),
        ..ServerConfig::default()
    };
    let server = SimServer::with_epoch(config, 7, SystemTime::now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(abide_sim::http::serve(
        listener,
        server,
        std::future::pending(),
    ));
    Ok(base)
}

fn chat(base: &str, key: &str, i: usize, simulated: bool) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":{MAX_TOKENS},"messages":[{{"role":"user","content":"question {i}"}}]}}"#
    );
    let mut builder = Request::post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"));
    if simulated {
        // How the simulated API learns a request's tokens; a real API counts them itself.
        builder = builder.header(
            abide_sim::TOKENS_HEADER,
            (PROMPT_TOKENS + MAX_TOKENS).to_string(),
        );
    }
    let mut request = builder
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    // The bucket: OpenAI limits each model apart.
    request.extensions_mut().insert(Model::new("gpt-4o-mini"));
    // The cost: paced against the TPM limit the response headers state.
    request
        .extensions_mut()
        .insert(Cost(PROMPT_TOKENS + MAX_TOKENS));
    request
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (base, simulated) = match std::env::var("ABIDE_BASE_URL") {
        Ok(url) => (url.trim_end_matches('/').to_owned(), false),
        Err(_) => (simulated_api().await?, true),
    };
    let key = std::env::var("OPENAI_API_KEY").unwrap_or_else(|_| "sk-example".into());
    println!("{REQUESTS} chat completions to {base}");

    let http = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let client = ServiceBuilder::new()
        .layer(AbideLayer::openai())
        .service(http);

    let started = Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..REQUESTS {
        let request = chat(&base, &key, i, simulated);
        let client = client.clone();
        calls.spawn(async move {
            let result = client.oneshot(request).await;
            let outcome = Outcome::of(&result);
            // Read the body to its end: until then the response holds its cap permit.
            if let Ok(response) = result {
                let _ = response.into_body().collect().await;
            }
            outcome
        });
    }
    let mut tally: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut attempts = 0;
    while let Some(outcome) = calls.join_next().await {
        let outcome = outcome?;
        match &outcome {
            Outcome::Success { attempts: n } => attempts += n,
            Outcome::QuotaExhausted { .. } => eprintln!("stop: the account's quota is gone"),
            other => eprintln!("{other}"),
        }
        *tally.entry(outcome.as_str()).or_default() += 1;
    }
    println!(
        "{:?} in {:.1} s, {attempts} attempts for the successes",
        tally,
        started.elapsed().as_secs_f64()
    );
    if simulated && tally.get("success") != Some(&REQUESTS) {
        return Err("some requests were lost against the simulated API".into());
    }
    Ok(())
}
