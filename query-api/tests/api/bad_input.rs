//! Every malformed request is a 400 problem naming each bad parameter; none crashes.

use chrono::NaiveDate;
use domain::enums::Role;
use platform::consistency::MIN_POSITION_PARAM;
use read_models::query::{check_dashboard_range, QueryError};

use crate::support::Harness;

#[tokio::test]
async fn each_bad_parameter_is_named_in_a_400_problem() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let admin = h.user(Role::Admin);
    let cases: &[(&str, &[&str])] = &[
        ("/v1/customers?limit=0", &["limit"]),
        ("/v1/customers?limit=-5", &["limit"]),
        ("/v1/customers?limit=101", &["limit"]),
        ("/v1/customers?limit=ten", &["limit"]),
        ("/v1/customers?limit=", &["limit"]),
        ("/v1/customers?status=vip&source=tv", &["status", "source"]),
        ("/v1/customers?status=%24ne", &["status"]),
        ("/v1/customers?search[$ne]=x", &["search[$ne]"]),
        ("/v1/customers?sort=name", &["sort"]),
        ("/v1/customers?limit=5&limit=6", &["limit"]),
        ("/v1/jobs?status=done", &["status"]),
        ("/v1/jobs?from=2025-13-01", &["from"]),
        ("/v1/jobs?from=2025-03-10&to=2025-03-01", &["from"]),
        ("/v1/jobs?crew=ana&customer=42", &["crew", "customer"]),
        ("/v1/jobs/not-a-uuid", &["id"]),
        ("/v1/customers/123", &["id"]),
        (
            "/v1/customers/00000000-0000-0000-0000-00000000000g",
            &["id"],
        ),
        ("/v1/dashboard?from=2025-02-30", &["from"]),
        ("/v1/dashboard?from=2025-03-10&to=2025-03-01", &["from"]),
        ("/v1/dashboard?from=2024-01-01&to=2025-03-01", &["to"]),
        (
            "/v1/dashboard?from=yesterday&to=now&x=1",
            &["from", "to", "x"],
        ),
        ("/v1/calendar/week/2025-W10", &["date"]),
        ("/v1/calendar/week/20250310", &["date"]),
        ("/v1/me/threads?unread_only=maybe", &["unread_only"]),
        ("/v1/me/unread-count?limit=5", &["limit"]),
        ("/v1/threads/xyz/messages", &["id"]),
        ("/v1/events?after_position=abc", &["after_position"]),
        // A parameter without a name is named as the query it is in.
        ("/v1/customers?=x", &["query"]),
        ("/v1/me/unread-count?=", &["query"]),
    ];
    let mut cases: Vec<(String, &[&str])> = cases
        .iter()
        .map(|(path, fields)| ((*path).to_owned(), *fields))
        .collect();
    for position in ["-1", "99999999999999999999"] {
        cases.push((
            format!("/v1/checkpoint?{MIN_POSITION_PARAM}={position}"),
            &[MIN_POSITION_PARAM],
        ));
    }
    for (path, fields) in &cases {
        let reply = h.get(&app, path, Some(&admin)).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
        let mut named = reply.bad_fields();
        named.sort();
        let mut expected: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        expected.sort();
        assert_eq!(named, expected, "{path}: {}", reply.body);
    }
}

