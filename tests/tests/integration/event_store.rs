//! The MongoDB event store: concurrency, idempotency and reads.

use std::collections::HashSet;

use chrono::Utc;
use events::store::ReadAllOptions;
use events::{
    AppendError, AppendOutcome, EventMetadata, EventStore, Expected, IdempotencyKey, NewEvent,
    StreamId,
};
use serde_json::json;
use tests::TestEnv;

pub(crate) use events::contract::{event, new_stream as stream, request};

/// A new job stream with event 1 in one commit and events 2 and 3 in a second, once a running
/// relay sequenced them; returns the stream, the second commit and its first position.
pub(crate) async fn three_events_in_two_commits(
    store: &EventStore,
) -> (StreamId, AppendOutcome, u64) {
    let s = stream("job");
    store
        .append(request(&s, Expected::Version(0), vec![event(1)]))
        .await
        .unwrap();
    let second = store
        .append(request(&s, Expected::Version(1), vec![event(2), event(3)]))
        .await
        .unwrap();
    let first = store
        .wait_for_position(&second.commit_id, std::time::Duration::from_secs(10))
        .await
        .expect("sequenced");
    (s, second, first)
}

/// The checks the in-memory log's unit tests run (`events::contract`), here on the store with
/// its relay giving positions: the memory log stands in for the store only as far as both
/// pass them.
#[tokio::test]
async fn the_store_keeps_the_event_log_contract_the_memory_log_is_held_to() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    events::contract::check_all(&store, 16).await;
    relay.stop().await;
}

