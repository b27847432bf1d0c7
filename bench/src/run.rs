//! One size end to end: fresh database and stream, data loaded while the projector is
//! stopped (the catch-up backlog), the three services and the baseline started from
//! `target/release`, reads, writes, lag, memory, rebuild; then the report, JSON and chart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use events::store::Snapshot;
use events::EventStore;
use platform::auth::JwtKeys;
use platform::config::Secret;

use crate::cli::DataArgs;
use crate::decide::Commit;
use crate::generator::{GenConfig, Size};
use crate::measure::{memory, overhead, projection, rebuild, writes};
use crate::report::{self, DataSummary, Results};
use crate::services::{self, Environment, Service};

mod reads;
pub mod soak;
pub mod telemetry;

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Few samples and short wrk runs (the CI smoke test).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub services: services::ServicesArgs,
    /// Changed documents the projector holds in memory before writing them, in its catch-up
    /// (`--catch-up-docs`) and its rebuild (`--flush-docs`). Default: the projector's own
    /// defaults, at every size: the goal bounds the projector's memory (1 GiB), and on
    /// PostgreSQL a document rewritten by a later flush is a replace by `_id`, not the scan
    /// of a partition that made SQLite-era runs at L hold everything in one flush.
    #[arg(long)]
    pub projector_flush_docs: Option<usize>,
}

impl RunArgs {
    /// A full run's arguments on the same data set, servers, binaries and output directory:
    /// what the commands that share pieces of `run` start from.
    fn sharing(data: &DataArgs, out: &Path, services: &services::ServicesArgs) -> RunArgs {
        RunArgs {
            data: data.clone(),
            out: out.to_owned(),
            quick: false,
            services: services.clone(),
            projector_flush_docs: None,
        }
    }
}

struct Plan {
    seq_warm: usize,
    seq_cold: usize,
    baseline_budget: Duration,
    wrk_seconds: u64,
    write_levels: Vec<(usize, usize)>,
    /// Longest time one write level runs.
    write_budget: Duration,
    lag_seconds: u64,
    /// How long each ceiling operation runs at each concurrency.
    ceiling_seconds: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                seq_warm: 30,
                seq_cold: 20,
                baseline_budget: Duration::from_secs(3),
                wrk_seconds: 1,
                write_levels: vec![(1, 30), (16, 150), (64, 300)],
                write_budget: Duration::from_secs(10),
                lag_seconds: 2,
                ceiling_seconds: Duration::from_millis(500),
            }
        } else {
            Plan {
                seq_warm: 500,
                seq_cold: 200,
                baseline_budget: Duration::from_secs(20),
                wrk_seconds: 8,
                write_levels: vec![(1, 300), (16, 2_000), (64, 4_000)],
                write_budget: Duration::from_secs(60),
                lag_seconds: 60,
                ceiling_seconds: Duration::from_secs(3),
            }
        }
    }
}

