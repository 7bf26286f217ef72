//! Counters every successful request writes, striped by thread: callers on different
//! threads add to different cache lines instead of fighting over one, and readers sum the
//! stripes.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes per counter set: enough for the cores a client process usually has; threads
/// beyond it share stripes, which stays correct.
const STRIPES: usize = 8;

/// One stripe on a cache line of its own (128 bytes: two lines prefetched together on
/// x86, one on Apple silicon).
#[repr(align(128))]
struct Stripe<const N: usize>([AtomicU64; N]);

/// `N` counters, each split over [`STRIPES`] cache lines.
pub(crate) struct Striped<const N: usize> {
    stripes: [Stripe<N>; STRIPES],
}

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped {
            stripes: std::array::from_fn(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }
}

/// This thread's stripe, handed out round robin on first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) });
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

impl<const N: usize> Striped<N> {
    /// Adds `n` to counter `i`.
    pub(crate) fn add(&self, i: usize, n: u64) {
        self.stripes[stripe()].0[i].fetch_add(n, Relaxed);
    }

    /// Counter `i`: the sum of its stripes.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.0[i].load(Relaxed)))
    }

    /// Counter `i`, reset to zero (each stripe taken atomically, so no addition is lost).
    pub(crate) fn take(&self, i: usize) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.0[i].swap(0, Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn additions_from_many_threads_all_count_and_take_resets() {
        let c = Arc::new(Striped::<2>::default());
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(0, 1);
                        c.add(1, 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.sum(0), 12_000);
        assert_eq!(c.take(1), 36_000);
        assert_eq!(c.sum(1), 0);
        assert_eq!(c.sum(0), 12_000);
    }
}
