//! `GET /v1/checkpoint` and `GET /metrics`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use platform::auth::Caller;
use serde::Serialize;

use super::AppState;
use crate::params::Params;
use crate::respond::{json_ok, ApiError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointBody {
    /// The position every read model has reached (the smallest of their checkpoints).
    position: u64,
    models: Vec<ModelCheckpoint>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelCheckpoint {
    model: String,
    generation: u32,
    position: u64,
}

/// The projector checkpoint the read models reflect.
#[utoipa::path(
    get,
    path = "/v1/checkpoint",
    tag = "service",
    params(super::MinPositionQuery),
    responses(
        (status = 200, description = "The checkpoint: every event at or before `position` is reflected in every read model. Known from change notices and a poll of the checkpoint documents every second.", body = CheckpointBody, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters.", body = platform::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = platform::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = platform::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn checkpoint(
    State(app): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut params = Params::parse(&uri, &[]);
    let min_position = params.min_position(&headers);
    params.finish()?;
    let position = app.consistent(min_position).await?;
    let body = CheckpointBody {
        position,
        models: app
            .freshness
            .models()
            .into_iter()
            .map(|(model, generation, position)| ModelCheckpoint {
                model: model.as_str().to_owned(),
                generation,
                position,
            })
            .collect(),
    };
    Ok(json_ok(&headers, position, &body))
}

/// Prometheus metrics of the service.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(app): State<AppState>) -> Response {
    app.docs.sync().await;
    let text = app.metrics.render(
        &app.docs.gauges(),
        app.freshness.position(),
        app.push.open(),
    );
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = platform::openapi::DocumentOutline))
)]
pub async fn openapi_document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(crate::openapi::openapi())
}
