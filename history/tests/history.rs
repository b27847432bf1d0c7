//! `history` against a real store: a known history is appended through the domain and the
//! event store, sequenced by the relay, then exported, shown, counted and verified; verify
//! is also run against each kind of corruption written straight into the collections.

use std::collections::BTreeMap;
use std::time::Duration;

use bson::{doc, Bson, Document};
use chrono::{DateTime, TimeDelta, Utc};
use domain::calendar::BusinessTimeZone;
use domain::codec::{self, Codec};
use domain::crew_member::{self, CrewMemberCommand};
use domain::customer::{self, CustomerCommand, CustomerRecord, CustomerState};
use domain::enums::{CustomerStatus, ReferralSource};
use domain::ids::{CrewMemberId, CustomerId, MessageId, ThreadId, UserId};
use domain::thread::ThreadEvent;
use domain::values::{Address, AddressInput, Email, MessageBody, PersonName, Phone, Skill};
use domain::DomainEvent;
use events::store::{log_id, ReadAllOptions};
use events::{
    AppendRequest, EventEnvelope, EventMetadata, EventStore, Expected, NewEvent, StreamId,
};
use history::export::{self, ExportOptions, Format};
use history::filter::{Filter, FilterArgs};
use history::show::{self, Point};
use history::verify::{self, Check, VerifyOptions};
use history::HistoryError;
use mongodb::Collection;
use tests::{RunningRelay, TestEnv};
use uuid::Uuid;

struct Fixture {
    env: TestEnv,
    store: EventStore,
    relay: Option<RunningRelay>,
    customer: CustomerId,
    crew_member: CrewMemberId,
    /// The customer's state after each of its versions, built by hand.
    customer_states: Vec<CustomerState>,
}