/// The dashboard's range rule is the read model's: 365 and 366 days (`from` and `to`
/// included) are answered, 367 refused naming `to` with the read model's own reason, as
/// `read_models`' `a_dashboard_range_holds_at_most_366_days` shows for the model itself.
#[tokio::test]
async fn the_dashboard_range_boundary_is_the_read_models() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start_with(&["--consistency-wait-ms", "300"]).await;
    let admin = h.user(Role::Admin);
    let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    for (days, to) in [
        (365, "2024-12-30"),
        (366, "2024-12-31"),
        (367, "2025-01-01"),
    ] {
        let to_date: NaiveDate = to.parse().unwrap();
        assert_eq!((to_date - from).num_days() + 1, days);
        let path = format!("/v1/dashboard?from={from}&to={to}");
        let reply = h.get(&app, &path, Some(&admin)).await;
        match check_dashboard_range(from, to_date) {
            Ok(()) => {
                assert!(days <= 366);
                assert_eq!(reply.status, 200, "{path}: {}", reply.body);
                assert_eq!(
                    reply.body["data"]["days"].as_array().map(Vec::len),
                    Some(days as usize),
                    "{path}"
                );
            }
            Err(QueryError::Invalid { field, reason }) => {
                assert_eq!(days, 367);
                assert_eq!(reply.status, 400, "{path}: {}", reply.body);
                assert_eq!(reply.bad_fields(), vec![field], "{path}");
                assert_eq!(reply.body["errors"][0]["reason"], reason.as_str());
                // Refused like any bad parameter: before waiting for a position never reached.
                let waiting = format!("{path}&{MIN_POSITION_PARAM}=1000");
                let reply = h.get(&app, &waiting, Some(&admin)).await;
                assert_eq!(reply.status, 400, "{waiting}: {}", reply.body);
                assert_eq!(reply.bad_fields(), vec![field], "{waiting}");
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_long_search_is_refused_and_operators_are_just_text() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let sales = h.user(Role::Sales);
    let long = "a".repeat(101);
    let reply = h
        .get(&app, &format!("/v1/customers?search={long}"), Some(&sales))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.bad_fields(), vec!["search"]);
    for text in ["%7B%22%24ne%22%3A1%7D", "%24where", ".*", "a%2Fb%5C"] {
        let reply = h
            .get(&app, &format!("/v1/customers?search={text}"), Some(&sales))
            .await;
        assert_eq!(reply.status, 200, "{text}: {}", reply.body);
        assert_eq!(reply.body["data"], serde_json::json!([]), "{text}");
    }
}

/// The documented `search` pattern refuses exactly the characters the service refuses:
/// the control characters (U+0000–U+001F, U+007F–U+009F).
#[tokio::test]
async fn a_search_is_refused_for_exactly_the_characters_its_pattern_excludes() {
    let h = Harness::new().await;
    h.write_checkpoints(1).await;
    let app = h.start().await;
    let sales = h.user(Role::Sales);
    let spec = h.get(&app, "/openapi.json", None).await.body;
    let search = spec["paths"]["/v1/customers"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "search")
        .expect("a search parameter")
        .clone();
    assert_eq!(
        search["schema"]["pattern"],
        "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    );
    let excluded = |c: char| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
    for c in ('\u{0}'..='\u{a0}').chain(['\u{2028}', '\u{feff}']) {
        let mut encoded = [0u8; 4];
        let text: String = c
            .encode_utf8(&mut encoded)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        let path = format!("/v1/customers?search=a{text}b");
        let reply = h.get(&app, &path, Some(&sales)).await;
        if excluded(c) {
            assert_eq!(reply.status, 400, "{c:?}: {}", reply.body);
            assert_eq!(reply.bad_fields(), vec!["search"], "{c:?}");
        } else {
            assert_eq!(reply.status, 200, "{c:?}: {}", reply.body);
        }
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let h = Harness::new().await;
    let app = h.start().await;
    let reply = h
        .get(&app, "/v1/nothing-here", Some(&h.user(Role::Admin)))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let post = h
        .http
        .post(format!("{}/v1/customers", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    // The health routes too: a problem document saying what they answer.
    for (method, path) in [
        ("POST", "/healthz"),
        ("TRACE", "/healthz"),
        ("DELETE", "/readyz"),
    ] {
        let reply = h
            .http
            .request(method.parse().unwrap(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status().as_u16(), 405, "{method} {path}");
        let header = |name: &str| {
            reply
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/problem+json"),
            "{method} {path}"
        );
        assert!(
            header("allow").is_some_and(|allow| allow.contains("GET")),
            "{method} {path}"
        );
        let problem: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(problem["status"], 405, "{method} {path}: {problem}");
    }
    let spec = h
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    let spec: serde_json::Value = spec.json().await.unwrap();
    for path in [
        "/v1/dashboard",
        "/v1/calendar/week/{date}",
        "/v1/me/threads",
        "/v1/me/unread-count",
        "/v1/threads/{id}/messages",
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/events",
        "/v1/checkpoint",
    ] {
        assert!(
            spec["paths"][path]["get"].is_object(),
            "{path} missing from OpenAPI"
        );
        let params = spec["paths"][path]["get"]["parameters"].as_array().unwrap();
        assert!(
            params.iter().any(|p| p["name"] == MIN_POSITION_PARAM),
            "{path}"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Ready once its database answers a ping within 2 s, which a loaded machine may miss now
    // and then: a few tries.
    let mut status = 0;
    for _ in 0..5 {
        status = h.get(&app, "/readyz", None).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(status, 200);
}
