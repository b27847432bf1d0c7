//! Appending to a stream: optimistic concurrency through a unique `_id`, intent before fact,
//! and idempotency keys claimed by a unique insert.

use std::time::Duration;

use bson::doc;
use chrono::Utc;
use uuid::Uuid;

use super::docs::{
    json_to_bson, pack_state, to_i64, to_millis, to_u64, CommitDoc, CommittedEvent, HeadDoc,
    IdempotencyDoc, OutboxDoc, SnapshotDoc,
};
use super::group::Landing;
use super::{is_duplicate_key, AppendError, EventStore, StoreError};
use crate::envelope::{EventMetadata, NewEvent, StreamId};

/// A claim older than this whose commit never appeared belongs to an attempt that died.
const ABANDONED_CLAIM_AGE: Duration = Duration::from_secs(30);

/// The head of a stream as the store found it. Only the store builds one, so an append that
/// presents it needs no second look-up: the version is a real commit boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    pub(crate) stream: StreamId,
    pub(crate) version: u64,
    pub(crate) commit_id: Option<String>,
}

impl StreamHead {
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }
}

/// What the writer believes the stream's version to be.
#[derive(Debug, Clone)]
pub enum Expected {
    /// The head returned by a load of the same stream.
    Head(StreamHead),
    /// A version the caller remembers (0 = the stream must not exist yet); checked against the
    /// stored head before the insert.
    Version(u64),
    /// Whatever the head is now; the insert still fails if another writer gets there first.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Unique per caller and request, e.g. `<user>:<Idempotency-Key header>`.
    pub key: String,
    /// A digest of the request; the same key with another request is refused.
    pub fingerprint: String,
}

/// A snapshot of aggregate state to keep with the new head.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub schema: u32,
    pub state: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: Expected,
    pub events: Vec<NewEvent>,
    pub metadata: EventMetadata,
    pub idempotency: Option<IdempotencyKey>,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stream: StreamId,
    pub commit_id: String,
    pub first_version: u64,
    pub last_version: u64,
    pub event_ids: Vec<Uuid>,
    /// Known when the commit was already sequenced (a replayed idempotent append).
    pub position: Option<u64>,
    /// True when an earlier append with the same idempotency key is returned and nothing new
    /// was written.
    pub replayed: bool,
}

impl AppendOutcome {
    /// The stream's head as this append left it; an append presenting it collides with any
    /// later commit. (For a replayed outcome, the head the original append left.)
    pub fn head(&self) -> StreamHead {
        StreamHead {
            stream: self.stream.clone(),
            version: self.last_version,
            commit_id: Some(self.commit_id.clone()),
        }
    }

    fn from_commit(commit: &CommitDoc, replayed: bool) -> Result<Self, StoreError> {
        Ok(AppendOutcome {
            stream: commit.stream(),
            commit_id: commit.id.clone(),
            first_version: to_u64(commit.first_version)?,
            last_version: to_u64(commit.last_version)?,
            event_ids: commit
                .events
                .iter()
                .map(|e| e.event_id.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| StoreError::corrupt("event id is not a UUID"))?,
            position: commit.position.map(to_u64).transpose()?,
            replayed,
        })
    }
}

enum Claim {
    Done(AppendOutcome),
    Free,
}

impl EventStore {
    /// Appends all `events` to one stream atomically, or nothing.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let _timer = self.metrics.time_append();
        if request.events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        if let Some(key) = &request.idempotency {
            if let Some(done) = self.idempotent_outcome(key).await? {
                return Ok(done);
            }
        }
        let head = self
            .expected_head(&request.stream, request.expected)
            .await?;
        let commit = CommitDoc::build(
            &request.stream,
            head.version + 1,
            request.events,
            &request.metadata,
            request.idempotency.as_ref(),
            Uuid::now_v7(),
            Utc::now(),
        )?;

