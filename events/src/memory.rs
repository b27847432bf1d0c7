//! An in-memory [`EventLog`] for unit tests of logic that writes or reads the log through the
//! port, such as the command path: one mutex around plain collections, so every operation is
//! atomic and the guarantees of the port (see [`crate::store::port`]) hold by construction.
//!
//! Where it differs from [`crate::EventStore`], deliberately:
//! - Positions are given at append, in append order. In the real system the relay gives
//!   them later, so there a fresh append's outcome has no position and a load right after it
//!   shows none; here the outcome and every read carry the position at once.
//! - The head is never behind, so [`EventLog::load_at_hint`] is [`EventLog::load`], and an
//!   idempotency key is never "in progress": it is recorded with its commit, under one lock.
//! - Times are cut to milliseconds as MongoDB stores them; payloads are kept as given.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::envelope::{EventEnvelope, StreamId};
use crate::store::{
    AppendError, AppendOutcome, AppendRequest, EventBatches, EventLog, Expected, IdempotencyKey,
    LoadedStream, ReadAllOptions, StoreError, StreamHead,
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
        let first_version = actual + 1;
        let first_index = self.events.len();
        let first_position = first_index as u64 + 1;
        let recorded_at = to_millis(Utc::now());
        let metadata = request.metadata;
        let mut event_ids = Vec::with_capacity(request.events.len());
        for (offset, event) in (0u64..).zip(request.events) {
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
        if let Some(key) = request.idempotency {
            let keyed = Keyed {
                fingerprint: key.fingerprint,
                outcome: outcome.clone(),
            };
            self.keys.insert(key.key, keyed);
        }
        let saved = self.streams.entry(outcome.stream.clone()).or_default();
        saved.commits.push(Commit {
            outcome: outcome.clone(),
            first_index,
        });
        if let Some(snapshot) = request.snapshot {
            saved.snapshot = Some(SavedSnapshot {
                version: outcome.last_version,
                schema: snapshot.schema,
                state: snapshot.state,
            });
        }
        Ok(outcome)
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

    fn load_at_hint(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<LoadedStream, StoreError>> + Send {
        self.load(stream)
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
