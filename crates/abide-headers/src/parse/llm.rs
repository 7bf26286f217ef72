//! OpenAI / Azure OpenAI / Groq and Anthropic.

use super::{names, texts, Cx};
use crate::value;
use crate::{Dialect, Limit, Scope};
use http::HeaderName;

names! {
    OAI_LIMIT_REQUESTS = "x-ratelimit-limit-requests";
    OAI_REMAINING_REQUESTS = "x-ratelimit-remaining-requests";
    OAI_RESET_REQUESTS = "x-ratelimit-reset-requests";
    OAI_LIMIT_TOKENS = "x-ratelimit-limit-tokens";
    OAI_REMAINING_TOKENS = "x-ratelimit-remaining-tokens";
    OAI_RESET_TOKENS = "x-ratelimit-reset-tokens";

    AN_REQUESTS_LIMIT = "anthropic-ratelimit-requests-limit";
    AN_REQUESTS_REMAINING = "anthropic-ratelimit-requests-remaining";
    AN_REQUESTS_RESET = "anthropic-ratelimit-requests-reset";
    AN_TOKENS_LIMIT = "anthropic-ratelimit-tokens-limit";
    AN_TOKENS_REMAINING = "anthropic-ratelimit-tokens-remaining";
    AN_TOKENS_RESET = "anthropic-ratelimit-tokens-reset";
    AN_INPUT_LIMIT = "anthropic-ratelimit-input-tokens-limit";
    AN_INPUT_REMAINING = "anthropic-ratelimit-input-tokens-remaining";
    AN_INPUT_RESET = "anthropic-ratelimit-input-tokens-reset";
    AN_OUTPUT_LIMIT = "anthropic-ratelimit-output-tokens-limit";
    AN_OUTPUT_REMAINING = "anthropic-ratelimit-output-tokens-remaining";
    AN_OUTPUT_RESET = "anthropic-ratelimit-output-tokens-reset";
}

/// OpenAI (<https://platform.openai.com/docs/guides/rate-limits>, "Rate limits in
/// headers"), Azure OpenAI and Groq (<https://console.groq.com/docs/rate-limits>):
/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as Go durations
/// (`6m0s`, `1.5s`, `12ms`), Azure's `-1` meaning unknown.
pub(super) fn openai(cx: &mut Cx<'_>) {
    let names = [
        &OAI_LIMIT_REQUESTS,
        &OAI_REMAINING_REQUESTS,
        &OAI_RESET_REQUESTS,
        &OAI_LIMIT_TOKENS,
        &OAI_REMAINING_TOKENS,
        &OAI_RESET_TOKENS,
    ];
    let values = texts(cx.headers, "x-ratelimit-", names);
    for (scope, at) in [(Scope::Requests, 0), (Scope::Tokens, 3)] {
        let mut l = Limit::new(scope, Dialect::OpenAi);
        l.limit = cx.count_of(names[at], values[at]);
        l.remaining = cx.count_of(names[at + 1], values[at + 1]);
        l.reset = cx.field_of(names[at + 2], values[at + 2], value::go_duration);
        if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() {
            cx.push(l);
        }
    }
}

/// Anthropic (<https://docs.anthropic.com/en/api/rate-limits>, "Response headers"):
/// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
/// resets as RFC 3339 instants.
pub(super) fn anthropic(cx: &mut Cx<'_>) {
    let names: [&HeaderName; 12] = [
        &AN_REQUESTS_LIMIT,
        &AN_REQUESTS_REMAINING,
        &AN_REQUESTS_RESET,
        &AN_TOKENS_LIMIT,
        &AN_TOKENS_REMAINING,
        &AN_TOKENS_RESET,
        &AN_INPUT_LIMIT,
        &AN_INPUT_REMAINING,
        &AN_INPUT_RESET,
        &AN_OUTPUT_LIMIT,
        &AN_OUTPUT_REMAINING,
        &AN_OUTPUT_RESET,
    ];
    let values = texts(cx.headers, "anthropic-ratelimit-", names);
    for (scope, at) in [
        (Scope::Requests, 0),
        (Scope::Tokens, 3),
        (Scope::InputTokens, 6),
        (Scope::OutputTokens, 9),
    ] {
        let mut l = Limit::new(scope, Dialect::Anthropic);
        l.limit = cx.count_of(names[at], values[at]);
        l.remaining = cx.count_of(names[at + 1], values[at + 1]);
        l.reset = match values[at + 2] {
            // The clock (or `Date`) is read only when a reset instant is there.
            Some(_) => {
                let now = cx.now();
                cx.field_of(names[at + 2], values[at + 2], |s| {
                    value::rfc3339(s).map(|t| value::until(t, now))
                })
            }
            None => None,
        };
        if l.limit.is_some() || l.remaining.is_some() || l.reset.is_some() {
            cx.push(l);
        }
    }
}
