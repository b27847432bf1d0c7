//! The store's documents exactly as stored, for checks that must see what the typed reads
//! would refuse: `history verify` reports a malformed or inconsistent document instead of
//! failing on it.

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use mongodb::Collection;

use super::{log_id, Backend, EventStore, StoreError};

/// A collection of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredCollection {
    /// `events`: the global log, `_id` = [`log_id`] of the position.
    Log,
    /// `commits`: one per append, `_id` = `<stream>/<first_version>`.
    Commits,
    /// `positions`: the first position of each sequenced commit, `_id` = the commit's `_id`.
    Positions,
    /// `outbox`: pending publications, `_id` = the append id.
    Outbox,
}

impl StoredCollection {
    pub fn name(self) -> &'static str {
        match self {
            StoredCollection::Log => "events",
            StoredCollection::Commits => "commits",
            StoredCollection::Positions => "positions",
            StoredCollection::Outbox => "outbox",
        }
    }
}

/// Stored documents, one after another.
pub type RawDocuments = BoxStream<'static, Result<RawDocumentBuf, StoreError>>;

impl EventStore {
    fn raw(&self, collection: StoredCollection) -> Collection<RawDocumentBuf> {
        self.db.collection(collection.name())
    }

    /// Every document of `collection` (only the fields of `projection`, if given), in `_id`
    /// order: MongoDB walks its `_id` index; FerretDB returns insertion order, which is `_id`
    /// order for the log (written in position order) and stream order within a stream's
    /// commits, without sorting the whole collection in memory.
    pub async fn scan_stored(
        &self,
        collection: StoredCollection,
        batch_size: u32,
        projection: Option<Document>,
    ) -> Result<RawDocuments, StoreError> {
        let stored = self.raw(collection);
        let mut find = stored.find(doc! {}).batch_size(batch_size);
        if let Some(projection) = projection {
            find = find.projection(projection);
        }
        let cursor = match self.backend {
            Backend::FerretDb => find.await?,
            Backend::MongoDb => find.sort(doc! {"_id": 1}).await?,
        };
        Ok(cursor.map_err(StoreError::from).boxed())
    }

    /// The stored document of `collection` with this `_id`.
    pub async fn find_stored(
        &self,
        collection: StoredCollection,
        id: impl Into<Bson>,
    ) -> Result<Option<RawDocumentBuf>, StoreError> {
        Ok(self
            .raw(collection)
            .find_one(doc! {"_id": id.into()})
            .await?)
    }

    /// About how many events the log holds (from collection metadata: no scan), for progress
    /// bars and sizing.
    pub async fn estimated_log_size(&self) -> Result<u64, StoreError> {
        Ok(self.log.estimated_document_count().await?)
    }

    /// The stored log document at `position`.
    pub async fn find_stored_event(
        &self,
        position: u64,
    ) -> Result<Option<RawDocumentBuf>, StoreError> {
        self.find_stored(StoredCollection::Log, log_id(position))
            .await
    }
}
