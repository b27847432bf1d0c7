//! The projector end to end on the real servers: generated histories appended through the
//! event store, published by the relay (or by hand, duplicated and out of order), projected,
//! and every query compared with the reference fold of the same log.

mod support;

use std::time::Duration;

use bson::{doc, Document};
use events::{
    AppendRequest, Bus, BusConfig, EventEnvelope, EventMetadata, EventStore, Expected, NewEvent,
    Relay, RelayConfig, StreamId,
};
use futures::TryStreamExt;
use projector::{Command, RebuildArgs};
use read_models::Model;
use support::history::History;
use support::{compare, MongoSource, RunningProjector};
use tests::TestEnv;

/// A liveness bound, not a speed goal: generous because the whole suite shares two cores with
/// the database.
const CATCH_UP: Duration = Duration::from_secs(600);

async fn project_and_compare(seed: u64, events: usize) {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let projector = RunningProjector::start(&env).await;
    let mut history = History::new(seed);
    let total = support::append(&store, support::generate(&mut history, events)).await;
    support::wait_sequenced(&store, total).await;
    support::wait_projected(&env, total, CATCH_UP).await;
    let log = support::read_all(&store).await;
    assert_eq!(log.len() as u64, total);
    let compared = compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    assert!(compared.views > 50, "too little compared: {compared:?}");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&projector.get("/v1/checkpoint").await).expect("checkpoint JSON");
    assert_eq!(checkpoint["position"], total);
    assert_eq!(checkpoint["models"].as_object().map(|m| m.len()), Some(5));
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projected_read_models_equal_the_reference_fold_for_random_histories() {
    for seed in [1, 2] {
        project_and_compare(seed, 300).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_reordered_and_missing_deliveries_still_give_the_reference_result() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    // The relay sequences the log but publishes to a stream nobody reads: this test delivers
    // on the real stream itself.
    let nats = env.nats().await;
    let decoy = BusConfig {
        stream_name: format!("{}_DECOY", env.bus_config.stream_name),
        subject_prefix: format!("{}-decoy", env.bus_config.subject_prefix),
        ..env.bus_config.clone()
    };
    let (trigger, stop) = platform::shutdown::channel();
    let relay = Relay::new(
        store.clone(),
        Bus::new(nats, decoy),
        RelayConfig {
            poll_interval: Duration::from_millis(50),
            ..RelayConfig::default()
        },
    );
    let relay = tokio::spawn(relay.run(stop.wait()));
    // Started first, so that what it does not receive it must notice missing and fill from
    // the store while it runs, not read at start-up.
    let projector = RunningProjector::start(&env).await;
    let mut history = History::new(7);
    let total = support::append(&store, support::generate(&mut history, 400)).await;
    support::wait_sequenced(&store, total).await;
    let log = support::read_all(&store).await;

    let rng = history.rng();
    let mut deliveries = Vec::new();
    let mut withheld = 0;
    for window in log.chunks(25) {
        let mut window: Vec<_> = window.to_vec();
        // Fisher–Yates over the window: later positions before earlier ones.
        for i in (1..window.len()).rev() {
            window.swap(i, rng.below(i + 1));
        }
        for event in window {
            if rng.chance(2) {
                withheld += 1; // never delivered: must come from the store
                continue;
            }
            if rng.chance(15) {
                let copy = log[rng.below(log.len())].clone();
                deliveries.push((copy, format!("copy-{}", uuid::Uuid::now_v7())));
            }
            let id = event.event_id.to_string();
            deliveries.push((event, id));
        }
    }
    support::publish_raw(&env, &store, &deliveries).await;
    support::wait_projected(&env, total, CATCH_UP).await;
    let compared = compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    assert!(compared.views > 50, "too little compared: {compared:?}");
    assert!(
        projector
            .metric("simplepro_projector_duplicates_skipped_total")
            .await
            >= 1.0
    );
    if withheld > 0 {
        assert!(
            projector
                .metric("simplepro_projector_gap_fills_total")
                .await
                >= 1.0
        );
    }
    // Every document written is counted under its model and kind.
    let written = projector
        .metric("simplepro_projector_docs_written_total")
        .await;
    assert!(written > 0.0);
    assert_eq!(
        projector
            .metric("simplepro_projector_model_docs_written_total")
            .await,
        written
    );
    // The documents kept for the next batches are weighed (the soak judges the projector's
    // memory less this bounded part).
    assert!(
        projector
            .metric("simplepro_projector_doc_cache_bytes")
            .await
            > 0.0
    );
    projector.stop().await;
    trigger.trigger();
    let _ = relay.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_and_restarted_counts_every_event_once() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let mut history = History::new(11);
    let commits = support::generate(&mut history, 600);
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut total = 0;
            let mut commits = commits.into_iter().peekable();
            while commits.peek().is_some() {
                let part: Vec<_> = commits.by_ref().take(60).collect();
                total += support::append(&store, part).await;
            }
            total
        })
    };
    for round in 0..4u64 {
        // Catch-ups read the store in small chunks and flush every few of them, so kills also
        // land between the chunks of one flush.
        let projector =
            RunningProjector::start_with(&env, &["--store-chunk", "25", "--catch-up-docs", "300"])
                .await;
        tokio::time::sleep(Duration::from_millis(300 + 170 * round)).await;
        projector.kill().await;
    }
    let total = appender.await.expect("appender");
    support::wait_sequenced(&store, total).await;
    let projector = RunningProjector::start(&env).await;
    support::wait_projected(&env, total, CATCH_UP).await;
    let log = support::read_all(&store).await;
    compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    projector.stop().await;
}

