//! Loading read-model documents for the cache: one point read by `_id` in the document's
//! partition.

use bson::{doc, Document};
use read_models::cache::{DocLoader, LoadError};
use read_models::dbs::ReadModelDbs;

#[derive(Clone)]
pub(crate) struct MongoLoader {
    db: ReadModelDbs,
}

impl MongoLoader {
    pub(crate) fn new(db: ReadModelDbs) -> Self {
        MongoLoader { db }
    }
}

impl DocLoader for MongoLoader {
    async fn load(&self, collection: &str, id: &str) -> Result<Option<Document>, LoadError> {
        self.db
            .collection::<Document>(collection)
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| LoadError::new(format!("{collection}/{id}: {e}")))
    }
}
