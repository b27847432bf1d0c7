//! The document cache the projector applies events through.
//!
//! Documents are kept decoded (typed [`ReadDoc`] values) with dirty tracking and the `_pos`
//! they had when loaded ("persisted `_pos`"). Every stored document carries `_pos`, the
//! position of the last event applied to it.
//!
//! # Exactly once per document, without transactions
//! [`DocCache::update`] skips a document whose persisted `_pos` is at or past the event: it
//! already holds that event. That alone makes re-applying events after a crash harmless for
//! changes computed from the event and the document itself. Changes computed from *other*
//! documents (lookups) need one more rule, because after a crash a lookup may already hold
//! later events than the document being fixed up:
//!
//! * every document type has a flush **tier** ([`ReadDoc::TIER`]); a change to a document
//!   only ever reads documents of a *higher* tier (or facts that never change);
//! * [`DocCache::take_dirty`] returns documents sorted by tier, and the projector writes them
//!   tier by tier: a tier is started only after every lower tier was written
//!   (see [`flush_batches`]);
//! * so if, while re-applying event `p`, a document of tier `t` turns out to be persisted at
//!   or past `p`, it was written by the interrupted flush, hence every document of a lower
//!   tier was written by that flush too and already holds everything up to where the run
//!   stopped: the cache then skips this event's changes to all documents below tier `t`.
//!
//! Both rules take a document read back from the store to be the one the cache held. Stored
//! dates keep milliseconds, finer than the instants events carry, so nothing a change
//! computes from a document's instants may depend on the finer digits (list keys use
//! `instant::as_stored`): a projector restarted or short of cache would compute it otherwise.
//!
//! # Events are all-or-nothing in the cache
//! [`crate::apply`] calls `begin_event`; the first change of each document in the event
//! saves a copy, and a failed apply (a load error half-way) restores them, so retrying the
//! event does not apply its first half twice.
//!
//! Those copies cost a clone of every document an event changes (a 64-entry list bucket, a
//! dashboard month of 200 KB), which made up most of the projector's apply time. A writer that
//! never retries on the same cache turns them off with [`DocCache::without_rollback`]: after
//! a failed apply the cache is *torn* ([`DocCache::is_torn`]): its changes must not be
//! written, and it must be dropped. The projector reloads the model from its checkpoint after
//! any failed apply anyway.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;

use bson::{Document, RawDocumentBuf};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::names::position_i64;

/// Loads one stored document by collection and `_id` (the projector: MongoDB; tests: memory).
pub trait DocLoader: Send + Sync {
    fn load(
        &self,
        collection: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Document>, LoadError>> + Send;
}

/// A document type of a read model.
///
/// Implementations serialize to a BSON document without `_id`/`_pos` (the cache adds them)
/// and with no `u64` above `i64::MAX`, so encoding cannot fail.
pub trait ReadDoc: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// Flush tier: lower tiers are written first; a change may read only higher tiers.
    const TIER: u8;
}

/// Reading a document failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The store could not be read (network, timeout, server error); retrying may work.
    #[error("read-model store unavailable: {0}")]
    Unavailable(String),
    /// A stored document does not decode into its type; retrying will not help.
    #[error("read-model document {collection}/{id} cannot be decoded: {reason}")]
    Corrupt {
        collection: String,
        id: String,
        reason: String,
    },
}