/// Appends about `events` events of `history`, projects them with a projector that then
/// stops; returns how many were appended.
async fn projected_then_stopped(
    env: &TestEnv,
    store: &events::EventStore,
    history: &mut History,
    events: usize,
) -> u64 {
    let appended = support::append(store, support::generate(history, events)).await;
    support::wait_sequenced(store, appended).await;
    let projector = RunningProjector::start(env).await;
    support::wait_projected(env, appended, CATCH_UP).await;
    projector.stop().await;
    appended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_projector_resumes_from_its_checkpoint() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let mut history = History::new(5);
    let first = projected_then_stopped(&env, &store, &mut history, 150).await;

    let more = support::append(&store, support::generate(&mut history, 150)).await;
    let total = first + more;
    support::wait_sequenced(&store, total).await;
    // The backlog is read in several chunks and written in one flush.
    let projector = RunningProjector::start_with(&env, &["--store-chunk", "40"]).await;
    support::wait_projected(&env, total, CATCH_UP).await;
    // Everything before the checkpoint was already applied: at most the new events are.
    let applied = projector
        .metric("simplepro_projector_events_applied_total")
        .await;
    assert!(
        applied <= more as f64,
        "re-applied old events: {applied} > {more}"
    );
    let log = support::read_all(&store).await;
    compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_reads_jetstream_as_far_as_it_holds_the_log_then_the_store() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let mut history = History::new(11);
    let first = projected_then_stopped(&env, &store, &mut history, 100).await;

    // Copies of the first ten events under new message ids: the stream's sequences no longer
    // match positions, and the catch-up meets positions it has applied before the ones it
    // needs.
    let log = support::read_all(&store).await;
    let copies: Vec<_> = log[..10]
        .iter()
        .map(|e| (e.clone(), format!("copy-{}", e.event_id)))
        .collect();
    support::publish_raw(&env, &store, &copies).await;
    let more = support::append(&store, support::generate(&mut history, 300)).await;
    let total = first + more;
    support::wait_sequenced(&store, total).await;
    // A hole in JetStream's copy: the message of one position is deleted.
    let hole = first + 120;
    let mut stream = env
        .bus()
        .await
        .jetstream()
        .get_stream(&env.bus_config.stream_name)
        .await
        .expect("stream");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream.info().await.expect("stream info").state.messages < total + 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not publish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut hole_sequence = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    loop {
        let payload = stream
            .get_raw_message(hole_sequence)
            .await
            .expect("message")
            .payload;
        let event: EventEnvelope = serde_json::from_slice(&payload).expect("envelope");
        if event.position == Some(hole) {
            break;
        }
        hole_sequence -= 1;
    }
    stream
        .delete_message(hole_sequence)
        .await
        .expect("delete a message");

    let projector = RunningProjector::start_with(&env, &["--bus-replay-min", "50"]).await;
    support::wait_projected(&env, total, CATCH_UP).await;
    let from_bus = projector
        .metric("simplepro_projector_replayed_from_bus_total")
        .await;
    let from_store = projector
        .metric("simplepro_projector_replayed_from_store_total")
        .await;
    // Up to the hole from JetStream, the rest from the store, each position once.
    assert_eq!(from_bus, (hole - 1 - first) as f64);
    assert_eq!(from_store, (total - hole + 1) as f64);
    let log = support::read_all(&store).await;
    compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_generation_equals_the_live_one_and_takes_over() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let projector = RunningProjector::start(&env).await;
    let mut history = History::new(3);
    let total = support::append(&store, support::generate(&mut history, 300)).await;
    support::wait_sequenced(&store, total).await;
    support::wait_projected(&env, total, CATCH_UP).await;

    // Replayed from JetStream's copy of the log (the test's history is short).
    let config = support::config(
        &env,
        &[
            "--bus-replay-min",
            "50",
            "rebuild",
            "--verify",
            "--drop-delay-secs",
            "1",
        ],
    );
    let Some(Command::Rebuild(args)) = config.command.clone() else {
        panic!("rebuild arguments not parsed");
    };

    // A live document changed behind the projector's back: the rebuilt dashboard differs in
    // that one document, and the live generation stays.
    let (tampered, original) = tamper_one(&env.read_models, "rm_dashboard_g1_").await;
    let dashboard_only = RebuildArgs {
        models: vec!["dashboard".into()],
        ..args.clone()
    };
    let reports = projector::rebuild(&config, &dashboard_only)
        .await
        .expect("rebuild");
    let verify = reports[0].verify.as_ref().expect("verified");
    assert!(!reports[0].switched, "{reports:?}");
    assert_eq!(verify.different, 1, "{reports:?}");
    assert!(verify.equal > 0, "{reports:?}");
    assert_eq!(verify.examples, std::slice::from_ref(&tampered));
    let (collection, _) = tampered.rsplit_once('/').expect("collection/id");
    env.read_models
        .collection::<Document>(collection)
        .replace_one(doc! {"_id": original.get("_id").cloned()}, &original)
        .await
        .expect("restore the tampered document");

    // All five from one replay, flushed every few hundred documents on the way (so later
    // flushes rewrite documents earlier ones wrote); a model named twice is rebuilt once.
    let all_twice = RebuildArgs {
        models: Model::ALL
            .iter()
            .chain(Model::ALL.iter())
            .map(|m| m.as_str().to_owned())
            .collect(),
        flush_docs: 300,
        ..args.clone()
    };
    let reports = projector::rebuild(&config, &all_twice)
        .await
        .expect("rebuild");
    assert_eq!(reports.len(), 5);
    let models: Vec<&str> = reports.iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models, Model::ALL.map(Model::as_str));
    for report in &reports {
        let verify = report.verify.as_ref().expect("verified");
        assert_eq!(verify.different, 0, "{report:?}");
        assert!(verify.equal > 0, "nothing compared: {report:?}");
        assert!(report.switched && report.generation == 2, "{report:?}");
        assert!(report.position >= total, "{report:?}");
    }
    let registry: Vec<Document> = env
        .read_models
        .collection::<Document>("rm_registry")
        .find(doc! {})
        .await
        .expect("registry")
        .try_collect()
        .await
        .expect("registry");
    assert_eq!(registry.len(), 5);
    assert!(registry.iter().all(|d| d.get_i64("generation") == Ok(2)));
    let names = env
        .read_models
        .list_collection_names()
        .await
        .expect("collections");
    assert!(
        names.iter().all(|n| !n.contains("_g1_")),
        "old generation kept: {names:?}"
    );

    // The live projector continues the new generation.
    let more = support::append(&store, support::generate(&mut history, 100)).await;
    support::wait_sequenced(&store, total + more).await;
    support::wait_projected(&env, total + more, CATCH_UP).await;
    let log = support::read_all(&store).await;
    compare::everything(&MongoSource(env.read_models.clone()), &log).await;

    let unknown = RebuildArgs {
        models: vec!["nope".into()],
        ..args
    };
    assert!(projector::rebuild(&config, &unknown).await.is_err());
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_and_the_rest_keeps_flowing() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let projector = RunningProjector::start(&env).await;
    let mut history = History::new(9);
    let before = support::append(&store, support::generate(&mut history, 100)).await;
    // Sequenced first, so the broken events get the next two positions.
    support::wait_sequenced(&store, before).await;
    let job = uuid::Uuid::now_v7().to_string();
    let broken = |event_type: &str| {
        NewEvent::new(
            event_type,
            1,
            chrono::Utc::now(),
            serde_json::json!({"broken": true}),
        )
    };
    let stream = StreamId::new("job", &job).expect("stream");
    for (version, event_type) in [(0, "JobCreated"), (1, "JobScheduled")] {
        store
            .append(AppendRequest {
                stream: stream.clone(),
                expected: Expected::Version(version),
                events: vec![broken(event_type)],
                metadata: EventMetadata::default(),
                idempotency: None,
                snapshot: None,
            })
            .await
            .expect("append broken event");
        support::wait_sequenced(&store, before + version + 1).await;
    }
    let after = support::append(&store, support::generate(&mut history, 100)).await;
    let total = before + 2 + after;
    support::wait_sequenced(&store, total).await;
    support::wait_projected(&env, total, CATCH_UP).await;

    let poisoned = before + 1;
    let dead: Vec<Document> = env
        .read_models
        .collection::<Document>("rm_dead_letters")
        .find(doc! {})
        .await
        .expect("dead letters")
        .try_collect()
        .await
        .expect("dead letters");
    for model in read_models::Model::ALL {
        let first = dead
            .iter()
            .find(|d| d.get_str("_id") == Ok(&format!("{}/{poisoned}", model.as_str())))
            .unwrap_or_else(|| panic!("no dead letter for {model} in {dead:?}"));
        assert!(first.get_str("error").is_ok_and(|e| !e.is_empty()));
        assert!(first.get_document("event").is_ok());
        let parked = dead
            .iter()
            .find(|d| d.get_str("_id") == Ok(&format!("{}/{}", model.as_str(), poisoned + 1)))
            .unwrap_or_else(|| panic!("later event of the aggregate not parked for {model}"));
        assert_eq!(
            parked.get_str("error"),
            Ok(format!("parked behind {poisoned}").as_str())
        );
    }
    assert!(
        projector
            .metric("simplepro_projector_dead_letters_total")
            .await
            >= 10.0
    );
    let log = support::read_all(&store).await;
    compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    projector.stop().await;
}

