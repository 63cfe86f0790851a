//! Latency and consumer lag over time as an SVG (plotters, SVG backend only), so a reader sees
//! stalls that percentiles over a whole phase hide.

use std::path::Path;

use plotters::prelude::*;

use super::account::LagSample;
use super::results::PhaseResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Reads one figure of a second.
type Pick = fn(&super::results::Second) -> f64;

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Top: p50 and p99 from request to ERP arrival and to completion, per second of scheduled time
/// (log scale). Bottom: records not yet committed per consumer group.
pub fn write(path: &Path, phases: &[PhaseResult], groups: &[String], lag: &[LagSample]) -> anyhow::Result<()> {
    let seconds: Vec<_> = phases.iter().flat_map(|p| p.timeline.iter()).collect();
    let end = seconds.iter().map(|s| s.at + 1.0).chain(lag.iter().map(|s| s.at)).fold(1.0_f64, f64::max);
    let top = seconds.iter().map(|s| s.complete_p99.max(s.erp_p99)).fold(1.0_f64, f64::max) * 1.5;
    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (upper, lower) = root.split_vertically(440);
    let mut chart = ChartBuilder::on(&upper)
        .caption("hub-bench flow: latency from scheduled send, per second", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, (0.1_f64..top).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms (log)")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let series: [(&str, Pick); 4] = [
        ("request -> ERP p50", |s| s.erp_p50),
        ("request -> ERP p99", |s| s.erp_p99),
        ("request -> completion p50", |s| s.complete_p50),
        ("request -> completion p99", |s| s.complete_p99),
    ];
    for (i, (label, value)) in series.iter().enumerate() {
        let c = color(i);
        let points: Vec<(f64, f64)> =
            seconds.iter().map(|s| (s.at + 0.5, value(s))).filter(|(_, v)| *v > 0.0).collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let lag_top = lag.iter().flat_map(|s| s.lag.iter().copied()).max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&lower)
        .caption("consumer lag (records not yet committed)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..end, 0.0..lag_top)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("records")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, group) in groups.iter().enumerate() {
        let c = color(i + 3);
        let points: Vec<(f64, f64)> =
            lag.iter().filter_map(|s| s.lag.get(i).filter(|v| **v >= 0).map(|v| (s.at, *v as f64))).collect();
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(group.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
