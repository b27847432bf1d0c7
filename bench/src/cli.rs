//! Command-line interface: `generate`, `load`, `seed`, `writes`, `baseline-server`, `run`,
//! `soak`, `overhead`, `history`, `shapes`, `report`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};
use domain::calendar::BusinessTimeZone;
use events::EventStore;
use platform::accounts::Accounts;
use platform::auth::{Authenticator, JwtKeys};
use platform::config::Secret;
use platform::limits::RateLimits;

use crate::generator::{GenConfig, Size};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "SimplePro benchmarks: read models against on-read aggregation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data set size: S (smoke, a few thousand events), M (~100,000), L (~1,000,000).
    #[arg(long, value_enum, default_value = "s")]
    pub size: Size,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The data set's "today" (YYYY-MM-DD); default: today in the business time zone.
    #[arg(long)]
    pub anchor: Option<NaiveDate>,
    #[arg(long, env = "SIMPLEPRO_TIMEZONE", default_value = "America/New_York")]
    pub timezone: String,
}

impl DataArgs {
    pub fn config(&self) -> anyhow::Result<GenConfig> {
        let time_zone = BusinessTimeZone::parse(&self.timezone)
            .map_err(|e| anyhow::anyhow!("timezone: {}", e.reason))?;
        let anchor = self
            .anchor
            .unwrap_or_else(|| time_zone.local_date(Utc::now()));
        Ok(GenConfig {
            seed: self.seed,
            size: self.size,
            anchor,
            time_zone,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Generates a data set and prints what it holds (optionally every event as JSON lines).
    Generate {
        #[command(flatten)]
        data: DataArgs,
        /// Writes the decided events, one JSON object per line.
        #[arg(long)]
        events_out: Option<PathBuf>,
    },
    /// Bulk-loads a generated data set into an empty event store and publishes it.
    Load {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        connection: platform::config::ConnectionArgs,
        /// Skip publishing to JetStream.
        #[arg(long)]
        no_publish: bool,
    },
    /// Sends a generated data set through a running command API.
    Seed {
        #[command(flatten)]
        data: DataArgs,
        /// Base URL of the command API, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        via_http: String,
        /// Bearer token for customer, job, user and crew commands (e.g. an admin's, from
        /// `command-api mint-token`).
        #[arg(long, env = "SIMPLEPRO_TOKEN")]
        token: String,
        /// The command API's JWT secret: lets thread commands be sent as their authors.
        #[arg(long, env = "SIMPLEPRO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<Secret>,
    },
    /// Sends the write mix to a running command API, one level per client count, and prints
    /// each level's figures: the write section of `run` alone, to profile a loaded store.
    Writes {
        #[command(flatten)]
        data: DataArgs,
        /// Base URL of the command API, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        via_http: String,
        /// The command API's JWT secret: commands are sent as the data set's users.
        #[arg(long, env = "SIMPLEPRO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Secret,
        /// Concurrent clients of each level.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Commands per level (fewer when the level's time runs out).
        #[arg(long, default_value_t = 300)]
        commands: usize,
        /// Longest time one level runs, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Index of the first command: new jobs take their ids from it, so another run
        /// against the same store needs another index.
        #[arg(long, default_value_t = 2_000_000)]
        first_index: u64,
    },
    /// Sends messages and reschedules at a steady rate to a running command API and prints the
    /// end-to-end lag through the query API and through a server-sent event stream: the lag
    /// section of `run` alone.
    Lag {
        #[command(flatten)]
        data: DataArgs,
        /// Base URL of the command API, e.g. http://127.0.0.1:8081.
        #[arg(long)]
        via_http: String,
        /// Base URL of the query API, e.g. http://127.0.0.1:8082.
        #[arg(long)]
        query_url: String,
        /// The services' JWT secret: commands are sent as the data set's users.
        #[arg(long, env = "SIMPLEPRO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Secret,
        /// Commands per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// How long commands are sent, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Serves the on-read baseline design over HTTP.
    BaselineServer {
        #[command(flatten)]
        data: DataArgs,
        #[arg(
            long,
            env = "MONGODB_URI",
            default_value = "mongodb://127.0.0.1:37017/?directConnection=true"
        )]
        mongodb_uri: String,
        #[arg(long, env = "BENCH_BASELINE_DB", default_value = "bench_baseline")]
        db: String,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        #[arg(long, env = "SIMPLEPRO_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Secret,
        /// Drops the database and fills it from a generated data set before serving.
        #[arg(long)]
        fill: bool,
    },
    /// Runs one size end to end and writes the report, JSON and chart.
    Run(crate::run::RunArgs),
    /// Holds commands and reads at fixed rates for minutes and reports whether memory, the
    /// outbox and the projector's lag stayed flat.
    Soak(crate::run::soak::SoakArgs),
    /// What request telemetry costs warm reads: two query APIs, one with
    /// `--request-telemetry false`, on the read models a `bench run` of the size left, loaded
    /// with `wrk` in alternation: the telemetry section of `run` alone.
    Overhead(crate::run::telemetry::OverheadArgs),
    /// What `history export` and `history verify` sustain over a whole event store (one a
    /// `bench load` or `bench run` left), beside a driver read of the same log in the same run,
    /// and the process's peak memory during each.
    History {
        #[command(flatten)]
        connection: platform::config::ConnectionArgs,
        #[arg(long, env = "SIMPLEPRO_TIMEZONE", default_value = "America/New_York")]
        timezone: String,
    },
    /// What a replace and a find by `_id` cost by the shape of the document: the same bytes
    /// in fewer or more values, and list-like documents of 1 to 64 entries. Uses (and drops)
    /// the database `--db`.
    Shapes {
        #[arg(
            long,
            env = "MONGODB_URI",
            default_value = "mongodb://127.0.0.1:37017/?directConnection=true"
        )]
        mongodb_uri: String,
        #[arg(long, default_value = "bench_shapes")]
        db: String,
        /// Concurrent clients, each level in turn.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        clients: Vec<usize>,
        /// Seconds each operation runs at each level.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Prints two runs' figures side by side (a Markdown table): the results JSON of a run
    /// before a change and of one after it, with the ratio after ÷ before.
    Compare {
        /// `results-<size>.json` of the earlier run.
        #[arg(long)]
        before: PathBuf,
        /// `results-<size>.json` of the later run.
        #[arg(long)]
        after: PathBuf,
        /// Column headings of the two runs.
        #[arg(long, default_value = "before")]
        before_label: String,
        #[arg(long, default_value = "after")]
        after_label: String,
    },
    /// Rewrites the reports and the chart from the JSON results in a directory.
    Report {
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
}

pub async fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Generate { data, events_out } => generate(&data, events_out.as_deref()),
        Cmd::Writes {
            data,
            via_http,
            jwt_secret,
            clients,
            commands,
            seconds,
            first_index,
        } => {
            let seconds = Duration::from_secs(seconds);
            writes(
                &data,
                &via_http,
                &jwt_secret,
                clients,
                commands,
                seconds,
                first_index,
            )
            .await
        }
        Cmd::Lag {
            data,
            via_http,
            query_url,
            jwt_secret,
            rate,
            seconds,
        } => {
            let seconds = Duration::from_secs(seconds);
            lag(&data, &via_http, &query_url, &jwt_secret, rate, seconds).await
        }
        Cmd::Load {
            data,
            connection,
            no_publish,
        } => load(&data, &connection, no_publish).await,
        Cmd::Seed {
            data,
            via_http,
            token,
            jwt_secret,
        } => {
            let dataset = crate::generate(data.config()?)?;
            let keys = jwt_secret.as_ref().map(JwtKeys::new);
            let outcome = crate::seed::seed(&via_http, &token, keys.as_ref(), &dataset).await?;
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(())
        }
        Cmd::BaselineServer {
            data,
            mongodb_uri,
            db,
            listen,
            jwt_secret,
            fill,
        } => baseline_server(&data, &mongodb_uri, &db, listen, &jwt_secret, fill).await,
        Cmd::Run(args) => crate::run::run(args).await,
        Cmd::Soak(args) => crate::run::soak::soak(args).await,
        Cmd::Overhead(args) => crate::run::telemetry::overhead(args).await,
        Cmd::History {
            connection,
            timezone,
        } => history(&connection, &timezone).await,
        Cmd::Shapes {
            mongodb_uri,
            db,
            clients,
            seconds,
        } => shapes(&mongodb_uri, &db, &clients, Duration::from_secs(seconds)).await,
        Cmd::Compare {
            before,
            after,
            before_label,
            after_label,
        } => compare(&before, &after, [&before_label, &after_label]),
        Cmd::Report { out } => report(&out),
    }
}

