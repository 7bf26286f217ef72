//! The random board's draws: deterministic per seed, sized as documented, covering the
//! whole scenario space, and replayable from the TOML they are emitted as.

use abide_sim::strategy::Strategy;
use abide_sim::{ideal_makespan, random, run, Algorithm, Scenario, SimDialect};
use std::collections::HashSet;

const SEEDS: [u64; 3] = [1, 2, 3];

#[test]
fn draws_are_named_by_seed_and_index_and_the_same_every_time() {
    let a = random::draws(7, 20);
    assert_eq!(a, random::draws(7, 20));
    assert_eq!(a[3].name, "random-7-3");
    assert_eq!(random::draw(7, 3), a[3]);
    // Another seed draws another board.
    let b = random::draws(8, 20);
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| x.server != y.server || x.workload != y.workload));
}

#[test]
fn every_draw_loads_back_from_its_toml_as_the_same_scenario() {
    for seed in SEEDS {
        for s in random::draws(seed, 200) {
            let text = s.to_toml();
            let back = Scenario::from_toml(&format!("{}.toml", s.name), &text)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, s, "{}:\n{text}", s.name);
        }
    }
}

#[test]
fn a_reloaded_draw_runs_identically() {
    // Every 20th draw of each seed, through abide and a baseline: rows equal field by field.
    for seed in SEEDS {
        for s in random::draws(seed, 200).into_iter().step_by(20) {
            let back = Scenario::from_toml("back.toml", &s.to_toml()).unwrap();
            for strategy in [Strategy::Abide, Strategy::OpenAiPython] {
                let mut original = run(&s, strategy).unwrap();
                let reloaded = run(&back, strategy).unwrap();
                original.row.scenario.clone_from(&reloaded.row.scenario);
                assert_eq!(original, reloaded, "{} / {strategy}", s.name);
            }
        }
    }
}

#[test]
fn two_hundred_draws_cover_every_dialect_algorithm_and_outage_status() {
    for seed in SEEDS {
        let draws = random::draws(seed, 200);
        let dialects: HashSet<SimDialect> = draws.iter().map(|s| s.server.dialect).collect();
        assert_eq!(
            dialects.len(),
            SimDialect::ALL.len(),
            "seed {seed}: {dialects:?}"
        );
        let algorithms: HashSet<Algorithm> = draws.iter().map(|s| s.server.algorithm).collect();
        assert_eq!(algorithms.len(), 3, "seed {seed}");
        let statuses: HashSet<u16> = draws
            .iter()
            .flat_map(|s| {
                s.server
                    .outages
                    .iter()
                    .map(|o| o.status.map_or(0, |c| c.as_u16()))
            })
            .collect();
        assert_eq!(
            statuses,
            HashSet::from([0, 500, 502, 503, 504, 529]),
            "seed {seed}"
        );
        let count = |f: &dyn Fn(&Scenario) -> bool| draws.iter().filter(|s| f(s)).count();
        for (what, n) in [
            ("several clients", count(&|s| s.workload.clients > 1)),
            ("shared state", count(&|s| s.workload.shared_state)),
            ("token limits", count(&|s| s.server.tokens_per_window > 0)),
            ("daily requests", count(&|s| s.server.requests_per_day > 0)),
            ("daily tokens", count(&|s| s.server.tokens_per_day > 0)),
            (
                "limits on 429 only",
                count(&|s| s.server.limits_on_429_only),
            ),
            (
                "oversized requests",
                count(&|s| s.workload.oversized_share > 0.0),
            ),
            ("lifetime quota", count(&|s| s.server.quota_requests > 0)),
            (
                "overstated limits",
                count(&|s| s.server.enforce_factor < 1.0),
            ),
            ("deadlines", count(&|s| s.workload.deadline.is_some())),
            ("server concurrency", count(&|s| s.server.max_in_flight > 0)),
            ("no stated wait", count(&|s| !s.server.retry_after)),
            ("reordering", count(&|s| !s.server.reorder.is_zero())),
            (
                "whole-second clocks",
                count(&|s| s.server.whole_second_clock),
            ),
            (
                "poisson",
                count(&|s| matches!(s.workload.arrival, abide_sim::Arrival::Poisson { .. })),
            ),
            (
                "bursts",
                count(&|s| matches!(s.workload.arrival, abide_sim::Arrival::Burst { .. })),
            ),
            (
                "closed",
                count(&|s| matches!(s.workload.arrival, abide_sim::Arrival::Closed)),
            ),
        ] {
            assert!(n > 0, "seed {seed}: no draw with {what}");
        }
    }
}

#[test]
fn draws_are_sized_to_an_ideal_between_ten_seconds_and_two_hours() {
    for seed in SEEDS {
        for s in random::draws(seed, 200) {
            let ideal = ideal_makespan(&s, &s.plan());
            assert!(
                (9.0..=7920.0).contains(&ideal),
                "{}: ideal {ideal} s",
                s.name
            );
            assert!((random::MIN_REQUESTS..=random::MAX_REQUESTS).contains(&s.workload.requests));
            assert!(s.time_limit.as_secs_f64() >= ideal * 3.0);
            let window = s.server.window.as_secs_f64();
            assert!((1.0..=3600.0).contains(&window), "{}", s.name);
            let latency = s.server.latency.as_secs_f64();
            assert!((0.01..=3.0).contains(&latency), "{}", s.name);
            assert!(
                (1..=128).contains(&s.workload.concurrency)
                    && (1..=8).contains(&s.workload.clients)
            );
            assert!((0.5..=1.0).contains(&s.server.enforce_factor));
            assert!(s.server.outages.len() <= 3);
            assert!(s
                .server
                .outages
                .iter()
                .all(|o| (1.0..=60.0).contains(&o.duration.as_secs_f64())));
        }
    }
}
