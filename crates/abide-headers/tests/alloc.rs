//! Extraction does not allocate in the common case (one dialect, up to four limits),
//! shown with a counting global allocator.
//!
//! This is the one target in the crate allowed `unsafe`: implementing `GlobalAlloc` is
//! unsafe by definition. The library itself is `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]

mod common;

use abide_headers::RateLimitHeaders;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Per thread, so tests running in parallel do not count each other's allocations.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

fn count_one() {
    // `try_with`: the slot may already be gone while the thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// count is a thread-local `Cell` with a const initializer, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` made on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

fn assert_no_allocation(pairs: &[(&str, &str)], expected_limits: usize) {
    let map = common::headers(pairs);
    let extractor = RateLimitHeaders::new().with_now(common::now());
    let (n, snapshot) = allocations(|| extractor.extract(&map));
    assert_eq!(snapshot.limits().len(), expected_limits, "{snapshot:?}");
    assert_eq!(n, 0, "extracting {pairs:?} allocated {n} times");
}

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert!(n >= 1);
}

#[test]
fn openai_response_does_not_allocate() {
    assert_no_allocation(
        &[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "2m59.56s"),
            ("retry-after-ms", "1500"),
            ("retry-after", "2"),
        ],
        2,
    );
}

#[test]
fn anthropic_response_with_four_limits_does_not_allocate() {
    let mut pairs = Vec::new();
    for scope in ["requests", "tokens", "input-tokens", "output-tokens"] {
        pairs.push((
            format!("anthropic-ratelimit-{scope}-limit"),
            "1000".to_string(),
        ));
        pairs.push((
            format!("anthropic-ratelimit-{scope}-remaining"),
            "10".to_string(),
        ));
        pairs.push((
            format!("anthropic-ratelimit-{scope}-reset"),
            "2023-11-14T22:14:00Z".to_string(),
        ));
    }
    pairs.push(("retry-after".into(), "40".into()));
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_no_allocation(&pairs, 4);
}

#[test]
fn github_response_does_not_allocate() {
    assert_no_allocation(
        &[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-used", "5000"),
            ("x-ratelimit-reset", "1700000600"),
            ("x-ratelimit-resource", "core"),
        ],
        1,
    );
}

#[test]
fn ietf_draft10_structured_fields_do_not_allocate() {
    assert_no_allocation(
        &[
            (
                "RateLimit-Policy",
                "\"burst\";q=100;w=60, \"daily\";q=1000;w=86400",
            ),
            ("RateLimit", "\"burst\";r=0;t=30, \"daily\";r=900;t=3600"),
        ],
        2,
    );
}

#[test]
fn honeycomb_draft07_dictionary_does_not_allocate() {
    assert_no_allocation(
        &[
            ("RateLimit", "limit=100, remaining=0, reset=54"),
            ("RateLimit-Policy", "100;w=60"),
        ],
        1,
    );
}

#[test]
fn draft03_triple_and_retry_after_date_do_not_allocate() {
    assert_no_allocation(
        &[
            ("RateLimit-Limit", "10, 10;w=1, 50;w=60"),
            ("RateLimit-Remaining", "0"),
            ("RateLimit-Reset", "1"),
            ("Retry-After", "Tue, 14 Nov 2023 22:13:50 GMT"),
        ],
        2,
    );
}

#[test]
fn generic_x_ratelimit_with_date_header_as_reference_does_not_allocate() {
    let map = common::headers(&[
        ("Date", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("X-RateLimit-Limit", "60"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "1700000030"),
    ]);
    let (n, s) = allocations(|| RateLimitHeaders::new().extract(&map));
    assert_eq!(s.wait(), common::secs(30));
    assert_eq!(n, 0);
}
