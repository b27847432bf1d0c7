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
//!   [`EventLog::read_positions`] pages are keyset pages;
//! - a bulk import ([`EventLog::import`], the data generator's way in), as the log's only
//!   writer, gives the imported events dense positions from its `first_position` in the order
//!   written; once [`BulkImport::finish`]ed, every stream's head is its last imported commit,
//!   with the snapshot given for it, and loads and reads see the commits as if appended.
//!
//! Things only MongoDB has stay on [`EventStore`]: the relay and waiting for a position, the
//! claims beside the log, leases.

use std::collections::HashMap;
use std::future::Future;

use super::append::{AppendOutcome, AppendRequest, IdempotencyKey, Snapshot, StreamHead};
use super::import::{Import, ImportedCommit};
use super::read::{EventBatches, LoadedStream, ReadAllOptions};
use super::{AppendError, EventStore, StoreError};
use crate::envelope::{EventEnvelope, StreamId};

/// An event log: appends with optimistic concurrency and idempotency keys, loads of one
/// stream, reads of the whole log in position order and bulk imports (see the module's
/// documentation).
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

    /// An import in progress.
    type Import<'a>: BulkImport + Send
    where
        Self: 'a;

    /// Starts a bulk import whose first event gets position `first_position`, the one after
    /// the log's last (1 for an empty log).
    fn import(&self, first_position: u64) -> Self::Import<'_>;
}

/// A bulk import: commits decided elsewhere written into the log in batches, without the
/// checks and idempotency keys of an append, then the imported streams' heads.
pub trait BulkImport {
    /// The position the next imported event gets.
    fn next_position(&self) -> u64;

    /// Writes one batch of commits, in order, after the ones written before.
    fn write(
        &mut self,
        batch: &[ImportedCommit],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets every imported stream's head, with its snapshot from `snapshots` (by stream name)
    /// where there is one; returns the position after the last imported event.
    fn finish(
        self,
        snapshots: &HashMap<String, Snapshot>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
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

    type Import<'a> = Import<'a>;

    fn import(&self, first_position: u64) -> Import<'_> {
        EventStore::import(self, first_position)
    }
}

impl BulkImport for Import<'_> {
    fn next_position(&self) -> u64 {
        Import::next_position(self)
    }

    fn write(
        &mut self,
        batch: &[ImportedCommit],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Import::write(self, batch)
    }

    fn finish(
        self,
        snapshots: &HashMap<String, Snapshot>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        Import::finish(self, snapshots)
    }
}
