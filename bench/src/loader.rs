//! Writes decided commits straight into the event store: bulk inserts of `commits`, `events`
//! (the global log with dense positions 1, 2, 3…) and `heads` documents (with each stream's
//! final state as its snapshot) in the exact shapes of `events::store::docs`, the relay's
//! sequencer hint, and then publishes every event on
//! JetStream in position order, as the relay would have. The result is indistinguishable
//! from a store the command API and relay filled, only ~50× faster to produce.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, Bson, DateTime as BsonDateTime};
use chrono::{DateTime, Utc};
use events::store::{pack_state, Snapshot};
use events::{Bus, BusConfig, EventEnvelope, EventStore};
use futures::{StreamExt, TryStreamExt};
use mongodb::Database;
use serde::Serialize;

use crate::decide::Commit;

/// Mirrors `events::store::docs::CommitDoc`.
#[derive(Serialize)]
struct CommitDoc<'a> {
    #[serde(rename = "_id")]
    id: String,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    first_version: i64,
    last_version: i64,
    append_id: String,
    recorded_at: BsonDateTime,
    correlation_id: String,
    causation_id: Option<String>,
    actor: &'a str,
    idempotency_key: Option<String>,
    events: Vec<CommittedEvent>,
}

/// What a batch of inserts writes for each commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The commit (`events::store::docs::CommitDoc`).
    Commit,
    /// Its first position (`events::store::docs::PositionDoc`).
    Position,
}

/// Mirrors `events::store::docs::CommittedEvent`.
#[derive(Serialize)]
struct CommittedEvent {
    event_id: String,
    version: i64,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: i32,
    occurred_at: BsonDateTime,
    payload: Bson,
}

/// Mirrors `events::store::docs::LogDoc`.
#[derive(Serialize)]
struct LogDoc<'a> {
    #[serde(rename = "_id")]
    id: String,
    position: i64,
    event_id: String,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    version: i64,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: i32,
    occurred_at: BsonDateTime,
    recorded_at: BsonDateTime,
    correlation_id: String,
    causation_id: Option<String>,
    actor: &'a str,
    payload: Bson,
    commit_id: String,
}

/// Mirrors `events::store::docs::HeadDoc`.
#[derive(Serialize)]
struct HeadDoc {
    #[serde(rename = "_id")]
    stream: String,
    version: i64,
    commit_id: Option<String>,
    snapshot: Option<SnapshotDoc>,
    updated_at: BsonDateTime,
}

/// Mirrors `events::store::docs::SnapshotDoc`: the stream's state at its head, as the command
/// API stores it with every append. Without it a command's load would replay the stream from
/// version 1 (one point read per commit), which no store the command API filled does.
#[derive(Serialize)]
struct SnapshotDoc {
    version: i64,
    commit_id: String,
    schema: i32,
    state: Bson,
}

const BATCH: usize = 1_000;
const INSERTERS: usize = 4;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct LoadStats {
    pub commits: usize,
    pub events: u64,
    pub insert_seconds: f64,
    pub publish_seconds: f64,
}

fn millis(time: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_millis(time.timestamp_millis())
}

