//! Assembling API views from point reads of the read-model documents.
//!
//! The query API implements [`DocSource`] (MongoDB behind a cache) and knows the live
//! [`Generations`]; every function here reads a handful of documents by computed `_id`.
//! Lists page by keyset: [`PageRequest::after`] is the opaque [`CursorKey`] of the last item
//! of the previous page, so a page costs the same whatever its number.

use std::future::Future;
use std::sync::Arc;

use bson::Document;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::LoadError;
use crate::names;
use crate::Model;

mod calendar;
mod dashboard;
mod inbox;
mod lists;
mod messages;
mod search;
pub mod views;

pub use calendar::calendar_week;
pub(crate) use dashboard::{
    chart_months, lead_source_stats, service_type_stats, sort_crew as dashboard_sort_crew,
};
pub use dashboard::{check_dashboard_range, dashboard, MAX_DASHBOARD_DAYS};
pub use inbox::{unread_count, user_threads};
pub use lists::{crew_member_for_user, customer, customers, job, jobs, SCAN_BUDGET};
pub use messages::{thread_messages, thread_meta};
pub use views::*;

/// Point reads of read-model documents (the query API: MongoDB behind a cache; tests: memory).
pub trait DocSource: Send + Sync {
    fn get(
        &self,
        collection: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Document>>, LoadError>> + Send;

    /// Several documents of the logical `collection`, in `ids` order. The default reads each
    /// concurrently; a source may answer several `_id`s of one physical collection with one
    /// query (MongoDB's `$in`) where that is cheaper (the query API: small collections).
    fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Arc<Document>>>, LoadError>> + Send {
        futures::future::try_join_all(ids.iter().map(|id| self.get(collection, id)))
    }
}

/// The live generation of each model (1 unless the registry says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generations([u32; 5]);

impl Default for Generations {
    fn default() -> Self {
        Generations([1; 5])
    }
}

impl Generations {
    /// Generation 1 for every model.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, model: Model) -> u32 {
        self.0[model.index()]
    }

    pub fn set(&mut self, model: Model, generation: u32) {
        self.0[model.index()] = generation.max(1);
    }

    pub fn with(mut self, model: Model, generation: u32) -> Self {
        self.set(model, generation);
        self
    }

    /// Reads the registry documents (`rm_registry`, `_id` = model name) through `src`.
    pub async fn load(src: &impl DocSource) -> Result<Self, QueryError> {
        let docs = futures::future::try_join_all(
            Model::ALL.map(|model| src.get(names::REGISTRY_COLLECTION, model.as_str())),
        )
        .await?;
        let mut generations = Generations::default();
        for (model, doc) in Model::ALL.into_iter().zip(docs) {
            generations.set(model, names::registry_generation(doc.as_deref()));
        }
        Ok(generations)
    }

    pub(crate) fn collection(&self, model: Model, kind: &str) -> String {
        names::collection(model, self.get(model), kind)
    }
}

/// Largest page the list functions return; larger limits are reduced to it.
pub const MAX_PAGE_LIMIT: usize = 200;

/// One page of a list: at most `limit` items after the `after` cursor (exclusive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageRequest {
    /// Clamped to `1..=MAX_PAGE_LIMIT`.
    pub limit: usize,
    pub after: Option<CursorKey>,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        PageRequest { limit, after: None }
    }

    pub(crate) fn clamped_limit(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE_LIMIT)
    }
}

/// Where a page ended. Opaque to callers: they encode (and sign) it and hand it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CursorKey(pub serde_json::Value);

/// Items of one page, the cursor of the next page (`None` on the last page), and the total
/// number of items in the list when it is known without scanning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<CursorKey>,
    pub total: Option<u64>,
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Reading failed; retrying may work (5xx).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A stored document does not have the expected shape (5xx).
    #[error("read-model document {collection}/{id} is malformed: {reason}")]
    Corrupt {
        collection: String,
        id: String,
        reason: String,
    },
    /// The cursor was not made by this list (400).
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// A parameter is out of range (400).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl QueryError {
    /// True for errors caused by the request (cursor or parameters), false for the store.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            QueryError::InvalidCursor(_) | QueryError::Invalid { .. }
        )
    }
}

