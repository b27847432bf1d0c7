//! `bench soak`: the three services held under a fixed load for minutes (the write mix and
//! warm reads, each at a fixed rate) while each service's resident memory, the command
//! API's outbox and the projector's lag are sampled; then a report with a verdict on
//! whether they stayed flat. The data set is loaded as `bench run` loads it, into a
//! database of the soak's own, so a soak and a `bench run` do not drop each other's data.
//!
//! - [`pace`]: requests at a fixed rate with a bound on those in flight.
//! - [`samples`]: memory from `/proc`, outbox and lag from the services' `/metrics`.
//! - [`verdict`]: flat memory, an outbox that does not grow, a bounded lag.
//! - [`report`]: Markdown and JSON.

mod pace;
mod report;
mod samples;
mod verdict;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use events::EventStore;
use platform::auth::JwtKeys;
use platform::config::Secret;

pub use pace::Load;
pub use report::SoakResult;
pub use samples::Sample;
pub use verdict::Check;

use super::{listen_args, start_projector, RunArgs};
use crate::cli::DataArgs;
use crate::generator::Size;
use crate::measure::projection;
use crate::measure::writes::{self, CommandMix, Workload};
use crate::report::DataSummary;
use crate::services::{self, Environment, Service};
use pace::{Answer, Pace};

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// How long the load runs, in minutes; fractions allowed (0.5 is 30 s).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    #[arg(long, default_value_t = 200.0)]
    pub commands_per_second: f64,
    #[arg(long, default_value_t = 2_000.0)]
    pub reads_per_second: f64,
    /// Where `soak.md`, `soak.json` and the services' logs go.
    #[arg(long, default_value = "bench-results/soak")]
    pub out: PathBuf,
    #[command(flatten)]
    pub services: services::ServicesArgs,
}

/// A command or read without an answer this long counts as a timeout: far past the second
/// the command API waits for its relay, and past any queue a healthy service builds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of each kind in flight at most, as many as `bench run`'s widest write level.
const MAX_IN_FLIGHT: usize = 64;
/// The projector's catch-up before the load may take this long before the soak goes on
/// without it (and says so).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Index of the first command of the load: its new jobs take their ids from the index, and
/// must not meet those of the preparation (`writes::PREPARE_SEED` on).
const FIRST_COMMAND: u64 = 1_000_000;

impl SoakArgs {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }

    /// Every 15 s; every 5 s in a run shorter than two minutes, which would have too few
    /// samples in each third to compare.
    fn sample_interval(&self) -> Duration {
        Duration::from_secs(if self.minutes < 2.0 { 5 } else { 15 })
    }

    fn pace(&self, per_second: f64) -> Pace {
        Pace {
            per_second,
            duration: self.duration(),
            max_in_flight: MAX_IN_FLIGHT,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.minutes > 0.0, "--minutes must be positive");
        anyhow::ensure!(
            self.commands_per_second > 0.0 && self.reads_per_second > 0.0,
            "the rates must be positive"
        );
        Ok(())
    }

    fn command_line(&self) -> String {
        format!(
            "bench soak --size {} --minutes {} --commands-per-second {} --reads-per-second {} --bin-dir {} --out {}",
            self.data.size.as_str().to_lowercase(),
            self.minutes,
            self.commands_per_second,
            self.reads_per_second,
            self.services.bin_dir.display(),
            self.out.display()
        )
    }

    /// The same servers, binaries and data as a `bench run`, for the pieces of it the soak
    /// shares.
    fn as_run(&self) -> RunArgs {
        RunArgs::sharing(&self.data, &self.out, &self.services)
    }
}

pub async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    args.check()?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_average_before = load_average();
    let config = args.data.config()?;
    std::fs::create_dir_all(&args.out).context("creating the output directory")?;
    services::ensure_local_servers(&std::env::current_dir()?).await?;
    let env = environment(&args, config.size);
    let keys = JwtKeys::new(&Secret::new(env.jwt_secret.clone()));
    tracing::info!(size = config.size.as_str(), "generating");
    let dataset = crate::generate(config)?;
    let nats = events::bus::connect_nats(&args.services.nats_url, "bench").await?;
    let (store, data) = load(&args, &env, &dataset, &nats).await?;
    let soak = Soak {
        args: &args,
        env: &env,
        dataset: &dataset,
        reader: writes::reader(&keys, &dataset)?,
        keys: &keys,
        client: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(2 * MAX_IN_FLIGHT)
            .build()?,
        started_at,
        load_average_before,
    };
    let soaked = soak.run(&store, &data).await;
    // The data stays in MongoDB for inspection; the stream only takes disk space.
    if let Err(error) = async_nats::jetstream::new(nats)
        .delete_stream(&env.stream)
        .await
    {
        tracing::warn!(%error, "soak stream not deleted");
    }
    finish(&soaked?, &args.out)
}

