//! [`Replayer`]: sends spooled entries through the stack, in order per bucket.

use crate::{not_now, BoxError, Entry, Spool, SpoolBody, SpoolError};
use abide_classify::{Class, Classification};
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, StatusCode};
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::time::Duration;
use tower_service::Service;

/// What one replay pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Entries delivered and removed.
    pub delivered: usize,
    /// Entries moved to the dead-letter part (a permanent failure).
    pub dead_lettered: usize,
    /// Entries left for a later pass: their bucket said "not now" or failed transiently.
    pub left: usize,
}

/// Drains a [`Spool`] through a service (the same stack the [`SpoolLayer`](crate::SpoolLayer)
/// wraps): in order per bucket, the buckets side by side. Each bucket has a lane that sends
/// its entries one after the other, oldest first, on a clone of the service of its own; up
/// to [`with_concurrent_buckets`](Replayer::with_concurrent_buckets) lanes run at once, so a
/// bucket the stack holds back (paced at its learned rate, paused behind a `Retry-After`,
/// held for an exhaustion probe) delays only its own entries. A bucket that answers "not
/// now" or fails transiently is left alone for the rest of the pass, so its entries stay in
/// order. An entry is removed only after a success, and moved to the dead-letter part (with
/// the verdict) after a permanent failure: a client or auth error.
///
/// Every entry carries its `Idempotency-Key`, so a replay cut short by a crash between a
/// delivery and its removal is recognised as a repeat by a server that honours the key.
#[derive(Debug)]
pub struct Replayer<S, B> {
    spool: Spool,
    service: S,
    lanes: NonZeroUsize,
    _body: PhantomData<fn() -> B>,
}

/// The default number of buckets a [`Replayer`] drains at once.
pub const DEFAULT_CONCURRENT_BUCKETS: usize = 16;

enum Fate {
    Delivered,
    Dead(String),
    Later,
}

impl<S, B> Replayer<S, B> {
    pub(crate) fn new(spool: Spool, service: S) -> Self {
        Replayer {
            spool,
            service,
            lanes: NonZeroUsize::new(DEFAULT_CONCURRENT_BUCKETS).expect("not zero"),
            _body: PhantomData,
        }
    }

    /// How many buckets are drained at once (default [`DEFAULT_CONCURRENT_BUCKETS`]); the
    /// entries of one bucket always go one at a time, in order. The stack's own limits
    /// (the cap's in-flight limit and pace) still apply to every request.
    pub fn with_concurrent_buckets(mut self, lanes: NonZeroUsize) -> Self {
        self.lanes = lanes;
        self
    }

    /// The service, unwrapped.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S, B, RB> Replayer<S, B>
where
    S: Service<Request<SpoolBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
{
    /// One pass over the spool as it is now.
    ///
    /// # Errors
    ///
    /// [`SpoolError`] when an entry cannot be removed or dead-lettered (the entry stays and
    /// is sent again next time, with the same key). The other buckets' lanes finish their
    /// pass first.
    pub async fn run_once(&mut self) -> Result<ReplayReport, SpoolError> {
        // Lanes in the order of each bucket's oldest entry, entries oldest first.
        let mut lanes: Vec<VecDeque<Entry>> = Vec::new();
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        for entry in self.spool.entries() {
            let at = *lane_of.entry(entry.bucket.clone()).or_insert_with(|| {
                lanes.push(VecDeque::new());
                lanes.len() - 1
            });
            lanes[at].push_back(entry);
        }
        let spool = &self.spool;
        let service = &self.service;
        let mut passes = stream::iter(lanes)
            .map(|lane| drain_lane(spool.clone(), service.clone(), lane))
            .buffer_unordered(self.lanes.get());
        let mut report = ReplayReport::default();
        let mut failed = None;
        while let Some(lane) = passes.next().await {
            match lane {
                Ok(lane) => {
                    report.delivered += lane.delivered;
                    report.dead_lettered += lane.dead_lettered;
                    report.left += lane.left;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Passes until the spool is empty, sleeping `pause` after a pass that left entries.
    ///
    /// # Errors
    ///
    /// As [`run_once`](Replayer::run_once).
    pub async fn run_until_empty(&mut self, pause: Duration) -> Result<ReplayReport, SpoolError> {
        let mut total = ReplayReport::default();
        loop {
            let pass = self.run_once().await?;
            total.delivered += pass.delivered;
            total.dead_lettered += pass.dead_lettered;
            total.left = pass.left;
            if pass.left == 0 {
                return Ok(total);
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// Sends one bucket's entries in order until one is "not now".
async fn drain_lane<S, B, RB>(
    spool: Spool,
    mut service: S,
    mut lane: VecDeque<Entry>,
) -> Result<ReplayReport, SpoolError>
where
    S: Service<Request<SpoolBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    let mut report = ReplayReport::default();
    while let Some(entry) = lane.pop_front() {
        let id = entry.id;
        match send(&mut service, entry).await {
            Fate::Delivered => {
                let spool = spool.clone();
                blocking(move || spool.ack(id)).await?;
                report.delivered += 1;
            }
            Fate::Dead(verdict) => {
                let spool = spool.clone();
                blocking(move || spool.dead_letter(id, &verdict)).await?;
                report.dead_lettered += 1;
            }
            Fate::Later => {
                report.left += 1 + lane.len();
                break;
            }
        }
    }
    Ok(report)
}

async fn send<S, B, RB>(service: &mut S, entry: Entry) -> Fate
where
    S: Service<Request<SpoolBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
    if let Err(e) = ready {
        tracing::debug!(error = %e.into(), "spool replay: service not ready");
        return Fate::Later;
    }
    let result = service.call(request_of(entry)).await.map_err(Into::into);
    if let Some(reason) = not_now(&result) {
        tracing::debug!(%reason, "spool replay: not now");
        return Fate::Later;
    }
    match result {
        Ok(response) => fate_of(&response),
        Err(e) => {
            tracing::debug!(error = %e, "spool replay: failed, will retry");
            Fate::Later
        }
    }
}

fn request_of<B>(entry: Entry) -> Request<SpoolBody<B>> {
    let mut request = Request::new(SpoolBody::full(entry.body));
    *request.method_mut() = entry.method;
    *request.uri_mut() = entry.uri;
    *request.headers_mut() = entry.headers;
    request
        .extensions_mut()
        .insert(abide_cap::BucketKey::new(&entry.bucket));
    if let Some(cost) = entry.cost {
        request.extensions_mut().insert(abide_cap::Cost(cost));
    }
    request
}

fn fate_of<RB>(response: &Response<RB>) -> Fate {
    let status = response.status();
    match response.extensions().get::<Classification>() {
        Some(c) if c.class == Class::Success => Fate::Delivered,
        Some(c) if matches!(c.class, Class::ClientError | Class::AuthError) && !c.retryable => {
            Fate::Dead(format!("{}: {} ({})", c.class, status, c.reason))
        }
        Some(_) => Fate::Later,
        None if status.is_success() => Fate::Delivered,
        None if status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS =>
        {
            Fate::Dead(format!("client_error: {status}"))
        }
        None => Fate::Later,
    }
}

async fn blocking<F>(f: F) -> Result<(), SpoolError>
where
    F: FnOnce() -> Result<(), SpoolError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(SpoolError::Io {
            action: "run the spool write of",
            path: std::path::PathBuf::from("replay"),
            source: std::io::Error::other(e),
        }),
    }
}
