//! The read-model storage port: what projecting one model generation needs of the storage,
//! and the one error its adapters report.
//!
//! [`ProjectionStore`] is implemented by the MongoDB adapter ([`crate::dbs::ReadModelDbs`])
//! and by the in-memory store of the tests ([`crate::memory::MemoryStore`]), so the
//! projector's apply-and-flush logic runs against either. Its rules:
//!
//! - [`ProjectionStore::write_docs`] writes dirty documents tier by tier
//!   ([`crate::cache::flush_batches`]) and never replaces or deletes a stored version with a
//!   higher `_pos` (the fence against a former owner of the model; see `ReadModelDbs`);
//! - the checkpoint is written after the documents, the parked list before the checkpoint
//!   (the caller's order);
//! - a dead letter of the same model and position again bumps its attempts.

use std::future::Future;

use events::EventEnvelope;
use serde::{Deserialize, Serialize};

use crate::cache::{DirtyDoc, DocLoader};

/// A read-model storage operation failed (the database unreachable, a server error).
#[derive(Debug, thiserror::Error)]
#[error("read-model database: {driver}")]
pub struct DbError {
    #[source]
    driver: mongodb::error::Error,
}

impl DbError {
    /// Wraps a driver error.
    pub(crate) fn driver(driver: mongodb::error::Error) -> Self {
        DbError { driver }
    }

    /// Whether a write failed because a document with the same `_id` (or unique key) exists.
    pub fn is_duplicate_key(&self) -> bool {
        events::store::is_duplicate_key(&self.driver)
    }
}

/// An aggregate whose events no longer reach a model since one of them failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedAggregate {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// Position of the event that failed first.
    pub position: i64,
}

/// An event a model could not apply, as recorded in `rm_dead_letters` (`<model>/<position>`).
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub model: &'a str,
    pub generation: u32,
    pub event: &'a EventEnvelope,
    pub error: &'a str,
    /// Attempts this time (added to those recorded before).
    pub attempts: u32,
}

impl DeadLetter<'_> {
    /// `<model>/<position>`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.model, self.event.position.unwrap_or(0))
    }
}

/// What one model generation's projection reads and writes (see the module's documentation).
/// `meta` is the generation's meta collection ([`crate::names::meta_collection`]).
pub trait ProjectionStore: DocLoader + Clone + Send + Sync + 'static {
    /// Writes (or deletes) documents, tier by tier, `concurrency` writes at a time within a
    /// tier, leaving in place any stored version with a higher `_pos`. Returns how many
    /// documents were so left (fenced).
    fn write_docs(
        &self,
        dirty: Vec<DirtyDoc>,
        concurrency: usize,
    ) -> impl Future<Output = Result<usize, DbError>> + Send;

    /// The generation's checkpoint, `None` when it has never been written.
    fn checkpoint(&self, meta: &str) -> impl Future<Output = Result<Option<u64>, DbError>> + Send;

    fn write_checkpoint(
        &self,
        meta: &str,
        position: u64,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// The aggregates parked for the generation.
    fn parked(
        &self,
        meta: &str,
    ) -> impl Future<Output = Result<Vec<ParkedAggregate>, DbError>> + Send;

    fn write_parked(
        &self,
        meta: &str,
        parked: &[ParkedAggregate],
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Records an event a model could not apply. The same model and position again (a replay
    /// after a crash, or a rebuild) bumps the attempts and keeps the first failure time.
    fn dead_letter(
        &self,
        letter: DeadLetter<'_>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// The names of the collections that start with `prefix` (one generation's:
    /// [`crate::names::generation_prefix`]), sorted.
    fn collections_named(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, DbError>> + Send;

    /// Creates the collection `name` unless it exists.
    fn create_collection(&self, name: &str) -> impl Future<Output = Result<(), DbError>> + Send;
}
