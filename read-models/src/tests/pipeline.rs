//! The projector's loop in miniature: apply every model through one cache, flush tier by
//! tier into a `MemoryStore`, and sometimes crash half-way through a flush and re-apply
//! from the checkpoint.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use bson::Document;
use domain::calendar::BusinessTimeZone;
use events::EventEnvelope;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::block_on;
use super::history::{history, history_off_the_millisecond, steps, Step};
use super::views::assert_views_match;
use crate::cache::{flush_batches, DocCache, DocLoader, LoadError};
use crate::memory::MemoryStore;
use crate::reference::ReferenceModel;
use crate::{apply, names, Model, ProjectionContext};

/// A small deterministic generator for flush and crash decisions.
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn roll(&mut self, sides: u64) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % sides.max(1)
    }
}

/// A loader over the store whose every `fail_every`-th load fails (0: never).
struct FlakyLoader {
    store: MemoryStore,
    fail_every: u64,
    loads: AtomicU64,
}

impl DocLoader for FlakyLoader {
    async fn load(&self, collection: &str, id: &str) -> Result<Option<Document>, LoadError> {
        let n = self.loads.fetch_add(1, Ordering::Relaxed) + 1;
        if self.fail_every > 0 && n.is_multiple_of(self.fail_every) {
            return Err(LoadError::new("simulated network failure"));
        }
        self.store.load(collection, id).await
    }
}

/// How a run flushes and fails.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) capacity: usize,
    /// Flush after an event with probability 1/`flush_odds`.
    pub(crate) flush_odds: u64,
    /// Crash during a flush with probability 1/`crash_odds` (0: never).
    pub(crate) crash_odds: u64,
    pub(crate) fail_every: u64,
    pub(crate) seed: u64,
}

pub(crate) fn time_zone() -> BusinessTimeZone {
    BusinessTimeZone::parse("America/New_York").expect("known time zone")
}

async fn apply_all(cache: &mut DocCache, loader: &FlakyLoader, event: &EventEnvelope) {
    for model in Model::ALL {
        let ctx = ProjectionContext {
            time_zone: time_zone(),
            generation: 1,
        };
        let mut attempts = 0;
        loop {
            match apply(model, &ctx, cache, loader, event).await {
                Ok(()) => break,
                Err(error) if error.is_retryable() && attempts < 100 => attempts += 1,
                Err(error) => panic!("applying {event:?} to {model}: {error}"),
            }
        }
    }
}

fn write_checkpoint(store: &MemoryStore, position: u64) {
    for model in Model::ALL {
        store.put(
            &names::meta_collection(model, 1),
            names::CHECKPOINT_ID,
            names::checkpoint_doc(position),
        );
    }
}

/// Applies `events` as the projector would under `plan`, and returns the store.
pub(crate) async fn project(events: &[EventEnvelope], plan: &Plan) -> MemoryStore {
    let store = MemoryStore::new();
    let loader = FlakyLoader {
        store: store.clone(),
        fail_every: plan.fail_every,
        loads: AtomicU64::new(0),
    };
    let mut dice = Dice(plan.seed);
    let mut cache = DocCache::new(plan.capacity);
    let mut checkpoint = 0usize;
    let mut next = 0usize;
    while next < events.len() {
        apply_all(&mut cache, &loader, &events[next]).await;
        next += 1;
        if next < events.len() && dice.roll(plan.flush_odds) != 0 {
            continue;
        }
        let batches = flush_batches(cache.take_dirty());
        if plan.crash_odds > 0 && next < events.len() && dice.roll(plan.crash_odds) == 0 {
            // Crash part-way: every tier below the cut written, some of the cut tier.
            let cut = dice.roll(batches.len() as u64 + 1) as usize;
            for (tier, batch) in batches.into_iter().enumerate().take(cut + 1) {
                let written: Vec<_> = batch
                    .into_iter()
                    .filter(|_| tier < cut || dice.roll(2) == 0)
                    .collect();
                assert_eq!(store.write(written), 0, "a flush went back in `_pos`");
            }
            cache = DocCache::new(plan.capacity);
            for event in &events[checkpoint..next] {
                apply_all(&mut cache, &loader, event).await;
            }
            continue;
        }
        for batch in batches {
            assert_eq!(store.write(batch), 0, "a flush went back in `_pos`");
        }
        checkpoint = next;
        write_checkpoint(&store, next as u64);
    }
    let rest = cache.take_dirty();
    assert_eq!(store.write(rest), 0, "a flush went back in `_pos`");
    write_checkpoint(&store, events.len() as u64);
    store
}