#[tokio::test]
async fn two_writers_racing_on_one_stream_exactly_one_wins_and_the_other_learns_the_version() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("job");
    store
        .append(request(&s, Expected::Version(0), vec![event(1)]))
        .await
        .unwrap();
    for _ in 0..5 {
        let head = store.head(&s).await.unwrap();
        let a = store.append(request(
            &s,
            Expected::Head(head.clone()),
            vec![event(2), event(3)],
        ));
        let b = store.append(request(&s, Expected::Head(head.clone()), vec![event(4)]));
        let (a, b) = tokio::join!(a, b);
        let (winner, loser) = match (a, b) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("expected exactly one winner, got {other:?}"),
        };
        match loser {
            AppendError::Conflict {
                expected, actual, ..
            } => {
                assert_eq!(expected, head.version());
                assert_eq!(actual, winner.last_version);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let events = store.read_stream(&s, 1).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_stale_or_future_expected_version_is_rejected_with_the_actual_version() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("customer");
    store
        .append(request(
            &s,
            Expected::Version(0),
            vec![event(1), event(2), event(3)],
        ))
        .await
        .unwrap();
    for expected in [0, 1, 2, 7] {
        match store
            .append(request(&s, Expected::Version(expected), vec![event(9)]))
            .await
        {
            Err(AppendError::Conflict {
                actual,
                expected: e,
                ..
            }) => {
                assert_eq!((actual, e), (3, expected));
            }
            other => panic!("expected version {expected}: got {other:?}"),
        }
    }
    store
        .append(request(&s, Expected::Version(3), vec![event(4)]))
        .await
        .unwrap();
    assert_eq!(store.head(&s).await.unwrap().version(), 4);
}

#[tokio::test]
async fn fifty_concurrent_appenders_on_distinct_streams_all_succeed_with_unique_ordered_positions()
{
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let appends = (0..50).map(|i| {
        let store = store.clone();
        async move {
            let s = stream("thread");
            let outcome = store
                .append(request(
                    &s,
                    Expected::Version(0),
                    vec![event(i), event(i + 1000)],
                ))
                .await
                .unwrap();
            store
                .wait_for_position(&outcome.commit_id, std::time::Duration::from_secs(10))
                .await
                .expect("sequenced")
        }
    });
    let firsts: Vec<u64> = futures::future::join_all(appends).await;
    let unique: HashSet<u64> = firsts.iter().copied().collect();
    assert_eq!(unique.len(), 50);
    let mut all = Vec::new();
    let mut batches = store.read_all(ReadAllOptions {
        after_position: 0,
        batch_size: 7,
    });
    while let Some(batch) = batches.next().await {
        all.extend(batch.unwrap());
    }
    let positions: Vec<u64> = all.iter().map(|e| e.position.unwrap()).collect();
    assert_eq!(
        positions,
        (1..=100).collect::<Vec<_>>(),
        "dense and in order"
    );
    // The two events of each commit are adjacent and in version order.
    for first in firsts {
        let a = &all[first as usize - 1];
        let b = &all[first as usize];
        assert_eq!(
            (a.aggregate_id.clone(), a.version),
            (b.aggregate_id.clone(), 1)
        );
        assert_eq!(b.version, 2);
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_repeated_idempotency_key_writes_once_and_returns_the_first_result() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("job");
    let key = IdempotencyKey {
        key: "user-1:abc".into(),
        fingerprint: "f1".into(),
    };
    let mut first = request(&s, Expected::Any, vec![event(1)]);
    first.idempotency = Some(key.clone());
    let original = store.append(first.clone()).await.unwrap();
    assert!(!original.replayed);
    let mut again = first.clone();
    again.events = vec![event(2)];
    let replay = store.append(again).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.event_ids, original.event_ids);
    assert_eq!(replay.commit_id, original.commit_id);
    assert_eq!(store.read_stream(&s, 1).await.unwrap().len(), 1);

    let mut other = first;
    other.idempotency = Some(IdempotencyKey {
        fingerprint: "f2".into(),
        ..key
    });
    assert!(matches!(
        store.append(other).await,
        Err(AppendError::IdempotencyKeyReused(_))
    ));
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_write_once() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("job");
    let key = IdempotencyKey {
        key: "user-2:xyz".into(),
        fingerprint: "f".into(),
    };
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        let mut req = request(&s, Expected::Any, vec![event(i)]);
        req.idempotency = Some(key.clone());
        async move { store.append(req).await }
    });
    let results = futures::future::join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert!(!ok.is_empty());
    assert!(
        ok.iter().all(|o| o.commit_id == ok[0].commit_id),
        "all answers name one commit"
    );
    for result in &results {
        if let Err(error) = result {
            assert!(
                matches!(
                    error,
                    AppendError::IdempotencyInProgress(_) | AppendError::Conflict { .. }
                ),
                "{error}"
            );
        }
    }
    assert_eq!(store.read_stream(&s, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stream_reads_as_of_a_version_and_a_time_and_loads_from_its_snapshot() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("customer");
    store
        .append(request(&s, Expected::Version(0), vec![event(1), event(2)]))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut with_snapshot = request(&s, Expected::Version(2), vec![event(3)]);
    with_snapshot.snapshot = Some(events::store::Snapshot {
        schema: 1,
        state: json!({"count": 3}),
    });
    store.append(with_snapshot).await.unwrap();
    store
        .append(request(&s, Expected::Version(3), vec![event(4)]))
        .await
        .unwrap();

    let at_two = store.read_stream_at_version(&s, 2).await.unwrap();
    assert_eq!(
        at_two.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let as_of = store.read_stream_as_of(&s, between).await.unwrap();
    assert_eq!(as_of.len(), 2);
    assert_eq!(store.read_stream(&s, 3).await.unwrap().len(), 2);

    let loaded = store.load(&s).await.unwrap();
    assert_eq!(loaded.snapshot, Some((3, 1, json!({"count": 3}))));
    assert_eq!(
        loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(loaded.head.version(), 4);
    assert_eq!(loaded.events[0].payload, json!({"n": 4}));
}

#[tokio::test]
async fn the_positions_of_sequenced_commits_are_read_back_by_another_process() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let (s, second, first_of_second) = three_events_in_two_commits(&store).await;
    relay.stop().await;

    // A store opened anew knows nothing the relay told the first one.
    let other = env.store().await;
    async fn position_seen_by(store: &EventStore, commit_id: &str) -> Option<u64> {
        store
            .wait_for_position(commit_id, std::time::Duration::from_millis(200))
            .await
    }
    assert_eq!(
        position_seen_by(&other, &second.commit_id).await,
        Some(first_of_second)
    );
    let positions: Vec<Option<u64>> = other
        .read_stream(&s, 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(
        positions,
        vec![
            Some(first_of_second - 1),
            Some(first_of_second),
            Some(first_of_second + 1)
        ]
    );

    // A store written before positions had their own collection kept them on the commit.
    let commit_id = second.commit_id.as_str();
    env.database
        .collection::<bson::Document>("positions")
        .delete_one(bson::doc! {"_id": commit_id})
        .await
        .unwrap();
    assert_eq!(
        position_seen_by(&other, commit_id).await,
        None,
        "no position recorded anywhere"
    );
    env.database
        .collection::<bson::Document>("commits")
        .update_one(
            bson::doc! {"_id": commit_id},
            bson::doc! {"$set": {"position": first_of_second as i64}},
        )
        .await
        .unwrap();
    assert_eq!(
        position_seen_by(&other, commit_id).await,
        Some(first_of_second)
    );
    assert_eq!(
        other.read_stream(&s, 2).await.unwrap()[0].position,
        Some(first_of_second)
    );
}

/// A store records a random identity when it is created and keeps it: derived data tells its
/// own store from a new one under the same database name by it.
#[tokio::test]
async fn a_store_keeps_the_identity_it_was_created_with() {
    use events::store::IDENTITY_COLLECTION;

    let env = TestEnv::new().await;
    let store = env.store().await;
    let identity = env
        .database
        .collection::<bson::Document>(IDENTITY_COLLECTION)
        .find_one(bson::doc! {"_id": "store"})
        .await
        .unwrap()
        .expect("the identity is recorded when the store is created");
    assert_eq!(identity.get_str("store_id").unwrap(), store.identity());
    let s = stream("customer");
    store
        .append(request(&s, Expected::Version(0), vec![event(1)]))
        .await
        .unwrap();
    let again = env.store().await;
    assert_eq!(again.identity(), store.identity());
    assert_eq!(again.load(&s).await.unwrap().head.version(), 1);

    // Another database under another name is another store.
    let other = env
        .database
        .client()
        .database(&format!("{}_other", env.db_name));
    let other_store = EventStore::open(other.clone()).await.unwrap();
    assert_ne!(other_store.identity(), store.identity());
    other.drop().await.unwrap();
}

#[tokio::test]
async fn a_store_of_an_older_layout_is_refused_unless_its_log_is_empty() {
    use bson::doc;
    use events::store::{log_id, StoreError, IDENTITY_COLLECTION};

    let env = TestEnv::new().await;
    // What an earlier version left: an identity without a layout, a log `_id` as a string.
    let identities = env
        .database
        .collection::<bson::Document>(IDENTITY_COLLECTION);
    identities
        .insert_one(doc! {"_id": "store", "store_id": "older", "created_at": bson::DateTime::now()})
        .await
        .unwrap();
    let log = env.database.collection::<bson::Document>("events");
    log.insert_one(doc! {"_id": "00000000000000000001", "position": 1_i64})
        .await
        .unwrap();
    match EventStore::open(env.database.clone()).await {
        Err(StoreError::Layout {
            found, expected, ..
        }) => assert_eq!((found, expected), (1, 2)),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a store of layout 1 with a log was opened"),
    }
    assert_eq!(
        log.count_documents(doc! {}).await.unwrap(),
        1,
        "the store was changed"
    );

    // With an empty log nothing can be misread: the store is taken over and marked.
    log.delete_many(doc! {}).await.unwrap();
    let store = EventStore::open(env.database.clone()).await.unwrap();
    assert_eq!(store.identity(), "older");
    let identity = identities
        .find_one(doc! {"_id": "store"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.get_i64("layout"), Ok(2));
    let s = stream("customer");
    let appended = store
        .append(request(&s, Expected::Version(0), vec![event(1)]))
        .await
        .unwrap();
    assert_eq!(appended.first_version, 1);
    // Sequenced, the event's log document has the position as its `_id`, an integer.
    let relay = env.start_relay(&store).await;
    let position = store
        .wait_for_position(&appended.commit_id, std::time::Duration::from_secs(10))
        .await
        .expect("sequenced");
    relay.stop().await;
    let logged = log
        .find_one(doc! {"_id": log_id(position)})
        .await
        .unwrap()
        .expect("the log document by its integer _id");
    assert_eq!(logged.get("_id"), Some(&bson::Bson::Int64(position as i64)));
    assert_eq!(logged.get_i64("position"), Ok(position as i64));
}

/// A bulk import leaves the store as appends and the relay would have: dense positions in
/// commit order, streams loadable from their heads (with the snapshot given), the relay
/// continuing after the imported positions, and an append on an imported stream checked
/// against its imported head.
#[tokio::test]
async fn an_import_reads_back_like_appended_and_sequenced_commits() {
    use events::store::{ImportedCommit, Snapshot};

    let env = TestEnv::new().await;
    let store = env.store().await;
    let (a, b) = (stream("customer"), stream("job"));
    let commit = |s: &StreamId, first_version: u64, events: Vec<NewEvent>| ImportedCommit {
        stream: s.clone(),
        first_version,
        events,
        metadata: EventMetadata {
            correlation_id: "import".into(),
            actor: "system:loader".into(),
            traceparent: None,
            ..EventMetadata::default()
        },
        append_id: uuid::Uuid::now_v7(),
        recorded_at: Utc::now(),
    };
    let mut import = store.import(1);
    import
        .write(&[
            commit(&a, 1, vec![event(1), event(2)]),
            commit(&b, 1, vec![event(3)]),
        ])
        .await
        .unwrap();
    import
        .write(&[commit(&a, 3, vec![event(4)])])
        .await
        .unwrap();
    assert_eq!(import.next_position(), 5);
    let snapshots = [(
        a.to_string(),
        Snapshot {
            schema: 1,
            state: json!({"count": 3}),
        },
    )]
    .into_iter()
    .collect();
    assert_eq!(import.finish(&snapshots).await.unwrap(), 5);

    let mut all = store.read_all(ReadAllOptions::default());
    let mut read = Vec::new();
    while let Some(batch) = all.next().await {
        read.extend(batch.unwrap());
    }
    let summary: Vec<_> = read
        .iter()
        .map(|e| {
            (
                e.position,
                e.aggregate_id.clone(),
                e.version,
                e.payload["n"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some(1), a.aggregate_id.clone(), 1, json!(1)),
            (Some(2), a.aggregate_id.clone(), 2, json!(2)),
            (Some(3), b.aggregate_id.clone(), 1, json!(3)),
            (Some(4), a.aggregate_id.clone(), 3, json!(4)),
        ]
    );
    let loaded = store.load(&a).await.unwrap();
    assert_eq!(loaded.head.version(), 3);
    assert_eq!(loaded.snapshot, Some((3, 1, json!({"count": 3}))));
    assert_eq!(store.load(&b).await.unwrap().head.version(), 1);

    assert!(matches!(
        store
            .append(request(&a, Expected::Version(2), vec![event(5)]))
            .await,
        Err(AppendError::Conflict { actual: 3, .. })
    ));
    let _relay = env.start_relay(&store).await;
    let appended = store
        .append(request(&a, Expected::Version(3), vec![event(5)]))
        .await
        .unwrap();
    let position = store
        .wait_for_position(&appended.commit_id, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(position, Some(5), "the relay continues after the import");
}

/// The log is read in order across its pages of 1,000 positions (`page`, a bucket key a
/// plain `find` uses too), from any position, by `read_all` and by `read_positions`, also
/// where a page lacks documents that the log holds (written before the log had pages).
#[tokio::test]
async fn the_log_reads_in_order_across_its_pages_and_where_a_page_lacks_documents() {
    use bson::doc;
    use events::store::{log_id, ImportedCommit};

    const EVENTS: u64 = 2_600;
    let env = TestEnv::new().await;
    let store = env.store().await;
    let streams: Vec<StreamId> = (0..26).map(|_| stream("job")).collect();
    let mut import = store.import(1);
    for round in 0..10u64 {
        let commits: Vec<ImportedCommit> = streams
            .iter()
            .map(|s| ImportedCommit {
                stream: s.clone(),
                first_version: round * 10 + 1,
                events: (0..10).map(|i| event(round * 10 + i)).collect(),
                metadata: EventMetadata::default(),
                append_id: uuid::Uuid::now_v7(),
                recorded_at: Utc::now(),
            })
            .collect();
        import.write(&commits).await.unwrap();
    }
    assert_eq!(
        import.finish(&Default::default()).await.unwrap(),
        EVENTS + 1
    );

    let log = env.database.collection::<bson::Document>("events");
    let page_one: Vec<i64> = {
        use futures::TryStreamExt;
        let docs: Vec<bson::Document> = log
            .find(doc! {"page": 1_i64})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut positions: Vec<i64> = docs
            .iter()
            .map(|d| d.get_i64("position").unwrap())
            .collect();
        positions.sort_unstable();
        positions
    };
    assert_eq!(
        page_one,
        (1_001..=2_000).collect::<Vec<i64>>(),
        "page 1 by a plain find"
    );

    let check = |label: &'static str| {
        let store = store.clone();
        async move {
            for after in [0, 999, 1_000, 1_001, 2_599, EVENTS] {
                let mut batches = store.read_all(ReadAllOptions {
                    after_position: after,
                    batch_size: 333,
                });
                let mut read = Vec::new();
                while let Some(batch) = batches.next().await {
                    read.extend(batch.unwrap().into_iter().map(|e| e.position.unwrap()));
                }
                assert_positions(
                    &read,
                    after + 1..=EVENTS,
                    &format!("{label}: read_all after {after}"),
                );
            }
            for (after, count) in [
                (0, 2_600),
                (990, 100),
                (1_998, 3),
                (1_400, 400),
                (2_550, 100),
            ] {
                let read: Vec<u64> = store
                    .read_positions(after, count)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.position.unwrap())
                    .collect();
                let last = (after + count as u64).min(EVENTS);
                assert_positions(
                    &read,
                    after + 1..=last,
                    &format!("{label}: {count} after {after}"),
                );
            }
        }
    };
    check("paged").await;

    // Documents without a page: part of page 1 and all of the last page.
    for (first, last) in [(1_500, 1_700), (2_001, 2_600)] {
        log.update_many(
            doc! {"_id": {"$gte": log_id(first), "$lte": log_id(last)}},
            doc! {"$unset": {"page": ""}},
        )
        .await
        .unwrap();
    }
    check("pages lacking documents").await;
}

/// `read` is exactly the positions of `expected`; a failure names the first that differs.
fn assert_positions(read: &[u64], expected: std::ops::RangeInclusive<u64>, label: &str) {
    let expected: Vec<u64> = expected.collect();
    let first_difference = read.iter().zip(&expected).position(|(r, e)| r != e);
    assert!(
        read == expected,
        "{label}: read {} positions, expected {}; first difference at index {first_difference:?}",
        read.len(),
        expected.len()
    );
}
