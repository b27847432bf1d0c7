//! Two runs' results side by side (`bench compare`): the same figures of a run before a
//! change and of one after it, each with the ratio after ÷ before, as one Markdown table.
//!
//! The figures are those the goals are set on, for every endpoint the runs share; a figure
//! one of the runs lacks shows as "–".

use std::fmt::Write as _;

use crate::measure::Stats;
use crate::report::{ms, Results, BASELINE, NO_CACHE, WARM};

/// One row: a figure's name and its value in each run.
struct Row {
    figure: String,
    before: Option<f64>,
    after: Option<f64>,
    unit: &'static str,
}

/// The comparison table of `before` and `after`, labelled with `labels`.
pub fn markdown(before: &Results, after: &Results, labels: [&str; 2]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure ({}) | {} | {} | after ÷ before |\n|---|---|---|---|",
        after.size.as_str(),
        labels[0],
        labels[1]
    );
    for row in rows(before, after) {
        let ratio = match (row.before, row.after) {
            (Some(b), Some(a)) if b > 0.0 && a.is_finite() && b.is_finite() => {
                format!("{:.2}×", a / b)
            }
            _ => "–".to_owned(),
        };
        let cell = |value: Option<f64>| {
            value.map_or("–".to_owned(), |v| {
                if row.unit.is_empty() || v.is_infinite() {
                    ms(v)
                } else {
                    format!("{} {}", ms(v), row.unit)
                }
            })
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} |",
            row.figure,
            cell(row.before),
            cell(row.after)
        );
    }
    out
}

fn rows(before: &Results, after: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |figure: String, unit: &'static str, value: &dyn Fn(&Results) -> Option<f64>| {
        rows.push(Row {
            figure,
            before: value(before),
            after: value(after),
            unit,
        })
    };
    push("events in the data set".into(), "", &|r| {
        r.data.as_ref().map(|d| d.events as f64)
    });
    for endpoint in names(&before.reads, &after.reads, |x| &x.endpoint) {
        let endpoint = endpoint.as_str();
        let wrk = |r: &Results| {
            r.read(endpoint, WARM)
                .and_then(|x| x.wrk.as_ref())
                .map(|s| s.per_second)
        };
        push(format!("{endpoint}: warm p50"), "ms", &|r| {
            sequential(r, endpoint, WARM).map(|s| s.p50_ms)
        });
        push(format!("{endpoint}: warm p99"), "ms", &|r| {
            sequential(r, endpoint, WARM).map(|s| s.p99_ms)
        });
        push(
            format!("{endpoint}: warm req/s at 64 connections"),
            "",
            &wrk,
        );
        push(format!("{endpoint}: no-cache p99"), "ms", &|r| {
            sequential(r, endpoint, NO_CACHE).map(|s| s.p99_ms)
        });
        push(format!("{endpoint}: on-read baseline p50"), "ms", &|r| {
            sequential(r, endpoint, BASELINE).map(|s| s.p50_ms)
        });
    }
    for clients in [1, 16, 64] {
        let at = if clients == 1 {
            "1 client".to_owned()
        } else {
            format!("{clients} clients")
        };
        let level = move |r: &Results| r.writes.iter().find(|w| w.concurrency == clients).cloned();
        push(format!("commands/s at {at}"), "", &|r| {
            level(r).map(|w| w.commands.per_second)
        });
        push(format!("command p99 at {at}"), "ms", &|r| {
            level(r).and_then(|w| w.commands.p99_for_goal())
        });
    }
    push("outbox → JetStream p99".into(), "ms", &|r| {
        r.publish_delay.as_ref().map(|d| d.p99_ms)
    });
    push("catch-up".into(), "events/s", &|r| {
        r.catch_up.as_ref().map(|c| c.events_per_second)
    });
    push(
        "projector peak memory in the catch-up".into(),
        "MiB",
        &|r| r.catch_up.as_ref().and_then(|c| c.peak_rss_mib),
    );
    push("lag p50 at 200 commands/s".into(), "ms", &|r| {
        r.lag
            .as_ref()
            .filter(|l| l.lag.samples > 0)
            .map(|l| l.lag.p50_ms)
    });
    push("lag p99 at 200 commands/s".into(), "ms", &|r| {
        r.lag.as_ref().and_then(|l| l.lag.p99_for_goal())
    });
    push("rebuild (all models)".into(), "events/s", &|r| {
        r.rebuild
            .as_ref()
            .filter(|b| b.models.is_empty())
            .map(|b| b.events_per_second)
    });
    for service in names(&before.memory, &after.memory, |x| &x.service) {
        push(format!("{service} resident memory"), "MiB", &|r| {
            r.memory
                .iter()
                .find(|m| m.service == service)
                .map(|m| m.rss_mib)
        });
    }
    rows
}

/// The sequential figures of `endpoint` by `design`, when it answered at all.
fn sequential<'r>(r: &'r Results, endpoint: &str, design: &str) -> Option<&'r Stats> {
    r.read(endpoint, design)
        .and_then(|x| x.sequential.as_ref())
        .filter(|s| s.samples > 0)
}

/// The names either run has, in the order of `after`'s results, then `before`'s.
fn names<T>(before: &[T], after: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for item in after.iter().chain(before) {
        if !names.iter().any(|n| n == name(item)) {
            names.push(name(item).to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::generator::Size;
    use crate::measure::memory::Rss;
    use crate::measure::projection::CatchUp;
    use crate::report::{Machine, ReadResult};

    fn run(warm_p50_ms: u64, catch_up: f64, rss: Option<f64>) -> Results {
        let warm = Stats::from_samples(
            vec![Duration::from_millis(warm_p50_ms); 10],
            0,
            Duration::from_secs(1),
        );
        Results {
            reads: vec![ReadResult {
                endpoint: "calendar week".into(),
                design: WARM.into(),
                sequential: Some(warm),
                wrk: None,
                note: None,
            }],
            catch_up: Some(CatchUp {
                events: 1_000,
                seconds: 1.0,
                events_per_second: catch_up,
                peak_rss_mib: None,
            }),
            memory: rss
                .map(|rss_mib| Rss {
                    service: "projector".into(),
                    rss_mib,
                })
                .into_iter()
                .collect(),
            ..Results::new(
                Size::M,
                42,
                "2026-12-07".into(),
                false,
                "bench run".into(),
                Machine::default(),
            )
        }
    }

    #[test]
    fn each_figure_shows_both_runs_and_their_ratio_and_a_missing_one_a_dash() {
        let table = markdown(
            &run(4, 4_500.0, None),
            &run(2, 9_000.0, Some(512.0)),
            ["SQLite", "PostgreSQL"],
        );
        for line in [
            "| figure (M) | SQLite | PostgreSQL | after ÷ before |",
            "| calendar week: warm p50 | 4.00 ms | 2.00 ms | 0.50× |",
            "| catch-up | 4500 events/s | 9000 events/s | 2.00× |",
            "| calendar week: no-cache p99 | – | – | – |",
            "| projector resident memory | – | 512 MiB | – |",
        ] {
            assert!(table.contains(line), "{line} not in\n{table}");
        }
    }
}
