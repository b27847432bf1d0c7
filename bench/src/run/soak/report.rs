//! The soak's results: what was run, the load achieved, the samples and the verdict, as
//! Markdown (`soak.md`) and JSON (`soak.json`).

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::pace::Load;
use super::samples::Sample;
use super::verdict::Check;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakResult {
    pub command: String,
    pub started_at: String,
    pub size: String,
    pub minutes: f64,
    pub machine: String,
    /// `/proc/loadavg` before the data was loaded and after the load stopped: what else
    /// ran on the machine shows there.
    pub load_average_before: String,
    pub load_average_after: String,
    pub events_loaded: u64,
    /// Jobs started beforehand for the completions of the mix.
    pub prepared_jobs: usize,
    /// From the projector's start to its catch-up with the data set and the preparation.
    pub prepared_seconds: f64,
    pub max_in_flight: usize,
    pub read_endpoints: Vec<String>,
    pub commands: Load,
    pub reads: Load,
    pub sample_interval_seconds: f64,
    /// The services whose memory is sampled, in the samples table's order.
    pub services: Vec<String>,
    pub samples: Vec<Sample>,
    pub checks: Vec<Check>,
    /// What did not go as planned but did not stop the run.
    pub notes: Vec<String>,
}

impl SoakResult {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }
}

/// Writes `soak.md` and `soak.json` into `out`.
pub(super) fn write(result: &SoakResult, out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (md, json) = (out.join("soak.md"), out.join("soak.json"));
    std::fs::write(&md, markdown(result)).context("writing soak.md")?;
    std::fs::write(&json, serde_json::to_vec_pretty(result)?).context("writing soak.json")?;
    Ok((md, json))
}