/// `bench run`'s environment for the size, with the soak's own database and log directory.
fn environment(args: &SoakArgs, size: Size) -> Environment {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let shared = super::environment(&args.as_run(), size, &tag[tag.len() - 8..]);
    Environment {
        database: format!("bench_soak_{}", size.as_str().to_lowercase()),
        log_dir: args.out.join(format!("logs-{}", size.as_str())),
        ..shared
    }
}

/// A fresh event store holding the data set, published to the soak's stream, with no
/// projector running yet.
async fn load(
    args: &SoakArgs,
    env: &Environment,
    dataset: &crate::Dataset,
    nats: &async_nats::Client,
) -> anyhow::Result<(EventStore, DataSummary)> {
    let (commits, snapshots) = crate::decide::decide_with_snapshots(args.data.seed, &dataset.ops)?;
    let mongo = events::store::connect_client(&args.services.mongodb_uri, "bench").await?;
    // The soak has no baseline: its database never exists, and dropping it does nothing.
    super::drop_databases(&mongo, env).await?;
    let store = super::open_store(&mongo, env).await?;
    let data = super::load_events(env, dataset, &commits, &snapshots, &store, nats).await?;
    Ok((store, data))
}

/// The first three numbers of `/proc/loadavg`.
pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Writes the report and the JSON and prints the report. A soak in which no command or no
/// read succeeded was not done, and fails; a missed goal is reported, not failed.
fn finish(result: &SoakResult, out: &Path) -> anyhow::Result<()> {
    let (md, json) = report::write(result, out)?;
    println!(
        "{}\nwrote {}, {}",
        report::markdown(result),
        md.display(),
        json.display()
    );
    anyhow::ensure!(
        result.commands.stats.samples > 0,
        "no command was accepted during the soak"
    );
    anyhow::ensure!(
        result.reads.stats.samples > 0,
        "no read was answered during the soak"
    );
    Ok(())
}

/// What the steps of one soak work with.
struct Soak<'a> {
    args: &'a SoakArgs,
    env: &'a Environment,
    dataset: &'a crate::Dataset,
    keys: &'a JwtKeys,
    /// Token of the focus user, who reads every endpoint.
    reader: String,
    client: reqwest::Client,
    started_at: String,
    load_average_before: String,
}

/// The services under load.
struct Running {
    command: Service,
    projector: Service,
    query: Service,
}

impl Running {
    async fn stop(self) {
        for service in [self.query, self.command, self.projector] {
            service.stop().await;
        }
    }
}

/// Before the load: started jobs to complete, and a projector that has caught up.
struct Prepared {
    jobs: usize,
    seconds: f64,
    notes: Vec<String>,
}

