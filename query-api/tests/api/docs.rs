//! The document store reads several documents of a small collection with one query and those
//! of a large one with a point read each, keeps their order, and caches what it read,
//! absences included.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Document};
use query_api::docs::{CacheSettings, DocKey, DocStore};
use query_api::metrics::Metrics;
use read_models::names;
use read_models::Model;

use crate::support::Harness;

fn store(h: &Harness, max_bytes: Option<u64>) -> (DocStore, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let settings = CacheSettings {
        max_bytes,
        ttl: Duration::from_secs(60),
    };
    (
        DocStore::new(h.env.read_models.clone(), settings, metrics.clone()),
        metrics,
    )
}

async fn put(h: &Harness, collection: &str, id: &str, value: i32) {
    h.env
        .read_models
        .collection::<Document>(collection)
        .replace_one(doc! {"_id": id}, doc! {"_id": id, "value": value})
        .upsert(true)
        .await
        .unwrap();
}

fn values(docs: &[Option<Arc<Document>>]) -> Vec<Option<i32>> {
    docs.iter()
        .map(|d| d.as_ref().map(|d| d.get_i32("value").unwrap()))
        .collect()
}

fn reads(metrics: &Metrics) -> u64 {
    metrics.mongodb_reads.load(Ordering::Relaxed)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn documents_of_a_small_collection_are_read_with_one_query_in_the_order_asked() {
    let h = Harness::new().await;
    let totals = names::collection(Model::Dashboard, 1, "month_totals");
    assert!(names::is_small(&totals));
    for (id, value) in [("2026-01", 1), ("2026-02", 2), ("2026-03", 3)] {
        put(&h, &totals, id, value).await;
    }
    let (docs, metrics) = store(&h, Some(1 << 20));
    let asked = ids(&["2026-03", "2025-12", "2026-01", "2026-03"]);
    let found = docs.fetch_many(&totals, &asked).await.unwrap();
    assert_eq!(values(&found), [Some(3), None, Some(1), Some(3)]);
    assert_eq!(reads(&metrics), 1, "one query for the small collection");

    // Found and absent documents alike now come from the cache.
    let again = docs.fetch_many(&totals, &asked).await.unwrap();
    assert_eq!(values(&again), [Some(3), None, Some(1), Some(3)]);
    assert_eq!(reads(&metrics), 1);
    assert!(metrics.cache_hits.load(Ordering::Relaxed) >= 4);

    // A change is served once its document is invalidated, and only that one is read again.
    put(&h, &totals, "2026-01", 10).await;
    put(&h, &totals, "2025-12", 12).await;
    let cached = docs.fetch_many(&totals, &asked).await.unwrap();
    assert_eq!(values(&cached), [Some(3), None, Some(1), Some(3)]);
    let invalidated = ["2026-01", "2025-12"].map(|id| DocKey {
        collection: totals.clone(),
        id: id.to_owned(),
    });
    docs.invalidate(&invalidated).await;
    let fresh = docs.fetch_many(&totals, &asked).await.unwrap();
    assert_eq!(values(&fresh), [Some(3), Some(12), Some(10), Some(3)]);
    assert_eq!(reads(&metrics), 2);
}

#[tokio::test]
async fn documents_of_a_large_collection_are_read_with_a_point_read_each() {
    let h = Harness::new().await;
    let customers = names::collection(Model::Lists, 1, "customers");
    assert!(!names::is_small(&customers));
    let all: Vec<String> = (0..40).map(|n| format!("customer-{n}")).collect();
    for (n, id) in all.iter().enumerate() {
        if n % 4 != 0 {
            put(&h, &customers, id, n as i32).await;
        }
    }
    let expected: Vec<Option<i32>> = (0..40).map(|n| (n % 4 != 0).then_some(n)).collect();
    let mut asked = all.clone();
    asked.push(all[1].clone());

    let (cached, metrics) = store(&h, Some(1 << 20));
    let found = cached.fetch_many(&customers, &asked).await.unwrap();
    assert_eq!(values(&found[..40]), expected);
    assert_eq!(values(&found[40..]), [Some(1)]);
    assert_eq!(
        reads(&metrics),
        all.len() as u64,
        "one read per distinct id"
    );
    cached.fetch_many(&customers, &asked).await.unwrap();
    assert_eq!(reads(&metrics), all.len() as u64);

    // Without a cache every call reads the store.
    let (uncached, metrics) = store(&h, None);
    for round in 1..=2 {
        let found = uncached.fetch_many(&customers, &all).await.unwrap();
        assert_eq!(values(&found), expected);
        assert_eq!(reads(&metrics), round * all.len() as u64);
    }
    assert!(uncached
        .fetch_many(&customers, &[])
        .await
        .unwrap()
        .is_empty());
}
