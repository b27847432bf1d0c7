//! What request telemetry (latency histograms, request ids, trace spans) costs on the warm
//! read path: the same endpoint of two query APIs on the same read models, one with
//! `--request-telemetry false`, loaded with `wrk` in alternation so that both see the same
//! machine. The order flips every round (on, off; then off, on): whichever of the two runs
//! second in a round meets a machine warmed, or disturbed, by the first, and a fixed order
//! would count that as the cost of telemetry.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wrk;

/// Rounds of `wrk` per variant in `bench run`; the median of each is compared.
pub const ROUNDS: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelemetryOverhead {
    pub endpoint: String,
    /// Requests per second at 64 connections, median of the rounds, with telemetry on.
    pub with_telemetry: f64,
    pub without_telemetry: f64,
    /// p50 latency under that load (ms), median of the rounds.
    pub with_telemetry_p50_ms: f64,
    pub without_telemetry_p50_ms: f64,
    /// Requests per second of each round, in the order run.
    #[serde(default)]
    pub rounds: Vec<Round>,
}

/// One round: `wrk` on each of the two query APIs (odd rounds with telemetry first, even rounds
/// without).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Round {
    pub with_telemetry: f64,
    pub without_telemetry: f64,
}

impl TelemetryOverhead {
    /// The throughput lost to telemetry, in percent (negative: within noise, in its favour).
    pub fn percent(&self) -> f64 {
        if self.without_telemetry <= 0.0 {
            return 0.0;
        }
        (1.0 - self.with_telemetry / self.without_telemetry) * 100.0
    }
}

/// The two URLs of one endpoint: on the query API with telemetry and on the one without.
pub struct Pair<'a> {
    pub endpoint: &'a str,
    pub with_telemetry: &'a str,
    pub without_telemetry: &'a str,
}

/// `rounds` alternating `wrk` runs of `duration` on each URL of `pair`, the order flipped every
/// round.
pub async fn measure(
    pair: Pair<'_>,
    token: &str,
    duration: Duration,
    rounds: usize,
    work_dir: &Path,
) -> anyhow::Result<TelemetryOverhead> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 1..=rounds.max(1) {
        let mut runs = [
            (pair.with_telemetry, &mut on),
            (pair.without_telemetry, &mut off),
        ];
        if round % 2 == 0 {
            runs.reverse();
        }
        for (url, samples) in runs {
            let stats = wrk::run(url, token, 64, duration, work_dir)
                .await?
                .ok_or_else(|| anyhow::anyhow!("wrk completed no request on {url}"))?;
            samples.push((stats.per_second, stats.p50_ms));
        }
        tracing::info!(
            round,
            with_telemetry = on[round - 1].0,
            without_telemetry = off[round - 1].0,
            "telemetry overhead round"
        );
    }
    Ok(TelemetryOverhead {
        endpoint: pair.endpoint.to_owned(),
        with_telemetry: median(on.iter().map(|s| s.0)),
        without_telemetry: median(off.iter().map(|s| s.0)),
        with_telemetry_p50_ms: median(on.iter().map(|s| s.1)),
        without_telemetry_p50_ms: median(off.iter().map(|s| s.1)),
        rounds: on
            .iter()
            .zip(&off)
            .map(|(on, off)| Round {
                with_telemetry: on.0,
                without_telemetry: off.0,
            })
            .collect(),
    })
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overhead_is_the_share_of_throughput_lost_with_telemetry_on() {
        let overhead = TelemetryOverhead {
            endpoint: "x".into(),
            with_telemetry: 9_500.0,
            without_telemetry: 10_000.0,
            with_telemetry_p50_ms: 1.0,
            without_telemetry_p50_ms: 1.0,
            rounds: Vec::new(),
        };
        assert!((overhead.percent() - 5.0).abs() < 1e-9);
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
    }
}
