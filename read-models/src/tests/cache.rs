//! The document cache's rules, one at a time.

use bson::doc;
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::block_on;
use super::pipeline::time_zone;
use crate::cache::{flush_batches, DocCache, DocLoader, LoadError, ReadDoc};
use crate::memory::MemoryStore;
use crate::{apply, Model, ProjectionContext};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Leaf {
    n: i64,
}

impl ReadDoc for Leaf {
    const TIER: u8 = 0;
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Lookup {
    name: String,
}

impl ReadDoc for Lookup {
    const TIER: u8 = 2;
}

struct Failing;

impl DocLoader for Failing {
    async fn load(&self, _: &str, _: &str) -> Result<Option<bson::Document>, LoadError> {
        Err(LoadError::new("down"))
    }
}

#[test]
fn a_document_already_holding_the_event_is_not_changed_again() {
    let store = MemoryStore::new();
    store.put("c", "a", doc! {"_id": "a", "_pos": 5_i64, "n": 1_i64});
    let mut cache = DocCache::new(10);
    block_on(async {
        cache.begin_event(5);
        let ran = cache
            .update::<Leaf>(&store, "c", "a", 5, |d| d.n += 1)
            .await
            .unwrap();
        assert!(!ran);
        cache.begin_event(6);
        let ran = cache
            .update::<Leaf>(&store, "c", "a", 6, |d| d.n += 1)
            .await
            .unwrap();
        assert!(ran);
        // The same event may change a document several times.
        cache
            .update::<Leaf>(&store, "c", "a", 6, |d| d.n += 10)
            .await
            .unwrap();
        assert_eq!(
            cache.get::<Leaf>(&store, "c", "a").await.unwrap(),
            Some(&Leaf { n: 12 })
        );
    });
    let dirty = cache.take_dirty();
    assert_eq!(dirty.len(), 1);
    let written = dirty[0]
        .doc
        .as_ref()
        .map(|raw| raw.to_document().unwrap())
        .expect("a replacement, not a delete");
    assert_eq!(written, doc! {"_id": "a", "_pos": 6_i64, "n": 12_i64});
}

#[test]
fn a_flushed_higher_tier_document_makes_the_event_skip_lower_tiers() {
    let store = MemoryStore::new();
    store.put(
        "lookups",
        "x",
        doc! {"_id": "x", "_pos": 9_i64, "name": "later"},
    );
    let mut cache = DocCache::new(10);
    block_on(async {
        cache.begin_event(7);
        let lookup = cache
            .get_cloned::<Lookup>(&store, "lookups", "x")
            .await
            .unwrap();
        assert_eq!(lookup.map(|l| l.name).as_deref(), Some("later"));
        let ran = cache
            .update::<Leaf>(&store, "leaves", "y", 7, |d| d.n += 1)
            .await
            .unwrap();
        assert!(!ran, "the leaf was flushed together with the lookup");
        cache.end_event();
        cache.begin_event(10);
        cache.get::<Lookup>(&store, "lookups", "x").await.unwrap();
        let ran = cache
            .update::<Leaf>(&store, "leaves", "y", 10, |d| d.n += 1)
            .await
            .unwrap();
        assert!(ran, "a later event applies normally");
    });
}

#[test]
fn a_rollback_undoes_the_event_and_a_cache_without_rollback_is_torn_instead() {
    let store = MemoryStore::new();
    store.put("leaves", "a", doc! {"_id": "a", "_pos": 1_i64, "n": 1_i64});
    for rollback in [true, false] {
        let mut cache = DocCache::new(10);
        if !rollback {
            cache = cache.without_rollback();
        }
        block_on(async {
            cache.begin_event(2);
            for id in ["a", "b"] {
                cache
                    .update::<Leaf>(&store, "leaves", id, 2, |d| d.n += 1)
                    .await
                    .unwrap();
            }
            cache.rollback_event();
            let a = cache
                .get::<Leaf>(&store, "leaves", "a")
                .await
                .unwrap()
                .cloned();
            if rollback {
                assert!(!cache.is_torn());
                assert_eq!(a, Some(Leaf { n: 1 }));
                assert_eq!(cache.dirty_count(), 0);
            } else {
                assert!(cache.is_torn());
                assert_eq!(a, Some(Leaf { n: 2 }), "nothing was copied to restore");
                assert_eq!(cache.dirty_count(), 2);
            }
        });
    }
}

#[test]
fn dirty_documents_come_out_lowest_tier_first_and_clean_ones_are_evicted() {
    let store = MemoryStore::new();
    let mut cache = DocCache::new(1);
    block_on(async {
        cache.begin_event(1);
        for id in ["a", "b"] {
            cache
                .update::<Lookup>(&store, "lookups", id, 1, |d| d.name = id.into())
                .await
                .unwrap();
            cache
                .update::<Leaf>(&store, "leaves", id, 1, |d| d.n = 1)
                .await
                .unwrap();
        }
    });
    let dirty = cache.take_dirty();
    let tiers: Vec<u8> = dirty.iter().map(|d| d.tier).collect();
    assert_eq!(tiers, [0, 0, 2, 2]);
    let batches = flush_batches(dirty);
    assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(
        cache.len(),
        1,
        "clean documents beyond the capacity are evicted"
    );
    assert_eq!(cache.dirty_count(), 0);
    assert!(cache.take_dirty().is_empty());
}

#[test]
fn a_failed_load_leaves_the_cache_as_it_was() {
    let store = MemoryStore::new();
    let ctx = ProjectionContext {
        time_zone: time_zone(),
        generation: 1,
    };
    let event = events::EventEnvelope {
        event_id: uuid::Uuid::from_u128(1),
        aggregate_type: "user".into(),
        aggregate_id: uuid::Uuid::from_u128(2).to_string(),
        version: 1,
        position: Some(1),
        event_type: "UserRegistered".into(),
        schema_version: 1,
        occurred_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        recorded_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        correlation_id: "c".into(),
        causation_id: None,
        actor: "a".into(),
        traceparent: None,
        payload: json!({"user_id": uuid::Uuid::from_u128(2), "display_name": "Dana",
            "email": "dana@example.com", "role": "admin", "registered_at": "2025-01-01T00:00:00Z"}),
    };
    let mut cache = DocCache::new(10);
    block_on(async {
        let error = apply(Model::Messages, &ctx, &mut cache, &Failing, &event)
            .await
            .unwrap_err();
        assert!(error.is_retryable() && !error.is_poison());
        assert_eq!(cache.dirty_count(), 0);
        apply(Model::Messages, &ctx, &mut cache, &store, &event)
            .await
            .unwrap();
        assert_eq!(cache.dirty_count(), 1);

        let mut broken = event.clone();
        broken.payload = json!({"user_id": "nope"});
        let error = apply(Model::Messages, &ctx, &mut cache, &store, &broken)
            .await
            .unwrap_err();
        assert!(error.is_poison());
        let mut unplaced = event.clone();
        unplaced.position = None;
        assert!(apply(Model::Inbox, &ctx, &mut cache, &store, &unplaced)
            .await
            .unwrap_err()
            .is_poison());
        let mut unknown = event.clone();
        unknown.event_type = "UserPromotedToAstronaut".into();
        apply(Model::Inbox, &ctx, &mut cache, &store, &unknown)
            .await
            .unwrap();
        let mut foreign = event;
        foreign.aggregate_type = "invoice".into();
        apply(Model::Lists, &ctx, &mut cache, &store, &foreign)
            .await
            .unwrap();
    });
}

#[test]
fn a_stored_document_of_the_wrong_shape_is_a_corrupt_load() {
    let store = MemoryStore::new();
    store.put(
        "c",
        "a",
        doc! {"_id": "a", "_pos": 1_i64, "n": "not a number"},
    );
    let mut cache = DocCache::new(10);
    let error = block_on(cache.get::<Leaf>(&store, "c", "a")).unwrap_err();
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("c/a"));
}

