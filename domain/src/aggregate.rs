//! The two traits every aggregate and its events implement.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{DomainError, PayloadError};

/// A consistency boundary: a state folded from its events, and a pure decision function.
///
/// `decide` never reads a clock or generates ids; commands carry both. `evolve` never fails:
/// events are facts, so it applies whatever it is given (an event that does not fit the
/// state is ignored rather than panicking).
pub trait Aggregate {
    /// Stream category: `"customer"`, `"job"`, `"user"`, `"crew_member"`, `"thread"`.
    const TYPE: &'static str;
    /// Version of the serialized `State`. Bump it whenever `State`'s shape or meaning
    /// changes, so stored snapshots of the old shape are discarded and rebuilt from events.
    const SNAPSHOT_VERSION: u32;

    /// The state needed to decide, not a read model. `Default` means "not yet created".
    type State: Default + Clone + fmt::Debug + PartialEq + Serialize + DeserializeOwned;
    type Command: Clone + fmt::Debug + PartialEq;
    type Event: DomainEvent;

    fn decide(state: &Self::State, command: Self::Command)
        -> Result<Vec<Self::Event>, DomainError>;

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds `events` onto the "not yet created" state.
    fn replay<'a, I>(events: I) -> Self::State
    where
        I: IntoIterator<Item = &'a Self::Event>,
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), Self::evolve)
    }
}

/// An event enum with a stable stored form: a PascalCase type name plus a JSON payload.
///
/// The default `to_payload`/`from_payload` assume the enum is declared with
/// `#[serde(tag = "type", content = "data")]` and struct variants, so the payload is the
/// variant's fields as a snake_case JSON object.
pub trait DomainEvent: Clone + PartialEq + fmt::Debug + Serialize + DeserializeOwned {
    /// Every event type name this enum can produce, as stored.
    const EVENT_TYPES: &'static [&'static str];

    /// Stable PascalCase name, e.g. `"CustomerRegistered"`.
    fn event_type(&self) -> &'static str;

    /// The event's data without the type tag.
    fn to_payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut tagged)) => tagged.remove("data").unwrap_or(Value::Null),
            // Unreachable for the derive-only, string-keyed event enums of this crate; the
            // payload round-trip tests would catch an enum that breaks the convention.
            _ => Value::Null,
        }
    }

    /// Rebuilds an event from its type name and a payload of the current schema version.
    /// Stored events are read through [`crate::codec::Codec`], which upcasts first.
    fn from_payload(event_type: &str, payload: Value) -> Result<Self, PayloadError> {
        if !Self::EVENT_TYPES.contains(&event_type) {
            return Err(PayloadError::UnknownEventType {
                event_type: event_type.to_owned(),
            });
        }
        let mut tagged = serde_json::Map::new();
        tagged.insert("type".to_owned(), Value::String(event_type.to_owned()));
        tagged.insert("data".to_owned(), payload);
        serde_json::from_value(Value::Object(tagged)).map_err(|e| PayloadError::Invalid {
            event_type: event_type.to_owned(),
            reason: e.to_string(),
        })
    }
}
