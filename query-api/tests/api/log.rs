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
    let event = NewEvent::new(event_type, 1, Utc::now(), payload);
    append_to_new_stream(store, aggregate_type, vec![event]).await;
}

/// Appends `events` as one commit that starts a new stream of `aggregate_type`.
async fn append_to_new_stream(store: &EventStore, aggregate_type: &str, events: Vec<NewEvent>) {
    append_traced(store, aggregate_type, events, None).await;
}

/// [`append_to_new_stream`] by a command with the trace context `traceparent`.
async fn append_traced(
    store: &EventStore,
    aggregate_type: &str,
    events: Vec<NewEvent>,
    traceparent: Option<&str>,
) {
    let id = uuid::Uuid::now_v7().to_string();
    let metadata = EventMetadata {
        correlation_id: "test".into(),
        causation_id: None,
        actor: "system:test".into(),
        traceparent: traceparent.map(str::to_owned),
    };
    let request = AppendRequest {
        stream: StreamId::new(aggregate_type, id).unwrap(),
        expected: Expected::Version(0),
        events,
        metadata,
        idempotency: None,
        snapshot: None,
    };
    store.append(request).await.unwrap();
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
    wait_sequenced(&store, count as u64).await;
    relay.stop().await;
    store
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

/// Appends one commit of `count` events to a new customer stream.
async fn append_commit(store: &EventStore, count: usize) {
    let events = (0..count)
        .map(|n| NewEvent::new("CustomerRegistered", 1, Utc::now(), json!({"n": n})))
        .collect();
    append_to_new_stream(store, "customer", events).await;
}

async fn wait_sequenced(store: &EventStore, position: u64) {
    for _ in 0..2_000 {
        if store.event_at(position).await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the relay did not sequence position {position}");
}

#[tokio::test]
async fn paging_through_thousands_of_events_while_more_arrive_skips_and_repeats_nothing() {
    let h = Harness::new().await;
    let store = h.env.store().await;
    let relay = h.env.start_relay(&store).await;
    // 3,000 events in commits of 100; more arrive while the pages are read.
    for _ in 0..30 {
        append_commit(&store, 100).await;
    }
    wait_sequenced(&store, 3_000).await;
    let app = h.start().await;
    let analyst = h.user(Role::Analyst);
    let mut after = "0".to_owned();
    let mut seen: Vec<u64> = Vec::new();
    let mut arrived = 0u64;
    for page in 0.. {
        assert!(page < 100, "never reached the tail");
        if page % 10 == 5 {
            // Arrivals behind the cursor's future: the pages must still end at the new tail.
            append_commit(&store, 50).await;
            arrived += 50;
            wait_sequenced(&store, 3_000 + arrived).await;
        }
        let reply = h
            .get(
                &app,
                &format!("/v1/events?limit=100&after_position={after}"),
                Some(&analyst),
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        seen.extend(
            reply.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_u64().unwrap()),
        );
        after = reply.body["next_cursor"].as_str().unwrap().to_owned();
        if !reply.body["has_more"].as_bool().unwrap() {
            break;
        }
    }
    relay.stop().await;
    let total = 3_000 + arrived;
    assert!(arrived >= 100, "events arrived while paging");
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<u64>>(),
        "every position once, in order"
    );
    assert_eq!(after, total.to_string());
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

/// Events read into their documented schema with unknown fields refused.
#[tokio::test]
async fn events_fit_the_documented_event_schema() {
    let h = Harness::new().await;
    log_of(&h, 3).await;
    let app = h.start().await;
    let reply = h.get(&app, "/v1/events", Some(&h.user(Role::Admin))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = reply.body["data"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{}", reply.body);
    for event in events {
        let read = serde_json::from_value::<query_api::routes::events::EventItem>(event.clone());
        assert!(read.is_ok(), "{:?}: {event}", read.err());
    }
}

/// An event recorded by a traced command carries its `traceparent`, and the documented event
/// schema names it.
#[tokio::test]
async fn an_event_with_a_traceparent_fits_the_documented_event_schema() {
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let h = Harness::new().await;
    let store = h.env.store().await;
    let relay = h.env.start_relay(&store).await;
    let event = NewEvent::new("CustomerRegistered", 1, Utc::now(), json!({"n": 1}));
    append_traced(&store, "customer", vec![event], Some(TRACEPARENT)).await;
    wait_sequenced(&store, 1).await;
    relay.stop().await;
    let app = h.start().await;
    let reply = h.get(&app, "/v1/events", Some(&h.user(Role::Admin))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let event = &reply.body["data"][0];
    assert_eq!(event["traceparent"], TRACEPARENT, "{}", reply.body);
    let read = serde_json::from_value::<query_api::routes::events::EventItem>(event.clone());
    assert!(read.is_ok(), "{:?}: {event}", read.err());
    let document = h.get(&app, "/openapi.json", None).await.body;
    let documented = &document["components"]["schemas"]["EventItem"]["properties"];
    assert_eq!(documented["traceparent"]["type"], json!(["string", "null"]));
}
