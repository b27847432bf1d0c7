//! What an operator sees of the running system: one trace from a command's request to the
//! projection of its event and the query API's invalidation, and every service's `/metrics`
//! read by a Prometheus text parser.

use std::collections::HashMap;
use std::time::Duration;

use domain::enums::Role;
use events::StreamId;
use platform::trace_context::trace_id_of;
use prometheus_parse::{Scrape, Value as Sample};
use reqwest::StatusCode;
use serde_json::Value;
use tests::bodies;
use uuid::Uuid;

use super::system::System;

/// The span the caller's `traceparent` names as the command request's parent.
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_trace_runs_through_its_stored_event_the_bus_the_projector_and_the_invalidation()
{
    let spans = tests::spans::capture();
    let system = System::start().await;
    let admin = system.first_admin().await;
    let trace_id = format!("{:032x}", Uuid::new_v4().as_u128());
    let traceparent = format!("00-{trace_id}-{CALLER_SPAN}-01");

    let (command_base, _) = system.base_urls();
    let answer = reqwest::Client::new()
        .post(format!("{command_base}/v1/customers"))
        .bearer_auth(&admin.token)
        .header("traceparent", &traceparent)
        .json(&bodies::customer(
            "Tracy",
            "Trace",
            "tracy@example.com",
            "+1 555 010 0042",
        ))
        .send()
        .await
        .expect("command API answers");
    assert_eq!(answer.status(), StatusCode::CREATED);
    let body: Value = answer.json().await.expect("JSON answer");
    let customer_id = body["aggregate_id"]
        .as_str()
        .expect("aggregate id")
        .to_owned();
    let event_id = body["event_ids"][0].as_str().expect("event id").to_owned();
    let position = body["position"].as_u64().expect("position");

    // The stored event carries the trace, as a span of the command API's own.
    let store = system.store().await;
    let stream = StreamId::new("customer", customer_id.clone()).expect("stream id");
    let committed = store
        .read_stream(&stream, 1)
        .await
        .expect("the customer's stream");
    let stored_traceparent = committed[0]
        .traceparent
        .clone()
        .expect("the event's metadata holds a traceparent");
    let logged = store
        .event_at(position)
        .await
        .expect("the log answers")
        .expect("the event is in the log");
    assert_eq!(logged.traceparent.as_ref(), Some(&stored_traceparent));
    assert_eq!(
        trace_id_of(&stored_traceparent).as_deref(),
        Some(trace_id.as_str())
    );
    assert_ne!(
        stored_traceparent, traceparent,
        "a span of the command API, not the caller"
    );

    // So does its message on JetStream, as a header. The command answered once its event was
    // in the log; the relay publishes it a moment later.
    let bus = system.bus().await;
    let stream = bus
        .jetstream()
        .get_stream(&bus.config().stream_name)
        .await
        .expect("the events stream");
    let subject = bus.subject("customer", &customer_id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let message = loop {
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => break message,
            Err(error) if std::time::Instant::now() > deadline => {
                panic!("the event's message is not on JetStream after 15 s: {error}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    };
    let header = message
        .headers
        .get(events::bus::TRACEPARENT_HEADER)
        .map(|value| value.as_str().to_owned());
    assert_eq!(header.as_deref(), Some(stored_traceparent.as_str()));

    // Readable through the query API: projected, flushed and announced.
    system
        .get(
            &format!("/v1/customers/{customer_id}"),
            &admin.token,
            position,
        )
        .await;

    let within = Duration::from_secs(10);
    let requests = spans
        .wait_for(within, |s| s.name == "request" && s.trace_id == trace_id)
        .await;
    assert!(
        requests.iter().any(|s| s.parent_span_id == CALLER_SPAN),
        "the command's request span is a child of the caller's: {requests:?}"
    );
    let projected = spans
        .wait_for(within, |s| {
            s.name == "project_event" && s.attribute("event_id") == Some(event_id.as_str())
        })
        .await;
    assert_eq!(projected.len(), 1, "{projected:?}");
    assert_eq!(
        projected[0].trace_id, trace_id,
        "the projector continues the trace"
    );
    assert_ne!(projected[0].parent_span_id, "0000000000000000");
    let invalidated = spans
        .wait_for(within, |s| {
            s.name == "invalidate"
                && (s.trace_id == trace_id || s.linked_trace_ids.contains(&trace_id))
        })
        .await;
    assert!(
        !invalidated.is_empty(),
        "the query API's invalidation joins the command's trace"
    );
    system.stop().await;
}

/// Every sample of a `/metrics` page by series name, parsed as Prometheus text.
async fn scrape(url: &str) -> HashMap<String, Vec<prometheus_parse::Sample>> {
    let response = reqwest::get(url).await.expect("/metrics answers");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let text = response.text().await.expect("/metrics text");
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            name.starts_with("simplepro_"),
            "{url}: {name} lacks the prefix"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{url}: {name} has no HELP"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    let mut by_name: HashMap<String, Vec<prometheus_parse::Sample>> = HashMap::new();
    for sample in scrape.samples {
        by_name
            .entry(sample.metric.clone())
            .or_default()
            .push(sample);
    }
    by_name
}

/// The total count of observations of a histogram over all its label sets.
fn observations(samples: &HashMap<String, Vec<prometheus_parse::Sample>>, name: &str) -> u64 {
    samples
        .get(name)
        .unwrap_or_else(|| panic!("no series {name}"))
        .iter()
        .map(|sample| match &sample.value {
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count) as u64,
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn counter(samples: &HashMap<String, Vec<prometheus_parse::Sample>>, name: &str) -> f64 {
    samples
        .get(name)
        .unwrap_or_else(|| panic!("no series {name}"))
        .iter()
        .map(|sample| match sample.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_its_latencies_as_histograms_parsed_by_a_prometheus_parser() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let sales = system.member(&admin, "Sam Sales", Role::Sales).await;
    let customer = system
        .post(
            "/v1/customers",
            &sales.token,
            bodies::customer("Pat", "Metric", "pat@example.com", "+1 555 010 0077"),
        )
        .await;
    let path = format!("/v1/customers/{}", customer.id);
    for _ in 0..3 {
        system.get(&path, &sales.token, customer.position).await;
    }
    let [(_, command_url), (_, projector_url), (_, query_url)] = system.metrics_urls();

    let command = scrape(&command_url).await;
    assert!(observations(&command, "simplepro_http_request_duration_seconds") >= 3);
    assert!(observations(&command, "simplepro_events_append_duration_seconds") >= 3);
    assert!(observations(&command, "simplepro_events_append_group_size") >= 1);
    assert!(observations(&command, "simplepro_events_publish_duration_seconds") >= 1);
    assert!(counter(&command, "simplepro_command_api_commands_total") >= 3.0);
    assert!(command.contains_key("simplepro_outbox_pending"));
    assert!(command.contains_key("simplepro_outbox_oldest_age_seconds"));

    let projector = scrape(&projector_url).await;
    assert!(observations(&projector, "simplepro_projector_flush_duration_seconds") >= 1);
    assert!(observations(&projector, "simplepro_projector_flush_docs_size") >= 1);
    assert!(observations(&projector, "simplepro_projector_apply_duration_seconds") >= 1);
    assert!(observations(&projector, "simplepro_projector_visible_lag_seconds") >= 1);
    assert!(counter(&projector, "simplepro_projector_events_applied_total") >= 3.0);
    let by_model = &projector["simplepro_projector_model_events_applied_total"];
    assert!(
        by_model
            .iter()
            .any(|s| s.labels.get("model") == Some("lists")),
        "{by_model:?}"
    );
    for gauge in [
        "simplepro_projector_lag_events",
        "simplepro_projector_lag_seconds",
        "simplepro_projector_dead_letters_total",
        "simplepro_projector_replay_remaining_events",
    ] {
        assert!(projector.contains_key(gauge), "projector lacks {gauge}");
    }

    let query = scrape(&query_url).await;
    let reads = &query["simplepro_http_request_duration_seconds"];
    assert!(
        reads
            .iter()
            .any(|s| s.labels.get("route") == Some("/v1/customers/:id")),
        "{reads:?}"
    );
    assert!(counter(&query, "simplepro_query_api_cache_hits_total") >= 1.0);
    assert!(counter(&query, "simplepro_query_api_cache_misses_total") >= 1.0);
    for series in [
        "simplepro_query_api_cache_evictions_total",
        "simplepro_query_api_cache_coalesced_loads_total",
    ] {
        assert!(query.contains_key(series), "query API lacks {series}");
    }
    system.stop().await;
}

/// Series names a `/metrics` page exports, with the `_bucket`, `_sum` and `_count` series of
/// each histogram.
async fn exported_series(url: &str) -> std::collections::BTreeSet<String> {
    let text = reqwest::get(url)
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics text");
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" || kind == "summary" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The `simplepro_…` series a PromQL expression names.
fn series_in(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("simplepro_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        found.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_and_the_alert_rules_name_only_series_the_services_export() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let customer = system
        .post(
            "/v1/customers",
            &admin.token,
            bodies::customer("Ali", "Alert", "ali@example.com", "+1 555 010 0099"),
        )
        .await;
    let path = format!("/v1/customers/{}", customer.id);
    system.get(&path, &admin.token, customer.position).await;
    let mut exported = std::collections::BTreeSet::new();
    for (_, url) in system.metrics_urls() {
        exported.extend(exported_series(&url).await);
    }
    system.stop().await;

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
            .expect("alert rules"),
    )
    .expect("alert rules are YAML");
    let mut exprs: Vec<(String, String)> = Vec::new();
    for group in rules["groups"].as_sequence().expect("rule groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name");
            let expr = rule["expr"].as_str().expect("alert expression");
            assert!(
                rule["annotations"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Runbook:")),
                "{name} points to no runbook section"
            );
            exprs.push((name.to_owned(), expr.to_owned()));
        }
    }
    assert!(
        exprs.len() >= 4,
        "lag, outbox, dead letters and 5xx alerts at least"
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/simplepro-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let title = panel["title"].as_str().unwrap_or_default();
            let expr = target["expr"].as_str().expect("panel expression");
            exprs.push((title.to_owned(), expr.to_owned()));
        }
    }
    let mut unknown = Vec::new();
    for (owner, expr) in &exprs {
        let named = series_in(expr);
        assert!(
            !named.is_empty(),
            "{owner}: {expr} names no SimplePro series"
        );
        unknown.extend(
            named
                .into_iter()
                .filter(|series| !exported.contains(series))
                .map(|series| format!("{owner}: {series}")),
        );
    }
    assert!(
        unknown.is_empty(),
        "series no service exports: {unknown:#?}"
    );
}
