//! The event-log port: what writing and reading the log needs of its storage.
//!
//! [`EventLog`] is implemented by the MongoDB store ([`EventStore`], by delegating to its own
//! methods) and by the in-memory log of unit tests ([`crate::memory::MemoryEventLog`]), so the
//! command path's load → decide → append logic runs against either. What every adapter
//! guarantees:
//!
//! - an append is all of its events or none, at the version after the head it was decided
//!   from: of two appends from one head exactly one lands, the other is
//!   [`AppendError::Conflict`] naming the head that won;
//! - an idempotency key that completed answers with its first outcome (`replayed`) and writes
//!   nothing; the same key with another fingerprint is [`AppendError::IdempotencyKeyReused`];
//! - a load starts at the latest snapshot and returns the events after it; an append without
//!   a snapshot keeps the previous one;
//! - positions are dense from 1 and each stream's versions are in position order, so
//!   [`EventLog::read_positions`] pages are keyset pages.
//!
//! Things only MongoDB has stay on [`EventStore`]: the relay and waiting for a position, the
//! claims beside the log, leases, bulk import.

use std::future::Future;

use super::append::{AppendOutcome, AppendRequest, IdempotencyKey, StreamHead};
use super::read::{EventBatches, LoadedStream, ReadAllOptions};
use super::{AppendError, EventStore, StoreError};
use crate::envelope::{EventEnvelope, StreamId};

/// An event log: appends with optimistic concurrency and idempotency keys, loads of one
/// stream, and reads of the whole log in position order (see the module's documentation).
pub trait EventLog: Clone + Send + Sync + 'static {
    /// Appends all of the request's events to its stream, or none.
    fn append(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send;

    /// The outcome of an earlier append with this key, if it completed.
    fn idempotent_outcome(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, AppendError>> + Send;

    /// The stream's head when read (version 0 for a stream without events).
    fn head(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<StreamHead, StoreError>> + Send;

    /// The latest snapshot and the events after it, up to the stream's head when read.
    fn load(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<LoadedStream, StoreError>> + Send;

    /// Like [`EventLog::load`], but the head may be behind the stream's (see
    /// [`EventStore::load_at_hint`]); an append from it then is a conflict.
    fn load_at_hint(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<LoadedStream, StoreError>> + Send;

    /// The events of a stream from `from_version` on, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// The events at positions `after + 1 ..= after + count` that exist, up to the first
    /// missing one: one page of the log.
    fn read_positions(
        &self,
        after: u64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send;

    /// The whole log after `options.after_position`, in position order, in batches.
    fn read_all(&self, options: ReadAllOptions) -> EventBatches;
}

impl EventLog for EventStore {
    fn append(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<AppendOutcome, AppendError>> + Send {
        EventStore::append(self, request)
    }

    fn idempotent_outcome(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, AppendError>> + Send {
        EventStore::idempotent_outcome(self, key)
    }

    fn head(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<StreamHead, StoreError>> + Send {
        EventStore::head(self, stream)
    }

    fn load(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<LoadedStream, StoreError>> + Send {
        EventStore::load(self, stream)
    }

    fn load_at_hint(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<LoadedStream, StoreError>> + Send {
        EventStore::load_at_hint(self, stream)
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send {
        EventStore::read_stream(self, stream, from_version)
    }

    fn read_positions(
        &self,
        after: u64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<EventEnvelope>, StoreError>> + Send {
        EventStore::read_positions(self, after, count)
    }

    fn read_all(&self, options: ReadAllOptions) -> EventBatches {
        EventStore::read_all(self, options)
    }
}