async fn history(
    connection: &platform::config::ConnectionArgs,
    time_zone: &str,
) -> anyhow::Result<()> {
    let store = EventStore::connect(
        &connection.mongodb_uri,
        &connection.mongodb_db,
        "simplepro-bench",
    )
    .await
    .with_context(|| format!("opening the event store in {}", connection.mongodb_db))?;
    let rates = crate::measure::history::measure(&store, time_zone).await?;
    println!("{}", crate::measure::history::table(&rates));
    Ok(())
}

async fn shapes(
    uri: &str,
    database: &str,
    clients: &[usize],
    each: Duration,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !clients.is_empty() && clients.iter().all(|&c| c > 0),
        "--clients must list positive numbers"
    );
    let client = mongodb::Client::with_uri_str(uri)
        .await
        .with_context(|| format!("connecting to {uri}"))?;
    let costs = crate::measure::shapes::measure(&client, database, clients, each).await?;
    println!("{}", crate::measure::shapes::table(&costs));
    Ok(())
}

fn compare(before: &Path, after: &Path, labels: [&str; 2]) -> anyhow::Result<()> {
    let read = |path: &Path| -> anyhow::Result<crate::report::Results> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    print!(
        "{}",
        crate::compare::markdown(&read(before)?, &read(after)?, labels)
    );
    Ok(())
}

