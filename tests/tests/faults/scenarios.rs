//! The faults, each brought about under load and healed: how, and when it was healed. The
//! first five hit the single-instance system; the last four kill one instance of each kind in
//! the cluster (three NATS nodes, two of each service).

use std::time::{Duration, Instant};

use tokio::task::block_in_place;

use crate::load::Dice;
use crate::system::System;
use crate::Mode;

/// The command API's fault point (`events` feature `fault-points`): abort at the N-th publish.
const ABORT_BEFORE_PUBLISH: &str = "SIMPLEPRO_FAULT_ABORT_BEFORE_PUBLISH";
/// What the fault point writes to standard error as it aborts.
const ABORT_MESSAGE: &str = "fault point: aborting between append and publish";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Scenario {
    NatsStopped,
    ProjectorKilledMidFlush,
    CommandApiAbortedBeforePublish,
    DatabaseKilled,
    ProjectorPaused,
    NatsNodeKilled,
    CommandApiKilled,
    QueryApiKilled,
    ProjectorKilled,
}

/// One instance of each kind killed in turn, in the cluster.
pub(crate) const CLUSTER: [Scenario; 4] = [
    Scenario::NatsNodeKilled,
    Scenario::CommandApiKilled,
    Scenario::QueryApiKilled,
    Scenario::ProjectorKilled,
];

pub(crate) const ALL: [Scenario; 5] = [
    Scenario::NatsStopped,
    Scenario::ProjectorKilledMidFlush,
    Scenario::CommandApiAbortedBeforePublish,
    Scenario::DatabaseKilled,
    Scenario::ProjectorPaused,
];

impl Scenario {
    pub(crate) fn label(&self, mode: &Mode) -> String {
        match self {
            Scenario::NatsStopped => format!("NATS stopped {} s", mode.nats_down.as_secs()),
            Scenario::ProjectorKilledMidFlush => "projector SIGKILL mid-flush".into(),
            Scenario::CommandApiAbortedBeforePublish => {
                "command-api abort between append and publish".into()
            }
            Scenario::DatabaseKilled => {
                format!("database SIGKILL, {} s down", mode.database_down.as_secs())
            }
            Scenario::ProjectorPaused => {
                format!("projector paused {} s", mode.pause.as_secs())
            }
            Scenario::NatsNodeKilled => {
                format!(
                    "NATS node 1 of 3 SIGKILL, {} s down",
                    mode.instance_down.as_secs()
                )
            }
            Scenario::CommandApiKilled => format!(
                "command-api 1 of 2 SIGKILL, {} s down",
                mode.instance_down.as_secs()
            ),
            Scenario::QueryApiKilled => format!(
                "query-api 1 of 2 SIGKILL, {} s down",
                mode.instance_down.as_secs()
            ),
            Scenario::ProjectorKilled => format!(
                "projector 1 of 2 SIGKILL, {} s down",
                mode.instance_down.as_secs()
            ),
        }
    }

    /// What has to happen before the load starts: the command API restarted with its fault
    /// point armed to go off during the load.
    pub(crate) async fn prepare(&self, system: &mut System, mode: &Mode) {
        if let Scenario::CommandApiAbortedBeforePublish = self {
            let publishes = (mode.shape.commands_per_second * mode.lead_in.as_secs_f64()) as u64;
            let at = (publishes / 2).max(5).to_string();
            let http = system.http.clone();
            let command_api = system.command_api();
            block_in_place(|| {
                command_api.process.stop();
                command_api.process.set_env(ABORT_BEFORE_PUBLISH, Some(&at));
                command_api.process.restart();
            });
            command_api.wait_ready(&http).await;
        }
    }