impl LoadError {
    /// An [`LoadError::Unavailable`] with the store's message.
    pub fn new(reason: impl Into<String>) -> Self {
        LoadError::Unavailable(reason.into())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, LoadError::Unavailable(_))
    }

    pub(crate) fn corrupt(collection: &str, id: &str, reason: impl ToString) -> Self {
        LoadError::Corrupt {
            collection: collection.to_owned(),
            id: id.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A document to write: `doc` is the full replacement (with `_id` and `_pos`), or `None` to
/// delete it. Write every document of a `tier` before any of a higher tier. Encoded BSON, not
/// a [`Document`]: a large catch-up flush holds every changed document at once, and a parsed
/// `Document` takes several times its encoded size.
#[derive(Debug, Clone, PartialEq)]
pub struct DirtyDoc {
    pub collection: String,
    pub id: String,
    pub doc: Option<RawDocumentBuf>,
    pub tier: u8,
    /// The position this version reflects (its `_pos`; for a delete, the deleting event's).
    /// A writer must not replace or delete a stored version with a higher `_pos`: that one
    /// was written by a later owner of the model (see the projector's `write_docs`).
    pub pos: u64,
    /// Whether the database held the document when this cache last read or wrote it. `false`
    /// lets a writer insert instead of replace (FerretDB inserts without scanning the
    /// collection); a writer must still fall back to a replace if the insert finds it.
    pub stored: bool,
}

/// Splits `take_dirty` output into batches of one tier each, lowest first: write each batch
/// (concurrently within it, if you like) and wait for it to succeed before the next.
pub fn flush_batches(mut dirty: Vec<DirtyDoc>) -> Vec<Vec<DirtyDoc>> {
    dirty.sort_by_key(|d| d.tier);
    let mut batches: Vec<Vec<DirtyDoc>> = Vec::new();
    for doc in dirty {
        match batches.last_mut() {
            Some(batch) if batch[0].tier == doc.tier => batch.push(doc),
            _ => batches.push(vec![doc]),
        }
    }
    batches
}

type Key = (String, String);

trait ErasedDoc: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn clone_box(&self) -> Box<dyn ErasedDoc>;
    fn encode(&self) -> Result<Document, bson::ser::Error>;
    fn seal(&self, id: &str, pos: i64) -> Result<(RawDocumentBuf, usize), bson::ser::Error>;
}

impl<T: ReadDoc> ErasedDoc for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn clone_box(&self) -> Box<dyn ErasedDoc> {
        Box::new(self.clone())
    }
    fn encode(&self) -> Result<Document, bson::ser::Error> {
        bson::to_document(self)
    }
    fn seal(&self, id: &str, pos: i64) -> Result<(RawDocumentBuf, usize), bson::ser::Error> {
        crate::stored::seal(self, id, pos)
    }
}

struct Entry {
    /// `None`: no such document (never stored, or deleted).
    value: Option<Box<dyn ErasedDoc>>,
    tier: u8,
    /// `_pos` of the stored version (0 when not stored).
    persisted_pos: u64,
    /// `_pos` of the version in memory.
    pos: u64,
    dirty: bool,
    last_used: u64,
    /// The database held the document at the last read or write (see [`DirtyDoc::stored`]).
    stored: bool,
    /// Encoded (BSON) size of the document when last read or written: what the byte bound
    /// counts. 0 for an absent document and for one created since the last flush.
    bytes: usize,
}

impl Entry {
    /// The same document read as another type is a layout change inside the crate; it is
    /// re-decoded so the caller still gets a faithful value.
    fn ensure_type<T: ReadDoc>(&mut self, collection: &str, id: &str) -> Result<(), LoadError> {
        let Some(value) = &self.value else {
            return Ok(());
        };
        if value.as_any().is::<T>() {
            return Ok(());
        }
        let doc = value
            .encode()
            .map_err(|e| LoadError::corrupt(collection, id, e))?;
        let typed: T =
            bson::from_document(doc).map_err(|e| LoadError::corrupt(collection, id, e))?;
        self.value = Some(Box::new(typed));
        Ok(())
    }

    fn snapshot(&self) -> Entry {
        Entry {
            value: self.value.as_ref().map(|v| v.clone_box()),
            tier: self.tier,
            persisted_pos: self.persisted_pos,
            pos: self.pos,
            dirty: self.dirty,
            last_used: self.last_used,
            stored: self.stored,
            bytes: self.bytes,
        }
    }
}

