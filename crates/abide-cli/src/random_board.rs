//! The human report of `abide scoreboard --random N`: one summary line per strategy over
//! all draws, then the draws abide did worst on.

use abide_sim::{rank_cmp, Row, Scenario};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The baselines that are told the scenario's limits in advance (static limiters declared
/// at the true limits).
const TOLD_THE_LIMITS: [&str; 2] = ["cookbook-parallel", "governor-reqwest-retry"];

/// The nearest-rank percentile `p` (0..=1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One strategy's figures over the draws.
#[derive(Debug, Default)]
struct Summary {
    draws: usize,
    lost_nothing: usize,
    alone: u64,
    ratios: Vec<f64>,
    rejections: Vec<f64>,
    after_exhaustion: u64,
    first: usize,
}

/// How three figures of a sorted list read: median, p90, worst.
fn spread(values: &mut [f64], digits: usize) -> String {
    values.sort_by(f64::total_cmp);
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"));
    format!(
        "{:>7} {:>7} {:>7}",
        f(percentile(values, 0.5)),
        f(percentile(values, 0.9)),
        f(values.last().copied())
    )
}

/// A strategy beats abide on a draw when it loses no more, is at least 2% faster and takes
/// no more rejections per success.
pub(crate) fn beats(baseline: &Row, abide: &Row) -> bool {
    let (Some(b), Some(a)) = (baseline.makespan_ratio, abide.makespan_ratio) else {
        return false;
    };
    let rej = |r: &Row| r.rejected_per_success.unwrap_or(f64::INFINITY);
    baseline.lost <= abide.lost && b <= a * 0.98 && rej(baseline) <= rej(abide)
}

/// A short description of a draw: what the server enforces and what the workload asks.
pub(crate) fn describe(s: &Scenario) -> String {
    let srv = &s.server;
    let w = &s.workload;
    let mut limits = Vec::new();
    let window = srv.window.as_secs_f64();
    if srv.requests_per_window > 0 {
        limits.push(format!("{} req/{window}s", srv.requests_per_window));
    }
    if srv.tokens_per_window > 0 {
        limits.push(format!("{} tok/{window}s", srv.tokens_per_window));
    }
    if srv.requests_per_day > 0 {
        limits.push(format!("{} RPD", srv.requests_per_day));
    }
    if srv.tokens_per_day > 0 {
        limits.push(format!("{} TPD", srv.tokens_per_day));
    }
    if srv.max_in_flight > 0 {
        limits.push(format!("{} in flight", srv.max_in_flight));
    }
    if srv.quota_requests > 0 {
        limits.push(format!("quota {}", srv.quota_requests));
    }
    if srv.enforce_factor != 1.0 {
        limits.push(format!("enforces x{}", srv.enforce_factor));
    }
    if srv.limits_on_429_only {
        limits.push("limits on 429 only".into());
    }
    if !srv.retry_after {
        limits.push("no wait stated".into());
    }
    let mut extra = Vec::new();
    if !srv.outages.is_empty() {
        let statuses: Vec<String> = srv
            .outages
            .iter()
            .map(|o| {
                let status = o
                    .status
                    .map_or_else(|| "refused".into(), |c| c.as_str().to_owned());
                format!("{status} {:.0}s", o.duration.as_secs_f64())
            })
            .collect();
        extra.push(format!("outages {}", statuses.join("+")));
    }
    if w.oversized_share > 0.0 {
        extra.push(format!("{:.1}% oversized", w.oversized_share * 100.0));
    }
    if let Some(d) = w.deadline {
        extra.push(format!("deadline {:.0}s", d.as_secs_f64()));
    }
    let arrival = match w.arrival {
        abide_sim::Arrival::Closed => "closed".to_owned(),
        abide_sim::Arrival::Poisson { rate_per_s } => format!("poisson {rate_per_s}/s"),
        abide_sim::Arrival::Burst { every, size } => {
            format!("bursts of {size} every {:.1}s", every.as_secs_f64())
        }
        _ => "other".to_owned(),
    };
    format!(
        "{} {}, {}; {} requests, {} client(s){} x {}, {arrival}{}{}",
        srv.dialect,
        srv.algorithm.as_str(),
        if limits.is_empty() {
            "no limits".to_owned()
        } else {
            limits.join(", ")
        },
        w.requests,
        w.clients,
        if w.shared_state { " sharing state" } else { "" },
        w.concurrency,
        if extra.is_empty() { "" } else { "; " },
        extra.join(", ")
    )
}