fn capture(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> report::Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let cache = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/simplepro/bin"))
        .unwrap_or_default();
    let versioned = |prefix: &str| -> String {
        std::fs::read_dir(&cache)
            .ok()
            .and_then(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|n| n.starts_with(prefix))
            })
            .map(|n| n.trim_start_matches(prefix).to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    report::Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into()),
        kernel: capture("uname", &["-r"]),
        rustc: capture("rustc", &["--version"]),
        ferretdb: versioned("ferretdb-"),
        nats: versioned("nats-server-"),
        wrk: capture("wrk", &["--version"]),
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.data.config()?;
    let size = config.size;
    let plan = Plan::new(args.quick);
    std::fs::create_dir_all(&args.out).context("creating the output directory")?;
    let repo = std::env::current_dir()?;
    services::ensure_local_servers(&repo).await?;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let tag = &tag[tag.len() - 8..];
    let env = environment(&args, size, tag);
    let keys = JwtKeys::new(&Secret::new(env.jwt_secret.clone()));
    let mut results = new_results(&args, &config);

    tracing::info!(size = size.as_str(), "generating");
    let dataset = crate::generate(config.clone())?;
    let (commits, snapshots) = crate::decide::decide_with_snapshots(config.seed, &dataset.ops)?;
    let mongo = events::store::connect_client(&args.services.mongodb_uri, "bench").await?;
    drop_databases(&mongo, &env).await?;
    tracing::info!("measuring the substrate's ceilings");
    let ceilings_db = format!("{}_ceilings", env.database);
    match crate::measure::ceilings::measure(&mongo, &ceilings_db, plan.ceiling_seconds).await {
        Ok(ceilings) => results.ceilings = ceilings,
        Err(error) => results.failures.push(format!("ceilings: {error:#}")),
    }
    let nats = events::bus::connect_nats(&args.services.nats_url, "bench").await?;
    let store = open_store(&mongo, &env).await?;
    let data = load_events(&env, &dataset, &commits, &snapshots, &store, &nats).await?;
    let total_events = data.events;
    results.data = Some(data);
    tracing::info!("filling the baseline");
    crate::baseline::fill(
        &mongo.database(&baseline_name(&env)),
        crate::baseline::fill::fold(&dataset.ops, &config.time_zone),
    )
    .await?;

    let outcome = match Bench::new(&args, &env, &plan, &dataset, &keys) {
        Ok(bench) => measure_services(&bench, total_events, &mut results, &nats, &store).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        results
            .failures
            .push(format!("run stopped early: {error:#}"));
    }
    // The data stays in MongoDB for inspection; the stream only takes disk space.
    if let Err(error) = async_nats::jetstream::new(nats.clone())
        .delete_stream(&env.stream)
        .await
    {
        tracing::warn!(%error, "benchmark stream not deleted");
    }
    finish(&results, &args.out)
}

/// The benchmark's own database, stream and subject prefix, named after the size and `tag`.
fn environment(args: &RunArgs, size: Size, tag: &str) -> Environment {
    let size_name = size.as_str().to_lowercase();
    Environment {
        bin_dir: args.services.bin_dir.clone(),
        log_dir: args.out.join(format!("logs-{}", size.as_str())),
        mongodb_uri: args.services.mongodb_uri.clone(),
        nats_url: args.services.nats_url.clone(),
        database: format!("bench_{size_name}"),
        stream: format!("BENCH_{}_{tag}", size.as_str()),
        subject_prefix: format!("bench.{size_name}{tag}.events"),
        jwt_secret: format!("bench-secret-{tag}-0123456789abcdef"),
        time_zone: args.data.timezone.clone(),
    }
}

fn new_results(args: &RunArgs, config: &GenConfig) -> Results {
    let size = config.size;
    Results {
        cache_bound_mib: 64.0,
        projector_flush_docs: args.projector_flush_docs,
        ..Results::new(
            size,
            config.seed,
            config.anchor.to_string(),
            args.quick,
            format!(
                "cargo run --release -p bench -- run --size {}{}",
                size.as_str(),
                if args.quick { " --quick" } else { "" }
            ),
            machine(),
        )
    }
}

/// The baseline's database, beside the event store's.
fn baseline_name(env: &Environment) -> String {
    format!("{}_baseline", env.database)
}

/// Drops what an earlier run of this size left: the event store, its read models and the
/// baseline. The event store has no call that drops it: its database is dropped with the
/// driver, as the baseline's is.
async fn drop_databases(mongo: &mongodb::Client, env: &Environment) -> anyhow::Result<()> {
    mongo
        .database(&env.database)
        .drop()
        .await
        .context("dropping the benchmark database")?;
    read_models::dbs::ReadModelDbs::new(
        mongo.clone(),
        platform::config::default_read_models_db(&env.database),
    )
    .drop()
    .await
    .context("dropping the benchmark's read-model databases")?;
    mongo
        .database(&baseline_name(env))
        .drop()
        .await
        .context("dropping the baseline database")
}

/// Opens the benchmark's event store, creating its indexes as any service would.
async fn open_store(mongo: &mongodb::Client, env: &Environment) -> anyhow::Result<EventStore> {
    EventStore::open(mongo.database(&env.database))
        .await
        .context("opening the event store")
}