/// Loads `commits` into a store that must be empty (positions start at 1), then publishes
/// them on `bus` (if given) in position order.
pub async fn load(
    database: &Database,
    bus: Option<(async_nats::Client, BusConfig)>,
    commits: &[Commit],
    snapshots: &HashMap<String, Snapshot>,
    start_position: u64,
) -> anyhow::Result<LoadStats> {
    let started = Instant::now();
    // Opening the store creates its indexes and records its layout, as any service would.
    let layout = EventStore::open(database.clone())
        .await
        .context("opening the event store")?
        .layout();
    let mut first_positions = Vec::with_capacity(commits.len());
    let mut next = start_position;
    for commit in commits {
        first_positions.push(next);
        next += commit.events.len() as u64;
    }
    let log_col = database.collection::<bson::Document>("events");
    // The log one batch after another in position order: FerretDB returns a collection in
    // insertion order, and readers of the log rely on that order being position order.
    let log = async {
        for (chunk, positions) in commits.chunks(BATCH).zip(first_positions.chunks(BATCH)) {
            let mut docs = Vec::with_capacity(chunk.len() * 2);
            for (commit, first) in chunk.iter().zip(positions) {
                docs.extend(log_documents(commit, *first)?);
            }
            log_col
                .insert_many(docs)
                .ordered(true)
                .await
                .context("inserting events")?;
        }
        anyhow::Ok(())
    };
    // Commits and their positions grouped by partition, several batches at a time.
    let mut by_partition: BTreeMap<(String, Kind), Vec<usize>> = BTreeMap::new();
    for (index, commit) in commits.iter().enumerate() {
        let id = commit.stream.commit_id(commit.first_version);
        for (partitioned, kind) in [
            (layout.commits(), Kind::Commit),
            (layout.positions(), Kind::Position),
        ] {
            by_partition
                .entry((partitioned.collection_for(&id), kind))
                .or_default()
                .push(index);
        }
    }
    let batches: Vec<(String, Kind, Vec<usize>)> = by_partition
        .into_iter()
        .flat_map(|((name, kind), indices)| {
            indices
                .chunks(BATCH)
                .map(|chunk| (name.clone(), kind, chunk.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    let commit_inserts = futures::stream::iter(batches)
        .map(|(name, kind, indices)| {
            let positions = &first_positions;
            async move {
                let docs = indices
                    .iter()
                    .map(|&i| match kind {
                        Kind::Commit => commit_document(&commits[i]),
                        Kind::Position => Ok(doc! {
                            "_id": commits[i].stream.commit_id(commits[i].first_version),
                            "position": positions[i] as i64,
                        }),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                database
                    .collection::<bson::Document>(&name)
                    .insert_many(docs)
                    .ordered(false)
                    .await
                    .with_context(|| format!("inserting commits into {name}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(INSERTERS)
        .try_collect::<Vec<()>>();
    tokio::try_join!(log, commit_inserts)?;

    let mut heads: HashMap<String, (u64, String, DateTime<Utc>)> = HashMap::new();
    for commit in commits {
        let last = commit.first_version + commit.events.len() as u64 - 1;
        heads.insert(
            commit.stream.to_string(),
            (
                last,
                commit.stream.commit_id(commit.first_version),
                commit.occurred_at,
            ),
        );
    }
    let head_docs: Vec<bson::Document> = heads
        .into_iter()
        .map(|(stream, (version, commit_id, at))| {
            let snapshot = snapshots.get(&stream).map(|snapshot| SnapshotDoc {
                version: version as i64,
                commit_id: commit_id.clone(),
                schema: snapshot.schema as i32,
                state: pack_state(&snapshot.state),
            });
            bson::to_document(&HeadDoc {
                stream,
                version: version as i64,
                commit_id: Some(commit_id),
                snapshot,
                updated_at: millis(at),
            })
            .context("encoding heads")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut heads_by_partition: BTreeMap<String, Vec<bson::Document>> = BTreeMap::new();
    for doc in head_docs {
        let stream = doc.get_str("_id").context("head without _id")?;
        heads_by_partition
            .entry(layout.heads().collection_for(stream))
            .or_default()
            .push(doc);
    }
    for (name, docs) in heads_by_partition {
        for chunk in docs.chunks(BATCH) {
            database
                .collection::<bson::Document>(&name)
                .insert_many(chunk.to_vec())
                .ordered(false)
                .await
                .with_context(|| format!("inserting heads into {name}"))?;
        }
    }
    database
        .collection::<bson::Document>(events::relay::RELAY_COLLECTION)
        .replace_one(
            doc! {"_id": events::relay::SEQUENCER_ID},
            doc! {"_id": events::relay::SEQUENCER_ID, "next_position": next as i64},
        )
        .upsert(true)
        .await
        .context("writing the sequencer hint")?;
    let insert_seconds = started.elapsed().as_secs_f64();

    let published = Instant::now();
    if let Some((client, config)) = bus {
        publish(client, config, commits, &first_positions).await?;
    }
    Ok(LoadStats {
        commits: commits.len(),
        events: next - start_position,
        insert_seconds,
        publish_seconds: published.elapsed().as_secs_f64(),
    })
}

fn correlation_id(commit: &Commit) -> String {
    uuid::Uuid::from_u128(commit.events[0].event_id.as_u128() ^ 1).to_string()
}

/// The log documents of `commit`, its first event at `first_position`.
fn log_documents(commit: &Commit, first_position: u64) -> anyhow::Result<Vec<bson::Document>> {
    let commit_id = commit.stream.commit_id(commit.first_version);
    let recorded_at = millis(commit.occurred_at);
    let correlation_id = correlation_id(commit);
    commit
        .events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let position = first_position + index as u64;
            Ok(bson::to_document(&LogDoc {
                id: events::store::log_id(position),
                position: position as i64,
                event_id: event.event_id.to_string(),
                aggregate_type: &commit.stream.aggregate_type,
                aggregate_id: &commit.stream.aggregate_id,
                version: (commit.first_version + index as u64) as i64,
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version as i32,
                occurred_at: millis(event.occurred_at),
                recorded_at,
                correlation_id: correlation_id.clone(),
                causation_id: None,
                actor: &commit.actor,
                payload: Bson::try_from(event.payload.clone()).context("payload to BSON")?,
                commit_id: commit_id.clone(),
            })?)
        })
        .collect()
}

/// The commit document of `commit`.
fn commit_document(commit: &Commit) -> anyhow::Result<bson::Document> {
    let events = commit
        .events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            Ok(CommittedEvent {
                event_id: event.event_id.to_string(),
                version: (commit.first_version + index as u64) as i64,
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version as i32,
                occurred_at: millis(event.occurred_at),
                payload: Bson::try_from(event.payload.clone()).context("payload to BSON")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(bson::to_document(&CommitDoc {
        id: commit.stream.commit_id(commit.first_version),
        aggregate_type: &commit.stream.aggregate_type,
        aggregate_id: &commit.stream.aggregate_id,
        first_version: commit.first_version as i64,
        last_version: (commit.first_version + commit.events.len() as u64 - 1) as i64,
        append_id: uuid::Uuid::from_u128(commit.events[0].event_id.as_u128() ^ 2).to_string(),
        recorded_at: millis(commit.occurred_at),
        correlation_id: correlation_id(commit),
        causation_id: None,
        actor: &commit.actor,
        idempotency_key: None,
        events,
    })?)
}

/// The envelopes of `commit` as the relay publishes them.
pub fn envelopes(commit: &Commit, first_position: u64) -> Vec<EventEnvelope> {
    let correlation_id = correlation_id(commit);
    commit
        .events
        .iter()
        .enumerate()
        .map(|(index, event)| EventEnvelope {
            event_id: event.event_id,
            aggregate_type: commit.stream.aggregate_type.clone(),
            aggregate_id: commit.stream.aggregate_id.clone(),
            version: commit.first_version + index as u64,
            position: Some(first_position + index as u64),
            event_type: event.event_type.to_owned(),
            schema_version: event.schema_version,
            occurred_at: millis(event.occurred_at).to_chrono(),
            recorded_at: millis(commit.occurred_at).to_chrono(),
            correlation_id: correlation_id.clone(),
            causation_id: None,
            actor: commit.actor.clone(),
            payload: event.payload.clone(),
        })
        .collect()
}

async fn publish(
    client: async_nats::Client,
    config: BusConfig,
    commits: &[Commit],
    first_positions: &[u64],
) -> anyhow::Result<()> {
    let bus = Bus::new(client, config);
    bus.ensure_stream()
        .await
        .context("creating the JetStream stream")?;
    let mut batch = Vec::with_capacity(BATCH);
    for (commit, first) in commits.iter().zip(first_positions) {
        batch.extend(envelopes(commit, *first));
        if batch.len() >= BATCH {
            publish_batch(&bus, &batch).await?;
            batch.clear();
        }
    }
    publish_batch(&bus, &batch).await
}

async fn publish_batch(bus: &Bus, batch: &[EventEnvelope]) -> anyhow::Result<()> {
    for attempt in 1..=5 {
        match bus.publish(batch).await {
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
