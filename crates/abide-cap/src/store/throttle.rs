//! A send rate learned from 429s: when no header states a limit, or the headers
//! overstate it.

use super::bucket::BucketState;
use super::time::{since, MAX_SPAN};
use super::Ticket;
use std::time::Duration;
use tokio::time::Instant;

/// Multiplicative decrease of the send rate on a 429: to this share of what was sent
/// since the previous one.
pub(super) const THROTTLE_BETA: f64 = 0.7;
/// Growth of the send rate after a cut, per second, as a share of the cut rate.
pub(super) const THROTTLE_GROWTH: f64 = 0.05;
/// Once the rate grew to this multiple of the cut rate without another 429, the limit
/// is taken as gone.
pub(super) const THROTTLE_RECOVERED: f64 = 4.0;
/// The slowest rate a 429 can cut to, per second.
pub(super) const THROTTLE_MIN_RATE: f64 = 0.01;

/// A send rate learned from 429 verdicts when the server states no limit (only 429s and
/// perhaps `Retry-After`): cut to a share of the rate that drew the 429, then grown
/// linearly with time, so that after a pause the queue is let out at a rate near what
/// the server accepts instead of all at once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Throttled {
    /// Requests per second right after the last cut.
    pub(super) rate: f64,
    pub(super) cut_at: Instant,
    /// The bucket's request count at the cut.
    pub(super) cut_requests: u64,
    /// GCRA theoretical arrival time (burst 1).
    pub(super) tat: Instant,
}

impl Throttled {
    pub(super) fn rate_at(&self, now: Instant) -> f64 {
        self.rate * (1.0 + THROTTLE_GROWTH * since(now, self.cut_at).as_secs_f64())
    }

    pub(super) fn interval(&self, at: Instant) -> Duration {
        let ns = 1e9 / self.rate_at(at).max(THROTTLE_MIN_RATE);
        Duration::from_nanos(ns.min(MAX_SPAN.as_nanos() as f64) as u64)
    }
}

impl BucketState {
    /// A 429 with no limit known from headers: cut the send rate to a share of what was
    /// sent since the last cut. One burst of 429s is one signal: those arriving while
    /// the bucket is already paused, and those answering requests sent before the last
    /// cut (`ticket`), do not cut again.
    ///
    /// Also when the headers promised quota the server then refused (a window scope
    /// blamed for the 429 said some remained): they overstate what is granted, so the
    /// send rate that drew the 429 is what is learned, and trusted again only as it
    /// grows back.
    pub(super) fn cut_rate(
        &mut self,
        now: Instant,
        snapshot: &abide_headers::RateLimitSnapshot,
        promised: bool,
        ticket: Option<Ticket>,
    ) {
        let headers_know =
            !self.learned.is_empty() || snapshot.limits().iter().any(|l| l.remaining.is_some());
        if (headers_know && !promised) || self.paused_until.is_some_and(|p| p > now) {
            return;
        }
        if let (Some(t), Some(cut)) = (ticket, &self.throttled) {
            if t.requests <= cut.cut_requests {
                // Sent before the last cut: its refusal is the signal already taken.
                return;
            }
        }
        let (from, sent_before) = self
            .throttled
            .map_or((self.born, 0), |t| (t.cut_at, t.cut_requests));
        let dt = since(now, from).as_secs_f64().max(0.1);
        let sent = self.requests.saturating_sub(sent_before) as f64;
        let mut rate = (sent / dt * THROTTLE_BETA).max(THROTTLE_MIN_RATE);
        if let Some(t) = &self.throttled {
            rate = rate.min(t.rate_at(now) * THROTTLE_BETA);
        }
        self.throttled = Some(Throttled {
            rate,
            cut_at: now,
            cut_requests: self.requests,
            tat: self.throttled.map_or(now, |t| t.tat),
        });
    }
}
