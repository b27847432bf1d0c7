//! The HTTP surface: one module per aggregate, each handler parsing its body, checking the
//! caller and cross-aggregate facts, then handing a command to `execute`.

pub(crate) mod answers;
pub(crate) mod bodies;
pub(crate) mod crew_members;
pub(crate) mod customers;
pub(crate) mod jobs;
pub(crate) mod threads;
pub(crate) mod users;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use platform::problem::Problem;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::openapi::ApiHeader;
use crate::{observe, AppState};

/// Every route with its documentation: the served document is this router's own, so a
/// route cannot be served undocumented or documented unserved.
pub(crate) fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiHeader::openapi())
        .routes(routes!(customers::register))
        .routes(routes!(customers::update_contact))
        .routes(routes!(customers::change_status))
        .routes(routes!(jobs::create))
        .routes(routes!(jobs::schedule))
        .routes(routes!(jobs::reschedule))
        .routes(routes!(jobs::assign_crew))
        .routes(routes!(jobs::unassign_crew))
        .routes(routes!(jobs::start))
        .routes(routes!(jobs::complete))
        .routes(routes!(jobs::cancel))
        .routes(routes!(users::register))
        .routes(routes!(users::change_role))
        .routes(routes!(users::deactivate))
        .routes(routes!(crew_members::register))
        .routes(routes!(crew_members::deactivate))
        .routes(routes!(threads::start))
        .routes(routes!(threads::post_message))
        .routes(routes!(threads::mark_read))
        .routes(routes!(metrics))
        .routes(routes!(openapi_document))
}

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let (routes, _) = documented().split_for_parts();
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::correlate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.in_flight.clone(),
            platform::http::shed_when_busy,
        ))
        .layer(axum::middleware::from_fn(platform::http::run_to_completion))
        .with_state(state)
}

/// Prometheus metrics of the service.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
async fn metrics(state: State<AppState>) -> Response {
    observe::metrics(state).await
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = platform::openapi::DocumentOutline))
)]
async fn openapi_document(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::openapi(app.currency))
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no route {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("{} does not accept this method", uri.path()),
    )
    .into_response()
}
