//! How many partitions each partitioned collection of a store has, and the identity document
//! that records it.
//!
//! A point read or update on FerretDB's SQLite backend parses every document of its collection
//! (see [`crate::partition`]), so more partitions make the command path cheaper, while every
//! `find` also pays for the number of collections in the database. The counts that suit new
//! stores may therefore change, but a document is found only under the count it was written
//! with. So a store records its counts once, when it is created, in its identity document, and
//! every process that opens it reads them from there: an existing store keeps its layout and a
//! new one gets the current counts, with no document ever moved.

use bson::{doc, Document};
use mongodb::Database;
use serde::{Deserialize, Serialize};

use crate::partition::{whole_id, Layout};
use crate::store::{commit_stream, is_duplicate_key, StoreError};

/// The collection holding the store's identity document.
pub const IDENTITY_COLLECTION: &str = "store_identity";
const IDENTITY_ID: &str = "store";

/// The partition counts of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreLayout {
    pub commits: u32,
    pub heads: u32,
    pub positions: u32,
    pub idempotency: u32,
}

impl StoreLayout {
    /// The counts of every store created before stores recorded theirs.
    pub const LEGACY: StoreLayout = StoreLayout {
        commits: 256,
        heads: 64,
        positions: 64,
        idempotency: 64,
    };

    /// The counts of a store created now: one collection each, named as the logical
    /// collection. On FerretDB's PostgreSQL backend (with the GIN companions of its indexes,
    /// `support/ferretdb-gin-indexes.sql`) and on MongoDB a point read by `_id` is an index
    /// lookup however large the collection, and every collection more is metadata that
    /// FerretDB copies on each `find`. Stores created on FerretDB's SQLite backend, which parsed
    /// a whole collection per point read, recorded 256 commits and heads partitions and 64 of
    /// positions and idempotency claims, and keep them.
    pub const CURRENT: StoreLayout = StoreLayout {
        commits: 1,
        heads: 1,
        positions: 1,
        idempotency: 1,
    };

    /// Commits: one per append, so the largest collection after the log. Partitioned by
    /// stream, so that a stream's commits share a partition in the order they were written.
    pub fn commits(&self) -> Layout {
        Layout {
            name: "commits",
            partitions: self.commits,
            key: commit_stream,
        }
    }

    /// Head hints and snapshots: one per stream.
    pub fn heads(&self) -> Layout {
        Layout {
            name: "heads",
            partitions: self.heads,
            key: whole_id,
        }
    }

    /// Positions of sequenced commits: one small document per commit, partitioned by stream
    /// like the commits. A document of its own rather than a field of the commit because the
    /// relay can then insert it: on FerretDB an update reads its whole partition twice under
    /// the database's one write lock, an insert does not.
    pub fn positions(&self) -> Layout {
        Layout {
            name: "positions",
            partitions: self.positions,
            key: commit_stream,
        }
    }

    /// Idempotency claims: one per keyed request.
    pub fn idempotency(&self) -> Layout {
        Layout {
            name: "idempotency",
            partitions: self.idempotency,
            key: whole_id,
        }
    }

    /// The prefixes of the physical collections of every partitioned collection.
    fn partition_prefixes() -> [String; 4] {
        let any = StoreLayout::LEGACY;
        [
            any.commits(),
            any.heads(),
            any.positions(),
            any.idempotency(),
        ]
        .map(|layout| format!("{}_p", layout.name))
    }
}

/// The store's id and layout, from its identity document, which is created (with a fresh id
/// and the layout a store gets now) when the store has none.
pub(crate) async fn open_identity(db: &Database) -> Result<(String, StoreLayout), StoreError> {
    let identities = db.collection::<Document>(IDENTITY_COLLECTION);
    let filter = doc! {"_id": IDENTITY_ID};
    if let Some(found) = identities.find_one(filter.clone()).await? {
        return recorded(&found);
    }
    // Stores written before they had an identity document got one when it was first asked
    // for; one that holds partitions but no identity is such a store, with the legacy layout.
    let layout = if holds_partitions(db).await? {
        StoreLayout::LEGACY
    } else {
        StoreLayout::CURRENT
    };
    let fresh = uuid::Uuid::now_v7().to_string();
    let partitions = bson::to_bson(&layout)
        .map_err(|e| StoreError::Encoding(format!("the store layout: {e}")))?;
    let created = doc! {
        "_id": IDENTITY_ID,
        "store_id": &fresh,
        "partitions": partitions,
        "created_at": bson::DateTime::now(),
    };
    match identities.insert_one(created).await {
        Ok(_) => Ok((fresh, layout)),
        // Another process created the store first: its identity and layout are the store's.
        Err(error) if is_duplicate_key(&error) => match identities.find_one(filter).await? {
            Some(found) => recorded(&found),
            None => Err(StoreError::corrupt("the store identity vanished")),
        },
        Err(error) => Err(error.into()),
    }
}

/// An identity document's id and layout; one without a layout was written before layouts
/// were recorded, by a version that used the legacy counts.
fn recorded(identity: &Document) -> Result<(String, StoreLayout), StoreError> {
    let id = identity
        .get_str("store_id")
        .map_err(|_| StoreError::corrupt("the store identity has no store_id"))?;
    let layout = match identity.get("partitions") {
        None => StoreLayout::LEGACY,
        Some(partitions) => bson::from_bson(partitions.clone())
            .map_err(|e| StoreError::corrupt(format!("the store's recorded layout: {e}")))?,
    };
    if [
        layout.commits,
        layout.heads,
        layout.positions,
        layout.idempotency,
    ]
    .contains(&0)
    {
        return Err(StoreError::corrupt(
            "the store's recorded layout has a collection of no partitions",
        ));
    }
    Ok((id.to_owned(), layout))
}

async fn holds_partitions(db: &Database) -> Result<bool, StoreError> {
    let prefixes = StoreLayout::partition_prefixes();
    Ok(db.list_collection_names().await?.iter().any(|name| {
        prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_without_a_layout_is_of_a_legacy_store() {
        let old = doc! {"_id": "store", "store_id": "s1"};
        assert_eq!(
            recorded(&old).unwrap(),
            ("s1".to_owned(), StoreLayout::LEGACY)
        );
        let new = doc! {"_id": "store", "store_id": "s2",
        "partitions": bson::to_bson(&StoreLayout::CURRENT).unwrap()};
        assert_eq!(
            recorded(&new).unwrap(),
            ("s2".to_owned(), StoreLayout::CURRENT)
        );
        // Written by hand as 32-bit integers: the same counts.
        let by_hand = doc! {"_id": "store", "store_id": "s4",
        "partitions": {"commits": 256, "heads": 64, "positions": 64, "idempotency": 64}};
        assert_eq!(recorded(&by_hand).unwrap().1, StoreLayout::LEGACY);
        let broken = doc! {"_id": "store", "store_id": "s3",
        "partitions": {"commits": 0, "heads": 1, "positions": 1, "idempotency": 1}};
        assert!(recorded(&broken).is_err());
    }

    #[test]
    fn a_stream_keeps_its_commits_in_one_partition_of_any_layout() {
        let stream = crate::StreamId::new("thread", "t1").unwrap();
        for layout in [StoreLayout::LEGACY, StoreLayout::CURRENT] {
            let commits = layout.commits();
            assert_eq!(
                commits.collection_for(&stream.commit_id(1)),
                commits.collection_for(&stream.commit_id(250))
            );
            assert_eq!(
                layout.positions().collection_for(&stream.commit_id(1)),
                layout.positions().collection_for(&stream.commit_id(9))
            );
        }
    }
}
