//! [`Replayer`]: sends spooled entries through the stack, in order per bucket.

use crate::{not_now, BoxError, Entry, Spool, SpoolBody, SpoolError};
use abide_classify::{Class, Classification};
use http::{Request, Response, StatusCode};
use std::collections::HashSet;
use std::marker::PhantomData;
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
/// wraps): oldest first, in order per bucket. A bucket that answers "not now" or fails
/// transiently is left alone for the rest of the pass, so its entries stay in order. An
/// entry is removed only after a success, and moved to the dead-letter part (with the
/// verdict) after a permanent failure: a client or auth error.
///
/// Every entry carries its `Idempotency-Key`, so a replay cut short by a crash between a
/// delivery and its removal is recognised as a repeat by a server that honours the key.
#[derive(Debug)]
pub struct Replayer<S, B> {
    spool: Spool,
    service: S,
    _body: PhantomData<fn() -> B>,
}

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
            _body: PhantomData,
        }
    }

    /// The service, unwrapped.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S, B, RB> Replayer<S, B>
where
    S: Service<Request<SpoolBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
{
    /// One pass over the spool as it is now.
    ///
    /// # Errors
    ///
    /// [`SpoolError`] when an entry cannot be removed or dead-lettered (the entry stays and
    /// is sent again next time, with the same key).
    pub async fn run_once(&mut self) -> Result<ReplayReport, SpoolError> {
        let mut report = ReplayReport::default();
        let mut blocked: HashSet<String> = HashSet::new();
        for entry in self.spool.entries() {
            if blocked.contains(&entry.bucket) {
                report.left += 1;
                continue;
            }
            let id = entry.id;
            let bucket = entry.bucket.clone();
            match self.send(entry).await {
                Fate::Delivered => {
                    let spool = self.spool.clone();
                    blocking(move || spool.ack(id)).await?;
                    report.delivered += 1;
                }
                Fate::Dead(verdict) => {
                    let spool = self.spool.clone();
                    blocking(move || spool.dead_letter(id, &verdict)).await?;
                    report.dead_lettered += 1;
                }
                Fate::Later => {
                    blocked.insert(bucket);
                    report.left += 1;
                }
            }
        }
        Ok(report)
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

    async fn send(&mut self, entry: Entry) -> Fate {
        let ready = std::future::poll_fn(|cx| self.service.poll_ready(cx)).await;
        if let Err(e) = ready {
            tracing::debug!(error = %e.into(), "spool replay: service not ready");
            return Fate::Later;
        }
        let result = self
            .service
            .call(request_of(entry))
            .await
            .map_err(Into::into);
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
