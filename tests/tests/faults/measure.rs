//! What the suite counts once the system is quiet: the log in the event store, the messages on
//! JetStream, the projector's checkpoint, and a full replay compared with the live read models.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use bson::doc;
use events::store::ReadAllOptions;
use events::{Bus, BusConfig, EventStore};
use futures::StreamExt;
use uuid::Uuid;

use crate::system::System;

/// The suite's own connections to the store and the bus, beside the services'.
pub(crate) struct Observer {
    pub(crate) store: EventStore,
    pub(crate) bus: Bus,
}

/// The totals of the run so far, once quiet.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Events of commands answered 2xx that are not in the log.
    pub(crate) lost: usize,
    /// Events in the log.
    pub(crate) stored: u64,
    /// The log's last position (equal to `stored` when positions are dense).
    pub(crate) last_position: u64,
    /// Distinct events on JetStream.
    pub(crate) published: u64,
    /// Events in the log that are not on JetStream.
    pub(crate) unpublished: usize,
    /// Messages on JetStream beyond one per event.
    pub(crate) duplicates: u64,
    /// The projector's checkpoint: every read model has applied the log up to here.
    pub(crate) projected: u64,
}

impl Observer {
    pub(crate) async fn connect(system: &System) -> Observer {
        let store = EventStore::connect(
            &system.database_uri(),
            system.database_name(),
            "fault-suite",
        )
        .await
        .expect("the suite's event store connection");
        let nats = events::bus::connect_nats(&system.nats.urls(), "fault-suite")
            .await
            .expect("the suite's NATS connection");
        let config = BusConfig {
            stream_name: system.stream_name().to_owned(),
            ..BusConfig::default()
        };
        Observer {
            store,
            bus: Bus::new(nats, config),
        }
    }

    /// The last position the relay has sequenced, once the store answers.
    pub(crate) async fn sequenced_tail(&self) -> Option<u64> {
        events::relay::sequenced_tail(&self.store).await.ok()
    }

    /// Commits stored but not yet acknowledged by JetStream.
    async fn outbox_len(&self) -> Option<u64> {
        let outbox = self.store.database().collection::<bson::Document>("outbox");
        outbox.count_documents(doc! {}).await.ok()
    }

    /// Messages in the events stream (duplicates included), if NATS answers.
    pub(crate) async fn stream_messages(&self) -> Option<u64> {
        let name = &self.bus.config().stream_name;
        let mut stream = self.bus.jetstream().get_stream(name).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    }