/// The codec the services of a business in New York read with.
fn business_codec() -> Codec {
    Codec::for_business(BusinessTimeZone::parse("America/New_York").unwrap())
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn address(line1: &str) -> Address {
    Address::parse(AddressInput {
        line1: line1.into(),
        city: "Springfield".into(),
        postal_code: "12345".into(),
        ..AddressInput::default()
    })
    .unwrap()
}

async fn append<E: DomainEvent>(
    store: &EventStore,
    stream: &StreamId,
    expected: u64,
    events: &[E],
) -> String {
    let request = AppendRequest {
        stream: stream.clone(),
        expected: Expected::Version(expected),
        events: events
            .iter()
            .map(|e| {
                let stored = codec::encode(e);
                NewEvent::new(
                    stored.event_type,
                    stored.schema_version,
                    at("2026-11-25T10:00:00.123Z"),
                    stored.payload,
                )
            })
            .collect(),
        metadata: EventMetadata {
            correlation_id: format!("corr-{expected}"),
            causation_id: Some("cmd-1".into()),
            actor: "user-7".into(),
            traceparent: None,
        },
        idempotency: None,
        snapshot: None,
    };
    let outcome = store.append(request).await.unwrap();
    // Distinct record times (milliseconds) between appends, for the as-of reads.
    tokio::time::sleep(Duration::from_millis(15)).await;
    outcome.commit_id
}

/// Customer: registered (v1), phone changed (v2), activated (v3), one commit each; a crew
/// member registered and deactivated in one commit (v1, v2).
async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let store = env.store().await;
    let relay = env.start_relay(&store).await;
    let customer = CustomerId::from_uuid(Uuid::now_v7());
    let crew_member = CrewMemberId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new("customer", customer.to_string()).unwrap();
    let mut commits = Vec::new();

    let registered = CustomerRecord {
        customer_id: customer,
        first_name: PersonName::parse("Ada").unwrap(),
        last_name: PersonName::parse("Lovelace").unwrap(),
        email: Email::parse("ada@example.com").unwrap(),
        phone: Phone::parse("+1 555 123 4567").unwrap(),
        address: address("1 Main St"),
        status: CustomerStatus::Lead,
    };
    let mut state = CustomerState::default();
    let mut customer_states = Vec::new();
    let commands = [
        CustomerCommand::Register {
            customer_id: customer,
            first_name: registered.first_name.clone(),
            last_name: registered.last_name.clone(),
            email: registered.email.clone(),
            phone: registered.phone.clone(),
            referral_source: ReferralSource::Website,
            address: registered.address.clone(),
            registered_at: at("2026-11-25T10:00:00Z"),
        },
        CustomerCommand::UpdateContact {
            first_name: None,
            last_name: None,
            email: None,
            phone: Some(Phone::parse("+1 555 999 0000").unwrap()),
            address: None,
            updated_at: at("2026-11-25T11:00:00Z"),
        },
        CustomerCommand::ChangeStatus {
            status: CustomerStatus::Active,
            changed_at: at("2026-11-25T12:00:00Z"),
        },
    ];
    for (version, command) in commands.into_iter().enumerate() {
        let events = customer::decide(&state, command).unwrap();
        state = events.iter().fold(state, customer::evolve);
        commits.push(append(&store, &stream, version as u64, &events).await);
    }
    // Hand-computed, independent of `evolve`.
    let v2 = CustomerRecord {
        phone: Phone::parse("+1 555 999 0000").unwrap(),
        ..registered.clone()
    };
    let v3 = CustomerRecord {
        status: CustomerStatus::Active,
        ..v2.clone()
    };
    for record in [registered, v2, v3] {
        customer_states.push(CustomerState {
            customer: Some(record),
        });
    }

    let crew_stream = StreamId::new("crew_member", crew_member.to_string()).unwrap();
    let mut crew_state = crew_member::CrewMemberState::default();
    let mut crew_events = Vec::new();
    for command in [
        CrewMemberCommand::Register {
            crew_member_id: crew_member,
            name: PersonName::parse("Grace").unwrap(),
            skills: vec![Skill::parse("piano moving").unwrap()],
            user_id: None,
            registered_at: at("2026-11-25T09:00:00Z"),
        },
        CrewMemberCommand::Deactivate {
            deactivated_at: at("2026-11-26T09:00:00Z"),
        },
    ] {
        let events = crew_member::decide(&crew_state, command).unwrap();
        crew_state = events.iter().fold(crew_state, crew_member::evolve);
        crew_events.extend(events);
    }
    commits.push(append(&store, &crew_stream, 0, &crew_events).await);

    for commit in &commits {
        assert!(
            store
                .wait_for_position(commit, Duration::from_secs(15))
                .await
                .is_some(),
            "commit {commit} was not sequenced"
        );
    }
    // Published means the outbox is drained; wait for it so verify sees a settled store.
    let outbox: Collection<Document> = env.database.collection("outbox");
    for _ in 0..150 {
        if outbox.count_documents(doc! {}).await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Fixture {
        env,
        store,
        relay: Some(relay),
        customer,
        crew_member,
        customer_states,
    }
}

impl Fixture {
    async fn all(&self) -> Vec<EventEnvelope> {
        let mut batches = self.store.read_all(ReadAllOptions::default());
        let mut all = Vec::new();
        while let Some(batch) = batches.next().await {
            all.extend(batch.unwrap());
        }
        all
    }

    async fn export(&self, format: Format, args: FilterArgs) -> Result<Vec<u8>, HistoryError> {
        let options = ExportOptions {
            format,
            filter: Filter::parse(&args)?,
            batch_size: 2,
            include_message_bodies: true,
        };
        let mut out = Vec::new();
        export::export(
            &self.store,
            &business_codec(),
            &options,
            &mut out,
            &indicatif::ProgressBar::hidden(),
        )
        .await?;
        Ok(out)
    }

    async fn jsonl(&self, args: FilterArgs) -> Vec<EventEnvelope> {
        let out = self.export(Format::Jsonl, args).await.unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Stops the relay so that nothing repairs what a test corrupts.
    async fn quiesce(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop().await;
        }
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.env.database.collection(name)
    }

    async fn verify(&self) -> verify::Report {
        verify::verify(&self.store, &business_codec(), &VerifyOptions::default())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn jsonl_export_reproduces_the_log_exactly_in_position_order() {
    let f = fixture().await;
    let all = f.all().await;
    assert_eq!(all.len(), 5);
    let exported = f.jsonl(FilterArgs::default()).await;
    assert_eq!(exported, all);
    let positions: Vec<u64> = exported.iter().filter_map(|e| e.position).collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5]);
    // Each line is exactly the envelope as serde writes it.
    let text = String::from_utf8(
        f.export(Format::Jsonl, FilterArgs::default())
            .await
            .unwrap(),
    )
    .unwrap();
    for (line, event) in text.lines().zip(&all) {
        assert_eq!(line, serde_json::to_string(event).unwrap());
    }
}

#[tokio::test]
async fn csv_export_has_one_row_per_event_with_every_column() {
    let f = fixture().await;
    let all = f.all().await;
    let out = f.export(Format::Csv, FilterArgs::default()).await.unwrap();
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, export::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), all.len());
    for (row, event) in rows.iter().zip(&all) {
        let column = |name: &str| {
            row[export::CSV_COLUMNS.iter().position(|c| *c == name).unwrap()].to_owned()
        };
        assert_eq!(column("position"), event.position.unwrap().to_string());
        assert_eq!(column("event_id"), event.event_id.to_string());
        assert_eq!(column("aggregate_type"), event.aggregate_type);
        assert_eq!(column("aggregate_id"), event.aggregate_id);
        assert_eq!(column("version"), event.version.to_string());
        assert_eq!(column("type"), event.event_type);
        assert_eq!(column("schema_version"), event.schema_version.to_string());
        assert_eq!(
            column("occurred_at").parse::<DateTime<Utc>>().unwrap(),
            event.occurred_at
        );
        assert_eq!(
            column("recorded_at").parse::<DateTime<Utc>>().unwrap(),
            event.recorded_at
        );
        assert_eq!(column("correlation_id"), event.correlation_id);
        assert_eq!(
            column("causation_id"),
            event.causation_id.clone().unwrap_or_default()
        );
        assert_eq!(column("actor"), event.actor);
        let payload: serde_json::Value = serde_json::from_str(&column("payload")).unwrap();
        assert_eq!(payload, event.payload);
    }
}