        if let Some(key) = &request.idempotency {
            if let Some(done) = self.claim(key, &commit).await? {
                return Ok(done);
            }
        }
        let commit = self
            .insert_commit(
                commit,
                &request.stream,
                request.idempotency.as_ref(),
                head.version,
            )
            .await?;
        self.metrics.appended(commit.events.len());
        self.appended.notify_one();
        self.record_head(&commit, request.snapshot).await;
        Ok(AppendOutcome::from_commit(&commit, false)?)
    }

    /// The head to append after, checked against what the writer expects.
    async fn expected_head(
        &self,
        stream: &StreamId,
        expected: Expected,
    ) -> Result<StreamHead, AppendError> {
        match expected {
            Expected::Head(head) if head.stream == *stream => Ok(head),
            Expected::Head(_) | Expected::Any => Ok(self.head(stream).await?),
            Expected::Version(expected) => {
                let head = self.head(stream).await?;
                if head.version != expected {
                    return Err(AppendError::Conflict {
                        stream: stream.to_string(),
                        expected,
                        actual: head.version,
                    });
                }
                Ok(head)
            }
        }
    }

    /// Inserts `commit` after its outbox entry (intent first: if the process dies between
    /// the two, the relay finds the entry and publishes the commit if it landed, or discards
    /// the entry if it did not), in a group with concurrent appends ([`super::group`]). When
    /// the commit's `_id` is taken (another writer appended at `expected` first) the intent
    /// and the claim are withdrawn and the conflict reported.
    async fn insert_commit(
        &self,
        commit: CommitDoc,
        stream: &StreamId,
        idempotency: Option<&IdempotencyKey>,
        expected: u64,
    ) -> Result<CommitDoc, AppendError> {
        let intent = OutboxDoc {
            append_id: commit.append_id.clone(),
            commit_id: commit.id.clone(),
            aggregate_type: commit.aggregate_type.clone(),
            aggregate_id: commit.aggregate_id.clone(),
            first_version: commit.first_version,
            created_at: commit.recorded_at,
        };
        // An error leaves the outcome unknown (the commit may have landed): the outbox
        // entry stays so that the relay publishes the commit if it exists.
        let append_id = commit.append_id.clone();
        self.landed.begin(&append_id);
        let inserted = self
            .groups
            .insert(&self.outbox, &self.commits, intent, commit)
            .await;
        let commit = match inserted {
            Ok((commit, Landing::Landed)) => {
                self.landed.land(&commit, self.waiters.local_relay_leads());
                return Ok(commit);
            }
            Ok((commit, Landing::Taken)) => commit,
            Err(error) => {
                self.landed.abandon(&append_id);
                return Err(error.into());
            }
        };
        self.landed.abandon(&append_id);
        self.outbox
            .delete_one(doc! {"_id": &commit.append_id})
            .await?;
        if let Some(key) = idempotency {
            self.idempotency.delete_one(doc! {"_id": &key.key}).await?;
        }
        let actual = self.head(stream).await?.version;
        Err(AppendError::Conflict {
            stream: stream.to_string(),
            expected,
            actual,
        })
    }

    /// The outcome of an earlier append with this key, if it completed.
    pub async fn idempotent_outcome(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendOutcome>, AppendError> {
        match self.idempotency.find_one(doc! {"_id": &key.key}).await? {
            None => Ok(None),
            Some(claim) => match self.resolve_claim(claim, key).await? {
                Claim::Done(outcome) => Ok(Some(outcome)),
                Claim::Free => Ok(None),
            },
        }
    }

    /// Claims `key` for `commit`; returns the earlier outcome when the key is already used.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        commit: &CommitDoc,
    ) -> Result<Option<AppendOutcome>, AppendError> {
        let claim = IdempotencyDoc {
            key: key.key.clone(),
            fingerprint: key.fingerprint.clone(),
            commit_id: commit.id.clone(),
            append_id: commit.append_id.clone(),
            created_at: commit.recorded_at,
        };
        // Two rounds: a stale claim found in the first is removed and the insert tried again.
        for _ in 0..2 {
            match self.idempotency.insert_one(&claim).await {
                Ok(_) => return Ok(None),
                Err(error) if is_duplicate_key(&error) => {
                    if let Some(done) = self.idempotent_outcome(key).await? {
                        return Ok(Some(done));
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(AppendError::IdempotencyInProgress(key.key.clone()))
    }

    async fn resolve_claim(
        &self,
        claim: IdempotencyDoc,
        key: &IdempotencyKey,
    ) -> Result<Claim, AppendError> {
        if claim.fingerprint != key.fingerprint {
            return Err(AppendError::IdempotencyKeyReused(key.key.clone()));
        }
        let commit = self
            .commits
            .find_one(doc! {"_id": &claim.commit_id})
            .await?;
        match commit {
            Some(commit) if commit.append_id == claim.append_id => {
                let commit = self.with_position(commit).await?;
                Ok(Claim::Done(AppendOutcome::from_commit(&commit, true)?))
            }
            // The claimed attempt lost its race (and could not remove its claim), or died long
            // ago before writing: the key is free again.
            Some(_) => {
                self.idempotency
                    .delete_one(doc! {"_id": &claim.key})
                    .await?;
                Ok(Claim::Free)
            }
            None => {
                let age = Utc::now() - claim.created_at.to_chrono();
                if age.to_std().unwrap_or_default() > ABANDONED_CLAIM_AGE {
                    self.idempotency
                        .delete_one(doc! {"_id": &claim.key})
                        .await?;
                    Ok(Claim::Free)
                } else {
                    Err(AppendError::IdempotencyInProgress(key.key.clone()))
                }
            }
        }
    }

    /// Finds the head of a stream: start at the hint in `heads`, then follow the chain of
    /// commits by `_id` until the next one is missing.
    pub async fn head(&self, stream: &StreamId) -> Result<StreamHead, StoreError> {
        let stream_key = stream.to_string();
        let hint = self.heads.find_one(doc! {"_id": &stream_key}).await?;
        let (version, commit_id) = match hint {
            Some(hint) => (to_u64(hint.version)?, hint.commit_id),
            None => (0, None),
        };
        let mut head = StreamHead {
            stream: stream.clone(),
            version,
            commit_id,
        };
        loop {
            let id = stream.commit_id(head.version + 1);
            let Some(next) = self.commits.find_one(doc! {"_id": &id}).await? else {
                break;
            };
            head.version = to_u64(next.last_version)?;
            head.commit_id = Some(next.id);
        }
        Ok(head)
    }

    /// Moves the head hint to the commit with its new snapshot; an append without a snapshot
    /// writes nothing here (the hint and its snapshot stay where they were). Readers follow
    /// the chain of commits from the hint, so the hint only saves reads, and the appender
    /// decides how many commits a load may have to follow (every append writing it cost a
    /// read-modify-write of this document each on FerretDB). Losing this write is harmless
    /// for the same reason.
    async fn record_head(&self, commit: &CommitDoc, snapshot: Option<Snapshot>) {
        let Some(snapshot) = snapshot else {
            return;
        };
        let stream = commit.stream().to_string();
        let head = HeadDoc {
            stream: stream.clone(),
            version: commit.last_version,
            commit_id: Some(commit.id.clone()),
            snapshot: Some(SnapshotDoc {
                version: commit.last_version,
                commit_id: commit.id.clone(),
                schema: snapshot.schema as i32,
                state: pack_state(&snapshot.state),
            }),
            updated_at: commit.recorded_at,
        };
        let written = self
            .heads
            .replace_one(doc! {"_id": &stream}, &head)
            .upsert(true)
            .await;
        if let Err(error) = written {
            tracing::warn!(%error, commit = %commit.id, "head hint not updated");
        }
    }
}

impl CommitDoc {
    /// The commit of `events` appended to `stream` from `first_version` on.
    pub(crate) fn build(
        stream: &StreamId,
        first_version: u64,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
        idempotency: Option<&IdempotencyKey>,
        append_id: Uuid,
        recorded_at: chrono::DateTime<Utc>,
    ) -> Result<CommitDoc, StoreError> {
        let committed = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                Ok(CommittedEvent {
                    event_id: event.event_id.to_string(),
                    version: to_i64(first_version + index as u64)?,
                    event_type: event.event_type,
                    schema_version: i32::try_from(event.schema_version)
                        .map_err(|_| StoreError::Encoding("schema version too large".into()))?,
                    occurred_at: to_millis(event.occurred_at),
                    payload: json_to_bson(&event.payload)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if committed.is_empty() {
            return Err(StoreError::Encoding(
                "a commit needs at least one event".into(),
            ));
        }
        let last_version = first_version + committed.len() as u64 - 1;
        Ok(CommitDoc {
            id: stream.commit_id(first_version),
            aggregate_type: stream.aggregate_type.clone(),
            aggregate_id: stream.aggregate_id.clone(),
            first_version: to_i64(first_version)?,
            last_version: to_i64(last_version)?,
            append_id: append_id.to_string(),
            recorded_at: to_millis(recorded_at),
            correlation_id: metadata.correlation_id.clone(),
            causation_id: metadata.causation_id.clone(),
            actor: metadata.actor.clone(),
            traceparent: metadata.traceparent.clone(),
            idempotency_key: idempotency.map(|k| k.key.clone()),
            position: None,
            events: committed,
        })
    }
}
