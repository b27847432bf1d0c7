//! How answers leave the service: JSON bodies with their position, strong ETags and 304s,
//! and errors as problem documents.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::problem::Problem;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const POSITION_HEADER: &str = "x-position";

/// A page of a list.
#[derive(Debug, Serialize)]
pub struct PageBody<T: Serialize> {
    pub data: Vec<T>,
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
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::internal("encoding a response", error).into_response(),
    };
    let etag = format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(&Sha256::digest(&bytes)[..18])
    );
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
        let rendered = json_ok(
            &HeaderMap::new(),
            42,
            &ViewBody {
                data: &encoded,
                position: 42,
            },
        );
        assert_eq!(
            typed.headers()[header::ETAG],
            rendered.headers()[header::ETAG]
        );
        assert_eq!(rendered.headers()[POSITION_HEADER], "42");
    }
}
