//! Every finished span of this test process, for tests that follow a trace across services.
//!
//! The services of the end-to-end tests run in the test process, so one global subscriber with
//! a span processor that keeps finished spans sees the command API, the projector and the
//! query API alike. Installed once per process; the log output stays off.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// A finished span: its name, trace, parent and attributes as text.
#[derive(Debug, Clone)]
pub struct FinishedSpan {
    pub name: String,
    pub trace_id: String,
    /// The parent's span id, `0000000000000000` for a root.
    pub parent_span_id: String,
    pub attributes: Vec<(String, String)>,
    /// Trace ids of the spans this one links to.
    pub linked_trace_ids: Vec<String>,
}

impl FinishedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default, Clone)]
pub struct CapturedSpans {
    finished: Arc<Mutex<Vec<FinishedSpan>>>,
}

impl CapturedSpans {
    /// The finished spans that match `keep`, waiting up to `within` for at least one.
    pub async fn wait_for(
        &self,
        within: Duration,
        keep: impl Fn(&FinishedSpan) -> bool,
    ) -> Vec<FinishedSpan> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let found: Vec<FinishedSpan> = self
                .finished
                .lock()
                .map(|spans| spans.iter().filter(|s| keep(s)).cloned().collect())
                .unwrap_or_default();
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl SpanProcessor for CapturedSpans {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        let finished = FinishedSpan {
            name: span.name.to_string(),
            trace_id: span.span_context.trace_id().to_string(),
            parent_span_id: span.parent_span_id.to_string(),
            attributes: span
                .attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
            linked_trace_ids: span
                .links
                .iter()
                .map(|link| link.span_context.trace_id().to_string())
                .collect(),
        };
        if let Ok(mut spans) = self.finished.lock() {
            spans.push(finished);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The spans of this process, capturing from the first call on.
///
/// # Panics
/// When another global subscriber was installed first: the trace could not be followed.
pub fn capture() -> CapturedSpans {
    static CAPTURED: OnceLock<CapturedSpans> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = CapturedSpans::default();
            let args = platform::config::TelemetryArgs {
                log_filter: "off".into(),
                ..Default::default()
            };
            let installed =
                platform::telemetry::init_with_processor(&args, "tests", captured.clone());
            assert!(installed, "another tracing subscriber was installed first");
            captured
        })
        .clone()
}
