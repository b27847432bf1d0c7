//! Keyset pages stay exact while data changes; cursors are bound to their list and user.

use std::collections::HashSet;

use chrono::{Duration as TimeDelta, Utc};
use domain::enums::Role;
use domain::ids::{CustomerId, ThreadId};
use platform::consistency::MIN_POSITION_PARAM;
use read_models::Model;

use crate::projection::Projector;
use crate::script::*;
use crate::support::{Harness, Reply};
use crate::views::scripted_world;

fn ids(reply: &Reply, field: &str) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {}", reply.body))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paging_through_six_hundred_customers_while_others_arrive_skips_and_repeats_nothing() {
    let h = Harness::new().await;
    let mut projector = Projector::for_models(&[Model::Lists]);
    let base = Utc::now() - TimeDelta::days(30);
    let first_names = ["Ann", "Ben", "Cid", "Dee", "Eve"];
    let mut existing = HashSet::new();
    let mut script = Vec::new();
    for i in 0..600 {
        let id: CustomerId = new_id();
        existing.insert(id.to_string());
        let when = base + TimeDelta::minutes(10 * i);
        script.push(customer_registered(
            id,
            first_names[i as usize % 5],
            "Page",
            "google",
            when,
        ));
    }
    let mut position = projector.flush(&h, script).await;
    let app = h.start().await;
    let sales = h.user(Role::Sales);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 40, "too many pages");
        let path = match &cursor {
            None => format!("/v1/customers?limit=50&{MIN_POSITION_PARAM}={position}"),
            Some(c) => format!("/v1/customers?limit=50&cursor={c}&{MIN_POSITION_PARAM}={position}"),
        };
        let reply = h.get(&app, &path, Some(&sales)).await;
        assert_eq!(reply.status, 200, "page {page}: {}", reply.body);
        seen.extend(ids(&reply, "customer_id"));
        if page == 0 {
            assert_eq!(reply.body["total"], 600);
        }
        if !reply.body["has_more"].as_bool().unwrap() {
            break;
        }
        cursor = Some(reply.body["next_cursor"].as_str().unwrap().to_owned());
        // Newcomers land before, inside and after the part already read.
        let arrivals = (0..3)
            .map(|k| {
                let when = base + TimeDelta::minutes(10 * (page * 47 + k * 200) + 5);
                customer_registered(new_id(), "Zed", "Late", "website", when)
            })
            .chain(std::iter::once(customer_registered(
                new_id(),
                "Now",
                "Late",
                "website",
                Utc::now(),
            )))
            .collect();
        position = projector.flush(&h, arrivals).await;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an item was served twice");
    let missing: Vec<_> = existing.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} customers were skipped",
        missing.len()
    );
}

#[tokio::test]
async fn forged_truncated_and_foreign_cursors_are_refused() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let second_thread: ThreadId = new_id();
    projector
        .flush(
            &h,
            vec![
                group_started(
                    second_thread,
                    "Sales",
                    &[w.sales.id, w.admin.id],
                    w.admin.id,
                    at("2025-03-09T08:00:00Z"),
                ),
                message_posted(
                    second_thread,
                    1,
                    w.admin.id,
                    "Hi",
                    at("2025-03-09T08:01:00Z"),
                ),
            ],
        )
        .await;
    let app = h.start().await;
    let position = projector.position;

    let page = h
        .get(
            &app,
            &format!("/v1/customers?limit=1&{MIN_POSITION_PARAM}={position}"),
            Some(&w.sales),
        )
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let ok = h
        .get(
            &app,
            &format!("/v1/customers?limit=1&cursor={cursor}"),
            Some(&w.sales),
        )
        .await;
    assert_eq!(ok.status, 200);

    let mut flipped = cursor.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let truncated = &cursor[..cursor.len() - 3];
    let long = "A".repeat(5_000);
    let bad = [
        format!("/v1/customers?limit=1&cursor={flipped}"),
        format!("/v1/customers?limit=1&cursor={truncated}"),
        format!("/v1/customers?limit=1&cursor={long}"),
        "/v1/customers?limit=1&cursor=%00%01".to_owned(),
        format!("/v1/customers?status=lead&limit=1&cursor={cursor}"),
        format!("/v1/jobs?limit=1&cursor={cursor}"),
        format!("/v1/me/threads?cursor={cursor}"),
    ];
    for path in &bad {
        let reply = h.get(&app, path, Some(&w.sales)).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.bad_fields(), vec!["cursor"], "{path}");
    }

    let mine = h.get(&app, "/v1/me/threads?limit=1", Some(&w.sales)).await;
    let thread_cursor = mine.body["next_cursor"].as_str().unwrap().to_owned();
    let next = h
        .get(
            &app,
            &format!("/v1/me/threads?limit=1&cursor={thread_cursor}"),
            Some(&w.sales),
        )
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(
        next.body["data"][0]["thread_id"],
        w.office_thread.to_string()
    );
    for user in [&w.admin, &w.dispatcher] {
        let stolen = h
            .get(
                &app,
                &format!("/v1/me/threads?limit=1&cursor={thread_cursor}"),
                Some(user),
            )
            .await;
        assert_eq!(stolen.status, 400, "another user's cursor: {}", stolen.body);
    }
    let other_filter = h
        .get(
            &app,
            &format!("/v1/me/threads?unread_only=true&limit=1&cursor={thread_cursor}"),
            Some(&w.sales),
        )
        .await;
    assert_eq!(other_filter.status, 400);

    let messages = format!("/v1/threads/{}/messages?limit=1", w.office_thread);
    let page = h.get(&app, &messages, Some(&w.dispatcher)).await;
    let message_cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let elsewhere = format!("/v1/threads/{second_thread}/messages?limit=1&cursor={message_cursor}");
    assert_eq!(h.get(&app, &elsewhere, Some(&w.sales)).await.status, 400);
}
