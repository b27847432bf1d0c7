//! Read latency (sequential p50) against data size, for both designs, as SVG.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::report::{Results, BASELINE, WARM};

const ENDPOINTS: &[&str] = &[
    "dashboard 365 days",
    "calendar week",
    "threads unread_only",
    "customer search",
];

/// Writes `latency.svg` in `dir` from every results file there.
pub fn write(dir: &Path, all: &[Results]) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("latency.svg");
    let points = |endpoint: &str, design: &str| -> Vec<(f64, f64)> {
        all.iter()
            .filter_map(|r| {
                let events = r.data.as_ref()?.events as f64;
                let p50 = r.read(endpoint, design)?.sequential.as_ref()?.p50_ms;
                Some((events, p50.max(0.01)))
            })
            .collect()
    };
    let xs: Vec<f64> = all
        .iter()
        .filter_map(|r| r.data.as_ref().map(|d| d.events as f64))
        .collect();
    let (x_min, x_max) = (
        xs.iter().cloned().fold(f64::MAX, f64::min).min(1e3),
        xs.iter().cloned().fold(0.0, f64::max).max(1e4),
    );
    let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Read latency (sequential p50) vs. events in the store",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_min * 0.8..x_max * 1.25).log_scale(),
            (0.05f64..100_000.0).log_scale(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("events")
        .y_desc("p50 latency (ms)")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [RED, BLUE, GREEN, MAGENTA];
    for (endpoint, color) in ENDPOINTS.iter().zip(colors) {
        for (design, dashed) in [(WARM, false), (BASELINE, true)] {
            let series = points(endpoint, design);
            if series.is_empty() {
                continue;
            }
            let style = if dashed {
                color.mix(0.5).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            let label = format!("{endpoint} — {design}");
            chart
                .draw_series(LineSeries::new(series.clone(), style))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            chart
                .draw_series(
                    series
                        .into_iter()
                        .map(|p| Circle::new(p, 3, style.filled())),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().context("writing the chart")?;
    drop(chart);
    drop(root);
    Ok(path)
}
