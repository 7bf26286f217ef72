//! The presets through the public API: buckets, replay safety, attempt timeouts, in
//! virtual time against a scripted API.

mod common;

use abide::{AbideLayer, Outcome};
use common::{chat, insufficient_quota, Reply, Script};
use http::Request;
use std::io;
use std::time::Duration;
use tower::{Layer, ServiceExt};

#[tokio::test(start_paused = true)]
async fn openai_retries_a_completion_after_a_502_as_its_sdk_does() {
    let api = Script::new([Reply::status(502)]);
    let client = AbideLayer::openai().layer(api.service());
    let result = client.oneshot(chat("api.openai.com", "gpt-4o-mini")).await;
    assert_eq!(Outcome::of(&result), Outcome::Success { attempts: 2 });
    assert_eq!(api.count(), 2);
    let seen = api.seen.lock().unwrap();
    assert_eq!(
        seen[0].body, seen[1].body,
        "the retry sends the same prompt"
    );
}

#[tokio::test(start_paused = true)]
async fn every_llm_preset_retries_an_ambiguous_failure_of_a_post() {
    for (name, layer) in [
        ("openai", AbideLayer::openai()),
        ("anthropic", AbideLayer::anthropic()),
        ("gemini", AbideLayer::gemini()),
        ("azure_openai", AbideLayer::azure_openai()),
    ] {
        let api = Script::new([Reply::Fail(io::ErrorKind::ConnectionReset)]);
        let result = layer
            .layer(api.service())
            .oneshot(chat("llm.example.com", "m"))
            .await;
        assert_eq!(
            Outcome::of(&result),
            Outcome::Success { attempts: 2 },
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn generic_and_github_do_not_replay_a_post_whose_fate_is_unknown() {
    for (name, layer) in [
        ("generic", AbideLayer::generic()),
        ("github", AbideLayer::github()),
    ] {
        let api = Script::new([Reply::status(502)]);
        let post = Request::post("https://api.github.com/repos/a/b/issues")
            .body(common::Body::from("{}"))
            .unwrap();
        let result = layer.layer(api.service()).oneshot(post).await;
        assert!(
            matches!(Outcome::of(&result), Outcome::NotReplayed { status: Some(s), .. } if s == 502),
            "{name}: {:?}",
            Outcome::of(&result)
        );
        assert_eq!(api.count(), 1, "{name}: sent once");
    }
}

#[tokio::test(start_paused = true)]
async fn an_llm_attempt_is_cut_after_600_s_and_tried_again() {
    let api = Script::new([Reply::Slow(Duration::from_secs(3600))]);
    let client = AbideLayer::anthropic().layer(api.service());
    let start = tokio::time::Instant::now();
    let result = client.oneshot(chat("api.anthropic.com", "claude")).await;
    assert_eq!(Outcome::of(&result), Outcome::Success { attempts: 2 });
    let cut = api.seen.lock().unwrap()[1].at - start;
    assert!(
        cut >= abide::LLM_ATTEMPT_TIMEOUT
            && cut < abide::LLM_ATTEMPT_TIMEOUT + Duration::from_secs(20),
        "second attempt at {cut:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn openai_models_have_buckets_of_their_own() {
    let api = Script::new([insufficient_quota()]);
    let client = AbideLayer::openai().layer(api.service());

    let first = client
        .clone()
        .oneshot(chat("api.openai.com", "gpt-4o"))
        .await;
    assert!(matches!(
        Outcome::of(&first),
        Outcome::QuotaExhausted { .. }
    ));
    // The same model is refused without being sent...
    let again = client
        .clone()
        .oneshot(chat("api.openai.com", "gpt-4o"))
        .await;
    assert!(matches!(
        Outcome::of(&again),
        Outcome::QuotaExhausted { .. }
    ));
    assert_eq!(
        api.count(),
        1,
        "the exhausted model's bucket is not asked again"
    );
    let err = again.unwrap_err();
    let exhausted = err.downcast_ref::<abide::BucketExhausted>().unwrap();
    assert_eq!(exhausted.bucket().as_str(), "api.openai.com/gpt-4o");
    // ...another model still goes.
    let other = client.oneshot(chat("api.openai.com", "gpt-4o-mini")).await;
    assert!(Outcome::of(&other).is_success());
    assert_eq!(api.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn gemini_buckets_by_the_model_in_the_path() {
    let daily = Reply::status(429).header("content-type", "application/json").body(
        r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#,
    );
    let api = Script::new([daily]);
    let client = AbideLayer::gemini().layer(api.service());
    let call = |model: &str| {
        Request::post(format!(
            "https://generativelanguage.googleapis.com/v1beta/models/{model}:generateContent"
        ))
        .body(common::Body::from("{}"))
        .unwrap()
    };
    let first = client.clone().oneshot(call("gemini-2.0-flash")).await;
    assert!(
        matches!(Outcome::of(&first), Outcome::QuotaExhausted { .. }),
        "{:?}",
        Outcome::of(&first)
    );
    let other = client.clone().oneshot(call("gemini-1.5-pro")).await;
    assert!(Outcome::of(&other).is_success());
    let again = client.oneshot(call("gemini-2.0-flash")).await;
    assert!(matches!(
        Outcome::of(&again),
        Outcome::QuotaExhausted { .. }
    ));
    assert_eq!(api.count(), 2, "the exhausted model was not asked again");
}

#[tokio::test(start_paused = true)]
async fn github_search_limits_do_not_pause_the_core_api() {
    let limited = Reply::status(403)
        .header("x-ratelimit-limit", "30")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-used", "30")
        .header("x-ratelimit-resource", "search")
        .header(
            "x-ratelimit-reset",
            (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 30)
                .to_string(),
        )
        .body(r#"{"message":"API rate limit exceeded"}"#);
    let api = Script::new([limited]);
    let client = AbideLayer::github().layer(api.service());
    let get = |path: &str| {
        Request::get(format!("https://api.github.com{path}"))
            .body(common::Body::from(""))
            .unwrap()
    };
    let search = tokio::spawn(client.clone().oneshot(get("/search/code?q=abide")));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = tokio::time::Instant::now();
    let core = client.oneshot(get("/repos/abide-rs/abide")).await;
    assert!(Outcome::of(&core).is_success());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "core was not paused"
    );
    let search = search.await.unwrap();
    assert!(
        Outcome::of(&search).is_success(),
        "search waited for its reset"
    );
    assert_eq!(api.count(), 3);
}
