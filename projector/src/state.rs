//! The projector's own documents: the registry of live generations, each generation's
//! checkpoint and parked aggregates, and the dead letters. All reads are point reads by `_id`
//! except the registry (five documents) and dead letters (only written here).

use std::collections::BTreeMap;

use bson::{doc, Document};
use chrono::Utc;
use events::EventEnvelope;
use read_models::dbs::ReadModelDbs;
use serde::{Deserialize, Serialize};

pub(crate) const REGISTRY: &str = read_models::names::REGISTRY_COLLECTION;
pub(crate) const DEAD_LETTERS: &str = "rm_dead_letters";
const CHECKPOINT_ID: &str = read_models::names::CHECKPOINT_ID;
const PARKED_ID: &str = "parked";

/// Which event store the read models were built from, and in which physical layout:
/// `{_id: "store", store_id, layout}`.
pub(crate) const SOURCE: &str = "rm_source";
const SOURCE_ID: &str = "store";

/// What the read models in `db` record of their making.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) store_id: String,
    /// [`read_models::names::LAYOUT_VERSION`] when they were made (1 before it was recorded).
    pub(crate) layout: u32,
}

/// What the read models in `db` were built from, if recorded.
pub(crate) async fn source(db: &ReadModelDbs) -> mongodb::error::Result<Option<Source>> {
    let found = db
        .collection::<Document>(SOURCE)
        .find_one(doc! {"_id": SOURCE_ID})
        .await?;
    Ok(found.and_then(|d| {
        Some(Source {
            store_id: d.get_str("store_id").ok()?.to_owned(),
            // Unreadable counts as a layout of no version, which no version matches.
            layout: d.get("layout").map_or(1, |v| small_number(v).unwrap_or(0)),
        })
    }))
}

/// An integer field of the projector's documents, written as an `i64`.
fn small_number(value: &bson::Bson) -> Option<u32> {
    match value {
        bson::Bson::Int32(n) => u32::try_from(*n).ok(),
        bson::Bson::Int64(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

/// Records that the read models in `db` are built from the event store `store_id`, in the
/// current layout.
pub(crate) async fn record_source(db: &ReadModelDbs, store_id: &str) -> mongodb::error::Result<()> {
    db.collection::<Document>(SOURCE)
        .replace_one(
            doc! {"_id": SOURCE_ID},
            doc! {
                "_id": SOURCE_ID,
                "store_id": store_id,
                "layout": i64::from(read_models::names::LAYOUT_VERSION),
            },
        )
        .upsert(true)
        .await?;
    Ok(())
}

/// The live generation of every model named in the registry (missing = generation 1).
pub(crate) async fn registry(db: &ReadModelDbs) -> mongodb::error::Result<BTreeMap<String, u32>> {
    use futures::TryStreamExt;
    let docs: Vec<Document> = db
        .collection::<Document>(REGISTRY)
        .find(doc! {})
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| {
            let model = d.get_str("_id").ok()?.to_owned();
            let generation = small_number(d.get("generation")?)?;
            Some((model, generation.max(1)))
        })
        .collect())
}

/// Switches a model to `generation` with one replace: readers see the old or the new one.
pub(crate) async fn switch_generation(
    db: &ReadModelDbs,
    model: &str,
    generation: u32,
) -> mongodb::error::Result<()> {
    db.collection::<Document>(REGISTRY)
        .replace_one(
            doc! {"_id": model},
            doc! {"_id": model, "generation": generation as i64},
        )
        .upsert(true)
        .await?;
    Ok(())
}

/// The checkpoint of a generation, `None` when it has never been written.
pub(crate) async fn checkpoint(
    db: &ReadModelDbs,
    meta: &str,
) -> mongodb::error::Result<Option<u64>> {
    let found = db
        .collection::<Document>(meta)
        .find_one(doc! {"_id": CHECKPOINT_ID})
        .await?;
    Ok(found.and_then(|d| match d.get("position") {
        Some(bson::Bson::Int64(n)) => u64::try_from(*n).ok(),
        Some(bson::Bson::Int32(n)) => u64::try_from(*n).ok(),
        _ => None,
    }))
}

pub(crate) async fn write_checkpoint(
    db: &ReadModelDbs,
    meta: &str,
    position: u64,
) -> mongodb::error::Result<()> {
    db.collection::<Document>(meta)
        .replace_one(
            doc! {"_id": CHECKPOINT_ID},
            doc! {"_id": CHECKPOINT_ID, "position": position as i64},
        )
        .upsert(true)
        .await?;
    Ok(())
}

/// An aggregate whose events no longer reach a model since one of them failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ParkedAggregate {
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    /// Position of the event that failed first.
    pub(crate) position: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ParkedDoc {
    #[serde(rename = "_id")]
    id: String,
    aggregates: Vec<ParkedAggregate>,
}

pub(crate) async fn parked(
    db: &ReadModelDbs,
    meta: &str,
) -> mongodb::error::Result<Vec<ParkedAggregate>> {
    Ok(db
        .collection::<ParkedDoc>(meta)
        .find_one(doc! {"_id": PARKED_ID})
        .await?
        .map(|d| d.aggregates)
        .unwrap_or_default())
}

pub(crate) async fn write_parked(
    db: &ReadModelDbs,
    meta: &str,
    aggregates: &[ParkedAggregate],
) -> mongodb::error::Result<()> {
    db.collection::<ParkedDoc>(meta)
        .replace_one(
            doc! {"_id": PARKED_ID},
            ParkedDoc {
                id: PARKED_ID.into(),
                aggregates: aggregates.to_vec(),
            },
        )
        .upsert(true)
        .await?;
    Ok(())
}

/// Records an event a model could not apply. The same model and position again (a replay
/// after a crash, or a rebuild) bumps the attempts and keeps the first failure time.
pub(crate) async fn dead_letter(
    db: &ReadModelDbs,
    model: &str,
    generation: u32,
    event: &EventEnvelope,
    error: &str,
    attempts: u32,
) -> mongodb::error::Result<()> {
    let position = event.position.unwrap_or(0);
    let id = format!("{model}/{position}");
    let envelope = bson::to_bson(event)
        .unwrap_or_else(|e| bson::Bson::String(format!("envelope could not be encoded: {e}")));
    let now = bson::DateTime::from_chrono(Utc::now());
    let collection = db.collection::<Document>(DEAD_LETTERS);
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
                .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Names of the collections of one generation (`rm_<model>_g<n>_…`).
pub(crate) async fn generation_collections(
    db: &ReadModelDbs,
    prefix: &str,
) -> mongodb::error::Result<Vec<String>> {
    let mut names = db.base().list_collection_names().await?;
    names.retain(|name| name.starts_with(prefix));
    names.sort();
    Ok(names)
}
