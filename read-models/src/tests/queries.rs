//! Query functions: parameters, cursors, registry and checkpoints.

use std::sync::{Arc, Mutex};

use bson::Document;
use chrono::NaiveDate;
use domain::ids::ThreadId;
use serde_json::json;

use super::block_on;
use super::history::{customers_named, history};
use super::pipeline::{project, Plan};
use crate::cache::LoadError;
use crate::memory::MemoryStore;
use crate::models::search::{lookup_rounds, POSTING_MAX};
use crate::query::{
    self, CursorKey, CustomerFilter, DocSource, Generations, JobFilter, PageRequest, QueryError,
};
use crate::{names, Model};

fn plan(capacity: usize) -> Plan {
    Plan {
        capacity,
        flush_odds: 1,
        crash_odds: 0,
        fail_every: 0,
        seed: 3,
    }
}

fn store() -> MemoryStore {
    block_on(project(&history(&[]), &plan(100)))
}

#[test]
fn jon_smith_finds_john_smith_first() {
    let store = store();
    let filter = CustomerFilter {
        search: Some("Jon Smith".into()),
        ..CustomerFilter::default()
    };
    let page = block_on(query::customers(
        &store,
        &Generations::default(),
        &filter,
        PageRequest::first(10),
    ))
    .unwrap();
    let names: Vec<_> = page
        .items
        .iter()
        .map(|c| format!("{} {}", c.first_name, c.last_name))
        .collect();
    assert_eq!(names, ["John Smith"]);
    assert_eq!(page.total, Some(1));
}

/// A [`DocSource`] that records the `_id` of every document read through it.
struct Recording<'a> {
    store: &'a MemoryStore,
    ids: Mutex<Vec<String>>,
}

impl<'a> Recording<'a> {
    fn new(store: &'a MemoryStore) -> Self {
        Recording {
            store,
            ids: Mutex::new(Vec::new()),
        }
    }

    fn read(&self, id: &str) -> bool {
        self.ids.lock().unwrap().iter().any(|read| read == id)
    }
}

impl DocSource for Recording<'_> {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        self.ids.lock().unwrap().push(id.to_owned());
        self.store.get(collection, id).await
    }
}

fn search(src: &impl DocSource, text: &str) -> Vec<String> {
    let filter = CustomerFilter {
        search: Some(text.into()),
        ..CustomerFilter::default()
    };
    let page = block_on(query::customers(
        src,
        &Generations::default(),
        &filter,
        PageRequest::first(10),
    ))
    .unwrap();
    page.items
        .iter()
        .map(|c| format!("{} {}", c.first_name, c.last_name))
        .collect()
}

#[test]
fn a_search_reads_postings_that_start_like_its_token_only_when_the_shorter_one_is_full() {
    let (_, starting_alike) = lookup_rounds("smith");
    assert!(starting_alike.contains(&"smith".to_owned()));

    // Few customers: the posting "sm" lists every one with a token starting "sm".
    let small = store();
    let recording = Recording::new(&small);
    assert_eq!(search(&recording, "smith"), ["John Smith"]);
    assert!(recording.read("sm"));
    assert!(!starting_alike.iter().any(|key| recording.read(key)));

    // "sm" full with earlier customers: John Smith, registered last, is only in the longer
    // postings, which are read then.
    let mut names = vec![("Sam", "Smalley"); POSTING_MAX + 10];
    names.push(("John", "Smith"));
    let crowded = block_on(project(&customers_named(&names), &plan(200)));
    let recording = Recording::new(&crowded);
    assert_eq!(search(&recording, "smith"), ["John Smith"]);
    assert!(starting_alike.iter().all(|key| recording.read(key)));
}