/// Typed documents with dirty tracking, persisted `_pos` guard and LRU eviction of clean
/// documents. One cache per writer; documents of several models may share it (their
/// collection names differ).
pub struct DocCache {
    capacity: usize,
    capacity_bytes: usize,
    entries: HashMap<Key, Entry>,
    tick: u64,
    /// The event being applied, if any.
    event: Option<u64>,
    /// Changes of this event to documents below this tier are skipped (see module docs).
    skip_below: u8,
    /// First-change copies of this event's documents, to roll back a failed apply.
    undo: Vec<(Key, Option<Entry>)>,
    undo_keys: HashSet<Key>,
    /// Whether events save the copies a rollback needs (see the module documentation).
    rollback: bool,
    /// A failed apply left part of an event behind, with no copies to undo it.
    torn: bool,
    /// Every document the store holds, when this cache has written all of them itself (see
    /// [`DocCache::starting_from_empty_store`]): a miss outside it needs no read.
    stored_keys: Option<HashSet<Key>>,
    /// Encoded size of the documents held once the last flush had evicted what it could.
    held_bytes: usize,
}

impl DocCache {
    /// A cache keeping at most `capacity_docs` documents after each flush, evicting clean
    /// ones (dirty documents are always kept until taken).
    pub fn new(capacity_docs: usize) -> Self {
        DocCache {
            capacity: capacity_docs,
            capacity_bytes: usize::MAX,
            entries: HashMap::new(),
            tick: 0,
            event: None,
            skip_below: 0,
            undo: Vec::new(),
            undo_keys: HashSet::new(),
            rollback: true,
            torn: false,
            stored_keys: None,
            held_bytes: 0,
        }
    }

    /// Saves no copies for rollbacks: a failed apply leaves the cache torn (see the module
    /// documentation), for a writer that drops its cache after every failure.
    pub fn without_rollback(mut self) -> Self {
        self.rollback = false;
        self
    }

    /// A failed apply left part of an event in a cache without rollback: drop it.
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    /// Also keeps the documents held after each flush within `bytes` of their encoded size,
    /// evicting clean ones least recently used first. A document count alone bounds nothing:
    /// read-model documents range from a hundred bytes to hundreds of kilobytes.
    pub fn with_byte_limit(mut self, bytes: usize) -> Self {
        self.capacity_bytes = bytes;
        self
    }

    /// Encoded size of the documents held after the last flush (summed by its eviction).
    pub fn bytes(&self) -> usize {
        self.held_bytes
    }

    /// Declares that the store holds none of the documents this cache will ask for and that
    /// this cache is their only writer. From then on the cache remembers the keys it has
    /// written and answers a miss on any other key as "no such document" without calling the
    /// loader. A projection built from position 0 into empty collections would otherwise pay
    /// a point read for every document it creates, and on FerretDB each point read scans
    /// the collection. Costs one key per stored document; documents evicted from the cache
    /// are still read back when needed.
    pub fn starting_from_empty_store(&mut self) {
        self.stored_keys = Some(HashSet::new());
    }

    /// Number of documents held (clean and dirty).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of documents changed since the last [`DocCache::take_dirty`].
    pub fn dirty_count(&self) -> usize {
        self.entries.values().filter(|e| e.dirty).count()
    }

    pub(crate) fn begin_event(&mut self, position: u64) {
        self.end_event();
        self.event = Some(position);
    }

    pub(crate) fn end_event(&mut self) {
        self.event = None;
        self.skip_below = 0;
        self.undo.clear();
        self.undo_keys.clear();
    }

    pub(crate) fn rollback_event(&mut self) {
        if !self.rollback {
            self.torn = true;
        }
        for (key, saved) in self.undo.drain(..).rev() {
            match saved {
                Some(entry) => {
                    self.entries.insert(key, entry);
                }
                None => {
                    self.entries.remove(&key);
                }
            }
        }
        self.end_event();
    }

