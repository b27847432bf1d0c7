//! The fault suite: the three services as processes on a private nats-server and database
//! server, under a steady load of mixed commands and polling readers, through five faults one
//! after the other (NATS stopped, projector killed mid-flush, command API aborted between
//! append and publish, database server killed, projector paused). After each, once quiet, it
//! counts what was accepted, stored, published and projected, compares the read models with a
//! full replay, and prints a table; any loss, duplicate or difference fails it.
//!
//! The cluster test does the same with three NATS nodes (the events stream replicated three
//! times) and two instances of each service, killing one of each kind in turn; it also
//! checks that both query APIs answer what a query API without a cache answers (their caches
//! were invalidated) and reports the p99 of commands and reads through each kill.
//!
//! `SIMPLEPRO_FAULTS=full` (what `./dev faults` runs) takes the documented durations and at
//! least 100 commands/s; the default is a short version for `./dev test`.

mod load;
mod measure;
mod scenarios;
mod system;

use std::time::{Duration, Instant};

use load::{Load, LoadShape, Tally};
use measure::{Counts, Observer, Verified};
use scenarios::Scenario;
use system::System;
use uuid::Uuid;

/// Durations and load of one version of the suite.
pub(crate) struct Mode {
    pub(crate) name: &'static str,
    pub(crate) shape: LoadShape,
    /// Load before the fault.
    pub(crate) lead_in: Duration,
    /// Load after the fault is healed (longer when the backlog takes longer to drain).
    pub(crate) lead_out: Duration,
    pub(crate) nats_down: Duration,
    pub(crate) database_down: Duration,
    pub(crate) pause: Duration,
    /// How long a killed instance of the cluster stays down.
    pub(crate) instance_down: Duration,
    /// A fault's backlog is drained within this after healing, or the suite fails.
    pub(crate) converge_bound: Duration,
}

impl Mode {
    fn from_env() -> Mode {
        match std::env::var("SIMPLEPRO_FAULTS").as_deref() {
            Ok("full") => Mode {
                name: "full",
                shape: LoadShape {
                    // Many clients, so that the rate holds while a few wait on slow answers.
                    writers: 16,
                    commands_per_second: 100.0,
                    readers: 3,
                    read_interval: Duration::from_millis(50),
                },
                lead_in: Duration::from_secs(5),
                lead_out: Duration::from_secs(10),
                nats_down: Duration::from_secs(10),
                database_down: Duration::from_secs(10),
                pause: Duration::from_secs(30),
                instance_down: Duration::from_secs(10),
                converge_bound: Duration::from_secs(180),
            },
            _ => Mode {
                name: "short",
                shape: LoadShape {
                    writers: 4,
                    commands_per_second: 30.0,
                    readers: 2,
                    read_interval: Duration::from_millis(100),
                },
                lead_in: Duration::from_secs(2),
                lead_out: Duration::from_secs(3),
                nats_down: Duration::from_secs(3),
                database_down: Duration::from_secs(3),
                pause: Duration::from_secs(5),
                instance_down: Duration::from_secs(3),
                converge_bound: Duration::from_secs(90),
            },
        }
    }
}