/// Reads and decodes several documents of one collection at once ([`DocSource::get_many`]):
/// on a database that answers each query in a millisecond or more, one round instead of a
/// sequence keeps a view's latency that of its slowest read. Results are in `ids` order.
pub(crate) async fn read_many<T: DeserializeOwned>(
    src: &impl DocSource,
    collection: &str,
    ids: &[String],
) -> Result<Vec<Option<T>>, QueryError> {
    src.get_many(collection, ids)
        .await?
        .iter()
        .zip(ids)
        .map(|(doc, id)| open(collection, id, doc.as_deref()))
        .collect()
}

/// Reads and decodes one document.
pub(crate) async fn read<T: DeserializeOwned>(
    src: &impl DocSource,
    collection: &str,
    id: &str,
) -> Result<Option<T>, QueryError> {
    open(collection, id, src.get(collection, id).await?.as_deref())
}

fn open<T: DeserializeOwned>(
    collection: &str,
    id: &str,
    doc: Option<&Document>,
) -> Result<Option<T>, QueryError> {
    doc.map(|doc| {
        crate::stored::open(doc)
            .map(|(value, _)| value)
            .map_err(|e| QueryError::Corrupt {
                collection: collection.to_owned(),
                id: id.to_owned(),
                reason: e.to_string(),
            })
    })
    .transpose()
}

/// The checkpoint of one model's live generation (0 when it has none yet).
pub async fn model_checkpoint(
    src: &impl DocSource,
    gens: &Generations,
    model: Model,
) -> Result<u64, QueryError> {
    let collection = gens.collection(model, names::META_KIND);
    let doc = src.get(&collection, names::CHECKPOINT_ID).await?;
    Ok(names::checkpoint_position(doc.as_deref()))
}

/// Every model's checkpoint, in `Model::ALL` order, read concurrently.
pub async fn model_checkpoints(
    src: &impl DocSource,
    gens: &Generations,
) -> Result<[u64; Model::ALL.len()], QueryError> {
    let read =
        futures::future::try_join_all(Model::ALL.map(|model| model_checkpoint(src, gens, model)))
            .await?;
    let mut checkpoints = [0; Model::ALL.len()];
    checkpoints.copy_from_slice(&read);
    Ok(checkpoints)
}

/// The lowest checkpoint over the five models: every view reflects at least this position.
pub async fn checkpoint(src: &impl DocSource, gens: &Generations) -> Result<u64, QueryError> {
    Ok(model_checkpoints(src, gens)
        .await?
        .into_iter()
        .min()
        .unwrap_or(0))
}

/// A [`DocSource`] that notes the highest `_pos` of the documents read through it: the
/// position up to which a view built from them is known to include events, which may be
/// past the model's checkpoint when documents were read while a flush was under way.
pub struct PositionTracking<'a, S> {
    inner: &'a S,
    highest: std::sync::atomic::AtomicU64,
}

impl<'a, S: DocSource> PositionTracking<'a, S> {
    pub fn new(inner: &'a S) -> Self {
        PositionTracking {
            inner,
            highest: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The highest `_pos` read so far (0 when no document was found).
    pub fn highest_position(&self) -> u64 {
        self.highest.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn note(&self, doc: &Option<Arc<Document>>) {
        if let Some(pos) = doc.as_ref().and_then(|d| d.get_i64("_pos").ok()) {
            let pos = u64::try_from(pos).unwrap_or(0);
            self.highest
                .fetch_max(pos, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl<S: DocSource> DocSource for PositionTracking<'_, S> {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        let doc = self.inner.get(collection, id).await?;
        self.note(&doc);
        Ok(doc)
    }

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Arc<Document>>>, LoadError> {
        let docs = self.inner.get_many(collection, ids).await?;
        docs.iter().for_each(|doc| self.note(doc));
        Ok(docs)
    }
}
