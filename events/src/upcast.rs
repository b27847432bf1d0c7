//! Loading events written by older schema versions.
//!
//! Stored events are never rewritten. When an event's payload shape changes, its schema version
//! goes up and an upcaster that turns the previous version's payload into the next one is
//! registered here; readers run the chain before decoding, so every consumer sees only the
//! current shape.

use std::collections::HashMap;

use crate::envelope::EventEnvelope;

/// Turns the payload of `event_type` at schema version `from` into version `from + 1`.
pub type UpcastFn = fn(serde_json::Value) -> Result<serde_json::Value, String>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpcastError {
    #[error("event {event_id} ({event_type} v{from}) could not be upcast: {reason}")]
    Failed {
        event_id: String,
        event_type: String,
        from: u32,
        reason: String,
    },
    #[error("event {event_id} ({event_type}) has schema version {found}, newer than the {current} this build knows")]
    FromTheFuture {
        event_id: String,
        event_type: String,
        found: u32,
        current: u32,
    },
}

/// The registered upcasters and the current schema version of each event type.
#[derive(Debug, Default, Clone)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
    current: HashMap<String, u32>,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step from schema version `from` to `from + 1` of `event_type`.
    pub fn register(mut self, event_type: &str, from: u32, step: UpcastFn) -> Self {
        self.steps.insert((event_type.to_owned(), from), step);
        let current = self.current.entry(event_type.to_owned()).or_insert(1);
        *current = (*current).max(from + 1);
        self
    }

    /// The schema version that readers of `event_type` expect.
    pub fn current_version(&self, event_type: &str) -> u32 {
        self.current.get(event_type).copied().unwrap_or(1)
    }

    /// Brings an envelope's payload to the current schema version of its type.
    pub fn upcast(&self, mut envelope: EventEnvelope) -> Result<EventEnvelope, UpcastError> {
        let current = self.current_version(&envelope.event_type);
        if envelope.schema_version > current {
            return Err(UpcastError::FromTheFuture {
                event_id: envelope.event_id.to_string(),
                event_type: envelope.event_type,
                found: envelope.schema_version,
                current,
            });
        }
        while envelope.schema_version < current {
            let from = envelope.schema_version;
            let key = (envelope.event_type.clone(), from);
            let step = self.steps.get(&key).ok_or_else(|| UpcastError::Failed {
                event_id: envelope.event_id.to_string(),
                event_type: envelope.event_type.clone(),
                from,
                reason: format!("no upcaster registered from version {from}"),
            })?;
            envelope.payload = step(envelope.payload).map_err(|reason| UpcastError::Failed {
                event_id: envelope.event_id.to_string(),
                event_type: envelope.event_type.clone(),
                from,
                reason,
            })?;
            envelope.schema_version = from + 1;
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn envelope(
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::now_v7(),
            aggregate_type: "customer".into(),
            aggregate_id: "c1".into(),
            version: 1,
            position: Some(1),
            event_type: event_type.into(),
            schema_version,
            occurred_at: chrono::Utc::now(),
            recorded_at: chrono::Utc::now(),
            correlation_id: "c".into(),
            causation_id: None,
            actor: "u".into(),
            payload,
        }
    }

    /// v1 stored one `name`; v2 splits it into first and last name.
    fn split_name(mut payload: serde_json::Value) -> Result<serde_json::Value, String> {
        let name = payload["name"].as_str().ok_or("missing name")?.to_owned();
        let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
        payload["first_name"] = json!(first);
        payload["last_name"] = json!(last);
        payload
            .as_object_mut()
            .ok_or("not an object")?
            .remove("name");
        Ok(payload)
    }

    #[test]
    fn an_old_event_is_upcast_to_the_current_schema() {
        let upcasters = Upcasters::new().register("CustomerRegistered", 1, split_name);
        let old = envelope("CustomerRegistered", 1, json!({"name": "Ada Lovelace"}));
        let current = upcasters.upcast(old).unwrap();
        assert_eq!(current.schema_version, 2);
        assert_eq!(
            current.payload,
            json!({"first_name": "Ada", "last_name": "Lovelace"})
        );
    }

    #[test]
    fn current_events_pass_through_unchanged() {
        let upcasters = Upcasters::new().register("CustomerRegistered", 1, split_name);
        let event = envelope("CustomerRegistered", 2, json!({"first_name": "A"}));
        assert_eq!(upcasters.upcast(event.clone()).unwrap(), event);
        let other = envelope("JobCreated", 1, json!({}));
        assert_eq!(upcasters.upcast(other.clone()).unwrap(), other);
    }

    #[test]
    fn events_from_a_newer_build_are_refused() {
        let upcasters = Upcasters::new();
        let err = upcasters
            .upcast(envelope("JobCreated", 3, json!({})))
            .unwrap_err();
        assert!(matches!(err, UpcastError::FromTheFuture { found: 3, .. }));
    }

    #[test]
    fn a_failing_step_names_the_event() {
        let upcasters = Upcasters::new().register("CustomerRegistered", 1, split_name);
        let err = upcasters
            .upcast(envelope("CustomerRegistered", 1, json!({"nom": 1})))
            .unwrap_err();
        assert!(err.to_string().contains("missing name"), "{err}");
    }
}
