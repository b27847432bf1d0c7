//! The outbox relay: gives committed events their global positions and publishes them.
//!
//! One relay at a time holds the lease (see [`crate::lease`]); it is the only writer of the `events`
//! log, so positions are dense and the log grows strictly at its tail. Each pass:
//! 1. reads the outbox (pending commits only, so it stays small),
//! 2. drops entries whose commit lost its race, or never landed and is old,
//! 3. sequences new commits: inserts their events into `events` with the next positions, then
//!    records the first position on each commit,
//! 4. publishes sequenced commits in position order and deletes their outbox entries once
//!    JetStream has acknowledged every event.
//!
//! NATS being down only stops step 4; commits keep getting positions, and their entries stay
//! until a later pass publishes them. A crash between any two steps is repaired by the next
//! leader's resync (step 3) or by the idempotent re-run of steps 2 and 4.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use bson::doc;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use crate::bus::Bus;
pub use crate::lease::Lease;
use crate::store::docs::{log_id, to_u64, CommitDoc, LogDoc, OutboxDoc, PositionDoc};
use crate::store::{is_duplicate_key, is_only_duplicate_keys, EventStore, StoreError};

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often the outbox is read when no local append wakes the relay.
    pub poll_interval: Duration,
    /// Outbox entries handled per pass.
    pub batch_size: usize,
    /// A leader that has not renewed its lease for this long is replaced.
    pub lease_ttl: Duration,
    /// An outbox entry whose commit is still missing after this long is a leftover of a
    /// writer that died between its two inserts.
    pub orphan_age: Duration,
    /// Names this relay in the lease, for operators.
    pub holder: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            poll_interval: Duration::from_millis(200),
            batch_size: 500,
            lease_ttl: Duration::from_secs(5),
            orphan_age: Duration::from_secs(30),
            holder: format!("relay-{}-{}", std::process::id(), uuid::Uuid::now_v7()),
        }
    }
}

/// The sequencer's hint of the next free position, kept in the `relay` collection.
#[derive(Debug, Serialize, Deserialize)]
struct SequencerDoc {
    #[serde(rename = "_id")]
    id: String,
    next_position: i64,
}

/// The collection of the relay's lease epochs and the sequencer's hint.
pub const RELAY_COLLECTION: &str = "relay";
/// The relay's lease in [`RELAY_COLLECTION`]: epochs `lease/<n>`, hint `lease`.
const LEASE_NAME: &str = "lease";
/// `_id` of the sequencer's hint in [`RELAY_COLLECTION`]; its `next_position` is the next
/// free position of the log.
pub const SEQUENCER_ID: &str = "sequencer";
const PROBE_CHUNK: usize = 64;

/// The highest position the sequencer has recorded as written: its hint of the next free
/// position, minus one (0 before the first batch). One point read of the small `relay`
/// collection; finding the tail in the log itself would take a search of point reads (or,
/// on FerretDB, a range query that decodes the whole log).
///
/// Never above the log's true tail (the hint is saved after its batch is inserted); below it
/// only after a relay crashed between the two writes, until its successor sequences its next
/// batch or is about to publish that batch, and such a batch was not published either.
pub async fn sequenced_tail(store: &EventStore) -> Result<u64, StoreError> {
    Ok(next_free_position(store.database())
        .await?
        .saturating_sub(1))
}

/// The sequencer's hint of the next free position in the event store's database `db` (1
/// before the first batch). See [`sequenced_tail`] for what it may be trusted with.
pub async fn next_free_position(db: &mongodb::Database) -> Result<u64, StoreError> {
    Ok(db
        .collection::<SequencerDoc>(RELAY_COLLECTION)
        .find_one(doc! {"_id": SEQUENCER_ID})
        .await?
        .map(|doc| to_u64(doc.next_position))
        .transpose()?
        .unwrap_or(1)
        .max(1))
}

pub struct Relay {
    store: EventStore,
    bus: Bus,
    config: RelayConfig,
    lease: Lease,
    /// The next free position; `None` until a resync found the tail of the log.
    next_position: Option<u64>,
    /// Whether `next_position` is the sequencer's saved hint, taken on trust and not yet
    /// confirmed by an insert at it (see [`Relay::adopt_hint`]).
    hint_unconfirmed: bool,
    /// The commits of the outbox entries already read, by append id, with the positions this
    /// relay gave them: an entry waits in the outbox for several passes while its batch is
    /// published, and on FerretDB each read of a commit scans its partition. Commits are never
    /// changed but for the position, which only the leading relay records; the map is
    /// emptied whenever this relay (re)takes the lead or resyncs.
    known_commits: HashMap<String, CommitDoc>,
    /// Whether this relay holds the lead, as last told to the store's position waiters.
    leading: bool,
    stream_ready: bool,
    publish_retry_at: Option<Instant>,
    publish_backoff: Duration,
}

