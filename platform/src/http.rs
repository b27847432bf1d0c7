//! Serving HTTP with graceful shutdown, and the health endpoints every service has.

use std::future::IntoFuture;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bson::doc;
use serde_json::json;
use tokio::net::TcpListener;

use crate::problem::Problem;
use crate::shutdown::Shutdown;

/// What `/readyz` checks: the database answers a ping and the NATS connection is up.
#[derive(Clone)]
pub struct Readiness {
    pub database: mongodb::Database,
    pub nats: async_nats::Client,
}

impl Readiness {
    /// `Ok` when both dependencies answer, else which one does not.
    pub async fn check(&self) -> Result<(), String> {
        let ping = tokio::time::timeout(
            Duration::from_secs(2),
            self.database.run_command(doc! {"ping": 1}),
        )
        .await;
        let mongodb = match ping {
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(format!("MongoDB: {error}")),
            Err(_) => Some("MongoDB: no answer within 2 s".to_owned()),
        };
        let nats = (self.nats.connection_state() != async_nats::connection::State::Connected)
            .then(|| "NATS: not connected".to_owned());
        match (mongodb, nats) {
            (None, None) => Ok(()),
            (a, b) => Err(a.into_iter().chain(b).collect::<Vec<_>>().join("; ")),
        }
    }
}

/// `/healthz` (the process answers) and `/readyz` (its dependencies answer).
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => Json(json!({"status": "ready", "mongodb": "ok", "nats": "ok"})).into_response(),
        Err(reason) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", reason).into_response()
        }
    }
}

/// Serves until `shutdown`, then lets in-flight requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = shutdown.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(stopping.wait());
    let server = std::pin::pin!(server.into_future());
    let mut server = server;
    tokio::select! {
        result = &mut server => result,
        _ = async { shutdown.wait().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("in-flight requests did not finish within {grace:?}; closing");
            Ok(())
        }
    }
}
