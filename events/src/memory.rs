//! An in-memory [`EventLog`] for unit tests of logic that writes or reads the log through the
//! port, such as the command path: one mutex around plain collections, so every operation is
//! atomic and the guarantees of the port (see [`crate::store::port`]) hold by construction.
//!
//! Where it differs from [`crate::EventStore`], deliberately:
//! - Positions are given at append, in append order. In the real system the relay gives
//!   them later, so there a fresh append's outcome has no position and a load right after it
//!   shows none; here the outcome and every read carry the position at once.
//! - An idempotency key is never "in progress": it is recorded with its commit, under one
//!   lock.
//! - Times are cut to milliseconds as MongoDB stores them; payloads are kept as given.
//! - An import's batch is checked before it is written: a position or version that does not
//!   follow the log's or the stream's is refused, where MongoDB would fail on a duplicate or
//!   leave a gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::envelope::{EventEnvelope, EventMetadata, NewEvent, StreamId};
use crate::store::{
    AppendError, AppendOutcome, AppendRequest, BulkImport, EventBatches, EventLog, Expected,
    IdempotencyKey, ImportedCommit, LoadedStream, ReadAllOptions, Snapshot, StoreError, StreamHead,
};

/// An event log held in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryEventLog {
    log: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    /// Every event in position order: position `p` is `events[p - 1]`.
    events: Vec<EventEnvelope>,
    streams: HashMap<StreamId, Stream>,
    /// Completed appends by idempotency key.
    keys: HashMap<String, Keyed>,
}

#[derive(Debug, Default)]
struct Stream {
    /// The stream's commits in version order.
    commits: Vec<Commit>,
    snapshot: Option<SavedSnapshot>,
}

#[derive(Debug)]
struct Commit {
    outcome: AppendOutcome,
    /// Where its events start in [`Log::events`].
    first_index: usize,
}

#[derive(Debug)]
struct SavedSnapshot {
    version: u64,
    schema: u32,
    state: serde_json::Value,
}

#[derive(Debug)]
struct Keyed {
    fingerprint: String,
    outcome: AppendOutcome,
}

impl MemoryEventLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Log {
    fn head(&self, stream: &StreamId) -> StreamHead {
        match self.streams.get(stream).and_then(|s| s.commits.last()) {
            Some(last) => last.outcome.head(),
            None => StreamHead {
                stream: stream.clone(),
                version: 0,
                commit_id: None,
            },
        }
    }

    /// As `EventStore::idempotent_outcome`: the first outcome, or a refusal of another request
    /// under the same key.
    fn completed(&self, key: &IdempotencyKey) -> Result<Option<AppendOutcome>, AppendError> {
        match self.keys.get(&key.key) {
            None => Ok(None),
            Some(keyed) if keyed.fingerprint != key.fingerprint => {
                Err(AppendError::IdempotencyKeyReused(key.key.clone()))
            }
            Some(keyed) => Ok(Some(AppendOutcome {
                replayed: true,
                ..keyed.outcome.clone()
            })),
        }
    }

    /// As `EventStore::append`: a replayed key first, then the version check that the unique
    /// commit `_id` makes there.
    fn append(&mut self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        if request.events.is_empty() {
            return Err(AppendError::NoEvents);
        }
        if let Some(key) = &request.idempotency {
            if let Some(done) = self.completed(key)? {
                return Ok(done);
            }
        }
        let stream = request.stream;
        let actual = self.head(&stream).version;
        let expected = match request.expected {
            Expected::Head(head) if head.stream == stream => head.version,
            Expected::Version(version) => version,
            Expected::Head(_) | Expected::Any => actual,
        };
        if expected != actual {
            return Err(AppendError::Conflict {
                stream: stream.to_string(),
                expected,
                actual,
            });
        }
        let outcome = self.push_commit(
            stream,
            actual + 1,
            request.events,
            &request.metadata,
            Utc::now(),
        );
        if let Some(key) = request.idempotency {
            let keyed = Keyed {
                fingerprint: key.fingerprint,
                outcome: outcome.clone(),
            };
            self.keys.insert(key.key, keyed);
        }
        if let Some(snapshot) = request.snapshot {
            self.keep_snapshot(&outcome.stream, outcome.last_version, snapshot);
        }
        Ok(outcome)
    }