#[test]
fn dirty_documents_say_whether_the_database_held_them() {
    let store = MemoryStore::new();
    store.put("c", "old", doc! {"_id": "old", "_pos": 1_i64, "n": 1_i64});
    let mut cache = DocCache::new(10);
    let stored = |dirty: Vec<crate::cache::DirtyDoc>| -> Vec<(String, bool)> {
        dirty.into_iter().map(|d| (d.id, d.stored)).collect()
    };
    block_on(async {
        cache.begin_event(2);
        for id in ["old", "new"] {
            cache
                .update::<Leaf>(&store, "c", id, 2, |d| d.n += 1)
                .await
                .unwrap();
        }
    });
    // A new document may be inserted; one that was read from the database must be replaced.
    assert_eq!(
        stored(cache.take_dirty()),
        [("new".to_owned(), false), ("old".to_owned(), true)]
    );
    block_on(async {
        cache.begin_event(3);
        cache
            .update::<Leaf>(&store, "c", "new", 3, |d| d.n += 1)
            .await
            .unwrap();
    });
    // Written by the last flush: stored from now on.
    assert_eq!(stored(cache.take_dirty()), [("new".to_owned(), true)]);
    cache.delete("c", "new", 4);
    cache.delete("c", "never-read", 4);
    // Deletes are always sent; the flag says what the cache knew before.
    assert_eq!(
        stored(cache.take_dirty()),
        [("never-read".to_owned(), true), ("new".to_owned(), true)]
    );
    block_on(async {
        cache.begin_event(5);
        cache
            .update::<Leaf>(&store, "c", "new", 5, |d| d.n = 7)
            .await
            .unwrap();
    });
    // Deleted by the last flush: absent again.
    assert_eq!(stored(cache.take_dirty()), [("new".to_owned(), false)]);
}

