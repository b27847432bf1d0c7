//! Sequential latency: one request at a time on one kept-alive connection.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::Stats;

/// Sends `GET url` up to `count` times after `warmup` unmeasured requests. A non-2xx answer or
/// a timeout is an error sample. For slow endpoints it stops early once `budget` is spent and
/// three requests were made, or one that alone took longer than the whole budget (the on-read
/// baseline at large sizes, where each request takes minutes or times out).
pub async fn sequential(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    warmup: usize,
    count: usize,
    budget: Duration,
) -> anyhow::Result<Stats> {
    for _ in 0..warmup {
        let response = client.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
    }
    let mut samples = Vec::with_capacity(count);
    let mut errors = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while samples.len() + errors < count {
        let sent = Instant::now();
        let ok = match client.get(url).bearer_auth(token).send().await {
            Ok(response) => {
                let success = response.status().is_success();
                response.bytes().await.is_ok() && success
            }
            Err(_) => false,
        };
        let took = sent.elapsed();
        slowest = slowest.max(took);
        if ok {
            samples.push(took);
        } else {
            errors += 1;
        }
        let enough = samples.len() + errors >= 3 || slowest > budget;
        if started.elapsed() > budget && enough {
            break;
        }
    }
    Ok(Stats::from_samples(samples, errors, started.elapsed()))
}

/// Waits until `url` answers within `3 × typical` again (at most `max_wait`): a load run
/// leaves the requests it gave up on queued in the service and the database, and the next
/// measurement must not pay for them.
pub async fn settle(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    typical: Duration,
    max_wait: Duration,
) -> Duration {
    let started = Instant::now();
    let enough = (typical * 3).max(Duration::from_millis(5));
    while started.elapsed() < max_wait {
        let sent = Instant::now();
        let answered = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if answered && sent.elapsed() <= enough {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}
