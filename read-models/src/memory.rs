//! An in-memory document store for tests: collection → `_id` → document. It is a
//! [`DocLoader`], a [`DocSource`] and a [`ProjectionStore`] (checkpoints, parked aggregates
//! and dead letters are documents of it, laid out as in MongoDB); flushes write
//! [`DirtyDoc`]s into it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bson::{doc, Bson, Document};

use crate::cache::{DirtyDoc, DocLoader, LoadError};
use crate::names::{self, CHECKPOINT_ID, DEAD_LETTERS_COLLECTION, PARKED_ID};
use crate::query::DocSource;
use crate::store::{DbError, DeadLetter, ParkedAggregate, ProjectionStore};

/// Documents of one collection by `_id`.
pub type Collection = BTreeMap<String, Arc<Document>>;

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    collections: Arc<Mutex<HashMap<String, Collection>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes (or deletes) documents as the projector would, leaving a stored version with a
    /// higher `_pos` in place (the projector's fence against a former owner of the model).
    /// Returns how many were left so.
    pub fn write(&self, dirty: impl IntoIterator<Item = DirtyDoc>) -> usize {
        let mut collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut fenced = 0;
        for doc in dirty {
            let collection = collections.entry(doc.collection).or_default();
            let stored_pos = collection
                .get(&doc.id)
                .and_then(|stored| stored.get_i64("_pos").ok());
            if stored_pos.is_some_and(|stored| stored > i64::try_from(doc.pos).unwrap_or(i64::MAX))
            {
                fenced += usize::from(doc.doc.is_some());
                continue;
            }
            match doc.doc.map(|raw| raw.to_document()) {
                Some(Ok(document)) => {
                    collection.insert(doc.id, Arc::new(document));
                }
                Some(Err(error)) => {
                    // The cache encoded it: unreachable, but a test should say so.
                    panic!("{} is not valid BSON: {error}", doc.id);
                }
                None => {
                    collection.remove(&doc.id);
                }
            }
        }
        fenced
    }

    /// Stores one document as is (e.g. a registry or checkpoint document).
    pub fn put(&self, collection: &str, id: &str, doc: Document) {
        let mut collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collections
            .entry(collection.to_owned())
            .or_default()
            .insert(id.to_owned(), Arc::new(doc));
    }

    pub fn doc(&self, collection: &str, id: &str) -> Option<Arc<Document>> {
        let collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collections.get(collection)?.get(id).cloned()
    }

    /// Every document, by collection then `_id`.
    pub fn snapshot(&self) -> BTreeMap<String, Collection> {
        let collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collections
            .iter()
            .map(|(name, docs)| (name.clone(), docs.clone()))
            .collect()
    }

    /// The size in bytes of the largest stored document, and where it is.
    pub fn largest_doc(&self) -> Option<(usize, String, String)> {
        let collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collections
            .iter()
            .flat_map(|(name, docs)| {
                docs.iter().map(move |(id, doc)| {
                    let size = bson::to_vec(doc.as_ref()).map(|v| v.len()).unwrap_or(0);
                    (size, name.clone(), id.clone())
                })
            })
            .max()
    }
}

impl DocLoader for MemoryStore {
    async fn load(&self, collection: &str, id: &str) -> Result<Option<Document>, LoadError> {
        Ok(self.doc(collection, id).map(|d| (*d).clone()))
    }
}

impl DocSource for MemoryStore {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        Ok(self.doc(collection, id))
    }
}

/// Never fails: memory is always there.
impl ProjectionStore for MemoryStore {
    async fn write_docs(
        &self,
        dirty: Vec<DirtyDoc>,
        _concurrency: usize,
    ) -> Result<usize, DbError> {
        Ok(self.write(dirty))
    }

    async fn checkpoint(&self, meta: &str) -> Result<Option<u64>, DbError> {
        Ok(self
            .doc(meta, CHECKPOINT_ID)
            .map(|d| names::checkpoint_position(Some(&d))))
    }

    async fn write_checkpoint(&self, meta: &str, position: u64) -> Result<(), DbError> {
        self.put(meta, CHECKPOINT_ID, names::checkpoint_doc(position));
        Ok(())
    }

    async fn parked(&self, meta: &str) -> Result<Vec<ParkedAggregate>, DbError> {
        let stored = self.doc(meta, PARKED_ID);
        let aggregates = stored.and_then(|d| d.get("aggregates").cloned());
        Ok(aggregates
            .and_then(|a| bson::from_bson(a).ok())
            .unwrap_or_default())
    }

    async fn write_parked(&self, meta: &str, parked: &[ParkedAggregate]) -> Result<(), DbError> {
        let aggregates = parked
            .iter()
            .map(|p| {
                Bson::Document(doc! {
                    "aggregate_type": &p.aggregate_type,
                    "aggregate_id": &p.aggregate_id,
                    "position": p.position,
                })
            })
            .collect::<Vec<_>>();
        self.put(
            meta,
            PARKED_ID,
            doc! {"_id": PARKED_ID, "aggregates": aggregates},
        );
        Ok(())
    }

    async fn dead_letter(&self, letter: DeadLetter<'_>) -> Result<(), DbError> {
        let id = letter.id();
        let before = self
            .doc(DEAD_LETTERS_COLLECTION, &id)
            .and_then(|d| d.get_i64("attempts").ok())
            .unwrap_or(0);
        let position = letter.event.position.unwrap_or(0);
        self.put(
            DEAD_LETTERS_COLLECTION,
            &id,
            doc! {
                "_id": &id,
                "model": letter.model,
                "generation": i64::from(letter.generation),
                "position": names::position_i64(position),
                "event_type": &letter.event.event_type,
                "error": letter.error,
                "attempts": before + i64::from(letter.attempts),
            },
        );
        Ok(())
    }

    async fn collections_named(&self, prefix: &str) -> Result<Vec<String>, DbError> {
        let collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = collections
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect();
        names.sort();
        Ok(names)
    }

    async fn create_collection(&self, name: &str) -> Result<(), DbError> {
        let mut collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        collections.entry(name.to_owned()).or_default();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bson::rawdoc;

    use super::*;

    fn version(pos: i64) -> DirtyDoc {
        DirtyDoc {
            collection: "c".into(),
            id: "d".into(),
            doc: Some(rawdoc! {"_id": "d", "_pos": pos}),
            tier: 0,
            pos: pos as u64,
            stored: true,
        }
    }

    #[test]
    fn an_older_version_does_not_replace_a_newer_one() {
        let store = MemoryStore::new();
        assert_eq!(store.write([version(5)]), 0);
        assert_eq!(
            store.write([version(5)]),
            0,
            "the same version again is written"
        );
        assert_eq!(store.write([version(3)]), 1);
        assert_eq!(store.doc("c", "d").unwrap().get_i64("_pos"), Ok(5));
        assert_eq!(store.write([version(9)]), 0);
        assert_eq!(store.doc("c", "d").unwrap().get_i64("_pos"), Ok(9));
    }
}
