//! `history`: the analysts' command-line view of the event store.
//!
//! - [`export`]: every event in position order as JSON Lines or CSV, filtered, streamed in
//!   constant memory, to a file that appears only once it is complete.
//! - [`show`]: one aggregate's events up to a version or a time, and its state at that point,
//!   folded with the domain's own `evolve`.
//! - [`stats`]: counts per event type and per local day in one streaming pass.
//! - [`verify`]: walks `commits`, `events` and `outbox` and reports every broken invariant
//!   (version chains, dense positions, log ≡ commits, decodable payloads, publication).
//! - [`filter`]: which events a command looks at, checked against the domain's event types.
//! - [`time`]: parsing instants and dates given on the command line.
//! - [`cli`]: the clap definitions that `main.rs` parses and dispatches.
//!
//! Every subcommand is a plain async function over an [`events::EventStore`] (or the database)
//! and a writer, so tests call them without a process. Errors are [`HistoryError`]; input
//! errors map to exit code 2, everything else that fails to 1.

pub mod cli;
pub mod export;
pub mod filter;
pub mod show;
pub mod stats;
pub mod time;
pub mod verify;

use domain::codec::Codec;
use domain::DomainEvent;
use events::store::StoreError;
use events::EventEnvelope;

/// The aggregate (stream) types of the store, as in `aggregate_type`.
pub const AGGREGATE_TYPES: &[&str] = &["customer", "job", "user", "crew_member", "thread"];

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The command line asked for something impossible; nothing was read or written.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    NotFound(String),
    #[error("reading the event store: {0}")]
    Store(#[from] StoreError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An event in the store cannot be read with this build's schema.
    #[error("{0}")]
    Decode(String),
    #[error("interrupted")]
    Interrupted,
}

impl HistoryError {
    pub fn input(message: impl Into<String>) -> Self {
        HistoryError::Input(message.into())
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| HistoryError::Io { context, source }
    }

    /// 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            HistoryError::Input(_) => 2,
            HistoryError::Interrupted => 130,
            _ => 1,
        }
    }
}

/// `event` brought to the current schema of its type by `codec`, as every service reads it.
pub fn upcast_envelope(
    codec: &Codec,
    mut event: EventEnvelope,
) -> Result<EventEnvelope, HistoryError> {
    platform::stored::upcast_in_place(codec, &mut event).map_err(|e| {
        HistoryError::Decode(format!("event {} does not upcast: {e}", event.event_id))
    })?;
    Ok(event)
}

/// Every event type name the domain can produce, over all aggregates.
pub fn all_event_types() -> impl Iterator<Item = &'static str> {
    use domain::{crew_member, customer, job, thread, user};
    customer::CustomerEvent::EVENT_TYPES
        .iter()
        .chain(job::JobEvent::EVENT_TYPES)
        .chain(user::UserEvent::EVENT_TYPES)
        .chain(crew_member::CrewMemberEvent::EVENT_TYPES)
        .chain(thread::ThreadEvent::EVENT_TYPES)
        .copied()
}

/// Whether a stored payload of any schema version decodes, through `codec`, into the event
/// enum of `aggregate_type`.
pub fn decode_check(
    codec: &Codec,
    aggregate_type: &str,
    event_type: &str,
    schema_version: u32,
    payload: serde_json::Value,
) -> Result<(), String> {
    use domain::{crew_member, customer, job, thread, user};
    fn check<E: DomainEvent>(
        codec: &Codec,
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> Result<(), String> {
        codec
            .decode::<E>(event_type, schema_version, payload)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    let stored = (codec, event_type, schema_version, payload);
    match aggregate_type {
        "customer" => check::<customer::CustomerEvent>(stored.0, stored.1, stored.2, stored.3),
        "job" => check::<job::JobEvent>(stored.0, stored.1, stored.2, stored.3),
        "user" => check::<user::UserEvent>(stored.0, stored.1, stored.2, stored.3),
        "crew_member" => {
            check::<crew_member::CrewMemberEvent>(stored.0, stored.1, stored.2, stored.3)
        }
        "thread" => check::<thread::ThreadEvent>(stored.0, stored.1, stored.2, stored.3),
        other => Err(format!("unknown aggregate type `{other}`")),
    }
}

/// Checks an aggregate type given on the command line.
pub fn parse_aggregate_type(raw: &str) -> Result<&'static str, HistoryError> {
    AGGREGATE_TYPES
        .iter()
        .find(|t| **t == raw)
        .copied()
        .ok_or_else(|| {
            HistoryError::input(format!(
                "unknown aggregate type `{raw}`; valid types: {}",
                AGGREGATE_TYPES.join(", ")
            ))
        })
}
