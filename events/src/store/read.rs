//! Reading the store: a stream by following its commits, the global log by position.

use std::future::Future;

use bson::doc;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

use super::append::StreamHead;
use super::docs::{log_id, log_page, to_u64, CommitDoc, LogDoc, LOG_PAGE_SIZE};
use super::{Backend, EventStore, StoreError};
use crate::envelope::{EventEnvelope, StreamId};

/// A stream as a command handler needs it: the latest snapshot and the events after it.
#[derive(Debug, Clone)]
pub struct LoadedStream {
    pub head: StreamHead,
    /// `(version, schema, state)` of the snapshot the events follow, if any.
    pub snapshot: Option<(u64, u32, serde_json::Value)>,
    pub events: Vec<EventEnvelope>,
}

#[derive(Debug, Clone, Copy)]
pub struct ReadAllOptions {
    /// Read events with a position greater than this (0 = from the beginning).
    pub after_position: u64,
    /// Events per batch handed to the reader.
    pub batch_size: usize,
}

impl Default for ReadAllOptions {
    fn default() -> Self {
        ReadAllOptions {
            after_position: 0,
            batch_size: 2_000,
        }
    }
}

/// Batches of the global log in position order. A background task reads the next batch while
/// the caller works on the current one; at most two batches are held, whatever the store size.
pub struct EventBatches {
    receiver: mpsc::Receiver<Result<Vec<EventEnvelope>, StoreError>>,
}

impl EventBatches {
    /// Batches already in memory, handed out in order without a reader task.
    pub(crate) fn ready(batches: Vec<Vec<EventEnvelope>>) -> Self {
        let (sender, receiver) = mpsc::channel(batches.len().max(1));
        for batch in batches {
            // Cannot fail: the channel holds every batch and its receiver is right here.
            let _ = sender.try_send(Ok(batch));
        }
        EventBatches { receiver }
    }

    pub async fn next(&mut self) -> Option<Result<Vec<EventEnvelope>, StoreError>> {
        self.receiver.recv().await
    }
}

