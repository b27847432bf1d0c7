//! Log output and traces for the services.
//!
//! Every span is also an OpenTelemetry span, so each request has a W3C trace id whether or
//! not anything exports it: the command API records the trace of the request in the event's
//! metadata, and the projector and the query API continue it ([`trace_context`]). Spans
//! leave the process only when `SIMPLEPRO_OTLP_ENDPOINT` names an OTLP/HTTP receiver; then a
//! root span is sampled, and a span whose caller's trace is sampled always is.
//!
//! [`trace_context`]: crate::trace_context

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanProcessor};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryArgs};

/// Keeps the span pipeline of the process; dropping it sends the spans still buffered.
#[must_use = "dropping the guard stops exporting spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                eprintln!("spans not exported at shutdown: {error}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter for {endpoint} could not be built: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Installs the global subscriber (logs as `args` say, spans as OpenTelemetry spans); call
/// once at the start of `main` and keep the guard until the end. A second call in one process
/// (tests that start several services) keeps the first subscriber.
pub fn init(args: &TelemetryArgs, service: &'static str) -> Result<Telemetry, TelemetryError> {
    let provider = tracer_provider(service, args.otlp_endpoint.as_deref())?;
    let installed = install(args, service, provider.clone());
    Ok(Telemetry {
        provider: installed.then_some(provider),
    })
}

/// Like [`init`], with one more span processor that sees every span (tests capture the spans
/// of a whole process with it); `false` when a subscriber was installed already.
pub fn init_with_processor(
    args: &TelemetryArgs,
    service: &'static str,
    processor: impl SpanProcessor + 'static,
) -> bool {
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(processor)
        .build();
    install(args, service, provider)
}

/// The spans' provider: exporting over OTLP/HTTP when `otlp_endpoint` is set, recording
/// nothing otherwise (ids are made and propagated all the same).
pub fn tracer_provider(
    service: &'static str,
    otlp_endpoint: Option<&str>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    let Some(endpoint) = otlp_endpoint.filter(|e| !e.trim().is_empty()) else {
        // Nothing would receive a recorded span: decide "not sampled" at the root and save
        // the recording; a caller's sampled trace is still continued and passed on.
        return Ok(builder
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .build());
    };
    let exporter = otlp_exporter(endpoint)?;
    Ok(builder
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_batch_exporter(exporter)
        .build())
}

fn otlp_exporter(endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig;
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|error| TelemetryError::Exporter {
            endpoint: traces,
            reason: error.to_string(),
        })
}

fn install(args: &TelemetryArgs, service: &'static str, provider: SdkTracerProvider) -> bool {
    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().flatten_event(true).boxed()
    } else {
        logs.boxed()
    };
    // Spans go to OpenTelemetry at info and above whatever the log filter says, so a quiet
    // log (`RUST_LOG=warn`) does not break the trace from a command to its projection.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        // Timing every poll of every request's future costs two clock reads per poll, for
        // busy/idle attributes nobody reads.
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            *meta.level() <= tracing::Level::INFO && meta.name() != crate::http::READ_SPAN
        }));
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::trace_context::{continue_trace, trace_id_of, traceparent_of};

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
    }

    #[test]
    fn without_an_exporter_spans_still_carry_and_continue_traces() {
        let provider = tracer_provider("test", None).expect("a provider without exporter");
        tracing::subscriber::with_default(subscriber(&provider), || {
            let root = tracing::info_span!("root");
            let own = traceparent_of(&root).expect("a root span starts a trace");
            assert!(
                own.ends_with("-00"),
                "not sampled without an exporter: {own}"
            );
            assert_ne!(trace_id_of(&own), trace_id_of(CALLER));

            let child = tracing::info_span!("child");
            continue_trace(&child, CALLER);
            let continued = traceparent_of(&child).expect("the child has a trace");
            assert_eq!(trace_id_of(&continued), trace_id_of(CALLER));
            assert!(continued.ends_with("-01"), "the caller's sampling is kept");
            assert_ne!(continued, CALLER, "the child is a span of its own");
        });
    }

    /// Answers one OTLP/HTTP export with 200 and returns its request line and body.
    fn receive_one_export(listener: TcpListener) -> (String, Vec<u8>) {
        let (mut stream, _) = listener.accept().expect("the exporter connects");
        let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content length");
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .expect("answer");
        (request_line, body)
    }

    #[test]
    fn with_an_endpoint_spans_are_exported_over_otlp_http() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let receiver = std::thread::spawn(move || receive_one_export(listener));
        let provider = tracer_provider("test", Some(&endpoint)).expect("an OTLP provider");
        tracing::subscriber::with_default(subscriber(&provider), || {
            let span = tracing::info_span!("exported");
            continue_trace(&span, CALLER);
            drop(span);
        });
        provider.force_flush().expect("spans flushed");
        let (request_line, body) = receiver.join().expect("the receiver ran");
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        // The protobuf body holds the trace id as its 16 raw bytes.
        let trace_id: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&"4bf92f3577b34da6a3ce929d0e0e4736"[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .expect("hex");
        assert!(body.windows(16).any(|window| window == trace_id.as_slice()));
        assert!(body.windows(8).any(|window| window == b"exported"));
    }
}
