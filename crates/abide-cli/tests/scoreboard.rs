//! End-to-end tests of the built `abide scoreboard` binary: its JSON contract, its exit
//! codes, scenario files, determinism and the plot.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const KEYS: [&str; 20] = [
    "scenario",
    "strategy",
    "clients",
    "requests",
    "succeeded",
    "failed_permanent",
    "failed_client",
    "timed_out",
    "lost",
    "gave_up_alone",
    "attempts",
    "rejected",
    "rejected_per_success",
    "amplification",
    "attempts_after_exhaustion",
    "makespan_s",
    "ideal_makespan_s",
    "makespan_ratio",
    "p50_latency_s",
    "p99_latency_s",
];

fn abide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(args)
        .output()
        .expect("the abide binary runs")
}

/// A scenario file in a fresh temporary directory of this test's own.
fn scenario_file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("abide-scoreboard-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const SMALL: &str = r#"
name = "small-openai"
seed = 3
[server]
dialect = "openai"
window_s = 10.0
requests_per_window = 20
[workload]
requests = 60
concurrency = 8
"#;

#[test]
fn json_rows_carry_exactly_the_documented_keys_in_order_and_add_up() {
    let file = scenario_file("keys", SMALL);
    let out = abide(&[
        "scoreboard",
        "--json",
        "--scenario",
        file.to_str().unwrap(),
        "--strategy",
        "abide",
        "--strategy",
        "none",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The keys come in the documented order (checked on the text: a parsed map forgets it).
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let first_row = &text[..text.find('}').expect("a row")];
    let positions: Vec<usize> = KEYS
        .iter()
        .map(|k| {
            first_row
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing from {first_row}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first_row}");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("stdout is only JSON");
    let rows = rows.as_array().expect("an array of rows");
    assert_eq!(rows.len(), 2, "one row per (scenario, strategy)");
    for row in rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = KEYS.to_vec();
        let mut got = keys.clone();
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected, "row keys");
        assert_eq!(row["scenario"], "small-openai");
        let n = |k: &str| row[k].as_u64().unwrap();
        assert_eq!(n("requests"), 60);
        assert_eq!(
            n("lost"),
            n("requests")
                - n("succeeded")
                - n("failed_permanent")
                - n("failed_client")
                - n("timed_out"),
        );
    }
    let abide_row = rows.iter().find(|r| r["strategy"] == "abide").unwrap();
    assert_eq!(abide_row["succeeded"], 60, "{abide_row}");
    // A single attempt each against a 20-request burst cannot deliver all 60.
    let none_row = rows.iter().find(|r| r["strategy"] == "none").unwrap();
    assert!(none_row["lost"].as_u64().unwrap() > 0, "{none_row}");
}

#[test]
fn the_same_inputs_give_byte_identical_json() {
    let args = [
        "scoreboard",
        "--json",
        "--scenario",
        "bursty",
        "--scenario",
        "outage",
    ];
    let first = abide(&args);
    let second = abide(&args);
    assert!(first.status.success());
    assert_eq!(first.stdout, second.stdout);
    // The wall time goes to stderr, never into the JSON.
    assert!(String::from_utf8_lossy(&first.stderr).contains("wall time"));
}

#[test]
fn human_output_ranks_each_scenario_and_says_where_abide_stands() {
    let out = abide(&["scoreboard", "--scenario", "quota-exhausted"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("quota-exhausted ("), "{text}");
    assert!(text.contains("abide ranks first in"), "{text}");
}

#[test]
fn a_bad_scenario_file_exits_1_naming_the_file_and_the_key() {
    let unknown = scenario_file("unknown", &format!("{SMALL}\n[extra]\nbogus = 1\n"));
    let out = abide(&["scoreboard", "--scenario", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scenario.toml"), "{err}");
    assert!(err.contains("extra"), "{err}");

    let missing = scenario_file(
        "missing",
        "name = \"m\"\n[server]\ndialect = \"openai\"\n[workload]\nconcurrency = 2\n",
    );
    let out = abide(&["scoreboard", "--scenario", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("requests"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["scoreboard", "--bogus"][..],
        &["scoreboard", "--strategy", "no-such-strategy"][..],
        &["scoreboard", "--scenario", "no-such-scenario"][..],
        &["scoreboard", "--plot", "/tmp/x.svg"][..],
        &["scoreboard", "--random", "0"][..],
        &["scoreboard", "--random", "ten"][..],
        &["scoreboard", "--random"][..],
        &["scoreboard", "--random", "3", "--seed", "-1"][..],
        &["scoreboard", "--seed", "3"][..],
        &["scoreboard", "--emit", "/tmp/x"][..],
        &["scoreboard", "--random", "3", "--scenario", "outage"][..],
        &["scoreboard", "--random", "3", "--plot", "/tmp/x.svg"][..],
    ] {
        let out = abide(args);
        assert_eq!(out.status.code(), Some(2), "args {args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn list_names_every_builtin_scenario_and_strategy() {
    let out = abide(&["scoreboard", "--list"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The names themselves are pinned by abide-sim's tests; here: the binary lists them all.
    let scenarios = abide_sim::Scenario::builtins().into_iter().map(|s| s.name);
    let strategies = abide_sim::strategy::Strategy::ALL.map(|s| s.name().to_owned());
    for name in scenarios.chain(strategies) {
        let name = name.as_str();
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} missing from --list:\n{text}"
        );
    }
}

#[test]
fn plot_writes_an_svg_with_a_lane_per_strategy() {
    let file = scenario_file("plot", SMALL);
    let svg = file.with_file_name("board.svg");
    let out = abide(&[
        "scoreboard",
        "--scenario",
        file.to_str().unwrap(),
        "--strategy",
        "abide",
        "--strategy",
        "naive",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("the plot was written");
    assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(80)]);
    assert!(text.trim_end().ends_with("</svg>"));
    assert!(text.contains(">abide<") && text.contains(">naive<"));
}

#[test]
fn random_boards_are_deterministic_per_seed_and_default_to_seed_1() {
    let args = [
        "scoreboard",
        "--random",
        "4",
        "--json",
        "--strategy",
        "abide",
        "--strategy",
        "none",
    ];
    let first = abide(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(first.stdout, abide(&args).stdout);
    let rows: Value = serde_json::from_slice(&first.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "random-1-0",
            "random-1-0",
            "random-1-1",
            "random-1-1",
            "random-1-2",
            "random-1-2",
            "random-1-3",
            "random-1-3"
        ]
    );
    let seeded = abide(&[
        "scoreboard",
        "--random",
        "4",
        "--seed",
        "1",
        "--json",
        "--strategy",
        "abide",
        "--strategy",
        "none",
    ]);
    assert_eq!(seeded.stdout, first.stdout);
    let other = abide(&[
        "scoreboard",
        "--random",
        "4",
        "--seed",
        "2",
        "--json",
        "--strategy",
        "abide",
        "--strategy",
        "none",
    ]);
    assert_ne!(other.stdout, first.stdout);
}

#[test]
fn emitted_draws_load_back_with_scenario_and_give_the_same_rows() {
    let dir = std::env::temp_dir().join(format!("abide-scoreboard-{}-emit", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = abide(&[
        "scoreboard",
        "--random",
        "3",
        "--seed",
        "9",
        "--emit",
        dir.to_str().unwrap(),
        "--json",
        "--strategy",
        "abide",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, row) in drawn.as_array().unwrap().iter().enumerate() {
        let file = dir.join(format!("random-9-{i}.toml"));
        let replay = abide(&[
            "scoreboard",
            "--scenario",
            file.to_str().unwrap(),
            "--json",
            "--strategy",
            "abide",
        ]);
        assert!(
            replay.status.success(),
            "{}",
            String::from_utf8_lossy(&replay.stderr)
        );
        let replayed: Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(&replayed[0], row, "{}", file.display());
    }
}

#[test]
fn the_random_report_summarises_each_strategy_and_names_abides_worst_draws() {
    let out = abide(&[
        "scoreboard",
        "--random",
        "12",
        "--seed",
        "5",
        "--strategy",
        "abide",
        "--strategy",
        "openai-python",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("abide scoreboard --random 12 --seed 5: 12 draws x 2 strategies"),
        "{text}"
    );
    for line in ["  abide ", "  openai-python "] {
        let row = text
            .lines()
            .find(|l| l.starts_with(line))
            .unwrap_or_else(|| panic!("{line} missing:\n{text}"));
        assert!(row.contains("/12"), "{row}");
    }
    assert!(text.contains("abide beaten by a baseline"), "{text}");
    let worst = text.split("worst draws").nth(1).expect("the worst draws");
    assert_eq!(
        worst
            .lines()
            .filter(|l| l.trim_start().starts_with("random-5-"))
            .count(),
        10,
        "{text}"
    );
}