pub(crate) fn reference(events: &[EventEnvelope]) -> ReferenceModel {
    let mut reference = ReferenceModel::new(time_zone());
    for event in events {
        reference
            .apply(event)
            .expect("reference applies every valid event");
    }
    reference
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop_oneof![Just(0usize), Just(3), Just(40), Just(100_000)],
        prop_oneof![Just(1u64), Just(4), Just(25)],
        prop_oneof![Just(0u64), Just(3)],
        prop_oneof![Just(0u64), Just(7), Just(31)],
        any::<u64>(),
    )
        .prop_map(
            |(capacity, flush_odds, crash_odds, fail_every, seed)| Plan {
                capacity,
                flush_odds,
                crash_odds,
                fail_every,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_view_matches_the_reference_whatever_the_flushes_crashes_and_cache_size(
        steps in steps(1..300),
        plan in plan(),
        limit in 1usize..6,
    ) {
        let events = history(&steps);
        let reference = reference(&events);
        block_on(async {
            let store = project(&events, &plan).await;
            assert_views_match(&store, &reference, &events, limit).await;
        });
    }
}

#[test]
fn a_store_built_in_one_go_equals_one_built_through_crashes() {
    assert_built_in_one_go_equals_built_through_crashes(history);
}

#[test]
fn instants_finer_than_a_millisecond_give_the_same_lists_through_crashes() {
    // Stored dates keep milliseconds: a list key computed from an instant read back from the
    // store must equal the one computed from the event's own, finer instant, or the entry
    // it should remove or move is not found.
    assert_built_in_one_go_equals_built_through_crashes(history_off_the_millisecond);
}

/// Projects one generated history straight and through crashes, evictions and failed loads,
/// and asserts that both stores hold the same documents.
fn assert_built_in_one_go_equals_built_through_crashes(history: fn(&[Step]) -> Vec<EventEnvelope>) {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let steps = steps(300..301)
        .new_tree(&mut runner)
        .map(|tree| tree.current())
        .expect("steps generate");
    let events = history(&steps);
    let straight = Plan {
        capacity: 100_000,
        flush_odds: 1_000_000,
        crash_odds: 0,
        fail_every: 0,
        seed: 1,
    };
    let crashing = Plan {
        capacity: 5,
        flush_odds: 3,
        crash_odds: 2,
        fail_every: 5,
        seed: 7,
    };
    let (a, b) = block_on(async {
        (
            project(&events, &straight).await,
            project(&events, &crashing).await,
        )
    });
    // Same documents, same content (bucket numbering included: replays are deterministic).
    assert!(events.len() > 100, "a long enough history");
    let (a, b) = (a.snapshot(), b.snapshot());
    let keys: BTreeSet<(&String, &String)> = a
        .iter()
        .chain(&b)
        .flat_map(|(c, docs)| docs.keys().map(move |id| (c, id)))
        .collect();
    let differing: Vec<_> = keys
        .into_iter()
        .filter(|(c, id)| a.get(*c).and_then(|d| d.get(*id)) != b.get(*c).and_then(|d| d.get(*id)))
        .take(3)
        .map(|(c, id)| {
            (
                c,
                id,
                a.get(c).and_then(|d| d.get(id)),
                b.get(c).and_then(|d| d.get(id)),
            )
        })
        .collect();
    assert!(differing.is_empty(), "documents differ: {differing:#?}");
}

/// A list as its documents hold it: its directory, and the bucket references of its live
/// segments in order (the directory's own as one segment).
struct StoredList {
    dir: crate::list_index::Directory<bson::Bson>,
    segments: Vec<Vec<crate::list_index::ChildRef>>,
}

impl StoredList {
    fn buckets(&self) -> Vec<&crate::list_index::ChildRef> {
        self.segments.iter().flatten().collect()
    }
}

/// The lists of a 300-step generated history, projected with a flush per event.
fn lists_of_a_generated_history() -> Vec<StoredList> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let steps = steps(300..301)
        .new_tree(&mut runner)
        .map(|tree| tree.current())
        .expect("steps generate");
    let plan = Plan {
        capacity: 100_000,
        flush_odds: 1,
        crash_odds: 0,
        fail_every: 0,
        seed: 1,
    };
    let store = block_on(project(&history(&steps), &plan));
    let snapshot = store.snapshot();
    let mut lists = Vec::new();
    for (name, docs) in &snapshot {
        let Some(prefix) = name.strip_suffix("list_dirs") else {
            continue;
        };
        let no_segments = Default::default();
        let segments = snapshot
            .get(&format!("{prefix}list_segments"))
            .unwrap_or(&no_segments);
        for doc in docs.values() {
            let dir: crate::list_index::Directory<bson::Bson> =
                crate::stored::open(doc).expect("directory decodes").0;
            let mut segments: Vec<Vec<_>> = dir
                .segments
                .iter()
                .map(|s| {
                    let id = crate::list_index::child_id(&dir.list, &s.no);
                    let segment: crate::list_index::Segment = crate::stored::open(&segments[&id])
                        .expect("segment decodes")
                        .0;
                    assert_eq!(
                        segment.buckets.iter().map(|b| b.count).sum::<i64>(),
                        s.count,
                        "a segment's count is its buckets' entries: {dir:?} {segment:?}"
                    );
                    assert_eq!(
                        segment.buckets.last().map(|b| &b.lo),
                        Some(&s.lo),
                        "a segment's last bucket starts where it does: {dir:?} {segment:?}"
                    );
                    segment.buckets
                })
                .collect();
            if !dir.buckets.is_empty() {
                assert!(dir.segments.is_empty(), "buckets or segments: {dir:?}");
                segments.push(dir.buckets.clone());
            }
            lists.push(StoredList { dir, segments });
        }
    }
    lists
}

