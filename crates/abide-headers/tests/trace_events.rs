//! What the extractor reports through `tracing` when it ignores a field.
//!
//! Alone in its own test binary on purpose: `tracing` caches each callsite's interest
//! process-wide, and a test on another thread that reaches the same callsite while this
//! one installs its subscriber can leave the callsite marked "never" (the registration
//! race in `tracing-core`), so the capture would see nothing. One test, one thread.

mod common;

use common::parse;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A subscriber that writes every event's fields into a shared string.
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(out, "[{}] ", event.metadata().level());
        event.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_ignored_field_is_reported_as_a_debug_event_saying_what_and_why() {
    let log = Arc::new(Mutex::new(String::new()));
    let s = tracing::subscriber::with_default(Capture(log.clone()), || {
        parse(&[
            ("retry-after", "tomorrow-ish"),
            ("x-ratelimit-remaining-tokens", "-1.5"),
            ("x-ratelimit-limit-tokens", "100"),
        ])
    });
    assert_eq!(s.tokens().unwrap().limit, Some(100));
    let log = log.lock().unwrap();
    assert!(log.contains("[DEBUG]"), "{log}");
    assert!(
        log.contains("field=retry-after") && log.contains("not a date"),
        "{log}"
    );
    assert!(
        log.contains("field=x-ratelimit-remaining-tokens") && log.contains("negative value"),
        "{log}"
    );
    assert!(
        !log.contains("x-ratelimit-limit-tokens"),
        "valid fields are not reported: {log}"
    );
}
