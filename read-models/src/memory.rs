//! An in-memory document store for tests: collection → `_id` → document. It is both a
//! [`DocLoader`] and a [`DocSource`]; flushes write [`DirtyDoc`]s into it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bson::Document;

use crate::cache::{DirtyDoc, DocLoader, LoadError};
use crate::query::DocSource;

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
