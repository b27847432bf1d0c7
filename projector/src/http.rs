//! `/healthz`, `/readyz`, `/metrics` and `GET /v1/checkpoint`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use platform::http::{health_routes, Readiness};

use crate::metrics::Metrics;

pub(crate) fn router(readiness: Readiness, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/v1/checkpoint", get(checkpoint))
        .with_state(metrics)
        .merge(health_routes(readiness))
}

async fn prometheus(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    metrics.registry().response()
}

async fn checkpoint(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    Json(metrics.checkpoint())
}
