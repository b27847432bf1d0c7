//! Instants as BSON dates in stored documents and as RFC 3339 text in JSON.
//!
//! `chrono`'s own `Serialize` writes text everywhere, so a stored `posted_at` would be a string
//! a MongoDB user cannot compare, sort or filter as a date. The same view types are stored
//! (BSON, not human-readable) and served (JSON, human-readable), so the form follows the
//! format: `#[serde(with = "crate::instant")]` on a `DateTime<Utc>` field, and
//! `crate::instant::optional` on an `Option<DateTime<Utc>>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `instant` as a stored document gives it back: a BSON date keeps milliseconds. What a model
/// derives from an instant of a document (a list key) must come from this, or it differs
/// between a document still in the cache and the same one read back from the store.
pub(crate) fn as_stored(instant: DateTime<Utc>) -> DateTime<Utc> {
    bson::DateTime::from_chrono(instant).to_chrono()
}

pub(crate) fn serialize<S: Serializer>(
    instant: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        instant.serialize(serializer)
    } else {
        bson::DateTime::from_chrono(*instant).serialize(serializer)
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    if deserializer.is_human_readable() {
        DateTime::<Utc>::deserialize(deserializer)
    } else {
        bson::DateTime::deserialize(deserializer).map(bson::DateTime::to_chrono)
    }
}

/// The same for an optional instant (absent stays `null`).
pub(crate) mod optional {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(serde::Serialize, Deserialize)]
    #[serde(transparent)]
    struct Instant(#[serde(with = "super")] DateTime<Utc>);

    pub(crate) fn serialize<S: Serializer>(
        instant: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match instant {
            Some(instant) => serializer.serialize_some(&Instant(*instant)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Instant>::deserialize(deserializer)?.map(|Instant(at)| at))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use domain::ids::JobId;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Posted {
        job_id: JobId,
        #[serde(with = "crate::instant")]
        posted_at: DateTime<Utc>,
        #[serde(with = "crate::instant::optional")]
        read_at: Option<DateTime<Utc>>,
        #[serde(with = "crate::instant::optional")]
        edited_at: Option<DateTime<Utc>>,
    }

    fn posted() -> Posted {
        Posted {
            job_id: JobId::from_uuid(uuid::Uuid::from_u128(0x0001_90aa)),
            posted_at: Utc.with_ymd_and_hms(2030, 3, 13, 9, 30, 0).unwrap(),
            read_at: Some(Utc.with_ymd_and_hms(2030, 3, 14, 8, 0, 0).unwrap()),
            edited_at: None,
        }
    }

    #[test]
    fn stored_instants_are_bson_dates_and_ids_are_text() {
        let value = posted();
        // As `stored::seal` writes it and `stored::open` reads it back.
        let raw = bson::to_raw_document_buf(&value).unwrap();
        let stored = raw.to_document().unwrap();
        assert_eq!(
            stored.get_datetime("posted_at").unwrap().to_chrono(),
            value.posted_at
        );
        assert!(stored.get_datetime("read_at").is_ok(), "{stored}");
        assert_eq!(stored.get("edited_at"), Some(&bson::Bson::Null));
        assert_eq!(
            stored.get_str("job_id"),
            Ok("00000000-0000-0000-0000-0000000190aa")
        );
        assert_eq!(bson::from_slice::<Posted>(raw.as_bytes()).unwrap(), value);
    }

    #[test]
    fn served_instants_are_rfc3339_text() {
        let value = posted();
        let json = serde_json::to_value(&value).unwrap();
        assert_eq!(json["posted_at"], "2030-03-13T09:30:00Z");
        assert_eq!(json["edited_at"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Posted>(json).unwrap(), value);
    }
}
