//! The store's documents exactly as stored, for checks that must see what the typed reads
//! would refuse: `history verify` reports a malformed or inconsistent document instead of
//! failing on it.

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use mongodb::Collection;

use super::{log_id, Backend, EventStore, StoreError};

/// A collection of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredCollection {
    /// `events`: the global log, `_id` = [`log_id`] of the position.
    Log,
    /// `commits`: one per append, `_id` = `<stream>/<first_version>`.
    Commits,
    /// `positions`: the first position of each sequenced commit, `_id` = the commit's `_id`.
    Positions,
    /// `outbox`: pending publications, `_id` = the append id.
    Outbox,
}

impl StoredCollection {
    pub fn name(self) -> &'static str {
        match self {
            StoredCollection::Log => "events",
            StoredCollection::Commits => "commits",
            StoredCollection::Positions => "positions",
            StoredCollection::Outbox => "outbox",
        }
    }
}

/// Stored documents, one after another.
pub type RawDocuments = BoxStream<'static, Result<RawDocumentBuf, StoreError>>;

impl EventStore {
    fn raw(&self, collection: StoredCollection) -> Collection<RawDocumentBuf> {
        self.db.collection(collection.name())
    }

    /// Every document of `collection` (only the fields of `projection`, if given), in the
    /// order the server returns them, read a page ahead. Unsorted on purpose: FerretDB 1.x
    /// does not hand a sort to PostgreSQL but reads the whole collection and sorts it in its
    /// own memory (the L log of 982,835 events left FerretDB at 9.7 GB resident), so the
    /// checks that read whole collections do not depend on their order (`history verify`).
    pub async fn scan_stored(
        &self,
        collection: StoredCollection,
        batch_size: u32,
        projection: Option<Document>,
    ) -> Result<RawDocuments, StoreError> {
        let stored = self.raw(collection);
        let mut find = stored.find(doc! {}).batch_size(batch_size);
        if let Some(projection) = projection {
            find = find.projection(projection);
        }
        let cursor = find.await?;
        Ok(read_ahead(
            cursor.map_err(StoreError::from).boxed(),
            batch_size.max(1) as usize,
        ))
    }

    /// The stored document of `collection` with this `_id`.
    pub async fn find_stored(
        &self,
        collection: StoredCollection,
        id: impl Into<Bson>,
    ) -> Result<Option<RawDocumentBuf>, StoreError> {
        Ok(self
            .raw(collection)
            .find_one(doc! {"_id": id.into()})
            .await?)
    }

    /// About how many events the log holds, for progress bars and sizing, never for what to
    /// read. MongoDB answers from the collection's metadata. FerretDB counts by reading every
    /// document (8.4 s for the M log of 100,045 events, about as long as reading them); there
    /// the sequencer's hint answers instead, one point read at or a little below the tail.
    pub async fn estimated_log_size(&self) -> Result<u64, StoreError> {
        match self.backend {
            Backend::MongoDb => Ok(self.log.estimated_document_count().await?),
            Backend::FerretDb => crate::relay::sequenced_tail(self).await,
        }
    }

    /// The stored log document at `position`.
    pub async fn find_stored_event(
        &self,
        position: u64,
    ) -> Result<Option<RawDocumentBuf>, StoreError> {
        self.find_stored(StoredCollection::Log, log_id(position))
            .await
    }
}

/// `documents` read a page ahead of the consumer ([`super::read::pages_ahead`]), one after
/// another again.
fn read_ahead(documents: RawDocuments, page: usize) -> RawDocuments {
    let mut pages = super::read::pages_ahead(async move { Ok(documents) }, page);
    futures::stream::poll_fn(move |cx| pages.poll_recv(cx))
        .flat_map(|page| {
            let documents: Vec<_> = match page {
                Ok(documents) => documents.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::stream::iter(documents)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: i64) -> Result<RawDocumentBuf, StoreError> {
        Ok(RawDocumentBuf::from_document(&doc! {"_id": n}).expect("a document"))
    }

    fn ids(read: &[Result<RawDocumentBuf, StoreError>]) -> Vec<Option<i64>> {
        read.iter()
            .map(|r| r.as_ref().ok().map(|d| d.get_i64("_id").expect("_id")))
            .collect()
    }

    #[tokio::test]
    async fn documents_read_ahead_come_in_their_order_across_pages() {
        let documents = futures::stream::iter((1..=25).map(numbered)).boxed();
        let read: Vec<_> = read_ahead(documents, 10).collect().await;
        assert_eq!(
            ids(&read),
            (1..=25).map(Some).collect::<Vec<_>>(),
            "every document once, in order"
        );
    }

    #[tokio::test]
    async fn a_failed_read_is_passed_on_and_ends_the_documents() {
        let documents = futures::stream::iter(
            (1..=3)
                .map(numbered)
                .chain([Err(StoreError::corrupt("the cursor broke"))])
                .chain((4..=6).map(numbered)),
        )
        .boxed();
        let read: Vec<_> = read_ahead(documents, 2).collect().await;
        assert_eq!(ids(&read), vec![Some(1), Some(2), Some(3), None]);
    }
}