fn report(out: &Path) -> anyhow::Result<()> {
    let all = crate::report::load_all(out)?;
    for results in &all {
        crate::report::write_markdown(results, out)?;
    }
    let chart = crate::chart::write(out, &all)?;
    println!("{} reports, chart {}", all.len(), chart.display());
    Ok(())
}

/// Prints the commands, commits and events of the data set by type.
fn generate(data: &DataArgs, events_out: Option<&Path>) -> anyhow::Result<()> {
    let dataset = crate::generate(data.config()?)?;
    let commits = crate::decide::decide_all(data.seed, &dataset.ops)?;
    let events: usize = commits.iter().map(|c| c.events.len()).sum();
    let mut by_type = std::collections::BTreeMap::new();
    for event in commits.iter().flat_map(|c| &c.events) {
        *by_type.entry(event.event_type).or_insert(0usize) += 1;
    }
    println!(
        "size {} seed {} anchor {}: {} commands, {} commits, {events} events",
        data.size.as_str(),
        data.seed,
        dataset.config.anchor,
        dataset.ops.len(),
        commits.len()
    );
    for (kind, count) in by_type {
        println!("  {kind:<24} {count}");
    }
    match events_out {
        Some(path) => write_events(path, &commits),
        None => Ok(()),
    }
}

/// Every decided event as one JSON line, numbered from position 1.
fn write_events(path: &Path, commits: &[crate::decide::Commit]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).context("creating the events file")?);
    let mut position = 1;
    for commit in commits {
        for envelope in crate::loader::envelopes(commit, position)? {
            serde_json::to_writer(&mut file, &envelope)?;
            writeln!(file)?;
        }
        position += commit.events.len() as u64;
    }
    Ok(())
}

/// Each client count in turn, `commands` per level.
async fn writes(
    data: &DataArgs,
    via_http: &str,
    jwt_secret: &Secret,
    clients: Vec<usize>,
    commands: usize,
    level_time: Duration,
    first_index: u64,
) -> anyhow::Result<()> {
    use crate::measure::writes;
    let dataset = crate::generate(data.config()?)?;
    let keys = JwtKeys::new(jwt_secret);
    let workload = Arc::new(writes::Workload::new(via_http, &keys, &dataset)?);
    let client = reqwest::Client::new();
    let completions = clients.len() * (commands / 10 + 1);
    workload
        .prepare_completions(&client, completions, writes::PREPARE_SEED + first_index)
        .await
        .context("preparing started jobs to complete")?;
    let mut first = first_index;
    for concurrency in clients {
        let level =
            writes::run_level(workload.clone(), concurrency, commands, level_time, first).await;
        let stats = &level.commands;
        println!(
            "{concurrency:>3} clients: {:.1} commands/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} done, {} errors, {:.1} events/s",
            stats.per_second, stats.p50_ms, stats.p99_ms, stats.max_ms, stats.samples, stats.errors, level.events_per_second
        );
        first += commands as u64;
    }
    Ok(())
}