pub(super) fn markdown(r: &SoakResult) -> String {
    let mut out = String::new();
    header(&mut out, r);
    load_section(&mut out, r);
    samples_section(&mut out, r);
    let _ = writeln!(out, "\n### Verdict\n");
    for check in &r.checks {
        let verdict = if check.met { "met" } else { "**missed**" };
        let _ = writeln!(out, "- {}: {verdict} ({})", check.goal, check.measured);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\n### Notes\n");
        for note in &r.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn header(out: &mut String, r: &SoakResult) {
    let _ = writeln!(
        out,
        "## Soak: {} minutes at {} commands/s and {} reads/s, size {}\n",
        r.minutes, r.commands.target_per_second, r.reads.target_per_second, r.size
    );
    let _ = writeln!(out, "Command: `{}`  ", r.command);
    let _ = writeln!(out, "Started: {} · {}  ", r.started_at, r.machine);
    let _ = writeln!(
        out,
        "Load average (1, 5, 15 min): {} before, {} after\n",
        r.load_average_before, r.load_average_after
    );
    let _ = writeln!(
        out,
        "{} events loaded as `bench run` loads them. Before the load, untimed ({:.0} s): \
         {} jobs created, scheduled, crewed and started for the completions of the mix, and \
         the projector caught up with the data and them.",
        r.events_loaded, r.prepared_seconds, r.prepared_jobs
    );
}

fn load_section(out: &mut String, r: &SoakResult) {
    let _ = writeln!(
        out,
        "\n### Load\n\nCommands: the write mix of `bench run` (messages 50 %, rescheduling 20 %, \
         new customers, new jobs and completions 10 % each). Reads: the warm query API, in turn \
         {}. Open loop at a fixed rate, at most {} requests of each kind in flight: one that \
         falls due while they are all unanswered is skipped. Latencies of 2xx answers, in ms.\n",
        r.read_endpoints.join(", "),
        r.max_in_flight
    );
    let _ = writeln!(
        out,
        "| | target /s | sent /s | 2xx /s | 2xx | 4xx | 5xx | timeouts | no answer | skipped | p50 | p99 | max |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (name, load) in [("commands", &r.commands), ("reads", &r.reads)] {
        let s = &load.stats;
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            load.target_per_second,
            load.sent_per_second(r.duration()),
            s.per_second,
            s.samples,
            load.client_errors,
            load.server_errors,
            s.timeouts,
            load.failed,
            load.skipped,
            s.p50_ms,
            s.p99_ms,
            s.max_ms
        );
    }
}

fn samples_section(out: &mut String, r: &SoakResult) {
    let _ = writeln!(
        out,
        "\n### Samples\n\nEvery {} s: VmRSS of each service (MiB; after a slash, what its bounded cache \
         holds by its `/metrics`, included in the RSS); from the command API's \
         `/metrics` the outbox entries pending at the relay's last pass and the age of the \
         oldest (s); from the projector's, the events it has not applied yet (its lag, from \
         the tail it last polled) and, read from outside, how far its checkpoint is behind \
         the store's tail.\n",
        r.sample_interval_seconds
    );
    let services: String = r.services.iter().map(|s| format!(" {s} |")).collect();
    let _ = writeln!(
        out,
        "| minute |{services} outbox pending | oldest age | projector lag | behind the store |\n|---|{}---|---|---|---|",
        "---|".repeat(r.services.len())
    );
    let cell = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
    };
    for sample in &r.samples {
        let rss: String = r
            .services
            .iter()
            .map(|s| {
                let rss = cell(sample.rss_mib.get(s).copied(), 1);
                match sample.cache_mib.get(s) {
                    Some(cached) => format!(" {rss} / {cached:.1} |"),
                    None => format!(" {rss} |"),
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {:.2} |{rss} {} | {} | {} | {} |",
            sample.seconds / 60.0,
            cell(sample.outbox_pending, 0),
            cell(sample.outbox_oldest_age_seconds, 1),
            cell(sample.projector_lag_events, 0),
            cell(sample.projector_behind_store_events, 0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Stats;

    fn load(target: f64, answered: usize, p50_ms: f64) -> Load {
        Load {
            target_per_second: target,
            planned: (target * 30.0) as u64,
            skipped: 3,
            client_errors: 2,
            server_errors: 1,
            failed: 0,
            stats: Stats {
                samples: answered,
                errors: 4,
                timeouts: 1,
                p50_ms,
                p99_ms: p50_ms * 4.0,
                max_ms: p50_ms * 9.0,
                per_second: answered as f64 / 30.0,
            },
        }
    }

    fn result() -> SoakResult {
        let sample = |seconds: f64, rss: f64, pending: Option<f64>| Sample {
            seconds,
            rss_mib: [
                ("command-api".to_owned(), rss),
                ("query-api".to_owned(), 40.0),
            ]
            .into(),
            cache_mib: [("query-api".to_owned(), 12.5)].into(),
            outbox_pending: pending,
            outbox_oldest_age_seconds: pending.map(|p| p / 100.0),
            projector_lag_events: Some(7.0),
            projector_behind_store_events: pending.map(|p| p + 1.0),
        };
        SoakResult {
            command: "bench soak --minutes 0.5".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            size: "S".into(),
            minutes: 0.5,
            machine: "2 cores".into(),
            load_average_before: "1.00 0.50 0.25".into(),
            load_average_after: "2.00 1.00 0.50".into(),
            events_loaded: 4_322,
            prepared_seconds: 1.5,
            prepared_jobs: 151,
            max_in_flight: 64,
            read_endpoints: vec!["dashboard 30 days".into(), "calendar week".into()],
            commands: load(50.0, 1_490, 12.0),
            reads: load(200.0, 5_993, 0.25),
            sample_interval_seconds: 15.0,
            services: vec!["command-api".into(), "query-api".into()],
            samples: vec![sample(0.0, 30.0, Some(0.0)), sample(15.0, 31.5, None)],
            checks: vec![
                Check {
                    goal: "memory flat: command-api".into(),
                    met: true,
                    measured: "+1.0 %".into(),
                },
                Check {
                    goal: "outbox not growing".into(),
                    met: false,
                    measured: "300 entries at the end".into(),
                },
            ],
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_report_shows_rates_samples_and_each_verdict() {
        let md = markdown(&result());
        assert!(md.starts_with("## Soak: 0.5 minutes at 50 commands/s and 200 reads/s, size S\n"));
        assert!(md.contains("in turn dashboard 30 days, calendar week."));
        assert!(md.contains(
            "| commands | 50 | 49.9 | 49.7 | 1490 | 2 | 1 | 1 | 0 | 3 | 12.00 | 48.00 | 108.00 |"
        ), "{md}");
        assert!(
            md.contains(
                "| reads | 200 | 199.9 | 199.8 | 5993 | 2 | 1 | 1 | 0 | 3 | 0.25 | 1.00 | 2.25 |"
            ),
            "{md}"
        );
        assert!(md.contains(
            "| minute | command-api | query-api | outbox pending | oldest age | projector lag | behind the store |\n\
             |---|---|---|---|---|---|---|\n\
             | 0.00 | 30.0 | 40.0 / 12.5 | 0 | 0.0 | 7 | 1 |\n\
             | 0.25 | 31.5 | 40.0 / 12.5 | – | – | 7 | – |\n"
        ), "{md}");
        assert!(md.contains("- memory flat: command-api: met (+1.0 %)\n"));
        assert!(md.contains("- outbox not growing: **missed** (300 entries at the end)\n"));
        assert!(!md.contains("### Notes"));
    }

    #[test]
    fn the_json_holds_the_samples() {
        let dir = std::env::temp_dir().join(format!("soak-report-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let (md, json) = write(&result(), &dir).unwrap();
        assert!(md.exists());
        let back: SoakResult = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(back.samples.len(), 2);
        assert_eq!(back.samples[1].outbox_pending, None);
        assert_eq!(back.checks, result().checks);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
