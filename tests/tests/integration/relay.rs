//! The outbox relay: nothing appended misses JetStream.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use tests::{NatsServer, TestEnv};

use crate::event_store::{event, request, stream, three_events_in_two_commits};
use events::Expected;

/// The first `want` messages of the stream, each checked to carry its event id as
/// `Nats-Msg-Id` and to name `store` as the store its event comes from.
async fn read_subjects(
    store: &events::EventStore,
    bus: &events::Bus,
    want: usize,
) -> Vec<events::EventEnvelope> {
    let stream = bus.ensure_stream().await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < want {
        let message = tokio::time::timeout(Duration::from_secs(15), messages.next())
            .await
            .expect("events arrive on JetStream")
            .unwrap()
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string());
        let from = message
            .headers
            .as_ref()
            .and_then(|h| h.get(events::bus::STORE_HEADER))
            .map(|v| v.to_string());
        assert_eq!(
            from.as_deref(),
            Some(store.identity()),
            "the message names the store its event comes from"
        );
        let envelope: events::EventEnvelope = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(
            id,
            Some(envelope.event_id.to_string()),
            "Nats-Msg-Id is the event id"
        );
        got.push(envelope);
    }
    got
}

#[tokio::test]
async fn every_appended_event_is_published_in_position_order() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let s = stream("job");
    for i in 0..10 {
        store
            .append(request(&s, Expected::Version(i), vec![event(i)]))
            .await
            .unwrap();
    }
    let bus = env.bus().await;
    let got = read_subjects(&store, &bus, 10).await;
    let positions: Vec<u64> = got.iter().map(|e| e.position.unwrap()).collect();
    assert_eq!(positions, (1..=10).collect::<Vec<_>>());
    assert_eq!(
        got.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    relay.stop().await;
    // All published: the outbox is empty.
    let pending = env
        .database
        .collection::<bson::Document>("outbox")
        .count_documents(bson::doc! {})
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn an_append_while_nats_is_down_is_published_after_it_restarts() {
    let mut nats = NatsServer::start();
    let env = TestEnv::with_nats(TestEnv::new().await.mongodb_uri.clone(), nats.url()).await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let s = stream("customer");
    let first = store
        .append(request(&s, Expected::Version(0), vec![event(1)]))
        .await
        .unwrap();
    store
        .wait_for_position(&first.commit_id, Duration::from_secs(10))
        .await
        .unwrap();

    nats.stop();
    let outcome = store
        .append(request(&s, Expected::Version(1), vec![event(2), event(3)]))
        .await
        .unwrap();
    // Positions are assigned without NATS; publishing waits.
    let position = store
        .wait_for_position(&outcome.commit_id, Duration::from_secs(10))
        .await;
    assert_eq!(position, Some(2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = env
        .database
        .collection::<bson::Document>("outbox")
        .count_documents(bson::doc! {})
        .await
        .unwrap();
    assert!(
        pending >= 1,
        "the commit waits in the outbox while NATS is down"
    );

    nats.restart();
    let bus = env.bus().await;
    let got = read_subjects(&store, &bus, 3).await;
    assert_eq!(
        got.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(got[1].event_id, outcome.event_ids[0]);
    relay.stop().await;
}

#[tokio::test]
async fn a_commit_whose_outbox_entry_was_left_behind_by_a_crash_is_still_published() {
    // Simulates a writer that died after its commit but before the relay saw it: the relay
    // starts later and finds the entry on its first pass.
    let env = TestEnv::new().await;
    let store = env.store().await;
    let s = stream("job");
    store
        .append(request(&s, Expected::Version(0), vec![event(1), event(2)]))
        .await
        .unwrap();
    let relay = env.start_relay(&store).await;
    let bus = env.bus().await;
    let got = read_subjects(&store, &bus, 2).await;
    assert_eq!(
        got.iter().map(|e| e.position.unwrap()).collect::<Vec<_>>(),
        vec![1, 2]
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_second_relay_does_not_sequence_while_the_first_leads() {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let first = env.start_relay(&store).await;
    let second = env.start_relay(&store).await;
    let appends = (0..20).map(|i| {
        let store = store.clone();
        async move {
            let s = stream("thread");
            let o = store
                .append(request(&s, Expected::Version(0), vec![event(i)]))
                .await
                .unwrap();
            store
                .wait_for_position(&o.commit_id, Duration::from_secs(10))
                .await
                .unwrap()
        }
    });
    let mut positions: Vec<u64> = futures::future::join_all(appends).await;
    positions.sort();
    assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_relay_whose_hint_is_behind_the_log_finds_the_tail_before_sequencing() {
    // Simulates a relay that died after inserting a batch into the log but before saving its
    // hint of the next free position: its successor takes the hint on trust, collides with the
    // batch already there, and must place new events after it, not over it or past a gap.
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let (s, _, _) = three_events_in_two_commits(&store).await;
    relay.stop().await;
    let hints = env
        .database
        .collection::<bson::Document>(events::relay::RELAY_COLLECTION);
    hints
        .update_one(
            bson::doc! {"_id": events::relay::SEQUENCER_ID},
            bson::doc! {"$set": {"next_position": 2_i64}},
        )
        .await
        .unwrap();

    let relay = env.start_relay(&store).await;
    let third = store
        .append(request(&s, Expected::Version(3), vec![event(4)]))
        .await
        .unwrap();
    let position = store
        .wait_for_position(&third.commit_id, Duration::from_secs(10))
        .await;
    assert_eq!(
        position,
        Some(4),
        "the new event follows the log's real tail"
    );
    let bus = env.bus().await;
    let got = read_subjects(&store, &bus, 4).await;
    assert_eq!(
        got.iter().map(|e| e.position.unwrap()).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(got[3].event_id, third.event_ids[0]);
    relay.stop().await;
    let hint = hints
        .find_one(bson::doc! {"_id": events::relay::SEQUENCER_ID})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hint.get_i64("next_position").unwrap(), 5);
}
