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

/// The component a `$ref` names in `document`.
fn component<'d>(
    document: &'d serde_json::Value,
    reference: &serde_json::Value,
) -> &'d serde_json::Value {
    let name = reference
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a component reference: {reference}"));
    &document["components"]["schemas"][name]
}

/// Each live stream documents one message as an event-stream parser reads it (`event`, `id`,
/// and `data` holding the JSON body of the matching `GET`), and its first message fits that.
#[tokio::test]
async fn live_messages_fit_their_documented_schema() {
    use query_api::routes::schemas::*;

    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let document = h.get(&app, "/openapi.json", None).await.body;
    let streams = [
        ("/v1/live/dashboard", "/v1/dashboard", "/v1/live/dashboard"),
        (
            "/v1/live/calendar/week/{date}",
            "/v1/calendar/week/{date}",
            "/v1/live/calendar/week/2025-03-06",
        ),
        (
            "/v1/live/me/unread-count",
            "/v1/me/unread-count",
            "/v1/live/me/unread-count",
        ),
    ];
    for (live, read, url) in streams {
        let ok = |path: &str, media: &str| {
            document["paths"][path]["get"]["responses"]["200"]["content"][media]["schema"].clone()
        };
        let message = component(&document, &ok(live, "text/event-stream")["$ref"]);
        assert_eq!(message["type"], "object", "{live}: {message}");
        assert_eq!(
            message["required"],
            serde_json::json!(["event", "id", "data"]),
            "{live}"
        );
        let properties = &message["properties"];
        assert_eq!(properties["event"]["enum"], serde_json::json!(["update"]));
        assert_eq!(properties["id"]["pattern"], "^[0-9]+\\.[0-9a-f]{16}$");
        let data = &properties["data"];
        assert_eq!(data["type"], "string", "{live}");
        assert_eq!(data["contentMediaType"], "application/json", "{live}");
        // `data` is the body of the matching GET: the same envelope around the same view
        // (there inlined, here referenced).
        let envelope = component(&document, &ok(read, "application/json")["$ref"]);
        let body = &data["contentSchema"];
        assert_eq!(body["required"], envelope["required"], "{live}");
        assert_eq!(
            body["properties"]["position"], envelope["properties"]["position"],
            "{live}"
        );
        assert_eq!(
            component(&document, &body["properties"]["data"]["$ref"]),
            &envelope["properties"]["data"],
            "{live}"
        );

        let mut stream =
            tests::sse::SseStream::open(&h.http, &format!("{}{url}", app.base), &admin.token, None)
                .await
                .unwrap_or_else(|(status, body)| panic!("{url}: {status} {body}"));
        let first = stream
            .next_within(std::time::Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{url}: no first message"));
        assert_eq!(first.event, "update", "{url}");
        let id = first.id.clone().unwrap_or_default();
        let (position, fingerprint) = id.split_once('.').unwrap_or_default();
        assert!(
            !position.is_empty() && position.bytes().all(|b| b.is_ascii_digit()),
            "{url}: {id}"
        );
        assert!(
            fingerprint.len() == 16
                && fingerprint
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{url}: {id}"
        );
        assert_eq!(
            first.data.as_object().map(|o| o.len()),
            Some(2),
            "{url}: {first:?}"
        );
        assert!(first.data["position"].is_u64(), "{url}: {first:?}");
        match read {
            "/v1/dashboard" => read_as::<DashboardView>(&first.data["data"], url),
            "/v1/calendar/week/{date}" => read_as::<CalendarWeekView>(&first.data["data"], url),
            _ => read_as::<UnreadCountView>(&first.data["data"], url),
        }
    }
}

/// The as-of views document their `position` from 1, and refuse the one below it by name.
#[tokio::test]
async fn as_of_positions_are_documented_from_one() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let document = h.get(&app, "/openapi.json", None).await.body;
    for path in ["/v1/dashboard/as-of", "/v1/calendar/as-of"] {
        let position = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "position")
            .unwrap_or_else(|| panic!("{path}: no position"))
            .clone();
        assert_eq!(position["schema"]["minimum"], 1, "{path}: {position}");
        let reply = h
            .get(&app, &format!("{path}?position=0"), Some(&admin))
            .await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.bad_fields(), vec!["position"], "{path}");
    }
}
