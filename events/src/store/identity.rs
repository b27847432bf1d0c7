//! The identity document of a store: a random id recorded once, when the store is created,
//! and the layout of the store's documents.

use bson::{doc, Document};
use mongodb::Database;

use crate::store::{is_duplicate_key, StoreError};

/// The collection holding the store's identity document.
pub const IDENTITY_COLLECTION: &str = "store_identity";
const IDENTITY_ID: &str = "store";
/// The layout this version writes. 2: the log's `_id` is the position as an integer (1: a
/// zero-padded string).
const LAYOUT: i64 = 2;

/// The store's id, from its identity document, which is created (with a fresh id) when the
/// store has none.
pub(crate) async fn open(db: &Database) -> Result<String, StoreError> {
    let identities = db.collection::<Document>(IDENTITY_COLLECTION);
    let filter = doc! {"_id": IDENTITY_ID};
    if let Some(found) = identities.find_one(filter.clone()).await? {
        check_layout(db, &found).await?;
        return recorded(&found);
    }
    let fresh = uuid::Uuid::now_v7().to_string();
    let created = doc! {
        "_id": IDENTITY_ID,
        "store_id": &fresh,
        "created_at": bson::DateTime::now(),
        "layout": LAYOUT,
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

/// Refuses a store written in an older layout, which this version would misread (it would
/// not find the log's documents and sequence positions again). An older store whose log is
/// still empty is taken over and marked.
async fn check_layout(db: &Database, identity: &Document) -> Result<(), StoreError> {
    let layout = match identity.get("layout") {
        None => 1,
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_i32().map(i64::from))
            .ok_or_else(|| StoreError::corrupt("the store identity's layout is not an integer"))?,
    };
    if layout == LAYOUT {
        return Ok(());
    }
    let logged = db
        .collection::<Document>("events")
        .find_one(doc! {})
        .await?
        .is_some();
    if layout > LAYOUT || logged {
        return Err(StoreError::Layout {
            database: db.name().to_owned(),
            found: layout,
            expected: LAYOUT,
        });
    }
    db.collection::<Document>(IDENTITY_COLLECTION)
        .update_one(doc! {"_id": IDENTITY_ID}, doc! {"$set": {"layout": LAYOUT}})
        .await?;
    Ok(())
}

fn recorded(identity: &Document) -> Result<String, StoreError> {
    identity
        .get_str("store_id")
        .map(str::to_owned)
        .map_err(|_| StoreError::corrupt("the store identity has no store_id"))
}
