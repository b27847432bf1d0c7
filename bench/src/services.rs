//! The services under test, started from `target/release` as child processes with the
//! benchmark's own database, stream and subject prefix; and the local servers.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use tokio::process::{Child, Command};

/// Where the services' binaries are and the local servers they use: the flags of every
/// subcommand that starts them.
#[derive(Debug, Clone, Args)]
pub struct ServicesArgs {
    /// Directory of the service binaries.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:37017/?directConnection=true"
    )]
    pub mongodb_uri: String,
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:34222")]
    pub nats_url: String,
}

/// Everything the services need to find the benchmark's slice of the local servers.
#[derive(Debug, Clone)]
pub struct Environment {
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub mongodb_uri: String,
    pub nats_url: String,
    pub database: String,
    pub stream: String,
    pub subject_prefix: String,
    pub jwt_secret: String,
    pub time_zone: String,
}

impl Environment {
    fn apply(&self, command: &mut Command) {
        command
            .env("MONGODB_URI", &self.mongodb_uri)
            .env("MONGODB_DB", &self.database)
            .env(
                "MONGODB_READ_MODELS_DB",
                platform::config::default_read_models_db(&self.database),
            )
            .env("NATS_URL", &self.nats_url)
            .env("SIMPLEPRO_NATS_STREAM", &self.stream)
            .env("SIMPLEPRO_SUBJECT_PREFIX", &self.subject_prefix)
            .env("SIMPLEPRO_JWT_SECRET", &self.jwt_secret)
            .env("SIMPLEPRO_TIMEZONE", &self.time_zone)
            // The load comes from one address with a few tokens: the rate limits, which
            // protect a deployment from such a client, would measure themselves instead.
            .env("SIMPLEPRO_RATE_PER_USER", "0")
            .env("SIMPLEPRO_RATE_PER_ADDRESS", "0")
            .env("RUST_LOG", "warn");
    }
}

/// A running child process; stopped with SIGTERM (then SIGKILL) on [`Service::stop`] or drop.
pub struct Service {
    pub name: String,
    pub port: Option<u16>,
    child: Child,
}

impl Service {
    /// Starts `bin_dir/binary args…` with the environment, logging to `log_dir/name.log`.
    pub async fn start(
        env: &Environment,
        name: &str,
        binary: &str,
        args: &[String],
        port: Option<u16>,
    ) -> anyhow::Result<Service> {
        let path = env.bin_dir.join(binary);
        if !path.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release -p {binary}`",
                path.display()
            );
        }
        std::fs::create_dir_all(&env.log_dir).context("creating the log directory")?;
        let log = std::fs::File::create(env.log_dir.join(format!("{name}.log")))
            .context("creating a log file")?;
        let mut command = Command::new(&path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        env.apply(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        let mut service = Service {
            name: name.to_owned(),
            port,
            child,
        };
        if let Some(port) = port {
            service.wait_healthy(port, Duration::from_secs(60)).await?;
        }
        Ok(service)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.unwrap_or(0))
    }

    async fn wait_healthy(&mut self, port: u16, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "{} exited during start-up with {status}; see its log",
                    self.name
                );
            }
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
            {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not answer /healthz within {timeout:?}", self.name)
    }

    /// Resident memory in KiB from `/proc/<pid>/status` (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// Peak resident memory so far in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        peak_rss_kib(self.pid()?)
    }

    /// Waits for the process to exit on its own (for one-shot commands like `rebuild`);
    /// returns its exit status and its peak resident memory in KiB, read every 200 ms while
    /// it ran (so a peak in its last 200 ms may be missed).
    pub async fn wait(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, Option<u64>)> {
        let mut peak = None;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if let Some(kib) = self.peak_rss_kib() {
                    peak = Some(kib);
                }
                tokio::select! {
                    status = self.child.wait() => return status,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        })
        .await
        .with_context(|| format!("{} did not finish within {timeout:?}", self.name))?
        .context("waiting for the child")?;
        Ok((waited, peak))
    }

    /// SIGTERM, up to 15 s for a graceful stop, then SIGKILL.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A field of `/proc/<pid>/status` given in kB.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Peak resident memory of process `pid` in KiB from `/proc/<pid>/status` (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    proc_status_kib(pid, "VmHWM:")
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough on a quiet machine).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn answers(address: &str) -> bool {
    std::net::TcpStream::connect_timeout(
        &match address.parse() {
            Ok(a) => a,
            Err(_) => return false,
        },
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Starts FerretDB and NATS with `./dev up` when they do not answer.
pub async fn ensure_local_servers(repo: &Path) -> anyhow::Result<()> {
    if answers("127.0.0.1:37017") && answers("127.0.0.1:34222") {
        return Ok(());
    }
    let status = Command::new(repo.join("dev"))
        .arg("up")
        .status()
        .await
        .context("running ./dev up")?;
    if !status.success() {
        bail!("./dev up failed with {status}");
    }
    Ok(())
}
