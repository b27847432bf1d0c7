//! Bulk import: commits decided elsewhere (the data generator) written straight into the store
//! as if appended and sequenced, much faster than appending them one by one.
//!
//! An import fills an empty store in position order: each batch's log documents, commits and
//! positions in bulk inserts, then, at [`Import::finish`], every stream's head (with the
//! snapshot the importer gives it) and the relay's sequencer hint. Nothing is put in the
//! outbox: publishing the imported events on JetStream is the importer's choice
//! ([`ImportedCommit::envelopes`] gives them as the relay would publish them).

use std::collections::HashMap;

use bson::doc;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::append::Snapshot;
use super::docs::{pack_state, to_i64, to_millis, CommitDoc, HeadDoc, PositionDoc, SnapshotDoc};
use super::{EventStore, StoreError};
use crate::envelope::{EventEnvelope, EventMetadata, NewEvent, StreamId};
use crate::relay::{RELAY_COLLECTION, SEQUENCER_ID};

/// One commit to import: a stream's events from `first_version` on.
#[derive(Debug, Clone)]
pub struct ImportedCommit {
    pub stream: StreamId,
    pub first_version: u64,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
    /// Identifies the append that wrote it, as [`EventStore::append`] would have made up.
    pub append_id: Uuid,
    pub recorded_at: DateTime<Utc>,
}

impl ImportedCommit {
    fn document(&self) -> Result<CommitDoc, StoreError> {
        CommitDoc::build(
            &self.stream,
            self.first_version,
            self.events.clone(),
            &self.metadata,
            None,
            self.append_id,
            self.recorded_at,
        )
    }

    /// The events of this commit as the relay publishes them, the first at `first_position`.
    pub fn envelopes(&self, first_position: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut commit = self.document()?;
        commit.position = Some(to_i64(first_position)?);
        commit.envelopes()
    }
}

/// An import in progress; see the module docs.
pub struct Import<'a> {
    store: &'a EventStore,
    next_position: u64,
    /// Per stream: its last version, the commit that reached it and when.
    heads: HashMap<String, (u64, String, DateTime<Utc>)>,
}

impl EventStore {
    /// Starts an import whose first event gets position `first_position` (1 for an empty store).
    pub fn import(&self, first_position: u64) -> Import<'_> {
        Import {
            store: self,
            next_position: first_position,
            heads: HashMap::new(),
        }
    }
}

impl Import<'_> {
    /// The position the next imported event gets.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// Writes one batch of commits, in order, after the ones written before.
    pub async fn write(&mut self, batch: &[ImportedCommit]) -> Result<(), StoreError> {
        let mut commits = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        let mut log = Vec::new();
        for imported in batch {
            let commit = imported.document()?;
            let first = to_i64(self.next_position)?;
            log.extend(commit.log_docs(first));
            positions.push(PositionDoc {
                commit_id: commit.id.clone(),
                position: first,
            });
            self.next_position += commit.events.len() as u64;
            let last_version = imported.first_version + imported.events.len() as u64 - 1;
            self.heads.insert(
                imported.stream.to_string(),
                (last_version, commit.id.clone(), imported.recorded_at),
            );
            commits.push(commit);
        }
        if commits.is_empty() {
            return Ok(());
        }
        // The log in position order (readers of the log rely on insertion order being position
        // order on FerretDB); commits and positions are read by `_id` only.
        let store = self.store;
        tokio::try_join!(
            async { store.log.insert_many(&log).ordered(true).await },
            async { store.commits.insert_many(&commits).ordered(false).await },
            async { store.positions.insert_many(&positions).ordered(false).await },
        )?;
        Ok(())
    }

    /// Writes every imported stream's head, with its snapshot from `snapshots` (by stream name)
    /// where there is one, and the relay's hint of the next position. Returns that position.
    pub async fn finish(self, snapshots: &HashMap<String, Snapshot>) -> Result<u64, StoreError> {
        let heads = self
            .heads
            .into_iter()
            .map(|(stream, (version, commit_id, at))| {
                let version = to_i64(version)?;
                let snapshot = snapshots.get(&stream).map(|snapshot| SnapshotDoc {
                    version,
                    commit_id: commit_id.clone(),
                    schema: snapshot.schema as i32,
                    state: pack_state(&snapshot.state),
                });
                Ok(HeadDoc {
                    stream,
                    version,
                    commit_id: Some(commit_id),
                    snapshot,
                    updated_at: to_millis(at),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in heads.chunks(IMPORT_HEADS_BATCH) {
            self.store.heads.insert_many(chunk).ordered(false).await?;
        }
        let next = to_i64(self.next_position)?;
        self.store
            .db
            .collection::<bson::Document>(RELAY_COLLECTION)
            .replace_one(
                doc! {"_id": SEQUENCER_ID},
                doc! {"_id": SEQUENCER_ID, "next_position": next},
            )
            .upsert(true)
            .await?;
        Ok(self.next_position)
    }
}

/// Heads per insert at the end of an import.
const IMPORT_HEADS_BATCH: usize = 1_000;
