//! `history verify`: walks the store and checks its invariants.
//!
//! - Version chains: each commit's `_id` names its stream and first version, its events are
//!   numbered consecutively, and per stream the commits cover 1, 2, 3 … without gap or overlap.
//! - Positions: `events` holds positions 1..N, each once.
//! - Log ≡ commits: every `events` document is the event its commit places at that position
//!   (same event id, version and commit), and every sequenced commit's events are in the log.
//! - Decoding: every event upcasts and decodes with the domain event enum of its aggregate.
//! - Publication: every commit has a position and no outbox entry is older than the grace
//!   period; younger ones are reported as pending, not as violations.
//!
//! Memory: cursors stream each collection, unsorted (a sorted read costs FerretDB 1.x the
//! whole collection in its memory); what is kept is one bit per position, one entry per
//! stream (its next version) and per sequenced commit (its position), a fixed number of hash
//! buckets, and commits that arrived out of chain order.
//! Log ≡ commits is checked by summing a hash of (position, event id, version, commit) per
//! bucket of positions from both sides; only buckets that differ are examined event by event.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document, RawDocumentBuf};
use chrono::Utc;
use domain::codec::Codec;
use events::store::audit::StoredCollection;
use events::store::log_id;
use events::EventStore;
use futures::TryStreamExt;
use serde::Deserialize;

mod positions;
mod report;

use positions::{Seen, SeenPositions};
pub use report::{Check, Findings, Report};

use crate::export::estimated_log_size;
use crate::{decode_check, HistoryError};

/// Position buckets for the log ≡ commits comparison.
const BUCKETS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Violations listed per check; all are counted.
    pub max_shown: usize,
    /// Commits and outbox entries younger than this may still be on their way.
    pub publish_grace: Duration,
    pub batch_size: u32,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_shown: 20,
            publish_grace: Duration::from_secs(60),
            batch_size: 10_000,
        }
    }
}

#[derive(Deserialize)]
struct CommitRow {
    #[serde(rename = "_id")]
    id: String,
    aggregate_type: String,
    aggregate_id: String,
    first_version: i64,
    last_version: i64,
    recorded_at: bson::DateTime,
    position: Option<i64>,
    events: Vec<CommitEventRow>,
}

impl CommitRow {
    /// The position recorded for the commit in `positions`, unless the commit holds one (a
    /// store written before positions had their own collection).
    fn take_position(&mut self, positions: &HashMap<String, i64>) {
        if self.position.is_none() {
            self.position = positions.get(&self.id).copied();
        }
    }
}

#[derive(Deserialize)]
struct CommitEventRow {
    event_id: String,
    version: i64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    schema_version: i32,
    #[serde(default)]
    payload: Bson,
}

#[derive(Deserialize)]
struct PositionRow {
    #[serde(rename = "_id")]
    id: String,
    position: Bson,
}

#[derive(Deserialize)]
struct LogRow {
    #[serde(rename = "_id")]
    id: Bson,
    position: Bson,
    event_id: String,
    version: i64,
    commit_id: String,
}

#[derive(Deserialize)]
struct OutboxRow {
    #[serde(rename = "_id")]
    append_id: String,
    commit_id: String,
    created_at: bson::DateTime,
}

fn fingerprint(position: i64, event_id: &str, version: i64, commit_id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (position, event_id, version, commit_id).hash(&mut hasher);
    hasher.finish()
}

struct Buckets {
    width: u64,
    log: Vec<u64>,
    commits: Vec<u64>,
}

impl Buckets {
    fn new(expected_positions: u64) -> Self {
        Buckets {
            width: expected_positions.div_ceil(BUCKETS).max(1),
            log: vec![0; BUCKETS as usize],
            commits: vec![0; BUCKETS as usize],
        }
    }

    fn index(&self, position: i64) -> usize {
        let offset = u64::try_from(position.max(1) - 1).unwrap_or(0);
        (offset / self.width).min(BUCKETS - 1) as usize
    }

