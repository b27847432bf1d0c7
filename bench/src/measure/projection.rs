//! Projection: catch-up rate on a backlog, and end-to-end lag at a steady command rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use platform::consistency::MIN_POSITION_PARAM;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::Stats;
use crate::measure::writes::{CommandMix, Workload};

/// `position` from a `GET /v1/checkpoint` body (projector or query API).
pub async fn checkpoint(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<u64> {
    let body: serde_json::Value = client
        .get(format!("{url}/v1/checkpoint"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    body.get("position")
        .and_then(|p| p.as_u64())
        .context("checkpoint body has no position")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUp {
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    /// The projector's peak resident memory once caught up, where the caller knows its
    /// process (absent from results written before it was measured).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
}

/// Time from now until the projector's checkpoint reaches `target` (polled every 100 ms).
pub async fn catch_up(
    client: &reqwest::Client,
    projector_url: &str,
    token: &str,
    from: u64,
    target: u64,
    started: Instant,
    timeout: Duration,
) -> anyhow::Result<CatchUp> {
    loop {
        if let Ok(position) = checkpoint(client, projector_url, token).await {
            if position >= target {
                let seconds = started.elapsed().as_secs_f64();
                let events = target - from;
                return Ok(CatchUp {
                    events,
                    seconds,
                    events_per_second: events as f64 / seconds,
                    peak_rss_mib: None,
                });
            }
        }
        if started.elapsed() > timeout {
            bail!("the projector did not reach position {target} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lag {
    pub commands_per_second: f64,
    pub commands: usize,
    /// Command accepted (response received) → visible through the query API.
    pub lag: Stats,
    /// Of `lag.errors`, by cause (absent from results written before causes were counted).
    #[serde(default)]
    pub causes: Option<LagErrors>,
    /// Command accepted → received by a client following a server-sent event stream, for
    /// the commands that change the followed view ([`super::push`]); errors are commands no
    /// update included. Absent from results written before it was measured.
    #[serde(default)]
    pub pushed: Option<Stats>,
}

/// Why commands of a lag measurement have no lag sample.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LagErrors {
    /// Refused or not answered.
    pub refused: usize,
    /// Accepted without a position (the command API's wait for the relay ran out), so there
    /// was nothing to wait for.
    pub without_position: usize,
    /// Accepted, but the position was not visible through the query API within
    /// [`VISIBLE_WITHIN`].
    pub not_visible: usize,
}

/// Sends commands at `rate` per second for `duration` (open loop: one every 1/rate s, each on
/// its own task) and, for each accepted command, reads `/v1/checkpoint?min_position=<p>`
/// from the query API until it answers 200; the lag is accepted → visible. Meanwhile a client
/// follows the reader's unread counts as a server-sent event stream ([`super::push`]).
pub async fn steady_lag(
    workload: Arc<Workload>,
    query_url: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Lag> {
    let probe = Arc::new(LagProbe {
        workload,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build()?,
        query_url: query_url.to_owned(),
        samples: Mutex::new(Vec::new()),
        errors: Mutex::new(LagErrors::default()),
        probes: Mutex::new(Vec::new()),
    });
    let follower =
        super::push::Follower::start(&probe.client, query_url, probe.workload.reader_token())
            .await?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut index = 0u64;
    while started.elapsed() < duration {
        ticker.tick().await;
        index += 1;
        let mix = if index.is_multiple_of(2) {
            CommandMix::Message
        } else {
            CommandMix::Scheduling
        };
        let probe = probe.clone();
        tasks.push(tokio::spawn(async move { probe.measure(mix, index).await }));
    }
    let sent = started.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    // Every probe is visible through the query API by now; give its update a moment more to
    // cross the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let updates = follower.stop();
    let probes = std::mem::take(&mut *probe.probes.lock().await);
    let pushed = super::push::latencies(&probes, &updates, sent);
    let samples = std::mem::take(&mut *probe.samples.lock().await);
    let errors = *probe.errors.lock().await;
    let failed = errors.refused + errors.without_position + errors.not_visible;
    let commands = samples.len() + failed;
    Ok(Lag {
        commands_per_second: commands as f64 / sent.as_secs_f64(),
        commands,
        lag: Stats::from_samples(samples, failed, sent),
        causes: Some(errors),
        pushed: Some(pushed),
    })
}

/// What the tasks of one lag measurement share: where to send and read, and what they found.
struct LagProbe {
    workload: Arc<Workload>,
    client: reqwest::Client,
    query_url: String,
    samples: Mutex<Vec<Duration>>,
    errors: Mutex<LagErrors>,
    /// The accepted commands that change the streamed view: answered at, position.
    probes: Mutex<Vec<(Instant, u64)>>,
}

impl LagProbe {
    /// Sends one command and records how long its position took to become visible, or why
    /// there is no sample.
    async fn measure(&self, mix: CommandMix, index: u64) {
        let position = match self.workload.send(&self.client, mix, index).await {
            Ok(outcome) => outcome.position,
            Err(_) => {
                self.errors.lock().await.refused += 1;
                return;
            }
        };
        let Some(position) = position else {
            self.errors.lock().await.without_position += 1;
            return;
        };
        let accepted = Instant::now();
        if self.workload.reaches_reader_inbox(mix, index) {
            self.probes.lock().await.push((accepted, position));
        }
        let token = self.workload.reader_token();
        let url = format!(
            "{}/v1/checkpoint?{MIN_POSITION_PARAM}={position}",
            self.query_url
        );
        loop {
            match self.client.get(&url).bearer_auth(token).send().await {
                Ok(r) if r.status().is_success() => {
                    self.samples.lock().await.push(accepted.elapsed());
                    return;
                }
                _ if accepted.elapsed() > VISIBLE_WITHIN => {
                    self.errors.lock().await.not_visible += 1;
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

/// How long an accepted command's position may take to become visible.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(30);
