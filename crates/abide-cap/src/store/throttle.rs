//! A send rate learned from 429s: when no header states a limit, or the headers
//! overstate it.

use super::bucket::BucketState;
use super::time::{later, since, MAX_SPAN};
use super::Ticket;
use std::time::Duration;
use tokio::time::Instant;

/// Multiplicative decrease of the send rate on a 429: to this share of what was sent
/// since the previous one.
pub(super) const THROTTLE_BETA: f64 = 0.7;
/// Growth of the send rate after a cut, per second, as a share of the cut rate.
pub(super) const THROTTLE_GROWTH: f64 = 0.05;
/// Once the rate grew to this multiple of the cut rate without another 429, and a
/// request sent since the cut succeeded, the limit is taken as gone. Growth with time
/// alone shows nothing: a window closed for half an hour would be taken as gone every
/// minute, and the queue let out against it would spend its attempts.
pub(super) const THROTTLE_RECOVERED: f64 = 4.0;
/// The slowest rate a 429 can cut to, per second.
pub(super) const THROTTLE_MIN_RATE: f64 = 0.01;
/// After the first success following a backed-off cut, the next request goes within
/// this: the backed-off interval (up to 100 s) would leave a window that came back
/// unused, and a refusal of this one request costs one attempt.
const SECOND_PROBE: Duration = Duration::from_secs(1);
/// The shortest round trip a slow start counts, so that an answer in no time (a test
/// double, a cache) does not read as an unbounded rate.
const SLOW_START_MIN_RTT: Duration = Duration::from_millis(1);

/// A send rate learned from 429 verdicts when the server states no limit (only 429s and
/// perhaps `Retry-After`): cut to a share of the rate that drew the 429, then grown
/// with time, so that after a pause the queue is let out at a rate near what the server
/// accepts instead of all at once.
///
/// Growth is granted only once shown: a 429 to a request sent at the grown rate cuts
/// from that rate if a success since the cut showed it was served, and from the cut rate
/// if nothing succeeded (TCP's retransmission timer backs off the same way while no
/// acknowledgement comes). So while nothing succeeds (a closed window, other processes
/// taking the whole quota), each refused request cuts again and the interval backs off
/// exponentially, down to [`THROTTLE_MIN_RATE`], instead of settling where a growth per
/// second balances the cuts (a request about every 9 s, whatever the server allows).
///
/// Those backed-off cuts say when the server refuses, not how much it takes: the rate it
/// was last seen to take (`drew`) is kept. One success after them may be a single token
/// of a slow refill (a bucket giving one request a minute, a spent daily limit): it
/// sends the next request within [`SECOND_PROBE`], and grows as after any cut. A second
/// success with no refusal between shows the window back, and a slow start regains the
/// rate the server took as TCP's regains the window a retransmission timeout took
/// ([`SlowStart`]); from a deep backoff its first step is past [`THROTTLE_RECOVERED`]
/// times the cut, and the limit is taken as gone. Without that, a sliding window
/// refusing the probes of its first seconds left the rate at the probes' pace, a request
/// a second where the server took a hundred, to grow back by 5 % a second.
///
/// Until then ([`probing`](Self::probing)) each slot is a probe and nobody reserves past
/// it (`BucketState::admit`): the queue waits for the probes' answers, and goes at the
/// rate the slow start regains, not at the slots the backoff would have spread it over.
#[derive(Clone, Copy, Debug)]
pub(super) struct Throttled {
    /// Requests per second right after the last cut.
    pub(super) rate: f64,
    /// The rate the server was seen to take at the cut (what drew the 429, or what a
    /// window whose headers overstate it was seen to grant): growth slows around it.
    pub(super) drew: f64,
    pub(super) cut_at: Instant,
    /// The bucket's request count at the cut.
    pub(super) cut_requests: u64,
    /// A request sent after the cut succeeded: the growth since is granted.
    pub(super) served: bool,
    /// After a backed-off cut, once served: the rate regained success by success.
    pub(super) slow_start: Option<SlowStart>,
    /// GCRA theoretical arrival time (burst 1).
    pub(super) tat: Instant,
    /// The end of the wait the server stated with the 429 that cut ([`Self::cut_at`]
    /// when it stated none): nothing was sent before it.
    pub(super) resumes: Instant,
}

