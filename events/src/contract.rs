//! The contract of [`EventLog`], as checks any adapter must pass: the unit tests run them on
//! [`crate::MemoryEventLog`], the integration suite on [`crate::EventStore`] with its relay
//! running, so the in-memory log stays true to the real one. Each check panics on a breach
//! and uses streams of its own, so they run one after another on one log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::envelope::{EventEnvelope, EventMetadata, NewEvent, StreamId};
use crate::store::{
    AppendError, AppendOutcome, AppendRequest, BulkImport, EventLog, Expected, IdempotencyKey,
    ImportedCommit, ReadAllOptions, Snapshot,
};

/// Runs every check, with `writers` concurrent appenders in the race; the import first, as
/// an import wants to be the log's only writer and the relay of MongoDB may still be
/// sequencing the appends of a check before it.
pub async fn check_all<L: EventLog>(log: &L, writers: usize) {
    imports_read_like_appends(log).await;
    one_writer_wins_each_version(log, writers).await;
    expected_versions_are_checked(log).await;
    idempotency_keys_replay_and_refuse(log).await;
    loads_start_at_the_latest_snapshot(log).await;
    pages_from_a_position_agree_with_the_whole_log(log).await;
}

/// A new stream of `kind`.
pub fn new_stream(kind: &str) -> StreamId {
    StreamId {
        aggregate_type: kind.to_owned(),
        aggregate_id: Uuid::now_v7().to_string(),
    }
}

/// An event whose payload says `n`.
pub fn event(n: u64) -> NewEvent {
    NewEvent::new("Tested", 1, Utc::now(), json!({ "n": n }))
}

pub fn request(stream: &StreamId, expected: Expected, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events,
        metadata: metadata(),
        idempotency: None,
        snapshot: None,
    }
}

fn metadata() -> EventMetadata {
    EventMetadata {
        correlation_id: "contract".into(),
        causation_id: None,
        actor: "tester".into(),
        traceparent: None,
    }
}

