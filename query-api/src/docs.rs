//! Read-model documents by `(collection, _id)`: MongoDB point reads behind a moka cache.
//!
//! The cache holds decoded documents and known absences, weighed by their BSON size and
//! bounded by `--cache-max-bytes`; identical concurrent misses are coalesced into one read.
//! Entries live at most `--cache-ttl-secs`, but they are normally dropped long before by
//! change notices (see [`crate::freshness`]).
//!
//! A read that was in flight while an invalidation ran could put a stale document back into
//! the cache. Every invalidation bumps an epoch; a load that sees the epoch move while it
//! read reads again, and the notice handler invalidates the same keys a second time shortly
//! after (see `freshness`), which closes the remaining gap between the check and the insert.
//!
//! Beside the documents the store keeps **rendered views**: the encoded JSON of a view that
//! is expensive to assemble (a year of the dashboard decodes 13 month documents of up to
//! 140 KB each). A rendered view is keyed by the view and the epoch it was rendered at, and
//! every invalidation drops them all and bumps the epoch before and after dropping documents,
//! so no view outlives a change of anything it was built from.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{Document, RawDocumentBuf};
use moka::future::Cache;

use read_models::cache::LoadError;
use read_models::query::DocSource;
use serde_json::value::RawValue;

use crate::metrics::{CacheGauges, Metrics};
use crate::respond::HashedStart;

/// A document's address in the read models.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocKey {
    pub collection: String,
    pub id: String,
}

#[derive(Clone)]
struct Cached {
    doc: Option<Arc<Document>>,
    bytes: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("reading {collection}/{id}: {reason}")]
pub struct DocReadError {
    pub collection: String,
    pub id: String,
    pub reason: String,
}

pub struct CacheSettings {
    /// `None` turns the cache off: every read goes to MongoDB and every view is rendered.
    /// Of the bound, one eighth is for rendered views and the rest for documents.
    pub max_bytes: Option<u64>,
    pub ttl: Duration,
}

/// A rendered view's address: what the view is (route and normalized parameters) and the
/// invalidation epoch it was rendered at.
type RenderedKey = (String, u64);
/// A rendered view or page of a list, shared by every answer until the next invalidation.
pub type RenderedView = Arc<Rendered>;

/// What an answer carries besides its position, encoded once: the `data` of a view or of a
/// page (copied verbatim into every answer), and for a page the cursor of the next one and
/// the list's total.
#[derive(Debug)]
pub struct Rendered {
    pub data: Box<RawValue>,
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
    /// The answer's ETag hashed as far as the data.
    pub start: HashedStart,
    /// The highest `_pos` of the documents it was rendered from: the view includes every
    /// event up to it at least (its model's checkpoint may still be behind).
    pub docs_position: u64,
}

impl Rendered {
    /// A rendered view: data only.
    pub fn view(data: Box<RawValue>) -> Self {
        Self::page(data, None, None)
    }

    /// A rendered page of a list.
    pub fn page(data: Box<RawValue>, next_cursor: Option<String>, total: Option<u64>) -> Self {
        Rendered {
            start: HashedStart::of(&data),
            data,
            next_cursor,
            total,
            docs_position: 0,
        }
    }

    /// The same answer, rendered from documents of positions up to `position`.
    pub fn from_docs_at(mut self, position: u64) -> Self {
        self.docs_position = position;
        self
    }

    /// Bytes this answer part holds, for the cache's bound.
    fn weight(&self) -> usize {
        self.data.get().len() + self.next_cursor.as_ref().map_or(0, String::len)
    }
}

