//! Serving HTTP with graceful shutdown, and the health endpoints every service has.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Instrument;

use crate::metrics::{MetricsRegistry, RouteRequests};
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
/// the request timeout. They wrap the router as one service rather than through
/// `Router::layer`, which boxes every route anew for each layer: a request clones the box of
/// its route with all the boxes inside it, so each layer added that way costs a request more
/// than its own work, and more the more layers there are.
pub fn edge(router: Router, args: &EdgeArgs, spans: RequestSpans) -> Router {
    let timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    let service = tower::ServiceBuilder::new()
        .option_layer((!args.cors_origins.is_empty()).then(|| cors(&args.cors_origins)))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn(move |request, next| {
            answer_within(timeout, request, next)
        }))
        .service(router);
    if args.request_telemetry {
        traced(service, spans)
    } else {
        Router::new().fallback_service(service)
    }
}

/// The layer that records each request's latency in `registry` (a pass-through when request
/// telemetry is off). Layer it on the routes themselves, so the matched route template is
/// known, and in one `Router::layer` call with the other per-route layers
/// (`tower::ServiceBuilder`): each `Router::layer` call boxes every route once more, and a
/// request clones every box of its route.
pub fn route_timing(registry: &Arc<MetricsRegistry>, args: &EdgeArgs) -> RouteTiming {
    RouteTiming {
        registry: args.request_telemetry.then(|| registry.clone()),
    }
}

/// Records [`crate::metrics::REQUEST_DURATION`] around each route; made by [`route_timing`].
/// A layer of its own rather than `axum::middleware::from_fn`, which boxes a future and
/// clones the route's service for every request.
#[derive(Clone)]
pub struct RouteTiming {
    registry: Option<Arc<MetricsRegistry>>,
}

impl<S> Layer<S> for RouteTiming {
    type Service = Timed<S>;

    /// Called once for each route of the router: each has its own table of series.
    fn layer(&self, inner: S) -> Timed<S> {
        Timed {
            inner,
            series: self
                .registry
                .as_ref()
                .map(|registry| Arc::new(RouteRequests::new(registry.clone()))),
        }
    }
}

/// A route's service with its latencies recorded (see [`RouteTiming`]).
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    /// `None` when request telemetry is off.
    series: Option<Arc<RouteRequests>>,
}

impl<S> Service<Request> for Timed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TimedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let timing = self.series.as_ref().map(|series| Timing {
            series: series.clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            method: request.method().clone(),
            started: Instant::now(),
        });
        TimedFuture {
            inner: self.inner.call(request),
            timing,
        }
    }
}

/// The future of a [`Timed`] route.
pub struct TimedFuture<F> {
    inner: F,
    timing: Option<Timing>,
}

/// What a request's latency is recorded under, and since when.
struct Timing {
    series: Arc<RouteRequests>,
    route: Option<MatchedPath>,
    method: Method,
    started: Instant,
}

impl<F> Future for TimedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Poll::Ready(Ok(response)) = Pin::new(&mut self.inner).poll(cx) else {
            return Poll::Pending;
        };
        if let Some(timing) = &self.timing {
            let route = timing
                .route
                .as_ref()
                .map_or("unmatched", MatchedPath::as_str);
            timing.series.record(
                route,
                &timing.method,
                response.status().as_u16(),
                timing.started.elapsed(),
            );
        }
        Poll::Ready(Ok(response))
    }
}

fn cors(origins: &[HeaderValue]) -> CorsLayer {
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

/// Request ids and a span per request around `service`, as one service: tower-http's
/// `SetRequestId` keeps an incoming `x-request-id` (a UUID is made otherwise), its `Trace`
/// opens the request's span with the id among its fields, so every log line written while
/// serving the request (its streamed body included) names it, and its `PropagateRequestId`
/// returns the id on every answer, errors, timeouts and 404s included. An incoming W3C
/// `traceparent` makes the span a child of the caller's trace. An answer with a 5xx status is
/// logged at `error` with its request id, every answer at `debug`.
pub fn traced<S>(service: S, spans: RequestSpans) -> Router
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let trace = TraceLayer::new_for_http()
        .make_span_with(spans)
        .on_request(())
        .on_response(AccessLog)
        .on_body_chunk(())
        .on_eos(())
        // For HTTP the only failure `Trace` classifies is a 5xx status, which the access log
        // line reports with the request id.
        .on_failure(());
    let service = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(RequestIds))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(service);
    Router::new().fallback_service(service)
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

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's span, made by `Trace` once `SetRequestId` has given the request its id.
/// Its fields are worked out only when the span is enabled; the path only, as a query string
/// may hold search text.
impl<B> MakeSpan<B> for RequestSpans {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        match self {
            RequestSpans::LogsOnly => tracing::info_span!(
                "read",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = request_id(request.headers()),
            ),
            RequestSpans::Traced => {
                let span = tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = request_id(request.headers()),
                    correlation_id = tracing::field::Empty,
                );
                // A caller's `traceparent` makes this request part of its trace.
                crate::trace_context::continue_from_headers(&span, request.headers());
                span
            }
        }
    }
}

fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get(X_REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
}

/// The line `Trace` writes for each answer, in the request's span: `error` for a 5xx status,
/// `debug` otherwise. `PropagateRequestId`, inside `Trace`, has put the request id on the
/// answer, and it is a field of the line too, because a filter quieter than `info` leaves the
/// span out. The fields are worked out only when the line is written.
#[derive(Debug, Clone, Copy)]
struct AccessLog;

impl<B> OnResponse<B> for AccessLog {
    fn on_response(self, response: &Response<B>, latency: Duration, _: &tracing::Span) {
        let status = response.status();
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                request_id = request_id(response.headers()),
                "request failed"
            );
        } else {
            tracing::debug!(
                status = status.as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                request_id = request_id(response.headers()),
                "request answered"
            );
        }
    }
}

/// Request ids in UUID form without a random draw per request: each worker thread draws a
/// random 64-bit prefix once and counts after it (tower-http's `MakeRequestUuid` draws a UUID
/// v4, a `getrandom` call, per request; one counter shared by the threads bounces its cache
/// line between them on every request). The id's bytes are one allocation that the request,
/// its extension and the answer share (a header value copied from a string is reallocated
/// on its first clone).
#[derive(Clone)]
struct RequestIds;

thread_local! {
    /// This thread's id prefix and the next number after it.
    static NEXT_REQUEST_ID: std::cell::Cell<(u64, u64)> =
        std::cell::Cell::new(uuid::Uuid::new_v4().as_u64_pair());
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let (prefix, n) = NEXT_REQUEST_ID.with(|next| {
            let (prefix, n) = next.get();
            next.set((prefix, n.wrapping_add(1)));
            (prefix, n)
        });
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::from_u64_pair(prefix, n)
            .hyphenated()
            .encode_lower(&mut text);
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
            .ok()
            .map(RequestId::new)
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
        let _turn = tracing_turn().await;
        let app = traced(
            Router::new().route("/", get(|| async { "ok" })),
            RequestSpans::Traced,
        );
        let kept = app
            .clone()
            .oneshot(get_with("/", "x-request-id", "req-42"))
            .await
            .unwrap();
        assert_eq!(kept.headers()["x-request-id"], "req-42");
        let made = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let id = made.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let unrouted = app
            .oneshot(Request::get("/nowhere").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(unrouted.status(), StatusCode::NOT_FOUND);
        assert!(unrouted.headers().get("x-request-id").is_some());
    }

    /// A GET of `path` with one header.
    fn get_with(path: &str, name: &str, value: &str) -> Request<Body> {
        Request::get(path)
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    }

    /// Log lines written as JSON into a buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn subscriber(&self, filter: &str) -> impl tracing::Subscriber + Send + Sync {
            let writer = self.clone();
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_env_filter(filter)
                .with_writer(move || writer.clone())
                .finish()
        }

        /// The line whose message is `message`.
        fn line(&self, message: &str) -> Option<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .find(|line| line["message"] == message)
        }
    }

    #[tokio::test]
    async fn every_log_line_of_a_request_names_its_request_id() {
        let _turn = tracing_turn().await;
        let logs = Captured::default();
        let _subscriber = subscribe(logs.subscriber("debug"));
        let handler = || async {
            tracing::info!("handled");
            "ok"
        };
        let app = traced(
            Router::new().route("/", get(handler)),
            RequestSpans::LogsOnly,
        );
        app.oneshot(get_with("/", "x-request-id", "req-7"))
            .await
            .unwrap();
        let handled = logs.line("handled").expect("the handler's line");
        assert_eq!(handled["span"]["name"], READ_SPAN, "{handled}");
        assert_eq!(handled["span"]["request_id"], "req-7", "{handled}");
        let answered = logs.line("request answered").expect("the access line");
        assert_eq!(answered["request_id"], "req-7", "{answered}");
        assert_eq!(answered["status"], 200, "{answered}");
    }

    #[tokio::test]
    async fn a_failed_answer_is_logged_with_its_request_id_under_a_quiet_filter() {
        let _turn = tracing_turn().await;
        let logs = Captured::default();
        // At `warn` the request's span (`info`) is left out.
        let _subscriber = subscribe(logs.subscriber("warn"));
        let app = traced(
            Router::new().route("/", get(|| async { StatusCode::BAD_GATEWAY })),
            RequestSpans::Traced,
        );
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let id = response.headers()["x-request-id"].to_str().unwrap();
        let failed = logs.line("request failed").expect("the failure line");
        assert_eq!(failed["level"], "ERROR", "{failed}");
        assert_eq!(failed["status"], 502, "{failed}");
        assert_eq!(failed["request_id"], id, "{failed}");
        assert!(failed.get("span").is_none(), "{failed}");
        assert!(logs.line("request answered").is_none());
    }

    #[tokio::test]
    async fn a_requests_span_continues_the_callers_traceparent() {
        let _turn = tracing_turn().await;
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _subscriber = subscribe(subscriber);
        let handler = || async { crate::trace_context::current_traceparent().unwrap_or_default() };
        let app = traced(Router::new().route("/", get(handler)), RequestSpans::Traced);
        let response = app
            .oneshot(get_with("/", "traceparent", caller))
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let own = std::str::from_utf8(&body).unwrap();
        let trace_id = crate::trace_context::trace_id_of;
        assert_eq!(trace_id(own), trace_id(caller), "{own}");
        assert_ne!(own, caller, "the request's span is a child of the caller's");
    }

    #[tokio::test]
    async fn a_streamed_body_is_polled_in_the_requests_span() {
        let _turn = tracing_turn().await;
        let _subscriber = subscribe(tracing_subscriber::registry());
        let streamed = || async {
            // The span current when the body is read, not when the handler ran.
            let chunk = futures::stream::once(async {
                let span = tracing::Span::current();
                Ok::<_, Infallible>(span.metadata().map_or("none", |m| m.name()))
            });
            Body::from_stream(chunk)
        };
        let app = traced(
            Router::new().route("/", get(streamed)),
            RequestSpans::LogsOnly,
        );
        let response = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(body, READ_SPAN);
    }

    /// Tests that build a traced edge take turns. A callsite's interest and the highest
    /// enabled level are cached process-wide, computed from the subscribers alive when a
    /// callsite is first reached or a subscriber is made. A test on another thread that
    /// reaches the request span with no subscriber, or makes one with a quieter filter, can
    /// race with a test's own subscriber and leave its span off.
    async fn tracing_turn() -> tokio::sync::MutexGuard<'static, ()> {
        static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        TURN.lock().await
    }

    /// Makes `subscriber` this thread's default while the guard lives (taken during a
    /// [`tracing_turn`]). A callsite reached earlier with no subscriber cached "never";
    /// asking every callsite again makes this subscriber count.
    fn subscribe(
        subscriber: impl tracing::Subscriber + Send + Sync + 'static,
    ) -> tracing::subscriber::DefaultGuard {
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    /// The defaults of [`EdgeArgs`], with request telemetry on.
    const EDGE_DEFAULTS: EdgeArgs = EdgeArgs {
        request_timeout_ms: 1_000,
        cors_origins: Vec::new(),
        header_read_timeout_ms: 10_000,
        max_header_bytes: 32 * 1024,
        request_telemetry: true,
    };

    #[tokio::test]
    async fn each_request_is_timed_under_its_route_template_method_and_status() {
        let registry = MetricsRegistry::new("timed");
        let args = EdgeArgs {
            request_telemetry: true,
            ..EDGE_DEFAULTS
        };
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .layer(route_timing(&registry, &args));
        for path in ["/items/7", "/items/8", "/elsewhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        let text = registry.render();
        let count = |route: &str, status: &str| {
            text.lines()
                .find(|line| {
                    line.starts_with("simplepro_http_request_duration_seconds_count{")
                        && line.contains(&format!("route=\"{route}\""))
                        && line.contains(&format!("status=\"{status}\""))
                        && line.contains("method=\"GET\"")
                })
                .and_then(|line| line.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("/items/:id", "200").as_deref(), Some("2"), "{text}");
        assert_eq!(count("unmatched", "404").as_deref(), Some("1"), "{text}");
    }

    #[tokio::test]
    async fn with_request_telemetry_off_routes_answer_and_record_nothing() {
        let registry = MetricsRegistry::new("untimed");
        let args = EdgeArgs {
            request_telemetry: false,
            ..EDGE_DEFAULTS
        };
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .layer(route_timing(&registry, &args));
        let request = Request::get("/items/7").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let text = registry.render();
        assert!(
            !text.contains("simplepro_http_request_duration_seconds_count{"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn every_answer_has_security_headers_and_a_slow_one_times_out_as_a_problem() {
        let _turn = tracing_turn().await;
        let args = EdgeArgs {
            request_timeout_ms: 50,
            cors_origins: vec![HeaderValue::from_static("https://ops.example.com")],
            ..EDGE_DEFAULTS
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