#[test]
fn malformed_cursors_and_ranges_are_bad_requests() {
    let store = store();
    let gens = Generations::default();
    let bad = PageRequest {
        limit: 5,
        after: Some(CursorKey(json!({"nope": true}))),
    };
    let thread = ThreadId::from_uuid(uuid::Uuid::from_u128(5));
    let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
    block_on(async {
        let errors: Vec<QueryError> = vec![
            query::customers(&store, &gens, &CustomerFilter::default(), bad.clone())
                .await
                .unwrap_err(),
            query::jobs(&store, &gens, &JobFilter::default(), bad.clone())
                .await
                .unwrap_err(),
            query::dashboard(&store, &gens, day(10), day(9), day(9))
                .await
                .unwrap_err(),
            query::jobs(
                &store,
                &gens,
                &JobFilter {
                    from: Some(day(10)),
                    to: Some(day(9)),
                    ..JobFilter::default()
                },
                PageRequest::first(5),
            )
            .await
            .unwrap_err(),
        ];
        assert!(errors.iter().all(QueryError::is_bad_request), "{errors:?}");
        // An unknown thread has no messages, whatever the cursor.
        let page = query::thread_messages(&store, &gens, thread, bad)
            .await
            .unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    });
}

/// The dashboard range rule at its boundary: 365 and 366 days (`from` and `to` included) are
/// read, 367 are refused naming `to`; the query API applies the same
/// [`query::check_dashboard_range`] (its `tests/api/bad_input.rs` asks for the same dates).
#[test]
fn a_dashboard_range_holds_at_most_366_days() {
    let store = store();
    let gens = Generations::default();
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let to_after = |days: u64| from + chrono::Days::new(days - 1);
    assert_eq!(query::MAX_DASHBOARD_DAYS, 366);
    block_on(async {
        for days in [1, 365, 366] {
            let to = to_after(days);
            assert_eq!(query::check_dashboard_range(from, to), Ok(()), "{days}");
            let view = query::dashboard(&store, &gens, from, to, to)
                .await
                .unwrap_or_else(|e| panic!("{days} days: {e}"));
            assert_eq!(view.days.len() as u64, days);
        }
        assert_eq!(
            to_after(366),
            NaiveDate::from_ymd_opt(2024, 12, 31).unwrap()
        );
        let to = to_after(367);
        for refused in [
            query::check_dashboard_range(from, to).unwrap_err(),
            query::dashboard(&store, &gens, from, to, to)
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(refused, QueryError::Invalid { field: "to", .. }),
                "{refused:?}"
            );
        }
        let backwards = query::check_dashboard_range(to, from).unwrap_err();
        assert!(matches!(
            backwards,
            QueryError::Invalid { field: "from", .. }
        ));
    });
}

#[test]
fn generations_come_from_the_registry_and_the_checkpoint_is_the_lowest() {
    let store = MemoryStore::new();
    store.put(
        names::REGISTRY_COLLECTION,
        "calendar",
        names::registry_doc(Model::Calendar, 3),
    );
    for (model, position) in [
        (Model::Dashboard, 7),
        (Model::Calendar, 4),
        (Model::Inbox, 9),
        (Model::Lists, 8),
        (Model::Messages, 5),
    ] {
        let generation = if model == Model::Calendar { 3 } else { 1 };
        store.put(
            &names::meta_collection(model, generation),
            names::CHECKPOINT_ID,
            names::checkpoint_doc(position),
        );
    }
    // A stale generation's checkpoint is ignored.
    store.put(
        &names::meta_collection(Model::Calendar, 1),
        names::CHECKPOINT_ID,
        names::checkpoint_doc(1),
    );
    block_on(async {
        let gens = Generations::load(&store).await.unwrap();
        assert_eq!(gens, Generations::new().with(Model::Calendar, 3));
        assert_eq!(query::checkpoint(&store, &gens).await.unwrap(), 4);
        assert_eq!(
            query::model_checkpoint(&store, &gens, Model::Inbox)
                .await
                .unwrap(),
            9
        );
    });
    assert_eq!("lists".parse::<Model>(), Ok(Model::Lists));
    assert!("nope".parse::<Model>().is_err());
}
