//! Opaque, tamper-evident page cursors.
//!
//! A cursor is `base64url(tag ‖ json)` where `json` is `{v: 1, route, filter_hash, key}` and
//! `tag` is HMAC-SHA256 over `json` with the cursor secret. `key` is the read model's keyset
//! position (`read_models::query::CursorKey`), which this crate never interprets. `route` and
//! `filter_hash` bind a cursor to the list it came from: the route name, the normalized
//! filters, and for per-user lists the user id. A cursor that was forged, cut short, or taken
//! from another list is refused before anything is read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use platform::config::Secret;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
/// Longer cursors are refused unread; the ones this service issues are far shorter.
pub const MAX_CURSOR_LEN: usize = 4096;

/// Why a cursor was refused. The message is safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    #[error("is not a cursor issued by this service")]
    Malformed,
    #[error("was altered or was not issued by this service")]
    BadSignature,
    #[error("belongs to another list (other route, filters or user); start again without it")]
    ForeignList,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    v: u8,
    route: String,
    filter_hash: String,
    key: serde_json::Value,
}

/// Which list a cursor belongs to: the route name and every input that selects its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    route: &'static str,
    filter_hash: String,
}

impl ListScope {
    /// Names the list in a rendered answer's key: its route and filter hash.
    pub fn view_key(&self) -> String {
        format!("{}|{}", self.route, self.filter_hash)
    }

    /// `parts` are the normalized filter values (and the user id for per-user lists), in a
    /// fixed order per route; `None` stands for an absent filter.
    pub fn new(route: &'static str, parts: &[(&str, Option<String>)]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        for (name, value) in parts {
            hasher.update([0u8]);
            hasher.update(name.as_bytes());
            match value {
                Some(value) => {
                    hasher.update([1u8]);
                    hasher.update(value.as_bytes());
                }
                None => hasher.update([2u8]),
            }
        }
        let digest = hasher.finalize();
        ListScope {
            route,
            filter_hash: URL_SAFE_NO_PAD.encode(&digest[..16]),
        }
    }
}

/// Signs and checks cursors with one secret.
#[derive(Clone)]
pub struct CursorCodec {
    secret: Vec<u8>,
}

impl CursorCodec {
    pub fn new(secret: &Secret) -> Self {
        CursorCodec {
            secret: secret.expose().as_bytes().to_vec(),
        }
    }

    /// The default cursor secret: derived from the JWT secret, so one secret suffices, but a
    /// cursor can never serve as a token or the other way round.
    pub fn derive_secret(jwt_secret: &Secret) -> Secret {
        let mut mac = mac(jwt_secret.expose().as_bytes());
        mac.update(b"simplepro query-api cursor key v1");
        Secret::new(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    pub fn encode(&self, scope: &ListScope, key: &serde_json::Value) -> String {
        let body = CursorBody {
            v: VERSION,
            route: scope.route.to_owned(),
            filter_hash: scope.filter_hash.clone(),
            key: key.clone(),
        };
        // Serializing a struct of strings and a JSON value cannot fail.
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut mac = mac(&self.secret);
        mac.update(&json);
        let mut bytes = mac.finalize().into_bytes().to_vec();
        bytes.extend_from_slice(&json);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The read-model key of a cursor issued for `scope`.
    pub fn decode(
        &self,
        scope: &ListScope,
        cursor: &str,
    ) -> Result<serde_json::Value, CursorError> {
        if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
            return Err(CursorError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim_end_matches('='))
            .map_err(|_| CursorError::Malformed)?;
        if bytes.len() <= TAG_LEN {
            return Err(CursorError::Malformed);
        }
        let (tag, json) = bytes.split_at(TAG_LEN);
        let mut mac = mac(&self.secret);
        mac.update(json);
        mac.verify_slice(tag)
            .map_err(|_| CursorError::BadSignature)?;
        let body: CursorBody = serde_json::from_slice(json).map_err(|_| CursorError::Malformed)?;
        if body.v != VERSION {
            return Err(CursorError::Malformed);
        }
        if body.route != scope.route || body.filter_hash != scope.filter_hash {
            return Err(CursorError::ForeignList);
        }
        Ok(body.key)
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codec() -> CursorCodec {
        CursorCodec::new(&Secret::new("cursor-secret-for-tests"))
    }

    fn customers(status: Option<&str>) -> ListScope {
        ListScope::new("customers", &[("status", status.map(str::to_owned))])
    }

    #[test]
    fn a_cursor_decodes_to_its_key_for_the_same_list() {
        let codec = codec();
        let key = json!({"after": ["2025-01-01T00:00:00Z", "c1"]});
        let cursor = codec.encode(&customers(Some("active")), &key);
        assert_eq!(codec.decode(&customers(Some("active")), &cursor), Ok(key));
    }

    #[test]
    fn a_cursor_of_another_filter_or_route_is_foreign() {
        let codec = codec();
        let cursor = codec.encode(&customers(Some("active")), &json!(1));
        assert_eq!(
            codec.decode(&customers(None), &cursor),
            Err(CursorError::ForeignList)
        );
        let jobs = ListScope::new("jobs", &[("status", Some("active".into()))]);
        assert_eq!(codec.decode(&jobs, &cursor), Err(CursorError::ForeignList));
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let codec = codec();
        let scope = customers(None);
        let cursor = codec.encode(&scope, &json!({"k": "v"}));
        let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 0x01;
            let forged = URL_SAFE_NO_PAD.encode(forged);
            assert!(codec.decode(&scope, &forged).is_err(), "byte {i} accepted");
        }
        for len in 0..cursor.len() {
            assert!(
                codec.decode(&scope, &cursor[..len]).is_err(),
                "prefix {len}"
            );
        }
        assert!(codec.decode(&scope, "%%%").is_err());
    }

    #[test]
    fn a_cursor_signed_with_another_secret_is_refused() {
        let other = CursorCodec::new(&Secret::new("another-cursor-secret"));
        let cursor = other.encode(&customers(None), &json!(1));
        assert_eq!(
            codec().decode(&customers(None), &cursor),
            Err(CursorError::BadSignature)
        );
    }

    #[test]
    fn absent_and_empty_filters_are_different_lists() {
        assert_ne!(customers(None), customers(Some("")));
    }

    proptest::proptest! {
        /// A cursor nobody issued is refused, whatever it holds, and never panics.
        #[test]
        fn any_string_that_was_not_issued_is_refused(cursor in ".{0,600}") {
            proptest::prop_assert!(codec().decode(&customers(None), &cursor).is_err());
        }

        /// Base64 of any bytes (the shape of a real cursor) is refused too.
        #[test]
        fn any_bytes_in_cursor_shape_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)
        ) {
            let cursor = URL_SAFE_NO_PAD.encode(bytes);
            proptest::prop_assert!(codec().decode(&customers(None), &cursor).is_err());
        }

        /// Every key a cursor is issued for comes back unchanged for the same list.
        #[test]
        fn every_issued_cursor_round_trips(
            text in ".{0,40}",
            number in proptest::prelude::any::<i64>(),
            status in proptest::option::of("[a-z]{1,10}"),
        ) {
            let scope = customers(status.as_deref());
            let key = json!({"after": [text, number]});
            let cursor = codec().encode(&scope, &key);
            proptest::prop_assert_eq!(codec().decode(&scope, &cursor), Ok(key));
        }
    }
}