    /// Brings the fault about and heals it; the instant it was healed, or what went wrong.
    pub(crate) async fn inject_and_heal(
        &self,
        system: &mut System,
        mode: &Mode,
    ) -> Result<Instant, String> {
        match self {
            Scenario::NatsStopped => {
                block_in_place(|| system.nats.nodes[0].stop());
                tokio::time::sleep(mode.nats_down).await;
                block_in_place(|| system.nats.nodes[0].restart());
                Ok(Instant::now())
            }
            Scenario::ProjectorKilledMidFlush => kill_projector_mid_flush(system).await,
            Scenario::CommandApiAbortedBeforePublish => abort_command_api(system).await,
            Scenario::DatabaseKilled => {
                block_in_place(|| system.database.kill9());
                tokio::time::sleep(mode.database_down).await;
                block_in_place(|| system.database.restart());
                Ok(Instant::now())
            }
            Scenario::ProjectorPaused => {
                system.projector().process.pause();
                tokio::time::sleep(mode.pause).await;
                system.projector().process.resume();
                Ok(Instant::now())
            }
            Scenario::NatsNodeKilled => {
                let node = &mut system.nats.nodes[0];
                block_in_place(|| node.stop());
                tokio::time::sleep(mode.instance_down).await;
                block_in_place(|| node.restart());
                Ok(Instant::now())
            }
            Scenario::CommandApiKilled => {
                let http = system.http.clone();
                kill_for(&mut system.command_apis[0], &http, mode.instance_down).await
            }
            Scenario::QueryApiKilled => {
                let http = system.http.clone();
                kill_for(&mut system.query_apis[0], &http, mode.instance_down).await
            }
            Scenario::ProjectorKilled => {
                let http = system.http.clone();
                kill_for(&mut system.projectors[0], &http, mode.instance_down).await
            }
        }
    }
}

/// SIGKILLs `service`, keeps it down for `down`, starts it again and waits until it is ready.
async fn kill_for(
    service: &mut crate::system::Service,
    http: &reqwest::Client,
    down: Duration,
) -> Result<Instant, String> {
    block_in_place(|| service.process.kill9());
    tokio::time::sleep(down).await;
    block_in_place(|| service.process.restart());
    let healed = Instant::now();
    service.wait_ready(http).await;
    Ok(healed)
}

/// Kills the projector with SIGKILL a few milliseconds after its checkpoint moved: it has just
/// written one batch and is likely writing the next. Best effort: a flush is not observable
/// from outside.
async fn kill_projector_mid_flush(system: &mut System) -> Result<Instant, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = system.checkpoint().await.map(|c| c.position);
    loop {
        let now = system.checkpoint().await.map(|c| c.position);
        if now.is_some() && now > before {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the projector's checkpoint stayed at {before:?} for 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(Dice::new().below(40) as u64)).await;
    let http = system.http.clone();
    let projector = system.projector();
    block_in_place(|| projector.process.kill9());
    tokio::time::sleep(Duration::from_millis(500)).await;
    block_in_place(|| projector.process.restart());
    let healed = Instant::now();
    projector.wait_ready(&http).await;
    Ok(healed)
}

/// Waits for the command API to abort at its fault point, then starts it again without it.
async fn abort_command_api(system: &mut System) -> Result<Instant, String> {
    let http = system.http.clone();
    let command_api = system.command_api();
    let ended = block_in_place(|| command_api.process.wait_exit(Duration::from_secs(60)));
    command_api.process.set_env(ABORT_BEFORE_PUBLISH, None);
    let log = std::fs::read_to_string(command_api.process.log()).unwrap_or_default();
    let outcome = match ended {
        Some(_) if log.contains(ABORT_MESSAGE) => Ok(()),
        Some(status) => Err(format!(
            "command-api ended with {status}, not at its fault point"
        )),
        None => {
            block_in_place(|| command_api.process.stop());
            Err("command-api did not reach its fault point within 60 s: \
                 was it built with --features fault-points?"
                .to_owned())
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    block_in_place(|| command_api.process.restart());
    let healed = Instant::now();
    command_api.wait_ready(&http).await;
    outcome.map(|()| healed)
}
