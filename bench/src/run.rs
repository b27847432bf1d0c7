//! One size end to end: fresh database and stream, data loaded while the projector is
//! stopped (the catch-up backlog), the three services and the baseline started from
//! `target/release`, reads, writes, lag, memory, rebuild; then the report, JSON and chart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Duration as Days;
use clap::Args;
use platform::auth::JwtKeys;
use platform::config::Secret;

use crate::cli::DataArgs;
use crate::generator::Size;
use crate::measure::{latency, memory, projection, rebuild, writes, wrk};
use crate::report::{self, DataSummary, ReadResult, Results, BASELINE, NO_CACHE, WARM};
use crate::services::{self, Environment, Service};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Few samples and short wrk runs (the CI smoke test).
    #[arg(long)]
    pub quick: bool,
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
    /// Changed documents the projector holds in memory before writing them, in its catch-up
    /// (`--catch-up-docs`) and its rebuild (`--flush-docs`). Default: the projector's own
    /// defaults at S and M; 3,000,000 at L, whose backlog changes about 1.5 million
    /// documents. With the defaults a catch-up of L flushes every 100,000 events or so, and
    /// each flush rewrites documents earlier ones wrote: on FerretDB each such replace scans
    /// its partition, and the fourth flush took 511 s.
    #[arg(long)]
    pub projector_flush_docs: Option<usize>,
}