    /// Adds a commit of `events` at `first_version`, positioned at the end of the log.
    fn push_commit(
        &mut self,
        stream: StreamId,
        first_version: u64,
        events: Vec<NewEvent>,
        metadata: &EventMetadata,
        recorded_at: DateTime<Utc>,
    ) -> AppendOutcome {
        let first_index = self.events.len();
        let first_position = first_index as u64 + 1;
        let recorded_at = to_millis(recorded_at);
        let mut event_ids = Vec::with_capacity(events.len());
        for (offset, event) in (0u64..).zip(events) {
            event_ids.push(event.event_id);
            self.events.push(EventEnvelope {
                event_id: event.event_id,
                aggregate_type: stream.aggregate_type.clone(),
                aggregate_id: stream.aggregate_id.clone(),
                version: first_version + offset,
                position: Some(first_position + offset),
                event_type: event.event_type,
                schema_version: event.schema_version,
                occurred_at: to_millis(event.occurred_at),
                recorded_at,
                correlation_id: metadata.correlation_id.clone(),
                causation_id: metadata.causation_id.clone(),
                actor: metadata.actor.clone(),
                traceparent: metadata.traceparent.clone(),
                payload: event.payload,
            });
        }
        let outcome = AppendOutcome {
            commit_id: stream.commit_id(first_version),
            first_version,
            last_version: first_version + event_ids.len() as u64 - 1,
            event_ids,
            position: Some(first_position),
            replayed: false,
            stream,
        };
        let saved = self.streams.entry(outcome.stream.clone()).or_default();
        saved.commits.push(Commit {
            outcome: outcome.clone(),
            first_index,
        });
        outcome
    }

    fn keep_snapshot(&mut self, stream: &StreamId, version: u64, snapshot: Snapshot) {
        if let Some(saved) = self.streams.get_mut(stream) {
            saved.snapshot = Some(SavedSnapshot {
                version,
                schema: snapshot.schema,
                state: snapshot.state,
            });
        }
    }

    /// Writes an import's batch at `first_position`, all of it or, when a commit would not
    /// follow the log or its stream, none.
    fn import(&mut self, first_position: u64, batch: &[ImportedCommit]) -> Result<(), StoreError> {
        let end = self.events.len() as u64;
        if first_position != end + 1 {
            return Err(StoreError::corrupt(format!(
                "an import at position {first_position} into a log ending at {end}"
            )));
        }
        let mut heads: HashMap<&StreamId, u64> = HashMap::new();
        for commit in batch {
            let head = match heads.get(&commit.stream) {
                Some(version) => *version,
                None => self.head(&commit.stream).version,
            };
            if commit.events.is_empty() || commit.first_version != head + 1 {
                return Err(StoreError::corrupt(format!(
                    "an imported commit of {} at version {} with {} events onto head {head}",
                    commit.stream,
                    commit.first_version,
                    commit.events.len()
                )));
            }
            heads.insert(&commit.stream, head + commit.events.len() as u64);
        }
        for commit in batch {
            self.push_commit(
                commit.stream.clone(),
                commit.first_version,
                commit.events.clone(),
                &commit.metadata,
                commit.recorded_at,
            );
        }
        Ok(())
    }

    /// The stream's events from `from_version` on.
    fn read_stream(&self, stream: &StreamId, from_version: u64) -> Vec<EventEnvelope> {
        let Some(saved) = self.streams.get(stream) else {
            return Vec::new();
        };
        saved
            .commits
            .iter()
            .filter(|commit| commit.outcome.last_version >= from_version)
            .flat_map(|commit| {
                let first = commit.first_index;
                &self.events[first..first + commit.outcome.event_ids.len()]
            })
            .filter(|event| event.version >= from_version)
            .cloned()
            .collect()
    }

    fn load(&self, stream: &StreamId) -> LoadedStream {
        let snapshot = self
            .streams
            .get(stream)
            .and_then(|saved| saved.snapshot.as_ref())
            .map(|saved| (saved.version, saved.schema, saved.state.clone()));
        let after = snapshot.as_ref().map_or(0, |(version, ..)| *version);
        LoadedStream {
            head: self.head(stream),
            snapshot,
            events: self.read_stream(stream, after + 1),
        }
    }

    /// The events after position `after`, at most `count`.
    fn page(&self, after: u64, count: usize) -> &[EventEnvelope] {
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        let end = start.saturating_add(count).min(self.events.len());
        &self.events[start..end]
    }
}

/// MongoDB keeps milliseconds; so does this log, so that both read back the same times.
fn to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

impl EventLog for MemoryEventLog {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        self.lock().append(request)
    }

    async fn idempotent_outcome(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<AppendOutcome>, AppendError> {
        self.lock().completed(key)
    }

    async fn head(&self, stream: &StreamId) -> Result<StreamHead, StoreError> {
        Ok(self.lock().head(stream))
    }

    async fn load(&self, stream: &StreamId) -> Result<LoadedStream, StoreError> {
        Ok(self.lock().load(stream))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        Ok(self.lock().read_stream(stream, from_version))
    }

    async fn read_positions(
        &self,
        after: u64,
        count: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        Ok(self.lock().page(after, count).to_vec())
    }

    fn read_all(&self, options: ReadAllOptions) -> EventBatches {
        let batch_size = options.batch_size.clamp(1, 100_000);
        let log = self.lock();
        let after = log.page(options.after_position, usize::MAX);
        EventBatches::ready(after.chunks(batch_size).map(<[_]>::to_vec).collect())
    }

    type Import<'a> = MemoryImport<'a>;

    fn import(&self, first_position: u64) -> MemoryImport<'_> {
        MemoryImport {
            log: self,
            next_position: first_position,
            streams: HashMap::new(),
        }
    }
}

