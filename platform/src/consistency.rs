//! The names of the consistency token, the same in both APIs.
//!
//! The token is a global position in the event log. The command API answers an accepted
//! command with the position of its last event, and the query API answers every read with the
//! read-model checkpoint it reflects, both in the body field `position` and in the header
//! [`POSITION_HEADER`]. A reader that wants to see a write passes that position back, as the
//! query parameter [`MIN_POSITION_PARAM`] or the header [`MIN_POSITION_HEADER`], and the
//! query API answers once the read models include it.
//!
//! Header names are given in lower case, the form `HeaderMap` stores and HTTP/2 sends; they
//! match in any case (`X-Position`, `X-Min-Position`).

/// `X-Position`: the position an answer reflects (command API: the command's last event;
/// query API: the read-model checkpoint). The body field `position` holds the same number.
pub const POSITION_HEADER: &str = "x-position";

/// `X-Min-Position`: the request header asking the query API to wait for a position.
pub const MIN_POSITION_HEADER: &str = "x-min-position";

/// `min_position`: the query parameter asking the query API to wait for a position, the same
/// as [`MIN_POSITION_HEADER`].
pub const MIN_POSITION_PARAM: &str = "min_position";

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn the_header_names_are_valid_and_stored_as_given() {
        for name in [POSITION_HEADER, MIN_POSITION_HEADER] {
            let parsed = HeaderName::from_static(name);
            assert_eq!(parsed.as_str(), name);
        }
        let mut headers = HeaderMap::new();
        headers.insert(POSITION_HEADER, HeaderValue::from(7u64));
        assert_eq!(headers["X-Position"], "7");
    }
}
