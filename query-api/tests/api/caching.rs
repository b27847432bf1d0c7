//! The document cache follows the projector: notices invalidate across instances, the
//! checkpoint poll makes up for lost notices; ETags make revalidation cheap.

use std::time::{Duration, Instant};

use platform::consistency::MIN_POSITION_PARAM;

use crate::projection::Projector;
use crate::script::*;
use crate::support::{Harness, Instance, User};
use crate::views::scripted_world;

/// Polls `path` on `app` until `done` holds for the body, for at most `within`.
async fn eventually(
    h: &Harness,
    app: &Instance,
    path: &str,
    user: &User,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let reply = h.get(app, path, Some(user)).await;
        if reply.status == 200 && done(&reply.body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} still answers {} after {within:?}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The instance's `/metrics` page, parsed.
async fn scrape(h: &Harness, app: &Instance) -> Scraped {
    let reply = h.http.get(format!("{}/metrics", app.base)).send().await;
    let text = reply.unwrap().text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    Scraped { text, parsed }
}

struct Scraped {
    text: String,
    parsed: prometheus_parse::Scrape,
}

impl Scraped {
    /// The value of the counter or gauge `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .find_map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in:\n{}", self.text))
    }

    /// Observations of a histogram with these labels.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => buckets.last().map(|b| b.count),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in:\n{}", self.text))
    }
}

#[tokio::test]
async fn two_instances_serve_a_change_within_200_ms_of_its_notice() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let (first, second) = (h.start().await, h.start().await);
    let path = format!("/v1/customers/{}", w.jane);
    for app in [&first, &second] {
        for _ in 0..2 {
            let reply = h.get(app, &path, Some(&w.sales)).await;
            assert_eq!(reply.body["data"]["status"], "lead", "{}", reply.body);
        }
    }
    projector
        .flush(
            &h,
            vec![customer_status(
                w.jane,
                "lead",
                "inactive",
                at("2025-03-10T10:00:00Z"),
            )],
        )
        .await;
    let announced = Instant::now();
    for app in [&first, &second] {
        eventually(
            &h,
            app,
            &path,
            &w.sales,
            Duration::from_millis(200),
            |body| body["data"]["status"] == "inactive",
        )
        .await;
    }
    assert!(announced.elapsed() < Duration::from_millis(400));
    let metrics = scrape(&h, &first).await;
    let hits = metrics.value("simplepro_query_api_cache_hits_total", &[]);
    assert!(
        hits > 0.0,
        "the second read was not a cache hit:\n{}",
        metrics.text
    );
    let route = [("route", "/v1/customers/:id"), ("status", "200")];
    assert!(metrics.observations("simplepro_http_request_duration_seconds", &route) >= 2.0);
}

#[tokio::test]
async fn a_change_without_a_notice_is_served_after_the_next_checkpoint_poll() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let path = format!("/v1/customers/{}", w.john);
    assert_eq!(
        h.get(&app, &path, Some(&w.sales)).await.body["data"]["status"],
        "active"
    );
    projector
        .flush_silently(
            &h,
            vec![customer_status(
                w.john,
                "active",
                "inactive",
                at("2025-03-10T10:00:00Z"),
            )],
        )
        .await;
    eventually(
        &h,
        &app,
        &path,
        &w.sales,
        Duration::from_millis(2500),
        |body| body["data"]["status"] == "inactive",
    )
    .await;
}

#[tokio::test]
async fn without_the_cache_every_request_reads_mongodb() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start_with(&["--no-cache"]).await;
    let path = format!("/v1/customers/{}", w.john);
    for _ in 0..3 {
        assert_eq!(h.get(&app, &path, Some(&w.sales)).await.status, 200);
    }
    let metrics = scrape(&h, &app).await;
    assert_eq!(
        metrics.value("simplepro_query_api_cache_hits_total", &[]),
        0.0
    );
    assert_eq!(metrics.value("simplepro_query_api_cache_entries", &[]), 0.0);
}