/// The report: per strategy, over all draws, then abide's worst draws.
pub(crate) fn human(seed: u64, scenarios: &[Scenario], rows: &[Row]) -> String {
    let mut by_scenario: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_scenario.entry(r.scenario.as_str()).or_default().push(r);
    }
    let mut order: Vec<&str> = Vec::new();
    let mut summaries: BTreeMap<&str, Summary> = BTreeMap::new();
    for r in rows {
        if !summaries.contains_key(r.strategy.as_str()) {
            order.push(r.strategy.as_str());
        }
        let s = summaries.entry(r.strategy.as_str()).or_default();
        s.draws += 1;
        // `gave_up_alone` is the one loss a client may accept: counted apart.
        s.lost_nothing += usize::from(r.lost == r.gave_up_alone);
        s.alone += r.gave_up_alone;
        s.ratios.extend(r.makespan_ratio);
        s.rejections.extend(r.rejected_per_success);
        s.after_exhaustion += r.attempts_after_exhaustion;
        let best = by_scenario[r.scenario.as_str()]
            .iter()
            .all(|other| rank_cmp(r, other).is_le());
        s.first += usize::from(best);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "abide scoreboard --random {} --seed {seed}: {} draws x {} strategies (draws named random-{seed}-<i>)\n",
        scenarios.len(),
        scenarios.len(),
        order.len()
    );
    let _ = writeln!(
        out,
        "  {:<24} {:>9} {:>6}   {:>7} {:>7} {:>7}   {:>7} {:>7} {:>7} {:>9} {:>6}",
        "strategy",
        "lost 0",
        "alone",
        "ratio50",
        "p90",
        "worst",
        "rej50",
        "p90",
        "worst",
        "after-ex",
        "first"
    );
    for name in &order {
        let s = summaries
            .get_mut(name)
            .expect("every strategy has a summary");
        let ratio = spread(&mut s.ratios, 2);
        let rej = spread(&mut s.rejections, 3);
        let _ = writeln!(
            out,
            "  {:<24} {:>4}/{:<4} {:>6}   {ratio}   {rej} {:>9} {:>6}",
            name, s.lost_nothing, s.draws, s.alone, s.after_exhaustion, s.first
        );
    }
    out.push_str(
        "\n  lost 0: draws where the strategy lost no request but for gave_up_alone (alone: those,\n  summed); ratio = makespan_ratio and rej = rejected_per_success (median, p90, worst over the\n  draws); after-ex: attempts sent after a permanent quota error, summed; first: draws where\n  it ranked first (ties count for each).\n",
    );

    let abide: Vec<&Row> = rows.iter().filter(|r| r.strategy == "abide").collect();
    if abide.is_empty() {
        out.push_str("\nabide: not on this board (the `abide` strategy was not selected)\n");
        return out;
    }
    // Beaten: a baseline loses no more, is >= 2% faster and takes no more 429s per success.
    // The baselines told the limits in advance count where the server states its limits
    // (abide learns them from the first answer); where it states none, knowing them is
    // information abide is not given: those draws are reported apart, with the gap.
    let states_limits = |name: &str| {
        scenarios.iter().find(|s| s.name == name).is_some_and(|s| {
            !matches!(
                s.server.dialect,
                abide_sim::SimDialect::None
                    | abide_sim::SimDialect::RetryAfterOnly
                    | abide_sim::SimDialect::Grpc
            ) && !s.server.limits_on_429_only
        })
    };
    let told = |name: &str| TOLD_THE_LIMITS.contains(&name);
    let (mut beaten, mut told_beats, mut unstated) = (0, 0, 0);
    let mut gaps = Vec::new();
    for a in &abide {
        let stated = states_limits(&a.scenario);
        let others = by_scenario[a.scenario.as_str()]
            .iter()
            .filter(|r| r.strategy != "abide" && r.strategy != "abide-retry-only");
        let mut told_best: Option<f64> = None;
        let mut lost_to = false;
        for r in others {
            if !beats(r, a) {
                continue;
            }
            if stated || !told(&r.strategy) {
                lost_to = true;
            } else if let (Some(b), Some(x)) = (r.makespan_ratio, a.makespan_ratio) {
                told_best = Some(told_best.map_or(x / b, |g: f64| g.max(x / b)));
            }
        }
        beaten += usize::from(lost_to);
        unstated += usize::from(!stated);
        if let Some(g) = told_best {
            told_beats += 1;
            gaps.push(g - 1.0);
        }
    }
    gaps.sort_by(f64::total_cmp);
    let _ = writeln!(
        out,
        "\nabide beaten by a baseline (loses no more, >= 2% faster, no more 429s per success) in {beaten} of {} draws ({:.1}%)",
        abide.len(),
        100.0 * beaten as f64 / abide.len().max(1) as f64
    );
    let _ = writeln!(
        out,
        "  apart: {told_beats} of the {unstated} draws where the server states no limits are won by a baseline told them in advance ({}); abide slower by {} median, {} worst",
        TOLD_THE_LIMITS.join(", "),
        percentile(&gaps, 0.5).map_or_else(|| "-".into(), |g| format!("{:.0}%", g * 100.0)),
        gaps.last().map_or_else(|| "-".into(), |g| format!("{:.0}%", g * 100.0)),
    );

    let mut worst = abide.clone();
    worst.sort_by(|a, b| {
        b.lost
            .cmp(&a.lost)
            .then(
                b.makespan_ratio
                    .unwrap_or(0.0)
                    .total_cmp(&a.makespan_ratio.unwrap_or(0.0)),
            )
            .then(
                b.rejected_per_success
                    .unwrap_or(0.0)
                    .total_cmp(&a.rejected_per_success.unwrap_or(0.0)),
            )
    });
    out.push_str("\nabide's 10 worst draws (most lost, then highest makespan_ratio):\n");
    for r in worst.iter().take(10) {
        let what = scenarios
            .iter()
            .find(|s| s.name == r.scenario)
            .map(describe)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<16} lost {:>4}  ratio {:>6}  rej/ok {:>6}  {what}",
            r.scenario,
            r.lost,
            r.makespan_ratio
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            r.rejected_per_success
                .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
        );
    }
    out
}
