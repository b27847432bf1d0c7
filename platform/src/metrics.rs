//! One Prometheus registry per service instance, fed through the `metrics` facade, and the
//! `/metrics` page and request-latency histograms every service shares (recorded by
//! `http::route_timing`).
//!
//! A registry is not installed as the process-global recorder: tests run a command API, a
//! query API and a projector in one process, and each must answer `/metrics` with its own
//! series. Handles (`Counter`, `Gauge`, `Histogram`) are registered once against the
//! instance's recorder with [`MetricsRegistry::register`], which runs the `metrics` macros with
//! it as the local recorder; the handles then record without any lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::Histogram;

use crate::latency::BucketedLatency;
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

/// How often histogram samples (and counted request latencies) are folded into their
/// buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

type Collector = Box<dyn Fn() + Send + Sync>;

/// Request-latency histograms by route template, then by method and status.
type RequestDurations = HashMap<String, HashMap<(Method, u16), Arc<RequestLatency>>>;

/// One series of [`REQUEST_DURATION`]: its histogram, and the bucket counts requests add to
/// between two folds into it.
struct RequestLatency {
    route: Box<str>,
    histogram: Histogram,
    counted: BucketedLatency,
}

/// The series of one service instance, labelled `service="<name>"`.
pub struct MetricsRegistry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Set gauges from state read at scrape time (cache sizes, checkpoints, backlogs).
    collectors: RwLock<Vec<Collector>>,
    /// [`REQUEST_DURATION`] series by route template, then method and status: a request
    /// looks its series up instead of building a labelled key (allocating its label values)
    /// and finding it in the registry, and only counts itself into a bucket there
    /// ([`BucketedLatency`]); the histograms get the counts before each rendering and every
    /// [`UPKEEP_INTERVAL`].
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
        self.fold();
        self.handle.render()
    }

    /// Hands the request latencies counted since the last fold to their histograms, and
    /// folds every histogram's samples into its buckets.
    fn fold(&self) {
        if let Ok(known) = self.request_durations.read() {
            for latency in known.values().flat_map(HashMap::values) {
                latency.counted.drain_into(&latency.histogram);
            }
        }
        self.handle.run_upkeep();
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
    /// and status (the layer is `http::route_timing`).
    pub fn record_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        if let Some(latency) = self.request_latency(route, method, status) {
            latency.counted.record(elapsed);
        }
    }

    /// The [`REQUEST_DURATION`] series of a route template, method and status, made on first
    /// use.
    fn request_latency(
        &self,
        route: &str,
        method: &Method,
        status: u16,
    ) -> Option<Arc<RequestLatency>> {
        let key = (method.clone(), status);
        if let Ok(known) = self.request_durations.read() {
            if let Some(latency) = known.get(route).and_then(|by_key| by_key.get(&key)) {
                return Some(latency.clone());
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
        let mut known = self.request_durations.write().ok()?;
        let latency = known
            .entry(route.to_owned())
            .or_default()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(RequestLatency {
                    route: route.into(),
                    histogram,
                    counted: BucketedLatency::new(SECONDS_BUCKETS),
                })
            });
        Some(latency.clone())
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

/// Slots of a [`RouteRequests`] table: far more method and status pairs than one route
/// answers with.
const ROUTE_SLOTS: usize = 32;

/// The [`REQUEST_DURATION`] series of one route, found by method and status without a lock:
/// every request records its latency, and a shared lock or a hash of the route template per
/// request cost the warm read path more than the recording itself. A pair the table has no
/// room for (or a method outside the standard ones) goes through the registry's map.
pub struct RouteRequests {
    registry: Arc<MetricsRegistry>,
    slots: [RouteSlot; ROUTE_SLOTS],
}

#[derive(Default)]
struct RouteSlot {
    /// `0` while free, else [`RouteRequests::key`]; set once.
    key: AtomicU32,
    latency: OnceLock<Option<Arc<RequestLatency>>>,
}

impl RouteRequests {
    pub fn new(registry: Arc<MetricsRegistry>) -> Self {
        RouteRequests {
            registry,
            slots: std::array::from_fn(|_| RouteSlot::default()),
        }
    }

    /// Records one request's latency under `route` (the template the router matched),
    /// `method` and `status`.
    pub fn record(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        match self.latency(route, method, status) {
            Some(latency) => latency.counted.record(elapsed),
            None => self.registry.record_request(route, method, status, elapsed),
        }
    }

    fn latency(&self, route: &str, method: &Method, status: u16) -> Option<&RequestLatency> {
        let key = Self::key(method, status)?;
        let start = key as usize % ROUTE_SLOTS;
        for probe in 0..ROUTE_SLOTS {
            let slot = &self.slots[(start + probe) % ROUTE_SLOTS];
            let mut held = slot.key.load(Ordering::Acquire);
            if held == 0 {
                held = match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => key,
                    Err(other) => other,
                };
            }
            if held == key {
                let latency = slot
                    .latency
                    .get_or_init(|| self.registry.request_latency(route, method, status));
                // One table serves one route; a request of another (none is expected) is
                // recorded through the registry rather than under this route's series.
                return latency.as_deref().filter(|l| *l.route == *route);
            }
        }
        None
    }

    /// Method and status as one non-zero number; `None` for a method outside the standard
    /// ones.
    fn key(method: &Method, status: u16) -> Option<u32> {
        let method = match *method {
            Method::GET => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::PATCH => 4,
            Method::DELETE => 5,
            Method::HEAD => 6,
            Method::OPTIONS => 7,
            _ => return None,
        };
        Some(method << 16 | u32::from(status))
    }
}

