//! Read latency (sequential p50) against data size, for both designs, as SVG. A triangle
//! marks a lower bound: the baseline's requests at that size got no answer within the bench's
//! request timeout.

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

/// A point of a series: events, p50 ms, and whether the p50 is a lower bound (requests that
/// timed out).
type Point = (f64, f64, bool);

type LogChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>;

fn points(all: &[Results], endpoint: &str, design: &str) -> Vec<Point> {
    all.iter()
        .filter_map(|r| {
            let events = r.data.as_ref()?.events as f64;
            let median = r.read(endpoint, design)?.sequential.as_ref()?.median()?;
            Some((events, median.ms.max(0.01), median.at_least))
        })
        .collect()
}

/// The top of the latency axis and the caption, which explains triangles when there are
/// any.
fn y_top_and_caption(all: &[Results]) -> (f64, &'static str) {
    let baseline: Vec<Point> = ENDPOINTS
        .iter()
        .flat_map(|endpoint| points(all, endpoint, BASELINE))
        .collect();
    let slowest = baseline
        .iter()
        .map(|&(_, ms, _)| ms)
        .fold(100_000.0, f64::max);
    // The next power of ten above the slowest point, so a bound drawn at the timeout shows.
    let y_max = 10f64.powf((slowest * 1.5).log10().ceil());
    let bounded = baseline.iter().any(|p| p.2);
    let caption = if bounded {
        "Read latency (sequential p50) vs. events; triangle: timed out, at least this"
    } else {
        "Read latency (sequential p50) vs. events in the store"
    };
    (y_max, caption)
}

/// The events axis: every size measured, spanning at least 1,000 to 10,000 events.
fn x_range(all: &[Results]) -> (f64, f64) {
    let xs: Vec<f64> = all
        .iter()
        .filter_map(|r| r.data.as_ref().map(|d| d.events as f64))
        .collect();
    (
        xs.iter().cloned().fold(f64::MAX, f64::min).min(1e3),
        xs.iter().cloned().fold(0.0, f64::max).max(1e4),
    )
}

/// Writes `latency.svg` in `dir` from every results file there.
pub fn write(dir: &Path, all: &[Results]) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("latency.svg");
    let (y_max, caption) = y_top_and_caption(all);
    let (x_min, x_max) = x_range(all);
    let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (x_min * 0.8..x_max * 1.25).log_scale(),
            (0.05f64..y_max).log_scale(),
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
            let style = if dashed {
                color.mix(0.5).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            let label = format!("{endpoint} — {design}");
            draw_series(&mut chart, &points(all, endpoint, design), style, label)?;
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

/// One design's line for one endpoint, with a circle at each measured point and a
/// triangle at each lower bound.
fn draw_series(
    chart: &mut LogChart<'_, '_>,
    marked: &[Point],
    style: ShapeStyle,
    label: String,
) -> anyhow::Result<()> {
    if marked.is_empty() {
        return Ok(());
    }
    let series: Vec<(f64, f64)> = marked.iter().map(|&(x, y, _)| (x, y)).collect();
    chart
        .draw_series(LineSeries::new(series.clone(), style))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    chart
        .draw_series(
            marked
                .iter()
                .filter(|p| !p.2)
                .map(|&(x, y, _)| Circle::new((x, y), 3, style.filled())),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // A lower bound: the request timed out, the true latency is above the mark.
    chart
        .draw_series(
            marked
                .iter()
                .filter(|p| p.2)
                .map(|&(x, y, _)| TriangleMarker::new((x, y), 6, style.filled())),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
