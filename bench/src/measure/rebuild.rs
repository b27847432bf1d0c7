//! `projector rebuild` of every model, timed from start to exit, its peak memory sampled.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::services::{Environment, Service};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildResult {
    /// The models rebuilt; empty means all of them.
    #[serde(default)]
    pub models: Vec<String>,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// The rebuild's peak resident memory (absent from results written before it was
    /// measured).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

/// Rebuilds `models` (all when empty), holding `flush_docs` changed documents before writing
/// (the projector's default when `None`), and times it.
pub async fn rebuild(
    env: &Environment,
    events: u64,
    models: &[&str],
    flush_docs: Option<usize>,
) -> anyhow::Result<RebuildResult> {
    let started = Instant::now();
    let port = crate::services::free_port()?;
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "rebuild".to_owned(),
        "--drop-delay-secs".to_owned(),
        "0".to_owned(),
    ];
    if let Some(docs) = flush_docs {
        args.extend(["--flush-docs".to_owned(), docs.to_string()]);
    }
    args.extend(models.iter().map(|m| (*m).to_owned()));
    let mut child = Service::start(env, "projector-rebuild", "projector", &args, None).await?;
    let (status, peak_rss_kib) = child.wait(Duration::from_secs(3_600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("projector rebuild exited with {status}; see projector-rebuild.log");
    }
    Ok(RebuildResult {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        events,
        seconds,
        events_per_second: events as f64 / seconds,
        peak_rss_mib: peak_rss_kib.map(|kib| kib as f64 / 1024.0),
    })
}
