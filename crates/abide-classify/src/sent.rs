//! When an attempt left for the server, shared by the layers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::time::Instant;

/// When one attempt was sent to the server, as a request extension.
///
/// A per-attempt timeout must time the server, not the wait before it: a request the cap
/// holds (for a pause, a paced slot, an outage) has not been sent, and cutting it there
/// would count a wait the cap chose as a failure of the server. So the retry layer puts
/// a fresh `AttemptStart` on each attempt when it has an attempt timeout; a layer below
/// that may hold the attempt (the cap) calls [`hold`](Self::hold) when it takes it and
/// [`sent`](Self::sent) when it sends it on; the retry layer's timeout counts from
/// [`started`](Self::started). With no such layer below, the attempt started when its
/// mark was made, as the retry layer called.
///
/// It lives here, in the crate every abide layer depends on, as [`Deadline`](crate::Deadline)
/// does.
///
/// ```
/// use abide_classify::AttemptStart;
/// use tokio::time::Instant;
///
/// let called = Instant::now();
/// let start = AttemptStart::new();
/// assert!(start.started().is_some_and(|at| at >= called), "nobody held it");
/// start.hold();
/// assert_eq!(start.started(), None, "held: not sent yet");
/// start.sent();
/// assert!(start.started().is_some_and(|at| at >= called));
/// ```
#[derive(Clone, Debug)]
pub struct AttemptStart(Arc<Mutex<Mark>>);

#[derive(Clone, Copy, Debug)]
enum Mark {
    /// Nobody holds the attempt: it started when it was called, then.
    Called(Instant),
    /// A layer holds it before sending.
    Held,
    /// Sent at this instant.
    Sent(Instant),
}

impl AttemptStart {
    /// A mark for an attempt called now.
    pub fn new() -> Self {
        AttemptStart(Arc::new(Mutex::new(Mark::Called(Instant::now()))))
    }

    /// The attempt is held before it is sent: its time does not count yet.
    pub fn hold(&self) {
        let mut mark = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*mark, Mark::Called(_)) {
            *mark = Mark::Held;
        }
    }

    /// The attempt is sent now (the first call counts).
    pub fn sent(&self) {
        let mut mark = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*mark, Mark::Sent(_)) {
            *mark = Mark::Sent(Instant::now());
        }
    }

    /// When the attempt started: when it was called, if nobody held it; when it was
    /// sent; `None` while it is held.
    pub fn started(&self) -> Option<Instant> {
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Mark::Called(at) => Some(at),
            Mark::Held => None,
            Mark::Sent(at) => Some(at),
        }
    }
}

impl Default for AttemptStart {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether an attempt went as its bucket's probe on behalf of other requests, as a request
/// extension shared by the layers.
///
/// When a server stops answering, the cap holds a bucket's requests behind one probe at a
/// time, and after each failed probe passes the role to the next held request. A probe
/// with others held behind it spends its attempt for them all, on a schedule the cap paces
/// (its holds double, as a server-stated wait would pace retries): the retry layer counts
/// such a failure against its paced attempts, not the ones that bound a lone request. The
/// retry layer puts one on a request once it retries it (the success path carries none); the
/// cap [`mark`](Self::mark)s it when it sends the attempt as such a probe; the retry layer
/// [`take`](Self::take)s the mark when it decides about the failure.
///
/// ```
/// use abide_classify::HeldProbe;
///
/// let probe = HeldProbe::new();
/// let seen_by_the_cap = probe.clone();
/// seen_by_the_cap.mark();
/// assert!(probe.take(), "this attempt probed for others");
/// assert!(!probe.take(), "taken: the next attempt starts unmarked");
/// ```
#[derive(Clone, Debug, Default)]
pub struct HeldProbe(Arc<AtomicBool>);

impl HeldProbe {
    /// An unmarked probe flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// The attempt is sent as its bucket's probe, with other requests held behind it.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the last attempt was marked, clearing the mark.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }

    /// Whether both are the same request's flag (its attempts share one).
    pub fn same_request(&self, other: &HeldProbe) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether another copy of this flag still exists: the request it belongs to has
    /// not ended (the retry layer keeps one for as long as it may retry it).
    ///
    /// ```
    /// use abide_classify::HeldProbe;
    ///
    /// let kept_by_the_cap = HeldProbe::new();
    /// let request = kept_by_the_cap.clone();
    /// assert!(kept_by_the_cap.is_shared(), "the request may still retry");
    /// drop(request);
    /// assert!(!kept_by_the_cap.is_shared(), "the request ended");
    /// ```
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}
