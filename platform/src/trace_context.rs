//! W3C trace context (`traceparent`) in and out of `tracing` spans.
//!
//! A command's request span takes its parent from the request's `traceparent` header; the
//! command API writes the span's `traceparent` into the metadata of the events it records;
//! the projector and the query API make their spans children of it. Without a subscriber
//! that has the OpenTelemetry layer ([`crate::telemetry`]) spans carry no trace and these
//! functions find or set nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header and metadata key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of `span`, when it belongs to a trace.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the span the caller is in.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The trace id (32 hex digits) a `traceparent` names, when it is well formed.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let context = extract(traceparent);
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Makes `span` (not yet entered) a child of the remote span `traceparent` names; a malformed
/// value is ignored, and the span starts a trace of its own.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let context = extract(traceparent);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// Links `span` to the remote span `traceparent` names (one span that serves many traces,
/// such as a change notice for a batch of events).
pub fn link_trace(span: &tracing::Span, traceparent: &str) {
    let context = extract(traceparent);
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.add_link(span_context);
    }
}

/// Makes `span` a child of the trace an HTTP request's `traceparent` header names.
pub fn continue_from_headers(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let context =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

fn extract(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_traceparent_names_its_trace_and_a_malformed_one_none() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("not a traceparent"), None);
    }

    #[test]
    fn without_a_tracing_subscriber_a_span_has_no_traceparent() {
        let span = tracing::info_span!("outside any subscriber");
        continue_trace(
            &span,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        assert_eq!(traceparent_of(&span), None);
    }
}