/// Loads the decided events into the event store and the stream while no projector runs,
/// so that they are the catch-up backlog.
async fn load_events(
    env: &Environment,
    dataset: &crate::Dataset,
    commits: &[Commit],
    snapshots: &HashMap<String, Snapshot>,
    store: &EventStore,
    nats: &async_nats::Client,
) -> anyhow::Result<DataSummary> {
    let bus_config = events::BusConfig {
        stream_name: env.stream.clone(),
        subject_prefix: env.subject_prefix.clone(),
        ..Default::default()
    };
    tracing::info!(
        commits = commits.len(),
        "loading the event store (projector stopped)"
    );
    let load = crate::loader::load(
        store,
        Some(crate::loader::PublishTo {
            client: nats.clone(),
            config: bus_config,
            store_id: store.identity().to_owned(),
        }),
        commits,
        snapshots,
        1,
    )
    .await?;
    Ok(DataSummary {
        ops: dataset.ops.len(),
        events: load.events,
        customers: dataset.customers.len(),
        jobs: dataset.jobs.len(),
        threads: dataset.threads.len(),
        focus_user_threads: dataset
            .threads
            .iter()
            .filter(|t| t.participants.contains(&dataset.focus_user))
            .count(),
        load,
    })
}

/// Writes the report, JSON and chart. The report is written either way; a section that
/// could not be measured fails the run, so the smoke run in the test suite catches a broken
/// path.
fn finish(results: &Results, out: &Path) -> anyhow::Result<()> {
    let json = results.write_json(out)?;
    let md = report::write_markdown(results, out)?;
    let all = report::load_all(out)?;
    let chart = crate::chart::write(out, &all)?;
    println!(
        "{}\n\nwrote {}, {}, {}",
        report::markdown(results),
        md.display(),
        json.display(),
        chart.display()
    );
    if !results.failures.is_empty() {
        anyhow::bail!(
            "{} section(s) failed: {}",
            results.failures.len(),
            results.failures.join("; ")
        );
    }
    Ok(())
}

/// What every measured section works with.
struct Bench<'a> {
    args: &'a RunArgs,
    env: &'a Environment,
    plan: &'a Plan,
    dataset: &'a crate::Dataset,
    keys: &'a JwtKeys,
    client: reqwest::Client,
    /// Token of the focus user, who reads every endpoint.
    reader: String,
    /// A stuck projector must not hold the run forever; the reads then show stale data.
    catch_up_timeout: Duration,
}

impl<'a> Bench<'a> {
    fn new(
        args: &'a RunArgs,
        env: &'a Environment,
        plan: &'a Plan,
        dataset: &'a crate::Dataset,
        keys: &'a JwtKeys,
    ) -> anyhow::Result<Self> {
        Ok(Bench {
            args,
            env,
            plan,
            dataset,
            keys,
            // Every request is bounded, so a stalled service fails a section instead of
            // the run.
            client: reqwest::Client::builder()
                .timeout(crate::measure::REQUEST_TIMEOUT)
                .build()?,
            reader: writes::reader(keys, dataset)?,
            catch_up_timeout: Duration::from_secs(if plan.seq_warm < 100 { 600 } else { 3_600 }),
        })
    }
}

/// The services read from and written to once the projector has caught up.
struct Services {
    query: Service,
    query_cold: Service,
    command: Service,
    baseline: Service,
}

fn listen_args(port: u16) -> Vec<String> {
    vec!["--listen".to_owned(), format!("127.0.0.1:{port}")]
}

async fn measure_services(
    bench: &Bench<'_>,
    total_events: u64,
    results: &mut Results,
    nats: &async_nats::Client,
    store: &EventStore,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let projector = start_projector(bench.env, results.projector_flush_docs).await?;
    match projection::catch_up(
        &bench.client,
        &projector.url(),
        &bench.reader,
        0,
        total_events,
        started,
        bench.catch_up_timeout,
    )
    .await
    {
        Ok(catch_up) => {
            results.catch_up = Some(projection::CatchUp {
                peak_rss_mib: projector.peak_rss_kib().map(|kib| kib as f64 / 1024.0),
                ..catch_up
            })
        }
        Err(error) => results
            .failures
            .push(format!("projector catch-up: {error:#}")),
    }
    let services = start_services(bench).await?;
    reads::measure(bench, &services, results).await;
    measure_telemetry_overhead(bench, &services, results).await;
    let workload = Arc::new(writes::Workload::new(
        &services.command.url(),
        bench.keys,
        bench.dataset,
    )?);
    measure_writes(bench, &workload, nats, results).await?;
    measure_lag(bench, &workload, &services, &projector, store, results).await;
    results.memory = memory::sample(&[
        &services.command,
        &projector,
        &services.query,
        &services.query_cold,
        &services.baseline,
    ]);
    measure_rebuild(bench, store, total_events, results).await;
    let Services {
        query,
        query_cold,
        command,
        baseline,
    } = services;
    for service in [baseline, command, query_cold, query, projector] {
        service.stop().await;
    }
    Ok(())
}

