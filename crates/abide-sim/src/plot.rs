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
}