/// The items of the stream `open` gives, in pages of `page`, read ahead of the consumer by a
/// task of their own: the server prepares the next batch while the consumer works on this
/// one, where a cursor alone asks for the next batch only once its last document is taken.
/// At most three pages are held (the consumer's, one waiting, one being filled). A failure,
/// to open or to read, comes after the items read before it and ends the pages. The task
/// stops when the receiver is dropped, between two reads, never inside one.
pub(crate) fn pages_ahead<T, F>(open: F, page: usize) -> mpsc::Receiver<Result<Vec<T>, StoreError>>
where
    T: Send + 'static,
    F: Future<Output = Result<BoxStream<'static, Result<T, StoreError>>, StoreError>>
        + Send
        + 'static,
{
    let page = page.max(1);
    let (pages, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut items = match open.await {
            Ok(items) => items,
            Err(error) => {
                let _ = pages.send(Err(error)).await;
                return;
            }
        };
        let mut filling = Vec::with_capacity(page);
        while let Some(item) = items.next().await {
            match item {
                Ok(item) => {
                    filling.push(item);
                    if filling.len() == page {
                        let full = std::mem::replace(&mut filling, Vec::with_capacity(page));
                        if pages.send(Ok(full)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    if !filling.is_empty() && pages.send(Ok(filling)).await.is_err() {
                        return;
                    }
                    let _ = pages.send(Err(error)).await;
                    return;
                }
            }
        }
        if !filling.is_empty() {
            let _ = pages.send(Ok(filling)).await;
        }
    });
    receiver
}

/// Bounds a point-read fan-out so one request cannot take the whole connection pool.
const POINT_READ_CONCURRENCY: usize = 16;
/// Ranges of positions up to this long are always read by point reads.
const POINT_READS_PER_RANGE: usize = 8;
/// On FerretDB, ranges up to this long are read by point reads, longer ones by page: a page
/// read returns its 1,000 events whatever part of them is wanted.
const POINT_READS_PER_PAGE: usize = 64;
/// Pages of the log requested at once: the server reads one while the reader takes the other.
const PAGES_IN_FLIGHT: usize = 2;

/// The last position of a page of the log ([`log_page`]).
fn page_last(page: i64) -> u64 {
    (u64::try_from(page).unwrap_or(0) + 1).saturating_mul(LOG_PAGE_SIZE)
}
impl EventStore {
    /// Loads a stream from its latest snapshot: one read for the snapshot (kept in the head
    /// hint), then the commits after it by `_id`, until one is missing. The cost depends on
    /// how many commits follow the snapshot, not on the length of the stream; the head is the
    /// stream's head when read.
    pub async fn load(&self, stream: &StreamId) -> Result<LoadedStream, StoreError> {
        let stream_key = stream.to_string();
        let hint = self.heads.find_one(doc! {"_id": &stream_key}).await?;
        let mut snapshot = None;
        let mut head = StreamHead {
            stream: stream.clone(),
            version: 0,
            commit_id: None,
        };
        if let Some(saved) = hint.and_then(|hint| hint.snapshot) {
            let version = to_u64(saved.version)?;
            let (commit_id, schema) = (saved.commit_id.clone(), saved.schema as u32);
            match saved.unpack_state() {
                Some(state) => {
                    head.version = version;
                    head.commit_id = Some(commit_id);
                    snapshot = Some((version, schema, state));
                }
                None => {
                    tracing::warn!(stream = %stream_key, "snapshot does not parse; loading without it")
                }
            }
        }
        let mut events = Vec::new();
        loop {
            let Some(commit) = self.commit_at(stream, head.version + 1).await? else {
                break;
            };
            events.extend(commit.envelopes()?);
            head.version = to_u64(commit.last_version)?;
            head.commit_id = Some(commit.id);
        }
        Ok(LoadedStream {
            head,
            snapshot,
            events,
        })
    }

    async fn commit_at(
        &self,
        stream: &StreamId,
        first_version: u64,
    ) -> Result<Option<CommitDoc>, StoreError> {
        let id = stream.commit_id(first_version);
        Ok(self.commits.find_one(doc! {"_id": &id}).await?)
    }

    /// All events of a stream with a version of at least `from_version`, in version order.
    pub async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read_stream_until(stream, from_version, |_| true).await
    }

    /// The events of a stream up to and including `version`.
    pub async fn read_stream_at_version(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read_stream_until(stream, 1, |e| e.version <= version)
            .await
    }

    /// The events of a stream recorded at or before `time`.
    pub async fn read_stream_as_of(
        &self,
        stream: &StreamId,
        time: DateTime<Utc>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read_stream_until(stream, 1, |e| e.recorded_at <= time)
            .await
    }

    /// Walks the commit chain from version 1 and keeps events from `from_version` while `keep`
    /// holds; stops at the first event that fails it (versions and record times only grow).
    async fn read_stream_until(
        &self,
        stream: &StreamId,
        from_version: u64,
        keep: impl Fn(&EventEnvelope) -> bool,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut events = Vec::new();
        let mut next = 1;
        while let Some(commit) = self.commit_at(stream, next).await? {
            next = to_u64(commit.last_version)? + 1;
            if next <= from_version {
                // No event of it is kept: its position is not needed.
                continue;
            }
            let commit = self.with_position(commit).await?;
            for event in commit.envelopes()? {
                if !keep(&event) {
                    return Ok(events);
                }
                if event.version >= from_version {
                    events.push(event);
                }
            }
        }
        Ok(events)
    }

    /// Streams the global log from a position in batches, in position order, in constant
    /// memory, read a batch ahead ([`pages_ahead`]). A batch path. On MongoDB one cursor
    /// walks the `_id` index. On FerretDB the log is read by [`log_page`], one equality find
    /// on the indexed `page` per 1,000 positions, two in flight: FerretDB 1.x hands neither a
    /// sort nor an `_id` range to PostgreSQL, so a sorted cursor makes it read and sort the
    /// whole log in its own memory (the L log of 982,835 events left it at 9.7 GB resident),
    /// and a range query decodes every event before the range.
    pub fn read_all(&self, options: ReadAllOptions) -> EventBatches {
        let batch_size = options.batch_size.clamp(1, 100_000);
        let store = self.clone();
        let open = async move {
            if store.backend == Backend::FerretDb {
                return Ok(store
                    .log_by_pages(options.after_position, u64::MAX)
                    .map(|doc| doc.and_then(LogDoc::into_envelope))
                    .boxed());
            }
            let filter = if options.after_position == 0 {
                doc! {}
            } else {
                doc! {"_id": {"$gt": log_id(options.after_position)}}
            };
            let cursor = store
                .log
                .find(filter)
                .batch_size(batch_size as u32)
                .sort(doc! {"_id": 1})
                .await?;
            Ok(cursor
                .map(|doc| {
                    doc.map_err(StoreError::from)
                        .and_then(LogDoc::into_envelope)
                })
                .boxed())
        };
        EventBatches {
            receiver: pages_ahead(open, batch_size),
        }
    }

    /// The log after `after` up to `up_to` at most, page by page in order (two in flight),
    /// up to its first missing position.
    fn log_by_pages(
        &self,
        after: u64,
        up_to: u64,
    ) -> BoxStream<'static, Result<LogDoc, StoreError>> {
        let reader = self.clone();
        let pages = futures::stream::iter(log_page(after + 1)..=log_page(up_to))
            .map(move |page| {
                let reader = reader.clone();
                async move { Ok::<_, StoreError>((page, reader.page_docs(page).await?)) }
            })
            .buffered(PAGES_IN_FLIGHT)
            .boxed();
        let store = self.clone();
        futures::stream::unfold(
            (pages, after + 1, false),
            move |(mut pages, next, ended)| {
                let store = store.clone();
                async move {
                    if ended {
                        return None;
                    }
                    let (page, docs) = match pages.next().await? {
                        Ok(read) => read,
                        Err(error) => return Some((Err(error), (pages, next, true))),
                    };
                    let last = page_last(page).min(up_to);
                    let mut found = Vec::with_capacity(docs.len());
                    match store.take_dense(docs, next, last, &mut found).await {
                        Ok(reached) => Some((Ok(found), (pages, reached, reached <= last))),
                        Err(error) => Some((Err(error), (pages, next, true))),
                    }
                }
            },
        )
        .map_ok(|docs| futures::stream::iter(docs.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// The documents of one page of the log, in position order.
    async fn page_docs(&self, page: i64) -> Result<Vec<LogDoc>, StoreError> {
        let mut docs: Vec<LogDoc> = self
            .log
            .find(doc! {"page": page})
            .batch_size(LOG_PAGE_SIZE as u32 + 1)
            .await?
            .try_collect()
            .await?;
        docs.sort_unstable_by_key(|doc| doc.position);
        Ok(docs)
    }

    /// Appends to `found` the documents of `page` (in position order) at `next`, `next + 1`,
    /// … up to `last` at most, one after the other, and returns the position after the last
    /// one appended. Where the page comes short, a point read tells the end of the log from
    /// a document the page did not hold (sequenced since the page was read, or written
    /// before the log had pages), and point reads complete the range then.
    async fn take_dense(
        &self,
        page: Vec<LogDoc>,
        mut next: u64,
        last: u64,
        found: &mut Vec<LogDoc>,
    ) -> Result<u64, StoreError> {
        for doc in page {
            let position = to_u64(doc.position)?;
            if position < next {
                continue;
            }
            if position != next || position > last {
                break;
            }
            found.push(doc);
            next += 1;
        }
        if next <= last {
            if let Some(doc) = self.log.find_one(doc! {"_id": log_id(next)}).await? {
                found.push(doc);
                let rest = self.read_points(next, (last - next) as usize).await?;
                next += 1 + rest.len() as u64;
                found.extend(rest);
            }
        }
        Ok(next)
    }

    /// The events at positions `after + 1 ..= after + count` that exist, up to the first
    /// missing one. Dense positions make this a keyset page: its cost does not depend on how
    /// deep it is. On MongoDB more than a few positions are read with one range query; on
    /// FerretDB by point reads (`_id` equality), or by [`log_page`] for long ranges: a range
    /// query of the log is not pushed down to PostgreSQL there, and FerretDB decodes every
    /// event from the start of the log up to the page, while equality uses the index.
    /// Measured on FerretDB 1.24 over PostgreSQL 15 with the M data set's log (97,360
    /// events): 1,000 events by one range query took 1.75 s after position 0, 4.7 s after
    /// 10,000 and 17.6 s after 50,000; by 1,000 point reads, 16 at a time, 0.76-0.98 s.
    pub async fn read_positions(
        &self,
        after: u64,
        count: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let found = match self.backend {
            Backend::MongoDb if count > POINT_READS_PER_RANGE => {
                self.read_range(after, count).await?
            }
            Backend::FerretDb if count > POINT_READS_PER_PAGE => {
                self.read_by_pages(after, count).await?
            }
            _ => self.read_points(after, count).await?,
        };
        found
            .into_iter()
            .zip(after + 1..)
            .map_while(|(doc, expected)| (doc.position == expected as i64).then_some(doc))
            .map(LogDoc::into_envelope)
            .collect()
    }

    /// A long range on FerretDB: the pages that hold it, up to its first missing position.
    async fn read_by_pages(&self, after: u64, count: usize) -> Result<Vec<LogDoc>, StoreError> {
        self.log_by_pages(after, after + count as u64)
            .try_collect()
            .await
    }

    async fn read_points(&self, after: u64, count: usize) -> Result<Vec<LogDoc>, StoreError> {
        let reads: Vec<_> = (1..=count as u64)
            .map(|offset| {
                let log = self.log.clone();
                async move {
                    Ok::<_, StoreError>(log.find_one(doc! {"_id": log_id(after + offset)}).await?)
                }
            })
            .collect();
        let found: Vec<Option<LogDoc>> = futures::stream::iter(reads)
            .buffered(POINT_READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().map_while(|doc| doc).collect())
    }

    /// The first `count` events after `after`, in position order: an index walk on MongoDB
    /// (never used on FerretDB, see [`EventStore::read_positions`]).
    async fn read_range(&self, after: u64, count: usize) -> Result<Vec<LogDoc>, StoreError> {
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        let find = self
            .log
            .find(doc! {"_id": {"$gt": log_id(after)}})
            .limit(limit)
            .batch_size(count.clamp(1, 10_000) as u32)
            .sort(doc! {"_id": 1});
        Ok(find.await?.try_collect().await?)
    }

    /// The event at one position, if it is sequenced.
    pub async fn event_at(&self, position: u64) -> Result<Option<EventEnvelope>, StoreError> {
        self.log
            .find_one(doc! {"_id": log_id(position)})
            .await?
            .map(LogDoc::into_envelope)
            .transpose()
    }
}
