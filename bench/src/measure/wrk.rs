//! Throughput at many connections with `wrk` (installed with apt-get when missing).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use super::Stats;

/// Installs `wrk` with apt-get if it is not on PATH.
pub async fn ensure_installed() -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().await.is_ok() {
        return Ok(());
    }
    tracing::info!("installing wrk with apt-get");
    let status = Command::new("apt-get")
        .args(["install", "-y", "wrk"])
        .status()
        .await
        .context("running apt-get")?;
    if !status.success() {
        let _ = Command::new("apt-get").arg("update").status().await;
        let status = Command::new("apt-get")
            .args(["install", "-y", "wrk"])
            .status()
            .await?;
        if !status.success() {
            bail!("apt-get install -y wrk failed");
        }
    }
    Ok(())
}

/// Runs `wrk -t2 -c<connections> -d<duration> --latency` against `url` with the bearer token
/// set by a Lua script written to `work_dir`. `None`: no request completed within the run, a
/// result of its own (each request outlasted the run while the others queued beside it).
pub async fn run(
    url: &str,
    token: &str,
    connections: usize,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<Option<Stats>> {
    let script = work_dir.join("auth.lua");
    std::fs::write(
        &script,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    )
    .context("writing the wrk script")?;
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--timeout",
            "30s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    outcome(&text)
}

/// The stats of a wrk report, or `None` when it says no request completed.
fn outcome(text: &str) -> anyhow::Result<Option<Stats>> {
    match parse(text) {
        Ok(stats) => Ok(Some(stats)),
        Err(_) if text.contains(" 0 requests in ") => Ok(None),
        Err(error) => Err(error.context(format!("reading wrk output:\n{text}"))),
    }
}

fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// Reads requests/s, the 50 % and 99 % latency, the max, the request count and non-2xx
/// responses and socket errors from wrk's report.
pub fn parse(text: &str) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", _avg, _stdev, max, ..] => {
                stats.max_ms = millis(max).context("max latency")?
            }
            ["50%", value] => stats.p50_ms = millis(value).context("p50")?,
            ["99%", value] => stats.p99_ms = millis(value).context("p99")?,
            ["Requests/sec:", value] => stats.per_second = value.parse().context("requests/s")?,
            [count, "requests", "in", ..] => {
                stats.samples = count.parse().context("request count")?
            }
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                stats.errors += count.parse::<usize>().context("non-2xx")?
            }
            ["Socket", "errors:", rest @ ..] => {
                stats.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok())
                    .sum::<usize>();
            }
            _ => {}
        }
    }
    if stats.samples == 0 {
        bail!("no requests completed");
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report_is_read_with_units_and_errors() {
        let text = "Running 2s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     3.10ms    1.20ms  45.00ms   90.00%\n    Req/Sec     9.00k   500.00    10.00k    70.00%\n  Latency Distribution\n     50%    2.90ms\n     75%    3.50ms\n     90%    4.00ms\n     99%  850.00us\n  36000 requests in 2.00s, 10.00MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 5\nRequests/sec:  18000.50\nTransfer/sec:      5.00MB\n";
        let stats = parse(text).unwrap();
        assert_eq!(stats.samples, 36000);
        assert_eq!(stats.p50_ms, 2.9);
        assert_eq!(stats.p99_ms, 0.85);
        assert_eq!(stats.max_ms, 45.0);
        assert_eq!(stats.per_second, 18000.5);
        assert_eq!(stats.errors, 8);
        assert!(parse("nothing here").is_err());
    }

    #[test]
    fn a_run_in_which_nothing_completed_is_a_result_and_garbage_is_an_error() {
        let nothing = "Running 8s test @ http://127.0.0.1:1/x\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     0.00us    0.00us   0.00us    -nan%\n  0 requests in 8.02s, 0.00B read\nRequests/sec:      0.00\nTransfer/sec:       0.00B\n";
        assert!(outcome(nothing).unwrap().is_none());
        assert!(outcome("wrk: something else went wrong").is_err());
    }
}
