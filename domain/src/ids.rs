//! Identifier newtypes over [`uuid::Uuid`], one per aggregate (plus messages).
//!
//! They serialize as the hyphenated UUID string in every format, so `CustomerId` and `JobId`
//! cannot be mixed up in code while a stored id stays readable text. `Uuid`'s own `Serialize`
//! writes 16 raw bytes to binary formats such as BSON, which a person reading a document with
//! `find` sees as an opaque binary; these ids never do. Reading accepts both forms, so
//! documents written before the change still load.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::FieldError;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(UuidVisitor).map(Self)
            }
        }

        #[cfg(test)]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "string", "format": "uuid"})
            }
        }

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

/// Reads a UUID from its text form or, for documents written by `Uuid`'s own `Serialize`
/// to a binary format, from its 16 bytes.
struct UuidVisitor;

impl Visitor<'_> for UuidVisitor {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UUID string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Uuid, E> {
        Uuid::parse_str(value).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Uuid, E> {
        Uuid::from_slice(value).map_err(E::custom)
    }
}

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
    fn an_id_reads_back_from_its_sixteen_bytes() {
        let uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
        let bytes =
            serde::de::value::BytesDeserializer::<serde::de::value::Error>::new(uuid.as_bytes());
        assert_eq!(JobId::deserialize(bytes), Ok(JobId::from_uuid(uuid)));
    }

    #[test]
    fn a_malformed_id_string_is_refused_by_serde() {
        assert!(serde_json::from_value::<JobId>(serde_json::json!("nope")).is_err());
        assert!(serde_json::from_value::<JobId>(serde_json::json!(7)).is_err());
    }

    #[test]
    fn malformed_id_is_a_field_error() {
        let err = "nope".parse::<CustomerId>().unwrap_err();
        assert_eq!(err.field, "customer_id");
    }
}