#[tokio::test]
async fn an_unchanged_answer_revalidates_to_304_and_a_changed_one_does_not() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let path = format!("/v1/jobs/{}", w.moved);
    let first = h.get(&app, &path, Some(&w.dispatcher)).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("cache-control").as_deref(),
        Some("private, no-cache")
    );
    let etag = first.header("etag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "not a strong ETag: {etag}"
    );
    let again = h
        .get_with(
            &app,
            &path,
            Some(&w.dispatcher),
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.body, serde_json::Value::Null);
    assert_eq!(again.header("etag"), Some(etag.clone()));
    let other = h
        .get_with(
            &app,
            &path,
            Some(&w.dispatcher),
            &[("If-None-Match", "\"something-else\"")],
        )
        .await;
    assert_eq!(other.status, 200);
    let position = projector
        .flush(
            &h,
            vec![customer_status(
                w.jane,
                "lead",
                "active",
                at("2025-03-11T10:00:00Z"),
            )],
        )
        .await;
    let after = h
        .get_with(
            &app,
            &format!("{path}?{MIN_POSITION_PARAM}={position}"),
            Some(&w.dispatcher),
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(
        after.status, 200,
        "the position moved, so the answer changed"
    );
    assert_ne!(after.header("etag"), Some(etag));
}

#[tokio::test]
async fn a_rendered_dashboard_is_reused_until_a_change_and_then_follows_it() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let uncached = h.start_with(&["--no-cache"]).await;
    let path = "/v1/dashboard?from=2025-03-01&to=2025-03-31";
    let first = h.get(&app, path, Some(&w.dispatcher)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = h.get(&app, path, Some(&w.dispatcher)).await;
    assert_eq!(again.body, first.body);
    let metrics = scrape(&h, &app).await;
    assert_eq!(
        metrics.value("simplepro_query_api_views_rendered_total", &[]),
        1.0
    );
    assert_eq!(
        metrics.value("simplepro_query_api_views_reused_total", &[]),
        1.0
    );
    let position = projector
        .flush(
            &h,
            vec![customer_registered(
                new_id(),
                "Lena",
                "Late",
                "website",
                at("2025-03-11T10:00:00Z"),
            )],
        )
        .await;
    let fresh = h
        .get(
            &uncached,
            &format!("{path}&{MIN_POSITION_PARAM}={position}"),
            Some(&w.dispatcher),
        )
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_ne!(
        fresh.body["data"], first.body["data"],
        "the change shows in the dashboard"
    );
    eventually(
        &h,
        &app,
        path,
        &w.dispatcher,
        Duration::from_millis(200),
        |body| body["data"] == fresh.body["data"],
    )
    .await;
}

#[tokio::test]
async fn rendered_list_pages_are_reused_until_a_change_and_answer_as_uncached_ones_do() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let uncached = h.start_with(&["--no-cache"]).await;
    let first_path = "/v1/customers?limit=1";
    let first = h.get(&app, first_path, Some(&w.sales)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("more than one customer");
    let second_path = format!("/v1/customers?limit=1&cursor={cursor}");
    let second = h.get(&app, &second_path, Some(&w.sales)).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_ne!(second.body["data"], first.body["data"]);
    for (path, rendered) in [(first_path, &first), (second_path.as_str(), &second)] {
        let again = h.get(&app, path, Some(&w.sales)).await;
        assert_eq!(again.body, rendered.body);
        assert_eq!(again.header("etag"), rendered.header("etag"));
        let direct = h.get(&uncached, path, Some(&w.sales)).await;
        assert_eq!(direct.body, rendered.body, "{path}");
        assert_eq!(direct.header("etag"), rendered.header("etag"), "{path}");
    }
    let metrics = scrape(&h, &app).await;
    assert_eq!(
        metrics.value("simplepro_query_api_views_rendered_total", &[]),
        2.0
    );
    assert_eq!(
        metrics.value("simplepro_query_api_views_reused_total", &[]),
        2.0
    );

    let newest = new_id();
    projector
        .flush(
            &h,
            vec![customer_registered(
                newest,
                "Nora",
                "Newest",
                "website",
                at("2026-01-02T10:00:00Z"),
            )],
        )
        .await;
    eventually(
        &h,
        &app,
        first_path,
        &w.sales,
        Duration::from_millis(200),
        |body| body["data"][0]["customer_id"] == newest.to_string(),
    )
    .await;
}