impl Soak<'_> {
    /// Starts the services, prepares, loads them and stops them.
    async fn run(&self, store: &EventStore, data: &DataSummary) -> anyhow::Result<SoakResult> {
        let flush_docs = self.args.as_run().projector_flush_docs;
        let projector = start_projector(self.env, flush_docs).await?;
        let (command_port, query_port) = (services::free_port()?, services::free_port()?);
        let command = self.start("command-api", command_port).await?;
        let query = self.start("query-api", query_port).await?;
        let running = Running {
            command,
            projector,
            query,
        };
        let outcome = self.load(&running, store, data).await;
        running.stop().await;
        outcome
    }

    async fn start(&self, binary: &str, port: u16) -> anyhow::Result<Service> {
        Service::start(self.env, binary, binary, &listen_args(port), Some(port)).await
    }

    /// Prepares, then sends commands and reads at their rates while sampling.
    async fn load(
        &self,
        running: &Running,
        store: &EventStore,
        data: &DataSummary,
    ) -> anyhow::Result<SoakResult> {
        let workload = Arc::new(Workload::new(
            &running.command.url(),
            self.keys,
            self.dataset,
        )?);
        let prepared = self.prepare(&workload, running, store).await;
        let (endpoints, urls) = self.read_urls(&running.query).await?;
        let watched = samples::Watched {
            services: vec![&running.command, &running.projector, &running.query],
            command: &running.command,
            projector: &running.projector,
            query: &running.query,
            store,
            client: self.client.clone(),
            token: &self.reader,
        };
        tracing::info!(minutes = self.args.minutes, "soaking");
        let (commands, reads, samples) = tokio::join!(
            self.send_commands(workload),
            self.send_reads(urls),
            watched.every(self.args.sample_interval(), self.args.duration())
        );
        let services = watched.services.iter().map(|s| s.name.clone()).collect();
        Ok(self.result(
            data,
            prepared,
            endpoints,
            (commands, reads),
            services,
            samples,
        ))
    }

    /// Untimed: the started jobs the completions of the mix need, and a projector that
    /// has applied the data set and the preparation.
    async fn prepare(
        &self,
        workload: &Workload,
        running: &Running,
        store: &EventStore,
    ) -> Prepared {
        let started = Instant::now();
        let mut notes = Vec::new();
        let jobs = (self.args.pace(self.args.commands_per_second).planned() / 10 + 1) as usize;
        tracing::info!(jobs, "starting jobs for the completions of the mix");
        let prepared = workload
            .prepare_completions(&self.client, jobs, writes::PREPARE_SEED)
            .await;
        if let Err(error) = prepared {
            notes.push(format!(
                "preparing {jobs} started jobs stopped early ({error:#}): completions past those prepared fail"
            ));
        }
        let caught_up = async {
            let tail = events::relay::sequenced_tail(store).await?;
            let projector = running.projector.url();
            projection::catch_up(
                &self.client,
                &projector,
                &self.reader,
                0,
                tail,
                started,
                CATCH_UP_TIMEOUT,
            )
            .await
        };
        if let Err(error) = caught_up.await {
            notes.push(format!(
                "the load began before the projector caught up: {error:#}"
            ));
        }
        Prepared {
            jobs,
            seconds: started.elapsed().as_secs_f64(),
            notes,
        }
    }

    /// The warm query API's URL of each read endpoint, each read once so that its cache
    /// holds the answer before the load.
    async fn read_urls(&self, query: &Service) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let base = query.url();
        let (mut names, mut urls) = (Vec::new(), Vec::new());
        for (name, path, _) in super::reads::endpoints(self.dataset) {
            let url = if path == "DEEP" {
                let pages = super::reads::deep_pages(self.dataset);
                super::reads::deep_page(&self.client, &base, &self.reader, pages).await?
            } else {
                format!("{base}{path}")
            };
            self.client
                .get(&url)
                .bearer_auth(&self.reader)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("reading {name} before the load"))?;
            names.push(name.to_owned());
            urls.push(url);
        }
        Ok((names, urls))
    }

    async fn send_commands(&self, workload: Arc<Workload>) -> Load {
        let client = self.client.clone();
        pace::drive(self.args.pace(self.args.commands_per_second), move |k| {
            let (workload, client) = (workload.clone(), client.clone());
            let index = FIRST_COMMAND + k;
            async move {
                let mix = CommandMix::for_index(index);
                Answer::of_command(&workload.send(&client, mix, index).await)
            }
        })
        .await
    }

    /// The endpoints in turn.
    async fn send_reads(&self, urls: Vec<String>) -> Load {
        let (client, token) = (self.client.clone(), Arc::<str>::from(self.reader.as_str()));
        pace::drive(self.args.pace(self.args.reads_per_second), move |k| {
            let url = urls[k as usize % urls.len()].clone();
            let (client, token) = (client.clone(), token.clone());
            async move {
                let answer = client.get(&url).bearer_auth(&*token).send().await;
                match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(_) => Answer::Status(status),
                            Err(error) => Answer::of_transport(Some(&error)),
                        }
                    }
                    Err(error) => Answer::of_transport(Some(&error)),
                }
            }
        })
        .await
    }

    fn result(
        &self,
        data: &DataSummary,
        prepared: Prepared,
        read_endpoints: Vec<String>,
        (commands, reads): (Load, Load),
        services: Vec<String>,
        samples: Vec<Sample>,
    ) -> SoakResult {
        let bounds = verdict::Bounds::for_rate(self.args.commands_per_second);
        let checks = verdict::verdict(&samples, self.args.duration(), &services, bounds);
        let m = super::machine();
        SoakResult {
            command: self.args.command_line(),
            started_at: self.started_at.clone(),
            size: self.dataset.config.size.as_str().to_owned(),
            minutes: self.args.minutes,
            machine: format!(
                "{} cores ({}), {:.0} GiB RAM; {}; FerretDB {}; nats-server {}",
                m.nproc, m.cpu_model, m.memory_gib, m.rustc, m.ferretdb, m.nats
            ),
            load_average_before: self.load_average_before.clone(),
            load_average_after: load_average(),
            events_loaded: data.events,
            prepared_seconds: prepared.seconds,
            prepared_jobs: prepared.jobs,
            max_in_flight: MAX_IN_FLIGHT,
            read_endpoints,
            commands,
            reads,
            sample_interval_seconds: self.args.sample_interval().as_secs_f64(),
            services,
            samples,
            checks,
            notes: prepared.notes,
        }
    }
}
