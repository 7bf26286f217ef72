//! A hand-written SVG of successes and rejections over time, one panel per strategy.

use crate::run::Timeline;
use std::fmt::Write as _;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 140.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 70.0;
const GAP: f64 = 14.0;
const TOP: f64 = 40.0;
const BINS: usize = 120;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bin(times: &[f64], span: f64) -> Vec<u32> {
    let mut bins = vec![0u32; BINS];
    for &t in times {
        let i = ((t / span) * BINS as f64).floor();
        let i = if i.is_finite() && i >= 0.0 {
            (i as usize).min(BINS - 1)
        } else {
            0
        };
        bins[i] += 1;
    }
    bins
}

/// An SVG showing, for each `(strategy, timeline)`, served answers (green, upward) and
/// rejections (red, downward) per time bin over the longest timeline.
pub fn svg(scenario: &str, runs: &[(&str, &Timeline)]) -> String {
    let span = runs
        .iter()
        .flat_map(|(_, t)| t.successes.iter().chain(&t.rejections))
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1.0);
    let height = TOP + runs.len() as f64 * (PANEL + GAP) + 30.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let bar_w = plot_w / BINS as f64;
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="14">{} — answers per {:.2} s (green: served, red: rejected)</text>
"#,
        escape(scenario),
        span / BINS as f64
    );
    for (k, (name, timeline)) in runs.iter().enumerate() {
        let y0 = TOP + k as f64 * (PANEL + GAP);
        let mid = y0 + PANEL / 2.0;
        let ok = bin(&timeline.successes, span);
        let rej = bin(&timeline.rejections, span);
        let peak = ok.iter().chain(&rej).copied().max().unwrap_or(0).max(1) as f64;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line x1="{LEFT}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#999" stroke-width="0.5"/>"##,
            LEFT - 8.0,
            mid + 4.0,
            escape(name),
            WIDTH - RIGHT
        );
        for i in 0..BINS {
            let x = LEFT + i as f64 * bar_w;
            if ok[i] > 0 {
                let h = ok[i] as f64 / peak * (PANEL / 2.0);
                let _ = writeln!(
                    out,
                    r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#2a9d4b"/>"##,
                    mid - h,
                    bar_w.max(1.0)
                );
            }
            if rej[i] > 0 {
                let h = rej[i] as f64 / peak * (PANEL / 2.0);
                let _ = writeln!(
                    out,
                    r##"<rect x="{x:.1}" y="{mid:.1}" width="{:.1}" height="{h:.1}" fill="#d1495b"/>"##,
                    bar_w.max(1.0)
                );
            }
        }
    }
    let axis_y = TOP + runs.len() as f64 * (PANEL + GAP) + 5.0;
    for tick in 0..=4 {
        let x = LEFT + plot_w * f64::from(tick) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{:.0} s</text>"#,
            axis_y + 14.0,
            span * f64::from(tick) / 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Line colours for [`lines`], one per run in order (then repeated).
const COLOURS: [&str; 6] = [
    "#d1495b", "#edae49", "#2a9d4b", "#00798c", "#30638e", "#6b4c9a",
];

/// An SVG with two panels over the same time axis: cumulative successes (top) and
/// cumulative rejections (bottom), one line per `(label, timeline)`, with a legend.
pub fn lines(title: &str, runs: &[(&str, &Timeline)]) -> String {
    const H: f64 = 170.0;
    let span = runs
        .iter()
        .flat_map(|(_, t)| t.successes.iter().chain(&t.rejections))
        .fold(0.0f64, |a, &b| a.max(b))
        .max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let height = TOP + 2.0 * (H + 40.0) + 30.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="14">{}</text>
"#,
        escape(title)
    );
    for (panel, label) in ["successes", "429s and overloads received"]
        .iter()
        .enumerate()
    {
        let y0 = TOP + panel as f64 * (H + 40.0);
        let series: Vec<&[f64]> = runs
            .iter()
            .map(|(_, t)| {
                if panel == 0 {
                    &t.successes[..]
                } else {
                    &t.rejections[..]
                }
            })
            .collect();
        let peak = series.iter().map(|s| s.len()).max().unwrap_or(0).max(1) as f64;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{peak}</text><rect x="{LEFT}" y="{y0:.1}" width="{plot_w:.1}" height="{H}" fill="none" stroke="#999" stroke-width="0.5"/>"##,
            LEFT - 8.0,
            y0 + H / 2.0,
            LEFT - 8.0,
            y0 + 12.0,
        );
        for (k, times) in series.iter().enumerate() {
            let mut sorted = times.to_vec();
            sorted.sort_by(f64::total_cmp);
            let mut points = format!("{LEFT:.1},{:.1}", y0 + H);
            for (n, t) in sorted.iter().enumerate() {
                let x = LEFT + t / span * plot_w;
                let y = y0 + H - (n + 1) as f64 / peak * H;
                let _ = write!(points, " {x:.1},{y:.1}");
            }
            if !sorted.is_empty() {
                let y = y0 + H - sorted.len() as f64 / peak * H;
                let _ = write!(points, " {:.1},{y:.1}", LEFT + plot_w);
            }
            let _ = writeln!(
                out,
                r#"<polyline points="{points}" fill="none" stroke="{}" stroke-width="2"/>"#,
                COLOURS[k % COLOURS.len()]
            );
        }
    }
    let axis_y = TOP + 2.0 * (H + 40.0) - 25.0;
    for tick in 0..=4 {
        let x = LEFT + plot_w * f64::from(tick) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{x:.1}" y="{axis_y:.1}" text-anchor="middle">{:.0} s</text>"#,
            span * f64::from(tick) / 4.0
        );
    }
    for (k, (name, _)) in runs.iter().enumerate() {
        let x = LEFT + k as f64 * 200.0;
        let y = axis_y + 22.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 4.0,
            x + 24.0,
            y - 4.0,
            COLOURS[k % COLOURS.len()],
            x + 30.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_has_one_labelled_panel_per_strategy_and_escapes_names() {
        let t = Timeline {
            successes: vec![0.5, 1.0, 9.0],
            rejections: vec![0.2],
        };
        let s = svg("a<b", &[("none", &t), ("x&y", &t)]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains(">none</text>") && s.contains(">x&amp;y</text>"));
        assert!(s.contains("a&lt;b"));
        assert_eq!(s.matches("fill=\"#d1495b\"").count(), 2);
        assert_eq!(s, svg("a<b", &[("none", &t), ("x&y", &t)]));
    }

    #[test]
    fn the_line_chart_has_a_line_per_run_in_each_panel_and_a_legend() {
        let a = Timeline {
            successes: vec![2.0, 1.0, 3.0],
            rejections: vec![],
        };
        let b = Timeline {
            successes: vec![1.0],
            rejections: vec![0.5, 0.7],
        };
        let s = lines("demo <1>", &[("abide", &a), ("one attempt", &b)]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert!(s.contains(">abide</text>") && s.contains(">one attempt</text>"));
        assert!(s.contains("demo &lt;1&gt;"));
        // The top panel's line for `abide` climbs through three points after its start.
        let first = s.lines().find(|l| l.starts_with("<polyline")).unwrap();
        assert_eq!(first.matches(',').count(), 5, "{first}");
    }
}
