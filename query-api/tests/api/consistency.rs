//! Read-your-writes: `min_position` waits for the read models, or answers 503 in time.

use std::time::{Duration, Instant};

use domain::enums::Role;
use platform::consistency::{MIN_POSITION_HEADER, MIN_POSITION_PARAM, POSITION_HEADER};

use crate::support::Harness;

#[tokio::test]
async fn every_answer_carries_the_checkpoint_in_header_and_body() {
    let h = Harness::new().await;
    h.write_checkpoints(7).await;
    let app = h.start().await;
    let analyst = h.user(Role::Analyst);
    let reply = h.get(&app, "/v1/checkpoint", Some(&analyst)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.position(), 7);
    assert_eq!(reply.header(POSITION_HEADER).as_deref(), Some("7"));
    assert_eq!(reply.body["models"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn min_position_waits_for_the_notice_then_answers() {
    let h = Harness::new().await;
    h.write_checkpoints(3).await;
    // The command answered with 9: the log holds it, the read models follow.
    h.log_reaches(9).await;
    let app = h.start().await;
    let crew = h.user(Role::Crew);
    let waiting = {
        let started = Instant::now();
        let path = format!("/v1/checkpoint?{MIN_POSITION_PARAM}=9");
        let request = h.get(&app, &path, Some(&crew));
        let publish = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            h.write_checkpoints(9).await;
            h.notify(9, &[], false).await;
        };
        let (reply, ()) = tokio::join!(request, publish);
        (reply, started.elapsed())
    };
    let (reply, took) = waiting;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.position(), 9);
    assert!(
        took >= Duration::from_millis(250),
        "answered before the notice: {took:?}"
    );
}

#[tokio::test]
async fn the_min_position_header_works_like_the_parameter() {
    let h = Harness::new().await;
    h.write_checkpoints(5).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let reply = h
        .get_with(
            &app,
            "/v1/checkpoint",
            Some(&admin),
            &[(MIN_POSITION_HEADER, "5")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let reply = h
        .get_with(
            &app,
            "/v1/checkpoint",
            Some(&admin),
            &[(MIN_POSITION_HEADER, "five")],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.bad_fields(), vec![MIN_POSITION_HEADER]);
}

#[tokio::test]
async fn an_unreached_min_position_is_503_not_yet_consistent_with_retry_after() {
    let h = Harness::new().await;
    h.write_checkpoints(2).await;
    h.log_reaches(50).await;
    let app = h.start_with(&["--consistency-wait-ms", "300"]).await;
    let sales = h.user(Role::Sales);
    let started = Instant::now();
    let reply = h
        .get(
            &app,
            &format!("/v1/checkpoint?{MIN_POSITION_PARAM}=50"),
            Some(&sales),
        )
        .await;
    assert!(started.elapsed() >= Duration::from_millis(280));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        reply.body["type"],
        "https://simplepro.dev/problems/not-yet-consistent"
    );
    assert_eq!(reply.body["required_position"], 50);
    assert_eq!(reply.body["current_position"], 2);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/problem+json")
    );
}

#[tokio::test]
async fn a_min_position_beyond_the_log_is_400_at_once() {
    let h = Harness::new().await;
    h.write_checkpoints(2).await;
    let app = h.start_with(&["--consistency-wait-ms", "5000"]).await;
    let sales = h.user(Role::Sales);
    for (path, headers) in [
        (
            format!("/v1/checkpoint?{MIN_POSITION_PARAM}=9223372036854775806"),
            vec![],
        ),
        (
            "/v1/checkpoint".to_owned(),
            vec![(MIN_POSITION_HEADER, "3")],
        ),
    ] {
        let started = Instant::now();
        let reply = h.get_with(&app, &path, Some(&sales), &headers).await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
        assert_eq!(reply.bad_fields(), vec![MIN_POSITION_PARAM]);
        // The tail gets a second to catch up with positions just answered (TAIL_CATCH_UP),
        // not the 5 s of the consistency wait.
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_lost_notice_is_made_up_by_the_checkpoint_poll() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    // No notice is published: only the once-a-second poll can see this.
    h.write_checkpoints(4).await;
    let reply = h
        .get(
            &app,
            &format!("/v1/checkpoint?{MIN_POSITION_PARAM}=4"),
            Some(&admin),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.position(), 4);
}

#[tokio::test]
async fn the_position_is_the_slowest_models_checkpoint() {
    let h = Harness::new().await;
    h.write_checkpoints(10).await;
    h.env
        .read_models
        .collection::<bson::Document>("rm_inbox_g1_meta")
        .replace_one(
            bson::doc! {"_id": "checkpoint"},
            bson::doc! {"_id": "checkpoint", "position": 6_i64},
        )
        .await
        .unwrap();
    let app = h.start().await;
    let reply = h
        .get(&app, "/v1/checkpoint", Some(&h.user(Role::Dispatcher)))
        .await;
    assert_eq!(reply.position(), 6);
}
