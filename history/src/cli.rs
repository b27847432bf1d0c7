//! The command line: subcommands, their arguments, and running them.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use events::EventStore;
use indicatif::{ProgressBar, ProgressStyle};
use platform::config::{ConnectionArgs, TelemetryArgs};

use crate::export::{self, ExportOptions, Format};
use crate::filter::{Filter, FilterArgs};
use crate::show::{self, Point};
use crate::stats::{self, StatsOptions};
use crate::time::{parse_time, TimeRange};
use crate::verify::{self, VerifyOptions};
use crate::HistoryError;

/// Export, inspect, count and verify the SimplePro event history.
///
/// Reads the event store in MongoDB (FerretDB locally) and never writes to it. Times are
/// RFC 3339 (2026-11-25T10:00:00Z) or dates (2026-11-25 = start of that day, UTC); time
/// ranges select by the time an event was recorded, --from inclusive, --to exclusive.
/// Exit codes: 0 ok, 1 failure or violations found, 2 bad input.
#[derive(Debug, Parser)]
#[command(name = "history", version)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// IANA time zone of the business, which events of old schema versions are read in (the
    /// services' SIMPLEPRO_TIMEZONE).
    #[arg(
        long,
        env = "SIMPLEPRO_TIMEZONE",
        default_value = "America/New_York",
        global = true
    )]
    pub business_timezone: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write events in position order as JSON Lines or CSV (resumable with --after-position).
    Export(ExportArgs),
    /// Print one aggregate's events and its state, now or at a past version or time.
    Show(ShowArgs),
    /// Count events per type, per aggregate type and per day.
    Stats(StatsArgs),
    /// Check the store's invariants; exits 1 if any is violated.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format: jsonl (one event envelope per line) or csv.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Write to this file (created complete or not at all); standard output if absent.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Only events recorded at or after this time.
    #[arg(long)]
    pub from: Option<String>,
    /// Only events recorded before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Start after this position (the last position of an earlier export, to resume).
    #[arg(long, default_value_t = 0)]
    pub after_position: u64,
    /// Stop at this position (inclusive).
    #[arg(long)]
    pub until_position: Option<u64>,
    /// Only events of this type (repeatable), e.g. --type JobScheduled --type JobCompleted.
    #[arg(long = "type", value_name = "TYPE")]
    pub event_types: Vec<String>,
    /// Only events of this aggregate type (customer, job, user, crew_member, thread).
    #[arg(long)]
    pub aggregate_type: Option<String>,
    /// Only events of the aggregate with this id.
    #[arg(long)]
    pub aggregate_id: Option<String>,
    /// No progress bar and no summary line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Events per database round trip.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
    /// Keep message text. Without it the body of every `MessagePosted` is replaced by
    /// `[redacted]` (with `body_redacted: true`): messages are private to their threads.
    #[arg(long)]
    pub include_message_bodies: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// customer, job, user, crew_member or thread.
    pub aggregate_type: String,
    /// The aggregate's id (a UUID).
    pub aggregate_id: String,
    /// The state as it was at this time (events recorded at or before it).
    #[arg(long, conflicts_with = "at_version")]
    pub as_of: Option<String>,
    /// The state right after this version.
    #[arg(long)]
    pub at_version: Option<u64>,
    /// Keep message text; without it a thread's `MessagePosted` bodies show as `[redacted]`.
    #[arg(long)]
    pub include_message_bodies: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only events recorded at or after this time.
    #[arg(long)]
    pub from: Option<String>,
    /// Only events recorded before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// IANA time zone for the per-day counts; UTC if neither this nor SIMPLEPRO_TIMEZONE is set.
    #[arg(long, env = "SIMPLEPRO_TIMEZONE")]
    pub timezone: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Violations listed per check (all are counted).
    #[arg(long, default_value_t = 20)]
    pub max_shown: usize,
    /// Seconds a commit may wait for publication before it counts as a violation.
    #[arg(long, default_value_t = 60)]
    pub grace_seconds: u64,
}

/// What a successful run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// `verify` found violations.
    Violations,
}