impl RunArgs {
    fn projector_flush_docs(&self, size: Size) -> Option<usize> {
        self.projector_flush_docs
            .or((size == Size::L).then_some(3_000_000))
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
                lag_seconds: 15,
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

/// The read endpoints: name, query API path, baseline path.
fn endpoints(dataset: &crate::Dataset) -> Vec<(&'static str, String, String)> {
    let a = dataset.config.anchor;
    let week = dataset.busy_week();
    vec![
        (
            "dashboard 30 days",
            format!("/v1/dashboard?from={}&to={a}", a - Days::days(29)),
            format!("/v1/dashboard?from={}&to={a}&today={a}", a - Days::days(29)),
        ),
        (
            "dashboard 365 days",
            format!("/v1/dashboard?from={}&to={a}", a - Days::days(364)),
            format!(
                "/v1/dashboard?from={}&to={a}&today={a}",
                a - Days::days(364)
            ),
        ),
        (
            "calendar week",
            format!("/v1/calendar/week/{week}"),
            format!("/v1/calendar/week/{week}"),
        ),
        (
            "threads unread_only",
            "/v1/me/threads?unread_only=true&limit=100".into(),
            "/v1/threads?unread_only=true".into(),
        ),
        (
            "customer list first page",
            "/v1/customers?limit=20".into(),
            "/v1/customers".into(),
        ),
        (
            "customer list deep page",
            "DEEP".into(),
            "/v1/customers".into(),
        ),
        (
            "customer search",
            "/v1/customers?search=smith".into(),
            "/v1/customers?search=smith".into(),
        ),
    ]
}

/// Follows `next_cursor` `pages` times and returns the URL of the page reached.
async fn deep_page(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    pages: usize,
) -> anyhow::Result<String> {
    let mut url = format!("{base}/v1/customers?limit=20");
    for _ in 0..pages {
        let body: serde_json::Value = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match body.get("next_cursor").and_then(|c| c.as_str()) {
            Some(cursor) => url = format!("{base}/v1/customers?limit=20&cursor={cursor}"),
            None => break,
        }
    }
    Ok(url)
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
    let size_name = size.as_str().to_lowercase();
    let secret = format!("bench-secret-{tag}-0123456789abcdef");
    let env = Environment {
        bin_dir: args.bin_dir.clone(),
        log_dir: args.out.join(format!("logs-{}", size.as_str())),
        mongodb_uri: args.mongodb_uri.clone(),
        nats_url: args.nats_url.clone(),
        database: format!("bench_{size_name}"),
        stream: format!("BENCH_{}_{tag}", size.as_str()),
        subject_prefix: format!("bench.{size_name}{tag}.events"),
        jwt_secret: secret.clone(),
        time_zone: args.data.timezone.clone(),
    };
    let keys = JwtKeys::new(&Secret::new(secret.clone()));
    let mut results = Results {
        cache_bound_mib: 64.0,
        projector_flush_docs: args.projector_flush_docs(size),
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
    };

    tracing::info!(size = size.as_str(), "generating");
    let dataset = crate::generate(config.clone())?;
    let (commits, snapshots) = crate::decide::decide_with_snapshots(config.seed, &dataset.ops)?;
    let mongo = events::store::connect_client(&args.mongodb_uri, "bench").await?;
    let database = mongo.database(&env.database);
    let baseline_db = mongo.database(&format!("{}_baseline", env.database));
    database
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
    baseline_db
        .drop()
        .await
        .context("dropping the baseline database")?;
    tracing::info!("measuring the substrate's ceilings");
    match crate::measure::ceilings::measure(
        &mongo,
        &format!("{}_ceilings", env.database),
        plan.ceiling_seconds,
    )
    .await
    {
        Ok(ceilings) => results.ceilings = ceilings,
        Err(error) => results.failures.push(format!("ceilings: {error:#}")),
    }
    let nats = events::bus::connect_nats(&args.nats_url, "bench").await?;
    let bus_config = events::BusConfig {
        stream_name: env.stream.clone(),
        subject_prefix: env.subject_prefix.clone(),
        ..Default::default()
    };

    tracing::info!(
        commits = commits.len(),
        "loading the event store (projector stopped)"
    );
    // Opening the store creates its indexes, as any service would.
    let store = events::EventStore::open(database.clone())
        .await
        .context("opening the event store")?;
    let load = crate::loader::load(
        &store,
        Some((nats.clone(), bus_config.clone())),
        &commits,
        &snapshots,
        1,
    )
    .await?;
    let total_events = load.events;
    results.data = Some(DataSummary {
        ops: dataset.ops.len(),
        events: total_events,
        customers: dataset.customers.len(),
        jobs: dataset.jobs.len(),
        threads: dataset.threads.len(),
        focus_user_threads: dataset
            .threads
            .iter()
            .filter(|t| t.participants.contains(&dataset.focus_user))
            .count(),
        load,
    });
    tracing::info!("filling the baseline");
    crate::baseline::fill(
        &baseline_db,
        crate::baseline::fill::fold(&dataset.ops, &config.time_zone),
    )
    .await?;

    let outcome = measure_services(
        &args,
        &env,
        &keys,
        &dataset,
        total_events,
        &plan,
        &mut results,
        &nats,
        &database,
    )
    .await;
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
    finish(&results, &args.out)?;
    // The report is written either way; a section that could not be measured fails the run,
    // so the smoke run in the test suite catches a broken path.
    if !results.failures.is_empty() {
        anyhow::bail!(
            "{} section(s) failed: {}",
            results.failures.len(),
            results.failures.join("; ")
        );
    }
    Ok(())
}

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
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn measure_services(
    args: &RunArgs,
    env: &Environment,
    keys: &JwtKeys,
    dataset: &crate::Dataset,
    total_events: u64,
    plan: &Plan,
    results: &mut Results,
    nats: &async_nats::Client,
    database: &mongodb::Database,
) -> anyhow::Result<()> {
    // Every request is bounded, so a stalled service fails a section instead of the run.
    let client = reqwest::Client::builder()
        .timeout(crate::measure::REQUEST_TIMEOUT)
        .build()?;
    let reader = writes::reader(keys, dataset)?;
    let port = |p: u16| vec!["--listen".to_owned(), format!("127.0.0.1:{p}")];

    let projector_port = services::free_port()?;
    // A stuck projector must not hold the run forever; the reads below then show stale data.
    let catch_up_timeout = Duration::from_secs(if plan.seq_warm < 100 { 600 } else { 3_600 });
    let started = Instant::now();
    let flush_docs = results.projector_flush_docs;
    let mut projector_args = port(projector_port);
    if let Some(docs) = flush_docs {
        projector_args.extend(["--catch-up-docs".to_owned(), docs.to_string()]);
    }
    let projector = Service::start(
        env,
        "projector",
        "projector",
        &projector_args,
        Some(projector_port),
    )
    .await?;
    match projection::catch_up(
        &client,
        &projector.url(),
        &reader,
        0,
        total_events,
        started,
        catch_up_timeout,
    )
    .await
    {
        Ok(catch_up) => results.catch_up = Some(catch_up),
        Err(error) => results
            .failures
            .push(format!("projector catch-up: {error:#}")),
    }

    let (q1, q2, c, b) = (
        services::free_port()?,
        services::free_port()?,
        services::free_port()?,
        services::free_port()?,
    );
    let query = Service::start(env, "query-api", "query-api", &port(q1), Some(q1)).await?;
    let mut no_cache_args = port(q2);
    no_cache_args.push("--no-cache".into());
    let query_cold = Service::start(
        env,
        "query-api-no-cache",
        "query-api",
        &no_cache_args,
        Some(q2),
    )
    .await?;
    let command = Service::start(env, "command-api", "command-api", &port(c), Some(c)).await?;
    let baseline_args = vec![
        "baseline-server".into(),
        "--db".into(),
        format!("{}_baseline", env.database),
        "--listen".into(),
        format!("127.0.0.1:{b}"),
        "--timezone".into(),
        env.time_zone.clone(),
        "--anchor".into(),
        dataset.config.anchor.to_string(),
    ];
    let baseline = Service::start(env, "baseline", "bench", &baseline_args, Some(b)).await?;

    if let Err(error) = wrk::ensure_installed().await {
        results.failures.push(format!("wrk: {error:#}"));
    }
    let wrk_ok = tokio::process::Command::new("wrk")
        .arg("--version")
        .output()
        .await
        .is_ok();
    let customers = dataset.customers.len();
    let deep_pages = ((customers / 20) * 4 / 5).clamp(1, 100);
    for (name, query_path, baseline_path) in endpoints(dataset) {
        // The no-cache URL of this endpoint and its p50: a probe of the database's load.
        let mut database_probe: Option<(String, Duration)> = None;
        for (design, service) in [
            (WARM, &query),
            (NO_CACHE, &query_cold),
            (BASELINE, &baseline),
        ] {
            let url = if query_path == "DEEP" && design != BASELINE {
                match deep_page(&client, &service.url(), &reader, deep_pages).await {
                    Ok(url) => url,
                    Err(error) => {
                        results
                            .failures
                            .push(format!("{name} ({design}): {error:#}"));
                        continue;
                    }
                }
            } else if design == BASELINE {
                format!("{}{baseline_path}", service.url())
            } else {
                format!("{}{query_path}", service.url())
            };
            let (count, budget) = match design {
                WARM => (plan.seq_warm, Duration::from_secs(30)),
                NO_CACHE => (plan.seq_cold, Duration::from_secs(30)),
                _ => (plan.seq_cold, plan.baseline_budget),
            };
            let mut read = ReadResult {
                endpoint: name.into(),
                design: design.into(),
                sequential: None,
                wrk: None,
                note: None,
            };
            // The baseline has no cache to warm, and its slowest requests take minutes.
            let warmup = if design == BASELINE { 0 } else { 2 };
            match latency::sequential(&client, &url, &reader, warmup, count, budget).await {
                Ok(stats) => read.sequential = Some(stats),
                Err(error) => {
                    results
                        .failures
                        .push(format!("{name} ({design}): {error:#}"));
                    results.reads.push(read);
                    continue;
                }
            }
            // Seconds per request, or no answer at all (timeouts count as slower than any
            // answer): 64 connections would only queue minutes of work in the database.
            let slow = read
                .sequential
                .as_ref()
                .is_some_and(|s| s.samples == 0 || s.median().is_some_and(|m| m.ms > 1_000.0));
            let typical = read.sequential.as_ref().map_or(Duration::ZERO, |s| {
                Duration::from_secs_f64(s.p50_ms / 1000.0)
            });
            if query_path == "DEEP" && design == BASELINE {
                read.note =
                    Some("no pagination: the whole list, as the old endpoint returned it".into());
            }
            if slow {
                read.note =
                    Some("wrk skipped: seconds per request; sequential samples only".into());
            } else if args.quick && design != WARM {
                // The smoke run checks the wrk path once per endpoint; against the slow designs
                // a burst of 64 connections leaves minutes of queued work behind.
                read.note = Some("quick mode: wrk against the warm cache only".into());
            } else if wrk_ok {
                match wrk::run(
                    &url,
                    &reader,
                    64,
                    Duration::from_secs(plan.wrk_seconds),
                    &args.out,
                )
                .await
                {
                    Ok(Some(stats)) => read.wrk = Some(stats),
                    Ok(None) => {
                        read.note = Some(format!(
                            "wrk: none of 64 concurrent requests completed within {} s",
                            plan.wrk_seconds
                        ))
                    }
                    Err(error) => results
                        .failures
                        .push(format!("wrk {name} ({design}): {error:#}")),
                }
                let waited =
                    latency::settle(&client, &url, &reader, typical, Duration::from_secs(300))
                        .await;
                tracing::debug!(endpoint = name, design, ?waited, "settled after wrk");
            }
            if design == NO_CACHE {
                database_probe = Some((url.clone(), typical));
            }
            // The baseline's requests that timed out left their queries running in FerretDB,
            // which does not stop a query whose client has gone (the threads endpoint at L:
            // 32 count queries at a time, still running 10 minutes after the timeout). The
            // next measurements must not share the database with them: the query API
            // without its cache reads the database, so it answers as usual again once they
            // are done. The wait is bounded; a longer one calls for restarting FerretDB.
            let timed_out = read.sequential.as_ref().is_some_and(|s| s.timeouts > 0);
            if design == BASELINE && timed_out {
                if let Some((probe, typical)) = &database_probe {
                    let waited = latency::settle(
                        &client,
                        probe,
                        &reader,
                        *typical,
                        crate::measure::REQUEST_TIMEOUT,
                    )
                    .await;
                    tracing::info!(endpoint = name, ?waited, "settled after timeouts");
                }
            }
            tracing::info!(
                endpoint = name,
                design,
                p50 = read.sequential.as_ref().map(|s| s.p50_ms),
                "read measured"
            );
            results.reads.push(read);
        }
    }

    let workload = Arc::new(writes::Workload::new(&command.url(), keys, dataset)?);
    let completions: usize = plan.write_levels.iter().map(|(_, n)| n / 10 + 1).sum();
    match workload
        .prepare_completions(&client, completions, writes::PREPARE_SEED)
        .await
    {
        Ok(()) => {
            let delay = writes::PublishDelay::start(nats, &env.subject_prefix).await?;
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
        }
        Err(error) => results
            .failures
            .push(format!("writes: preparing started jobs failed: {error:#}")),
    }
    match projection::steady_lag(
        workload.clone(),
        &query.url(),
        200.0,
        Duration::from_secs(plan.lag_seconds),
    )
    .await
    {
        Ok(lag) => results.lag = Some(lag),
        Err(error) => results.failures.push(format!("lag: {error:#}")),
    }
    let sustained = results
        .writes
        .iter()
        .find(|level| level.concurrency == 16)
        .map(|level| level.commands.per_second);
    if let Some(sustained) = sustained.filter(|rate| *rate >= 2.0) {
        // Let the command API work off what the 200/s run left queued, then the projector
        // what that appended: measured on top of a backlog, the lag would be the backlog's.
        tokio::time::sleep(Duration::from_secs(plan.lag_seconds)).await;
        let drain_started = Instant::now();
        let drained = match events::relay::next_free_position(database).await {
            Ok(next) => projection::catch_up(
                &client,
                &projector.url(),
                &reader,
                0,
                next - 1,
                drain_started,
                catch_up_timeout,
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
        match projection::steady_lag(
            workload.clone(),
            &query.url(),
            sustained / 2.0,
            Duration::from_secs(plan.lag_seconds),
        )
        .await
        {
            Ok(lag) => results.lag_below_capacity = Some(lag),
            Err(error) => results
                .failures
                .push(format!("lag below capacity: {error:#}")),
        }
    }
    results.memory = memory::sample(&[&command, &projector, &query, &query_cold, &baseline]);

    // A rebuild replays the whole log, which the writes above made longer (positions are dense,
    // so the log's size is its tail).
    let tail = database
        .collection::<bson::Document>("events")
        .estimated_document_count()
        .await
        .unwrap_or(total_events);
    // Quick mode rebuilds one model: the smoke run checks the path, not the rate.
    let models: &[&str] = if args.quick { &["dashboard"] } else { &[] };
    match rebuild::rebuild(env, tail, models, flush_docs).await {
        Ok(result) => results.rebuild = Some(result),
        Err(error) => results.failures.push(format!("rebuild: {error:#}")),
    }
    for service in [baseline, command, query_cold, query, projector] {
        service.stop().await;
    }
    Ok(())
}
