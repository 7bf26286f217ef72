//! Admit each request to a rate-limited API so the client uses its whole quota without 429s.
//!
//! ```
//! use abide_cap::{ConcurrencyCapLayer, Cost, InFlight};
//! use http::{Request, Response};
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), abide_cap::BoxError> {
//! let api = tower::service_fn(|_request: Request<String>| async {
//!     Ok::<_, Infallible>(Response::new(String::from("ok")))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(ConcurrencyCapLayer::new().with_in_flight(InFlight::fixed(4)))
//!     .service(api);
//!
//! let mut request = Request::post("https://api.example.com/v1/chat").body(String::new())?;
//! request.extensions_mut().insert(Cost(1_200)); // estimated tokens
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! # What it does
//!
//! Every request (every attempt, under a retry layer) is admitted per **bucket** — by
//! default the request's authority, or what [`with_key_fn`](ConcurrencyCapLayer::with_key_fn)
//! returns — before the inner service sees it:
//!
//! 1. **In-flight cap** ([`InFlight`]): fixed, or adaptive (AIMD). Requests wait for a
//!    permit in FIFO order, retries ahead of first attempts (a permit given back goes to
//!    the first waiting retry: a refused request that came back to the end of the line
//!    kept its rank in each window, and the rank the server refused was refused again
//!    every time, until its attempts ran out). The permit is held until the response
//!    **body** ends or is dropped ([`ResponseBody`]), so a streamed answer counts as in
//!    flight. A body the caller never reads keeps its permit: when a request gives up
//!    waiting for a permit and nothing moved in its bucket for the whole wait (no permit
//!    freed, no body frame read), the cap emits a `tracing` warning naming the bucket.
//! 2. **Pacing**, in the [`QuotaStore`]: a whole-bucket pause after a rate-limit verdict;
//!    the exhaustion state; declared quotas ([`governor::Quota`], GCRA, weighted by
//!    [`Cost`]); and the limits learned from responses (below). The store answers with
//!    the slot the request may go at; the request sleeps in its response future until then.
//! 3. The future then drives **its own clone** of the inner service to readiness and
//!    calls it: a waiting request reserves nothing downstream.
//! 4. The response's [`Classification`](abide_classify::Classification) and
//!    [`RateLimitSnapshot`](abide_headers::RateLimitSnapshot) (from the classifier below,
//!    or computed from the head when it is absent) go back to the store.
//!
//! # Learned limits
//!
//! For each limit in a response's snapshot that states `remaining` and a reset (per scope:
//! requests, tokens, input/output tokens, named policies):
//!
//! - **Unnamed limits**: a header that states whichever limit binds most (IETF drafts 03
//!   to 07, `X-RateLimit-*`, GitHub without a resource) names none of them: it states the
//!   request limit on one answer and the token limit on the next. Each is learned apart,
//!   by the limit it states, and counts requests until three answers in a row fall by
//!   the cost units admitted between them (within an eighth), none by the number of
//!   requests: from then on it counts the declared [`Cost`].
//! - **Not yet counted**: every admission gets a ticket (the bucket's running count of
//!   requests and cost units, and the instant it is let go). The observation of a
//!   response subtracts what the bucket let go *after* that request — in flight or
//!   reserved — from the server's `remaining`. A slot reserved ahead is let go after
//!   requests admitted later went at once, and the server counted those: [`LocalStore`]
//!   keeps when its latest admissions are let go, from the first answer that teaches a
//!   limit (64 of them, 2 KiB; 1024, 32 KiB, once a window slides). The other way round,
//!   a quick answer after a slow one places a token bucket's schedule earlier, and
//!   newcomers go ahead of slots reserved before them: counted by admission, those slots
//!   read as spent already and the bucket was overdrawn. A shared store, and a token
//!   bucket's share of what others draw, count by admission,
//!   `left = remaining − (count_now − count_at_ticket)`.
//! - **Token buckets** (OpenAI and Anthropic, whose `reset` is documented as the time until
//!   the bucket is full again, refilling continuously): the refill is
//!   `(limit − remaining) / reset` per unit (exact even when the advertised limit is not
//!   the enforced one), else `limit / window`. The scope is paced by GCRA with the
//!   bucket's capacity as burst and the level the response states: a full bucket is used
//!   at once, an empty one waits for **one unit's refill**, not the whole reset.
//!   - *Shared keys*: every 2 s or more (and at least four units' refill: levels are
//!     stated in whole units, off by up to one), what the server's level lost beyond
//!     the refill and this client's own admissions is what other processes on the key
//!     took; sooner when that is eight requests' worth beyond this client's own in
//!     flight (a process draining the bucket beside it is seen within a round trip).
//!     In a bucket refilling four units or more in those 2 s, an answer's level is
//!     read at the instant its request was let go (latency jitters by many units), a
//!     difference within one request's worth either way is noise, and others are seen
//!     only past a unit per 2 s: a lone client whose answers come back out of order had
//!     read its own requests counted early or late as others' and left a share of the
//!     refill unused.
//!     With others seen, this client claims its share of the drawing (its own part of
//!     what was taken) of both the level the server states and the refill, or the
//!     refill the others leave when that is more; at least a tenth. Four processes on one
//!     key without a shared store, 1000 requests in all at once: 339 429s when each took
//!     every unit it saw, 16 with shares (`tests/stories/scopes.rs`).
//!   - *Advertised but not granted*: a 429 saying at least the refused request's cost
//!     remains teaches that those units never are granted; they are subtracted from the
//!     capacity and every later `remaining`. A 429 with less left than the request costs
//!     (400 000 tokens refused with 188 000 left) is the limit spent, as stated.
//!   - *A window behind these names*: three answers whose reset is far longer than what
//!     is missing takes to refill, with none between them that fits a bucket (answers
//!     missing more than half cannot tell the two apart and count neither way), or one
//!     whose reset is sooner than a bucket missing that much could refill it (a burst
//!     into a window states about the same reset whatever is missing; whole-second resets
//!     are allowed two seconds of rounding per unit), show the limit is a window: from
//!     then it is paced as one (below).
//! - **A bucket behind a window's names** (IETF, `X-RateLimit-*`, GitHub: a reset that
//!   is "full again" reads as a window's end): three answers in a row whose stated full
//!   instant moves on by the time per unit for each unit more missing (a bucket's; a
//!   window's end stays put, and a sliding window's moves with the answers, whatever is
//!   missing), beyond the resets' rounding, and the limit is paced as a bucket (above).
//!   An answer stating another limit than the last starts over.
//! - **Windows** (every other dialect): `left` units are spread evenly over the time to
//!   the reset (a request of `u` units — 1 for request scopes, its cost for token scopes
//!   — takes `u × span / left`), but the schedule may run ahead of the even spread by
//!   half the request's max wait: a window shorter than that (per second, per minute) is
//!   used as fast as callers ask, a longer one (hourly, daily) keeps every wait in bounds.
//!   **Remaining 0** waits for the reset, unless the window slides: a window whose reset
//!   moved on with the spends (IETF and `X-RateLimit-*` dialects state when the *newest*
//!   spend ages out) gives units back from the reset its busy period's first answer
//!   stated (when the *oldest* spend ages out), at the rate the latest answer implies
//!   (what is missing, back by its reset). Where [`LocalStore`] kept what it let go over
//!   the window an answer counted, each of its spends comes back one window after it
//!   went, in order (callers arriving unevenly are given back as unevenly; a request the
//!   server refused spent nothing and gives nothing back); spends let go before it began
//!   keeping them come back first, spread, and a window after it
//!   began at the latest; an answer whose reset is well short of the window right
//!   after our spend (a bucket, a fixed window ending) keeps the spread. An answer
//!   showing the server took more than this bucket reserved (units not ours, or others
//!   on the key) falls back to the reset. **After the reset** without news the scope
//!   paces at `limit / window` (the stated window, else the longest reset seen) from the
//!   predicted window's start, never earlier; a late answer about the previous window
//!   does not overwrite the predicted one.
//!   **Whole-second resets** of a fixed window are up to two seconds late (the server
//!   rounds the instant up and measures from its whole-second `Date`), most of a window
//!   of a second or two. Where answers straddle a window start (the first answer of a new
//!   window: the start came after the latest release of a request the old window counted,
//!   and by this answer), two such spans that agree place the starts, a window apart;
//!   later resets, and the waits refusals state, end there when that is earlier and
//!   within the rounding. A refusal the headers did not foresee forgets it.
//! - Both are virtual scheduling with a rate each response resets; `governor` cannot
//!   change a quota at runtime (governor #273), so learned limits use this scheduler of
//!   our own.
//! - **Concurrent requests** (`qu=concurrent-requests`): the stated limit caps the
//!   bucket's in-flight permits (a fixed cap, or an adaptive cap's maximum).
//! - **Most constrained governs**: a request goes at the latest of the slots all scopes,
//!   declared quotas and pauses give it, and reserves that slot in each. A request
//!   dropped while waiting for its slot gives it back ([`QuotaStore::cancel`]).
//!
//! Without limit headers, only the cap, the declared quotas and the verdicts drive
//! admission: a 429 then also cuts a learned **send rate** to 0.7 × what was sent since
//! the previous cut (growing 5 % a second after, dropped once 4 × the cut and a request
//! sent since the cut succeeded), so the queue leaves a pause paced instead of all at
//! once. The growth counts only once a success shows it was granted: while nothing
//! succeeds (a closed window, other processes taking the whole quota), each refusal cuts
//! from the rate of the last cut, so the sends back off exponentially (to one per 100 s)
//! and the requests held behind them spend no attempts; a request dropped while waiting
//! gives its slot back. While backed off, each send is a probe: the others reserve no
//! slot behind it, and ask again when its slot comes (woken by its answer, in this
//! process) until two successes in a row show the server serving; the rate is regained
//! from there as TCP's slow start regains its window, not at the slots the backoff had
//! spread the queue over.
//!
//! A **daily limit the headers do not show** (OpenAI's and Groq's requests per day: the
//! headers state the minute windows only), refusing with a stated wait ("... per day
//! (RPD) ... Please try again in 8.64s"), is learned as its continuous refill instead:
//! from one stated return to another the server granted what succeeded in between, so
//! the refill is that span over those successes (measured over four successes or more,
//! taken short until then so that a misjudged one draws the refusal that corrects it).
//! The bucket then sends one request per refill, not the whole queue at each return;
//! refill left unsent is credit, and a refill unused for an hour is forgotten. A refill
//! that drew no refusal for an hour is doubted (the others sharing it may have finished,
//! or the limit reset whole): each four successes halve it until a refusal measures it
//! again, a refusal an hour at the true refill.
//!
//! # Verdicts
//!
//! - Rate limited, or overloaded with a stated wait: the **whole bucket** pauses until the
//!   server's time (`retry_after`, else the snapshot's wait, else
//!   [`with_default_pause`](ConcurrencyCapLayer::with_default_pause)); requests already
//!   holding a slot inside the pause are moved after it. The adaptive cap halves (to 3/4
//!   for overload). Only the limit the verdict's scope names learns that the server
//!   grants less than its headers say; the bucket's other scopes keep their pace. A
//!   request window refused while its headers said some remained is paced at what it
//!   counted as spent, per window (what the server enforces, whatever was sent before
//!   the refusal: a lull or an outage does not count), resuming just under it.
//! - A stated wait longer than
//!   [`with_max_server_wait`](ConcurrencyCapLayer::with_max_server_wait) (an hour and a
//!   minute, as the retry layer's): requests fail at once with [`error::WaitTooLong`]
//!   carrying what is left of it, as the retry layer does for the caller that met it.
//! - **Outage** (a server error, a failed connection, an overload without a stated wait):
//!   a half-open circuit. The bucket holds everyone for 0.25–0.5 s, then lets one probe
//!   go while the others wait for its answer; each failed probe doubles the hold, with
//!   jitter, and passes the probe role to the next held request. The longest hold weighs
//!   a late notice of the server's return against the probes' attempts: 10 s for a
//!   quiet bucket, shorter the busier it is (10 s shared among the held requests, who
//!   take turns probing, but never probing more than 5% of what the bucket was sending;
//!   at least 0.5 s). Caps sharing a store (a fleet) take turns too: after a failed
//!   probe, the other caps' held requests get a poll's time to take the role. A request
//!   that probed for others backs off afterwards, under the retry layer, as one that
//!   failed only on its own (the cap paced its probes). The first answer that shows the
//!   server is up opens the bucket, which drains at its learned pace. Held requests are not sent, so under a retry layer they spend no attempts.
//! - Client error (a request too large, malformed, over the context length): a verdict
//!   about **one request**; the bucket learns nothing from it.
//! - Quota exhausted: the bucket is exhausted until the stated reset or the cool-off;
//!   then one probe goes ([`ExhaustionPolicy`]). A spent credit or billing quota
//!   ([`QuotaScope::Billing`](abide_classify::QuotaScope::Billing)) is not back when a
//!   rate limit in the same answer resets: only a wait stated for it (`Retry-After`)
//!   shortens its cool-off.
//!
//! # Errors
//!
//! The service's error is [`BoxError`]; this layer adds [`error::QueueFull`],
//! [`error::WaitTooLong`], [`error::BucketExhausted`], [`error::CostTooHigh`] and
//! [`StoreError`]; the inner service's errors pass through. Each named error carries an
//! [`abide_classify::Verdict`] on its source chain, so
//! [`abide_classify::classify_error`] (and the retry layer above) knows what it means:
//! see [`error`].
//!
//! # Simulator and quick use
//!
//! Default configuration plus a per-request [`Cost`] extension is the intended setup:
//! `ServiceBuilder::new().layer(ConcurrencyCapLayer::new()).service(api)`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
pub mod error;
mod future;
mod key;
mod layer;
mod limiter;
mod ran;
mod service;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use key::{authority_key, BucketKey, Cost, MAX_KEY_LEN};

/// The deadline of the logical request (shared with the retry layer, which puts it on
/// every attempt). An attempt whose admission wait would end after it fails at once with
/// [`WaitTooLong`](crate::error::WaitTooLong); the layer's
/// [`with_max_wait`](crate::ConcurrencyCapLayer::with_max_wait) applies too, the earlier wins.
pub use abide_classify::Deadline;
pub use layer::{ConcurrencyCapLayer, ExhaustionPolicy, DEFAULT_MAX_WAIT};
pub use limiter::{BucketStats, InFlight, MAX_IN_FLIGHT};
pub use service::ConcurrencyCap;
pub use store::{LocalStore, QuotaStore, StoreError};

/// The longest server-stated wait worth taking, by default: an hour and a minute, the
/// classifier's [`DEFAULT_LONG_WAIT`](abide_classify::DEFAULT_LONG_WAIT) and the retry
/// layer's `abide_retry::DEFAULT_MAX_SERVER_WAIT`, so the stack gives one answer to one
/// `Retry-After`. An hourly window is the longest APIs state: work the server will serve
/// when the window turns is waited for, not lost (the minute is for a turn stated in
/// whole seconds, a round trip late); longer waits mean daily or billing quotas, reported
/// at once.
pub const DEFAULT_MAX_SERVER_WAIT: std::time::Duration = abide_classify::DEFAULT_LONG_WAIT;

/// Re-exported: the declared-quota type.
pub use governor::Quota;

/// The error type of [`ConcurrencyCap`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
