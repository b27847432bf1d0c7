//! Writes decided commits straight into the event store through its bulk import
//! (`events::EventLog::import`: commits, the global log with dense positions 1, 2, 3…, and heads
//! with each stream's final state as its snapshot), then publishes every event on JetStream in
//! position order, as the relay would have. The result is indistinguishable from a store the
//! command API and relay filled, only ~50× faster to produce.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use events::store::{BulkImport, ImportedCommit, Snapshot};
use events::{Bus, BusConfig, EventEnvelope, EventLog, EventMetadata, NewEvent};

use crate::decide::Commit;

/// Commits per import batch and events per publish batch.
const BATCH: usize = 1_000;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LoadStats {
    pub commits: usize,
    pub events: u64,
    pub insert_seconds: f64,
    pub publish_seconds: f64,
}

/// Where [`load`] publishes what it loaded: a JetStream stream, as events of the store
/// named `store_id` (its [`events::EventStore::identity`]).
pub struct PublishTo {
    pub client: async_nats::Client,
    pub config: BusConfig,
    pub store_id: String,
}

/// Loads `commits` into `store`, which must be empty (positions start at `start_position`),
/// then publishes them on `bus` (if given) in position order.
pub async fn load<L: EventLog>(
    store: &L,
    bus: Option<PublishTo>,
    commits: &[Commit],
    snapshots: &HashMap<String, Snapshot>,
    start_position: u64,
) -> anyhow::Result<LoadStats> {
    let started = Instant::now();
    let mut import = store.import(start_position);
    for chunk in commits.chunks(BATCH) {
        let batch: Vec<ImportedCommit> = chunk.iter().map(imported).collect();
        import
            .write(&batch)
            .await
            .context("importing commits into the event store")?;
    }
    let next = import
        .finish(snapshots)
        .await
        .context("writing the imported streams' heads")?;
    let insert_seconds = started.elapsed().as_secs_f64();

    let published = Instant::now();
    if let Some(bus) = bus {
        publish(bus, commits, start_position).await?;
    }
    Ok(LoadStats {
        commits: commits.len(),
        events: next - start_position,
        insert_seconds,
        publish_seconds: published.elapsed().as_secs_f64(),
    })
}

/// `commit` as the store imports it; ids derived from its first event id, so that a data set
/// loads the same way every time.
fn imported(commit: &Commit) -> ImportedCommit {
    let first_event = commit.events[0].event_id.as_u128();
    ImportedCommit {
        stream: commit.stream.clone(),
        first_version: commit.first_version,
        events: commit
            .events
            .iter()
            .map(|event| NewEvent {
                event_id: event.event_id,
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version,
                occurred_at: event.occurred_at,
                payload: event.payload.clone(),
            })
            .collect(),
        metadata: EventMetadata {
            correlation_id: uuid::Uuid::from_u128(first_event ^ 1).to_string(),
            causation_id: None,
            actor: commit.actor.clone(),
            traceparent: None,
        },
        append_id: uuid::Uuid::from_u128(first_event ^ 2),
        recorded_at: commit.occurred_at,
    }
}

/// The envelopes of `commit` as the relay publishes them.
pub fn envelopes(commit: &Commit, first_position: u64) -> anyhow::Result<Vec<EventEnvelope>> {
    imported(commit)
        .envelopes(first_position)
        .context("encoding a generated commit")
}

async fn publish(to: PublishTo, commits: &[Commit], start_position: u64) -> anyhow::Result<()> {
    let bus = Bus::new(to.client, to.config);
    bus.ensure_stream()
        .await
        .context("creating the JetStream stream")?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut next = start_position;
    for commit in commits {
        batch.extend(envelopes(commit, next)?);
        next += commit.events.len() as u64;
        if batch.len() >= BATCH {
            publish_batch(&bus, &to.store_id, &batch).await?;
            batch.clear();
        }
    }
    publish_batch(&bus, &to.store_id, &batch).await
}

async fn publish_batch(bus: &Bus, store_id: &str, batch: &[EventEnvelope]) -> anyhow::Result<()> {
    for attempt in 1..=5 {
        match bus.publish(store_id, batch).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 => {
                tracing::warn!(%error, attempt, "publish failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(error) => return Err(error).context("publishing to JetStream"),
        }
    }
    Ok(())
}
