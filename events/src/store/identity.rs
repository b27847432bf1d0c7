//! The identity document of a store: a random id recorded once, when the store is created.

use bson::{doc, Document};
use mongodb::Database;

use crate::store::{is_duplicate_key, StoreError};

/// The collection holding the store's identity document.
pub const IDENTITY_COLLECTION: &str = "store_identity";
const IDENTITY_ID: &str = "store";

/// The store's id, from its identity document, which is created (with a fresh id) when the
/// store has none.
pub(crate) async fn open(db: &Database) -> Result<String, StoreError> {
    let identities = db.collection::<Document>(IDENTITY_COLLECTION);
    let filter = doc! {"_id": IDENTITY_ID};
    if let Some(found) = identities.find_one(filter.clone()).await? {
        return recorded(&found);
    }
    let fresh = uuid::Uuid::now_v7().to_string();
    let created = doc! {
        "_id": IDENTITY_ID,
        "store_id": &fresh,
        "created_at": bson::DateTime::now(),
    };
    match identities.insert_one(created).await {
        Ok(_) => Ok(fresh),
        // Another process created the store first: its identity is the store's.
        Err(error) if is_duplicate_key(&error) => match identities.find_one(filter).await? {
            Some(found) => recorded(&found),
            None => Err(StoreError::corrupt("the store identity vanished")),
        },
        Err(error) => Err(error.into()),
    }
}

fn recorded(identity: &Document) -> Result<String, StoreError> {
    identity
        .get_str("store_id")
        .map(str::to_owned)
        .map_err(|_| StoreError::corrupt("the store identity has no store_id"))
}
