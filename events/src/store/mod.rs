//! The MongoDB event store.
//!
//! Collections (all access on hot paths is an insert or a point read by `_id`):
//! - `commits`: one document per append, `_id` = `<stream>/<first_version>` (the concurrency
//!   guard), holding the append's events.
//! - `events`: the global log, one document per event, `_id` = [`log_id`] of its position,
//!   `page` = [`log_page`] of it (a bucket key of 1,000 positions); written only by the relay,
//!   in position order.
//! - `outbox`: pending publications, written before the commit and deleted once published.
//! - `heads`: per stream, a hint of its head version and an optional aggregate snapshot.
//! - `positions`: per sequenced commit, the position of its first event; inserted by the relay
//!   once the log holds the commit's events.
//! - `idempotency`: claims of idempotency keys.
//! - `relay`: the relay's lease and sequencer hint.
//!
//! `commits`, `heads`, `positions` and `idempotency` grow with the data and are read by `_id`
//! only; the log is read in position order on batch paths, by `_id` or by `page`.
//!
//! Why everything rests on unique inserts: FerretDB has no transactions and its updates are
//! read-modify-write, so a unique `_id` is the only atomic guard it offers, and on MongoDB the
//! same design is correct for the same reason. An append is one commit document (atomic
//! alone), a lost race is a duplicate `_id`, and relay leadership is an epoch taken by insert
//! ([`crate::relay`]). Positions are not a `$inc` counter (on FerretDB it loses updates, and on
//! MongoDB it hands out positions out of commit order, so tailers would skip late commits),
//! nor JetStream's sequence (appends must work while NATS is down, and a republish after the
//! duplicate window gets a second sequence).

mod append;
pub mod audit;
mod claims;
pub(crate) mod docs;
mod group;
mod identity;
mod import;
pub mod port;
mod read;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use tokio::sync::{oneshot, Notify};

pub use append::{AppendOutcome, AppendRequest, Expected, IdempotencyKey, Snapshot, StreamHead};
pub use claims::{Claims, Holder};
pub use docs::{log_id, log_page, pack_state, LOG_PAGE_SIZE};
pub use identity::IDENTITY_COLLECTION;
pub use import::{Import, ImportedCommit};
pub use port::{BulkImport, EventLog};
pub use read::{EventBatches, LoadedStream, ReadAllOptions};

use docs::{CommitDoc, HeadDoc, IdempotencyDoc, LogDoc, OutboxDoc, PositionDoc};

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
    #[error(
        "the event store in database `{database}` has layout {found}, this version reads \
         layout {expected}; nothing is carried over between layouts: drop the database (and \
         its read models) or point the services at another one"
    )]
    Layout {
        database: String,
        found: i64,
        expected: i64,
    },
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

/// Whether the server is FerretDB, which pushes only equality on an indexed field down to
/// PostgreSQL (a range of `_id` is filtered after every document before it was read and
/// decoded) and counts by reading every document, or MongoDB, whose indexes serve ranges and
/// whose collections know their size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    FerretDb,
    MongoDb,
}

impl Backend {
    /// The backend a `buildInfo` answer names: FerretDB adds its own version
    /// (`ferretdbVersion`, 1.x) beside the MongoDB version it stands in for.
    pub fn of_build_info(info: &Document) -> Backend {
        if info.contains_key("ferretdbVersion") || info.contains_key("ferretdb") {
            Backend::FerretDb
        } else {
            Backend::MongoDb
        }
    }
}

/// Waiters for the position of a commit, completed by the relay when it sequences the commit.
#[derive(Default)]
pub(crate) struct PositionWaiters {
    state: Mutex<WaiterState>,
    /// Relays of this process that hold the lead (0 or 1 but in tests that start two).
    local_leaders: AtomicUsize,
}

#[derive(Default)]
struct WaiterState {
    waiting: HashMap<String, Vec<oneshot::Sender<u64>>>,
    /// Positions the local relay gave lately, for a waiter that registers only after its
    /// commit was sequenced; the oldest are dropped beyond [`RECENT_POSITIONS`].
    recent: HashMap<String, u64>,
    recent_order: VecDeque<String>,
}

