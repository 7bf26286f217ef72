//! When an attempt left for the server, shared by the layers.

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
