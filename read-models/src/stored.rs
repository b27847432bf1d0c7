//! The stored form of a read-model document: `{_id, _pos, _body}`, where `_body` is one BSON
//! binary holding the document's own BSON encoding, LZ4-compressed when that is smaller.
//!
//! Why one binary: FerretDB 1.24's SQLite backend answers every point read and every update
//! by `_id` by converting the JSON of *every* document of the collection into SQLite's binary
//! JSON (ARCHITECTURE.md, "FerretDB's `_id` lookups"), and that conversion costs per JSON
//! value, not per byte: a job summary of twelve fields, a crew array and a type schema beside
//! each value came to 200 JSON values. Stored as `{_id, _pos, _body}` it is about 30 whatever
//! it holds, and a replace by `_id` in a partition of 269 such documents took 1.8 ms instead
//! of 5.5 ms (measured through FerretDB on the M data set). The compression makes a
//! partition's pages fewer too: list buckets of whole view items compress to about a third. Nothing queries
//! inside a read-model document (every read is by `_id`), and MongoDB stores the same bytes.
//!
//! A compressed body is [`LZ4_MAGIC`], the uncompressed length (`u32`, little-endian), then an
//! LZ4 block; a body that would not shrink is the BSON itself. The magic cannot start a BSON
//! document: read as one, it would declare 878 MB, past BSON's 16 MiB limit. A document
//! without `_body` is the older form (the fields themselves) and reads as before, so a store
//! projected before needs no migration: each document changes form when it is next written.

use std::borrow::Cow;

use bson::spec::BinarySubtype;
use bson::{Bson, Document, RawDocumentBuf};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The field holding the packed body.
pub const BODY: &str = "_body";

/// Bodies at least this long are compressed (shorter ones seldom shrink).
const COMPRESS_FROM: usize = 128;
/// First bytes of a compressed body.
const LZ4_MAGIC: [u8; 4] = [0xFF, b'L', b'Z', b'4'];
/// No body decompresses to more than a BSON document may hold.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A stored body that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoredError(String);

/// The stored form of `value` with `_id` = `id` and `_pos` = `pos`, and the length of the
/// value's own (uncompressed) encoding, which is what it takes in memory once read.
pub(crate) fn seal<T: Serialize>(
    value: &T,
    id: &str,
    pos: i64,
) -> Result<(RawDocumentBuf, usize), bson::ser::Error> {
    let body = bson::to_vec(value)?;
    let length = body.len();
    let packed = compress(&body).unwrap_or(body);
    let mut stored = RawDocumentBuf::new();
    stored.append("_id", id);
    stored.append("_pos", pos);
    stored.append(
        BODY,
        bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: packed,
        },
    );
    Ok((stored, length))
}

/// The value a stored document holds, and the length of its uncompressed encoding.
pub(crate) fn open<T: DeserializeOwned>(stored: &Document) -> Result<(T, usize), StoredError> {
    match stored.get(BODY) {
        Some(Bson::Binary(binary)) => {
            let body = unpack(&binary.bytes)?;
            let value = bson::from_slice(&body).map_err(|e| StoredError(e.to_string()))?;
            Ok((value, body.len()))
        }
        Some(other) => Err(StoredError(format!(
            "{BODY} is a {:?}, not a binary",
            other.element_type()
        ))),
        None => {
            let encoded = bson::to_vec(stored).map_err(|e| StoredError(e.to_string()))?;
            let value = bson::from_slice(&encoded).map_err(|e| StoredError(e.to_string()))?;
            Ok((value, encoded.len()))
        }
    }
}

/// The document as its fields, whichever form it is stored in: the body's fields after `_id`
/// and `_pos`. For comparing documents written by different versions, and for tools.
pub fn fields(stored: &Document) -> Result<Document, StoredError> {
    let Some(Bson::Binary(binary)) = stored.get(BODY) else {
        return Ok(stored.clone());
    };
    let body = unpack(&binary.bytes)?;
    let body: Document = bson::from_slice(&body).map_err(|e| StoredError(e.to_string()))?;
    let mut fields = Document::new();
    for (key, value) in stored.iter().filter(|(key, _)| key.as_str() != BODY) {
        fields.insert(key.clone(), value.clone());
    }
    fields.extend(body);
    Ok(fields)
}

/// The compressed form of `body`, when it is worth storing.
fn compress(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < COMPRESS_FROM {
        return None;
    }
    let length = u32::try_from(body.len()).ok()?;
    let block = lz4_flex::block::compress(body);
    let mut packed = Vec::with_capacity(LZ4_MAGIC.len() + 4 + block.len());
    packed.extend_from_slice(&LZ4_MAGIC);
    packed.extend_from_slice(&length.to_le_bytes());
    packed.extend_from_slice(&block);
    (packed.len() < body.len()).then_some(packed)
}