/// How many of the latest sequenced commits keep their position for late waiters: far more
/// than the commits appended while one append returns and its caller starts waiting.
const RECENT_POSITIONS: usize = 4_096;

impl PositionWaiters {
    /// A receiver of the commit's position; already answered when the local relay sequenced
    /// the commit lately.
    fn register(&self, commit_id: &str) -> oneshot::Receiver<u64> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut state) = self.state.lock() {
            match state.recent.get(commit_id) {
                Some(&position) => {
                    let _ = tx.send(position);
                }
                None => state
                    .waiting
                    .entry(commit_id.to_owned())
                    .or_default()
                    .push(tx),
            }
        }
        rx
    }

    pub(crate) fn complete(&self, commit_id: &str, position: u64) {
        let senders = self.state.lock().ok().and_then(|mut state| {
            if state
                .recent
                .insert(commit_id.to_owned(), position)
                .is_none()
            {
                state.recent_order.push_back(commit_id.to_owned());
            }
            while state.recent_order.len() > RECENT_POSITIONS {
                if let Some(oldest) = state.recent_order.pop_front() {
                    state.recent.remove(&oldest);
                }
            }
            state.waiting.remove(commit_id)
        });
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(position);
        }
    }

    fn forget(&self, commit_id: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting.remove(commit_id);
        }
    }

    /// Records that a relay of this process took (`true`) or lost the lead.
    pub(crate) fn set_local_leader(&self, leads: bool) {
        if leads {
            self.local_leaders.fetch_add(1, Ordering::SeqCst);
        } else {
            self.local_leaders.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn local_relay_leads(&self) -> bool {
        self.local_leaders.load(Ordering::SeqCst) > 0
    }
}

/// Commits inserted by this process while its relay leads, handed to that relay so that it
/// need not read them back (on FerretDB a read scans the commit's partition). Emptied when a
/// relay takes the lead.
///
/// Appends between their intent and their commit's fate are marked in flight: the relay
/// finds their outbox entries and would read back a commit not yet inserted, each pass, for
/// each of them (with 64 appends in flight, more reads of `commits` and `positions` than the
/// appends' own inserts). It waits for them instead. A mark is trusted for
/// [`IN_FLIGHT_TRUST`] only, so an append that never settles (its caller went away) costs a
/// late read, never a lost publication.
///
/// A relay pass can read a commit back itself between its insert and its hand-over here (the
/// outbox entry is written first), so some commits are never taken. The oldest are forgotten
/// once [`LANDED_LIMIT`] newer ones came: a commit still untaken by then is read back like
/// another process's. Refusing new commits at the limit instead kept the map full of
/// forgotten ones, tens of MB, and made the relay read every commit back.
#[derive(Default)]
pub(crate) struct LandedCommits {
    state: Mutex<Landed>,
}

#[derive(Default)]
struct Landed {
    by_append_id: HashMap<String, CommitDoc>,
    /// Append ids in the order they were added, taken ones included.
    order: VecDeque<String>,
    /// Appends whose intent may be stored and whose commit's fate is not known yet, since
    /// when.
    in_flight: HashMap<String, std::time::Instant>,
}

/// Far more commits than land while the relay makes one pass.
const LANDED_LIMIT: usize = 2_048;

/// How long an append's in-flight mark keeps the relay from reading its commit back: far
/// longer than an append's two inserts take, short enough that a commit whose append never
/// settled is published soon after.
const IN_FLIGHT_TRUST: Duration = Duration::from_secs(5);

impl LandedCommits {
    /// Marks an append in flight before its intent is inserted.
    pub(crate) fn begin(&self, append_id: &str) {
        if let Ok(mut landed) = self.state.lock() {
            if landed.in_flight.len() >= LANDED_LIMIT {
                landed
                    .in_flight
                    .retain(|_, since| since.elapsed() < IN_FLIGHT_TRUST);
            }
            landed
                .in_flight
                .insert(append_id.to_owned(), std::time::Instant::now());
        }
    }

    /// Ends an append's in-flight mark without a landed commit (its version was taken, or its
    /// fate is unknown: the relay reads it back).
    pub(crate) fn abandon(&self, append_id: &str) {
        if let Ok(mut landed) = self.state.lock() {
            landed.in_flight.remove(append_id);
        }
    }

    /// Whether an append of this process is still inserting its commit: the relay need not
    /// look for the commit yet.
    pub(crate) fn is_in_flight(&self, append_id: &str) -> bool {
        self.state.lock().is_ok_and(|landed| {
            landed
                .in_flight
                .get(append_id)
                .is_some_and(|since| since.elapsed() < IN_FLIGHT_TRUST)
        })
    }

    /// Hands a landed commit to the local relay (when `keep`), ending its in-flight mark.
    pub(crate) fn land(&self, commit: &CommitDoc, keep: bool) {
        if keep {
            self.add(commit);
        } else {
            self.abandon(&commit.append_id);
        }
    }

    pub(crate) fn add(&self, commit: &CommitDoc) {
        if let Ok(mut landed) = self.state.lock() {
            landed.in_flight.remove(&commit.append_id);
            landed
                .by_append_id
                .insert(commit.append_id.clone(), commit.clone());
            landed.order.push_back(commit.append_id.clone());
            while landed.order.len() > LANDED_LIMIT {
                if let Some(oldest) = landed.order.pop_front() {
                    landed.by_append_id.remove(&oldest);
                }
            }
        }
    }

    /// The landed commit of an append, taken out.
    pub(crate) fn take(&self, append_id: &str) -> Option<CommitDoc> {
        self.state.lock().ok()?.by_append_id.remove(append_id)
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut landed) = self.state.lock() {
            landed.by_append_id.clear();
            landed.order.clear();
            landed.in_flight.clear();
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.state
            .lock()
            .map_or(0, |landed| landed.by_append_id.len())
    }
}

#[derive(Clone)]
pub struct EventStore {
    pub(crate) db: Database,
    pub(crate) backend: Backend,
    identity: String,
    pub(crate) commits: Collection<CommitDoc>,
    pub(crate) log: Collection<LogDoc>,
    pub(crate) outbox: Collection<OutboxDoc>,
    pub(crate) heads: Collection<HeadDoc>,
    pub(crate) positions: Collection<PositionDoc>,
    pub(crate) idempotency: Collection<IdempotencyDoc>,
    /// Wakes the relay as soon as a commit lands instead of at its next poll.
    pub(crate) appended: Arc<Notify>,
    pub(crate) waiters: Arc<PositionWaiters>,
    /// Commits this process inserted and the local relay has not classified yet, by append
    /// id: the relay knows they landed without reading them back.
    pub(crate) landed: Arc<LandedCommits>,
    /// Concurrent appends' inserts, written together.
    groups: Arc<group::GroupCommit>,
    pub(crate) metrics: Arc<crate::metrics::StoreMetrics>,
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
    /// Connects to the server at `uri` ([`connect_client`]) and opens the store in its database
    /// `database`.
    pub async fn connect(uri: &str, database: &str, app_name: &str) -> Result<Self, StoreError> {
        let client = connect_client(uri, app_name).await?;
        EventStore::open(client.database(database)).await
    }

    pub async fn open(db: Database) -> Result<Self, StoreError> {
        let backend = detect_backend(&db).await?;
        let identity = identity::open(&db).await?;
        let store = EventStore {
            commits: db.collection("commits"),
            log: db.collection("events"),
            outbox: db.collection("outbox"),
            heads: db.collection("heads"),
            positions: db.collection("positions"),
            idempotency: db.collection("idempotency"),
            db,
            backend,
            identity,
            appended: Arc::new(Notify::new()),
            waiters: Arc::new(PositionWaiters::default()),
            landed: Arc::new(LandedCommits::default()),
            groups: Arc::new(group::GroupCommit::default()),
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
    /// `events.page`: the log's pages are read by equality on it (see
    /// [`EventStore::read_all`]). A commit's `_id` (stream and first version) is its only
    /// key: stream reads walk it.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let unique = IndexOptions::builder().unique(true).build();
        // One index a call: FerretDB 1.24 panics on a `createIndexes` of several indexes of
        // which some exist already (at every start but the first).
        let indexes = [
            IndexModel::builder()
                .keys(doc! {"event_id": 1})
                .options(unique)
                .build(),
            IndexModel::builder().keys(doc! {"page": 1}).build(),
        ];
        for index in indexes {
            self.log.create_index(index).await?;
        }
        Ok(())
    }

    /// The store's identity: a random id recorded when the store was created, in the
    /// one-document collection
    /// [`IDENTITY_COLLECTION`]. Derived data (the read models) records it to tell its own
    /// store from a new one under the same database name, such as after the event store's
    /// database was dropped and filled again.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.run_command(doc! {"ping": 1}).await?;
        Ok(())
    }

    /// The position of a commit once the relay has sequenced it, waiting at most `timeout`.
    /// The local relay answers at once, also when it sequenced the commit before the wait
    /// began; a relay in another process is noticed by reading the commit. While the local
    /// relay leads, the commit is read only once more at the deadline (a relay that led
    /// before it may have sequenced the commit): on FerretDB each read scans the commit's
    /// partition, and under load the polls of many waiters slowed the relay they waited for.
    pub async fn wait_for_position(&self, commit_id: &str, timeout: Duration) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut notified = self.waiters.register(commit_id);
        let mut poll_every = Duration::from_millis(25);
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.waiters.forget(commit_id);
                return self.recorded_position(commit_id).await;
            }
            let wait = poll_every.min(deadline - now);
            match tokio::time::timeout(wait, &mut notified).await {
                Ok(Ok(position)) => return Some(position),
                Ok(Err(_)) => notified = self.waiters.register(commit_id),
                Err(_) if self.waiters.local_relay_leads() => {}
                Err(_) => {
                    if let Some(position) = self.recorded_position(commit_id).await {
                        self.waiters.forget(commit_id);
                        return Some(position);
                    }
                    poll_every = (poll_every * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// The position recorded for a commit, if it has one yet.
    async fn recorded_position(&self, commit_id: &str) -> Option<u64> {
        let recorded = self.position_of(commit_id).await.ok()?;
        let position = match recorded {
            Some(position) => position,
            // A store written before positions had their own collection kept them on the
            // commit.
            None => {
                self.commits
                    .find_one(doc! {"_id": commit_id})
                    .await
                    .ok()??
                    .position?
            }
        };
        u64::try_from(position).ok()
    }

    /// The first position recorded for a commit in `positions`.
    pub(crate) async fn position_of(&self, commit_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .positions
            .find_one(doc! {"_id": commit_id})
            .await?
            .map(|recorded| recorded.position))
    }

    /// `commit` with its position, which the commit itself holds only in a store written
    /// before positions had their own collection.
    pub(crate) async fn with_position(
        &self,
        mut commit: CommitDoc,
    ) -> Result<CommitDoc, StoreError> {
        if commit.position.is_none() {
            commit.position = self.position_of(&commit.id).await?;
        }
        Ok(commit)
    }
}

async fn detect_backend(db: &Database) -> Result<Backend, StoreError> {
    let info = db.run_command(doc! {"buildInfo": 1}).await?;
    Ok(Backend::of_build_info(&info))
}

/// Whether a MongoDB error is a unique-index violation (code 11000), however it is wrapped:
/// a write failed because a document with the same `_id` (or unique key) exists.
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

/// Whether an unordered insert failed only because some of its documents exist already:
/// every other document was stored.
pub(crate) fn is_only_duplicate_keys(error: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match error.kind.as_ref() {
        ErrorKind::InsertMany(e) => {
            e.write_concern_error.is_none()
                && e.write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|e| e.code == 11000))
        }
        _ => is_duplicate_key(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferretdb_is_told_from_mongodb_by_its_build_info() {
        // Fields of FerretDB 1.24.2's answer on PostgreSQL, and of MongoDB 7.0's.
        let ferretdb = doc! {
            "version": "7.0.42", "gitVersion": "unknown", "versionArray": [7, 0, 42, 0],
            "ferretdbVersion": "v1.24.2",
            "ferretdbFeatures": {"aggregationStages": ["$match", "$sort"]}, "ok": 1,
        };
        let mongodb = doc! {
            "version": "7.0.14", "gitVersion": "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188",
            "versionArray": [7, 0, 14, 0], "storageEngines": ["devnull", "wiredTiger"], "ok": 1,
        };
        assert_eq!(Backend::of_build_info(&ferretdb), Backend::FerretDb);
        assert_eq!(Backend::of_build_info(&mongodb), Backend::MongoDb);
    }

    fn landed_commit(append_id: String) -> CommitDoc {
        CommitDoc {
            append_id,
            ..CommitDoc::empty("job", "j", 1, 0)
        }
    }

    #[test]
    fn landed_commits_nobody_takes_are_forgotten_oldest_first() {
        let landed = LandedCommits::default();
        for n in 0..LANDED_LIMIT + 10 {
            landed.add(&landed_commit(format!("a{n}")));
        }
        assert_eq!(landed.held(), LANDED_LIMIT);
        assert!(landed.take("a9").is_none(), "among the oldest ten");
        assert!(landed.take("a10").is_some());
        let newest = format!("a{}", LANDED_LIMIT + 9);
        assert_eq!(landed.take(&newest).map(|c| c.append_id), Some(newest));
        // Taken commits leave room: the map holds only what is still untaken.
        assert_eq!(landed.held(), LANDED_LIMIT - 2);
        landed.add(&landed_commit("late".into()));
        assert!(
            landed.take("a11").is_some(),
            "one add forgets one id, taken or not"
        );
        assert!(landed.take("late").is_some());
    }

    #[test]
    fn an_append_is_in_flight_from_its_intent_until_its_commit_lands_or_fails() {
        let landed = LandedCommits::default();
        landed.begin("a1");
        landed.begin("a2");
        landed.begin("a3");
        assert!(landed.is_in_flight("a1") && landed.is_in_flight("a2"));
        assert!(!landed.is_in_flight("a4"), "never begun");
        landed.land(&landed_commit("a1".into()), true);
        assert!(!landed.is_in_flight("a1"));
        assert!(landed.take("a1").is_some(), "kept for the local relay");
        landed.land(&landed_commit("a2".into()), false);
        assert!(!landed.is_in_flight("a2"));
        assert!(
            landed.take("a2").is_none(),
            "no local relay leads: not kept"
        );
        landed.abandon("a3");
        assert!(
            !landed.is_in_flight("a3"),
            "a taken version or an unknown fate"
        );
        landed.begin("a5");
        landed.clear();
        assert!(
            !landed.is_in_flight("a5"),
            "a new leader reads everything back"
        );
    }

    #[test]
    fn a_waiter_gets_its_position_also_when_the_commit_was_sequenced_before_it_waited() {
        let waiters = PositionWaiters::default();
        let mut early = waiters.register("job/a/0000000001");
        waiters.complete("job/a/0000000001", 7);
        assert_eq!(early.try_recv(), Ok(7));
        waiters.complete("job/b/0000000001", 8);
        let mut late = waiters.register("job/b/0000000001");
        assert_eq!(late.try_recv(), Ok(8), "sequenced before the wait began");
        let mut other = waiters.register("job/c/0000000001");
        assert!(other.try_recv().is_err(), "not sequenced yet");
    }

    #[test]
    fn only_the_latest_positions_are_kept_for_late_waiters() {
        let waiters = PositionWaiters::default();
        for n in 0..RECENT_POSITIONS + 10 {
            waiters.complete(&format!("job/{n}/0000000001"), n as u64 + 1);
        }
        assert!(waiters.register("job/0/0000000001").try_recv().is_err());
        let newest = RECENT_POSITIONS + 9;
        assert_eq!(
            waiters
                .register(&format!("job/{newest}/0000000001"))
                .try_recv(),
            Ok(newest as u64 + 1)
        );
    }
}
