//! The MongoDB event store.
//!
//! Collections (all access on hot paths is an insert or a point read by `_id`):
//! - `commits`: one document per append, `_id` = `<stream>/<first_version>` (the concurrency
//!   guard), holding the append's events.
//! - `events`: the global log, one document per event, `_id` = [`log_id`] of its position;
//!   written only by the relay, in position order.
//! - `outbox`: pending publications, written before the commit and deleted once published.
//! - `heads`: per stream, a hint of its head version and an optional aggregate snapshot.
//! - `idempotency`: claims of idempotency keys.
//! - `relay`: the relay's lease and sequencer hint.
//!
//! `commits`, `heads` and `idempotency` grow with the data and are read by `_id` on every
//! command, so each is split into hash partitions ([`COMMITS`], [`HEADS`], [`IDEMPOTENCY`];
//! see [`crate::partition`] for why). The log is read in order on batch paths and stays whole.

mod append;
pub(crate) mod docs;
mod read;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use tokio::sync::{oneshot, Notify};

pub use append::{AppendOutcome, AppendRequest, Expected, IdempotencyKey, Snapshot, StreamHead};
pub use docs::log_id;
pub use read::{EventBatches, LoadedStream, ReadAllOptions};

use docs::{CommitDoc, HeadDoc, IdempotencyDoc, LogDoc, OutboxDoc};

use crate::partition::{whole_id, Layout, Partitioned};

/// Commits: one per append, so the largest collection after the log. Partitioned by stream,
/// so that a stream's commits share a partition in the order they were written.
pub const COMMITS: Layout = Layout {
    name: "commits",
    partitions: 256,
    key: commit_stream,
};
/// Head hints and snapshots: one per stream.
pub const HEADS: Layout = Layout {
    name: "heads",
    partitions: 64,
    key: whole_id,
};
/// Idempotency claims: one per keyed request.
pub const IDEMPOTENCY: Layout = Layout {
    name: "idempotency",
    partitions: 64,
    key: whole_id,
};

/// The stream part of a commit `_id` (`<stream>/<first_version>`).
pub fn commit_stream(commit_id: &str) -> &str {
    commit_id
        .rsplit_once('/')
        .map_or(commit_id, |(stream, _)| stream)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("MongoDB: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot encode: {0}")]
    Encoding(String),
}

impl StoreError {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        StoreError::Corrupt(reason.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    Conflict {
        stream: String,
        expected: u64,
        actual: u64,
    },
    #[error("an append needs at least one event")]
    NoEvents,
    #[error("idempotency key `{0}` was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error("a request with idempotency key `{0}` is still being processed")]
    IdempotencyInProgress(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<mongodb::error::Error> for AppendError {
    fn from(error: mongodb::error::Error) -> Self {
        AppendError::Store(StoreError::Mongo(error))
    }
}

/// Whether the server is FerretDB, which scans on every filter but `{_id: …}` and returns a
/// collection in insertion order, or MongoDB, which has real secondary indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    FerretDb,
    MongoDb,
}

/// Waiters for the position of a commit, completed by the relay when it sequences the commit.
#[derive(Default)]
pub(crate) struct PositionWaiters {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<u64>>>>,
}

impl PositionWaiters {
    fn register(&self, commit_id: &str) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.entry(commit_id.to_owned()).or_default().push(tx);
        }
        rx
    }

    pub(crate) fn complete(&self, commit_id: &str, position: u64) {
        let senders = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut waiting| waiting.remove(commit_id));
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(position);
        }
    }

    fn forget(&self, commit_id: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(commit_id);
        }
    }
}

#[derive(Clone)]
pub struct EventStore {
    pub(crate) db: Database,
    pub(crate) backend: Backend,
    pub(crate) commits: Partitioned<CommitDoc>,
    pub(crate) log: Collection<LogDoc>,
    pub(crate) outbox: Collection<OutboxDoc>,
    pub(crate) heads: Partitioned<HeadDoc>,
    pub(crate) idempotency: Partitioned<IdempotencyDoc>,
    /// Wakes the relay as soon as a commit lands instead of at its next poll.
    pub(crate) appended: Arc<Notify>,
    pub(crate) waiters: Arc<PositionWaiters>,
    pub(crate) metrics: Arc<crate::metrics::StoreMetrics>,
}

/// The collection holding the store's identity (see [`EventStore::identity`]).
pub const IDENTITY_COLLECTION: &str = "store_identity";
const IDENTITY_ID: &str = "store";

fn identity_of(doc: &Document) -> Result<String, StoreError> {
    doc.get_str("store_id")
        .map(str::to_owned)
        .map_err(|_| StoreError::corrupt("the store identity has no store_id"))
}

