//! Correlation ids (taken from `X-Correlation-Id` or made, and echoed) and response counters
//! by status class for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::AppState;

pub(crate) const CORRELATION_ID: &str = "x-correlation-id";

/// The correlation id of the current request, recorded on every event it appends.
#[derive(Debug, Clone)]
pub(crate) struct CorrelationId(pub(crate) String);

/// Responses by status class: 1xx…5xx.
#[derive(Debug, Default)]
pub(crate) struct ResponseCounters {
    by_class: [AtomicU64; 5],
}

impl ResponseCounters {
    fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    fn to_prometheus(&self) -> String {
        let mut text = String::from(
            "# HELP simplepro_command_api_responses_total HTTP responses by status class.\n\
             # TYPE simplepro_command_api_responses_total counter\n",
        );
        for (index, count) in self.by_class.iter().enumerate() {
            text.push_str(&format!(
                "simplepro_command_api_responses_total{{class=\"{}xx\"}} {}\n",
                index + 1,
                count.load(Ordering::Relaxed)
            ));
        }
        text
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
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    state.counters.record(response.status().as_u16());
    response
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.store.metrics().snapshot().to_prometheus();
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&state.counters.to_prometheus());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}
