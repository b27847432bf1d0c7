//! The served document and the router agree: every documented operation is routed, no
//! method of a documented path is routed undocumented, and every response body is described.

use std::collections::BTreeSet;

use domain::enums::Role;

use crate::support::Harness;

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let document = h.get(&app, "/openapi.json", None).await.body;
    let documented = tests::openapi::operations(&document);
    assert!(documented.contains(&("get".into(), "/v1/calendar/week/{date}".into())));
    let paths: BTreeSet<String> = documented.iter().map(|(_, path)| path.clone()).collect();
    let mut routed = BTreeSet::new();
    for path in &paths {
        for method in tests::openapi::METHODS {
            let url = format!("{}{}", app.base, tests::openapi::concrete_path(path));
            let reply = h
                .http
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&admin.token)
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            // A server-sent event stream never ends: its answer is read no further.
            let streams = reply
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let body: serde_json::Value = if streams {
                serde_json::Value::Null
            } else {
                reply.json().await.unwrap_or_default()
            };
            let unrouted = status == 405
                || body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such resource"));
            if !unrouted {
                routed.insert((method.to_owned(), path.clone()));
            }
        }
    }
    assert_eq!(routed, documented);
    assert_eq!(
        tests::openapi::bare_objects(&document),
        Vec::<String>::new()
    );
}

fn read_as<T: serde::de::DeserializeOwned>(value: &serde_json::Value, what: &str) {
    if let Err(error) = serde_json::from_value::<T>(value.clone()) {
        panic!("{what} does not fit its documented schema: {error}\n{value}");
    }
}

fn read_items<T: serde::de::DeserializeOwned>(page: &serde_json::Value, what: &str) {
    let items = page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {page}"));
    assert!(!items.is_empty(), "{what} is empty: {page}");
    for item in items {
        read_as::<T>(item, what);
    }
}

/// The documented views name exactly the fields the read models serialize: real answers
/// after a scripted history read into them with unknown fields refused.
#[tokio::test]
async fn answers_fit_the_documented_view_schemas() {
    use query_api::routes::schemas::*;

    let h = Harness::new().await;
    let mut projector = crate::projection::Projector::new();
    let w = crate::views::scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let get = |path: String, user: &crate::support::User| {
        let (h, app, user) = (&h, &app, user.clone());
        async move {
            let reply = h.get(app, &path, Some(&user)).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.body);
            reply.body
        }
    };
    let dashboard = get(
        "/v1/dashboard?from=2025-03-01&to=2025-03-31".into(),
        &w.admin,
    )
    .await;
    read_as::<DashboardView>(&dashboard["data"], "dashboard");
    let week = get("/v1/calendar/week/2025-03-06".into(), &w.admin).await;
    read_as::<CalendarWeekView>(&week["data"], "calendar week");
    read_items::<CustomerItem>(&get("/v1/customers".into(), &w.admin).await, "customers");
    let customer = get(format!("/v1/customers/{}", w.john), &w.admin).await;
    read_as::<CustomerItem>(&customer["data"], "customer");
    read_items::<JobItem>(&get("/v1/jobs".into(), &w.admin).await, "jobs");
    let job = get(format!("/v1/jobs/{}", w.moved), &w.admin).await;
    read_as::<JobItem>(&job["data"], "job");
    let unread = get("/v1/me/unread-count".into(), &w.dispatcher).await;
    read_as::<UnreadCountView>(&unread["data"], "unread count");
    read_items::<ThreadItem>(
        &get("/v1/me/threads".into(), &w.dispatcher).await,
        "threads",
    );
    let messages = format!("/v1/threads/{}/messages", w.office_thread);
    read_items::<MessageItem>(&get(messages, &w.dispatcher).await, "messages");
}
