//! Writes decided commits straight into the event store: bulk inserts of `commits`, `events`
//! (the global log with dense positions 1, 2, 3…) and `heads` documents in the exact shapes
//! of `events::store::docs`, the relay's sequencer hint, and then publishes every event on
//! JetStream in position order, as the relay would have. The result is indistinguishable
//! from a store the command API and relay filled, only ~50× faster to produce.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bson::{doc, Bson, DateTime as BsonDateTime};
use chrono::{DateTime, Utc};
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
    position: Option<i64>,
    events: Vec<CommittedEvent>,
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

/// Mirrors `events::store::docs::HeadDoc` (without a snapshot: loads replay from version 1).
#[derive(Serialize)]
struct HeadDoc {
    #[serde(rename = "_id")]
    stream: String,
    version: i64,
    commit_id: Option<String>,
    updated_at: BsonDateTime,
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
    start_position: u64,
) -> anyhow::Result<LoadStats> {
    let started = Instant::now();
    // Opening the store creates its indexes, as any service would.
    EventStore::open(database.clone())
        .await
        .context("opening the event store")?;
    let commit_col = database.collection::<bson::Document>("commits");
    let log_col = database.collection::<bson::Document>("events");
    let mut first_positions = Vec::with_capacity(commits.len());
    let mut next = start_position;
    for commit in commits {
        first_positions.push(next);
        next += commit.events.len() as u64;
    }
    let chunks: Vec<(usize, &[Commit])> = commits
        .chunks(BATCH)
        .enumerate()
        .map(|(n, chunk)| (n * BATCH, chunk))
        .collect();
    futures::stream::iter(chunks)
        .map(|(offset, chunk)| {
            let (commit_col, log_col) = (commit_col.clone(), log_col.clone());
            let positions = &first_positions[offset..offset + chunk.len()];
            async move {
                let (commit_docs, log_docs) = documents(chunk, positions)?;
                commit_col
                    .insert_many(commit_docs)
                    .ordered(false)
                    .await
                    .context("inserting commits")?;
                log_col
                    .insert_many(log_docs)
                    .ordered(false)
                    .await
                    .context("inserting events")?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(INSERTERS)
        .try_collect::<Vec<()>>()
        .await?;

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
            bson::to_document(&HeadDoc {
                stream,
                version: version as i64,
                commit_id: Some(commit_id),
                updated_at: millis(at),
            })
        })
        .collect::<Result<_, _>>()
        .context("encoding heads")?;
    let heads_col = database.collection::<bson::Document>("heads");
    for chunk in head_docs.chunks(BATCH) {
        heads_col
            .insert_many(chunk.to_vec())
            .ordered(false)
            .await
            .context("inserting heads")?;
    }
    database
        .collection::<bson::Document>("relay")
        .replace_one(
            doc! {"_id": "sequencer"},
            doc! {"_id": "sequencer", "next_position": next as i64},
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

fn documents(
    chunk: &[Commit],
    positions: &[u64],
) -> anyhow::Result<(Vec<bson::Document>, Vec<bson::Document>)> {
    let mut commit_docs = Vec::with_capacity(chunk.len());
    let mut log_docs = Vec::with_capacity(chunk.len() * 2);
    for (commit, first_position) in chunk.iter().zip(positions) {
        let commit_id = commit.stream.commit_id(commit.first_version);
        let recorded_at = millis(commit.occurred_at);
        let correlation_id =
            uuid::Uuid::from_u128(commit.events[0].event_id.as_u128() ^ 1).to_string();
        let mut events = Vec::with_capacity(commit.events.len());
        for (index, event) in commit.events.iter().enumerate() {
            let payload = Bson::try_from(event.payload.clone()).context("payload to BSON")?;
            let version = (commit.first_version + index as u64) as i64;
            log_docs.push(bson::to_document(&LogDoc {
                id: events::store::log_id(*first_position + index as u64),
                position: (*first_position + index as u64) as i64,
                event_id: event.event_id.to_string(),
                aggregate_type: &commit.stream.aggregate_type,
                aggregate_id: &commit.stream.aggregate_id,
                version,
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version as i32,
                occurred_at: millis(event.occurred_at),
                recorded_at,
                correlation_id: correlation_id.clone(),
                causation_id: None,
                actor: &commit.actor,
                payload: payload.clone(),
                commit_id: commit_id.clone(),
            })?);
            events.push(CommittedEvent {
                event_id: event.event_id.to_string(),
                version,
                event_type: event.event_type.to_owned(),
                schema_version: event.schema_version as i32,
                occurred_at: millis(event.occurred_at),
                payload,
            });
        }
        commit_docs.push(bson::to_document(&CommitDoc {
            id: commit_id,
            aggregate_type: &commit.stream.aggregate_type,
            aggregate_id: &commit.stream.aggregate_id,
            first_version: commit.first_version as i64,
            last_version: (commit.first_version + commit.events.len() as u64 - 1) as i64,
            append_id: uuid::Uuid::from_u128(commit.events[0].event_id.as_u128() ^ 2).to_string(),
            recorded_at,
            correlation_id,
            causation_id: None,
            actor: &commit.actor,
            idempotency_key: None,
            position: Some(*first_position as i64),
            events,
        })?);
    }
    Ok((commit_docs, log_docs))
}

/// The envelopes of `commit` as the relay publishes them.
pub fn envelopes(commit: &Commit, first_position: u64) -> Vec<EventEnvelope> {
    let correlation_id = uuid::Uuid::from_u128(commit.events[0].event_id.as_u128() ^ 1).to_string();
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