/// One scenario's line of the table.
struct Row {
    label: String,
    tally: Tally,
    counts: Counts,
    verified: Result<Verified, String>,
    converged_in: Option<Duration>,
    quiet: bool,
    fault: Result<(), String>,
    /// Whether every query API answered as the one without a cache (cluster only).
    readers_agree: Option<Result<(), String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_command_is_lost_duplicated_or_projected_wrong_through_five_faults() {
    suite(
        "fault-suite",
        system::Topology::ONE_OF_EACH,
        &scenarios::ALL,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_loses_nothing_when_one_nats_node_and_one_instance_of_each_service_die() {
    let topology = system::Topology {
        nats_nodes: 3,
        instances: 2,
        reference_reader: true,
    };
    suite("cluster", topology, &scenarios::CLUSTER).await;
}

/// Starts the system, runs `scenarios` one after the other, prints the table and fails on any
/// loss, duplicate or difference.
async fn suite(name: &str, topology: system::Topology, scenarios: &[Scenario]) {
    if !binaries_present() {
        return;
    }
    let mode = Mode::from_env();
    let log_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-logs"));
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir).expect("create the log folder");
    let started = Instant::now();
    let mut system = System::start(&log_dir, topology).await;
    let observer = Observer::connect(&system).await;
    let mut accepted = Vec::new();
    let mut rows = Vec::new();
    for scenario in scenarios {
        let row = run(&mut system, &observer, &mode, *scenario, &mut accepted).await;
        println!("{}", table(&mode, std::slice::from_ref(&row)));
        rows.push(row);
    }
    let table = table(&mode, &rows);
    println!(
        "\n{name} ({}), {:.0} s:\n\n{table}",
        mode.name,
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::write(log_dir.join("table.md"), &table);
    let failures: Vec<String> = rows.iter().flat_map(failures).collect();
    assert!(
        failures.is_empty(),
        "{name} failed (service logs in {}):\n{}\n\n{table}",
        log_dir.display(),
        failures.join("\n")
    );
}

/// Load, fault, healing, quiet, counts: one scenario.
async fn run(
    system: &mut System,
    observer: &Observer,
    mode: &Mode,
    scenario: Scenario,
    accepted: &mut Vec<Uuid>,
) -> Row {
    scenario.prepare(system, mode).await;
    let load = Load::start(system, mode.shape);
    tokio::time::sleep(mode.lead_in).await;
    let (fault, healed) = match scenario.inject_and_heal(system, mode).await {
        Ok(healed) => (Ok(()), healed),
        Err(error) => (Err(error), Instant::now()),
    };
    let converged_in = observer.converge(system, healed, mode.converge_bound).await;
    tokio::time::sleep(mode.lead_out.saturating_sub(healed.elapsed())).await;
    let tally = load.stop().await;
    accepted.extend(&tally.event_ids);
    let quiet = observer.wait_quiet(system, mode.converge_bound).await;
    let counts = observer.count(system, accepted).await;
    let verified = tokio::task::block_in_place(|| measure::rebuild_verify(system));
    let readers_agree = match system.reference_reader {
        Some(_) => Some(measure::readers_agree(system, counts.last_position).await),
        None => None,
    };
    Row {
        label: scenario.label(mode),
        tally,
        counts,
        verified,
        converged_in,
        quiet,
        fault,
        readers_agree,
    }
}

/// Whether the services' binaries are there; without them the suite is skipped, except on CI.
fn binaries_present() -> bool {
    let dir = system::bin_dir();
    let missing: Vec<_> = system::BINARIES
        .iter()
        .filter(|binary| !dir.join(binary).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "the fault suite needs {missing:?} in {}: `./dev faults` (or `./dev test`) builds them",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    println!("skipping the fault suite: {message}");
    false
}

fn table(mode: &Mode, rows: &[Row]) -> String {
    let mut table = String::from(
        "| scenario | sent/s | 2xx | reads ok / failed | command p99 | read p99 | lost | stored \
         | published | duplicates | projected | verify differences | caches | converged in |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let verify = match &row.verified {
            Ok(verified) => verified.differences.to_string(),
            Err(_) => "failed".into(),
        };
        let converged = match row.converged_in {
            Some(time) => format!("{:.1} s", time.as_secs_f64()),
            None => format!("not in {} s", mode.converge_bound.as_secs()),
        };
        let caches = match &row.readers_agree {
            None => "–",
            Some(Ok(())) => "equal",
            Some(Err(_)) => "stale",
        };
        let (tally, counts) = (&row.tally, &row.counts);
        table.push_str(&format!(
            "| {} | {:.0} | {} | {} / {} | {:.0} ms | {:.0} ms | {} | {} | {} | {} | {} | {verify} \
             | {caches} | {converged} |\n",
            row.label,
            tally.sent as f64 / tally.seconds,
            tally.accepted,
            tally.reads_ok,
            tally.reads_failed,
            Tally::p99_ms(&tally.command_latencies),
            Tally::p99_ms(&tally.read_latencies),
            counts.lost,
            counts.stored,
            counts.published,
            counts.duplicates,
            counts.projected,
        ));
    }
    table
}

/// What is wrong with a scenario's outcome, one sentence each.
fn failures(row: &Row) -> Vec<String> {
    let (c, label) = (&row.counts, &row.label);
    let checks = [
        (
            row.tally.accepted == 0,
            "no command was answered 2xx, so it shows nothing".to_owned(),
        ),
        (
            row.converged_in.is_none(),
            "the fault's backlog was not drained in time".into(),
        ),
        (
            !row.quiet,
            "the outbox or the projector did not come to rest".into(),
        ),
        (
            c.lost > 0,
            format!("{} events of commands answered 2xx are not stored", c.lost),
        ),
        (
            c.stored != c.last_position,
            format!("{} events up to position {}", c.stored, c.last_position),
        ),
        (
            c.unpublished > 0,
            format!("{} stored events are not on JetStream", c.unpublished),
        ),
        (
            c.duplicates > 0,
            format!("{} duplicate messages on JetStream", c.duplicates),
        ),
        (
            c.projected != c.stored,
            format!("projected to {} of {} events", c.projected, c.stored),
        ),
    ];
    let mut failures: Vec<String> = checks
        .into_iter()
        .filter(|(failed, _)| *failed)
        .map(|(_, why)| format!("{label}: {why}"))
        .collect();
    if let Err(error) = &row.fault {
        failures.push(format!("{label}: {error}"));
    }
    if let Some(Err(error)) = &row.readers_agree {
        failures.push(format!("{label}: {error}"));
    }
    match &row.verified {
        Ok(v) if v.differences > 0 => failures.push(format!(
            "{label}: {} read-model documents differ from a full replay:\n{}",
            v.differences, v.output
        )),
        Ok(_) => {}
        Err(error) => failures.push(format!("{label}: {error}")),
    }
    failures
}