    /// Loads the entry for `(collection, id)` if it is not held yet, and notes whether it
    /// shows that the current event was already flushed (see module docs).
    async fn entry<T: ReadDoc>(
        &mut self,
        loader: &impl DocLoader,
        collection: &str,
        id: &str,
    ) -> Result<Key, LoadError> {
        let key = (collection.to_owned(), id.to_owned());
        self.tick += 1;
        if !self.entries.contains_key(&key) {
            let known_absent = self
                .stored_keys
                .as_ref()
                .is_some_and(|stored| !stored.contains(&key));
            let entry = load_entry::<T>(loader, collection, id, known_absent, self.tick).await?;
            self.entries.insert(key.clone(), entry);
        }
        let tick = self.tick;
        let event = self.event;
        let Some(entry) = self.entries.get_mut(&key) else {
            return Err(LoadError::corrupt(
                collection,
                id,
                "vanished from the cache",
            ));
        };
        entry.last_used = tick;
        entry.ensure_type::<T>(collection, id)?;
        if let Some(position) = event {
            if entry.persisted_pos >= position {
                self.skip_below = self.skip_below.max(entry.tier);
            }
        }
        Ok(key)
    }

    fn save_undo(&mut self, key: &Key) {
        if self.rollback && self.event.is_some() && self.undo_keys.insert(key.clone()) {
            let saved = self.entries.get(key).map(Entry::snapshot);
            self.undo.push((key.clone(), saved));
        }
    }

    /// Applies `change` to the document (its `Default` if absent) unless the document
    /// already holds `position` (persisted `_pos >= position`), or an already flushed
    /// higher-tier document showed it is final (see module docs). Returns whether the
    /// change ran.
    pub async fn update<T: ReadDoc>(
        &mut self,
        loader: &impl DocLoader,
        collection: &str,
        id: &str,
        position: u64,
        change: impl FnOnce(&mut T),
    ) -> Result<bool, LoadError> {
        let key = self.entry::<T>(loader, collection, id).await?;
        let skip = match self.entries.get(&key) {
            Some(entry) => entry.persisted_pos >= position || entry.tier < self.skip_below,
            None => true,
        };
        if skip {
            return Ok(false);
        }
        self.save_undo(&key);
        let Some(entry) = self.entries.get_mut(&key) else {
            return Ok(false);
        };
        let value = entry.value.get_or_insert_with(|| Box::new(T::default()));
        if let Some(typed) = value.as_any_mut().downcast_mut::<T>() {
            change(typed);
        }
        entry.pos = entry.pos.max(position);
        entry.dirty = true;
        Ok(true)
    }

    /// Like [`DocCache::update`], but leaves an absent document absent.
    pub async fn update_existing<T: ReadDoc>(
        &mut self,
        loader: &impl DocLoader,
        collection: &str,
        id: &str,
        position: u64,
        change: impl FnOnce(&mut T),
    ) -> Result<bool, LoadError> {
        if self.get::<T>(loader, collection, id).await?.is_none() {
            return Ok(false);
        }
        self.update(loader, collection, id, position, change).await
    }

    /// The document as the cache holds it (loading it if needed).
    pub async fn get<T: ReadDoc>(
        &mut self,
        loader: &impl DocLoader,
        collection: &str,
        id: &str,
    ) -> Result<Option<&T>, LoadError> {
        let key = self.entry::<T>(loader, collection, id).await?;
        Ok(self
            .entries
            .get(&key)
            .and_then(|e| e.value.as_ref())
            .and_then(|v| v.as_any().downcast_ref::<T>()))
    }

    /// A copy of the document, for reading it while changing others.
    pub async fn get_cloned<T: ReadDoc>(
        &mut self,
        loader: &impl DocLoader,
        collection: &str,
        id: &str,
    ) -> Result<Option<T>, LoadError> {
        Ok(self.get::<T>(loader, collection, id).await?.cloned())
    }

