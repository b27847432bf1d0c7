//! Serving HTTP with graceful shutdown, and the health endpoints every service has.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::problem::Problem;

/// What `/readyz` checks: the database answers a ping and the NATS connection is up.
#[derive(Clone)]
pub struct Readiness {
    pub store: events::EventStore,
    pub nats: async_nats::Client,
}

impl Readiness {
    /// `Ok` when both dependencies answer, else which one does not.
    pub async fn check(&self) -> Result<(), String> {
        let ping = tokio::time::timeout(Duration::from_secs(2), self.store.ping()).await;
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

/// `/healthz` (the process answers) and `/readyz` (its dependencies answer); any other
/// method is a 405 problem document with `Allow: GET,HEAD`.
pub fn health_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(only_get)
        .with_state(readiness)
}

async fn only_get() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this resource only answers GET",
    )
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => Json(json!({"status": "ready", "mongodb": "ok", "nats": "ok"})).into_response(),
        Err(reason) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", reason).into_response()
        }
    }
}

pub use crate::serve::{serve, serve_with, ConnectionLimits};

/// How a service meets clients at its edge, from flags or the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Longest a request is worked on before the client gets 503 `timeout` (the work itself
    /// still finishes; see [`run_to_completion`]).
    #[arg(long, env = "SIMPLEPRO_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Origins a browser may call the API from (comma-separated, e.g.
    /// `https://ops.example.com`); none by default, so no cross-origin access.
    #[arg(
        long = "cors-origin",
        env = "SIMPLEPRO_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<HeaderValue>,
    /// Longest a client may take to send a request's line and headers before the connection
    /// is closed (slow clients hold no connection for long).
    #[arg(
        long,
        env = "SIMPLEPRO_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,
    /// Largest request head (line and headers) in bytes, at least 8192; larger gets 431.
    #[arg(long, env = "SIMPLEPRO_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,
    /// Times, counts and traces every request (latency histograms, request ids, spans).
    /// `false` only to measure what that costs (the benchmark does); nothing else needs it
    /// off.
    #[arg(
        long,
        env = "SIMPLEPRO_REQUEST_TELEMETRY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub request_telemetry: bool,
}

impl EdgeArgs {
    /// The limits the server loop applies before a request reaches the router.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            max_header_bytes: self.max_header_bytes,
            ..ConnectionLimits::default()
        }
    }
}

/// Everything a service's router gets at its edge, outermost first: request ids and spans
/// ([`traced`]), CORS for the configured origins, security headers on every response, and
/// the request timeout.
pub fn edge(router: Router, args: &EdgeArgs, spans: RequestSpans) -> Router {
    let timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    let router = router
        .layer(axum::middleware::from_fn(move |request, next| {
            answer_within(timeout, request, next)
        }))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ));
    let router = if args.cors_origins.is_empty() {
        router
    } else {
        router.layer(cors(&args.cors_origins))
    };
    if args.request_telemetry {
        traced(router, spans)
    } else {
        router
    }
}

/// `router` with each request's latency recorded in `registry` (unless request telemetry is
/// off); layer it on the routes themselves, so the matched route template is known.
pub fn timed<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    registry: &Arc<crate::metrics::MetricsRegistry>,
    args: &EdgeArgs,
) -> Router<S> {
    if !args.request_telemetry {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        registry.clone(),
        crate::metrics::time_request,
    ))
}

fn cors(origins: &[HeaderValue]) -> CorsLayer {
    use axum::http::{HeaderName, Method};
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static(crate::trace_context::TRACEPARENT),
            HeaderName::from_static(crate::consistency::MIN_POSITION_HEADER),
        ])
        .expose_headers([
            header::ETAG,
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static(crate::consistency::POSITION_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}

/// 503 `timeout` once `timeout` has passed without an answer.
async fn answer_within(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("no answer within {} ms; retry later", timeout.as_millis()),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Request ids and a span per request, outermost on a service's router: an incoming
/// `x-request-id` is kept (a UUID is made otherwise), returned on every response, and is a
/// field of the request's span, so every log line written while serving it names it. An
/// incoming W3C `traceparent` makes the span a child of the caller's trace.
pub fn traced(router: Router, spans: RequestSpans) -> Router {
    let router = router.layer(PropagateRequestIdLayer::x_request_id());
    let router = match spans {
        RequestSpans::Traced => {
            router.layer(TraceLayer::new_for_http().make_span_with(request_span))
        }
        RequestSpans::LogsOnly => {
            router.layer(TraceLayer::new_for_http().make_span_with(read_span))
        }
    };
    router.layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
}

/// What a request's span is besides the context of its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSpans {
    /// An OpenTelemetry span continuing the caller's `traceparent` (commands: their trace
    /// goes on through the events to the projector).
    Traced,
    /// A span for the log lines only (`read`, left out of traces by `telemetry`): a read
    /// starts nothing downstream, and a trace span per read costs a warm read a quarter of
    /// its throughput (measured by the benchmark).
    LogsOnly,
}

/// The name of [`RequestSpans::LogsOnly`] spans.
pub const READ_SPAN: &str = "read";

/// Request ids in UUID form without a random draw per request: a random 64-bit prefix drawn
/// once per process and a counter (a UUID v4 per request cost a `getrandom` call each).
#[derive(Clone)]
struct RequestIds {
    prefix: u64,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: uuid::Uuid::new_v4().as_u64_pair().0,
            next: Arc::default(),
        }
    }
}