    fn differing(&self) -> Vec<usize> {
        (0..BUCKETS as usize)
            .filter(|&i| self.log[i] != self.commits[i])
            .collect()
    }
}

/// Runs every check over the store's collections.
pub async fn verify(
    store: &EventStore,
    codec: &Codec,
    options: &VerifyOptions,
) -> Result<Report, HistoryError> {
    let started = Instant::now();
    let mut report = Report {
        max_shown: options.max_shown,
        ..Report::default()
    };
    tracing::debug!("verify: sizing the log");
    let mut buckets = Buckets::new(estimated_log_size(store).await?);
    let log_projection = doc! {"position": 1, "event_id": 1, "version": 1, "commit_id": 1};
    let publication = PublicationDeadline::new(options.publish_grace);

    tracing::debug!(
        expected = buckets.width * BUCKETS,
        "verify: scanning the log"
    );
    // 1. The log: dense, ordered positions, and its half of the bucket hashes.
    scan_log(store, options, &log_projection, &mut buckets, &mut report).await?;

    tracing::debug!(
        events = report.log_events,
        "verify: reading the commits' positions"
    );
    let positions = recorded_positions(store, options.batch_size).await?;
    tracing::debug!(events = report.log_events, "verify: scanning the commits");
    // 2. The commits: shape, chains, decoding, publication, and the other bucket half.
    scan_commits(
        store,
        codec,
        options,
        &positions,
        &publication,
        &mut buckets,
        &mut report,
    )
    .await?;

    tracing::debug!(
        commits = report.commits,
        "verify: comparing log and commits"
    );
    // 3. Only where the hashes differ: find the events that disagree.
    locate_mismatches(
        store,
        options,
        &positions,
        &buckets,
        log_projection,
        &mut report,
    )
    .await?;

    tracing::debug!("verify: scanning the outbox");
    // 4. The outbox: entries older than the grace period were never published.
    scan_outbox(store, options, &publication, &mut report).await?;
    tracing::debug!("verify: done");
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn scan_commits(
    store: &EventStore,
    codec: &Codec,
    options: &VerifyOptions,
    positions: &HashMap<String, i64>,
    publication: &PublicationDeadline,
    buckets: &mut Buckets,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let mut commits = CommitScan::default();
    let mut cursor = store
        .scan_stored(StoredCollection::Commits, options.batch_size, None)
        .await?;
    while let Some(raw) = cursor.try_next().await? {
        report.commits += 1;
        let Some(mut commit) = parse::<CommitRow>(&raw, report, Check::Versions, "commit") else {
            continue;
        };
        commit.take_position(positions);
        report.events_in_commits += commit.events.len() as u64;
        check_commit_shape(&commit, report);
        commits.chain(&commit);
        check_decoding(&commit, codec, report);
        commits.place(&commit, publication, buckets, report);
    }
    commits.finish(report);
    Ok(())
}

/// When an unpublished commit or outbox entry stops being pending and becomes a violation.
struct PublicationDeadline {
    now: chrono::DateTime<Utc>,
    grace: chrono::Duration,
}

impl PublicationDeadline {
    fn new(grace: Duration) -> Self {
        Self {
            now: Utc::now(),
            grace: chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn age(&self, since: bson::DateTime) -> chrono::Duration {
        self.now - since.to_chrono()
    }

    /// Records `message` as a violation once `since` is older than the grace, else as pending.
    fn judge(&self, since: bson::DateTime, message: String, report: &mut Report) {
        if self.age(since) > self.grace {
            report.violation(Check::Publication, message);
        } else {
            report.pending(message);
        }
    }
}

/// The log, in the order the server returns it: every position 1..N present once, under its
/// `_id`.
async fn scan_log(
    store: &EventStore,
    options: &VerifyOptions,
    projection: &Document,
    buckets: &mut Buckets,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let mut cursor = store
        .scan_stored(
            StoredCollection::Log,
            options.batch_size,
            Some(projection.clone()),
        )
        .await?;
    let mut seen = SeenPositions::new(buckets.width * BUCKETS);
    while let Some(raw) = cursor.try_next().await? {
        report.log_events += 1;
        let Some(row) = parse::<LogRow>(&raw, report, Check::Positions, "events document") else {
            continue;
        };
        let Some(position) = check_log_row(&row, &mut seen, report) else {
            continue;
        };
        let index = buckets.index(position);
        buckets.log[index] = buckets.log[index].wrapping_add(fingerprint(
            position,
            &row.event_id,
            row.version,
            &row.commit_id,
        ));
    }
    for (first, last) in seen.missing() {
        let missing = if first == last {
            format!("position {first} is missing")
        } else {
            format!("positions {first}..{last} are missing")
        };
        report.violation(Check::Positions, missing);
    }
    report.highest_position = seen.highest();
    if report.log_events != report.highest_position {
        report.violation(
            Check::Positions,
            format!(
                "the log holds {} events but its highest position is {}",
                report.log_events, report.highest_position
            ),
        );
    }
    Ok(())
}

/// The position of one log document, after checking its `_id` and that no other document
/// held it; `None` when it has no usable position.
fn check_log_row(row: &LogRow, seen: &mut SeenPositions, report: &mut Report) -> Option<i64> {
    let Some(position) = integer(&row.position).filter(|p| *p >= 1) else {
        report.violation(
            Check::Positions,
            format!(
                "events document with _id {} has no positive integer position ({})",
                row.id, row.position
            ),
        );
        return None;
    };
    if row.id.as_i64() != Some(log_id(position as u64)) {
        report.violation(
            Check::Positions,
            format!(
                "events document with _id {} holds position {position}: its _id must be {}",
                row.id,
                log_id(position as u64)
            ),
        );
    }
    match seen.insert(position as u64) {
        Seen::First => {}
        Seen::Again => report.violation(
            Check::Positions,
            format!("position {position} is held by two documents: the log holds a position twice"),
        ),
        Seen::Beyond => report.violation(
            Check::Positions,
            format!(
                "position {position} is past {}, far beyond the log's size: not checked for gaps",
                seen.limit()
            ),
        ),
    }
    Some(position)
}

/// Every event of `commit` decodes, through the codec, as its aggregate's event.
fn check_decoding(commit: &CommitRow, codec: &Codec, report: &mut Report) {
    for event in &commit.events {
        if let Err(reason) = decode(commit, event, codec) {
            report.violation(
                Check::Decoding,
                format!(
                    "commit {} event {} (version {}): {reason}",
                    commit.id, event.event_id, event.version
                ),
            );
        }
    }
}

/// What the scan of the commits has gathered so far: each stream's next version, the commits
/// that came before their predecessor, and how many events sequenced commits hold.
#[derive(Default)]
struct CommitScan {
    next_version: HashMap<String, u64>,
    out_of_order: Vec<(String, u64, u64, String)>,
    sequenced_events: u64,
}

impl CommitScan {
    /// Follows `commit` on its stream's chain of versions.
    fn chain(&mut self, commit: &CommitRow) {
        let (Ok(first), Ok(last)) = (
            u64::try_from(commit.first_version),
            u64::try_from(commit.last_version),
        ) else {
            return;
        };
        let stream = format!("{}/{}", commit.aggregate_type, commit.aggregate_id);
        let expected = self.next_version.get(&stream).copied().unwrap_or(1);
        if first == expected {
            self.next_version.insert(stream, last + 1);
        } else {
            self.out_of_order
                .push((stream, first, last, commit.id.clone()));
        }
    }

    /// Adds a sequenced commit's events to the commits' bucket hashes; an unsequenced one is
    /// pending or, past the grace, unpublished.
    fn place(
        &mut self,
        commit: &CommitRow,
        publication: &PublicationDeadline,
        buckets: &mut Buckets,
        report: &mut Report,
    ) {
        let Some(first_position) = commit.position else {
            let message = format!(
                "commit {} recorded at {} ({} s ago) has no position",
                commit.id,
                crate::show::rfc3339(commit.recorded_at.to_chrono()),
                publication.age(commit.recorded_at).num_seconds()
            );
            publication.judge(commit.recorded_at, message, report);
            return;
        };
        let highest = i64::try_from(report.highest_position).unwrap_or(i64::MAX);
        self.sequenced_events += commit.events.len() as u64;
        for (index, event) in commit.events.iter().enumerate() {
            let position = first_position + index as i64;
            if position < 1 || position > highest {
                report.violation(
                    Check::LogMatchesCommits,
                    format!("commit {} places event {} at position {position}, which the log does not hold", commit.id, event.event_id),
                );
                continue;
            }
            let bucket = buckets.index(position);
            buckets.commits[bucket] = buckets.commits[bucket].wrapping_add(fingerprint(
                position,
                &event.event_id,
                event.version,
                &commit.id,
            ));
        }
    }

    /// Chains the late commits, counts the streams and compares the events of sequenced
    /// commits with the log's.
    fn finish(mut self, report: &mut Report) {
        resolve_chains(&mut self.next_version, self.out_of_order, report);
        report.streams = self.next_version.len() as u64;
        if self.sequenced_events != report.log_events {
            report.violation(
                Check::LogMatchesCommits,
                format!(
                    "sequenced commits hold {} events but the log holds {}",
                    self.sequenced_events, report.log_events
                ),
            );
        }
    }
}

/// Outbox entries: each one older than the grace period was never published.
async fn scan_outbox(
    store: &EventStore,
    options: &VerifyOptions,
    publication: &PublicationDeadline,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let mut cursor = store
        .scan_stored(StoredCollection::Outbox, options.batch_size, None)
        .await?;
    while let Some(raw) = cursor.try_next().await? {
        report.outbox_entries += 1;
        let Some(entry) = parse::<OutboxRow>(&raw, report, Check::Publication, "outbox entry")
        else {
            continue;
        };
        let message = format!(
            "outbox entry {} for commit {} is {} s old",
            entry.append_id,
            entry.commit_id,
            publication.age(entry.created_at).num_seconds()
        );
        publication.judge(entry.created_at, message, report);
    }
    Ok(())
}

/// The first position of every sequenced commit, from `positions`, by commit `_id`.
async fn recorded_positions(
    store: &EventStore,
    batch_size: u32,
) -> Result<HashMap<String, i64>, HistoryError> {
    let mut positions = HashMap::new();
    let mut cursor = store
        .scan_stored(StoredCollection::Positions, batch_size, None)
        .await?;
    while let Some(raw) = cursor.try_next().await? {
        let Ok(row) = bson::from_slice::<PositionRow>(raw.as_bytes()) else {
            continue;
        };
        if let Some(position) = integer(&row.position) {
            positions.insert(row.id, position);
        }
    }
    Ok(positions)
}

fn parse<T: for<'de> Deserialize<'de>>(
    raw: &RawDocumentBuf,
    report: &mut Report,
    check: Check,
    what: &str,
) -> Option<T> {
    match bson::from_slice::<T>(raw.as_bytes()) {
        Ok(row) => Some(row),
        Err(error) => {
            let id = raw
                .get("_id")
                .ok()
                .flatten()
                .map_or_else(|| "?".to_owned(), |id| format!("{id:?}"));
            report.violation(check, format!("{what} {id} is malformed: {error}"));
            None
        }
    }
}

fn integer(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn check_commit_shape(commit: &CommitRow, report: &mut Report) {
    let expected_id = format!(
        "{}/{}/{:010}",
        commit.aggregate_type, commit.aggregate_id, commit.first_version
    );
    if commit.id != expected_id {
        report.violation(
            Check::Versions,
            format!("commit {} should have _id {expected_id}", commit.id),
        );
    }
    let count = commit.events.len() as i64;
    if commit.first_version < 1 || commit.last_version - commit.first_version + 1 != count {
        report.violation(
            Check::Versions,
            format!(
                "commit {} spans versions {}..{} but holds {count} events",
                commit.id, commit.first_version, commit.last_version
            ),
        );
    }
    let mut numbering = String::new();
    for (index, event) in commit.events.iter().enumerate() {
        if event.version != commit.first_version + index as i64 {
            let _ = write!(numbering, " {}", event.version);
        }
    }
    if !numbering.is_empty() {
        report.violation(
            Check::Versions,
            format!(
                "commit {} numbers its events out of sequence (unexpected versions:{numbering})",
                commit.id
            ),
        );
    }
}

fn decode(commit: &CommitRow, event: &CommitEventRow, codec: &Codec) -> Result<(), String> {
    let schema_version =
        u32::try_from(event.schema_version).map_err(|_| "negative schema version".to_owned())?;
    decode_check(
        codec,
        &commit.aggregate_type,
        &event.event_type,
        schema_version,
        event.payload.clone().into_relaxed_extjson(),
    )
}

/// Commits seen before their predecessor (possible when a collection is not returned in
/// insertion order) are chained once all are known; what still does not fit is a gap or an
/// overlap.
fn resolve_chains(
    next_version: &mut HashMap<String, u64>,
    mut waiting: Vec<(String, u64, u64, String)>,
    report: &mut Report,
) {
    waiting.sort();
    loop {
        let before = waiting.len();
        waiting.retain(|(stream, first, last, _)| {
            let expected = next_version.get(stream).copied().unwrap_or(1);
            if *first == expected {
                next_version.insert(stream.clone(), last + 1);
                false
            } else {
                true
            }
        });
        if waiting.len() == before {
            break;
        }
    }
    for (stream, first, last, id) in waiting {
        let expected = next_version.get(&stream).copied().unwrap_or(1);
        let kind = if first > expected { "gap" } else { "overlap" };
        report.violation(
            Check::Versions,
            format!("{kind} in {stream}: the next version is {expected} but commit {id} covers {first}..{last}"),
        );
        next_version.entry(stream).or_insert(1);
    }
}

/// Re-reads the positions of the buckets whose hashes differ (if any) and names each
/// disagreement, from the log's side (a document whose commit does not place it there) and
/// from the commits' side (a commit whose position holds another event).
async fn locate_mismatches(
    store: &EventStore,
    options: &VerifyOptions,
    positions: &HashMap<String, i64>,
    buckets: &Buckets,
    log_projection: Document,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let differing = buckets.differing();
    if differing.is_empty() {
        return Ok(());
    }
    let in_differing = |position: i64| differing.binary_search(&buckets.index(position)).is_ok();
    let found = |report: &Report| {
        report
            .violations
            .get(&Check::LogMatchesCommits)
            .map_or(0, |f| f.count)
    };
    let before = found(report);
    log_against_commits(
        store,
        options,
        positions,
        &in_differing,
        log_projection,
        report,
    )
    .await?;
    commits_against_log(store, options, positions, &in_differing, report).await?;
    if found(report) == before {
        let (first, last) = (differing[0], differing[differing.len() - 1]);
        report.violation(
            Check::LogMatchesCommits,
            format!(
                "log and commits disagree between positions {} and {}",
                first as u64 * buckets.width + 1,
                (last as u64 + 1) * buckets.width
            ),
        );
    }
    Ok(())
}

/// Each log entry in a differing bucket must be the event its commit places there.
async fn log_against_commits(
    store: &EventStore,
    options: &VerifyOptions,
    positions: &HashMap<String, i64>,
    in_differing: &impl Fn(i64) -> bool,
    log_projection: Document,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let mut cached: Option<CommitRow> = None;
    let mut cursor = store
        .scan_stored(
            StoredCollection::Log,
            options.batch_size,
            Some(log_projection),
        )
        .await?;
    while let Some(raw) = cursor.try_next().await? {
        let Ok(row) = bson::from_slice::<LogRow>(raw.as_bytes()) else {
            continue;
        };
        let Some(position) = integer(&row.position).filter(|p| in_differing(*p)) else {
            continue;
        };
        if cached.as_ref().is_none_or(|c| c.id != row.commit_id) {
            cached = match store
                .find_stored(StoredCollection::Commits, row.commit_id.as_str())
                .await?
            {
                Some(raw) => bson::from_slice::<CommitRow>(raw.as_bytes()).ok(),
                None => None,
            };
            if let Some(commit) = cached.as_mut() {
                commit.take_position(positions);
            }
        }
        if let Some(problem) = log_entry_problem(&row, position, cached.as_ref()) {
            report.violation(Check::LogMatchesCommits, problem);
        }
    }
    Ok(())
}

/// What is wrong with the log entry `row` at `position`, given the commit it names.
fn log_entry_problem(row: &LogRow, position: i64, commit: Option<&CommitRow>) -> Option<String> {
    let Some(commit) = commit else {
        return Some(format!(
            "position {position} (event {}) names commit {}, which does not exist",
            row.event_id, row.commit_id
        ));
    };
    let index = row.version - commit.first_version;
    let placed = commit.position.map(|p| p + index);
    let event = usize::try_from(index)
        .ok()
        .and_then(|i| commit.events.get(i));
    match (event, placed) {
        (Some(event), Some(placed)) if event.event_id == row.event_id && placed == position => None,
        (None, _) => Some(format!("position {position} holds version {} of commit {}, which has no such version", row.version, commit.id)),
        (Some(event), placed) => Some(format!(
            "position {position} holds event {} (version {}) of commit {}, but the commit places event {} there{}",
            row.event_id, row.version, commit.id, event.event_id,
            placed.map_or_else(|| " and has no position".to_owned(), |p| format!(" at position {p}"))
        )),
    }
}

/// Each event a commit places in a differing bucket must be in the log at that position.
async fn commits_against_log(
    store: &EventStore,
    options: &VerifyOptions,
    positions: &HashMap<String, i64>,
    in_differing: &impl Fn(i64) -> bool,
    report: &mut Report,
) -> Result<(), HistoryError> {
    let mut cursor = store
        .scan_stored(StoredCollection::Commits, options.batch_size, None)
        .await?;
    while let Some(raw) = cursor.try_next().await? {
        let Ok(mut commit) = bson::from_slice::<CommitRow>(raw.as_bytes()) else {
            continue;
        };
        commit.take_position(positions);
        let Some(first_position) = commit.position else {
            continue;
        };
        for (index, event) in commit.events.iter().enumerate() {
            let position = first_position + index as i64;
            if position < 1 || !in_differing(position) {
                continue;
            }
            let Some(raw) = store.find_stored_event(position as u64).await? else {
                report.violation(
                    Check::LogMatchesCommits,
                    format!(
                        "commit {} places event {} (version {}) at position {position}, but the log has no event there",
                        commit.id, event.event_id, event.version
                    ),
                );
                continue;
            };
            let Ok(row) = bson::from_slice::<LogRow>(raw.as_bytes()) else {
                continue;
            };
            if row.commit_id != commit.id || row.event_id != event.event_id {
                report.violation(
                    Check::LogMatchesCommits,
                    format!(
                        "commit {} places event {} (version {}) at position {position}, but the log has event {} of commit {} there",
                        commit.id, event.event_id, event.version, row.event_id, row.commit_id
                    ),
                );
            }
        }
    }
    Ok(())
}