async fn upkeep(registry: Weak<MetricsRegistry>) {
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        ticks.tick().await;
        match registry.upgrade() {
            Some(registry) => registry.fold(),
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

    /// The request count and sum of one series of [`REQUEST_DURATION`] in a scrape.
    fn request_series(text: &str, route: &str, status: &str) -> Option<(f64, f64)> {
        let histogram = samples(text).samples.into_iter().find(|s| {
            s.metric == REQUEST_DURATION
                && s.labels.get("route") == Some(route)
                && s.labels.get("status") == Some(status)
        })?;
        match histogram.value {
            prometheus_parse::Value::Histogram(buckets) => {
                let count = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
                let sum = samples(text)
                    .samples
                    .into_iter()
                    .find(|s| {
                        s.metric == format!("{REQUEST_DURATION}_sum")
                            && s.labels.get("route") == Some(route)
                            && s.labels.get("status") == Some(status)
                    })
                    .map(|s| match s.value {
                        prometheus_parse::Value::Untyped(v) => v,
                        _ => f64::NAN,
                    })?;
                Some((count, sum))
            }
            _ => None,
        }
    }

    #[test]
    fn request_latencies_reach_their_series_across_renders_whatever_the_table_holds() {
        let registry = MetricsRegistry::new("svc");
        let route = RouteRequests::new(registry.clone());
        // More statuses than the route's table has slots: the rest go through the registry.
        for status in 200..200 + 2 * ROUTE_SLOTS as u16 {
            route.record(
                "/items/{id}",
                &Method::GET,
                status,
                Duration::from_millis(3),
            );
        }
        // A route the table does not serve is kept apart all the same.
        route.record("/other", &Method::GET, 200, Duration::from_millis(20));
        let first = registry.render();
        for status in [200, 200 + ROUTE_SLOTS as u16 + 5] {
            let (count, sum) = request_series(&first, "/items/:id", &status.to_string())
                .unwrap_or_else(|| panic!("no series for {status}: {first}"));
            assert_eq!(count, 1.0);
            assert!((sum - 0.003).abs() < 1e-9, "{sum}");
        }
        assert_eq!(
            request_series(&first, "/other", "200").map(|(count, _)| count),
            Some(1.0)
        );

        route.record("/items/{id}", &Method::GET, 200, Duration::from_millis(7));
        let second = registry.render();
        let (count, sum) = request_series(&second, "/items/:id", "200").expect("series");
        assert_eq!(count, 2.0, "counts add up across renders: {second}");
        assert!((sum - 0.010).abs() < 1e-9, "{sum}");
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
