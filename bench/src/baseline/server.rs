//! The baseline's HTTP server: same framework, same driver, same auth as the query API.
//!
//! - `GET /v1/dashboard?from=&to=&today=` — six concurrent aggregation pipelines
//! - `GET /v1/calendar/week/{monday}` — seven sequential per-day finds
//! - `GET /v1/threads?unread_only=true` — the caller's threads, one count query per thread
//! - `GET /v1/customers[?search=]` — every customer, or a regex search

use std::time::Duration;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Duration as Days, NaiveDate, Utc};
use domain::calendar::BusinessTimeZone;
use mongodb::Database;
use platform::auth::{Authenticator, Caller};
use platform::problem::Problem;
use platform::shutdown::Shutdown;
use serde::Deserialize;
use tokio::net::TcpListener;

use super::queries;

#[derive(Clone)]
pub struct BaselineState {
    pub database: Database,
    pub time_zone: BusinessTimeZone,
    /// The design being replaced trusted a token's role; so does its replica.
    pub auth: Authenticator,
}

impl FromRef<BaselineState> for Authenticator {
    fn from_ref(state: &BaselineState) -> Self {
        state.auth.clone()
    }
}

fn failed(error: mongodb::error::Error) -> Response {
    tracing::error!(%error, "baseline query failed");
    Problem::internal().into_response()
}

#[derive(Deserialize)]
struct DashboardParams {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: Option<NaiveDate>,
}

async fn dashboard(
    State(state): State<BaselineState>,
    _caller: Caller,
    Query(params): Query<DashboardParams>,
) -> Response {
    let today = params
        .today
        .unwrap_or_else(|| state.time_zone.local_date(Utc::now()));
    let to = params.to.unwrap_or(today);
    let from = params.from.unwrap_or(to - Days::days(29));
    if from > to {
        return Problem::bad_request("from must not be after to").into_response();
    }
    match queries::dashboard(&state.database, &state.time_zone, from, to, today).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => failed(error),
    }
}

async fn calendar_week(
    State(state): State<BaselineState>,
    _caller: Caller,
    Path(start): Path<NaiveDate>,
) -> Response {
    match queries::calendar_week(&state.database, start).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => failed(error),
    }
}

#[derive(Deserialize)]
struct ThreadParams {
    #[serde(default)]
    unread_only: bool,
}

async fn threads(
    State(state): State<BaselineState>,
    caller: Caller,
    Query(params): Query<ThreadParams>,
) -> Response {
    let user = caller.user_id.to_string();
    match queries::user_threads(&state.database, &user, params.unread_only).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => failed(error),
    }
}

#[derive(Deserialize)]
struct CustomerParams {
    search: Option<String>,
}

async fn customers(
    State(state): State<BaselineState>,
    _caller: Caller,
    Query(params): Query<CustomerParams>,
) -> Response {
    if params
        .search
        .as_ref()
        .is_some_and(|s| s.chars().count() > 100)
    {
        return (
            StatusCode::BAD_REQUEST,
            "search is limited to 100 characters",
        )
            .into_response();
    }
    match queries::customers(&state.database, params.search.as_deref()).await {
        Ok(view) => Json(view).into_response(),
        Err(error) => failed(error),
    }
}

pub fn router(state: BaselineState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/dashboard", get(dashboard))
        .route("/v1/calendar/week/{start}", get(calendar_week))
        .route("/v1/threads", get(threads))
        .route("/v1/customers", get(customers))
        .with_state(state)
        // Like the services: a request whose client hung up (every `wrk` run ends so) must not
        // have its driver operations dropped halfway, which left this server's connection pool
        // unable to serve anything (requests waited forever with the database idle).
        .layer(axum::middleware::from_fn(platform::http::run_to_completion))
}

/// Serves until `shutdown`.
pub async fn serve(
    state: BaselineState,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(address = ?listener.local_addr().ok(), "baseline server listening");
    platform::http::serve(listener, router(state), shutdown, Duration::from_secs(5)).await?;
    Ok(())
}
