//! Identifier newtypes over [`uuid::Uuid`], one per aggregate (plus messages).
//!
//! They serialize transparently as the hyphenated UUID string, so `CustomerId` and `JobId`
//! cannot be mixed up in code while the stored format stays a plain UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|e| FieldError::new($field, format!("must be a UUID: {e}")))
            }
        }
    };
}

id_type!(
    /// Identity of a customer stream.
    CustomerId,
    "customer_id"
);
id_type!(
    /// Identity of a job stream.
    JobId,
    "job_id"
);
id_type!(
    /// Identity of a staff user stream.
    UserId,
    "user_id"
);
id_type!(
    /// Identity of a crew member stream.
    CrewMemberId,
    "crew_member_id"
);
id_type!(
    /// Identity of a messaging thread stream.
    ThreadId,
    "thread_id"
);
id_type!(
    /// Identity of one message inside a thread (messages are events, not streams).
    MessageId,
    "message_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_parse_and_serialize_as_plain_uuids() {
        let uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        let id = JobId::from_uuid(uuid);
        assert_eq!(id.to_string(), uuid.to_string());
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!(
            serde_json::to_value(id).ok(),
            Some(serde_json::json!(uuid.to_string()))
        );
        let back: JobId = serde_json::from_value(serde_json::json!(uuid.to_string())).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn malformed_id_is_a_field_error() {
        let err = "nope".parse::<CustomerId>().unwrap_err();
        assert_eq!(err.field, "customer_id");
    }
}
