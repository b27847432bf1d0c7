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

    /// Writes (or deletes) documents as the projector would.
    pub fn write(&self, dirty: impl IntoIterator<Item = DirtyDoc>) {
        let mut collections = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for doc in dirty {
            let collection = collections.entry(doc.collection).or_default();
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
