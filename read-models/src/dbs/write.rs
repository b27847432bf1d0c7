//! Writing the projector's dirty documents: whole-document upserts by `_id` (deletes for
//! removed documents), tier by tier, every write fenced by `_pos`.

use std::collections::BTreeMap;

use bson::{doc, RawDocumentBuf};
use futures::StreamExt;
use mongodb::Collection;

use super::ReadModelDbs;
use crate::cache::{flush_batches, DirtyDoc};
use crate::store::DbError;

/// New documents per insert call.
const INSERT_BATCH: usize = 500;

/// The filter a write of `id` at `pos` must match: the document, unless a newer version of
/// it is stored. `_pos` only grows under one owner, so a stored `_pos` past `pos` was
/// written by a later owner of the model, and this writer is a former one whose lease ran
/// out while it was stalled. An upsert whose filter misses an existing `_id` fails with a
/// duplicate key, which is how a fenced replace shows (single-document and atomic on
/// MongoDB; on FerretDB, whose updates read then write, it closes the window of a stalled
/// writer, not that of two writers within one update).
fn newer_not_stored(id: &str, pos: u64) -> bson::Document {
    doc! {"_id": id, "_pos": {"$lte": i64::try_from(pos).unwrap_or(i64::MAX)}}
}

/// Replaces (or inserts) one document unless a newer version is stored; `Ok(false)` when
/// fenced.
async fn replace_unless_newer(
    collection: &Collection<RawDocumentBuf>,
    id: &str,
    pos: u64,
    document: &RawDocumentBuf,
) -> Result<bool, mongodb::error::Error> {
    match collection
        .replace_one(newer_not_stored(id, pos), document)
        .upsert(true)
        .await
    {
        Ok(_) => Ok(true),
        Err(error) if events::store::is_duplicate_key(&error) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Inserts `docs` (all of one physical collection); if any already exists (the cache's
/// `stored` flag is a hint, not a guarantee), writes each of them as a replace instead.
/// Returns how many were fenced.
async fn insert_or_replace(
    collection: Collection<RawDocumentBuf>,
    docs: Vec<(String, u64, RawDocumentBuf)>,
) -> Result<usize, mongodb::error::Error> {
    let inserted = collection
        .insert_many(docs.iter().map(|(_, _, d)| d))
        .ordered(false)
        .await;
    match inserted {
        Ok(_) => Ok(0),
        Err(error) if events::store::is_duplicate_key(&error) => {
            let mut fenced = 0;
            for (id, pos, document) in docs {
                if !replace_unless_newer(&collection, &id, pos, &document).await? {
                    fenced += 1;
                }
            }
            Ok(fenced)
        }
        Err(error) => Err(error),
    }
}

/// Writes dirty documents of one or more models as whole-document upserts by `_id` (deletes
/// for removed documents), tier by tier as the cache requires (a tier starts only once every
/// lower tier is written), `concurrency` writes at a time within a tier. Every write is
/// fenced by `_pos` ([`newer_not_stored`]): a former owner of a model cannot put back an
/// older version of a document a later owner wrote. Returns how many were fenced.
pub(super) async fn write_docs(
    db: &ReadModelDbs,
    dirty: Vec<DirtyDoc>,
    concurrency: usize,
) -> Result<usize, DbError> {
    let mut fenced = 0;
    for tier in flush_batches(dirty) {
        // Documents the database does not hold yet are inserted, many per call and partition:
        // on FerretDB an insert does not scan the collection, while a replace does.
        let (new, known): (Vec<DirtyDoc>, Vec<DirtyDoc>) =
            tier.into_iter().partition(|d| d.doc.is_some() && !d.stored);
        let mut inserts: BTreeMap<String, Vec<(String, u64, RawDocumentBuf)>> = BTreeMap::new();
        for d in new {
            if let Some(document) = d.doc {
                inserts
                    .entry(d.collection)
                    .or_default()
                    .push((d.id, d.pos, document));
            }
        }
        let mut insert_batches = Vec::new();
        for (name, mut docs) in inserts {
            let collection = db.collection::<RawDocumentBuf>(&name);
            while !docs.is_empty() {
                let rest = docs.split_off(docs.len().min(INSERT_BATCH));
                insert_batches.push(insert_or_replace(collection.clone(), docs));
                docs = rest;
            }
        }
        let mut results =
            futures::stream::iter(insert_batches).buffer_unordered(concurrency.max(1));
        while let Some(result) = results.next().await {
            fenced += result.map_err(DbError::driver)?;
        }
        let writes = known.into_iter().map(|d| {
            let collection = db.collection::<RawDocumentBuf>(&d.collection);
            async move {
                match d.doc {
                    Some(document) => {
                        replace_unless_newer(&collection, &d.id, d.pos, &document).await
                    }
                    // Nothing deleted is no sign of a fence: a delete does not know whether
                    // the document was stored.
                    None => collection
                        .delete_one(newer_not_stored(&d.id, d.pos))
                        .await
                        .map(|_| true),
                }
            }
        });
        let mut results = futures::stream::iter(writes).buffer_unordered(concurrency.max(1));
        while let Some(result) = results.next().await {
            if !result.map_err(DbError::driver)? {
                fenced += 1;
            }
        }
    }
    Ok(fenced)
}
