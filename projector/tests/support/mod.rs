//! Harness of the pipeline tests: the projector in-process, appends of generated histories,
//! direct publishing on JetStream, and the comparison of every query with the reference fold.

pub(crate) mod compare;
pub(crate) mod history;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use bson::{doc, Document};
use clap::Parser;
use events::store::ReadAllOptions;
use events::{AppendRequest, EventEnvelope, EventMetadata, EventStore, Expected};
use platform::shutdown::{self, ShutdownTrigger};
use projector::Config;
use read_models::cache::LoadError;
use read_models::query::{self, DocSource, Generations};
use tests::TestEnv;

use history::{GeneratedCommit, History};

/// Read-model documents straight from MongoDB, as the query API reads them.
#[derive(Clone)]
pub(crate) struct MongoSource(pub read_models::dbs::ReadModelDbs);

impl DocSource for MongoSource {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Arc<Document>>, LoadError> {
        self.0
            .collection::<Document>(collection)
            .find_one(doc! {"_id": id})
            .await
            .map(|d| d.map(Arc::new))
            .map_err(|e| LoadError::new(e.to_string()))
    }
}

pub(crate) fn config(env: &TestEnv, extra: &[&str]) -> Config {
    let mut args = vec!["projector".to_owned()];
    args.extend(env.service_args());
    let filter = std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into());
    let tuning = [
        "--timezone",
        "America/New_York",
        "--poll-ms",
        "100",
        "--log-filter",
        &filter,
    ];
    args.extend(tuning.iter().chain(extra).map(|a| (*a).to_owned()));
    Config::try_parse_from(args).expect("test configuration parses")
}

/// A projector running in this process.
pub(crate) struct RunningProjector {
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub(crate) addr: SocketAddr,
}

impl RunningProjector {
    pub(crate) async fn start(env: &TestEnv) -> Self {
        Self::start_with(env, &[]).await
    }

    /// Starts the projector with extra command-line arguments.
    pub(crate) async fn start_with(env: &TestEnv, args: &[&str]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local address");
        let (trigger, stop) = shutdown::channel();
        let config = config(env, args);
        let _ = platform::telemetry::init(&config.telemetry, "projector");
        let task = tokio::spawn(projector::run(config, listener, stop));
        RunningProjector {
            trigger,
            task,
            addr,
        }
    }

    /// Kills the projector without a graceful shutdown, wherever it is.
    pub(crate) async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    pub(crate) async fn stop(self) {
        self.trigger.trigger();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("projector stops within 20 s");
        result
            .expect("projector task")
            .expect("projector ran cleanly");
    }

    pub(crate) async fn get(&self, path: &str) -> String {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .expect("projector answers")
            .text()
            .await
            .expect("response body")
    }

    /// The value of a counter or gauge, summed over its label sets, read with a Prometheus
    /// text parser.
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await;
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        let values: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == name)
            .filter_map(|sample| match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => Some(v),
                _ => None,
            })
            .collect();
        assert!(!values.is_empty(), "metric {name} missing in:\n{text}");
        values.iter().sum()
    }
}

/// Appends `commits` keeping each stream's order; commits of different streams go
/// concurrently in small waves. A commit that creates an aggregate is appended alone, after
/// everything before it and before everything after it, as the command API does: it only
/// accepts a job for an existing customer or a thread between registered users, so a
/// reference is always appended after what it refers to. Returns the number of events.
pub(crate) async fn append(store: &EventStore, commits: Vec<GeneratedCommit>) -> u64 {
    let mut total = 0;
    let mut wave: Vec<GeneratedCommit> = Vec::new();
    let mut streams = std::collections::HashSet::new();
    for commit in commits {
        let creates = commit.expected_version == 0;
        if creates || wave.len() >= 16 || !streams.insert(commit.stream.clone()) {
            total += flush_wave(store, std::mem::take(&mut wave)).await;
            streams.clear();
            streams.insert(commit.stream.clone());
        }
        if creates {
            total += flush_wave(store, vec![commit]).await;
            streams.clear();
            continue;
        }
        wave.push(commit);
    }
    total + flush_wave(store, wave).await
}

async fn flush_wave(store: &EventStore, wave: Vec<GeneratedCommit>) -> u64 {
    let appends = wave.into_iter().map(|commit| {
        let events = commit.events.len() as u64;
        let request = AppendRequest {
            stream: commit.stream,
            expected: Expected::Version(commit.expected_version),
            events: commit.events,
            metadata: EventMetadata {
                correlation_id: "test".into(),
                causation_id: None,
                actor: "system:test".into(),
                traceparent: None,
            },
            idempotency: None,
            snapshot: None,
        };
        async move {
            store.append(request).await.expect("append");
            events
        }
    });
    futures::future::join_all(appends).await.into_iter().sum()
}

/// Generates at least `events` events from `history` as commits.
pub(crate) fn generate(history: &mut History, events: usize) -> Vec<GeneratedCommit> {
    let mut commits = Vec::new();
    let mut count = 0;
    while count < events {
        let commit = history.next_commit();
        count += commit.events.len();
        commits.push(commit);
    }
    commits
}

/// Waits until the relay has sequenced position `tail`.
pub(crate) async fn wait_sequenced(store: &EventStore, tail: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.event_at(tail).await.expect("read log").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "relay did not sequence {tail}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every live model's checkpoint reaches `tail`.
pub(crate) async fn wait_projected(env: &TestEnv, tail: u64, within: Duration) {
    let src = MongoSource(env.read_models.clone());
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let gens = Generations::load(&src).await.expect("registry");
        let checkpoint = query::checkpoint(&src, &gens).await.expect("checkpoint");
        if checkpoint >= tail {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projector stuck at {checkpoint}, tail {tail}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) async fn read_all(store: &EventStore) -> Vec<EventEnvelope> {
    let mut batches = store.read_all(ReadAllOptions::default());
    let mut all = Vec::new();
    while let Some(batch) = batches.next().await {
        all.extend(batch.expect("read the log"));
    }
    all
}

/// Publishes envelopes on the events stream with the given message ids (so JetStream keeps
/// copies that a republish with the event id would lose to its duplicate window).
/// They are events of `store`, named in their headers as the relay names them.
pub(crate) async fn publish_raw(
    env: &TestEnv,
    store: &EventStore,
    envelopes: &[(EventEnvelope, String)],
) {
    let bus = env.bus().await;
    bus.ensure_stream().await.expect("stream");
    let mut acks = Vec::new();
    for (envelope, msg_id) in envelopes {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        headers.insert(events::bus::STORE_HEADER, store.identity());
        let ack = bus
            .jetstream()
            .publish_with_headers(
                bus.subject(&envelope.aggregate_type, &envelope.aggregate_id),
                headers,
                serde_json::to_vec(envelope).expect("encode").into(),
            )
            .await
            .expect("publish");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("JetStream ack");
    }
}
