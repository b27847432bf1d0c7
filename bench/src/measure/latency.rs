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
    let mut timeouts = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while samples.len() + errors < count {
        let sent = Instant::now();
        let answer = match client.get(url).bearer_auth(token).send().await {
            Ok(response) => {
                let success = response.status().is_success();
                response.bytes().await.map(|_| success)
            }
            Err(error) => Err(error),
        };
        let ok = match answer {
            Ok(success) => success,
            Err(error) => {
                timeouts += usize::from(error.is_timeout());
                false
            }
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
    let mut stats = Stats::from_samples(samples, errors, started.elapsed());
    stats.timeouts = timeouts;
    Ok(stats)
}

/// Waits until `url` answers within `3 × typical` three times in a row (at most `max_wait`):
/// a load run leaves the requests it gave up on queued in the service and the database, and
/// the next measurement must not pay for them.
pub async fn settle(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    typical: Duration,
    max_wait: Duration,
) -> Duration {
    let started = Instant::now();
    let enough = (typical * 3).max(Duration::from_millis(5));
    let mut in_a_row = 0;
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
            in_a_row += 1;
            if in_a_row == 3 {
                break;
            }
            continue;
        }
        in_a_row = 0;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that accepts connections and never answers.
    async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/slow", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_request_without_an_answer_within_the_clients_bound_counts_as_a_timeout() {
        let (url, server) = silent_server().await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let started = Instant::now();
        let stats = sequential(&client, &url, "token", 0, 5, Duration::from_millis(100))
            .await
            .unwrap();
        // One request took longer than the whole budget: the measurement stops there.
        assert_eq!((stats.samples, stats.errors, stats.timeouts), (0, 1, 1));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(stats.median().is_some_and(|m| m.at_least));
        server.abort();
    }
}