/// An event store of 150 events projected by a projector started with `first_args`, then
/// its database dropped and filled again under the same name with 60 other events, which a
/// new relay publishes; the read models' database is kept. Returns the new store, its
/// relay, and how many events each store had.
async fn store_replaced_after_projection(
    env: &TestEnv,
    first_args: &[&str],
) -> (EventStore, tests::RunningRelay, u64, u64) {
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let first = support::append(&store, support::generate(&mut History::new(11), 150)).await;
    support::wait_sequenced(&store, first).await;
    let projector = RunningProjector::start_with(env, first_args).await;
    support::wait_projected(env, first, CATCH_UP).await;
    projector.stop().await;
    relay.stop().await;

    env.database.drop().await.expect("drop the event store");
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let second = support::append(&store, support::generate(&mut History::new(12), 60)).await;
    assert!(second < first, "{second} events after {first}");
    support::wait_sequenced(&store, second).await;
    (store, relay, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_of_a_dropped_event_store_are_projected_again_from_the_new_one() {
    let env = TestEnv::new().await;
    let (store, _relay, _, second) = store_replaced_after_projection(&env, &[]).await;
    let projector = RunningProjector::start(&env).await;
    // Answers once it has connected, i.e. after it has checked where the read models are from.
    projector.get("/v1/checkpoint").await;
    support::wait_projected(&env, second, CATCH_UP).await;
    let log = support::read_all(&store).await;
    assert_eq!(log.len() as u64, second);
    let compared = compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    assert!(compared.views > 10, "too little compared: {compared:?}");
    projector.stop().await;
}

/// The JetStream stream outlives the event store: after the store's database is dropped and
/// filled again, the stream still holds the old store's events, under the same positions as
/// the new ones. A projector instance new to the stream (its consumer delivers the stream from
/// its start) must not take them for the new store's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_does_not_project_what_the_stream_kept_of_a_dropped_event_store() {
    let env = TestEnv::new().await;
    let (store, _relay, first, second) =
        store_replaced_after_projection(&env, &["--instance-id", "before"]).await;
    let projector = RunningProjector::start_with(&env, &["--instance-id", "after"]).await;
    projector.get("/v1/checkpoint").await;
    support::wait_projected(&env, second, CATCH_UP).await;
    // The old store's messages come first on the new consumer; once they are all counted,
    // whatever they could have changed has been changed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while projector
        .metric("simplepro_projector_invalid_messages_total")
        .await
        < first as f64
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old store's {first} messages are not all counted as not this store's"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = support::read_all(&store).await;
    assert_eq!(log.len() as u64, second);
    let compared = compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    assert!(compared.views > 10, "too little compared: {compared:?}");
    projector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_stored_in_an_older_layout_are_projected_again() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let _relay = env.start_relay(&store).await;
    let total = support::append(&store, support::generate(&mut History::new(13), 80)).await;
    support::wait_sequenced(&store, total).await;
    // Read models of this store recorded in layout 2, with a document where only that
    // layout keeps one (a partition of the inbox's users).
    let identity = store.identity();
    env.read_models
        .collection::<Document>("rm_source")
        .insert_one(doc! {"_id": "store", "store_id": &identity, "layout": 2_i64})
        .await
        .expect("record the old source");
    let old_partition = "rm_inbox_g1_users_p00";
    env.read_models
        .base()
        .collection::<Document>(old_partition)
        .insert_one(doc! {"_id": "someone", "unread": 3})
        .await
        .expect("old layout document");

    let projector = RunningProjector::start(&env).await;
    projector.get("/v1/checkpoint").await;
    support::wait_projected(&env, total, CATCH_UP).await;
    let names = env
        .read_models
        .list_collection_names()
        .await
        .expect("collections");
    assert!(
        !names.iter().any(|n| n == old_partition),
        "the old layout's collections are dropped: {names:?}"
    );
    assert!(
        names.iter().any(|n| n == "rm_inbox_g1_users"),
        "the models are projected again in the current layout: {names:?}"
    );
    let source = env
        .read_models
        .collection::<Document>("rm_source")
        .find_one(doc! {"_id": "store"})
        .await
        .expect("source")
        .expect("source recorded");
    assert_eq!(source.get_str("store_id"), Ok(identity));
    assert_eq!(
        source.get_i64("layout"),
        Ok(i64::from(read_models::names::LAYOUT_VERSION))
    );
    let log = support::read_all(&store).await;
    let compared = compare::everything(&MongoSource(env.read_models.clone()), &log).await;
    assert!(compared.views > 10, "too little compared: {compared:?}");
    projector.stop().await;
}

/// Changes one document of the first non-empty collection named with `prefix` (its `meta`
/// aside); returns `<collection>/<_id>` and the document as it was.
async fn tamper_one(db: &read_models::dbs::ReadModelDbs, prefix: &str) -> (String, Document) {
    let mut names = db.list_collection_names().await.expect("collections");
    names.retain(|name| name.starts_with(prefix) && !name.ends_with("_meta"));
    names.sort();
    for name in names {
        let collection = db.collection::<Document>(&name);
        let Some(original) = collection.find_one(doc! {}).await.expect("find") else {
            continue;
        };
        let id = original.get("_id").cloned().expect("_id");
        collection
            .update_one(doc! {"_id": id.clone()}, doc! {"$set": {"tampered": true}})
            .await
            .expect("tamper");
        let id = id.as_str().map_or_else(|| id.to_string(), str::to_owned);
        return (format!("{name}/{id}"), original);
    }
    panic!("no document to tamper with under {prefix}");
}
