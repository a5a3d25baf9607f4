//! Hand-written SVG charts for BENCHMARKS.md: grouped bars (overhead per
//! workload per monitor, with a mark where a monitor lost records) and
//! line charts (drop onset, RSS soak). No crate: a few dozen elements.

use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1",
];

/// Escapes text for an SVG text node or attribute.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn open(title: &str) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        W / 2.0,
        esc(title)
    );
    s
}

/// Rounds `max` up to a readable axis end and returns (end, tick step).
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Y axis from `lo` to `hi` with grid lines; returns the value→y mapping.
fn y_axis(s: &mut String, lo: f64, hi: f64, step: f64, label: &str) -> impl Fn(f64) -> f64 {
    let plot_h = H - TOP - BOTTOM;
    let map = move |v: f64| TOP + plot_h * (1.0 - (v - lo) / (hi - lo));
    let mut v = lo;
    while v <= hi + step / 2.0 {
        let y = map(v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            if v == 0.0 { "#333" } else { "#ddd" },
            LEFT - 6.0,
            y + 4.0,
            fmt_tick(v)
        );
        v += step;
    }
    let _ = writeln!(
        s,
        "<text transform=\"translate(16,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        esc(label)
    );
    map
}

fn legend(s: &mut String, names: &[String], extra: &[(&str, &str)]) {
    let x = W - RIGHT + 14.0;
    for (i, n) in names.iter().enumerate() {
        let y = TOP + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            COLORS[i % COLORS.len()],
            x + 18.0,
            y + 10.0,
            esc(n)
        );
    }
    for (j, (mark, what)) in extra.iter().enumerate() {
        let y = TOP + 18.0 * (names.len() + j) as f64 + 6.0;
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{}\" font-weight=\"bold\" fill=\"#c00\">{}</text><text x=\"{}\" y=\"{}\">{}</text>",
            y + 10.0,
            esc(mark),
            x + 18.0,
            y + 10.0,
            esc(what)
        );
    }
}

/// One group of bars per label, one bar per series; `values[series][group]`
/// (None: not measured), and `lost[series][group]` marks a bar with `✕` and
/// the count: a monitor that lost records is not comparable on that row.
pub fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[String],
    values: &[Vec<Option<f64>>],
    lost: &[Vec<u64>],
) -> String {
    let mut s = open(title);
    let all = values.iter().flatten().flatten().copied();
    let (lo_raw, hi_raw) = all.fold((0.0f64, 0.0f64), |(l, h), v| (l.min(v), h.max(v)));
    let (hi, step) = nice_axis(hi_raw.max(1.0));
    let lo = if lo_raw < 0.0 {
        -(((-lo_raw) / step).ceil() * step)
    } else {
        0.0
    };
    let y = y_axis(&mut s, lo, hi, step, y_label);
    let plot_w = W - LEFT - RIGHT;
    let gw = plot_w / groups.len().max(1) as f64;
    let bw = (gw * 0.8) / series.len().max(1) as f64;
    for (g, name) in groups.iter().enumerate() {
        let gx = LEFT + gw * g as f64 + gw * 0.1;
        for (k, vals) in values.iter().enumerate() {
            let Some(v) = vals.get(g).copied().flatten() else {
                continue;
            };
            let x = gx + bw * k as f64;
            let (top, bottom) = (y(v.max(0.0)), y(v.min(0.0)));
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.1}</title></rect>",
                (bw - 1.0).max(1.0),
                (bottom - top).max(0.5),
                COLORS[k % COLORS.len()],
                esc(&series[k])
            );
            let n = lost.get(k).and_then(|l| l.get(g)).copied().unwrap_or(0);
            if n > 0 {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\" fill=\"#c00\">✕<title>{} lost {n} records</title></text>",
                    x + bw / 2.0,
                    top - 4.0,
                    esc(&series[k])
                );
            }
        }
        // Workload names wrap onto two lines at the first space past the middle.
        let (a, b) = split_label(name);
        let cx = gx + gw * 0.4;
        let _ = writeln!(
            s,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text><text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM + 18.0,
            esc(a),
            H - BOTTOM + 32.0,
            esc(b)
        );
    }
    legend(&mut s, series, &[("✕", "lost records")]);
    s.push_str("</svg>\n");
    s
}

fn split_label(name: &str) -> (&str, &str) {
    let mid = name.len() / 2;
    match name[mid..].find(' ').map(|i| i + mid) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    }
}

/// A line per series over a shared x axis; `hline` draws a dashed reference
/// (a target) with its label.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    hline: Option<(f64, &str)>,
) -> String {
    let mut s = open(title);
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (xmax, ymax) = pts.fold((0.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let ymax = ymax.max(hline.map_or(0.0, |h| h.0 * 1.1));
    let (yhi, ystep) = nice_axis(ymax);
    let (xhi, xstep) = nice_axis(xmax);
    let y = y_axis(&mut s, 0.0, yhi, ystep, y_label);
    let plot_w = W - LEFT - RIGHT;
    let x = |v: f64| LEFT + plot_w * v / xhi;
    let mut v = 0.0;
    while v <= xhi + xstep / 2.0 {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(v),
            H - BOTTOM + 18.0,
            fmt_tick(v)
        );
        v += xstep;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        LEFT + plot_w / 2.0,
        H - BOTTOM + 40.0,
        esc(x_label)
    );
    if let Some((v, label)) = hline {
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#c00\" stroke-dasharray=\"6 4\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c00\">{}</text>",
            W - RIGHT,
            LEFT + 6.0,
            y(v) - 5.0,
            esc(label),
            yy = y(v)
        );
    }
    for (k, (_, p)) in series.iter().enumerate() {
        let path: Vec<String> = p
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let c = COLORS[k % COLORS.len()];
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for pt in &path {
            let (a, b) = pt.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, "<circle cx=\"{a}\" cy=\"{b}\" r=\"3\" fill=\"{c}\"/>");
        }
    }
    let names: Vec<String> = series.iter().map(|(n, _)| n.clone()).collect();
    legend(&mut s, &names, &[]);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_marks_the_monitor_that_lost_records_and_escapes_names() {
        let svg = bars(
            "t",
            "%",
            &["open/close".into(), "reads".into()],
            &["a<b".into(), "c".into()],
            &[vec![Some(10.0), Some(-3.0)], vec![None, Some(50.0)]],
            &[vec![0, 7], vec![0, 0]],
        );
        assert!(svg.contains("a&lt;b lost 7 records"), "{svg}");
        assert_eq!(svg.matches("lost 7 records").count(), 1, "{svg}");
        assert_eq!(svg.matches("<rect x=").count(), 3 + 2, "{svg}");
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn a_line_chart_draws_every_point_and_the_target_line() {
        let svg = lines(
            "t",
            "s",
            "MiB",
            &[("rss".into(), vec![(0.0, 40.0), (5.0, 50.0), (10.0, 51.0)])],
            Some((64.0, "target 64 MiB")),
        );
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(svg.contains("target 64 MiB") && svg.contains("stroke-dasharray"));
    }
}
