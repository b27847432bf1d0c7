//! The documents the store keeps in MongoDB, and their conversion to envelopes.

use bson::{Bson, DateTime as BsonDateTime};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{EventEnvelope, StreamId};
use crate::store::StoreError;

/// One append: all its events in one document, so the append is atomic without transactions.
/// `_id` is `<stream>/<first_version>`: two writers that loaded the same head build the same
/// `_id`, and the unique `_id` lets exactly one of them in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommitDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub first_version: i64,
    pub last_version: i64,
    /// Identifies the attempt that wrote this commit; the outbox entry and the idempotency
    /// record carry it too, so a leftover of a lost race is recognised.
    pub append_id: String,
    pub recorded_at: BsonDateTime,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub idempotency_key: Option<String>,
    /// Global position of the first event. Stores written before positions had their own
    /// collection hold it here; now only in memory, taken from [`PositionDoc`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    pub events: Vec<CommittedEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommittedEvent {
    pub event_id: String,
    pub version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: BsonDateTime,
    pub payload: Bson,
}

impl CommitDoc {
    /// A commit of one version with no events, recorded at `at_millis`: for tests of what
    /// is done with commits rather than with their events.
    #[cfg(test)]
    pub(crate) fn empty(kind: &str, id: &str, version: i64, at_millis: i64) -> CommitDoc {
        CommitDoc {
            id: format!("{kind}/{id}/{version:010}"),
            aggregate_type: kind.into(),
            aggregate_id: id.into(),
            first_version: version,
            last_version: version,
            append_id: uuid::Uuid::now_v7().to_string(),
            recorded_at: BsonDateTime::from_millis(at_millis),
            correlation_id: String::new(),
            causation_id: None,
            actor: String::new(),
            traceparent: None,
            idempotency_key: None,
            position: None,
            events: Vec::new(),
        }
    }

    pub(crate) fn stream(&self) -> StreamId {
        StreamId {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
        }
    }

    pub(crate) fn envelopes(&self) -> Result<Vec<EventEnvelope>, StoreError> {
        self.events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                Ok(EventEnvelope {
                    event_id: parse_uuid(&event.event_id)?,
                    aggregate_type: self.aggregate_type.clone(),
                    aggregate_id: self.aggregate_id.clone(),
                    version: to_u64(event.version)?,
                    position: self
                        .position
                        .map(|first| to_u64(first + index as i64))
                        .transpose()?,
                    event_type: event.event_type.clone(),
                    schema_version: u32::try_from(event.schema_version)
                        .map_err(|_| StoreError::corrupt("negative schema version"))?,
                    occurred_at: event.occurred_at.to_chrono(),
                    recorded_at: self.recorded_at.to_chrono(),
                    correlation_id: self.correlation_id.clone(),
                    causation_id: self.causation_id.clone(),
                    actor: self.actor.clone(),
                    traceparent: self.traceparent.clone(),
                    payload: event.payload.clone().into_relaxed_extjson(),
                })
            })
            .collect()
    }

    /// The `events` documents of this commit once it has a position.
    pub(crate) fn log_docs(&self, first_position: i64) -> Vec<LogDoc> {
        self.events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let position = first_position + index as i64;
                let at = to_u64(position).unwrap_or_default();
                LogDoc {
                    id: log_id(at),
                    position,
                    page: log_page(at),
                    event_id: event.event_id.clone(),
                    aggregate_type: self.aggregate_type.clone(),
                    aggregate_id: self.aggregate_id.clone(),
                    version: event.version,
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    occurred_at: event.occurred_at,
                    recorded_at: self.recorded_at,
                    correlation_id: self.correlation_id.clone(),
                    causation_id: self.causation_id.clone(),
                    actor: self.actor.clone(),
                    traceparent: self.traceparent.clone(),
                    payload: event.payload.clone(),
                    commit_id: self.id.clone(),
                }
            })
            .collect()
    }
}

/// The `_id` of the log document at `position`: the position itself, a 64-bit integer.
pub fn log_id(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// Positions per page of the log ([`log_page`]).
pub const LOG_PAGE_SIZE: u64 = 1_000;

/// The page of the log that holds `position`: positions 1 to 1,000 are page 0, 1,001 to
/// 2,000 page 1, and so on. `db.events.find({page: 12})` is positions 12,001 to 13,000: a
/// bucket key, so that reading the log in order is a series of equality finds on an indexed
/// field, which every backend serves from its index (a range of `_id` or a sort is not
/// served so on FerretDB 1.x, see [`crate::EventStore::read_all`]).
pub fn log_page(position: u64) -> i64 {
    i64::try_from(position.saturating_sub(1) / LOG_PAGE_SIZE).unwrap_or(i64::MAX)
}

/// One event of the global log (`events` collection), `_id` = [`log_id`] of its position, which
/// is also its `position` field, and `page` its [`log_page`]. Written only by the relay, in
/// position order, so the collection is also the store read forward.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LogDoc {
    #[serde(rename = "_id")]
    pub id: i64,
    pub position: i64,
    /// Absent from the documents of stores written before pages (read as page 0, never
    /// found by page: readers complete a page that comes short by point reads).
    #[serde(default)]
    pub page: i64,
    pub event_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: BsonDateTime,
    pub recorded_at: BsonDateTime,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub payload: Bson,
    pub commit_id: String,
}