    /// Waits until nothing is left to do: the outbox is empty and the projector's checkpoint
    /// is the log's tail, twice in a row half a second apart. False after `bound`.
    pub(crate) async fn wait_quiet(&self, system: &System, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut quiet_at = None;
        while Instant::now() < deadline {
            let tail = self.sequenced_tail().await;
            let outbox = self.outbox_len().await;
            let checkpoint = system.checkpoint().await;
            let quiet = matches!((tail, outbox, checkpoint),
                (Some(tail), Some(0), Some(c)) if c.position == tail && c.store_tail == tail);
            match (quiet, quiet_at) {
                (true, Some(at)) if Some(at) == tail => return true,
                (true, _) => quiet_at = tail,
                (false, _) => quiet_at = None,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    /// Waits until the backlog a fault left is drained while the load goes on: the projector
    /// has applied, and JetStream holds, as many events as the log had when the fault was
    /// healed. How long that took since `healed`, or `None` after `bound`.
    pub(crate) async fn converge(
        &self,
        system: &System,
        healed: Instant,
        bound: Duration,
    ) -> Option<Duration> {
        let deadline = healed + bound;
        let mut tail_at_healing = None;
        while Instant::now() < deadline {
            if tail_at_healing.is_none() {
                tail_at_healing = self.sequenced_tail().await;
            }
            if let Some(tail) = tail_at_healing {
                let projected = system.checkpoint().await.map(|c| c.position);
                let published = self.stream_messages().await;
                if projected >= Some(tail) && published >= Some(tail) {
                    return Some(healed.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Counts the log, the stream and the checkpoint; `accepted` are the event ids of every
    /// command answered 2xx so far.
    pub(crate) async fn count(&self, system: &System, accepted: &[Uuid]) -> Counts {
        let (log, last_position) = self.read_log().await;
        let (on_bus, messages) = self.read_stream().await;
        Counts {
            lost: accepted.iter().filter(|id| !log.contains(id)).count(),
            stored: log.len() as u64,
            last_position,
            published: on_bus.len() as u64,
            unpublished: log.difference(&on_bus).count(),
            duplicates: messages - on_bus.len() as u64,
            projected: system.checkpoint().await.map_or(0, |c| c.position),
        }
    }

    /// The event ids in the log and its last position.
    async fn read_log(&self) -> (HashSet<Uuid>, u64) {
        let mut batches = self.store.read_all(ReadAllOptions::default());
        let mut ids = HashSet::new();
        let mut last_position = 0;
        while let Some(batch) = batches.next().await {
            for event in batch.expect("reading the log") {
                last_position = last_position.max(event.position.unwrap_or(0));
                ids.insert(event.event_id);
            }
        }
        (ids, last_position)
    }

    /// The distinct event ids on JetStream and the number of messages they came in.
    async fn read_stream(&self) -> (HashSet<Uuid>, u64) {
        #[derive(serde::Deserialize)]
        struct Identified {
            event_id: Uuid,
        }
        let messages = self.stream_messages().await.expect("the stream's info");
        let name = &self.bus.config().stream_name;
        let stream = self.bus.jetstream().get_stream(name).await;
        let consumer = stream
            .expect("the events stream")
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("an ordered consumer");
        let mut delivered = consumer.messages().await.expect("the stream's messages");
        let mut ids = HashSet::new();
        for n in 0..messages {
            let next = tokio::time::timeout(Duration::from_secs(10), delivered.next()).await;
            let Ok(Some(Ok(message))) = next else {
                panic!("JetStream delivered {n} of its {messages} messages");
            };
            let event: Identified =
                serde_json::from_slice(&message.payload).expect("an event on the stream");
            ids.insert(event.event_id);
        }
        (ids, messages)
    }
}

/// What `projector rebuild --verify` found.
pub(crate) struct Verified {
    /// Documents that differ between a full replay and the live read models.
    pub(crate) differences: u64,
    /// The command's output (the differing documents among it).
    pub(crate) output: String,
}

/// Runs `projector rebuild --verify` against the system; an error says why it could not tell.
pub(crate) fn rebuild_verify(system: &System) -> Result<Verified, String> {
    let binary = crate::system::bin_dir().join("projector");
    let run = std::process::Command::new(&binary)
        .args(["rebuild", "--verify", "--drop-delay-secs", "1"])
        .envs(system.env())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    // "  verify: N equal, M different, K changed since (skipped)", one line per model.
    let reports: Vec<u64> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("verify: "))
        .filter_map(|rest| {
            rest.split(", ")
                .nth(1)?
                .strip_suffix(" different")?
                .parse()
                .ok()
        })
        .collect();
    let differences = reports.iter().sum();
    // It fails exactly when a model differs; anything else is a rebuild that did not finish.
    if reports.is_empty() || run.status.success() != (differences == 0) {
        return Err(format!(
            "rebuild --verify ended with {} after {} model reports:\n{output}",
            run.status,
            reports.len()
        ));
    }
    Ok(Verified {
        differences,
        output,
    })
}

/// The views every query API must answer alike once quiet.
const COMPARED_VIEWS: [&str; 5] = [
    "/v1/customers?limit=100",
    "/v1/jobs?limit=100",
    "/v1/dashboard?from=2030-03-01&to=2030-03-31",
    "/v1/calendar/week/2030-03-13",
    "/v1/me/unread-count",
];

/// Whether each query API answers the compared views as the query API without a cache does,
/// at `position`: a cache that missed an invalidation answers an older view.
pub(crate) async fn readers_agree(system: &System, position: u64) -> Result<(), String> {
    let reference = system
        .reference_reader
        .as_ref()
        .ok_or("the system has no reference reader")?;
    for view in COMPARED_VIEWS {
        let expected = view_data(system, &reference.base, view, position).await?;
        for reader in &system.query_apis {
            let answered = view_data(system, &reader.base, view, position).await?;
            if answered != expected {
                return Err(format!(
                    "{}{view} answered {answered}, the uncached reader {expected}",
                    reader.base
                ));
            }
        }
    }
    Ok(())
}

/// The `data` of a view read at `min_position`.
async fn view_data(
    system: &System,
    base: &str,
    view: &str,
    position: u64,
) -> Result<serde_json::Value, String> {
    let separator = if view.contains('?') { '&' } else { '?' };
    let url = format!("{base}{view}{separator}min_position={position}");
    let response = system
        .http
        .get(&url)
        .bearer_auth(&system.admin_token)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}: {body}"));
    }
    Ok(body["data"].clone())
}