/// The rate regained after a backed-off cut, clocked by the server's answers as TCP's
/// slow start is by acknowledgements: it starts at one request per round trip of the
/// success that began it (or the grown rate, if faster), and each success adds one more
/// per round trip, so it doubles each round trip while the server serves what is sent,
/// up to near the rate the server last took. A window that opens for only a few requests
/// serves those few and refuses the next, which cuts as after any success.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct SlowStart {
    /// Requests per second regained so far.
    pub(super) rate: f64,
    /// When it reached near the rate the server last took: the usual growth from there.
    pub(super) reached: Option<Instant>,
}

/// Near the rate that drew the last 429 (from this share of it to the share beyond), the
/// send rate grows [`THROTTLE_PLATEAU_GROWTH`] of that rate per second instead: the
/// server's limit is most likely there, and each probe past it costs a refusal.
const THROTTLE_PLATEAU: (f64, f64) = (0.95, 1.05);
/// Growth per second near the last 429's rate, as a share of it.
const THROTTLE_PLATEAU_GROWTH: f64 = 0.01;

impl Throttled {
    /// The send rate `now`: fast growth back towards the rate that drew the last 429,
    /// slow growth around it, fast again once past it (the limit may have gone): the
    /// concave, flat, convex shape of TCP CUBIC, in rate instead of window.
    pub(super) fn rate_at(&self, now: Instant) -> f64 {
        let t = since(now, self.cut_at).as_secs_f64();
        let drew = self.drew;
        let (low, high) = (drew * THROTTLE_PLATEAU.0, drew * THROTTLE_PLATEAU.1);
        let fast = |from: f64, t: f64| from * (1.0 + THROTTLE_GROWTH * t);
        let reach_low = match self.slow_start {
            Some(SlowStart {
                rate,
                reached: None,
            }) => return rate,
            Some(SlowStart {
                reached: Some(at), ..
            }) => {
                let reach = since(at, self.cut_at).as_secs_f64();
                if t <= reach {
                    return low;
                }
                reach
            }
            None => {
                let reach = (low / self.rate - 1.0).max(0.0) / THROTTLE_GROWTH;
                if t <= reach {
                    return fast(self.rate, t);
                }
                reach
            }
        };
        let plateau = (high - low) / (drew * THROTTLE_PLATEAU_GROWTH);
        let t = t - reach_low;
        if t <= plateau {
            return low + drew * THROTTLE_PLATEAU_GROWTH * t;
        }
        fast(high, t - plateau)
    }

    /// Cut below a normal cut of the rate the server last took: refusals came with
    /// nothing served between them.
    fn backed_off(&self) -> bool {
        self.rate < self.drew * THROTTLE_BETA * 0.99
    }

    /// Backed off, and the server not yet shown to serve again (two successes in a row,
    /// which start the slow start): the next request is a probe.
    pub(super) fn probing(&self) -> bool {
        self.backed_off() && self.slow_start.is_none()
    }

    /// Grown well past the cut, with a success since the cut: the limit is taken as gone.
    pub(super) fn recovered(&self, now: Instant) -> bool {
        self.served && self.rate_at(now) >= self.rate * THROTTLE_RECOVERED
    }

    pub(super) fn interval(&self, at: Instant) -> Duration {
        let ns = 1e9 / self.rate_at(at).max(THROTTLE_MIN_RATE);
        Duration::from_nanos(ns.min(MAX_SPAN.as_nanos() as f64) as u64)
    }
}

/// A refusal by a window scope whose headers said quota remained (they overstate what the
/// server grants), with what that window counts as spent and its window, when it says.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Promised {
    pub(super) spent: Option<(u64, Duration)>,
}

