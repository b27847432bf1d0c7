//! The stored and published shape of one event.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Names one event stream: the events of one aggregate instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    pub aggregate_type: String,
    pub aggregate_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid stream name `{0}`: expected <aggregate_type>/<aggregate_id> with letters, digits, '_' or '-'")]
pub struct InvalidStreamId(pub String);

impl StreamId {
    /// Both parts end up in NATS subjects and MongoDB `_id`s, so they are restricted to
    /// characters that are safe in both (no `.`, `/`, `*`, `>`, `$`, whitespace).
    pub fn new(
        aggregate_type: impl Into<String>,
        aggregate_id: impl Into<String>,
    ) -> Result<Self, InvalidStreamId> {
        let stream = StreamId {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 100
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if valid(&stream.aggregate_type) && valid(&stream.aggregate_id) {
            Ok(stream)
        } else {
            Err(InvalidStreamId(stream.to_string()))
        }
    }

    /// The `_id` of the commit that starts at `first_version`; zero padding keeps the ids of
    /// one stream in version order when they are sorted as strings.
    pub fn commit_id(&self, first_version: u64) -> String {
        format!("{self}/{first_version:010}")
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

impl FromStr for StreamId {
    type Err = InvalidStreamId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, id) = s.split_once('/').ok_or_else(|| InvalidStreamId(s.into()))?;
        StreamId::new(kind, id)
    }
}

/// Who did it and why, recorded on every event of an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EventMetadata {
    pub correlation_id: String,
    pub causation_id: Option<String>,
    /// The acting user's id (a JWT subject), or a system actor such as `system:loader`.
    pub actor: String,
    /// The W3C `traceparent` of the request that caused the events, so the projection of each
    /// event continues the command's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event as the domain hands it to the store, before it has a version or a position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        occurred_at: DateTime<Utc>,
        payload: serde_json::Value,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            occurred_at,
            payload,
        }
    }
}

/// One recorded event with everything a reader needs, as published on JetStream and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1, 2, 3 … within the stream, without gaps.
    pub version: u64,
    /// Global order of the whole store, dense from 1; `None` until the relay has sequenced the
    /// commit (only visible on reads of a stream right after an append).
    pub position: Option<u64>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub actor: String,
    /// The W3C `traceparent` of the command that recorded the event, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub payload: serde_json::Value,
}

impl EventEnvelope {
    pub fn stream(&self) -> StreamId {
        StreamId {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::now_v7(),
            aggregate_type: "job".into(),
            aggregate_id: "0190a1b2-0000-7000-8000-000000000001".into(),
            version: 3,
            position: Some(42),
            event_type: "JobScheduled".into(),
            schema_version: 2,
            occurred_at: "2026-11-25T08:30:00.123456Z".parse().unwrap(),
            recorded_at: "2026-11-25T08:30:00.200Z".parse().unwrap(),
            correlation_id: "req-1".into(),
            causation_id: Some("cmd-1".into()),
            actor: "user-7".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            payload: serde_json::json!({"date": "2026-12-01", "window": {"start": "08:00", "end": "12:00"}, "n": 9007199254740993u64}),
        }
    }

    #[test]
    fn envelope_round_trips_through_json_exactly() {
        let envelope = sample();
        let json = serde_json::to_string(&envelope).unwrap();
        let back: EventEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn stream_ids_reject_characters_unsafe_in_subjects_and_ids() {
        assert!(StreamId::new("job", "abc-123_x").is_ok());
        for bad in ["a.b", "a/b", "a*", "a>", "", "a b", "$x"] {
            assert!(StreamId::new("job", bad).is_err(), "{bad} accepted");
        }
        assert_eq!("job/x1".parse::<StreamId>().unwrap().aggregate_id, "x1");
        assert!("nojob".parse::<StreamId>().is_err());
    }

    #[test]
    fn commit_ids_sort_in_version_order() {
        let stream = StreamId::new("thread", "t1").unwrap();
        assert!(stream.commit_id(9) < stream.commit_id(10));
        assert_eq!(stream.commit_id(1), "thread/t1/0000000001");
    }
}