#[test]
fn a_cache_that_wrote_every_stored_document_reads_back_only_what_it_evicted() {
    // Capacity 0: every document is evicted as soon as it is written.
    let mut cache = DocCache::new(0);
    cache.starting_from_empty_store();
    block_on(async {
        cache.begin_event(1);
        // Nothing is stored yet: misses are answered without the (failing) loader.
        assert_eq!(cache.get::<Leaf>(&Failing, "leaves", "a").await, Ok(None));
        cache
            .update::<Leaf>(&Failing, "leaves", "a", 1, |d| d.n = 1)
            .await
            .unwrap();
    });
    let dirty = cache.take_dirty();
    assert_eq!(dirty.len(), 1);
    assert!(!dirty[0].stored, "a new document is inserted, not replaced");
    block_on(async {
        cache.begin_event(2);
        assert_eq!(cache.get::<Leaf>(&Failing, "leaves", "b").await, Ok(None));
        // "a" is stored now and no longer cached: it has to be read back.
        assert_eq!(
            cache.get::<Leaf>(&Failing, "leaves", "a").await,
            Err(LoadError::new("down"))
        );
    });
}

#[test]
fn without_the_empty_store_declaration_every_miss_is_read() {
    let mut cache = DocCache::new(10);
    block_on(async {
        cache.begin_event(1);
        assert_eq!(
            cache.get::<Leaf>(&Failing, "leaves", "a").await,
            Err(LoadError::new("down"))
        );
    });
}

#[test]
fn the_byte_limit_evicts_the_least_recently_used_clean_documents() {
    let store = MemoryStore::new();
    let name = "x".repeat(1_000);
    // Four documents of about 1 KB each fit in 4.5 KB; ten do not.
    let mut cache = DocCache::new(100).with_byte_limit(4_500);
    block_on(async {
        cache.begin_event(1);
        for i in 0..10 {
            cache
                .update::<Lookup>(&store, "lookups", &format!("d{i}"), 1, |d| {
                    d.name = name.clone()
                })
                .await
                .unwrap();
        }
    });
    assert_eq!(
        cache.take_dirty().len(),
        10,
        "dirty documents are never evicted"
    );
    assert_eq!(cache.len(), 4);
    assert!(cache.bytes() <= 4_500, "{} bytes held", cache.bytes());
    assert!(cache.bytes() > 4_000, "{} bytes held", cache.bytes());
    block_on(async {
        for i in 6..10 {
            let kept = cache
                .get::<Lookup>(&Failing, "lookups", &format!("d{i}"))
                .await
                .expect("a recently used document is still held");
            assert_eq!(kept.map(|d| d.name.len()), Some(1_000));
        }
        let evicted = cache.get::<Lookup>(&Failing, "lookups", "d0").await;
        assert!(evicted.is_err(), "the oldest was evicted and is read again");
    });
}
