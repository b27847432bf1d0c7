//! Unique claims on a key beside the log, such as a customer's email: a claim is a document
//! whose `_id` is the key, so of two concurrent claimers exactly one inserts it. A unique `_id`
//! is the only guard that is atomic on FerretDB and MongoDB alike.

use bson::{doc, DateTime as BsonDateTime};
use chrono::{DateTime, Utc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::{is_duplicate_key, EventStore, StoreError};

#[derive(Debug, Serialize, Deserialize)]
struct ClaimDoc {
    #[serde(rename = "_id")]
    key: String,
    owner: String,
    claimed_at: BsonDateTime,
}

/// Who holds a claim, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub claimed_at: DateTime<Utc>,
}

/// The claims of one kind, kept in a collection of their own.
#[derive(Debug, Clone)]
pub struct Claims {
    collection: Collection<ClaimDoc>,
}

impl EventStore {
    /// The claims kept in `collection` of the store's database.
    pub fn claims(&self, collection: &str) -> Claims {
        Claims {
            collection: self.db.collection(collection),
        }
    }
}

impl Claims {
    /// Claims `key` for `owner`: true when this call inserted the claim, false when someone
    /// (perhaps `owner` itself) already holds it.
    pub async fn try_claim(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let claim = ClaimDoc {
            key: key.to_owned(),
            owner: owner.to_owned(),
            claimed_at: BsonDateTime::now(),
        };
        match self.collection.insert_one(&claim).await {
            Ok(_) => Ok(true),
            Err(error) if is_duplicate_key(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The holder of `key`, if it is claimed.
    pub async fn holder(&self, key: &str) -> Result<Option<Holder>, StoreError> {
        Ok(self
            .collection
            .find_one(doc! {"_id": key})
            .await?
            .map(|claim| Holder {
                owner: claim.owner,
                claimed_at: claim.claimed_at.to_chrono(),
            }))
    }

    /// Removes the claim on `key` if `owner` holds it; a claim another owner took in the
    /// meantime stays.
    pub async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.collection
            .delete_one(doc! {"_id": key, "owner": owner})
            .await?;
        Ok(())
    }
}