impl BucketState {
    /// A success of a request admitted under the learned send rate: if it was sent after
    /// the last cut, the growth since the cut is granted. After a backed-off cut, the
    /// first sends the next request soon, and the next ones start and step the slow
    /// start.
    pub(super) fn throttled_success(&mut self, now: Instant, ticket: Option<Ticket>) {
        let (Some(t), Some(th)) = (ticket, &mut self.throttled) else {
            return;
        };
        if t.requests <= th.cut_requests {
            return;
        }
        let first = !th.served;
        th.served = true;
        if !th.backed_off() {
            return;
        }
        if first {
            th.tat = th.tat.min(later(now, th.interval(now).min(SECOND_PROBE)));
            return;
        }
        let rtt = t.released.map_or(Duration::from_secs(1), |r| since(now, r));
        let per_rtt = 1.0 / rtt.max(SLOW_START_MIN_RTT).as_secs_f64();
        let low = th.drew * THROTTLE_PLATEAU.0;
        let began = th.slow_start.is_none();
        let ss = match &mut th.slow_start {
            None => th.slow_start.insert(SlowStart {
                rate: th.rate_at(now).max(per_rtt).min(low),
                reached: None,
            }),
            Some(ss) if ss.reached.is_none() => {
                ss.rate = (ss.rate + per_rtt).min(low);
                ss
            }
            Some(_) => return,
        };
        if ss.rate >= low {
            ss.reached = Some(now);
        }
        if began {
            // The next send was spaced at the backed-off rate; it goes at the rate
            // regained.
            th.tat = th.tat.min(later(now, th.interval(now)));
        }
    }

