//! Correlation ids (taken from `X-Correlation-Id` or made, and echoed) and the service's
//! series on `/metrics`: responses by status class, commands by aggregate type and outcome,
//! request latencies (`platform::http::route_timing`) and the event store's write path.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use events::EventStore;
use metrics::Counter;
use platform::metrics::MetricsRegistry;
use platform::problem::Problem;
use uuid::Uuid;

use crate::AppState;

pub(crate) const CORRELATION_ID: &str = "x-correlation-id";

const RESPONSES: &str = "simplepro_command_api_responses_total";
const COMMANDS: &str = "simplepro_command_api_commands_total";
/// What the recent states weigh (`states::RecentStates`): memory bounded by
/// `SIMPLEPRO_STATE_CACHE_MIB` that fills as streams are written, apart from any leak.
pub(crate) const STATE_CACHE_BYTES: &str = "simplepro_command_api_state_cache_bytes";

/// The correlation id of the current request, recorded on every event it appends.
#[derive(Debug, Clone)]
pub(crate) struct CorrelationId(pub(crate) String);

/// What became of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Appended, replayed or found already done.
    Accepted,
    /// The domain or the caller's request said no (4xx other than a conflict).
    Refused,
    /// A version conflict: a stale `If-Match` or lost races beyond the retries (409, 412).
    Conflicted,
    /// The store or another dependency failed (5xx).
    Failed,
}

impl Outcome {
    pub(crate) fn of<T>(result: &Result<T, Problem>) -> Self {
        match result {
            Ok(_) => Outcome::Accepted,
            Err(problem) if problem.status.is_server_error() => Outcome::Failed,
            Err(problem)
                if matches!(
                    problem.status,
                    StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
                ) =>
            {
                Outcome::Conflicted
            }
            Err(_) => Outcome::Refused,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Conflicted => "conflicted",
            Outcome::Failed => "failed",
        }
    }
}

/// The command API's registry and the handles its middleware records with.
pub(crate) struct CommandMetrics {
    registry: Arc<MetricsRegistry>,
    /// Responses by status class: 1xx…5xx.
    responses_by_class: [Counter; 5],
}

impl CommandMetrics {
    /// A registry for this instance, with the store's write path exported to it.
    pub(crate) fn new(store: &EventStore) -> Arc<Self> {
        let registry = MetricsRegistry::new("command-api");
        store.metrics().export_to(registry.recorder());
        let responses_by_class = registry.register(|| {
            metrics::describe_counter!(RESPONSES, "HTTP responses by status class.");
            metrics::describe_counter!(
                COMMANDS,
                "Commands by aggregate type and outcome (accepted, refused, conflicted, failed)."
            );
            metrics::describe_gauge!(
                STATE_CACHE_BYTES,
                "Bytes of recent aggregate states held (bounded by SIMPLEPRO_STATE_CACHE_MIB)."
            );
            ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|class| metrics::counter!(RESPONSES, "class" => class))
        });
        Arc::new(CommandMetrics {
            registry,
            responses_by_class,
        })
    }

    pub(crate) fn registry(&self) -> Arc<MetricsRegistry> {
        self.registry.clone()
    }

    fn response(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses_by_class[class].increment(1);
    }

    /// Counts one command of `aggregate` (`customer`, `job`…) that ended as `outcome`.
    pub(crate) fn command(&self, aggregate: &'static str, outcome: Outcome) {
        self.registry
            .register(|| {
                metrics::counter!(COMMANDS, "aggregate" => aggregate, "outcome" => outcome.label())
            })
            .increment(1);
    }
}

/// A client's id is kept when it is 1–200 visible ASCII characters; otherwise a new one.
pub(crate) async fn correlate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(CORRELATION_ID)
        .map(HeaderValue::as_bytes)
        .filter(|b| !b.is_empty() && b.len() <= 200 && b.iter().all(u8::is_ascii_graphic))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    tracing::Span::current().record("correlation_id", id.as_str());
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    state.metrics.response(response.status());
    response
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let held = state.states.weighted_bytes().await as f64;
    state
        .metrics
        .registry
        .register(|| metrics::gauge!(STATE_CACHE_BYTES).set(held));
    state.metrics.registry.response()
}