fn versions(events: &[EventEnvelope]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

/// `writers` appends from one head at once: exactly one lands, each other is a conflict from
/// that head; every loser then retries from the head it finds until it lands. In the end every
/// version after the head was written by exactly one writer and no event is missing.
pub async fn one_writer_wins_each_version<L: EventLog>(log: &L, writers: usize) {
    let stream = new_stream("race");
    let first = log
        .append(request(&stream, Expected::Version(0), vec![event(0)]))
        .await
        .expect("the first append of a new stream");
    let start = log.head(&stream).await.expect("head");
    assert_eq!(start.version(), 1);
    let tasks: Vec<_> = (0..writers)
        .map(|n| {
            let (log, stream, start) = (log.clone(), stream.clone(), start.clone());
            tokio::spawn(async move {
                let mine = event(n as u64 + 1);
                let id = mine.event_id;
                let race = request(&stream, Expected::Head(start), vec![mine.clone()]);
                let raced = log.append(race).await;
                let landed = match &raced {
                    Ok(outcome) => outcome.clone(),
                    Err(_) => loop {
                        let head = log.head(&stream).await.expect("head");
                        let retry = request(&stream, Expected::Head(head), vec![mine.clone()]);
                        match log.append(retry).await {
                            Ok(outcome) => break outcome,
                            Err(AppendError::Conflict { .. }) => {}
                            Err(other) => panic!("a retry failed: {other}"),
                        }
                    },
                };
                (id, raced.map(|_| ()), landed)
            })
        })
        .collect();
    let mut raced_winners = 0;
    let mut by_version = BTreeMap::new();
    for task in tasks {
        let (id, raced, landed) = task.await.expect("writer task");
        match raced {
            Ok(()) => raced_winners += 1,
            Err(AppendError::Conflict {
                expected, actual, ..
            }) => {
                assert_eq!(
                    expected, 1,
                    "a conflict names the head it was appended from"
                );
                assert!(actual > expected, "a conflict names a later head: {actual}");
            }
            Err(other) => panic!("a racing append failed otherwise: {other}"),
        }
        assert_eq!(landed.event_ids, vec![id]);
        assert_eq!(landed.first_version, landed.last_version);
        let twice = by_version.insert(landed.last_version, id);
        assert!(
            twice.is_none(),
            "version {} landed twice",
            landed.last_version
        );
    }
    assert_eq!(raced_winners, 1, "exactly one append from one head lands");
    let last = writers as u64 + 1;
    assert_eq!(
        by_version.keys().copied().collect::<Vec<_>>(),
        (2..=last).collect::<Vec<_>>()
    );
    let stored = log.read_stream(&stream, 1).await.expect("read stream");
    assert_eq!(versions(&stored), (1..=last).collect::<Vec<_>>());
    assert_eq!(stored[0].event_id, first.event_ids[0]);
    for event in &stored[1..] {
        assert_eq!(by_version.get(&event.version), Some(&event.event_id));
    }
    assert_eq!(log.head(&stream).await.expect("head").version(), last);
}

/// An expected version other than the head's, stale or ahead, is a conflict naming the head;
/// an append needs events.
pub async fn expected_versions_are_checked<L: EventLog>(log: &L) {
    let stream = new_stream("versions");
    let empty = log.head(&stream).await.expect("head");
    assert_eq!(empty.version(), 0);
    let loaded = log.load(&stream).await.expect("load");
    assert!(loaded.snapshot.is_none() && loaded.events.is_empty());
    log.append(request(
        &stream,
        Expected::Version(0),
        vec![event(1), event(2), event(3)],
    ))
    .await
    .expect("three events at once");
    for expected in [0, 2, 7] {
        let stale = request(&stream, Expected::Version(expected), vec![event(9)]);
        assert_eq!(conflict(log.append(stale).await), (expected, 3));
    }
    let stale = request(&stream, Expected::Head(empty), vec![event(9)]);
    assert_eq!(conflict(log.append(stale).await), (0, 3));
    let any = log
        .append(request(&stream, Expected::Any, vec![event(4)]))
        .await
        .expect("an append at whatever head");
    assert_eq!((any.first_version, any.last_version), (4, 4));
    assert!(matches!(
        log.append(request(&stream, Expected::Any, Vec::new()))
            .await,
        Err(AppendError::NoEvents)
    ));
    let stored = log.read_stream(&stream, 1).await.expect("read stream");
    assert_eq!(versions(&stored), vec![1, 2, 3, 4]);
    assert_eq!(
        versions(&log.read_stream(&stream, 3).await.expect("read")),
        vec![3, 4]
    );
}

/// The expected and actual versions a conflict names; any other outcome is a breach.
#[track_caller]
fn conflict(outcome: Result<AppendOutcome, AppendError>) -> (u64, u64) {
    match outcome {
        Err(AppendError::Conflict {
            expected, actual, ..
        }) => (expected, actual),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn keyed(key: &str, fingerprint: &str) -> IdempotencyKey {
    IdempotencyKey {
        key: format!("{key}-{}", Uuid::now_v7()),
        fingerprint: fingerprint.into(),
    }
}

/// A completed key answers with its first outcome and writes nothing, whatever the request
/// says now; another fingerprint under it is refused; a key whose append conflicted is free.
pub async fn idempotency_keys_replay_and_refuse<L: EventLog>(log: &L) {
    let stream = new_stream("idempotent");
    let key = keyed("first", "fingerprint-a");
    let mut first = request(&stream, Expected::Version(0), vec![event(1)]);
    first.idempotency = Some(key.clone());
    let done = log.append(first).await.expect("the first append");
    assert!(!done.replayed);

    let mut again = request(&stream, Expected::Version(0), vec![event(2), event(3)]);
    again.idempotency = Some(key.clone());
    let replayed = log.append(again).await.expect("a replay");
    assert!(replayed.replayed);
    assert_same_commit(&replayed, &done);
    let outcome = log.idempotent_outcome(&key).await.expect("look-up");
    let outcome = outcome.expect("a completed key has an outcome");
    assert!(outcome.replayed);
    assert_same_commit(&outcome, &done);
    assert_eq!(log.head(&stream).await.expect("head").version(), 1);
    assert_eq!(log.read_stream(&stream, 1).await.expect("read").len(), 1);

    let other = IdempotencyKey {
        fingerprint: "fingerprint-b".into(),
        ..key.clone()
    };
    assert!(matches!(
        log.idempotent_outcome(&other).await,
        Err(AppendError::IdempotencyKeyReused(reused)) if reused == key.key
    ));
    let mut reused = request(&stream, Expected::Any, vec![event(4)]);
    reused.idempotency = Some(other);
    assert!(matches!(
        log.append(reused).await,
        Err(AppendError::IdempotencyKeyReused(_))
    ));

    let unused = keyed("unused", "fingerprint-a");
    assert!(log
        .idempotent_outcome(&unused)
        .await
        .expect("look-up")
        .is_none());

    let stale = log.head(&stream).await.expect("head");
    log.append(request(&stream, Expected::Any, vec![event(5)]))
        .await
        .expect("another writer");
    let lost = keyed("lost", "fingerprint-c");
    let mut racing = request(&stream, Expected::Head(stale), vec![event(6)]);
    racing.idempotency = Some(lost.clone());
    assert!(matches!(
        log.append(racing).await,
        Err(AppendError::Conflict { .. })
    ));
    assert!(log
        .idempotent_outcome(&lost)
        .await
        .expect("look-up")
        .is_none());
    let mut retried = request(&stream, Expected::Version(2), vec![event(6)]);
    retried.idempotency = Some(lost);
    let landed = log.append(retried).await.expect("the retry lands");
    assert!(!landed.replayed);
    assert_eq!(landed.last_version, 3);
}

/// The same commit, whether or not the outcome was replayed (a replay may know a position).
fn assert_same_commit(outcome: &AppendOutcome, original: &AppendOutcome) {
    assert_eq!(outcome.stream, original.stream);
    assert_eq!(outcome.commit_id, original.commit_id);
    assert_eq!(
        (outcome.first_version, outcome.last_version),
        (original.first_version, original.last_version)
    );
    assert_eq!(outcome.event_ids, original.event_ids);
}

/// A load starts at the latest snapshot and brings the events after it; an append without a
/// snapshot keeps the one before; the loaded head guards the next append.
pub async fn loads_start_at_the_latest_snapshot<L: EventLog>(log: &L) {
    let stream = new_stream("snapshots");
    let snapshot = |n: u64| Snapshot {
        schema: 3,
        state: json!({ "seen": n }),
    };
    let mut first = request(&stream, Expected::Version(0), vec![event(1)]);
    first.snapshot = Some(snapshot(1));
    log.append(first).await.expect("append with a snapshot");
    let loaded = log.load(&stream).await.expect("load");
    assert_eq!(loaded.snapshot, Some((1, 3, json!({ "seen": 1 }))));
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.head.version(), 1);

    log.append(request(
        &stream,
        Expected::Head(loaded.head),
        vec![event(2), event(3)],
    ))
    .await
    .expect("append without a snapshot from the loaded head");
    let loaded = log.load(&stream).await.expect("load");
    assert_eq!(loaded.snapshot, Some((1, 3, json!({ "seen": 1 }))));
    assert_eq!(versions(&loaded.events), vec![2, 3]);
    assert_eq!(loaded.head.version(), 3);

    let mut latest = request(&stream, Expected::Head(loaded.head), vec![event(4)]);
    latest.snapshot = Some(snapshot(4));
    log.append(latest)
        .await
        .expect("append with a new snapshot");
    let loaded = log.load(&stream).await.expect("load");
    assert_eq!(loaded.snapshot, Some((4, 3, json!({ "seen": 4 }))));
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.head.version(), 4);
}

/// The whole log from position 0, once every event appended here has a position (at once in
/// memory; after the relay's pass in MongoDB).
async fn whole_log_holding<L: EventLog>(log: &L, ids: &HashSet<Uuid>) -> Vec<EventEnvelope> {
    for _ in 0..200 {
        let all = read_all(log, 0, 7).await;
        let held = all.iter().filter(|e| ids.contains(&e.event_id)).count();
        if held == ids.len() {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the appended events never all got a position");
}

async fn read_all<L: EventLog>(log: &L, after: u64, batch_size: usize) -> Vec<EventEnvelope> {
    let mut batches = log.read_all(ReadAllOptions {
        after_position: after,
        batch_size,
    });
    let mut all = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch.expect("a batch of the log");
        assert!(!batch.is_empty() && batch.len() <= batch_size);
        all.extend(batch);
    }
    all
}

/// Positions are dense from 1, each stream's versions follow them, and pages of
/// [`EventLog::read_positions`] from any position, as well as [`EventLog::read_all`] from it,
/// give exactly the log after it.
pub async fn pages_from_a_position_agree_with_the_whole_log<L: EventLog>(log: &L) {
    let streams: Vec<StreamId> = (0..3).map(|_| new_stream("pages")).collect();
    let mut ids = HashSet::new();
    for round in 0..4u64 {
        for (n, stream) in (0u64..).zip(&streams) {
            let events: Vec<NewEvent> = (0..=n).map(|i| event(round * 10 + i)).collect();
            ids.extend(events.iter().map(|e| e.event_id));
            log.append(request(stream, Expected::Any, events))
                .await
                .expect("append");
        }
    }
    let all = whole_log_holding(log, &ids).await;
    let positions: Vec<u64> = all
        .iter()
        .map(|e| e.position.expect("a position"))
        .collect();
    assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>());
    for stream in &streams {
        let in_log: Vec<u64> = all
            .iter()
            .filter(|e| e.stream() == *stream)
            .map(|e| e.version)
            .collect();
        assert_eq!(in_log, (1..=in_log.len() as u64).collect::<Vec<_>>());
    }
    // Appends of other tests may get positions meanwhile (in MongoDB): compare up to `total`.
    let total = all.len() as u64;
    let upto = |events: Vec<EventEnvelope>| -> Vec<EventEnvelope> {
        events
            .into_iter()
            .take_while(|e| e.position.is_some_and(|p| p <= total))
            .collect()
    };
    for after in [0, 1, total / 2, total - 3, total] {
        let rest = &all[after as usize..];
        for page in [1, 4, 9, 1_000] {
            let mut paged = Vec::new();
            let mut from = after;
            while from < total {
                let got = log.read_positions(from, page).await.expect("a page");
                assert!(got.len() <= page);
                let Some(last) = got.last() else { break };
                from = last.position.expect("a position");
                paged.extend(got);
            }
            assert_eq!(upto(paged), rest, "pages of {page} after {after}");
            let batches = upto(read_all(log, after, page).await);
            assert_eq!(batches, rest, "batches of {page} after {after}");
        }
    }
    let beyond = log
        .read_positions(total + 1_000, 10)
        .await
        .expect("past the end");
    assert!(beyond.is_empty());
}

/// An event of `stream`, imported or appended, at `version` with the payload of `n`.
fn is_event(event: &EventEnvelope, stream: &StreamId, version: u64, n: u64) -> bool {
    event.stream() == *stream && event.version == version && event.payload == json!({ "n": n })
}

/// Bulk imported commits, while nothing else writes the log, read back as appended ones
/// would: their events at dense positions after the log's last in the order written, each
/// stream loading at its last imported commit with the snapshot given for it (one without
/// keeping none); an append from that head lands at the next version and position, one from
/// an older head conflicts.
pub async fn imports_read_like_appends<L: EventLog>(log: &L) {
    let tail = read_all(log, 0, 100)
        .await
        .last()
        .map_or(0, |e| e.position.expect("a position"));
    let (a, b, c) = (
        new_stream("imported"),
        new_stream("imported"),
        new_stream("imported"),
    );
    let recorded_at = DateTime::from_timestamp_millis(1_700_000_000_123).expect("a time");
    let commit = |stream: &StreamId, first_version: u64, ns: &[u64]| ImportedCommit {
        stream: stream.clone(),
        first_version,
        events: ns.iter().map(|&n| event(n)).collect(),
        metadata: EventMetadata {
            actor: "importer".into(),
            ..metadata()
        },
        append_id: Uuid::now_v7(),
        recorded_at,
    };
    let batches = [
        vec![
            commit(&a, 1, &[1, 2]),
            commit(&b, 1, &[3]),
            commit(&c, 1, &[4, 5, 6]),
        ],
        Vec::new(),
        vec![commit(&a, 3, &[7]), commit(&b, 2, &[8, 9])],
    ];
    // (stream, version, n) of every imported event in the order written.
    let expected: Vec<(StreamId, u64, u64)> = batches
        .iter()
        .flatten()
        .flat_map(|commit| {
            let numbers = commit.events.iter().map(|e| e.payload["n"].as_u64());
            (commit.first_version..)
                .zip(numbers)
                .map(|(version, n)| (commit.stream.clone(), version, n.expect("a number")))
        })
        .collect();
    let mut import = log.import(tail + 1);
    assert_eq!(import.next_position(), tail + 1);
    let mut written = 0;
    for batch in &batches {
        import.write(batch).await.expect("an imported batch");
        written += batch.iter().map(|c| c.events.len() as u64).sum::<u64>();
        assert_eq!(import.next_position(), tail + 1 + written);
    }
    let snapshot = |seen: u64| Snapshot {
        schema: 2,
        state: json!({ "seen": seen }),
    };
    let snapshots: HashMap<String, Snapshot> =
        [(a.to_string(), snapshot(3)), (c.to_string(), snapshot(3))]
            .into_iter()
            .collect();
    let next = import.finish(&snapshots).await.expect("the import's heads");
    assert_eq!(next, tail + 1 + expected.len() as u64);

    let imported = read_all(log, tail, 4).await;
    assert_eq!(imported.len(), expected.len(), "the log after the import");
    for ((event, (stream, version, n)), position) in imported.iter().zip(&expected).zip(tail + 1..)
    {
        assert!(
            is_event(event, stream, *version, *n),
            "{event:?} at {position}"
        );
        assert_eq!(event.position, Some(position));
        assert_eq!(
            (event.actor.as_str(), event.recorded_at),
            ("importer", recorded_at)
        );
    }
    let paged = log.read_positions(tail + 1, 3).await.expect("a page");
    assert_eq!(paged, imported[1..4]);
    for stream in [&a, &b, &c] {
        let of_stream: Vec<&EventEnvelope> =
            imported.iter().filter(|e| e.stream() == *stream).collect();
        let read = log.read_stream(stream, 1).await.expect("read stream");
        assert_eq!(read.iter().collect::<Vec<_>>(), of_stream);
        let head = log.head(stream).await.expect("head");
        assert_eq!(head.version(), 3);
    }

    let loaded = log.load(&a).await.expect("load");
    assert_eq!(loaded.snapshot, Some((3, 2, json!({ "seen": 3 }))));
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.head.version(), 3);
    let loaded_b = log.load(&b).await.expect("load");
    assert_eq!(loaded_b.snapshot, None);
    assert_eq!(versions(&loaded_b.events), vec![1, 2, 3]);
    let loaded_c = log.load(&c).await.expect("load");
    assert_eq!(loaded_c.snapshot, Some((3, 2, json!({ "seen": 3 }))));

    let stale = request(&a, Expected::Version(2), vec![event(10)]);
    assert_eq!(conflict(log.append(stale).await), (2, 3));
    let appended = log
        .append(request(&a, Expected::Head(loaded.head), vec![event(11)]))
        .await
        .expect("an append from the imported head");
    assert_eq!((appended.first_version, appended.last_version), (4, 4));
    let after = whole_log_holding(log, &HashSet::from([appended.event_ids[0]])).await;
    let landed = after
        .iter()
        .find(|e| e.event_id == appended.event_ids[0])
        .expect("the appended event");
    assert!(is_event(landed, &a, 4, 11));
    assert_eq!(landed.position, Some(next), "the append follows the import");
    let loaded = log.load(&a).await.expect("load");
    assert_eq!(loaded.snapshot, Some((3, 2, json!({ "seen": 3 }))));
    assert_eq!(versions(&loaded.events), vec![4]);
}