    /// A 429 with no limit known from headers: cut the send rate to a share of what was
    /// sent since the last cut. `stated` is the wait the server stated with it (capped at
    /// the max pause), if any. One burst of 429s is one signal: those arriving while
    /// the bucket is already paused, and those answering requests sent before the last
    /// cut (`ticket`), do not cut again.
    ///
    /// Also when the headers promised quota the server then refused ([`Promised`]): they
    /// overstate what is granted. What the window
    /// counts as spent, per window, is what the server enforces, and the send rate
    /// resumes near it; without that count, the send rate that drew the 429 is cut, and
    /// trusted again only as it grows back.
    pub(super) fn cut_rate(
        &mut self,
        now: Instant,
        snapshot: &abide_headers::RateLimitSnapshot,
        promised: Option<Promised>,
        ticket: Option<Ticket>,
        stated: Option<Duration>,
    ) {
        if let (Some(w), Some(t)) = (stated, &mut self.throttled) {
            if t.cut_at == now {
                // Another refusal of the burst that cut: the wait lasts to its end too.
                t.resumes = t.resumes.max(later(now, w));
            }
        }
        let headers_know =
            !self.learned.is_empty() || snapshot.limits().iter().any(|l| l.remaining.is_some());
        if (headers_know && promised.is_none()) || self.paused_until.is_some_and(|p| p > now) {
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
        // The rate that drew this 429 is what was sent over the cycle the server refills
        // in. When it states a wait much shorter than the one it stated at the last cut,
        // its quota comes back as it goes (a sliding window ageing out, a bucket), not all
        // at once, and the last wait sent nothing: averaged over it, a queue let out when
        // the server said it could be reads as a trickle (101 requests after a 48 s wait:
        // 1.5 a second, where the server took 200) and the rate collapses. When the new
        // wait is as long, the last one's quota was spent at once (a fixed window, others
        // on the key), and the average over the whole cycle is what the server grants.
        let from = match (&self.throttled, stated) {
            (Some(t), Some(w)) if w < since(t.resumes, t.cut_at) / 2 => {
                from.max(t.resumes.min(now))
            }
            _ => from,
        };
        let dt = since(now, from).as_secs_f64().max(0.1);
        let sent = self.requests.saturating_sub(sent_before) as f64;
        // A window whose headers promised what the server refused shows what the server
        // enforces: the count it took in one window. The average since the last cut
        // would count the time nothing was sent (an outage, a lull) as the server's.
        // A count past what was sent since is not ours in requests (a limit that counts
        // tokens without naming them, others on the key): the average it is.
        let enforced = promised
            .and_then(|p| p.spent)
            .filter(|&(used, _)| used as f64 <= sent)
            .map(|(used, window)| used as f64 / window.as_secs_f64());
        let (rate, drew) = match enforced {
            // What the server enforces is measured, not a rate that overshot it: the send
            // rate resumes near it, growing at the plateau's pace.
            Some(e) => {
                let rate = (e * THROTTLE_PLATEAU.0).max(THROTTLE_MIN_RATE);
                (rate, e.max(rate))
            }
            None => {
                let rate = (sent / dt * THROTTLE_BETA).max(THROTTLE_MIN_RATE);
                match &self.throttled {
                    // Refused with nothing served since the cut (below the slowest rate,
                    // while refusals go on: the interval stays at the slowest until
                    // growth has made up the cuts). The server was last seen to take
                    // what it took: `drew` is kept.
                    Some(t) if !t.served => (rate.min(t.rate * THROTTLE_BETA), t.drew),
                    // A success showed the growth since the cut was granted.
                    Some(t) => {
                        let rate = rate.min(t.rate_at(now) * THROTTLE_BETA);
                        (rate, rate / THROTTLE_BETA)
                    }
                    None => (rate, rate / THROTTLE_BETA),
                }
            }
        };
        tracing::debug!(
            rate_per_s = rate,
            drew_per_s = drew,
            sent,
            over_s = dt,
            enforced = enforced.is_some(),
            "a 429 cuts the send rate"
        );
        self.throttled = Some(Throttled {
            rate,
            drew,
            cut_at: now,
            cut_requests: self.requests,
            served: false,
            slow_start: None,
            tat: self.throttled.map_or(now, |t| t.tat),
            resumes: stated.map_or(now, |w| later(now, w)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_grows_fast_back_to_the_last_429s_flat_around_it_and_fast_past_it() {
        let cut_at = Instant::now();
        let t = Throttled {
            rate: 70.0,
            drew: 100.0,
            cut_at,
            cut_requests: 0,
            served: false,
            slow_start: None,
            tat: cut_at,
            resumes: cut_at,
        };
        let at = |s: f64| t.rate_at(cut_at + Duration::from_secs_f64(s));
        assert_eq!(at(0.0), 70.0);
        // 5 % of 70 a second: 95 (95 % of the 100 that drew the 429) after about 7 s.
        assert!((at(3.0) - 80.5).abs() < 1e-9, "{}", at(3.0));
        let reach = (95.0 / 70.0 - 1.0) / THROTTLE_GROWTH;
        assert!((at(reach) - 95.0).abs() < 1e-9);
        // Then 1 a second for 10 s, through 100, to 105.
        assert!(
            (at(reach + 5.0) - 100.0).abs() < 1e-9,
            "{}",
            at(reach + 5.0)
        );
        assert!((at(reach + 10.0) - 105.0).abs() < 1e-9);
        // Then 5 % of 105 a second again.
        assert!(
            (at(reach + 12.0) - 115.5).abs() < 1e-9,
            "{}",
            at(reach + 12.0)
        );
        // Never decreasing.
        let mut last = 0.0;
        for i in 0..400 {
            let r = at(f64::from(i) * 0.1);
            assert!(r >= last, "{i}: {r} < {last}");
            last = r;
        }
    }

    /// A bucket cut to 1 request a second at `at`, that has sent 100 more since (more
    /// than the rate allows, so the rate, not what was sent, decides the next cut), and
    /// the ticket of the last of them.
    fn cut_bucket(at: Instant) -> (BucketState, Ticket) {
        let mut b = BucketState::new(at);
        b.throttled = Some(Throttled {
            rate: 1.0,
            drew: 1.0 / THROTTLE_BETA,
            cut_at: at,
            cut_requests: 10,
            served: false,
            slow_start: None,
            tat: at,
            resumes: at,
        });
        b.requests = 110;
        let ticket = b.ticket();
        (b, ticket)
    }

    #[test]
    fn a_refusal_with_nothing_served_since_the_cut_cuts_from_the_cut_rate() {
        let at = Instant::now();
        let none = abide_headers::RateLimitSnapshot::new();
        let (mut b, ticket) = cut_bucket(at);
        // 20 s later the rate has grown, but nothing sent at it succeeded.
        let later = at + Duration::from_secs(20);
        let grown = b.throttled.map(|t| t.rate_at(later)).unwrap_or_default();
        assert!(grown > 1.5, "{grown}");
        b.cut_rate(later, &none, None, Some(ticket), None);
        let rate = b.throttled.map(|t| t.rate);
        assert_eq!(rate, Some(THROTTLE_BETA));

        let (mut b, ticket) = cut_bucket(at);
        b.throttled_success(at, Some(ticket));
        b.cut_rate(later, &none, None, Some(ticket), None);
        let rate = b.throttled.map(|t| t.rate).unwrap_or_default();
        assert!((rate - grown * THROTTLE_BETA).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn refusals_of_a_bucket_that_serves_nothing_back_off_to_the_slowest_rate() {
        let at = Instant::now();
        let none = abide_headers::RateLimitSnapshot::new();
        let (mut b, _) = cut_bucket(at);
        let mut now = at;
        let mut intervals = Vec::new();
        for _ in 0..40 {
            let Some(t) = b.throttled else { break };
            let interval = t.interval(now);
            intervals.push(interval);
            now += interval;
            b.requests += 1;
            b.cut_rate(now, &none, None, Some(b.ticket()), None);
        }
        assert!(intervals.windows(2).all(|w| w[1] >= w[0]), "{intervals:?}");
        let slowest = Duration::from_secs_f64(1.0 / THROTTLE_MIN_RATE);
        assert_eq!(intervals.last(), Some(&slowest));
    }

    #[test]
    fn a_backed_off_rate_keeps_what_the_server_took_and_is_regained_success_by_success() {
        let at = Instant::now();
        let s = Duration::from_secs(1);
        let none = abide_headers::RateLimitSnapshot::new();
        let (mut b, _) = cut_bucket(at);
        // Refused again with nothing served: backed off, the 1/0.7 it last took kept.
        b.requests += 1;
        b.cut_rate(at + s, &none, None, Some(b.ticket()), None);
        let t = b.throttled.expect("cut");
        assert_eq!((t.rate, t.drew), (THROTTLE_BETA, 1.0 / THROTTLE_BETA));
        // Make it a rate that took 10 a second, backed off to 3, its next slot 100 s out.
        b.throttled = Some(Throttled {
            rate: 3.0,
            drew: 10.0,
            tat: at + 100 * s,
            ..t
        });
        let served = |b: &mut BucketState, sent: Instant, now: Instant| {
            b.requests += 1;
            let ticket = Ticket {
                released: Some(sent),
                ..b.ticket()
            };
            b.throttled_success(now, Some(ticket));
            b.throttled.expect("cut")
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // A first success, 2 s after the cut: one token may be all there is. The next
        // request goes within a second; the rate grows as after any cut.
        let now = at + 3 * s;
        let t = served(&mut b, now - s / 2, now);
        assert!(t.served);
        assert_eq!(t.slow_start, None);
        assert_eq!(t.tat, now + t.interval(now).min(SECOND_PROBE));
        // The second, in 500 ms: the slow start, from the rate grown by then (3.45 a
        // second, more than the 2 a round trip gives), the next send re-clocked to it.
        let now = now + s;
        let t = served(&mut b, now - s / 2, now);
        let from = 3.0 * (1.0 + THROTTLE_GROWTH * 3.0);
        assert!(close(t.slow_start.expect("began").rate, from));
        assert!(
            close(t.rate_at(now + 5 * s), from),
            "time alone grows nothing"
        );
        assert!(t.tat <= now + t.interval(now));
        // Each success adds a request a round trip: 2 more a second, up to 95 % of 10.
        let t = served(&mut b, now - s / 2, now);
        assert!(close(t.rate_at(now), from + 2.0));
        let t = served(&mut b, now - s / 2, now);
        assert!(close(t.rate_at(now), from + 4.0));
        let t = served(&mut b, now - s / 2, now);
        assert!(close(t.rate_at(now), from + 6.0));
        assert_eq!(t.slow_start.and_then(|ss| ss.reached), None);
        let reached = now + s;
        let t = served(&mut b, reached - s / 2, reached);
        assert_eq!(t.slow_start.and_then(|ss| ss.reached), Some(reached));
        let low = t.drew * THROTTLE_PLATEAU.0;
        assert!(close(t.rate_at(reached), low));
        // Then the plateau, as after any cut; taken as recovered at 4 times the cut.
        let past = t.rate_at(reached + 5 * s);
        assert!(close(past, low + t.drew * THROTTLE_PLATEAU_GROWTH * 5.0));
        assert!(!t.recovered(reached + 5 * s));
        assert!(t.recovered(reached + 60 * s));
        // A refusal now cuts from the rate regained, as after any success (with more
        // sent since the cut than it allows, so the rate decides).
        b.requests += 1000;
        b.cut_rate(reached + 5 * s, &none, None, Some(b.ticket()), None);
        let t = b.throttled.expect("cut");
        assert!(close(t.rate, past * THROTTLE_BETA), "{}", t.rate);
        assert_eq!(t.slow_start, None);
        // Without a success it only grows by 5 % a second.
        let (b, _) = cut_bucket(at);
        let t = b.throttled.expect("cut");
        assert!(close(t.rate_at(at + 3 * s), 1.15));
    }

    #[test]
    fn a_refusal_between_the_first_two_successes_is_an_ordinary_cut() {
        let at = Instant::now();
        let s = Duration::from_secs(1);
        let none = abide_headers::RateLimitSnapshot::new();
        let (mut b, _) = cut_bucket(at);
        b.throttled = b.throttled.map(|t| Throttled {
            rate: 3.0,
            drew: 10.0,
            ..t
        });
        b.requests += 1;
        b.throttled_success(at + s, Some(b.ticket()));
        // The request sent soon after is refused: the window gave one token. Cut from
        // the rate grown since, not slow-started, and backed off no further than that.
        b.requests += 1000;
        b.cut_rate(at + 2 * s, &none, None, Some(b.ticket()), None);
        let t = b.throttled.expect("cut");
        let grown = 3.0 * (1.0 + THROTTLE_GROWTH * 2.0);
        assert!((t.rate - grown * THROTTLE_BETA).abs() < 1e-9, "{}", t.rate);
        assert_eq!((t.slow_start, t.served), (None, false));
    }

    #[test]
    fn only_successes_of_requests_sent_after_the_cut_count() {
        let at = Instant::now();
        let (mut b, ticket) = cut_bucket(at);
        let before = Ticket {
            requests: 10,
            ..ticket
        };
        b.throttled_success(at, Some(before));
        b.throttled_success(at, None);
        assert_eq!(b.throttled.map(|t| t.served), Some(false));
        b.throttled_success(at, Some(ticket));
        assert_eq!(b.throttled.map(|t| t.served), Some(true));
    }

    #[test]
    fn a_window_whose_headers_overstate_it_paces_at_what_it_took_not_the_average() {
        let s = Duration::from_secs(1);
        let none = abide_headers::RateLimitSnapshot::new();
        // 70 requests in 120 s, most of it a lull; the refused window of 10 s counts 60.
        let cut = |spent: (u64, Duration)| {
            let at = Instant::now();
            let mut b = BucketState::new(at);
            b.requests = 70;
            let ticket = b.ticket();
            b.cut_rate(
                at + 120 * s,
                &none,
                Some(Promised { spent: Some(spent) }),
                Some(ticket),
                None,
            );
            (at + 120 * s, b.throttled.unwrap())
        };
        let (now, t) = cut((60, 10 * s));
        assert!(
            (t.rate - 6.0 * THROTTLE_PLATEAU.0).abs() < 1e-9,
            "{}",
            t.rate
        );
        // It grows at the plateau's pace around the 6 a second the window took.
        let grown = t.rate_at(now + 5 * s);
        assert!((grown - 6.0).abs() < 1e-9, "{grown}");
        // A count past the 70 requests sent is not this client's requests (tokens, or
        // others on the key): the average since the start is cut instead.
        let (_, t) = cut((500, 10 * s));
        assert!(
            (t.rate - 70.0 / 120.0 * THROTTLE_BETA).abs() < 1e-9,
            "{}",
            t.rate
        );
    }

    #[test]
    fn a_short_wait_after_a_stated_one_measures_from_its_end_a_long_one_over_the_cycle() {
        let s = Duration::from_secs(1);
        let none = abide_headers::RateLimitSnapshot::new();
        // Cut at `at` to 100 a second (far above what follows, so the measurement, not
        // the growth, decides the next cut), the server having stated a 40 s wait; 50
        // requests sent after it, the next refusal 1 s after the wait ended.
        let refused = |stated: Duration| {
            let at = Instant::now();
            let (mut b, _) = cut_bucket(at);
            if let Some(t) = &mut b.throttled {
                t.rate = 100.0;
                t.resumes = at + 40 * s;
            }
            b.requests = 60;
            let ticket = b.ticket();
            b.cut_rate(at + 41 * s, &none, None, Some(ticket), Some(stated));
            b.throttled.map(|t| t.rate).unwrap_or_default()
        };
        // It states 100 ms: the quota comes back as it goes, and the 50 went in the
        // second since the wait ended.
        let short = refused(Duration::from_millis(100));
        assert!((short - 50.0 * THROTTLE_BETA).abs() < 1e-9, "{short}");
        // It states 40 s again: the 50 were what the whole 41 s cycle granted.
        let long = refused(40 * s);
        assert!((long - 50.0 / 41.0 * THROTTLE_BETA).abs() < 1e-9, "{long}");
    }

    #[test]
    fn a_backed_off_rate_sends_one_probe_and_holds_the_rest_without_a_slot() {
        use super::super::{Admission, BucketPolicy, Decision};
        use crate::key::BucketKey;
        let at = Instant::now();
        let s = Duration::from_secs(1);
        let key = BucketKey::new("probing");
        let policy = BucketPolicy::default();
        let admit = |b: &mut BucketState, now: Instant| {
            b.admit(&Admission::new(&key, 1, now, &policy).with_max_wait(600 * s))
        };
        // Backed off to a request every 10 s (it last took 10 a second), nothing served
        // since: the slot at 0 goes, as the probe.
        let (mut b, _) = cut_bucket(at);
        b.throttled = b.throttled.map(|t| Throttled {
            rate: 0.1,
            drew: 10.0,
            ..t
        });
        match admit(&mut b, at) {
            Decision::Go(t) => assert!(t.probe && t.paced),
            d => panic!("the probe goes: {d:?}"),
        }
        // The next reserves nothing past it: it asks again within a poll.
        for _ in 0..3 {
            match admit(&mut b, at + s / 10) {
                Decision::Wait {
                    until,
                    reservation: None,
                } => assert!(until <= at + s / 10 + s, "asks again within a poll"),
                d => panic!("held without a slot: {d:?}"),
            }
        }
        // Its answer a success, the next probe goes within a second (the second probe).
        b.requests += 1;
        let ticket = Ticket {
            requests: b.requests,
            ..b.ticket()
        };
        b.throttled_success(at + s / 5, Some(ticket));
        assert!(
            b.throttled.is_some_and(|t| t.probing()),
            "one success is not two"
        );
        let next = at + s / 5 + s;
        assert!(matches!(admit(&mut b, next), Decision::Go(t) if t.probe));
        // A second success starts the slow start: no longer a probe, slots are reserved.
        b.requests += 1;
        let ticket = Ticket {
            requests: b.requests,
            released: Some(next),
            ..b.ticket()
        };
        b.throttled_success(next + s / 10, Some(ticket));
        assert!(b.throttled.is_some_and(|t| !t.probing()));
        for _ in 0..3 {
            match admit(&mut b, next + s / 5) {
                Decision::Go(t) => assert!(!t.probe),
                Decision::Wait {
                    reservation: Some(r),
                    ..
                } => assert!(!r.ticket.probe),
                d => panic!("admitted on the regained rate: {d:?}"),
            }
        }
    }
}