impl Relay {
    pub fn new(store: EventStore, bus: Bus, config: RelayConfig) -> Self {
        let lease = Lease::new(
            store.database().collection(RELAY_COLLECTION),
            LEASE_NAME,
            &config.holder,
            config.lease_ttl,
        );
        Relay {
            store,
            bus,
            config,
            lease,
            next_position: None,
            hint_unconfirmed: false,
            known_commits: HashMap::new(),
            leading: false,
            stream_ready: false,
            publish_retry_at: None,
            publish_backoff: Duration::from_millis(100),
        }
    }

    /// Runs until `shutdown` completes, then makes one last pass and releases the lease.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let appended = self.store.appended.clone();
        let mut last_report = Instant::now();
        let mut reported = None;
        loop {
            let more = self.tick().await;
            if last_report.elapsed() >= Duration::from_secs(10) {
                let now = self.store.metrics().snapshot();
                if reported != Some(now) {
                    tracing::info!(
                        appended = now.appended_events,
                        sequenced = now.sequenced_events,
                        published = now.published_events,
                        outbox_pending = now.outbox_pending,
                        "relay"
                    );
                    reported = Some(now);
                }
                last_report = Instant::now();
            }
            if more {
                continue;
            }
            tokio::select! {
                _ = appended.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = &mut shutdown => {
                    self.publish_retry_at = None;
                    self.tick().await;
                    self.set_leading(false);
                    self.lease.release().await;
                    tracing::info!("relay stopped");
                    return;
                }
            }
        }
    }

    /// One pass if this relay leads; true when more work is waiting.
    pub async fn tick(&mut self) -> bool {
        match self.lease.hold().await {
            Ok(true) => self.set_leading(true),
            Ok(false) => {
                self.set_leading(false);
                self.next_position = None;
                return false;
            }
            Err(error) => {
                tracing::warn!(%error, "relay lease check failed");
                self.set_leading(false);
                self.next_position = None;
                return false;
            }
        }
        match self.pass().await {
            Ok(more) => more,
            Err(error) => {
                tracing::warn!(%error, "relay pass failed; resyncing");
                self.next_position = None;
                false
            }
        }
    }

    /// Tells the store's position waiters whether to expect this relay's answers or to read
    /// commits for a relay in another process.
    fn set_leading(&mut self, leading: bool) {
        if self.leading != leading {
            self.leading = leading;
            self.store.waiters.set_local_leader(leading);
        }
    }

    async fn pass(&mut self) -> Result<bool, StoreError> {
        if self.next_position.is_none() {
            self.adopt_hint().await?;
        }
        let entries: Vec<OutboxDoc> = self
            .store
            .outbox
            .find(doc! {})
            .limit(self.config.batch_size as i64)
            .await?
            .try_collect()
            .await?;
        self.store.metrics.outbox_seen(&entries);
        if entries.is_empty() {
            return Ok(false);
        }
        let full = entries.len() == self.config.batch_size;
        let work = self.classify(entries).await?;
        if !work.discard.is_empty() {
            self.store
                .outbox
                .delete_many(doc! {"_id": {"$in": &work.discard}})
                .await?;
        }
        if self.hint_unconfirmed && self.hint_is_behind(&work.sequenced) {
            // A relay died after recording a batch's positions but before saving its hint;
            // confirm the tail before publishing past the hint.
            tracing::info!("the sequencer's hint is behind the log; resyncing");
            self.resync().await?;
        }
        let mut ready = work.sequenced;
        ready.extend(self.sequence(work.unsequenced).await?);
        let published = self.publish(ready).await;
        Ok(full && published)
    }

    async fn classify(&mut self, mut entries: Vec<OutboxDoc>) -> Result<Work, StoreError> {
        // Version order within a stream, so a stream's commits get increasing positions.
        entries.sort_by(|a, b| {
            (&a.aggregate_type, &a.aggregate_id, a.first_version).cmp(&(
                &b.aggregate_type,
                &b.aggregate_id,
                b.first_version,
            ))
        });
        let commits = self.commits_of(&entries).await?;
        let mut work = Work::default();
        let mut blocked = HashSet::new();
        for (entry, commit) in entries.into_iter().zip(commits) {
            let stream = (entry.aggregate_type.clone(), entry.aggregate_id.clone());
            if blocked.contains(&stream) {
                continue;
            }
            match commit {
                Some(commit) if commit.append_id == entry.append_id => {
                    self.known_commits
                        .insert(entry.append_id.clone(), commit.clone());
                    if commit.position.is_some() {
                        work.sequenced.push((entry.append_id, commit));
                    } else {
                        work.unsequenced.push((entry.append_id, commit));
                    }
                }
                Some(_) => work.discard.push(entry.append_id),
                None => {
                    if self.is_orphan(&entry) && !self.store.landed.is_in_flight(&entry.append_id) {
                        work.discard.push(entry.append_id);
                    } else {
                        // Its writer may still be inserting it; later commits of the stream wait.
                        blocked.insert(stream);
                    }
                }
            }
        }
        Ok(work)
    }

    /// The commit of each entry (`None` where it has not landed), with its position if it has
    /// one: remembered from an earlier pass or this process's appends, else read.
    async fn commits_of(
        &mut self,
        entries: &[OutboxDoc],
    ) -> Result<Vec<Option<CommitDoc>>, StoreError> {
        let pending: HashSet<&str> = entries.iter().map(|e| e.append_id.as_str()).collect();
        self.known_commits
            .retain(|append_id, _| pending.contains(append_id.as_str()));
        let known = &self.known_commits;
        let reads: Vec<_> = entries
            .iter()
            .map(|entry| {
                // Taken even when known: a copy handed over after this relay read the
                // commit back itself would otherwise wait there until it is forgotten.
                let landed = self.store.landed.take(&entry.append_id);
                let cached = known.get(&entry.append_id).cloned().or(landed);
                // An append of this process still inserting its commit: not landed yet,
                // which reading would only confirm.
                let awaited = cached.is_none() && self.store.landed.is_in_flight(&entry.append_id);
                let store = self.store.clone();
                let id = entry.commit_id.clone();
                async move {
                    if cached.is_some() || awaited {
                        return Ok::<_, StoreError>(cached);
                    }
                    match store.commits.find_one(doc! {"_id": &id}).await? {
                        Some(commit) => Ok(Some(store.with_position(commit).await?)),
                        None => Ok(None),
                    }
                }
            })
            .collect();
        futures::stream::iter(reads)
            .buffered(PROBE_CHUNK)
            .try_collect()
            .await
    }

    /// An entry whose commit is still missing after [`RelayConfig::orphan_age`]: its writer
    /// died between its two inserts.
    fn is_orphan(&self, entry: &OutboxDoc) -> bool {
        let age = (Utc::now() - entry.created_at.to_chrono())
            .to_std()
            .unwrap_or_default();
        age > self.config.orphan_age
    }

    /// Gives commits positions: their events go into the log first, then each commit records
    /// its first position. A crash in between is repaired by [`Relay::resync`].
    async fn sequence(
        &mut self,
        commits: Vec<(String, CommitDoc)>,
    ) -> Result<Vec<(String, CommitDoc)>, StoreError> {
        if commits.is_empty() {
            return Ok(commits);
        }
        let Some(mut next) = self.next_position else {
            return Ok(Vec::new());
        };
        let commits = causal_order(commits);
        let mut log = Vec::new();
        let mut sequenced = Vec::with_capacity(commits.len());
        for (append_id, mut commit) in commits {
            let first = next as i64;
            log.extend(commit.log_docs(first));
            next += commit.events.len() as u64;
            commit.position = Some(first);
            sequenced.push((append_id, commit));
        }
        match self.store.log.insert_many(&log).ordered(true).await {
            Ok(_) => {
                self.hint_unconfirmed = false;
                // The positions are final once the log holds them: waiting commands need not
                // wait for the commits and the hint below.
                for (_, commit) in &sequenced {
                    if let Some(position) = commit.position {
                        self.store.waiters.complete(&commit.id, position as u64);
                    }
                }
            }
            Err(error) if self.hint_unconfirmed && is_duplicate_key(&error) => {
                // The hint was behind the log: a relay died between a batch and its hint. The
                // ordered insert stopped at its first event, so nothing of this batch was
                // written; find the real tail, and sequence these commits in the next pass.
                tracing::info!("the sequencer's hint is behind the log; resyncing");
                self.resync().await?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        }
        self.record_positions(
            sequenced
                .iter()
                .filter_map(|(_, c)| Some((c.id.clone(), c.position?)))
                .collect(),
        )
        .await?;
        self.next_position = Some(next);
        for (append_id, commit) in &sequenced {
            self.known_commits.insert(append_id.clone(), commit.clone());
        }
        self.save_hint(next).await?;
        self.store.metrics.sequenced(log.len());
        Ok(sequenced)
    }

    /// Inserts each commit's first position into `positions`, all in one unordered insert. A
    /// position already there is the same one (a commit's events enter the log once: unique
    /// `event_id`), recorded by a relay whose batch this one repairs: only other failures
    /// count.
    async fn record_positions(&self, positions: Vec<(String, i64)>) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let docs = positions
            .into_iter()
            .map(|(commit_id, position)| PositionDoc {
                commit_id,
                position,
            });
        match self.store.positions.insert_many(docs).ordered(false).await {
            Err(error) if !is_only_duplicate_keys(&error) => Err(error.into()),
            _ => Ok(()),
        }
    }

    async fn save_hint(&self, next: u64) -> Result<(), StoreError> {
        self.lease
            .collection::<SequencerDoc>()
            .replace_one(
                doc! {"_id": SEQUENCER_ID},
                SequencerDoc {
                    id: SEQUENCER_ID.into(),
                    next_position: next as i64,
                },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    /// Takes the sequencer's saved hint as the next free position, after a takeover or a
    /// failure, without reading the log. The hint is saved after each batch, so it is the tail
    /// unless a relay died between a batch and its hint; then the first insert at it collides
    /// with that batch's first event (the log's unique `_id`), and [`Relay::resync`] runs.
    ///
    /// Reading the log to confirm the tail would cost a point read of a missing position,
    /// which on FerretDB scans the whole log: about 2 s at 100,000 events, and the resync's
    /// 64 concurrent probes kept the command API waiting 40 s after every start.
    async fn adopt_hint(&mut self) -> Result<(), StoreError> {
        self.known_commits.clear();
        self.store.landed.clear();
        self.next_position = Some(next_free_position(self.store.database()).await?);
        self.hint_unconfirmed = true;
        Ok(())
    }

    /// Whether a commit already holds a position at or past the next free one.
    fn hint_is_behind(&self, sequenced: &[(String, CommitDoc)]) -> bool {
        let next = self.next_position.unwrap_or(1);
        sequenced.iter().any(|(_, commit)| {
            commit
                .position
                .is_some_and(|first| first >= 0 && first as u64 >= next)
        })
    }

    /// Finds the tail of the log when the hint was behind it: from the saved hint, read
    /// forward until a position is missing. Every event found past the hint belongs to a batch
    /// whose commits may not have recorded their positions yet, so they are recorded again.
    async fn resync(&mut self) -> Result<(), StoreError> {
        self.known_commits.clear();
        let mut next = next_free_position(self.store.database()).await?;
        let mut first_positions: BTreeMap<String, i64> = BTreeMap::new();
        loop {
            let probes: Vec<_> = (0..PROBE_CHUNK as u64)
                .map(|offset| {
                    let log = self.store.log.clone();
                    async move { log.find_one(doc! {"_id": log_id(next + offset)}).await }
                })
                .collect();
            let found: Vec<Option<LogDoc>> = futures::stream::iter(probes)
                .buffered(PROBE_CHUNK)
                .try_collect()
                .await?;
            let present = found.iter().take_while(|doc| doc.is_some()).count();
            for doc in found.into_iter().flatten().take(present) {
                let first = first_positions.entry(doc.commit_id).or_insert(doc.position);
                *first = (*first).min(doc.position);
            }
            next += present as u64;
            if present < PROBE_CHUNK {
                break;
            }
        }
        if !first_positions.is_empty() {
            tracing::info!(
                commits = first_positions.len(),
                "relay repairing positions of an interrupted batch"
            );
            self.record_positions(first_positions.into_iter().collect())
                .await?;
        }
        self.save_hint(next).await?;
        self.next_position = Some(next);
        self.hint_unconfirmed = false;
        Ok(())
    }

    /// Publishes sequenced commits in position order; true when all were acknowledged.
    async fn publish(&mut self, mut ready: Vec<(String, CommitDoc)>) -> bool {
        if ready.is_empty() {
            return true;
        }
        if self.publish_retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        ready.sort_by_key(|(_, commit)| commit.position);
        #[cfg(feature = "fault-points")]
        abort_before_publish();
        let result = self.publish_commits(&ready).await;
        match result {
            Ok(()) => {
                self.publish_retry_at = None;
                self.publish_backoff = Duration::from_millis(100);
                let done: Vec<&String> = ready.iter().map(|(append_id, _)| append_id).collect();
                if let Err(error) = self
                    .store
                    .outbox
                    .delete_many(doc! {"_id": {"$in": done}})
                    .await
                {
                    // Harmless: the next pass publishes them again and JetStream (or the
                    // consumers, past the duplicate window) drops the duplicates.
                    tracing::warn!(%error, "published outbox entries not deleted");
                }
                true
            }
            Err(error) => {
                self.store.metrics.publish_failed();
                tracing::warn!(%error, retry_in = ?self.publish_backoff, "publishing to JetStream failed");
                self.publish_retry_at = Some(Instant::now() + self.publish_backoff);
                self.publish_backoff = (self.publish_backoff * 2).min(Duration::from_secs(5));
                self.stream_ready = false;
                false
            }
        }
    }

    async fn publish_commits(&mut self, ready: &[(String, CommitDoc)]) -> Result<(), String> {
        if !self.stream_ready {
            self.bus.ensure_stream().await.map_err(|e| e.to_string())?;
            self.stream_ready = true;
        }
        let mut envelopes = Vec::new();
        for (_, commit) in ready {
            envelopes.extend(commit.envelopes().map_err(|e| e.to_string())?);
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "publish",
            events = envelopes.len(),
            first_position = envelopes.first().and_then(|e| e.position)
        );
        self.bus
            .publish(self.store.identity(), &envelopes)
            .instrument(span)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .metrics
            .published(envelopes.len(), started.elapsed());
        Ok(())
    }
}

/// A fault point for the fault suite (`tests/tests/faults`), compiled only with the
/// `fault-points` feature: with `SIMPLEPRO_FAULT_ABORT_BEFORE_PUBLISH=N` the process aborts
/// at its N-th publish, when commits are stored and sequenced (and their commands may have
/// been answered) but not yet on JetStream. A crash lands in that window too rarely to test
/// otherwise.
#[cfg(feature = "fault-points")]
fn abort_before_publish() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PUBLISHES: AtomicU64 = AtomicU64::new(0);
    let at = std::env::var("SIMPLEPRO_FAULT_ABORT_BEFORE_PUBLISH")
        .ok()
        .and_then(|n| n.parse::<u64>().ok());
    if at.is_some_and(|at| PUBLISHES.fetch_add(1, Ordering::Relaxed) + 1 >= at) {
        eprintln!("fault point: aborting between append and publish");
        std::process::abort();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.set_leading(false);
    }
}

