//! Server-sent events: how long an accepted command takes to reach a client that follows a
//! stream. One client follows `GET /v1/live/me/unread-count` as the data set's focus user
//! while the lag measurement runs; each message another participant posts in one of that
//! user's threads changes the followed view, so it is a probe: its latency runs from the
//! command's answer to the first update whose position (the `id`'s prefix) includes it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::Stats;

/// The updates one stream received: when, and the position each one includes.
pub struct Follower {
    updates: Arc<Mutex<Vec<(Instant, u64)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Opens the stream and returns once its first update (the current view) arrived.
    pub async fn start(
        client: &reqwest::Client,
        query_url: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        let mut response = client
            .get(format!("{query_url}/v1/live/me/unread-count"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(24 * 3600))
            .send()
            .await
            .context("opening the event stream")?;
        if !response.status().is_success() {
            bail!("the event stream answered {}", response.status());
        }
        let updates = Arc::new(Mutex::new(Vec::new()));
        let mut lines = Lines::default();
        while lock(&updates).is_empty() {
            let chunk = response
                .chunk()
                .await?
                .context("the event stream ended before its first update")?;
            record(&updates, lines.positions(&chunk));
        }
        let shared = updates.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(chunk)) = response.chunk().await {
                record(&shared, lines.positions(&chunk));
            }
        });
        Ok(Follower { updates, reader })
    }

    /// Stops following; the updates received, in order.
    pub fn stop(self) -> Vec<(Instant, u64)> {
        self.reader.abort();
        std::mem::take(&mut *lock(&self.updates))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record(updates: &Mutex<Vec<(Instant, u64)>>, positions: Vec<u64>) {
    let now = Instant::now();
    lock(updates).extend(positions.into_iter().map(|p| (now, p)));
}

/// Splits a stream's bytes into lines across chunks and picks the positions of `id:` lines
/// (`id: <position>.<fingerprint>`).
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn positions(&mut self, chunk: &[u8]) -> Vec<u64> {
        self.partial.extend_from_slice(chunk);
        let mut positions = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(id) = line.trim_end().strip_prefix("id:") {
                if let Some(Ok(position)) = id.trim().split('.').next().map(str::parse) {
                    positions.push(position);
                }
            }
        }
        positions
    }
}

/// For each probe (answered at, position), the time until the first update that includes its
/// position; an update received before the command's answer counts as zero. Probes no update
/// included are errors.
pub fn latencies(probes: &[(Instant, u64)], updates: &[(Instant, u64)], wall: Duration) -> Stats {
    let mut samples = Vec::with_capacity(probes.len());
    let mut missed = 0;
    for (answered, position) in probes {
        match updates.iter().find(|(_, included)| included >= position) {
            Some((received, _)) => samples.push(received.saturating_duration_since(*answered)),
            None => missed += 1,
        }
    }
    Stats::from_samples(samples, missed, wall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_from_id_lines_split_across_chunks() {
        let mut lines = Lines::default();
        assert!(lines
            .positions(b": heartbeat\n\nevent: update\nid: 12")
            .is_empty());
        assert_eq!(
            lines.positions(b"3.00ab\ndata: {}\n\nid: 130.ff\n"),
            vec![123, 130]
        );
    }

    #[test]
    fn a_probe_takes_the_first_update_that_includes_it() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let updates = [(at(5), 9), (at(40), 12), (at(90), 20)];
        let probes = [(at(10), 10), (at(15), 12), (at(95), 15), (at(100), 21)];
        let stats = latencies(&probes, &updates, Duration::from_secs(1));
        // 10 → 40 ms: 30; 12 → 40 ms: 25; 15 came at 90 ms, before its answer at 95: 0.
        assert_eq!(stats.samples, 3);
        assert_eq!(stats.errors, 1, "nothing included position 21");
        assert_eq!(stats.max_ms, 30.0);
        assert_eq!(stats.p50_ms, 25.0);
    }
}
