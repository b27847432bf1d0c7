//! Events stored at an older schema version are read like new ones everywhere: by command
//! handling, projection, rebuilds, the event API and the history tools.
//!
//! The fixture `tests/fixtures/job-events-v1.jsonl` holds a job's schedule and reschedule as
//! version 1 stored them, with windows that do not name a time zone (version 2 windows do).

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use domain::enums::Role;
use events::{AppendRequest, EventMetadata, Expected, NewEvent, StreamId};
use history::export::{ExportOptions, Format};
use history::filter::Filter;
use history::verify::{Check, VerifyOptions};
use serde_json::{json, Value};

use super::system::{System, TIME_ZONE};
use tests::bodies;

const FIXTURE: &str = include_str!("../../../fixtures/job-events-v1.jsonl");

/// The fixture's events, as they were stored.
fn version_one_events() -> Vec<NewEvent> {
    FIXTURE
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let stored: Value = serde_json::from_str(line).expect("fixture line is JSON");
            let occurred_at: DateTime<Utc> = stored["occurred_at"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("fixture occurred_at");
            let version = stored["schema_version"].as_u64().expect("schema_version");
            assert_eq!(version, 1, "the fixture keeps version 1 events");
            NewEvent::new(
                stored["type"].as_str().expect("type"),
                1,
                occurred_at,
                stored["payload"].clone(),
            )
        })
        .collect()
}

fn window(start: &str, end: &str, zone: &str) -> Value {
    json!({"start": start, "end": end, "time_zone": zone})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_one_events_are_read_as_version_two_by_every_reader() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let dispatcher = system
        .member(&admin, "Dana Dispatch", Role::Dispatcher)
        .await;
    let customer = system
        .post(
            "/v1/customers",
            &dispatcher.token,
            bodies::customer("Vera", "Old", "vera.old@example.com", "+1 555 010 0042"),
        )
        .await;
    let job = system
        .post("/v1/jobs", &dispatcher.token, bodies::job(customer.id))
        .await;

    // The job's schedule and reschedule, appended as an older build stored them.
    let store = system.store().await;
    let stream = StreamId::new("job", job.id.to_string()).expect("stream id");
    let appended = store
        .append(AppendRequest {
            stream,
            expected: Expected::Version(1),
            events: version_one_events(),
            metadata: EventMetadata {
                correlation_id: "fixture-v1".into(),
                causation_id: None,
                actor: admin.id.to_string(),
                traceparent: None,
            },
            idempotency: None,
            snapshot: None,
        })
        .await
        .expect("append the version 1 events");
    store
        .wait_for_position(&appended.commit_id, Duration::from_secs(15))
        .await
        .expect("the fixture's commit is sequenced");

    // Command handling: a reschedule needs a scheduled job, which only the version 1 events
    // say; its `from_window` is the version 1 window, read in the business's zone.
    let rescheduled = system
        .post(
            &format!("/v1/jobs/{}/reschedule", job.id),
            &dispatcher.token,
            json!({"date": "2030-03-15", "window": window("09:00", "11:00", "America/Chicago"),
                   "reason": "customer asked"}),
        )
        .await;
    assert_eq!(rescheduled.body["version"], 4, "{}", rescheduled.body);

    // The event API serves every event in the current schema.
    let log = system
        .get(
            "/v1/events?type=JobRescheduled&limit=100",
            &admin.token,
            rescheduled.position,
        )
        .await;
    let ours: Vec<&Value> = log["data"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["aggregate_id"] == json!(job.id.to_string()))
        .collect();
    assert_eq!(ours.len(), 2, "{log}");
    assert!(ours.iter().all(|e| e["schema_version"] == 2), "{ours:?}");
    assert_eq!(
        ours[0]["payload"]["window"],
        window("13:00:00", "17:00:00", TIME_ZONE)
    );
    assert_eq!(
        ours[1]["payload"]["from_window"],
        window("13:00:00", "17:00:00", TIME_ZONE)
    );
    assert_eq!(
        ours[1]["payload"]["window"],
        window("09:00:00", "11:00:00", "America/Chicago")
    );

    // Projection: the calendar shows the job where the new event put it, in its zone.
    let week = system
        .get(
            "/v1/calendar/week/2030-03-15",
            &dispatcher.token,
            rescheduled.position,
        )
        .await;
    let friday = &week["data"]["days"][4];
    assert_eq!(friday["date"], "2030-03-15", "{week}");
    assert_eq!(friday["jobs"][0]["job_id"], json!(job.id.to_string()));
    assert_eq!(
        friday["jobs"][0]["window"],
        window("09:00:00", "11:00:00", "America/Chicago")
    );

    // Rebuild: every model replayed from the log equals the live one.
    for report in system.rebuild_and_verify().await {
        let verify = report.verify.as_ref().expect("verified");
        assert_eq!(verify.different, 0, "{report:?}");
        assert!(verify.equal > 0, "nothing compared: {report:?}");
    }

    // History: export shows the current schema; verify decodes every event.
    let codec = Codec::for_business(BusinessTimeZone::parse(TIME_ZONE).expect("zone"));
    let options = ExportOptions {
        format: Format::Jsonl,
        filter: Filter {
            aggregate_id: Some(job.id.to_string()),
            ..Filter::default()
        },
        batch_size: 100,
        include_message_bodies: false,
    };
    let mut exported = Vec::new();
    history::export::export(
        &store,
        &codec,
        &options,
        &mut exported,
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .expect("export");
    let lines: Vec<Value> = String::from_utf8(exported)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let scheduled = lines
        .iter()
        .find(|e| e["type"] == "JobScheduled")
        .unwrap_or_else(|| panic!("no JobScheduled in {lines:?}"));
    assert_eq!(scheduled["schema_version"], 2, "{scheduled}");
    assert_eq!(
        scheduled["payload"]["window"],
        window("08:00:00", "12:00:00", TIME_ZONE)
    );
    let report = history::verify::verify(&store, &codec, &VerifyOptions::default())
        .await
        .expect("verify");
    assert!(
        report.findings(Check::Decoding).is_none(),
        "{:?}",
        report.violations
    );

    system.stop().await;
}