impl LogDoc {
    pub(crate) fn into_envelope(self) -> Result<EventEnvelope, StoreError> {
        Ok(EventEnvelope {
            event_id: parse_uuid(&self.event_id)?,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            version: to_u64(self.version)?,
            position: Some(to_u64(self.position)?),
            event_type: self.event_type,
            schema_version: u32::try_from(self.schema_version)
                .map_err(|_| StoreError::corrupt("negative schema version"))?,
            occurred_at: self.occurred_at.to_chrono(),
            recorded_at: self.recorded_at.to_chrono(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor,
            traceparent: self.traceparent,
            payload: self.payload.into_relaxed_extjson(),
        })
    }
}

/// A pending publication: written before its commit (intent first), deleted once the commit's
/// events are sequenced and acknowledged by JetStream. The relay polls this small collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboxDoc {
    /// The append id: a lost race leaves an entry whose commit belongs to someone else.
    #[serde(rename = "_id")]
    pub append_id: String,
    pub commit_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub first_version: i64,
    pub created_at: BsonDateTime,
}

/// The latest known state of a stream: a hint for finding its head (possibly behind it: a
/// current load follows the chain of commits after it, and an append from it alone collides
/// with any later commit) and an optional snapshot of aggregate state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HeadDoc {
    #[serde(rename = "_id")]
    pub stream: String,
    pub version: i64,
    pub commit_id: Option<String>,
    #[serde(default)]
    pub snapshot: Option<SnapshotDoc>,
    pub updated_at: BsonDateTime,
}

/// Aggregate state as of `version`; loading starts from it and replays only later commits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotDoc {
    pub version: i64,
    pub commit_id: String,
    pub schema: i32,
    /// The state's JSON as one binary value ([`pack_state`]); stores written before that hold
    /// it as a document, which readers still accept.
    pub state: Bson,
}

impl SnapshotDoc {
    /// The state, or `None` when its packed JSON does not parse (the caller then loads the
    /// stream without the snapshot).
    pub(crate) fn unpack_state(self) -> Option<serde_json::Value> {
        match self.state {
            Bson::Binary(packed) => serde_json::from_slice(&packed.bytes).ok(),
            document => Some(document.into_relaxed_extjson()),
        }
    }
}

/// A snapshot's state as it is stored: its JSON as one BSON binary value. FerretDB keeps a
/// type beside every value of a document and converts each on every read and write, so one
/// binary is cheaper than the state's fields. Measured on FerretDB 1.24 over PostgreSQL 15
/// with a job's state of 20 values in 20,000 heads: a point read 0.78 ms packed against
/// 1.26 ms as a plain sub-document, a replace 1.65 against 2.13 ms. Nothing queries inside a
/// snapshot (the `heads` collection is a cache of the log: it can be dropped), so the
/// state stays packed; `version` and `commit_id` beside it are plain fields.
pub fn pack_state(state: &serde_json::Value) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: state.to_string().into_bytes(),
    })
}

/// The position of a commit's first event (`positions`, `_id` = the commit's `_id`), inserted
/// by the relay once the log holds the commit's events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PositionDoc {
    #[serde(rename = "_id")]
    pub commit_id: String,
    pub position: i64,
}

/// Claims an idempotency key for one append attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyDoc {
    #[serde(rename = "_id")]
    pub key: String,
    pub fingerprint: String,
    pub commit_id: String,
    pub append_id: String,
    pub created_at: BsonDateTime,
}

pub(crate) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt("negative version or position"))
}

pub(crate) fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::corrupt("version or position beyond i64"))
}

fn parse_uuid(value: &str) -> Result<uuid::Uuid, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::corrupt(format!("event id `{value}` is not a UUID")))
}

/// MongoDB keeps milliseconds; times are cut to them before they are stored so that what is
/// read back equals what was written.
pub(crate) fn to_millis(time: DateTime<Utc>) -> BsonDateTime {
    BsonDateTime::from_millis(time.timestamp_millis())
}

pub(crate) fn json_to_bson(value: &serde_json::Value) -> Result<Bson, StoreError> {
    Bson::try_from(value.clone())
        .map_err(|e| StoreError::Encoding(format!("payload is not storable: {e}")))
}