/// Connects a client with settings that suit both FerretDB and MongoDB.
pub async fn connect_client(uri: &str, app_name: &str) -> Result<Client, StoreError> {
    let mut options = ClientOptions::parse(uri).await?;
    options.app_name = Some(app_name.to_owned());
    options.max_pool_size.get_or_insert(32);
    options
        .connect_timeout
        .get_or_insert(Duration::from_secs(5));
    options
        .server_selection_timeout
        .get_or_insert(Duration::from_secs(5));
    Ok(Client::with_options(options)?)
}

impl EventStore {
    pub async fn open(db: Database) -> Result<Self, StoreError> {
        let backend = detect_backend(&db).await?;
        let store = EventStore {
            commits: Partitioned::new(&db, COMMITS),
            log: db.collection("events"),
            outbox: db.collection("outbox"),
            heads: Partitioned::new(&db, HEADS),
            idempotency: Partitioned::new(&db, IDEMPOTENCY),
            db,
            backend,
            appended: Arc::new(Notify::new()),
            waiters: Arc::new(PositionWaiters::default()),
            metrics: Arc::new(crate::metrics::StoreMetrics::default()),
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn metrics(&self) -> &crate::metrics::StoreMetrics {
        &self.metrics
    }

    /// Creates the indexes the store relies on; safe to run at every start.
    ///
    /// `events.event_id` unique: a commit can never be sequenced twice, even by two relays.
    /// A commit's `_id` (stream and first version) is its only key: stream reads walk it.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let unique = IndexOptions::builder().unique(true).build();
        self.log
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"event_id": 1})
                    .options(unique)
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// The store's identity: a random id recorded the first time it is asked for, in the
    /// one-document collection [`IDENTITY_COLLECTION`]. Derived data (the read models) records
    /// it to tell its own store from a new one under the same database name, such as after
    /// the event store's database was dropped and filled again.
    pub async fn identity(&self) -> Result<String, StoreError> {
        let identities = self.db.collection::<Document>(IDENTITY_COLLECTION);
        let filter = doc! {"_id": IDENTITY_ID};
        if let Some(found) = identities.find_one(filter.clone()).await? {
            return identity_of(&found);
        }
        let fresh = uuid::Uuid::now_v7().to_string();
        let created =
            doc! {"_id": IDENTITY_ID, "store_id": &fresh, "created_at": bson::DateTime::now()};
        match identities.insert_one(created).await {
            Ok(_) => Ok(fresh),
            // Another process recorded one first: that one is the store's.
            Err(error) if is_duplicate_key(&error) => match identities.find_one(filter).await? {
                Some(found) => identity_of(&found),
                None => Err(StoreError::corrupt("the store identity vanished")),
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! {"ping": 1}).await?;
        Ok(())
    }

    /// The position of a commit once the relay has sequenced it, waiting at most `timeout`.
    /// The local relay answers at once; a relay in another process is noticed by polling.
    pub async fn wait_for_position(&self, commit_id: &str, timeout: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut notified = self.waiters.register(commit_id);
        let mut poll_every = Duration::from_millis(25);
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.waiters.forget(commit_id);
                return None;
            }
            let wait = poll_every.min(deadline - now);
            match tokio::time::timeout(wait, &mut notified).await {
                Ok(Ok(position)) => return Some(position),
                Ok(Err(_)) => notified = self.waiters.register(commit_id),
                Err(_) => {
                    if let Ok(Some(commit)) = self
                        .commits
                        .of(commit_id)
                        .find_one(doc! {"_id": commit_id})
                        .await
                    {
                        if let Some(position) = commit.position {
                            self.waiters.forget(commit_id);
                            return u64::try_from(position).ok();
                        }
                    }
                    poll_every = (poll_every * 2).min(Duration::from_millis(200));
                }
            }
        }
    }
}

async fn detect_backend(db: &Database) -> Result<Backend, StoreError> {
    let info = db.run_command(doc! {"buildInfo": 1}).await?;
    Ok(if info.contains_key("ferretdb") {
        Backend::FerretDb
    } else {
        Backend::MongoDb
    })
}

/// Whether a MongoDB error is a unique-index violation (code 11000), however it is wrapped.
/// Whether a write failed because a document with the same `_id` (or unique key) exists.
pub fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|e| e.code == 11000)),
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StreamId;

    #[test]
    fn a_stream_keeps_its_commits_in_one_partition() {
        let stream = StreamId::new("thread", "t1").unwrap();
        assert_eq!(commit_stream(&stream.commit_id(3)), "thread/t1");
        assert_eq!(
            COMMITS.collection_for(&stream.commit_id(1)),
            COMMITS.collection_for(&stream.commit_id(250))
        );
    }
}
