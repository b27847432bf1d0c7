//! One Prometheus registry per service instance, fed through the `metrics` facade, and the
//! `/metrics` page and request-latency histograms every service shares (recorded by
//! `http::timed`).
//!
//! A registry is not installed as the process-global recorder: tests run a command API, a
//! query API and a projector in one process, and each must answer `/metrics` with its own
//! series. Handles (`Counter`, `Gauge`, `Histogram`) are registered once against the
//! instance's recorder with [`MetricsRegistry::register`], which runs the `metrics` macros with
//! it as the local recorder; the handles then record without any lookup.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::Histogram;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Every series name starts with it.
pub const PREFIX: &str = "simplepro_";

/// Latency of every HTTP request, by route template, method and status.
pub const REQUEST_DURATION: &str = "simplepro_http_request_duration_seconds";

/// The process's resident memory, on every service's page.
pub const RESIDENT_MEMORY: &str = "simplepro_process_resident_memory_bytes";

/// Tasks alive in the runtime, on every service's page: connections, streams and background
/// work that never end show here.
pub const ALIVE_TASKS: &str = "simplepro_runtime_alive_tasks";

/// The process's VmRSS, where `/proc` tells it.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bucket bounds of every `*_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of every `*_size` histogram (events per append, documents per flush…).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
];

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

type Collector = Box<dyn Fn() + Send + Sync>;

/// Request-latency histograms by route template, then by method and status.
type RequestDurations = HashMap<String, HashMap<(Method, u16), Histogram>>;

/// The series of one service instance, labelled `service="<name>"`.
pub struct MetricsRegistry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Set gauges from state read at scrape time (cache sizes, checkpoints, backlogs).
    collectors: RwLock<Vec<Collector>>,
    /// [`REQUEST_DURATION`] handles by route template, then method and status: a request
    /// looks its handle up instead of building a labelled key (allocating its label values)
    /// and finding it in the registry.
    request_durations: RwLock<RequestDurations>,
}

impl MetricsRegistry {
    /// A registry whose series carry `service`; folds histogram samples every few seconds
    /// when created inside a tokio runtime.
    pub fn new(service: &str) -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            .add_global_label("service", service)
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
            .map(PrometheusBuilder::build_recorder)
            // The bucket lists are constants and never empty.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let registry = Arc::new(MetricsRegistry {
            recorder,
            handle,
            collectors: RwLock::new(Vec::new()),
            request_durations: RwLock::new(HashMap::new()),
        });
        registry.register(|| {
            metrics::describe_histogram!(
                REQUEST_DURATION,
                metrics::Unit::Seconds,
                "HTTP request latency by route template, method and status."
            );
            metrics::describe_gauge!(
                RESIDENT_MEMORY,
                metrics::Unit::Bytes,
                "Resident memory of the process (VmRSS)."
            );
            metrics::describe_gauge!(ALIVE_TASKS, "Tasks alive in the process's tokio runtime.");
        });
        registry.on_render(|| {
            if let Some(bytes) = resident_memory_bytes() {
                metrics::gauge!(RESIDENT_MEMORY).set(bytes as f64);
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                metrics::gauge!(ALIVE_TASKS).set(runtime.metrics().num_alive_tasks() as f64);
            }
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(upkeep(Arc::downgrade(&registry)));
        }
        registry
    }

    /// The recorder, for crates that register their own handles (`events::StoreMetrics`).
    pub fn recorder(&self) -> &dyn metrics::Recorder {
        &self.recorder
    }

    /// Runs `register` with this registry as the recorder of the `metrics` macros: handles and
    /// descriptions made inside belong to it.
    pub fn register<T>(&self, register: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, register)
    }

    /// Runs `collect` (inside [`register`](Self::register)) before every rendering.
    pub fn on_render(&self, collect: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut collectors) = self.collectors.write() {
            collectors.push(Box::new(collect));
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        self.register(|| {
            if let Ok(collectors) = self.collectors.read() {
                collectors.iter().for_each(|collect| collect());
            }
        });
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// The `GET /metrics` page.
    pub fn response(&self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            self.render(),
        )
            .into_response()
    }

    /// Records one request's latency in [`REQUEST_DURATION`] under its route template, method
    /// and status (the layer is `http::timed`).
    pub fn record_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let key = (method.clone(), status);
        if let Ok(known) = self.request_durations.read() {
            if let Some(histogram) = known.get(route).and_then(|by_key| by_key.get(&key)) {
                histogram.record(seconds);
                return;
            }
        }
        let histogram = self.register(|| {
            metrics::histogram!(
                REQUEST_DURATION,
                "route" => route_label(route),
                "method" => method.as_str().to_owned(),
                "status" => status.to_string()
            )
        });
        histogram.record(seconds);
        if let Ok(mut known) = self.request_durations.write() {
            known
                .entry(route.to_owned())
                .or_default()
                .insert(key, histogram);
        }
    }

    /// A router serving only `GET /metrics`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/metrics",
                get(|State(registry): State<Arc<MetricsRegistry>>| async move {
                    registry.response()
                }),
            )
            .with_state(self.clone())
    }
}

async fn upkeep(registry: Weak<MetricsRegistry>) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        match registry.upgrade() {
            Some(registry) => registry.handle.run_upkeep(),
            None => return,
        }
    }
}

/// A route template as a label value, its parameters written `:name` (`/v1/jobs/:id`).
/// Braces are legal inside a quoted label value, but several text-format parsers end a label
/// set at the first `}`, and a scrape should read the same in every tool.
pub fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> prometheus_parse::Scrape {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text")
    }

    #[test]
    fn two_registries_in_one_process_keep_their_series_apart() {
        let first = MetricsRegistry::new("first");
        let second = MetricsRegistry::new("second");
        first.register(|| {
            metrics::describe_counter!("simplepro_test_things_total", "Things.");
            metrics::counter!("simplepro_test_things_total").increment(3);
        });
        let first_text = first.render();
        assert!(first_text.contains("simplepro_test_things_total{service=\"first\"} 3"));
        assert!(first_text.contains("# HELP simplepro_test_things_total Things."));
        assert!(!second.render().contains("simplepro_test_things_total"));
    }

    #[test]
    fn seconds_and_size_histograms_have_buckets_and_collectors_run_at_render() {
        let registry = MetricsRegistry::new("svc");
        let latency = registry.register(|| metrics::histogram!("simplepro_test_wait_seconds"));
        let size = registry.register(|| metrics::histogram!("simplepro_test_batch_size"));
        latency.record(0.003);
        size.record(7.0);
        registry.on_render(|| metrics::gauge!("simplepro_test_depth").set(4.0));
        let scrape = samples(&registry.render());
        let histogram = |name: &str| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name)
                .map(|s| matches!(s.value, prometheus_parse::Value::Histogram(_)))
        };
        assert_eq!(histogram("simplepro_test_wait_seconds"), Some(true));
        assert_eq!(histogram("simplepro_test_batch_size"), Some(true));
        let depth = scrape
            .samples
            .iter()
            .find(|s| s.metric == "simplepro_test_depth");
        assert!(matches!(
            depth.map(|s| &s.value),
            Some(prometheus_parse::Value::Gauge(v)) if *v == 4.0
        ));
    }
}
