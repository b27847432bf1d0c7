//! `projector rebuild` of every model, timed from start to exit.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::services::{Environment, Service};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildResult {
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

pub async fn rebuild_all(env: &Environment, events: u64) -> anyhow::Result<RebuildResult> {
    let started = Instant::now();
    let port = crate::services::free_port()?;
    let args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "rebuild".to_owned(),
        "--drop-delay-secs".to_owned(),
        "0".to_owned(),
    ];
    let mut child = Service::start(env, "projector-rebuild", "projector", &args, None).await?;
    let status = child.wait(Duration::from_secs(3_600)).await?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("projector rebuild exited with {status}; see projector-rebuild.log");
    }
    Ok(RebuildResult {
        events,
        seconds,
        events_per_second: events as f64 / seconds,
    })
}