/// An import into a [`MemoryEventLog`]: each batch is in the log once written, the snapshots
/// at [`BulkImport::finish`].
#[derive(Debug)]
pub struct MemoryImport<'a> {
    log: &'a MemoryEventLog,
    next_position: u64,
    /// The imported streams by name, with the last version imported.
    streams: HashMap<String, (StreamId, u64)>,
}

impl BulkImport for MemoryImport<'_> {
    fn next_position(&self) -> u64 {
        self.next_position
    }

    async fn write(&mut self, batch: &[ImportedCommit]) -> Result<(), StoreError> {
        self.log.lock().import(self.next_position, batch)?;
        for commit in batch {
            let events = commit.events.len() as u64;
            self.next_position += events;
            let last = commit.first_version + events - 1;
            let name = commit.stream.to_string();
            self.streams.insert(name, (commit.stream.clone(), last));
        }
        Ok(())
    }

    async fn finish(self, snapshots: &HashMap<String, Snapshot>) -> Result<u64, StoreError> {
        let mut log = self.log.lock();
        for (name, (stream, version)) in &self.streams {
            if let Some(snapshot) = snapshots.get(name) {
                log.keep_snapshot(stream, *version, snapshot.clone());
            }
        }
        Ok(self.next_position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{self, event, new_stream, request};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_64_appends_from_one_head_one_lands_and_the_retries_lose_nothing() {
        contract::one_writer_wins_each_version(&MemoryEventLog::new(), 64).await;
    }

    #[tokio::test]
    async fn an_expected_version_other_than_the_head_is_a_conflict_naming_the_head() {
        contract::expected_versions_are_checked(&MemoryEventLog::new()).await;
    }

    #[tokio::test]
    async fn a_completed_idempotency_key_replays_and_another_request_under_it_is_refused() {
        contract::idempotency_keys_replay_and_refuse(&MemoryEventLog::new()).await;
    }

    #[tokio::test]
    async fn a_load_starts_at_the_latest_snapshot() {
        contract::loads_start_at_the_latest_snapshot(&MemoryEventLog::new()).await;
    }

    #[tokio::test]
    async fn pages_from_any_position_agree_with_the_whole_log() {
        contract::pages_from_a_position_agree_with_the_whole_log(&MemoryEventLog::new()).await;
    }

    #[tokio::test]
    async fn imported_commits_read_like_appended_ones() {
        contract::imports_read_like_appends(&MemoryEventLog::new()).await;
    }

    #[tokio::test]
    async fn an_import_after_appends_continues_their_positions() {
        let log = MemoryEventLog::new();
        contract::pages_from_a_position_agree_with_the_whole_log(&log).await;
        contract::imports_read_like_appends(&log).await;
    }

    #[tokio::test]
    async fn an_import_that_would_not_follow_the_log_or_its_stream_is_refused_whole() {
        let log = MemoryEventLog::new();
        let a = new_stream("a");
        log.append(request(&a, Expected::Any, vec![event(1)]))
            .await
            .unwrap();
        let commit = |first_version| ImportedCommit {
            stream: a.clone(),
            first_version,
            events: vec![event(2)],
            metadata: EventMetadata::default(),
            append_id: uuid::Uuid::now_v7(),
            recorded_at: Utc::now(),
        };
        for position in [1, 3] {
            let mut import = log.import(position);
            let refused = import.write(&[commit(2)]).await;
            assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{position}");
        }
        let mut import = log.import(2);
        let refused = import.write(&[commit(2), commit(4)]).await;
        assert!(matches!(refused, Err(StoreError::Corrupt(_))));
        assert_eq!(import.next_position(), 2);
        assert_eq!(log.read_stream(&a, 1).await.unwrap().len(), 1);
        import.write(&[commit(2), commit(3)]).await.unwrap();
        assert_eq!(import.finish(&HashMap::new()).await.unwrap(), 4);
        assert_eq!(log.head(&a).await.unwrap().version(), 3);
    }

    #[tokio::test]
    async fn all_checks_pass_one_after_another_on_one_log() {
        contract::check_all(&MemoryEventLog::new(), 8).await;
    }

    #[tokio::test]
    async fn positions_are_given_at_append_in_append_order_and_clones_share_the_log() {
        let log = MemoryEventLog::new();
        let (a, b) = (new_stream("a"), new_stream("b"));
        let first = log
            .append(request(&a, Expected::Any, vec![event(1), event(2)]))
            .await
            .unwrap();
        let second = log
            .clone()
            .append(request(&b, Expected::Any, vec![event(3)]))
            .await
            .unwrap();
        assert_eq!((first.position, second.position), (Some(1), Some(3)));
        let read = log.read_stream(&b, 1).await.unwrap();
        assert_eq!(read[0].position, Some(3));
        assert_eq!(read[0].event_id, second.event_ids[0]);
    }
}