/// Checks every argument before connecting, then runs the subcommand.
pub async fn run(cli: Cli) -> Result<Outcome, HistoryError> {
    let prepared = prepare(&cli.command)?;
    let codec = BusinessTimeZone::parse(&cli.business_timezone)
        .map(Codec::for_business)
        .map_err(|e| HistoryError::input(format!("--business-timezone: {}", e.reason)))?;
    let store = EventStore::connect(
        &cli.connection.mongodb_uri,
        &cli.connection.mongodb_db,
        "history",
    )
    .await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let outcome = match prepared {
        Prepared::Export(options, output, quiet) => {
            run_export(&store, &codec, &options, output.as_deref(), quiet, &mut out).await?;
            Outcome::Ok
        }
        Prepared::Show(kind, id, point, include_message_bodies) => {
            let mut shown = show::load(&store, &codec, &kind, &id, point).await?;
            if !include_message_bodies {
                shown.redact_private_text();
            }
            show::render(&shown, &mut out)
                .map_err(HistoryError::io("writing to standard output"))?;
            Outcome::Ok
        }
        Prepared::Stats(options, json) => {
            let counted = stats::collect(&store, &options).await?;
            if json {
                stats::render_json(&counted, &mut out)
            } else {
                stats::render_table(&counted, &mut out)
            }
            .map_err(HistoryError::io("writing to standard output"))?;
            Outcome::Ok
        }
        Prepared::Verify(options) => {
            let report = verify::verify(&store, &codec, &options).await?;
            report
                .render(&mut out)
                .map_err(HistoryError::io("writing to standard output"))?;
            if report.is_clean() {
                Outcome::Ok
            } else {
                Outcome::Violations
            }
        }
    };
    out.flush()
        .map_err(HistoryError::io("writing to standard output"))?;
    Ok(outcome)
}

/// Exports to the file, or else to `out`, with a progress bar when a person is watching.
async fn run_export(
    store: &EventStore,
    codec: &Codec,
    options: &ExportOptions,
    output: Option<&Path>,
    quiet: bool,
    out: &mut impl Write,
) -> Result<(), HistoryError> {
    let interactive = !quiet && std::io::stderr().is_terminal();
    let progress = if interactive {
        progress_bar(store, options).await?
    } else {
        ProgressBar::hidden()
    };
    let summary = match output {
        Some(path) => export::export_to_file(store, codec, options, path, &progress).await?,
        None => export::export(store, codec, options, out, &progress).await?,
    };
    progress.finish_and_clear();
    if !quiet {
        eprintln!("{summary}");
    }
    Ok(())
}

enum Prepared {
    Export(ExportOptions, Option<PathBuf>, bool),
    Show(String, String, Point, bool),
    Stats(StatsOptions, bool),
    Verify(VerifyOptions),
}

fn prepare(command: &Command) -> Result<Prepared, HistoryError> {
    Ok(match command {
        Command::Export(args) => {
            let filter = Filter::parse(&FilterArgs {
                from: args.from.clone(),
                to: args.to.clone(),
                after_position: args.after_position,
                until_position: args.until_position,
                event_types: args.event_types.clone(),
                aggregate_type: args.aggregate_type.clone(),
                aggregate_id: args.aggregate_id.clone(),
            })?;
            let options = ExportOptions {
                format: args.format,
                filter,
                batch_size: args.batch_size as usize,
                include_message_bodies: args.include_message_bodies,
            };
            Prepared::Export(options, args.output.clone(), args.quiet)
        }
        Command::Show(args) => {
            crate::parse_aggregate_type(&args.aggregate_type)?;
            let point = match (&args.as_of, args.at_version) {
                (Some(time), _) => Point::AsOf(parse_time(time)?),
                (None, Some(version)) => Point::AtVersion(version),
                (None, None) => Point::Latest,
            };
            Prepared::Show(
                args.aggregate_type.clone(),
                args.aggregate_id.clone(),
                point,
                args.include_message_bodies,
            )
        }
        Command::Stats(args) => {
            let timezone = args
                .timezone
                .as_deref()
                .map(|name| {
                    BusinessTimeZone::parse(name)
                        .map_err(|_| HistoryError::input(format!("unknown time zone `{name}`")))
                })
                .transpose()?;
            Prepared::Stats(
                StatsOptions {
                    time: TimeRange::parse(args.from.as_deref(), args.to.as_deref())?,
                    timezone,
                    batch_size: 5_000,
                },
                args.json,
            )
        }
        Command::Verify(args) => Prepared::Verify(VerifyOptions {
            max_shown: args.max_shown,
            publish_grace: Duration::from_secs(args.grace_seconds),
            ..VerifyOptions::default()
        }),
    })
}

/// A bar over the positions the export will read; the total is the log's estimated size.
async fn progress_bar(
    store: &EventStore,
    options: &ExportOptions,
) -> Result<ProgressBar, HistoryError> {
    let highest = export::estimated_log_size(store).await?;
    let end = options
        .filter
        .until_position
        .map_or(highest, |until| until.min(highest));
    let bar = ProgressBar::new(end.saturating_sub(options.filter.after_position));
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style);
    }
    Ok(bar)
}