/// Orders a batch for sequencing. Across streams: the order the commits were written (their
/// record time, then their UUIDv7 append id), so a thread started after its participants were
/// registered comes after them in the log, as a reader would expect. Within a stream: version
/// order, whatever clocks said — each stream's commits are placed into that stream's slots of
/// the time order sorted by version.
fn causal_order(mut commits: Vec<(String, CommitDoc)>) -> Vec<(String, CommitDoc)> {
    commits.sort_by(|(_, a), (_, b)| {
        (a.recorded_at, &a.append_id).cmp(&(b.recorded_at, &b.append_id))
    });
    let mut slots: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, (_, commit)) in commits.iter().enumerate() {
        slots
            .entry((commit.aggregate_type.clone(), commit.aggregate_id.clone()))
            .or_default()
            .push(index);
    }
    let mut placed: Vec<Option<(String, CommitDoc)>> = commits.into_iter().map(Some).collect();
    for indices in slots.values().filter(|indices| indices.len() > 1) {
        let mut group: Vec<(String, CommitDoc)> =
            indices.iter().filter_map(|&i| placed[i].take()).collect();
        group.sort_by_key(|(_, commit)| commit.first_version);
        for (&i, item) in indices.iter().zip(group) {
            placed[i] = Some(item);
        }
    }
    placed.into_iter().flatten().collect()
}

#[derive(Default)]
struct Work {
    discard: Vec<String>,
    sequenced: Vec<(String, CommitDoc)>,
    unsequenced: Vec<(String, CommitDoc)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(kind: &str, id: &str, version: i64, at_millis: i64) -> (String, CommitDoc) {
        (
            format!("{kind}-{id}-{version}"),
            CommitDoc::empty(kind, id, version, at_millis),
        )
    }

    fn order(commits: Vec<(String, CommitDoc)>) -> Vec<String> {
        causal_order(commits)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn commits_are_sequenced_in_the_order_they_were_written_across_streams() {
        let batch = vec![
            commit("thread", "t", 1, 30),
            commit("user", "b", 1, 20),
            commit("user", "a", 1, 10),
        ];
        assert_eq!(order(batch), ["user-a-1", "user-b-1", "thread-t-1"]);
    }

    #[test]
    fn a_stream_keeps_version_order_even_when_its_clock_went_backwards() {
        let batch = vec![
            commit("job", "j", 2, 10),
            commit("user", "u", 1, 15),
            commit("job", "j", 1, 20),
        ];
        assert_eq!(order(batch), ["job-j-1", "user-u-1", "job-j-2"]);
    }
}