impl tower_http::request_id::MakeRequestId for RequestIds {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = uuid::Uuid::from_u64_pair(self.prefix, n).to_string();
        HeaderValue::from_str(&id)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

fn read_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "read",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}

fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    // The path only: a query string may hold search text.
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        correlation_id = tracing::field::Empty,
    );
    // A caller's `traceparent` makes this request part of its trace.
    crate::trace_context::continue_from_headers(&span, request.headers());
    span
}

/// Middleware running the rest of a request in a task of its own. A client that hangs up makes
/// the server drop its request's future; the MongoDB driver must not have operations dropped
/// halfway (an overload of abandoned reads left a service's pool unable to serve anything until
/// restarted), and a command that got as far as its append should finish it.
pub async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The task carries the request's span, so its log lines keep the request id.
    match tokio::spawn(next.run(request).in_current_span()).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "request task failed");
            Problem::internal().into_response()
        }
    }
}

/// The most requests a service works on at once; see [`shed_when_busy`].
#[derive(Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl InFlightLimit {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        InFlightLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware answering 503 `overloaded` with `Retry-After: 1` when the service already works
/// on as many requests as its [`InFlightLimit`] allows, instead of queueing them: a burst
/// beyond what the database absorbs would otherwise grow memory and every caller's latency
/// without bound (measured: 3,000 queued commands held 900 MiB and all timed out). Layer it
/// inside [`run_to_completion`], so a request whose client hung up keeps its permit until it
/// has finished.
pub async fn shed_when_busy(
    State(limit): State<InFlightLimit>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = limit.permits.clone().try_acquire_owned() else {
        let mut response = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "the service is already working on {} requests; retry shortly",
                limit.max
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
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
    async fn requests_beyond_the_in_flight_limit_are_shed_with_retry_after() {
        let finished = Arc::new(AtomicBool::new(false));
        let app = app(finished.clone(), false).layer(axum::middleware::from_fn_with_state(
            InFlightLimit::new(1),
            shed_when_busy,
        ));
        let call = |app: Router| app.oneshot(Request::get("/work").body(Body::empty()).unwrap());
        let first = tokio::spawn(call(app.clone()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let shed = call(app.clone()).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            first.await.unwrap().unwrap().status(),
            StatusCode::NO_CONTENT
        );
        assert!(finished.load(Ordering::SeqCst));
        // The permit is back once the first request has finished.
        let after = call(app).await.unwrap();
        assert_eq!(after.status(), StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn without_the_layer_an_abandoned_request_stops_halfway() {
        // The behaviour the layer exists for: the handler's future is simply dropped.
        let finished = Arc::new(AtomicBool::new(false));
        assert!(!abandoned_request(&finished, false).await);
    }

    #[tokio::test]
    async fn a_request_id_is_kept_or_made_and_returned() {
        let app = traced(
            Router::new().route("/", get(|| async { "ok" })),
            RequestSpans::Traced,
        );
        let kept = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("x-request-id", "req-42")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(kept.headers()["x-request-id"], "req-42");
        let made = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let id = made.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }

    #[tokio::test]
    async fn every_answer_has_security_headers_and_a_slow_one_times_out_as_a_problem() {
        let args = EdgeArgs {
            request_timeout_ms: 50,
            cors_origins: vec![HeaderValue::from_static("https://ops.example.com")],
            header_read_timeout_ms: 10_000,
            max_header_bytes: 32 * 1024,
            request_telemetry: true,
        };
        let app = edge(
            Router::new().route("/", get(|| async { "ok" })).route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            ),
            &args,
            RequestSpans::Traced,
        );
        let ok = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("origin", "https://ops.example.com")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
        assert_eq!(ok.headers()["x-frame-options"], "DENY");
        assert_eq!(
            ok.headers()["access-control-allow-origin"],
            "https://ops.example.com"
        );
        let foreign = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("origin", "https://evil.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        let slow = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            slow.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(slow.headers().get("x-request-id").is_some());
    }
}
