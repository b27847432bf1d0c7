//! Inserts N synthetic, valid customer events straight into `commits` and `events`, in the
//! exact shapes the store writes, for measuring `history export` and `history verify`.
//!
//!     cargo run --release -p history --example seed_events -- --events 1000000
//!     cargo run --release -p history --example seed_events -- --drop
//!
//! Events come from `domain::customer::decide` (a registration, then status changes), in
//! commits of `--per-commit` events, `--commits-per-stream` commits per customer, sequenced
//! after the current end of the log and recorded one every `--spacing-ms` from `--start`.
//! Nothing goes to the outbox: the commits are born published.

use std::time::Instant;

use anyhow::Context;
use bson::{doc, Bson, Document};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use domain::customer::{self, CustomerCommand, CustomerState};
use domain::enums::{CustomerStatus, ReferralSource};
use domain::ids::CustomerId;
use domain::values::{Address, AddressInput, Email, PersonName, Phone};
use domain::DomainEvent;
use futures::stream::{self, StreamExt, TryStreamExt};
use platform::config::ConnectionArgs;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Seed {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// How many events to insert.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    #[arg(long, default_value_t = 100)]
    per_commit: u64,
    #[arg(long, default_value_t = 10)]
    commits_per_stream: u64,
    /// Record time of the first event.
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    start: DateTime<Utc>,
    #[arg(long, default_value_t = 2_500)]
    spacing_ms: i64,
    /// Documents per insert_many.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Drop the database instead of seeding it (clean up after a measurement).
    #[arg(long)]
    drop: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seed = Seed::parse();
    let client = events::store::connect_client(&seed.connection.mongodb_uri, "seed")
        .await
        .context("connecting to MongoDB")?;
    if seed.drop {
        client
            .database(&seed.connection.mongodb_db)
            .drop()
            .await
            .context("dropping the database")?;
        eprintln!("dropped {}", seed.connection.mongodb_db);
        return Ok(());
    }
    let store = events::EventStore::open(client.database(&seed.connection.mongodb_db))
        .await
        .context("opening the event store")?;
    let first_position = history::export::estimated_log_size(&store)
        .await
        .context("finding the end of the log")?
        + 1;
    let db = store.database();
    let commits = db.collection::<Document>("commits");
    let log = db.collection::<Document>("events");

    let started = Instant::now();
    let mut position = first_position as i64;
    let mut remaining = seed.events;
    let mut commit_docs = Vec::new();
    let mut log_docs = Vec::new();
    let mut inserted = 0u64;
    while remaining > 0 {
        let stream_events = remaining.min(seed.per_commit * seed.commits_per_stream);
        let customer_id = Uuid::new_v4();
        let history = customer_history(customer_id, stream_events, seed.start)?;
        let mut version = 1i64;
        for chunk in history.chunks(seed.per_commit as usize) {
            let recorded_at = bson::DateTime::from_chrono(
                seed.start + Duration::milliseconds(seed.spacing_ms * (position - 1)),
            );
            let (commit, logged) =
                build_commit(customer_id, version, position, recorded_at, chunk)?;
            commit_docs.push(commit);
            log_docs.extend(logged);
            version += chunk.len() as i64;
            position += chunk.len() as i64;
        }
        remaining -= stream_events;
        if log_docs.len() >= seed.batch * 4 || remaining == 0 {
            inserted += log_docs.len() as u64;
            flush(&commits, &log, &mut commit_docs, &mut log_docs, seed.batch).await?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{inserted} events inserted, {:.0} events/s",
                inserted as f64 / seconds
            );
        }
    }
    eprintln!(
        "seeded positions {first_position}..{} in {:.1} s",
        position - 1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A valid history of one customer: registered, then its status toggled.
fn customer_history(
    id: Uuid,
    count: u64,
    start: DateTime<Utc>,
) -> anyhow::Result<Vec<customer::CustomerEvent>> {
    let mut state = CustomerState::default();
    let mut events = Vec::with_capacity(count as usize);
    let address = Address::parse(AddressInput {
        line1: "1 Main St".into(),
        city: "Springfield".into(),
        postal_code: "12345".into(),
        ..AddressInput::default()
    })?;
    let mut command = CustomerCommand::Register {
        customer_id: CustomerId::from_uuid(id),
        first_name: PersonName::parse("Ada")?,
        last_name: PersonName::parse("Lovelace")?,
        email: Email::parse(&format!("{}@example.com", id.simple()))?,
        phone: Phone::parse("+1 555 123 4567")?,
        referral_source: ReferralSource::Website,
        address,
        registered_at: start,
    };
    while (events.len() as u64) < count {
        let decided = customer::decide(&state, command)?;
        for event in &decided {
            state = customer::evolve(state, event);
        }
        events.extend(decided);
        let status = match state.customer.as_ref().map(|c| c.status) {
            Some(CustomerStatus::Active) => CustomerStatus::Inactive,
            _ => CustomerStatus::Active,
        };
        command = CustomerCommand::ChangeStatus {
            status,
            changed_at: start + Duration::seconds(events.len() as i64),
        };
    }
    Ok(events)
}

fn build_commit(
    customer_id: Uuid,
    first_version: i64,
    first_position: i64,
    recorded_at: bson::DateTime,
    events: &[customer::CustomerEvent],
) -> anyhow::Result<(Document, Vec<Document>)> {
    let aggregate_id = customer_id.to_string();
    let commit_id = format!("customer/{aggregate_id}/{first_version:010}");
    let correlation_id = Uuid::now_v7().to_string();
    let mut committed = Vec::with_capacity(events.len());
    let mut logged = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let event_id = Uuid::now_v7().to_string();
        let version = first_version + index as i64;
        let payload = Bson::try_from(event.to_payload()).context("payload to BSON")?;
        committed.push(doc! {
            "event_id": &event_id,
            "version": version,
            "type": event.event_type(),
            "schema_version": 1i32,
            "occurred_at": recorded_at,
            "payload": payload.clone(),
        });
        logged.push(doc! {
            "_id": events::store::log_id((first_position + index as i64) as u64),
            "position": first_position + index as i64,
            "event_id": &event_id,
            "aggregate_type": "customer",
            "aggregate_id": &aggregate_id,
            "version": version,
            "type": event.event_type(),
            "schema_version": 1i32,
            "occurred_at": recorded_at,
            "recorded_at": recorded_at,
            "correlation_id": &correlation_id,
            "causation_id": Bson::Null,
            "actor": "system:seed",
            "payload": payload,
            "commit_id": &commit_id,
        });
    }
    let commit = doc! {
        "_id": &commit_id,
        "aggregate_type": "customer",
        "aggregate_id": &aggregate_id,
        "first_version": first_version,
        "last_version": first_version + events.len() as i64 - 1,
        "append_id": Uuid::now_v7().to_string(),
        "recorded_at": recorded_at,
        "correlation_id": &correlation_id,
        "causation_id": Bson::Null,
        "actor": "system:seed",
        "idempotency_key": Bson::Null,
        "position": first_position,
        "events": committed,
    };
    Ok((commit, logged))
}

/// Commits first, then the log in position order (one writer, ordered batches), so the log
/// grows at its tail as the relay would grow it.
async fn flush(
    commits: &mongodb::Collection<Document>,
    log: &mongodb::Collection<Document>,
    commit_docs: &mut Vec<Document>,
    log_docs: &mut Vec<Document>,
    batch: usize,
) -> anyhow::Result<()> {
    let commit_batch = (batch / 100).max(1);
    stream::iter(std::mem::take(commit_docs).chunks(commit_batch))
        .map(|chunk| async move { commits.insert_many(chunk.to_vec()).await })
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await
        .context("inserting commits")?;
    for chunk in std::mem::take(log_docs).chunks(batch) {
        log.insert_many(chunk.to_vec())
            .await
            .context("inserting events")?;
    }
    Ok(())
}
