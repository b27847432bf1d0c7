//! Loading read-model documents for the cache: one point read by `_id` in the document's
//! partition.

use bson::{doc, Document};
use mongodb::Database;
use read_models::cache::{DocLoader, LoadError};

#[derive(Clone)]
pub(crate) struct MongoLoader {
    db: Database,
}

impl MongoLoader {
    pub(crate) fn new(db: Database) -> Self {
        MongoLoader { db }
    }
}

impl DocLoader for MongoLoader {
    async fn load(&self, collection: &str, id: &str) -> Result<Option<Document>, LoadError> {
        self.db
            .collection::<Document>(&read_models::names::partition(collection, id))
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| LoadError::new(format!("{collection}/{id}: {e}")))
    }
}