#[tokio::test]
async fn each_export_filter_selects_exactly_its_events() {
    let f = fixture().await;
    let all = f.all().await;
    let pick = |keep: &dyn Fn(&EventEnvelope) -> bool| {
        all.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>()
    };

    let by_type = f
        .jsonl(FilterArgs {
            event_types: vec![
                "CustomerStatusChanged".into(),
                "CrewMemberDeactivated".into(),
            ],
            ..FilterArgs::default()
        })
        .await;
    assert_eq!(
        by_type,
        pick(
            &|e| e.event_type == "CustomerStatusChanged" || e.event_type == "CrewMemberDeactivated"
        )
    );
    assert_eq!(by_type.len(), 2);

    let by_aggregate = f
        .jsonl(FilterArgs {
            aggregate_type: Some("crew_member".into()),
            ..FilterArgs::default()
        })
        .await;
    assert_eq!(by_aggregate, pick(&|e| e.aggregate_type == "crew_member"));
    assert_eq!(by_aggregate.len(), 2);

    let by_id = f
        .jsonl(FilterArgs {
            aggregate_id: Some(f.customer.to_string()),
            ..FilterArgs::default()
        })
        .await;
    assert_eq!(by_id.len(), 3);
    assert!(by_id
        .iter()
        .all(|e| e.aggregate_id == f.customer.to_string()));

    let by_position = f
        .jsonl(FilterArgs {
            after_position: 1,
            until_position: Some(3),
            ..FilterArgs::default()
        })
        .await;
    assert_eq!(
        by_position,
        pick(&|e| (2..=3).contains(&e.position.unwrap()))
    );

    // Time: from the second event's record time (inclusive) to the fourth's (exclusive).
    let from = all[1].recorded_at;
    let to = all[3].recorded_at;
    let by_time = f
        .jsonl(FilterArgs {
            from: Some(from.to_rfc3339()),
            to: Some(to.to_rfc3339()),
            ..FilterArgs::default()
        })
        .await;
    assert_eq!(
        by_time,
        pick(&|e| e.recorded_at >= from && e.recorded_at < to)
    );
    assert!(!by_time.is_empty());

    let nothing = f
        .jsonl(FilterArgs {
            from: Some("2000-01-01".into()),
            to: Some("2000-01-02".into()),
            ..FilterArgs::default()
        })
        .await;
    assert!(nothing.is_empty());
}

