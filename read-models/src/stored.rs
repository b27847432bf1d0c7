//! The stored form of a read-model document: a plain document, `_id` (its bucket key), `_pos`
//! (the log position it was last written at), then the value's own fields by name, as a
//! MongoDB user reads it with `find({_id: …})`.

use bson::{Document, RawDocumentBuf};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A stored document that cannot be read back as its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoredError(String);

/// The stored form of `value` with `_id` = `id` and `_pos` = `pos`, and the length of the
/// value's own encoding, which is what it takes in memory once read.
pub(crate) fn seal<T: Serialize>(
    value: &T,
    id: &str,
    pos: i64,
) -> Result<(RawDocumentBuf, usize), bson::ser::Error> {
    let fields = bson::to_raw_document_buf(value)?;
    let length = fields.as_bytes().len();
    let mut stored = RawDocumentBuf::new();
    stored.append("_id", id);
    stored.append("_pos", pos);
    for field in &fields {
        let (key, value) = field.map_err(<bson::ser::Error as serde::ser::Error>::custom)?;
        // A value's own `_id` or `_pos` would shadow the document's.
        if key != "_id" && key != "_pos" {
            stored.append(key, value.to_raw_bson());
        }
    }
    Ok((stored, length))
}

/// The value a stored document holds, and the length of its encoding.
pub(crate) fn open<T: DeserializeOwned>(stored: &Document) -> Result<(T, usize), StoredError> {
    let encoded = bson::to_vec(stored).map_err(|e| StoredError(e.to_string()))?;
    let value = bson::from_slice(&encoded).map_err(|e| StoredError(e.to_string()))?;
    Ok((value, encoded.len()))
}

#[cfg(test)]
mod tests {
    use bson::doc;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Summary {
        name: String,
        status: String,
        crew: Vec<String>,
        price_minor: i64,
    }

    #[test]
    fn a_document_is_stored_as_its_fields_by_name_and_reads_back_equal() {
        let value = Summary {
            name: "George Kelly".into(),
            status: "scheduled".into(),
            crew: vec!["Cris".into(), "Olga".into()],
            price_minor: 125_000,
        };
        let (raw, length) = seal(&value, "j1", 7).unwrap();
        let stored = raw.to_document().unwrap();
        let keys: Vec<&String> = stored.keys().collect();
        assert_eq!(
            keys,
            ["_id", "_pos", "name", "status", "crew", "price_minor"]
        );
        assert_eq!(stored.get_str("_id"), Ok("j1"));
        assert_eq!(stored.get_i64("_pos"), Ok(7));
        assert_eq!(stored.get_i64("price_minor"), Ok(125_000));
        assert_eq!(length, bson::to_vec(&value).unwrap().len());
        assert_eq!(open::<Summary>(&stored).unwrap().0, value);
    }

    #[test]
    fn a_document_that_is_not_the_value_is_an_error_not_a_default() {
        let wrong = doc! {"_id": "j1", "_pos": 7_i64, "name": 3, "status": "x"};
        assert!(open::<Summary>(&wrong).is_err());
    }
}
