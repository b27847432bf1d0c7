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

/// Middleware running the rest of a request in a task of its own. A client that hangs up makes
/// the server drop its request's future; the MongoDB driver must not have operations dropped
/// halfway (an overload of abandoned reads left a service's pool unable to serve anything until
/// restarted), and a command that got as far as its append should finish it.
pub async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "request task failed");
            Problem::internal().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    fn app(finished: Arc<AtomicBool>, detached: bool) -> Router {
        let router = Router::new().route(
            "/work",
            get(move || {
                let finished = finished.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    finished.store(true, Ordering::SeqCst);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        if detached {
            router.layer(axum::middleware::from_fn(run_to_completion))
        } else {
            router
        }
    }

    /// Sends a request and gives up on it after 20 ms, as a client that hangs up would.
    async fn abandoned_request(finished: &Arc<AtomicBool>, detached: bool) -> bool {
        let request = Request::get("/work").body(Body::empty()).unwrap();
        let call = app(finished.clone(), detached).oneshot(request);
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        finished.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_request_whose_client_hangs_up_still_runs_to_completion() {
        let finished = Arc::new(AtomicBool::new(false));
        assert!(abandoned_request(&finished, true).await);
    }

    #[tokio::test]
    async fn without_the_layer_an_abandoned_request_stops_halfway() {
        // The behaviour the layer exists for: the handler's future is simply dropped.
        let finished = Arc::new(AtomicBool::new(false));
        assert!(!abandoned_request(&finished, false).await);
    }
}