async fn start_projector(env: &Environment, flush_docs: Option<usize>) -> anyhow::Result<Service> {
    let port = services::free_port()?;
    let mut args = listen_args(port);
    if let Some(docs) = flush_docs {
        args.extend(["--catch-up-docs".to_owned(), docs.to_string()]);
    }
    Service::start(env, "projector", "projector", &args, Some(port)).await
}

/// The cost of request telemetry on the warm read path: the warm query API against a second
/// one with `--request-telemetry false`, on the first page of customers.
async fn measure_telemetry_overhead(bench: &Bench<'_>, services: &Services, results: &mut Results) {
    let duration = Duration::from_secs(bench.plan.wrk_seconds);
    let measured = telemetry_overhead(
        bench.env,
        &bench.client,
        &bench.reader,
        &services.query,
        overhead::ROUNDS,
        duration,
        &bench.args.out,
        false,
    )
    .await;
    match measured {
        Ok(measured) => results.telemetry_overhead = Some(measured),
        Err(error) => results
            .failures
            .push(format!("telemetry overhead: {error:#}")),
    }
}

/// `rounds` of `wrk` on the first page of customers of `query`, alternating with a query API
/// started beside it with `--request-telemetry false`, both warmed first. As a `control` the
/// second one keeps its telemetry too: two identical services, whose difference is what the
/// measure itself reads when there is nothing to find.
#[allow(clippy::too_many_arguments)]
async fn telemetry_overhead(
    env: &Environment,
    client: &reqwest::Client,
    reader: &str,
    query: &Service,
    rounds: usize,
    duration: Duration,
    work_dir: &Path,
    control: bool,
) -> anyhow::Result<overhead::TelemetryOverhead> {
    let port = services::free_port()?;
    let mut args = listen_args(port);
    if !control {
        args.extend(["--request-telemetry".to_owned(), "false".to_owned()]);
    }
    let untraced = Service::start(
        env,
        "query-api-no-telemetry",
        "query-api",
        &args,
        Some(port),
    )
    .await?;
    let path = "/v1/customers?limit=20";
    let (on, off) = (
        format!("{}{path}", query.url()),
        format!("{}{path}", untraced.url()),
    );
    let measured = async {
        for url in [&on, &off] {
            // Both caches warm before the first round.
            let status = client.get(url).bearer_auth(reader).send().await?.status();
            anyhow::ensure!(status.is_success(), "{url} answered {status}");
        }
        let pair = overhead::Pair {
            endpoint: path,
            with_telemetry: &on,
            without_telemetry: &off,
        };
        overhead::measure(pair, reader, duration, rounds, work_dir).await
    }
    .await;
    untraced.stop().await;
    measured
}

/// The query API with and without its cache, the command API and the baseline server.
async fn start_services(bench: &Bench<'_>) -> anyhow::Result<Services> {
    let env = bench.env;
    let (q1, q2, c, b) = (
        services::free_port()?,
        services::free_port()?,
        services::free_port()?,
        services::free_port()?,
    );
    let query = Service::start(env, "query-api", "query-api", &listen_args(q1), Some(q1)).await?;
    let mut no_cache_args = listen_args(q2);
    no_cache_args.push("--no-cache".into());
    let query_cold = Service::start(
        env,
        "query-api-no-cache",
        "query-api",
        &no_cache_args,
        Some(q2),
    )
    .await?;
    let command =
        Service::start(env, "command-api", "command-api", &listen_args(c), Some(c)).await?;
    let baseline_args = vec![
        "baseline-server".into(),
        "--db".into(),
        format!("{}_baseline", env.database),
        "--listen".into(),
        format!("127.0.0.1:{b}"),
        "--timezone".into(),
        env.time_zone.clone(),
        "--anchor".into(),
        bench.dataset.config.anchor.to_string(),
    ];
    let baseline = Service::start(env, "baseline", "bench", &baseline_args, Some(b)).await?;
    Ok(Services {
        query,
        query_cold,
        command,
        baseline,
    })
}

