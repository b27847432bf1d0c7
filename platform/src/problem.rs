//! Errors as `application/problem+json` (RFC 9457), with the offending fields listed.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// One field that was wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// JSON path of the field (`address.city`) or the query parameter name.
    pub field: String,
    pub reason: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    #[schema(value_type = u16)]
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Extra members, e.g. `current_version` on a 412 or `rule` on a 409.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
    /// Seconds for the `Retry-After` header, when the client should come back later.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

fn status_code<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

/// Whether `code` is a problem type code: kebab-case, lower-case ASCII words joined by
/// single hyphens (`not-yet-consistent`), as in RFC 9457's examples.
pub fn is_problem_code(code: &str) -> bool {
    !code.is_empty()
        && code.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl Problem {
    /// `code` names the kind of problem, in kebab-case ([`is_problem_code`]); it becomes the
    /// last segment of the `type` URI.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        debug_assert!(
            is_problem_code(code),
            "problem code {code:?} is not kebab-case"
        );
        Problem {
            type_uri: format!("https://simplepro.dev/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// 429 `rate-limited`, to be retried after `seconds`.
    pub fn too_many_requests(detail: impl Into<String>, seconds: u64) -> Self {
        let mut problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", detail);
        problem.retry_after = Some(seconds);
        problem.with("retry_after_seconds", seconds)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    pub fn invalid_fields(errors: Vec<FieldProblem>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let mut problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-fields", detail);
        problem.errors = errors;
        problem
    }

    pub fn invalid_parameters(errors: Vec<FieldProblem>) -> Self {
        let invalid_fields = Problem::invalid_fields(errors);
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-parameters",
            invalid_fields.detail,
        );
        problem.errors = invalid_fields.errors;
        problem
    }

    /// 400 `invalid-parameters` naming one query, path or header parameter.
    pub fn invalid_parameter(name: &str, reason: impl Into<String>) -> Self {
        Problem::invalid_parameters(vec![FieldProblem {
            field: name.to_owned(),
            reason: reason.into(),
        }])
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Collects every field error of a request before answering, so a client sees all of them.
#[derive(Debug, Default)]
pub struct FieldErrors {
    errors: Vec<FieldProblem>,
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldProblem {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// Keeps the value, or records the error and gives `None`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(field, error.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldProblem> {
        self.errors
    }

    /// `Ok(())` when nothing was wrong, else a 422 listing every field.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid_fields(self.errors))
        }
    }
}

/// A JSON object body. Malformed JSON or a non-object is a 400, a wrong content type a 415, a
/// body over the limit a 413 — all as problem documents. Field-level checks (unknown fields,
/// invalid values) are the handler's, so that it can list every one of them.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence == "application/json" || essence.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload-too-large",
                        "the request body is over the size limit",
                    )
                } else {
                    Problem::bad_request(format!("the request body could not be read: {rejection}"))
                }
            })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "the body must be a JSON object",
            )),
            Err(error) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                format!("the body is not valid JSON: {error}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_codes_are_kebab_case() {
        for code in [
            "not-found",
            "invalid-parameters",
            "job-terminal",
            "internal",
            "e2e-x",
        ] {
            assert!(is_problem_code(code), "{code}");
        }
        for code in [
            "",
            "email_taken",
            "Not-Found",
            "not--found",
            "-x",
            "x-",
            "a b",
        ] {
            assert!(!is_problem_code(code), "{code:?}");
        }
    }

    #[test]
    fn every_constructor_gives_a_kebab_case_type() {
        let field = || FieldProblem {
            field: "limit".into(),
            reason: "too big".into(),
        };
        let problems = [
            Problem::bad_request("x"),
            Problem::unauthorized("x"),
            Problem::forbidden("x"),
            Problem::not_found("x"),
            Problem::internal(),
            Problem::unavailable("x"),
            Problem::invalid_fields(vec![field()]),
            Problem::invalid_parameters(vec![field()]),
        ];
        for problem in problems {
            let code = problem
                .type_uri
                .strip_prefix("https://simplepro.dev/problems/")
                .unwrap();
            assert!(is_problem_code(code), "{code}");
        }
    }

    #[test]
    fn invalid_parameters_is_a_400_listing_every_field() {
        let problem = Problem::invalid_parameters(vec![FieldProblem {
            field: "limit".into(),
            reason: "too big".into(),
        }]);
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        assert_eq!(problem.title, "Bad Request");
        assert_eq!(
            problem.type_uri,
            "https://simplepro.dev/problems/invalid-parameters"
        );
        assert_eq!(problem.detail, "limit: too big");
        assert_eq!(problem.errors.len(), 1);
    }
}
