//! Bulky arrays of read-model documents, stored as one binary value.
//!
//! FerretDB's SQLite backend stores each document as JSON with a type schema beside every
//! value, repeated for every element of an array of objects: a customer-list entry of about
//! 300 bytes carried some 700 bytes of schema, and the list buckets of the M data set took
//! 253 MB. Every point read and every update of a document parses the JSON of its whole
//! partition there, so those bytes were paid on each write of the projector and each read
//! the query API's cache misses. A field marked `#[serde(with = "crate::packed")]` is stored
//! as a BSON binary (generic subtype) holding the BSON encoding of `{v: <the value>}`: one
//! schema entry for the whole field. MongoDB stores the same bytes as before plus a few;
//! nothing queries inside these fields (every read of a read model is by `_id`).
//!
//! Reading accepts the unpacked form too (the value itself, as an array or a document), so
//! documents written before a field was packed stay readable until they are rewritten.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize)]
struct Holder<'a, T> {
    v: &'a T,
}

#[derive(Deserialize)]
struct OwnedHolder<T> {
    v: T,
}

pub(crate) fn serialize<S, T>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    let bytes = bson::to_vec(&Holder { v: value }).map_err(serde::ser::Error::custom)?;
    serializer.serialize_bytes(&bytes)
}

pub(crate) fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    deserializer.deserialize_any(PackedVisitor(PhantomData))
}

struct PackedVisitor<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for PackedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a packed value (BSON binary) or the value itself")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<T, E> {
        bson::from_slice::<OwnedHolder<T>>(bytes)
            .map(|holder| holder.v)
            .map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bson::{doc, Bson};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Item {
        key: String,
        count: i64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Doc {
        name: String,
        #[serde(with = "crate::packed")]
        items: Vec<Item>,
        #[serde(with = "crate::packed", default)]
        days: BTreeMap<String, Item>,
    }

    fn sample() -> Doc {
        Doc {
            name: "bucket".into(),
            items: vec![
                Item {
                    key: "a".into(),
                    count: 1,
                },
                Item {
                    key: "b".into(),
                    count: 2,
                },
            ],
            days: BTreeMap::from([(
                "01".to_string(),
                Item {
                    key: "c".into(),
                    count: 3,
                },
            )]),
        }
    }

    #[test]
    fn a_packed_field_is_one_binary_value_and_reads_back_equal() {
        let doc = sample();
        let stored = bson::to_document(&doc).unwrap();
        assert!(matches!(stored.get("items"), Some(Bson::Binary(_))));
        assert!(matches!(stored.get("days"), Some(Bson::Binary(_))));
        assert_eq!(stored.get_str("name").unwrap(), "bucket");
        assert_eq!(bson::from_document::<Doc>(stored).unwrap(), doc);

        let raw = bson::to_raw_document_buf(&doc).unwrap();
        assert_eq!(bson::from_slice::<Doc>(raw.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn a_field_stored_before_it_was_packed_still_reads() {
        let legacy = doc! {
            "name": "bucket",
            "items": [{"key": "a", "count": 1_i64}, {"key": "b", "count": 2_i64}],
            "days": {"01": {"key": "c", "count": 3_i64}},
        };
        assert_eq!(
            bson::from_document::<Doc>(legacy.clone()).unwrap(),
            sample()
        );
        let raw = bson::to_vec(&legacy).unwrap();
        assert_eq!(bson::from_slice::<Doc>(&raw).unwrap(), sample());
    }

    #[test]
    fn a_damaged_packed_value_is_an_error_not_a_default() {
        let damaged = doc! {
            "name": "bucket",
            "items": Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![1, 2, 3],
            }),
        };
        assert!(bson::from_document::<Doc>(damaged).is_err());
    }
}