pub struct DocStore {
    database: read_models::dbs::ReadModelDbs,
    cache: Option<Cache<DocKey, Cached>>,
    rendered: Option<Cache<RenderedKey, RenderedView>>,
    max_bytes: u64,
    epoch: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Fixed cost per entry on top of the document: key strings, the `Arc`, moka's bookkeeping.
const ENTRY_OVERHEAD: u32 = 96;
/// Reads again at most this often when invalidations keep racing a load.
const MAX_LOAD_ATTEMPTS: usize = 3;

impl DocStore {
    pub fn new(
        database: read_models::dbs::ReadModelDbs,
        settings: CacheSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let views_max_bytes = settings.max_bytes.map(|max_bytes| max_bytes / 8);
        let rendered = views_max_bytes.map(|max_bytes| {
            Cache::builder()
                .max_capacity(max_bytes)
                .time_to_live(settings.ttl)
                .weigher(|key: &RenderedKey, value: &RenderedView| {
                    u32::try_from(key.0.len() + value.weight())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .build()
        });
        let evictions = metrics.clone();
        let cache = settings.max_bytes.map(|max_bytes| {
            Cache::builder()
                .eviction_listener(move |_key, _value, cause| {
                    if cause.was_evicted() {
                        evictions.evictions.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .max_capacity(max_bytes - max_bytes / 8)
                .time_to_live(settings.ttl)
                .weigher(|key: &DocKey, value: &Cached| {
                    let key_bytes = (key.collection.len() + key.id.len()) as u32;
                    value
                        .bytes
                        .saturating_add(key_bytes)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .support_invalidation_closures()
                .build()
        });
        DocStore {
            database,
            cache,
            rendered,
            max_bytes: settings.max_bytes.unwrap_or(0),
            epoch: AtomicU64::new(0),
            metrics,
        }
    }

    /// The document, from the cache when it holds it.
    pub async fn fetch(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<Arc<Document>>, DocReadError> {
        let Some(cache) = &self.cache else {
            return Ok(self.read(collection, id).await?.doc);
        };
        let key = DocKey {
            collection: collection.to_owned(),
            id: id.to_owned(),
        };
        if let Some(cached) = cache.get(&key).await {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(cached.doc);
        }
        let entry = cache
            .entry(key)
            .or_try_insert_with(self.consistently(|| self.read(collection, id)))
            .await
            .map_err(|error| (*error).clone())?;
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        if !entry.is_fresh() {
            // Another request's load answered this miss.
            self.metrics.coalesced_loads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(entry.into_value().doc)
    }

    /// Several documents of the logical `collection`, in `ids` order: those the cache holds
    /// from it, the others read together (see [`Self::read_many`]).
    /// Unlike [`Self::fetch`], concurrent misses of the same documents are not coalesced.
    pub async fn fetch_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Arc<Document>>>, DocReadError> {
        let key = |id: &str| DocKey {
            collection: collection.to_owned(),
            id: id.to_owned(),
        };
        let mut found: Vec<Option<Option<Arc<Document>>>> = vec![None; ids.len()];
        if let Some(cache) = &self.cache {
            for (slot, id) in found.iter_mut().zip(ids) {
                if let Some(cached) = cache.get(&key(id)).await {
                    self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                    *slot = Some(cached.doc);
                }
            }
        }
        let missing: Vec<String> = ids
            .iter()
            .zip(&found)
            .filter(|(_, slot)| slot.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !missing.is_empty() {
            let loaded = self
                .consistently(|| self.read_many(collection, &missing))
                .await?;
            for (slot, id) in found.iter_mut().zip(ids) {
                if slot.is_some() {
                    continue;
                }
                let cached = loaded.get(id).cloned().unwrap_or(Cached {
                    doc: None,
                    bytes: 0,
                });
                if let Some(cache) = &self.cache {
                    self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
                    cache.insert(key(id), cached.clone()).await;
                }
                *slot = Some(cached.doc);
            }
        }
        Ok(found.into_iter().map(Option::flatten).collect())
    }

    /// The encoded view or page named `view`, rendered by `render` unless the same one was
    /// rendered since the last invalidation (concurrent renderings of one are coalesced).
    /// `view` must name everything the rendering depends on besides the documents: route,
    /// parameters, the page's position in its list, the caller's scope.
    pub async fn rendered<E, F>(&self, view: String, render: F) -> Result<RenderedView, E>
    where
        E: Clone + Send + Sync + 'static,
        F: Future<Output = Result<Rendered, E>>,
    {
        let Some(rendered) = &self.rendered else {
            return render.await.map(Arc::new);
        };
        let epoch = self.epoch.load(Ordering::Acquire);
        let entry = rendered
            .entry((view, epoch))
            .or_try_insert_with(async { render.await.map(Arc::new) })
            .await
            .map_err(|error| (*error).clone())?;
        if entry.is_fresh() {
            self.metrics.views_rendered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.metrics.views_reused.fetch_add(1, Ordering::Relaxed);
        }
        Ok(entry.into_value())
    }

    /// Marks every rendered view stale; called before and after documents are dropped.
    fn views_changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(rendered) = &self.rendered {
            rendered.invalidate_all();
        }
    }

    /// The document as MongoDB has it now, bypassing (and not filling) the cache.
    pub async fn fetch_uncached(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<Arc<Document>>, DocReadError> {
        Ok(self.read(collection, id).await?.doc)
    }

    /// `read`, run again (at most [`MAX_LOAD_ATTEMPTS`] times) while an invalidation ran
    /// during it, so that what it returns is not older than the last invalidation.
    async fn consistently<T, F>(&self, read: impl Fn() -> F) -> Result<T, DocReadError>
    where
        F: Future<Output = Result<T, DocReadError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let before = self.epoch.load(Ordering::Acquire);
            let loaded = read().await?;
            if self.epoch.load(Ordering::Acquire) == before || attempt >= MAX_LOAD_ATTEMPTS {
                return Ok(loaded);
            }
        }
    }

    /// The stored documents among `ids`, by `_id`. Ids of a small collection
    /// (`read_models::names::SMALL_KINDS`) are read with one query, `_id` `$in` them; ids of
    /// any other with a point read each, all concurrently (why: `ReadModelDbs::find_by_ids`).
    async fn read_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Cached>, DocReadError> {
        let mut distinct: Vec<&str> = ids.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if !read_models::names::is_small(collection) || distinct.len() == 1 {
            let reads = distinct.into_iter().map(|id| async move {
                let cached = self.read(collection, id).await?;
                Ok::<_, DocReadError>((id.to_owned(), cached))
            });
            return futures::future::try_join_all(reads)
                .await
                .map(|docs| docs.into_iter().collect());
        }
        let error = |reason: String| DocReadError {
            collection: collection.to_owned(),
            id: distinct.join(","),
            reason,
        };
        self.metrics.mongodb_reads.fetch_add(1, Ordering::Relaxed);
        let found = self
            .database
            .find_by_ids(collection, &distinct)
            .await
            .map_err(|e| error(e.to_string()))?;
        let mut docs = HashMap::with_capacity(distinct.len());
        for raw in found {
            let found = cached(raw).map_err(error)?;
            if let Some(id) = found.doc.as_ref().and_then(|d| d.get_str("_id").ok()) {
                docs.insert(id.to_owned(), found);
            }
        }
        Ok(docs)
    }

    async fn read(&self, collection: &str, id: &str) -> Result<Cached, DocReadError> {
        self.metrics.mongodb_reads.fetch_add(1, Ordering::Relaxed);
        let error = |reason: String| DocReadError {
            collection: collection.to_owned(),
            id: id.to_owned(),
            reason,
        };
        let raw = self
            .database
            .find_by_id(collection, id)
            .await
            .map_err(|e| error(e.to_string()))?;
        match raw {
            None => Ok(Cached {
                doc: None,
                bytes: 0,
            }),
            Some(raw) => cached(raw).map_err(error),
        }
    }

    pub async fn invalidate(&self, keys: &[DocKey]) {
        self.views_changed();
        let Some(cache) = &self.cache else { return };
        for key in keys {
            cache.invalidate(key).await;
        }
        self.views_changed();
    }

    /// Drops every cached document of collections whose names start with `prefix` (one model).
    pub fn invalidate_collections(&self, prefix: &str) {
        self.views_changed();
        let Some(cache) = &self.cache else { return };
        let prefix = prefix.to_owned();
        if cache
            .invalidate_entries_if(move |key, _| key.collection.starts_with(&prefix))
            .is_err()
        {
            cache.invalidate_all();
        }
        self.views_changed();
    }

    pub fn invalidate_all(&self) {
        self.views_changed();
        if let Some(cache) = &self.cache {
            cache.invalidate_all();
        }
        self.views_changed();
    }

    pub fn gauges(&self) -> CacheGauges {
        match &self.cache {
            Some(cache) => CacheGauges {
                entries: cache.entry_count(),
                weighted_bytes: cache.weighted_size()
                    + self.rendered.as_ref().map_or(0, |r| r.weighted_size()),
                max_bytes: self.max_bytes,
            },
            None => CacheGauges {
                entries: 0,
                weighted_bytes: 0,
                max_bytes: 0,
            },
        }
    }

    /// Runs moka's pending maintenance so the gauges are current.
    pub async fn sync(&self) {
        if let Some(cache) = &self.cache {
            cache.run_pending_tasks().await;
        }
        if let Some(rendered) = &self.rendered {
            rendered.run_pending_tasks().await;
        }
    }

    pub fn database(&self) -> &read_models::dbs::ReadModelDbs {
        &self.database
    }
}

/// A stored document as the cache holds it, weighed by its encoded size.
fn cached(raw: RawDocumentBuf) -> Result<Cached, String> {
    let bytes = u32::try_from(raw.as_bytes().len()).unwrap_or(u32::MAX);
    let doc = raw.to_document().map_err(|e| e.to_string())?;
    Ok(Cached {
        doc: Some(Arc::new(doc)),
        bytes,
    })
}

impl DocSource for DocStore {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        self.fetch(collection, id)
            .await
            .map_err(|e| LoadError::new(e.to_string()))
    }

    async fn get_many(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<Vec<Option<Arc<Document>>>, LoadError> {
        self.fetch_many(collection, ids)
            .await
            .map_err(|e| LoadError::new(e.to_string()))
    }
}

/// Reads straight from MongoDB: for the checkpoint poll, which must see what is stored now.
pub struct Uncached<'a>(pub &'a DocStore);

impl DocSource for Uncached<'_> {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        self.0
            .fetch_uncached(collection, id)
            .await
            .map_err(|e| LoadError::new(e.to_string()))
    }
}
