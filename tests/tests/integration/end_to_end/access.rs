//! What a token is worth once its user changed: deactivation and role changes apply on the
//! user's next request to either API, and the event log withholds the text of messages from
//! readers outside their thread.

use domain::enums::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::system::System;
use tests::bodies;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_user_is_refused_and_a_new_role_applies_on_the_next_request() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let sales = system.member(&admin, "Sid Sales", Role::Sales).await;
    let dispatcher = system
        .member(&admin, "Dot Dispatch", Role::Dispatcher)
        .await;
    let customer = |n: u32| {
        bodies::customer(
            "Jo",
            &format!("Tester{n}"),
            &format!("jo.tester{n}@example.com"),
            "+1 555 010 0101",
        )
    };

    // Before: the sales token creates customers and reads its inbox.
    let created = system
        .try_post("/v1/customers", &sales.token, customer(1))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let inbox = system.read("/v1/me/threads", &sales.token, 0).await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.body);

    // A role change applies at once: sales → crew may no longer create customers.
    let changed = system
        .try_post(
            &format!("/v1/users/{}/role", sales.id),
            &admin.token,
            json!({"role": "crew"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let refused = system
        .try_post("/v1/customers", &sales.token, customer(2))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let listed = system.read("/v1/customers", &sales.token, 0).await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{}", listed.body);

    // Deactivation: the unexpired token is refused by both APIs on the next request.
    let deactivated = system
        .try_post(
            &format!("/v1/users/{}/deactivate", dispatcher.id),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::OK, "{}", deactivated.body);
    let command = system
        .try_post("/v1/customers", &dispatcher.token, customer(3))
        .await;
    assert_eq!(command.status, StatusCode::UNAUTHORIZED, "{}", command.body);
    assert!(
        command.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deactivated")),
        "{}",
        command.body
    );
    let read = system.read("/v1/me/threads", &dispatcher.token, 0).await;
    assert_eq!(read.status, StatusCode::UNAUTHORIZED, "{}", read.body);
    // Others are unaffected.
    let still = system.read("/v1/me/threads", &admin.token, 0).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.body);

    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_withholds_message_text_from_readers_outside_the_thread() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let sales = system.member(&admin, "Sue Sales", Role::Sales).await;
    let dispatcher = system
        .member(&admin, "Don Dispatch", Role::Dispatcher)
        .await;
    let analyst = system.member(&admin, "Ann Analyst", Role::Analyst).await;
    let thread = system
        .post(
            "/v1/threads",
            &sales.token,
            json!({"kind": "direct", "participants": [sales.id, dispatcher.id]}),
        )
        .await;
    const SECRET: &str = "the side door code is 4411";
    let message = system
        .post(
            &format!("/v1/threads/{}/messages", thread.id),
            &sales.token,
            json!({"body": SECRET}),
        )
        .await;
    let path = "/v1/events?type=MessagePosted&limit=100";

    let seen = system.get(path, &analyst.token, message.position).await;
    let posted = seen["data"].as_array().expect("a page of events");
    assert_eq!(posted.len(), 1, "{seen}");
    assert_eq!(posted[0]["payload"]["body"], "[redacted]", "{seen}");
    assert_eq!(posted[0]["payload"]["body_redacted"], true, "{seen}");
    assert_eq!(posted[0]["payload"]["seq"], 1, "{seen}");
    assert!(!seen.to_string().contains(SECRET), "{seen}");

    // Admins see the text only when they ask for it; analysts may not ask.
    let plain = system.get(path, &admin.token, message.position).await;
    assert_eq!(plain["data"][0]["payload"]["body"], "[redacted]", "{plain}");
    let asked = format!("{path}&include_message_bodies=true");
    let full = system.get(&asked, &admin.token, message.position).await;
    assert_eq!(full["data"][0]["payload"]["body"], SECRET, "{full}");
    let refused = system.read(&asked, &analyst.token, message.position).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.to_string().contains("include_message_bodies"),
        "{}",
        refused.body
    );

    system.stop().await;
}
