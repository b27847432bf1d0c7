//! Where read-model collections live: one database, `MONGODB_READ_MODELS_DB` (default
//! `<MONGODB_DB>_read_models`), beside the event store's. It holds the registry, the record of
//! which event store and layout the read models were built from, the dead letters, and every
//! generation of every model (`rm_<model>_g<n>_<kind>`, [`crate::names::collection`]).
//!
//! [`ReadModelDbs`] is the read models' MongoDB adapter, the one place besides the event store
//! (`events`) where services touch the driver: the query API's point reads
//! ([`ReadModelDbs::find_by_id`]), the projector's [`ProjectionStore`] (`write`: documents
//! under the `_pos` fence; `state`: checkpoints, parked aggregates, dead letters, the
//! registry, the source record, generation collections) and its instances' heartbeats and
//! leases (`instances`). Errors are [`DbError`]s.
//!
//! The read models once lived in a database per model: FerretDB's SQLite backend kept each
//! database in one file behind one write lock and copied the metadata of every collection of
//! a database on each `find`. Its PostgreSQL backend has neither cost worth a database per
//! model, and a MongoDB user finds every read model in one place.

mod instances;
mod state;
mod write;

use bson::{doc, Document, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::{Client, Collection, Database};

use crate::cache::{DocLoader, LoadError};
use crate::store::{DbError, ProjectionStore};

pub use instances::Heartbeat;
pub use state::Source;

/// The database of the read models, addressed by collection name.
#[derive(Debug, Clone)]
pub struct ReadModelDbs {
    base: Database,
}

impl ReadModelDbs {
    /// The read models in the database `base`.
    pub fn new(client: Client, base: impl Into<String>) -> Self {
        ReadModelDbs {
            base: client.database(&base.into()),
        }
    }

    /// The database's name.
    pub fn base_name(&self) -> &str {
        self.base.name()
    }

    /// The database: registry, source record, dead letters and every model's generations.
    /// For tests that inspect or tamper with documents as stored; the services use the
    /// methods of this adapter.
    pub fn base(&self) -> Database {
        self.base.clone()
    }

    /// The collection `name`, as [`ReadModelDbs::base`] is.
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.base.collection(name)
    }

    /// The names of the read models' collections.
    pub async fn list_collection_names(&self) -> Result<Vec<String>, DbError> {
        self.base
            .list_collection_names()
            .await
            .map_err(DbError::driver)
    }

    /// Drops the read models' database.
    pub async fn drop(&self) -> Result<(), DbError> {
        self.base.drop().await.map_err(DbError::driver)
    }

    /// Drops the collection `name` (nothing happens if it does not exist).
    pub async fn drop_collection(&self, name: &str) -> Result<(), DbError> {
        self.base
            .collection::<Document>(name)
            .drop()
            .await
            .map_err(DbError::driver)
    }

    /// Every document of the collection `name`, in no particular order: for small
    /// collections and those a caller compares whole (`projector rebuild --verify`).
    pub async fn all_docs(&self, name: &str) -> Result<Vec<Document>, DbError> {
        self.base
            .collection::<Document>(name)
            .find(doc! {})
            .await
            .map_err(DbError::driver)?
            .try_collect()
            .await
            .map_err(DbError::driver)
    }

    /// The stored document of `collection` with this `_id`, as stored.
    pub async fn find_by_id(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<RawDocumentBuf>, DbError> {
        self.base
            .collection::<RawDocumentBuf>(collection)
            .find_one(doc! {"_id": id})
            .await
            .map_err(DbError::driver)
    }

    /// The stored documents of `collection` among `ids`, in no particular order, with one
    /// query (`_id` `$in` them). On MongoDB that is a lookup in the `_id` index per id; FerretDB
    /// reads the whole collection for a `$in`, so callers use it only for collections that
    /// stay small (`names::is_small`) and a point read per id otherwise.
    pub async fn find_by_ids(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> Result<Vec<RawDocumentBuf>, DbError> {
        self.base
            .collection::<RawDocumentBuf>(collection)
            .find(doc! {"_id": {"$in": ids}})
            .await
            .map_err(DbError::driver)?
            .try_collect()
            .await
            .map_err(DbError::driver)
    }
}

/// The projector's loads: one point read by `_id` in the document's collection.
impl DocLoader for ReadModelDbs {
    async fn load(&self, collection: &str, id: &str) -> Result<Option<Document>, LoadError> {
        self.base
            .collection::<Document>(collection)
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| LoadError::new(format!("{collection}/{id}: {e}")))
    }
}

impl ProjectionStore for ReadModelDbs {
    async fn write_docs(
        &self,
        dirty: Vec<crate::cache::DirtyDoc>,
        concurrency: usize,
    ) -> Result<usize, DbError> {
        write::write_docs(self, dirty, concurrency).await
    }

    async fn checkpoint(&self, meta: &str) -> Result<Option<u64>, DbError> {
        state::checkpoint(self, meta).await
    }

    async fn write_checkpoint(&self, meta: &str, position: u64) -> Result<(), DbError> {
        state::write_checkpoint(self, meta, position).await
    }

    async fn parked(&self, meta: &str) -> Result<Vec<crate::store::ParkedAggregate>, DbError> {
        state::parked(self, meta).await
    }

    async fn write_parked(
        &self,
        meta: &str,
        parked: &[crate::store::ParkedAggregate],
    ) -> Result<(), DbError> {
        state::write_parked(self, meta, parked).await
    }

    async fn dead_letter(&self, letter: crate::store::DeadLetter<'_>) -> Result<(), DbError> {
        state::dead_letter(self, letter).await
    }

    async fn collections_named(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let mut names = self.list_collection_names().await?;
        names.retain(|name| name.starts_with(prefix));
        names.sort();
        Ok(names)
    }

    async fn create_collection(&self, name: &str) -> Result<(), DbError> {
        state::create_collection(self, name).await
    }
}
