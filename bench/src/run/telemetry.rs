//! `bench overhead`: the request-telemetry section of `bench run` alone, on the read models an
//! earlier run of the same size left in MongoDB, with as many rounds as asked.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use platform::auth::JwtKeys;
use platform::config::Secret;

use super::soak::load_average;
use super::{environment, listen_args, telemetry_overhead, RunArgs};
use crate::cli::DataArgs;
use crate::measure::{writes, REQUEST_TIMEOUT};
use crate::services::{self, Service};

#[derive(Debug, Clone, Args)]
pub struct OverheadArgs {
    /// The size of the `bench run` whose read models are read (its database `bench_<size>`).
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the services' logs and wrk's script go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    #[command(flatten)]
    pub services: services::ServicesArgs,
    /// Alternating rounds: `wrk` on the query API with telemetry, then on the one without.
    #[arg(long, default_value_t = 6)]
    pub rounds: usize,
    /// Length of each `wrk` run, in seconds.
    #[arg(long, default_value_t = 8)]
    pub seconds: u64,
    /// Both query APIs with telemetry: the figure is then the measure's own noise and bias.
    #[arg(long)]
    pub control: bool,
}

/// Starts a query API with request telemetry and one without on the read models of the size,
/// measures both in alternation and prints each round, the medians and the overhead.
pub async fn overhead(args: OverheadArgs) -> anyhow::Result<()> {
    let config = args.data.config()?;
    let size = config.size;
    std::fs::create_dir_all(&args.out).context("creating the output directory")?;
    services::ensure_local_servers(&std::env::current_dir()?).await?;
    crate::measure::wrk::ensure_installed().await?;
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let env = environment(
        &RunArgs::sharing(&args.data, &args.out, &args.services),
        size,
        &tag[tag.len() - 8..],
    );
    let keys = JwtKeys::new(&Secret::new(env.jwt_secret.clone()));
    let dataset = crate::generate(config)?;
    let reader = writes::reader(&keys, &dataset)?;
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let load_before = load_average();
    let port = services::free_port()?;
    let query = Service::start(
        &env,
        "query-api",
        "query-api",
        &listen_args(port),
        Some(port),
    )
    .await?;
    let measured = telemetry_overhead(
        &env,
        &client,
        &reader,
        &query,
        args.rounds,
        Duration::from_secs(args.seconds),
        &args.out,
        args.control,
    )
    .await;
    query.stop().await;
    let measured = measured.with_context(|| {
        format!(
            "measuring on the read models of {} (run `bench run --size {}` first)",
            env.database,
            size.as_str().to_lowercase()
        )
    })?;
    if args.control {
        println!(
            "Control: both query APIs have telemetry on; the \"off\" column is the second one.\n"
        );
    }
    println!(
        "{} on two warm query APIs ({}), `wrk -t2 -c64 -d{}s`, alternating, the order flipped every round; load average {} before, {} after.\n",
        measured.endpoint,
        env.database,
        args.seconds,
        load_before,
        load_average()
    );
    println!("| round | telemetry on, req/s | off, req/s | overhead |\n|---|---|---|---|");
    for (i, round) in measured.rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.1} % |",
            i + 1,
            round.with_telemetry,
            round.without_telemetry,
            (1.0 - round.with_telemetry / round.without_telemetry) * 100.0
        );
    }
    println!(
        "| median | {:.0} | {:.0} | **{:.1} %** |",
        measured.with_telemetry,
        measured.without_telemetry,
        measured.percent()
    );
    Ok(())
}