/// The lag at `rate` commands per second for `duration`, printed.
async fn lag(
    data: &DataArgs,
    via_http: &str,
    query_url: &str,
    jwt_secret: &Secret,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<()> {
    let dataset = crate::generate(data.config()?)?;
    let keys = JwtKeys::new(jwt_secret);
    let workload = Arc::new(crate::measure::writes::Workload::new(
        via_http, &keys, &dataset,
    )?);
    let query_url = query_url.trim_end_matches('/');
    let lag = crate::measure::projection::steady_lag(workload, query_url, rate, duration).await?;
    let line = |what: &str, stats: &crate::measure::Stats| {
        println!(
            "{what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} samples, {} without",
            stats.p50_ms, stats.p99_ms, stats.max_ms, stats.samples, stats.errors
        )
    };
    println!(
        "{} commands at {:.1} commands/s",
        lag.commands, lag.commands_per_second
    );
    line("accepted → visible through the query API", &lag.lag);
    if let Some(pushed) = &lag.pushed {
        line("accepted → received on the event stream", pushed);
    }
    Ok(())
}

async fn load(
    data: &DataArgs,
    connection: &platform::config::ConnectionArgs,
    no_publish: bool,
) -> anyhow::Result<()> {
    let dataset = crate::generate(data.config()?)?;
    let (commits, snapshots) = crate::decide::decide_with_snapshots(data.seed, &dataset.ops)?;
    let client = events::store::connect_client(&connection.mongodb_uri, "bench").await?;
    let store = events::EventStore::open(client.database(&connection.mongodb_db)).await?;
    let empty = store.event_at(1).await?.is_none();
    anyhow::ensure!(
        empty,
        "database {} already holds events; load needs an empty store",
        connection.mongodb_db
    );
    let bus = if no_publish {
        None
    } else {
        Some(crate::loader::PublishTo {
            client: events::bus::connect_nats(&connection.nats_url, "bench").await?,
            config: connection.bus_config(),
            store_id: store.identity().to_owned(),
        })
    };
    let stats = crate::loader::load(&store, bus, &commits, &snapshots, 1).await?;
    println!("{}", serde_json::to_string_pretty(&stats)?);
    Ok(())
}

async fn baseline_server(
    data: &DataArgs,
    mongodb_uri: &str,
    db: &str,
    listen: std::net::SocketAddr,
    jwt_secret: &Secret,
    fill: bool,
) -> anyhow::Result<()> {
    let config = data.config()?;
    let client = events::store::connect_client(mongodb_uri, "bench-baseline").await?;
    let database = client.database(db);
    if fill {
        database
            .drop()
            .await
            .context("dropping the baseline database")?;
        let dataset = crate::generate(config.clone())?;
        crate::baseline::fill(
            &database,
            crate::baseline::fill::fold(&dataset.ops, &config.time_zone),
        )
        .await?;
    }
    let state = crate::baseline::server::BaselineState {
        database,
        time_zone: config.time_zone,
        auth: Authenticator::new(
            JwtKeys::new(jwt_secret),
            Accounts::trusting_tokens(),
            RateLimits::unlimited(),
        ),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    crate::baseline::server::serve(state, listener, platform::shutdown::on_signals()).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Cmd};

    #[test]
    fn a_run_takes_the_projectors_flush_bound_as_a_named_flag() {
        let cli = Cli::try_parse_from([
            "bench",
            "run",
            "--size",
            "l",
            "--projector-flush-docs",
            "100000",
        ])
        .expect("the flag parses");
        let Cmd::Run(args) = cli.command else {
            panic!("not a run: {:?}", cli.command);
        };
        assert_eq!(args.projector_flush_docs, Some(100_000));
        assert!(Cli::try_parse_from(["bench", "run", "100000"]).is_err());
    }
}
