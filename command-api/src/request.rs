//! What every command request carries besides its fields: the authenticated caller, the
//! optional `If-Match` version and `Idempotency-Key`, the correlation id, and the JSON body.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use events::IdempotencyKey;
use platform::auth::Caller;
use platform::problem::{JsonObject, Problem};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Required;
use uuid::Uuid;

use crate::observe::CorrelationId;
use crate::AppState;

pub(crate) const IF_MATCH: &str = "if-match";
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The non-body parts of a command request, handed to `execute`.
#[derive(Debug, Clone)]
pub(crate) struct CommandContext {
    pub(crate) caller: Caller,
    pub(crate) correlation_id: String,
    pub(crate) if_match: Option<u64>,
    pub(crate) idempotency: Option<IdempotencyKey>,
}

/// A command request: context plus its body as a JSON object (an empty body counts as `{}`,
/// so commands without fields need none).
pub(crate) struct CommandRequest {
    pub(crate) context: CommandContext,
    pub(crate) body: Map<String, Value>,
}

impl FromRequest<AppState> for CommandRequest {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        let (mut parts, body) = request.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let if_match = if_match(&parts.headers)?;
        let raw_key = idempotency_key(&parts.headers)?;
        let correlation_id = parts
            .extensions
            .get::<CorrelationId>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        let bytes = axum::body::to_bytes(body, state.max_body_bytes)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    format!(
                        "the request body is over the {} byte limit",
                        state.max_body_bytes
                    ),
                )
            })?;
        let idempotency = raw_key.map(|key| IdempotencyKey {
            key: format!("{}:{key}", caller.user_id),
            fingerprint: fingerprint(parts.method.as_str(), parts.uri.path(), &bytes),
        });
        let body = if bytes.is_empty() {
            Map::new()
        } else {
            let rebuilt = Request::from_parts(parts, Body::from(bytes));
            JsonObject::from_request(rebuilt, state).await?.0
        };
        Ok(CommandRequest {
            context: CommandContext {
                caller,
                correlation_id,
                if_match,
                idempotency,
            },
            body,
        })
    }
}

/// SHA-256 (hex) of method, path and body: the same key with another request is refused.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `If-Match: 3` or `If-Match: "3"` (weak `W/"3"` too) → 3.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || {
        Problem::invalid_parameter(
            "If-Match",
            "must be the version number you read, e.g. `3` or `\"3\"`",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map(Some).map_err(|_| invalid())
}

/// 1–200 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 200 || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::invalid_parameter(
            "Idempotency-Key",
            "must be 1 to 200 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// What [`if_match`] accepts: a version number, bare or quoted, optionally weak.
pub(crate) const IF_MATCH_PATTERN: &str = r#"^(W/)?("0*[0-9]{1,19}"|0*[0-9]{1,19})$"#;
/// What [`idempotency_key`] accepts.
pub(crate) const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,200}$";

/// The optional headers of every command, as documented parameters.
pub(crate) struct CommandHeaders;

impl utoipa::IntoParams for CommandHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let header = |name: &str, description: &str, pattern: Option<&str>| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(pattern),
                ))
                .build()
        };
        vec![
            header(
                "If-Match",
                "The version the client read (`3`, `\"3\"` or `W/\"3\"`); a stale one is a 412.",
                Some(IF_MATCH_PATTERN),
            ),
            header(
                "Idempotency-Key",
                "1–200 visible ASCII characters; a retry with the same key and request gets the first answer.",
                Some(IDEMPOTENCY_KEY_PATTERN),
            ),
            header(
                "X-Correlation-Id",
                "Kept when 1–200 visible ASCII characters, else a new one is made; echoed back.",
                None,
            ),
        ]
    }
}

/// Ids from the path, checked to be UUIDs: a malformed one is a 400.
pub(crate) struct PathIds(HashMap<String, String>);

impl PathIds {
    pub(crate) fn get(&self, name: &str) -> Result<Uuid, Problem> {
        let raw = self.0.get(name).map(String::as_str).unwrap_or("");
        Uuid::parse_str(raw)
            .map_err(|_| Problem::invalid_parameter(name, format!("must be a UUID, got {raw:?}")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(ids)| PathIds(ids))
            .map_err(|rejection| Problem::invalid_parameter("path", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_match_accepts_plain_and_quoted_versions() {
        assert_eq!(if_match(&headers(IF_MATCH, "3")).unwrap(), Some(3));
        assert_eq!(if_match(&headers(IF_MATCH, "\"12\"")).unwrap(), Some(12));
        assert_eq!(if_match(&headers(IF_MATCH, "W/\"7\"")).unwrap(), Some(7));
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
        for bad in ["", "x", "-1", "\"\"", "1.5", "99999999999999999999999"] {
            assert_eq!(
                if_match(&headers(IF_MATCH, bad)).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn idempotency_key_must_be_visible_ascii_up_to_200_characters() {
        assert_eq!(
            idempotency_key(&headers(IDEMPOTENCY_KEY, "abc-123")).unwrap(),
            Some("abc-123".into())
        );
        assert!(idempotency_key(&headers(IDEMPOTENCY_KEY, &"k".repeat(200))).is_ok());
        for bad in ["", "has space", &"k".repeat(201)] {
            assert!(
                idempotency_key(&headers(IDEMPOTENCY_KEY, bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fingerprint_differs_by_method_path_and_body() {
        let base = fingerprint("POST", "/v1/jobs", b"{}");
        assert_eq!(base.len(), 64);
        assert_ne!(base, fingerprint("POST", "/v1/jobs", b"{ }"));
        assert_ne!(base, fingerprint("POST", "/v1/users", b"{}"));
        assert_eq!(base, fingerprint("POST", "/v1/jobs", b"{}"));
    }
}