#[test]
fn generated_histories_split_and_merge_list_buckets_and_segments() {
    let lists = lists_of_a_generated_history();
    assert!(
        lists.iter().any(|l| l.buckets().len() > 1),
        "some list spans several buckets"
    );
    assert!(
        lists.iter().any(|l| l.dir.segments.len() > 1),
        "some list spans several segments"
    );
    assert!(
        lists
            .iter()
            .any(|l| !l.dir.buckets.is_empty() && l.dir.buckets.len() > 1),
        "some list keeps several buckets in its directory"
    );
    assert!(
        lists.iter().any(|l| {
            let buckets = l.buckets();
            buckets.len() == 1 && buckets[0].no != "0" && !buckets[0].no.ends_with(".0")
        }),
        "some list split and later merged back or emptied"
    );
    for list in &lists {
        assert_eq!(
            list.dir.total,
            list.buckets().iter().map(|b| b.count).sum::<i64>() + list.dir.entries.len() as i64,
            "the total is the buckets' entries: {:?}",
            list.dir
        );
        assert!(
            list.dir
                .segments
                .iter()
                .all(|s| s.count as usize <= crate::list_index::SEGMENT_MAX),
            "no segment holds more than its bound: {:?}",
            list.dir
        );
        assert_eq!(
            list.dir
                .segments
                .last()
                .map(|s| s.lo.as_str())
                .unwrap_or(""),
            ""
        );
    }
}

#[test]
fn small_lists_keep_their_entries_in_their_directory() {
    let lists = lists_of_a_generated_history();
    let inline: Vec<_> = lists
        .iter()
        .map(|l| &l.dir)
        .filter(|d| d.segments.is_empty() && d.buckets.is_empty())
        .collect();
    assert!(
        inline.iter().any(|d| !d.entries.is_empty()),
        "some list is small enough to be inline"
    );
    for dir in &inline {
        assert!(
            dir.entries.len() <= crate::list_index::INLINE_MAX,
            "{dir:?}"
        );
        assert_eq!(dir.total, dir.entries.len() as i64, "{dir:?}");
        let keys: Vec<_> = dir.entries.iter().map(|e| &e.key).collect();
        assert!(
            keys.windows(2).all(|w| w[0] > w[1]),
            "newest first: {dir:?}"
        );
    }
    assert!(
        lists
            .iter()
            .filter(|l| !l.segments.is_empty())
            .all(|l| l.dir.entries.is_empty()),
        "a list with buckets keeps no entries inline"
    );
}

#[test]
fn a_list_that_grows_at_the_front_keeps_full_buckets() {
    // Customers are registered in clock order and listed newest first, so every registration
    // lands in front of the whole `customers` list.
    let customers = lists_of_a_generated_history()
        .into_iter()
        .find(|l| l.dir.list == "customers")
        .expect("the customers list exists");
    let max = crate::list_index::BUCKET_MAX as i64;
    assert!(customers.segments.len() > 1, "{:?}", customers.dir);
    for segment in &customers.segments {
        assert!(
            segment[1..].iter().all(|b| b.count == max),
            "every bucket behind a segment's front one is full: {segment:?}"
        );
    }
    assert_eq!(
        customers.dir.total,
        customers.buckets().iter().map(|b| b.count).sum::<i64>()
    );
}