/// Each write level in turn, with the publication delay measured across all of them.
async fn measure_writes(
    bench: &Bench<'_>,
    workload: &Arc<writes::Workload>,
    nats: &async_nats::Client,
    results: &mut Results,
) -> anyhow::Result<()> {
    let plan = bench.plan;
    let completions: usize = plan.write_levels.iter().map(|(_, n)| n / 10 + 1).sum();
    if let Err(error) = workload
        .prepare_completions(&bench.client, completions, writes::PREPARE_SEED)
        .await
    {
        results
            .failures
            .push(format!("writes: preparing started jobs failed: {error:#}"));
        return Ok(());
    }
    let delay = writes::PublishDelay::start(nats, &bench.env.subject_prefix).await?;
    let mut first = 1_000_000u64;
    for (concurrency, total) in &plan.write_levels {
        let level = writes::run_level(
            workload.clone(),
            *concurrency,
            *total,
            plan.write_budget,
            first,
        )
        .await;
        tracing::info!(
            concurrency,
            per_second = level.commands.per_second,
            errors = level.commands.errors,
            "writes measured"
        );
        results.writes.push(level);
        first += *total as u64;
    }
    results.publish_delay = Some(delay.finish());
    Ok(())
}

/// The projection lag at 200 writes a second, then at half the sustained write rate.
async fn measure_lag(
    bench: &Bench<'_>,
    workload: &Arc<writes::Workload>,
    services: &Services,
    projector: &Service,
    store: &EventStore,
    results: &mut Results,
) {
    let lag_duration = Duration::from_secs(bench.plan.lag_seconds);
    let query_url = services.query.url();
    match projection::steady_lag(workload.clone(), &query_url, 200.0, lag_duration).await {
        Ok(lag) => results.lag = Some(lag),
        Err(error) => results.failures.push(format!("lag: {error:#}")),
    }
    let sustained = results
        .writes
        .iter()
        .find(|level| level.concurrency == 16)
        .map(|level| level.commands.per_second);
    let Some(sustained) = sustained.filter(|rate| *rate >= 2.0) else {
        return;
    };
    // Let the command API work off what the 200/s run left queued, then the projector
    // what that appended: measured on top of a backlog, the lag would be the backlog's.
    tokio::time::sleep(lag_duration).await;
    drain_backlog(bench, projector, store).await;
    match projection::steady_lag(workload.clone(), &query_url, sustained / 2.0, lag_duration).await
    {
        Ok(lag) => results.lag_below_capacity = Some(lag),
        Err(error) => results
            .failures
            .push(format!("lag below capacity: {error:#}")),
    }
}

/// Waits until the projector has projected every event appended so far.
async fn drain_backlog(bench: &Bench<'_>, projector: &Service, store: &EventStore) {
    let drain_started = Instant::now();
    let drained = match events::relay::sequenced_tail(store).await {
        Ok(tail) => projection::catch_up(
            &bench.client,
            &projector.url(),
            &bench.reader,
            0,
            tail,
            drain_started,
            bench.catch_up_timeout,
        )
        .await
        .map(|_| ()),
        Err(error) => Err(error.into()),
    };
    match drained {
        Ok(()) => tracing::info!(
            seconds = drain_started.elapsed().as_secs_f64(),
            "the projector worked off the 200/s run"
        ),
        Err(error) => tracing::warn!(%error, "measuring the lag on top of a backlog"),
    }
}

async fn measure_rebuild(
    bench: &Bench<'_>,
    store: &EventStore,
    total_events: u64,
    results: &mut Results,
) {
    // A rebuild replays the whole log, which the writes above made longer (positions are dense,
    // so the log's size is its tail).
    let tail = store.estimated_log_size().await.unwrap_or(total_events);
    // Quick mode rebuilds one model: the smoke run checks the path, not the rate.
    let models: &[&str] = if bench.args.quick {
        &["dashboard"]
    } else {
        &[]
    };
    let flush_docs = results.projector_flush_docs;
    match rebuild::rebuild(bench.env, tail, models, flush_docs).await {
        Ok(result) => results.rebuild = Some(result),
        Err(error) => results.failures.push(format!("rebuild: {error:#}")),
    }
}