#[tokio::test]
async fn show_folds_the_state_at_a_version_and_as_of_a_time() {
    let f = fixture().await;
    let id = f.customer.to_string();
    let expected = |version: usize| serde_json::to_value(&f.customer_states[version - 1]).unwrap();

    let latest = show::load(&f.store, &business_codec(), "customer", &id, Point::Latest)
        .await
        .unwrap();
    assert_eq!(latest.version(), 3);
    assert_eq!(latest.state, expected(3));

    let v2 = show::load(
        &f.store,
        &business_codec(),
        "customer",
        &id,
        Point::AtVersion(2),
    )
    .await
    .unwrap();
    assert_eq!(v2.events.len(), 2);
    assert_eq!(v2.state, expected(2));

    let recorded_v1 = latest.events[0].recorded_at;
    let as_of = show::load(
        &f.store,
        &business_codec(),
        "customer",
        &id,
        Point::AsOf(recorded_v1),
    )
    .await
    .unwrap();
    assert_eq!(as_of.version(), 1);
    assert_eq!(as_of.state, expected(1));

    let mut printed = Vec::new();
    show::render(&v2, &mut printed).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains("CustomerContactUpdated"), "{printed}");
    assert!(printed.contains("state at version 2"), "{printed}");
    assert!(printed.contains("+1 555 999 0000"), "{printed}");

    let crew = show::load(
        &f.store,
        &business_codec(),
        "crew_member",
        &f.crew_member.to_string(),
        Point::Latest,
    )
    .await
    .unwrap();
    assert_eq!(
        crew.state["crew_member"]["active"],
        serde_json::json!(false)
    );
}

#[tokio::test]
async fn show_refuses_unknown_aggregate_types_missing_aggregates_and_times_before_creation() {
    let f = fixture().await;
    let err = show::load(&f.store, &business_codec(), "invoice", "x", Point::Latest)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string()
            .contains("customer, job, user, crew_member, thread"),
        "{err}"
    );

    let err = show::load(
        &f.store,
        &business_codec(),
        "customer",
        &Uuid::now_v7().to_string(),
        Point::Latest,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HistoryError::NotFound(_)), "{err}");
    assert!(err.to_string().contains("no such aggregate"), "{err}");

    let err = show::load(
        &f.store,
        &business_codec(),
        "customer",
        &f.customer.to_string(),
        Point::AsOf(at("2000-01-01T00:00:00Z")),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("did not exist yet"), "{err}");

    let err = show::load(
        &f.store,
        &business_codec(),
        "customer",
        &f.customer.to_string(),
        Point::AtVersion(9),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("latest version is 3"), "{err}");
}

