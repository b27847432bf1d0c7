//! The HTTP surface: one module per aggregate, each handler parsing its body, checking the
//! caller and cross-aggregate facts, then handing a command to `execute`.

pub(crate) mod crew_members;
pub(crate) mod customers;
pub(crate) mod jobs;
pub(crate) mod threads;
pub(crate) mod users;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use platform::problem::Problem;

use crate::{observe, AppState};

pub(crate) fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/customers", post(customers::register))
        .route(
            "/v1/customers/{id}/contact",
            post(customers::update_contact),
        )
        .route("/v1/customers/{id}/status", post(customers::change_status))
        .route("/v1/jobs", post(jobs::create))
        .route("/v1/jobs/{id}/schedule", post(jobs::schedule))
        .route("/v1/jobs/{id}/reschedule", post(jobs::reschedule))
        .route("/v1/jobs/{id}/crew", post(jobs::assign_crew))
        .route(
            "/v1/jobs/{id}/crew/{crew_member_id}",
            delete(jobs::unassign_crew),
        )
        .route("/v1/jobs/{id}/start", post(jobs::start))
        .route("/v1/jobs/{id}/complete", post(jobs::complete))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/users", post(users::register))
        .route("/v1/users/{id}/role", post(users::change_role))
        .route("/v1/users/{id}/deactivate", post(users::deactivate))
        .route("/v1/crew-members", post(crew_members::register))
        .route(
            "/v1/crew-members/{id}/deactivate",
            post(crew_members::deactivate),
        )
        .route("/v1/threads", post(threads::start))
        .route("/v1/threads/{id}/messages", post(threads::post_message))
        .route("/v1/threads/{id}/read", post(threads::mark_read))
        .route("/metrics", get(observe::metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::openapi()) }),
        )
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
