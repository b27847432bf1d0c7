//! `GET /v1/events`: the raw log in position order, filters, scan budget, access.

use std::time::Duration;

use chrono::Utc;
use domain::enums::Role;
use events::{AppendRequest, EventMetadata, EventStore, Expected, NewEvent, StreamId};
use serde_json::json;

use crate::support::Harness;

async fn append(
    store: &EventStore,
    aggregate_type: &str,
    event_type: &str,
    payload: serde_json::Value,
) {
    let id = uuid::Uuid::now_v7().to_string();
    store
        .append(AppendRequest {
            stream: StreamId::new(aggregate_type, id).unwrap(),
            expected: Expected::Any,
            events: vec![NewEvent::new(event_type, 1, Utc::now(), payload)],
            metadata: EventMetadata {
                correlation_id: "test".into(),
                causation_id: None,
                actor: "system:test".into(),
            },
            idempotency: None,
            snapshot: None,
        })
        .await
        .unwrap();
}

/// Appends `count` events alternating customer and job types and waits until sequenced.
async fn log_of(h: &Harness, count: usize) -> EventStore {
    let store = h.env.store().await;
    let relay = h.env.start_relay(&store).await;
    for i in 0..count {
        if i % 3 == 2 {
            append(&store, "job", "JobScheduled", json!({"n": i})).await;
        } else {
            append(&store, "customer", "CustomerRegistered", json!({"n": i})).await;
        }
    }
    for _ in 0..200 {
        if store.event_at(count as u64).await.unwrap().is_some() {
            relay.stop().await;
            return store;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the relay did not sequence {count} events");
}

#[tokio::test]
async fn the_log_pages_in_position_order_to_the_tail() {
    let h = Harness::new().await;
    log_of(&h, 10).await;
    let app = h.start().await;
    let analyst = h.user(Role::Analyst);
    let mut after = "0".to_owned();
    let mut seen = Vec::new();
    loop {
        let reply = h
            .get(
                &app,
                &format!("/v1/events?limit=3&after_position={after}"),
                Some(&analyst),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        for event in reply.body["data"].as_array().unwrap() {
            seen.push(event["position"].as_u64().unwrap());
        }
        after = reply.body["next_cursor"].as_str().unwrap().to_owned();
        if !reply.body["has_more"].as_bool().unwrap() {
            break;
        }
        assert!(seen.len() <= 12, "never reached the tail");
    }
    assert_eq!(seen, (1..=10).collect::<Vec<u64>>());
    assert_eq!(after, "10");
}

#[tokio::test]
async fn type_filters_return_only_matching_events_with_a_cursor_past_what_was_examined() {
    let h = Harness::new().await;
    log_of(&h, 9).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let all = h.get(&app, "/v1/events?limit=100", Some(&admin)).await;
    let scheduled: Vec<u64> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "JobScheduled")
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(scheduled.len(), 3);
    let reply = h
        .get(&app, "/v1/events?type=JobScheduled&limit=2", Some(&admin))
        .await;
    assert_eq!(reply.status, 200);
    let positions: Vec<u64> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "JobScheduled");
            e["position"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(positions, scheduled[..2]);
    assert_eq!(reply.body["next_cursor"], scheduled[1].to_string());
    assert_eq!(reply.body["has_more"], true);
    let reply = h
        .get(
            &app,
            &format!(
                "/v1/events?aggregate_type=job&after_position={}",
                scheduled[1]
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(reply.body["has_more"], false);
    assert_eq!(reply.body["next_cursor"], "9");
    let reply = h
        .get(&app, "/v1/events?aggregate_type=thread", Some(&admin))
        .await;
    assert_eq!(reply.body["data"], json!([]));
    assert_eq!(reply.body["has_more"], false);
}

#[tokio::test]
async fn the_log_is_for_admins_and_analysts_only() {
    let h = Harness::new().await;
    let app = h.start().await;
    for role in [Role::Dispatcher, Role::Sales, Role::Crew] {
        let reply = h.get(&app, "/v1/events", Some(&h.user(role))).await;
        assert_eq!(reply.status, 403, "{role}");
    }
    assert_eq!(h.get(&app, "/v1/events", None).await.status, 401);
    let reply = h.get(&app, "/v1/events", Some(&h.user(Role::Admin))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["data"], json!([]));
    assert_eq!(reply.body["next_cursor"], "0");
}

#[tokio::test]
async fn bad_log_parameters_are_all_named() {
    let h = Harness::new().await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let reply = h
        .get(
            &app,
            "/v1/events?after_position=-1&limit=0&type=Nope&aggregate_type=ship&color=red",
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 400);
    let mut fields = reply.bad_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["after_position", "aggregate_type", "color", "limit", "type"]
    );
    let reply = h
        .get(
            &app,
            "/v1/events?after_position=18446744073709551615",
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 400);
}