/// The BSON a body holds: decompressed, or the bytes themselves.
fn unpack(bytes: &[u8]) -> Result<Cow<'_, [u8]>, StoredError> {
    let Some(rest) = bytes.strip_prefix(&LZ4_MAGIC) else {
        return Ok(Cow::Borrowed(bytes));
    };
    let (length, block) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| StoredError("compressed body without its length".into()))?;
    let length = u32::from_le_bytes(*length) as usize;
    if length > MAX_BODY {
        return Err(StoredError(format!(
            "compressed body declares {length} bytes, more than {MAX_BODY}"
        )));
    }
    let body = lz4_flex::block::decompress(block, length)
        .map_err(|e| StoredError(format!("compressed body does not decompress: {e}")))?;
    if body.len() != length {
        return Err(StoredError(format!(
            "compressed body holds {} bytes, not the {length} it declares",
            body.len()
        )));
    }
    Ok(Cow::Owned(body))
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

    fn summary(crew: usize) -> Summary {
        Summary {
            name: "George Kelly".into(),
            status: "scheduled".into(),
            crew: (0..crew).map(|i| format!("crew member {i}")).collect(),
            price_minor: 125_000,
        }
    }

    fn body_bytes(stored: &Document) -> Vec<u8> {
        match stored.get(BODY) {
            Some(Bson::Binary(binary)) => binary.bytes.clone(),
            other => panic!("{BODY} is not a binary: {other:?}"),
        }
    }

    fn with_body(bytes: Vec<u8>) -> Document {
        doc! {"_id": "j1", "_pos": 7_i64, BODY: Bson::Binary(bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes,
        })}
    }

    #[test]
    fn a_document_is_stored_as_id_pos_and_one_binary_and_reads_back_equal() {
        for value in [summary(1), summary(40)] {
            let (raw, length) = seal(&value, "j1", 7).unwrap();
            let stored = raw.to_document().unwrap();
            let keys: Vec<&String> = stored.keys().collect();
            assert_eq!(keys, ["_id", "_pos", BODY]);
            assert_eq!(stored.get_str("_id"), Ok("j1"));
            assert_eq!(stored.get_i64("_pos"), Ok(7));
            assert_eq!(length, bson::to_vec(&value).unwrap().len());
            assert_eq!(open::<Summary>(&stored).unwrap(), (value.clone(), length));
            let fields = fields(&stored).unwrap();
            assert_eq!(fields.get_str("_id"), Ok("j1"));
            assert_eq!(fields.get_str("status"), Ok("scheduled"));
            assert!(!fields.contains_key(BODY));
        }
    }

    #[test]
    fn a_long_body_is_compressed_and_a_short_one_is_not() {
        let long = summary(40);
        let plain = bson::to_vec(&long).unwrap();
        let (raw, _) = seal(&long, "j1", 7).unwrap();
        let packed = body_bytes(&raw.to_document().unwrap());
        assert_eq!(packed[..4], LZ4_MAGIC);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} compressed bytes for {} plain ones",
            packed.len(),
            plain.len()
        );
        let short = summary(0);
        let (raw, _) = seal(&short, "j1", 7).unwrap();
        assert_eq!(
            body_bytes(&raw.to_document().unwrap()),
            bson::to_vec(&short).unwrap()
        );
    }

    #[test]
    fn the_older_forms_still_read() {
        let value = summary(40);
        // The fields themselves, as documents were stored before bodies were packed.
        let mut legacy = bson::to_document(&value).unwrap();
        legacy.insert("_id", "j1");
        legacy.insert("_pos", 7_i64);
        let (read, length) = open::<Summary>(&legacy).unwrap();
        assert_eq!(read, value);
        assert_eq!(length, bson::to_vec(&legacy).unwrap().len());
        assert_eq!(fields(&legacy).unwrap(), legacy);
        // A long body stored without compression.
        let plain = with_body(bson::to_vec(&value).unwrap());
        assert_eq!(open::<Summary>(&plain).unwrap().0, value);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_default() {
        let (raw, _) = seal(&summary(40), "j1", 7).unwrap();
        let packed = body_bytes(&raw.to_document().unwrap());
        let truncated = packed[..packed.len() / 2].to_vec();
        let mut oversized = packed.clone();
        oversized[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut understated = packed.clone();
        understated[4..8].copy_from_slice(&7_u32.to_le_bytes());
        for (what, bytes, expected) in [
            ("truncated", truncated, "compressed body"),
            ("declaring 4 GiB", oversized, "more than"),
            ("declaring too few bytes", understated, "compressed body"),
            ("without a length", LZ4_MAGIC.to_vec(), "without its length"),
            ("not BSON", vec![1, 2, 3], ""),
        ] {
            let error = open::<Summary>(&with_body(bytes))
                .expect_err(what)
                .to_string();
            assert!(error.contains(expected), "{what}: {error}");
        }
        let wrong_type = doc! {"_id": "j1", BODY: "text"};
        assert!(open::<Summary>(&wrong_type).is_err());
        assert!(fields(&with_body(vec![1, 2, 3])).is_err());
    }
}
