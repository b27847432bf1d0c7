//! How answers leave the service: JSON bodies with their position, strong ETags and 304s,
//! and errors as problem documents.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::consistency::POSITION_HEADER;
use platform::problem::Problem;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A page of a list: `data` is its items (a `Vec`, or their rendered encoding).
#[derive(Debug, Serialize)]
pub struct PageBody<D: Serialize> {
    pub data: D,
    pub next_cursor: Option<String>,
    pub has_more: bool,
    pub position: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// One view (a dashboard, a week, a customer …).
#[derive(Debug, Serialize)]
pub struct ViewBody<T: Serialize> {
    pub data: T,
    pub position: u64,
}

/// A handler's refusal or failure, already rendered.
pub struct ApiError(Response);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError(problem.into_response())
    }
}

impl ApiError {
    /// A 500 whose cause is logged here, once, and never shown to the client.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "{context}");
        Problem::internal().into()
    }

    /// 503 `not-yet-consistent`: the read models have not reached `required` yet.
    pub fn not_yet_consistent(required: u64, current: u64) -> Self {
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-yet-consistent",
            format!(
                "the read models are at position {current}, not yet at the required {required}; retry shortly"
            ),
        )
        .with("required_position", required)
        .with("current_position", current);
        let mut response = problem.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        ApiError(response)
    }
}

/// Serializes `body` and answers 200 with a strong ETag, or 304 when the client has it.
pub fn json_ok(request_headers: &HeaderMap, position: u64, body: &impl Serialize) -> Response {
    answer(request_headers, position, body, None)
}

/// [`json_ok`] for a body whose first field is the rendered `data` that `start` hashed (a
/// [`ViewBody`] or [`PageBody`] around it): the same answer and ETag, with only what follows
/// the data hashed per request.
pub fn json_ok_rendered(
    request_headers: &HeaderMap,
    position: u64,
    body: &impl Serialize,
    start: &HashedStart,
) -> Response {
    answer(request_headers, position, body, Some(start))
}

/// How every answer body begins: its `data` field comes first.
const DATA_START: &[u8] = b"{\"data\":";

/// The SHA-256 state after `{"data":<data>`, kept with rendered data: a calendar week's data
/// runs to hundreds of kilobytes, and hashing it for every answer's ETag cost more than all
/// else the answer does.
#[derive(Debug, Clone)]
pub struct HashedStart {
    len: usize,
    state: Sha256,
}

impl HashedStart {
    pub fn of(data: &RawValue) -> Self {
        let mut state = Sha256::new();
        state.update(DATA_START);
        state.update(data.get().as_bytes());
        HashedStart {
            len: DATA_START.len() + data.get().len(),
            state,
        }
    }

    /// 64 bits of the hash of the data alone: tells a changed view from an unchanged one.
    pub fn fingerprint(&self) -> u64 {
        let digest = self.state.clone().finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }
}

fn answer(
    request_headers: &HeaderMap,
    position: u64,
    body: &impl Serialize,
    start: Option<&HashedStart>,
) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::internal("encoding a response", error).into_response(),
    };
    let digest = match start {
        Some(start) if bytes.starts_with(DATA_START) && bytes.len() > start.len => {
            let mut state = start.state.clone();
            state.update(&bytes[start.len..]);
            state.finalize()
        }
        _ => Sha256::digest(&bytes),
    };
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..18]));
    let matches = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| if_none_match_hits(v, &etag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = (StatusCode::OK, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(POSITION_HEADER, HeaderValue::from(position));
    headers.insert(header::VARY, HeaderValue::from_static("authorization"));
    response
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored.
fn if_none_match_hits(header_value: &str, etag: &str) -> bool {
    header_value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_matches_lists_weak_forms_and_star() {
        assert!(if_none_match_hits("\"a\"", "\"a\""));
        assert!(if_none_match_hits("\"x\", W/\"a\"", "\"a\""));
        assert!(if_none_match_hits("*", "\"a\""));
        assert!(!if_none_match_hits("\"b\"", "\"a\""));
    }

    #[test]
    fn a_matching_if_none_match_gives_304_without_body() {
        let body = ViewBody {
            data: 1,
            position: 7,
        };
        let first = json_ok(&HeaderMap::new(), 7, &body);
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.clone());
        let second = json_ok(&headers, 7, &body);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(second.headers()[header::ETAG], etag);
        assert_eq!(second.headers()[POSITION_HEADER], "7");
    }

    #[test]
    fn a_rendered_view_answers_exactly_what_the_typed_view_would() {
        let data = serde_json::json!({"days": [{"date": "2026-11-25", "jobs": 3}], "name": "a\"b"});
        let typed = json_ok(
            &HeaderMap::new(),
            42,
            &ViewBody {
                data: &data,
                position: 42,
            },
        );
        let encoded = serde_json::value::to_raw_value(&data).unwrap();
        let rendered = json_ok_rendered(
            &HeaderMap::new(),
            42,
            &ViewBody {
                data: &*encoded,
                position: 42,
            },
            &HashedStart::of(&encoded),
        );
        assert_eq!(
            typed.headers()[header::ETAG],
            rendered.headers()[header::ETAG]
        );
        assert_eq!(rendered.headers()[POSITION_HEADER], "42");
    }

    #[test]
    fn a_rendered_page_has_the_etag_of_its_whole_body_and_follows_its_position() {
        let items = serde_json::json!([{"id": 1}, {"id": 2}]);
        let encoded = serde_json::value::to_raw_value(&items).unwrap();
        let start = HashedStart::of(&encoded);
        let page = |position| PageBody {
            data: &*encoded,
            next_cursor: Some("abc".to_owned()),
            has_more: true,
            position,
            total: Some(9),
        };
        let typed = json_ok(
            &HeaderMap::new(),
            5,
            &PageBody {
                data: &items,
                next_cursor: Some("abc".to_owned()),
                has_more: true,
                position: 5,
                total: Some(9),
            },
        );
        let rendered = json_ok_rendered(&HeaderMap::new(), 5, &page(5), &start);
        let whole_body = serde_json::to_vec(&page(5)).unwrap();
        let expected = format!(
            "\"{}\"",
            URL_SAFE_NO_PAD.encode(&Sha256::digest(&whole_body)[..18])
        );
        assert_eq!(rendered.headers()[header::ETAG], expected.as_str());
        assert_eq!(typed.headers()[header::ETAG], expected.as_str());
        let later = json_ok_rendered(&HeaderMap::new(), 6, &page(6), &start);
        assert_ne!(later.headers()[header::ETAG], expected.as_str());
    }
}
