//! Stored events in the shape their readers expect: envelopes brought to the current schema
//! of their type through the domain's codec, for readers that pass events on (projection, the
//! event API, exports) rather than decode them.

use domain::codec::{self, Codec, DecodeError};
use events::EventEnvelope;

/// Upcasts `event`'s payload and schema version in place; an event that cannot be upcast is
/// left exactly as stored.
pub fn upcast_in_place(codec: &Codec, event: &mut EventEnvelope) -> Result<(), DecodeError> {
    let current = codec::current_version(&event.event_type);
    if event.schema_version == current {
        return Ok(());
    }
    event.payload = codec.upcast(
        &event.event_type,
        event.schema_version,
        event.payload.clone(),
    )?;
    event.schema_version = current;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::calendar::BusinessTimeZone;
    use serde_json::json;

    fn envelope(
        event_type: &str,
        schema_version: u32,
        payload: serde_json::Value,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: uuid::Uuid::now_v7(),
            aggregate_type: "job".into(),
            aggregate_id: uuid::Uuid::now_v7().to_string(),
            version: 2,
            position: Some(7),
            event_type: event_type.into(),
            schema_version,
            occurred_at: chrono::Utc::now(),
            recorded_at: chrono::Utc::now(),
            correlation_id: "c".into(),
            causation_id: None,
            actor: "u".into(),
            traceparent: None,
            payload,
        }
    }

    fn codec() -> Codec {
        Codec::for_business(BusinessTimeZone::parse("Europe/Lisbon").unwrap())
    }

    #[test]
    fn an_old_envelope_is_brought_to_the_current_schema() {
        let window = json!({"start": "08:00:00", "end": "09:00:00"});
        let mut event = envelope("JobScheduled", 1, json!({"window": window}));
        upcast_in_place(&codec(), &mut event).unwrap();
        assert_eq!(event.schema_version, 2);
        assert_eq!(event.payload["window"]["time_zone"], "Europe/Lisbon");
    }

    #[test]
    fn an_envelope_that_cannot_be_upcast_stays_as_stored() {
        let mut event = envelope("JobScheduled", 1, json!({"window": 3}));
        let stored = event.clone();
        assert!(upcast_in_place(&codec(), &mut event).is_err());
        assert_eq!(event, stored);
        let mut future = envelope("JobScheduled", 9, json!({}));
        assert!(upcast_in_place(&codec(), &mut future).is_err());
        assert_eq!(future.schema_version, 9);
    }
}
