//! Rate limits on the read side: per user once the token is verified, per client address
//! before anything else; past either a 429 problem with `Retry-After`.

use domain::enums::Role;

use crate::support::Harness;

#[tokio::test]
async fn a_user_or_an_address_past_its_rate_gets_429_with_retry_after() {
    let h = Harness::new().await;
    let app = h
        .start_with(&[
            "--rate-per-user",
            "1",
            "--rate-burst-per-user",
            "2",
            "--rate-per-address",
            "1",
            "--rate-burst-per-address",
            "6",
        ])
        .await;
    let dispatcher = h.user(Role::Dispatcher);
    for _ in 0..2 {
        let fine = h.get(&app, "/v1/me/unread-count", Some(&dispatcher)).await;
        assert_eq!(fine.status, 200, "{}", fine.body);
    }
    let limited = h.get(&app, "/v1/me/unread-count", Some(&dispatcher)).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(limited.headers["content-type"], "application/problem+json");
    assert_eq!(limited.body["status"], 429);
    assert!(limited.body["retry_after_seconds"].as_u64().is_some());

    let other = h.user(Role::Dispatcher);
    let fine = h.get(&app, "/v1/me/unread-count", Some(&other)).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    // Four requests so far; the address's burst of six runs out, with or without a token.
    let statuses: Vec<u16> = anonymous_statuses(&h, &app).await;
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

async fn anonymous_statuses(h: &Harness, app: &crate::support::Instance) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(h.get(app, "/v1/me/unread-count", None).await.status);
    }
    statuses
}
