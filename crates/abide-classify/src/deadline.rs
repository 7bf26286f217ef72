//! The deadline of one logical request, shared by the layers.

use std::time::Duration;
use tokio::time::Instant;

/// The deadline of a whole logical request (every attempt and every wait), as a request
/// extension.
///
/// It lives here, in the crate every abide layer depends on, so that the layers agree on
/// it: the retry layer reads it (with its own configured deadline and `grpc-timeout`) and
/// puts the resulting absolute deadline on each attempt; the cap layer below fails an
/// attempt fast when its admission wait would end after it.
///
/// ```
/// use abide_classify::Deadline;
/// use std::time::Duration;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(Deadline::within(Duration::from_secs(10)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    At(Instant),
    Within(Duration),
}

impl Deadline {
    /// Ends at an instant.
    pub fn at(instant: Instant) -> Self {
        Deadline(Kind::At(instant))
    }

    /// Ends this long after the outermost abide layer receives the request.
    pub fn within(duration: Duration) -> Self {
        Deadline(Kind::Within(duration))
    }

    /// The instant, for a request received at `start`. `None` when it is too far away to
    /// represent (no deadline in practice).
    ///
    /// ```
    /// use abide_classify::Deadline;
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// let start = Instant::now();
    /// let d = Deadline::within(Duration::from_secs(3));
    /// assert_eq!(d.resolve(start), Some(start + Duration::from_secs(3)));
    /// assert_eq!(Deadline::at(start).resolve(start + Duration::from_secs(9)), Some(start));
    /// ```
    pub fn resolve(self, start: Instant) -> Option<Instant> {
        match self.0 {
            Kind::At(at) => Some(at),
            Kind::Within(d) => start.checked_add(d),
        }
    }
}
