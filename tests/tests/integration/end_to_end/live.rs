//! Server-sent events from the query API: pushed on change, resumable with `Last-Event-ID`
//! without a missed or repeated update, the caller's own counts only, limited per user.

use std::time::Duration;

use domain::enums::Role;
use reqwest::StatusCode;
use serde_json::json;
use tests::sse::SseStream;

use super::system::System;

/// A pushed update arrives well within this on a healthy pipeline.
const PUSHED_WITHIN: Duration = Duration::from_secs(5);
/// How long a stream is watched to show that nothing comes.
const QUIET_FOR: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_are_pushed_on_change_and_resume_without_missing_or_repeating() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let dana = system
        .member(&admin, "Dana Dispatch", Role::Dispatcher)
        .await;
    let sam = system.member(&admin, "Sam Sales", Role::Sales).await;
    let (_, query) = system.base_urls();
    let url = format!("{query}/v1/live/me/unread-count");
    let http = reqwest::Client::new();

    let mut stream = SseStream::open(&http, &url, &dana.token, None)
        .await
        .expect("a stream");
    let first = stream
        .next_within(PUSHED_WITHIN)
        .await
        .expect("the current counts at once");
    assert_eq!(first.event, "update");
    assert_eq!(first.data["data"]["unread"], 0, "{first:?}");
    assert_eq!(first.data["data"]["user_id"], json!(dana.id));

    let thread = system
        .post(
            "/v1/threads",
            &sam.token,
            json!({"kind": "direct", "participants": [sam.id, dana.id]}),
        )
        .await;
    let message = system
        .post(
            &format!("/v1/threads/{}/messages", thread.id),
            &sam.token,
            json!({"body": "Truck 2 is ready"}),
        )
        .await;
    let pushed = next_with(&mut stream, |m| m.data["data"]["unread"] == 1).await;
    let pushed_position = pushed.data["position"].as_u64().expect("position");
    assert!(pushed_position >= message.position, "{pushed:?}");
    let seen_id = pushed.id.clone().expect("an id");
    assert!(
        seen_id.starts_with(&format!("{pushed_position}.")),
        "{seen_id}"
    );
    drop(stream);

    // Resumed at the last id seen: nothing is repeated; the next change comes.
    let mut resumed = SseStream::open(&http, &url, &dana.token, Some(&seen_id))
        .await
        .expect("a resumed stream");
    assert_eq!(
        resumed.next_within(QUIET_FOR).await,
        None,
        "an update was repeated"
    );
    system
        .post(
            &format!("/v1/threads/{}/messages", thread.id),
            &sam.token,
            json!({"body": "And truck 3"}),
        )
        .await;
    let next = next_with(&mut resumed, |m| m.data["data"]["unread"] == 2).await;
    assert_ne!(next.id.as_deref(), Some(seen_id.as_str()));
    drop(resumed);

    // Resumed at an older id: the update missed meanwhile comes at once.
    let mut behind = SseStream::open(&http, &url, &dana.token, first.id.as_deref())
        .await
        .expect("a stream behind");
    let caught_up = behind
        .next_within(PUSHED_WITHIN)
        .await
        .expect("the missed update");
    assert_eq!(caught_up.data["data"]["unread"], 2, "{caught_up:?}");

    // Sam's stream carries Sam's counts, never Dana's.
    let mut own = SseStream::open(&http, &url, &sam.token, None)
        .await
        .expect("sam's stream");
    let sams = own.next_within(PUSHED_WITHIN).await.expect("sam's counts");
    assert_eq!(sams.data["data"]["user_id"], json!(sam.id));
    assert_eq!(
        sams.data["data"]["unread"], 0,
        "own messages are never unread"
    );
    system.stop().await;
}

/// The first message satisfying `wanted` within [`PUSHED_WITHIN`].
async fn next_with(
    stream: &mut SseStream,
    wanted: impl Fn(&tests::sse::SseMessage) -> bool,
) -> tests::sse::SseMessage {
    let deadline = tokio::time::Instant::now() + PUSHED_WITHIN;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = stream
            .next_within(left)
            .await
            .expect("the update is pushed in time");
        if wanted(&message) {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_authorized_as_reads_and_limited_per_user() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let crew = system.member(&admin, "Cris Crew", Role::Crew).await;
    let (_, query) = system.base_urls();
    let http = reqwest::Client::new();

    let refused = SseStream::open(
        &http,
        &format!("{query}/v1/live/dashboard"),
        &crew.token,
        None,
    )
    .await
    .err()
    .expect("crew may not follow the dashboard");
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    let unauthenticated = http
        .get(format!("{query}/v1/live/me/unread-count"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    let bad = SseStream::open(
        &http,
        &format!("{query}/v1/live/dashboard?from=2030-01-01&to=2031-06-01"),
        &admin.token,
        None,
    )
    .await
    .err()
    .expect("a range past 366 days");
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.1);

    // The default limit is 8 streams per user; the ninth is refused with Retry-After.
    let url = format!("{query}/v1/live/calendar/week/2030-03-13");
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut stream = SseStream::open(&http, &url, &admin.token, None)
            .await
            .expect("a stream within the limit");
        let week = stream.next_within(PUSHED_WITHIN).await.expect("the week");
        assert_eq!(week.data["data"]["week_start"], "2030-03-11", "{week:?}");
        open.push(stream);
    }
    let ninth = http
        .get(&url)
        .bearer_auth(&admin.token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(ninth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(ninth.headers().contains_key("retry-after"));
    let problem: serde_json::Value = ninth.json().await.expect("a problem document");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("per user")),
        "{problem}"
    );

    // A closed stream gives its place back.
    open.pop();
    let deadline = tokio::time::Instant::now() + PUSHED_WITHIN;
    loop {
        match SseStream::open(&http, &url, &admin.token, None).await {
            Ok(_) => break,
            Err((status, body)) => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the place was not given back"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    system.stop().await;
}
