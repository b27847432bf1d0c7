//! The projector's own documents: the registry of live generations, each generation's
//! checkpoint and parked aggregates, the dead letters and the record of what the read models
//! were built from. All reads are point reads by `_id` except the registry (five documents)
//! and the listing of a generation's collections; dead letters are only written here.

use std::collections::BTreeMap;

use bson::{doc, Document};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::ReadModelDbs;
use crate::names::{self, CHECKPOINT_ID, DEAD_LETTERS_COLLECTION, PARKED_ID, REGISTRY_COLLECTION};
use crate::store::{DbError, DeadLetter, ParkedAggregate};
use crate::Model;

/// Which event store the read models were built from, and in which physical layout:
/// `{_id: "store", store_id, layout}` in [`names::SOURCE_COLLECTION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub store_id: String,
    /// [`names::LAYOUT_VERSION`] when they were made (1 before it was recorded).
    pub layout: u32,
}

const SOURCE_ID: &str = "store";

/// An integer field of the projector's documents, written as an `i64`.
fn small_number(value: &bson::Bson) -> Option<u32> {
    match value {
        bson::Bson::Int32(n) => u32::try_from(*n).ok(),
        bson::Bson::Int64(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ParkedDoc {
    #[serde(rename = "_id")]
    id: String,
    aggregates: Vec<ParkedAggregate>,
}

impl ReadModelDbs {
    fn docs(&self, name: &str) -> mongodb::Collection<Document> {
        self.base.collection(name)
    }

    /// What the read models were built from, if recorded.
    pub async fn source(&self) -> Result<Option<Source>, DbError> {
        let found = self
            .docs(names::SOURCE_COLLECTION)
            .find_one(doc! {"_id": SOURCE_ID})
            .await
            .map_err(DbError::driver)?;
        Ok(found.and_then(|d| {
            Some(Source {
                store_id: d.get_str("store_id").ok()?.to_owned(),
                // Unreadable counts as a layout of no version, which no version matches.
                layout: d.get("layout").map_or(1, |v| small_number(v).unwrap_or(0)),
            })
        }))
    }

    /// Records that the read models are built from the event store `store_id`, in the
    /// current layout.
    pub async fn record_source(&self, store_id: &str) -> Result<(), DbError> {
        let sources = self.docs(names::SOURCE_COLLECTION);
        let record = || {
            sources
                .replace_one(
                    doc! {"_id": SOURCE_ID},
                    doc! {
                        "_id": SOURCE_ID,
                        "store_id": store_id,
                        "layout": i64::from(names::LAYOUT_VERSION),
                    },
                )
                .upsert(true)
        };
        match record().await {
            Ok(_) => Ok(()),
            // Another instance starting at the same moment recorded it first (two upserts of
            // one new `_id` race on FerretDB): the replace now finds the document.
            Err(error) if events::store::is_duplicate_key(&error) => {
                record().await.map(|_| ()).map_err(DbError::driver)
            }
            Err(error) => Err(DbError::driver(error)),
        }
    }

    /// The live generation of every model named in the registry (missing = generation 1).
    pub async fn registry(&self) -> Result<BTreeMap<String, u32>, DbError> {
        let docs = self.all_docs(REGISTRY_COLLECTION).await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| {
                let model = d.get_str("_id").ok()?.to_owned();
                let generation = small_number(d.get("generation")?)?;
                Some((model, generation.max(1)))
            })
            .collect())
    }

    /// Switches `model` to `generation` with one replace: readers see the old or the new one.
    pub async fn switch_generation(&self, model: Model, generation: u32) -> Result<(), DbError> {
        self.docs(REGISTRY_COLLECTION)
            .replace_one(
                doc! {"_id": model.as_str()},
                names::registry_doc(model, generation),
            )
            .upsert(true)
            .await
            .map_err(DbError::driver)?;
        Ok(())
    }
}

pub(super) async fn checkpoint(db: &ReadModelDbs, meta: &str) -> Result<Option<u64>, DbError> {
    let found = db
        .docs(meta)
        .find_one(doc! {"_id": CHECKPOINT_ID})
        .await
        .map_err(DbError::driver)?;
    Ok(found.and_then(|d| match d.get("position") {
        Some(bson::Bson::Int64(n)) => u64::try_from(*n).ok(),
        Some(bson::Bson::Int32(n)) => u64::try_from(*n).ok(),
        _ => None,
    }))
}

pub(super) async fn write_checkpoint(
    db: &ReadModelDbs,
    meta: &str,
    position: u64,
) -> Result<(), DbError> {
    db.docs(meta)
        .replace_one(doc! {"_id": CHECKPOINT_ID}, names::checkpoint_doc(position))
        .upsert(true)
        .await
        .map_err(DbError::driver)?;
    Ok(())
}

pub(super) async fn parked(db: &ReadModelDbs, meta: &str) -> Result<Vec<ParkedAggregate>, DbError> {
    Ok(db
        .base
        .collection::<ParkedDoc>(meta)
        .find_one(doc! {"_id": PARKED_ID})
        .await
        .map_err(DbError::driver)?
        .map(|d| d.aggregates)
        .unwrap_or_default())
}

pub(super) async fn write_parked(
    db: &ReadModelDbs,
    meta: &str,
    aggregates: &[ParkedAggregate],
) -> Result<(), DbError> {
    db.base
        .collection::<ParkedDoc>(meta)
        .replace_one(
            doc! {"_id": PARKED_ID},
            ParkedDoc {
                id: PARKED_ID.into(),
                aggregates: aggregates.to_vec(),
            },
        )
        .upsert(true)
        .await
        .map_err(DbError::driver)?;
    Ok(())
}

/// Records an event a model could not apply (see [`crate::store::ProjectionStore::dead_letter`]).
pub(super) async fn dead_letter(db: &ReadModelDbs, letter: DeadLetter<'_>) -> Result<(), DbError> {
    let DeadLetter {
        model,
        generation,
        event,
        error,
        attempts,
    } = letter;
    let position = event.position.unwrap_or(0);
    let id = letter.id();
    let envelope = bson::to_bson(event)
        .unwrap_or_else(|e| bson::Bson::String(format!("envelope could not be encoded: {e}")));
    let now = bson::DateTime::from_chrono(Utc::now());
    let collection = db.docs(DEAD_LETTERS_COLLECTION);
    let insert = collection
        .insert_one(doc! {
            "_id": &id,
            "model": model,
            "generation": generation as i64,
            "position": position as i64,
            "aggregate_type": &event.aggregate_type,
            "aggregate_id": &event.aggregate_id,
            "event_type": &event.event_type,
            "event": envelope,
            "error": error,
            "attempts": attempts as i64,
            "first_failed_at": now,
            "last_failed_at": now,
        })
        .await;
    match insert {
        Ok(_) => Ok(()),
        Err(e) if events::store::is_duplicate_key(&e) => {
            collection
                .update_one(
                    doc! {"_id": &id},
                    doc! {
                        "$set": {"last_failed_at": now, "error": error, "generation": generation as i64},
                        "$inc": {"attempts": attempts as i64},
                    },
                )
                .await
                .map_err(DbError::driver)?;
            Ok(())
        }
        Err(e) => Err(DbError::driver(e)),
    }
}

/// Creates the collection `name`; one that exists (another writer created it first) is
/// fine.
pub(super) async fn create_collection(db: &ReadModelDbs, name: &str) -> Result<(), DbError> {
    match db.base.create_collection(name).await {
        Ok(()) => Ok(()),
        Err(error) if already_exists(&error) => Ok(()),
        Err(error) => Err(DbError::driver(error)),
    }
}

/// MongoDB's `NamespaceExists` (48): another writer created the collection first.
fn already_exists(error: &mongodb::error::Error) -> bool {
    matches!(error.kind.as_ref(), mongodb::error::ErrorKind::Command(e) if e.code == 48)
}