    /// Marks the document deleted. Deleting forgets its `_pos`, so the read models never
    /// delete documents whose absence differs from their initial state; they keep emptied
    /// documents instead. Not guarded by `_pos`.
    pub fn delete(&mut self, collection: &str, id: &str, position: u64) {
        let key = (collection.to_owned(), id.to_owned());
        self.save_undo(&key);
        self.tick += 1;
        let tick = self.tick;
        // Not read first, so whether it is stored is unknown: assume it is.
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            value: None,
            tier: 0,
            persisted_pos: 0,
            pos: 0,
            dirty: false,
            last_used: tick,
            stored: true,
            bytes: 0,
        });
        entry.value = None;
        entry.pos = entry.pos.max(position);
        entry.dirty = true;
        entry.last_used = tick;
    }

    /// The documents changed since the last call, lowest tier first, as full replacements
    /// with `_id` and `_pos` (or `None` to delete). They are marked clean (and their `_pos`
    /// counts as persisted from now on); clean documents beyond the capacity are evicted,
    /// least recently used first.
    pub fn take_dirty(&mut self) -> Vec<DirtyDoc> {
        self.end_event();
        let mut out = Vec::new();
        for ((collection, id), entry) in self.entries.iter_mut().filter(|(_, e)| e.dirty) {
            let (doc, bytes) = match &entry.value {
                None => (None, 0),
                Some(value) => match value.seal(id, position_i64(entry.pos)) {
                    Ok((sealed, bytes)) => (Some(sealed), bytes),
                    Err(error) => {
                        // Unreachable for the crate's document types (see `ReadDoc`); kept
                        // dirty so the next flush tries again and the log keeps saying so.
                        tracing::error!(%collection, %id, %error, "read-model document does not encode");
                        continue;
                    }
                },
            };
            entry.dirty = false;
            entry.persisted_pos = entry.pos;
            entry.bytes = bytes;
            let stored = entry.stored;
            entry.stored = doc.is_some();
            if let Some(stored_keys) = &mut self.stored_keys {
                let key = (collection.clone(), id.clone());
                if doc.is_some() {
                    stored_keys.insert(key);
                } else {
                    stored_keys.remove(&key);
                }
            }
            out.push(DirtyDoc {
                collection: collection.clone(),
                id: id.clone(),
                doc,
                tier: entry.tier,
                pos: entry.pos,
                stored,
            });
        }
        out.sort_by(|a, b| (a.tier, &a.collection, &a.id).cmp(&(b.tier, &b.collection, &b.id)));
        self.evict();
        out
    }

    fn evict(&mut self) {
        let mut bytes = self.entries.values().map(|e| e.bytes).sum();
        self.held_bytes = bytes;
        if self.entries.len() <= self.capacity && bytes <= self.capacity_bytes {
            return;
        }
        let mut clean: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.dirty)
            .map(|(k, e)| (e.last_used, k.clone()))
            .collect();
        clean.sort_unstable();
        for (_, key) in clean {
            if self.entries.len() <= self.capacity && bytes <= self.capacity_bytes {
                break;
            }
            if let Some(entry) = self.entries.remove(&key) {
                bytes -= entry.bytes;
            }
        }
        self.held_bytes = bytes;
    }
}

fn stored_pos(doc: &Document) -> u64 {
    match doc.get("_pos") {
        Some(bson::Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(bson::Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// Reads the stored document (unless it is known to be absent) into a fresh cache entry.
async fn load_entry<T: ReadDoc>(
    loader: &impl DocLoader,
    collection: &str,
    id: &str,
    known_absent: bool,
    tick: u64,
) -> Result<Entry, LoadError> {
    let stored = if known_absent {
        None
    } else {
        loader.load(collection, id).await?
    };
    let found = stored.is_some();
    let (value, persisted_pos, bytes) = match stored {
        Some(doc) => {
            let pos = stored_pos(&doc);
            let (value, bytes) = crate::stored::open::<T>(&doc)
                .map_err(|e| LoadError::corrupt(collection, id, e))?;
            (Some(Box::new(value) as Box<dyn ErasedDoc>), pos, bytes)
        }
        None => (None, 0, 0),
    };
    Ok(Entry {
        value,
        tier: T::TIER,
        persisted_pos,
        pos: persisted_pos,
        dirty: false,
        last_used: tick,
        stored: found,
        bytes,
    })
}