#[tokio::test]
async fn stats_count_every_event_by_type_and_day() {
    let f = fixture().await;
    let all = f.all().await;
    let stats = history::stats::collect(
        &f.store,
        &history::stats::StatsOptions {
            time: history::time::TimeRange::default(),
            timezone: None,
            batch_size: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(stats.total, 5);
    let mut by_type = BTreeMap::new();
    for event in &all {
        *by_type.entry(event.event_type.clone()).or_insert(0u64) += 1;
    }
    assert_eq!(stats.by_type, by_type);
    assert_eq!(stats.by_day.values().sum::<u64>(), 5);
    assert_eq!(stats.by_aggregate_type.get("customer"), Some(&3));
}

#[tokio::test]
async fn export_to_a_file_appears_only_when_complete_and_a_failed_one_leaves_nothing() {
    let mut f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("events.jsonl");
    let options = ExportOptions {
        format: Format::Jsonl,
        filter: Filter::default(),
        batch_size: 1,
        include_message_bodies: true,
    };
    let hidden = indicatif::ProgressBar::hidden();
    let summary = export::export_to_file(&f.store, &business_codec(), &options, &target, &hidden)
        .await
        .unwrap();
    assert_eq!(summary.written, 5);
    assert_eq!(std::fs::read_to_string(&target).unwrap().lines().count(), 5);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the export remains"
    );

    // An event from a newer schema at the end of the log: the export fails after writing
    // the first five events, and neither the target nor a temporary file is left.
    f.quiesce().await;
    let mut future = f
        .collection("events")
        .find_one(doc! {"_id": log_id(5)})
        .await
        .unwrap()
        .unwrap();
    future.insert("_id", log_id(6));
    future.insert("position", 6i64);
    future.insert("event_id", Uuid::now_v7().to_string());
    future.insert("schema_version", 99i32);
    f.collection("events").insert_one(future).await.unwrap();
    let failed_target = dir.path().join("failed.jsonl");
    let err = export::export_to_file(
        &f.store,
        &business_codec(),
        &options,
        &failed_target,
        &hidden,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("newer than"), "{err}");
    assert!(!failed_target.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[tokio::test]
async fn verify_passes_on_a_clean_store() {
    let f = fixture().await;
    let report = f.verify().await;
    assert!(report.is_clean(), "{:?}", report.violations);
    assert_eq!(report.commits, 4);
    assert_eq!(report.events_in_commits, 5);
    assert_eq!(report.log_events, 5);
    assert_eq!(report.highest_position, 5);
    assert_eq!(report.streams, 2);
    let mut printed = Vec::new();
    report.render(&mut printed).unwrap();
    assert!(String::from_utf8(printed)
        .unwrap()
        .contains("store is consistent"));
}

/// Only `check` failed, and its findings mention `needle`.
#[track_caller]
fn assert_only(report: &verify::Report, check: Check, needle: &str) {
    let failed: Vec<Check> = Check::ALL
        .into_iter()
        .filter(|c| report.findings(*c).is_some())
        .collect();
    assert_eq!(failed, vec![check], "{:?}", report.violations);
    let findings = report.findings(check).unwrap();
    assert!(
        findings.shown.iter().any(|m| m.contains(needle)),
        "{needle} not in {:?}",
        findings.shown
    );
}

#[tokio::test]
async fn verify_catches_a_commit_that_skips_versions() {
    let mut f = fixture().await;
    f.quiesce().await;
    let stream = format!("customer/{}", f.customer);
    let commits = f.collection("commits");
    let mut last = commits
        .find_one(doc! {"_id": format!("{stream}/0000000003")})
        .await
        .unwrap()
        .unwrap();
    // Version 5 with no version 4: a gap, written as sequenced so only the chain is wrong.
    last.insert("_id", format!("{stream}/0000000005"));
    last.insert("first_version", 5i64);
    last.insert("last_version", 5i64);
    last.insert("position", Bson::Null);
    last.insert("recorded_at", bson::DateTime::from_chrono(Utc::now()));
    let mut events = last.get_array("events").unwrap().clone();
    if let Some(Bson::Document(event)) = events.get_mut(0) {
        event.insert("version", 5i64);
        event.insert("event_id", Uuid::now_v7().to_string());
    }
    last.insert("events", events);
    commits.insert_one(last).await.unwrap();
    let report = f.verify().await;
    assert_only(&report, Check::Versions, "gap in customer/");
    assert_eq!(
        report.pending.count, 1,
        "the young unsequenced commit is pending, not a violation"
    );
}

#[tokio::test]
async fn verify_catches_a_position_missing_from_the_log() {
    let mut f = fixture().await;
    f.quiesce().await;
    f.collection("events")
        .delete_one(doc! {"_id": log_id(3)})
        .await
        .unwrap();
    let report = f.verify().await;
    assert!(!report.is_clean());
    let positions = report.findings(Check::Positions).unwrap();
    assert!(
        positions
            .shown
            .iter()
            .any(|m| m.contains("position 3 is missing")),
        "{:?}",
        positions.shown
    );
    let matches = report.findings(Check::LogMatchesCommits).unwrap();
    assert!(
        matches.shown.iter().any(|m| m.contains("position 3")),
        "{:?}",
        matches.shown
    );
}

#[tokio::test]
async fn verify_catches_an_event_logged_at_two_positions() {
    let mut f = fixture().await;
    f.quiesce().await;
    copy_logged_event(&f, 2, doc! {"_id": log_id(6), "position": 6i64}).await;
    let report = f.verify().await;
    assert_only(&report, Check::LogMatchesCommits, "position 6 holds event");
}

#[tokio::test]
async fn verify_catches_a_position_held_twice() {
    let mut f = fixture().await;
    f.quiesce().await;
    // A second document claiming position 4 under a foreign key: the log holds the position
    // twice and the document's key does not match its position.
    copy_logged_event(&f, 4, doc! {"_id": "duplicate-of-4"}).await;
    let report = f.verify().await;
    assert!(!report.is_clean());
    let shown = &report.findings(Check::Positions).unwrap().shown;
    let key_mismatch = |m: &String| m.contains("duplicate-of-4") && m.contains("position 4");
    assert!(shown.iter().any(key_mismatch), "{shown:?}");
    assert!(
        shown.iter().any(|m| m.contains("holds a position twice")),
        "{shown:?}"
    );
}

/// Inserts a copy of the log document at `position` with `changes` applied and a fresh event
/// id: the unique index on `event_id` refuses an exact copy, so this is the duplicate that can
/// slip in.
async fn copy_logged_event(f: &Fixture, position: u64, changes: Document) {
    let log = f.collection("events");
    let mut copy = log
        .find_one(doc! {"_id": log_id(position)})
        .await
        .unwrap()
        .unwrap();
    copy.extend(changes);
    copy.insert("event_id", Uuid::now_v7().to_string());
    log.insert_one(copy).await.unwrap();
}

#[tokio::test]
async fn verify_catches_a_payload_the_current_schema_cannot_decode() {
    let mut f = fixture().await;
    f.quiesce().await;
    let id = format!("crew_member/{}/0000000001", f.crew_member);
    let commits = f.collection("commits");
    commits
        .update_one(
            doc! {"_id": &id},
            doc! {"$set": {"events.1.payload": {"deactivated_at": "last tuesday"}}},
        )
        .await
        .unwrap();
    let report = f.verify().await;
    assert_only(&report, Check::Decoding, &id);
}

#[tokio::test]
async fn verify_catches_an_unsequenced_commit_with_an_old_outbox_entry() {
    let mut f = fixture().await;
    f.quiesce().await;
    let old = bson::DateTime::from_chrono(Utc::now() - TimeDelta::minutes(5));
    let aggregate_id = Uuid::now_v7().to_string();
    let commit_id = format!("crew_member/{aggregate_id}/0000000001");
    let append_id = Uuid::now_v7().to_string();
    let payload = crew_member::CrewMemberEvent::CrewMemberDeactivated {
        deactivated_at: at("2026-11-25T09:00:00Z"),
    }
    .to_payload();
    f.collection("commits")
        .insert_one(doc! {
            "_id": &commit_id, "aggregate_type": "crew_member", "aggregate_id": &aggregate_id,
            "first_version": 1i64, "last_version": 1i64, "append_id": &append_id,
            "recorded_at": old, "correlation_id": "c", "causation_id": Bson::Null, "actor": "u",
            "idempotency_key": Bson::Null, "position": Bson::Null,
            "events": [{"event_id": Uuid::now_v7().to_string(), "version": 1i64,
                "type": "CrewMemberDeactivated", "schema_version": 1i32, "occurred_at": old,
                "payload": Bson::try_from(payload).unwrap()}],
        })
        .await
        .unwrap();
    f.collection("outbox")
        .insert_one(doc! {
            "_id": &append_id, "commit_id": &commit_id, "aggregate_type": "crew_member",
            "aggregate_id": &aggregate_id, "first_version": 1i64, "created_at": old,
        })
        .await
        .unwrap();
    let report = f.verify().await;
    assert_only(&report, Check::Publication, "has no position");
    let findings = report.findings(Check::Publication).unwrap();
    assert_eq!(findings.count, 2, "{:?}", findings.shown);
    assert!(findings
        .shown
        .iter()
        .any(|m| m.contains(&format!("outbox entry {append_id}"))));
}

#[tokio::test]
async fn bad_input_exits_with_code_2_one_line_and_writes_nothing() {
    let f = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let output = output.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &["export", "--output", output, "--type", "CustomerRegistred"],
        &[
            "export",
            "--output",
            output,
            "--from",
            "2026-11-26",
            "--to",
            "2026-11-25",
        ],
        &["export", "--output", output, "--from", "last week"],
        &["export", "--output", output, "--aggregate-type", "invoice"],
        &["show", "invoice", "x"],
    ];
    for args in cases {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_history"))
            .args(args)
            .env("MONGODB_URI", &f.env.mongodb_uri)
            .env("MONGODB_DB", &f.env.db_name)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(run.stdout.is_empty(), "{args:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_history"))
        .args(["show", "customer", &Uuid::now_v7().to_string()])
        .env("MONGODB_URI", &f.env.mongodb_uri)
        .env("MONGODB_DB", &f.env.db_name)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no such aggregate"));
}

#[tokio::test]
async fn export_and_show_redact_message_text_unless_asked_to_keep_it() {
    let f = fixture().await;
    let thread = ThreadId::from_uuid(Uuid::now_v7());
    let stream = StreamId::new("thread", thread.to_string()).unwrap();
    let posted = ThreadEvent::MessagePosted {
        message_id: MessageId::from_uuid(Uuid::now_v7()),
        seq: 1,
        author: UserId::from_uuid(Uuid::now_v7()),
        body: MessageBody::parse("the gate code is 9071").unwrap(),
        posted_at: at("2026-11-25T11:00:00Z"),
    };
    let commit = append(&f.store, &stream, 0, &[posted]).await;
    f.store
        .wait_for_position(&commit, Duration::from_secs(15))
        .await
        .expect("the message is sequenced");
    let messages = || FilterArgs {
        event_types: vec!["MessagePosted".into()],
        ..FilterArgs::default()
    };
    let export = |include_message_bodies| ExportOptions {
        format: Format::Jsonl,
        filter: Filter::parse(&messages()).unwrap(),
        batch_size: 10,
        include_message_bodies,
    };
    let hidden = indicatif::ProgressBar::hidden();
    let mut redacted = Vec::new();
    export::export(
        &f.store,
        &business_codec(),
        &export(false),
        &mut redacted,
        &hidden,
    )
    .await
    .unwrap();
    let redacted = String::from_utf8(redacted).unwrap();
    assert!(!redacted.contains("9071"), "{redacted}");
    let line: serde_json::Value = serde_json::from_str(redacted.trim()).unwrap();
    assert_eq!(line["payload"]["body"], "[redacted]", "{line}");
    assert_eq!(line["payload"]["body_redacted"], true, "{line}");
    assert_eq!(line["payload"]["seq"], 1, "{line}");

    let mut kept = Vec::new();
    export::export(
        &f.store,
        &business_codec(),
        &export(true),
        &mut kept,
        &hidden,
    )
    .await
    .unwrap();
    assert!(String::from_utf8(kept).unwrap().contains("9071"));

    let mut shown = show::load(
        &f.store,
        &business_codec(),
        "thread",
        &thread.to_string(),
        Point::Latest,
    )
    .await
    .unwrap();
    shown.redact_private_text();
    let mut printed = Vec::new();
    show::render(&shown, &mut printed).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(
        printed.contains("[redacted]") && !printed.contains("9071"),
        "{printed}"
    );
}
