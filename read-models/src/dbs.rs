//! Where read-model collections live: one database, `MONGODB_READ_MODELS_DB` (default
//! `<MONGODB_DB>_read_models`), beside the event store's. It holds the registry, the record of
//! which event store and layout the read models were built from, the dead letters, and every
//! generation of every model (`rm_<model>_g<n>_<kind>`, [`names::collection`]).
//!
//! The read models once lived in a database per model: FerretDB's SQLite backend kept each
//! database in one file behind one write lock and copied the metadata of every collection of
//! a database on each `find`. Its PostgreSQL backend has neither cost worth a database per
//! model, and a MongoDB user finds every read model in one place.

use bson::{doc, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::{Client, Collection, Database};

/// The database of the read models, addressed by collection name: every point read and
/// write of the projector and the query API goes through [`ReadModelDbs::collection`].
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
    pub fn base(&self) -> Database {
        self.base.clone()
    }

    /// The collection `name`.
    pub fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.base.collection(name)
    }

    /// The names of the read models' collections.
    pub async fn list_collection_names(&self) -> mongodb::error::Result<Vec<String>> {
        self.base.list_collection_names().await
    }

    /// Drops the read models' database.
    pub async fn drop(&self) -> mongodb::error::Result<()> {
        self.base.drop().await
    }

    /// The stored document of `collection` with this `_id`, as stored.
    pub async fn find_by_id(
        &self,
        collection: &str,
        id: &str,
    ) -> mongodb::error::Result<Option<RawDocumentBuf>> {
        self.base
            .collection::<RawDocumentBuf>(collection)
            .find_one(doc! {"_id": id})
            .await
    }

    /// The stored documents of `collection` among `ids`, in no particular order, with one
    /// query (`_id` `$in` them). On MongoDB that is a lookup in the `_id` index per id; FerretDB
    /// reads the whole collection for a `$in`, so callers use it only for collections that
    /// stay small (`names::is_small`) and a point read per id otherwise.
    pub async fn find_by_ids(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> mongodb::error::Result<Vec<RawDocumentBuf>> {
        self.base
            .collection::<RawDocumentBuf>(collection)
            .find(doc! {"_id": {"$in": ids}})
            .await?
            .try_collect()
            .await
    }
}
