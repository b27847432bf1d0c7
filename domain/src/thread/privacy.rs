//! What of a thread may leave the people in it.
//!
//! Messages are private to a thread's participants. The raw event log and its exports go to
//! analysts and auditors who are usually not among them, so every reader of the log outside
//! a thread gets its message text redacted: `body` of `MessagePosted` becomes
//! [`REDACTED_TEXT`] and `body_redacted` is set, so the event keeps its shape and a reader
//! can tell a redaction from a message. Ids, authors, sequence numbers and times stay: they
//! are what activity analysis counts. Thread titles name jobs and groups, not conversations,
//! and stay too.

use serde_json::Value;

/// Stands in for redacted message text.
pub const REDACTED_TEXT: &str = "[redacted]";

/// Redacts the private text of one event's payload in place; `true` when something was
/// redacted. Events that hold no private text are left as they are.
pub fn redact_private_text(event_type: &str, payload: &mut Value) -> bool {
    if event_type != "MessagePosted" {
        return false;
    }
    let Some(fields) = payload.as_object_mut() else {
        return false;
    };
    match fields.get_mut("body") {
        Some(body) if body.is_string() => {
            *body = Value::String(REDACTED_TEXT.to_owned());
            fields.insert("body_redacted".to_owned(), Value::Bool(true));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::aggregate::DomainEvent;
    use crate::thread::ThreadEvent;

    #[test]
    fn a_message_body_is_redacted_and_the_event_still_decodes() {
        let mut payload = json!({
            "message_id": "0190aaaa-0000-7000-8000-000000000001",
            "seq": 4,
            "author": "0190aaaa-0000-7000-8000-000000000002",
            "body": "the door code is 4411",
            "posted_at": "2030-03-13T09:30:00Z",
        });
        assert!(redact_private_text("MessagePosted", &mut payload));
        assert_eq!(payload["body"], REDACTED_TEXT);
        assert_eq!(payload["body_redacted"], true);
        assert_eq!(payload["seq"], 4);
        let event = ThreadEvent::from_payload("MessagePosted", payload).unwrap();
        assert_eq!(event.event_type(), "MessagePosted");
    }

    #[test]
    fn events_without_private_text_are_untouched() {
        let original = json!({"user": "u", "up_to_seq": 3, "read_at": "2030-03-13T09:30:00Z"});
        let mut payload = original.clone();
        assert!(!redact_private_text("ThreadRead", &mut payload));
        assert_eq!(payload, original);
        let mut odd = json!({"body": 7});
        assert!(!redact_private_text("MessagePosted", &mut odd));
    }
}
