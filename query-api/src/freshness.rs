//! How current the served read models are, and keeping the cache in step with them.
//!
//! - Change notices (core NATS, from the projector after each flush) name the documents that
//!   changed: they are dropped from the cache first, then the known position moves on, so a
//!   request that sees the new position never reads a document older than it.
//! - Core NATS may lose notices, so a poller re-reads the registry and every model's
//!   checkpoint document once per second (bypassing the cache); a model whose checkpoint moved
//!   further than the notices said, or whose generation changed, is dropped from the cache.
//! - Requests with `min_position` wait on the known position (a `watch` channel, no polling
//!   loop of their own), bounded by `--consistency-wait-ms`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::Instrument;

use read_models::query::{model_checkpoints, Generations};
use read_models::{names, Model};

use crate::docs::{DocKey, DocStore, Uncached};
use crate::metrics::Metrics;
use crate::push::{Change, Changes};

/// How often the checkpoints are re-read when no notice arrives.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A second invalidation of the same documents this long after a notice removes a stale copy
/// that a read in flight during the first one may have put back.
const REINVALIDATE_AFTER: Duration = Duration::from_millis(150);

#[derive(Debug, Deserialize)]
struct ChangeNotice {
    position: u64,
    /// The models that reached `position`; every model when absent (one projector instance
    /// writing them all).
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    docs: Vec<ChangedDoc>,
    #[serde(default)]
    registry: bool,
    /// The traces of the commands whose events this notice makes visible.
    #[serde(default)]
    traceparents: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct ChangedDoc {
    collection: String,
    id: String,
}

pub struct Freshness {
    docs: Arc<DocStore>,
    metrics: Arc<Metrics>,
    /// Per model (in `Model::ALL` order): the checkpoint known from notices and polls.
    checkpoints: Mutex<[u64; 5]>,
    generations: RwLock<Generations>,
    position: watch::Sender<u64>,
    /// Every change of the read models, for the server-sent event streams.
    changes: Changes,
}

/// The read models did not reach the required position in time; this is where they are.
#[derive(Debug, Clone, Copy)]
pub struct NotYet {
    pub current: u64,
}

impl Freshness {
    /// Reads the registry and the checkpoints once, so the first request has a position.
    pub async fn load(docs: Arc<DocStore>, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        let (position, _) = watch::channel(0);
        let freshness = Arc::new(Freshness {
            docs,
            metrics,
            checkpoints: Mutex::new([0; 5]),
            generations: RwLock::new(Generations::new()),
            position,
            changes: Changes::default(),
        });
        freshness.poll().await?;
        Ok(freshness)
    }

    /// The changes of the read models from now on, each announced once the cache no longer
    /// holds what it replaced.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The position every served read model has reached (the smallest of their checkpoints).
    pub fn position(&self) -> u64 {
        *self.position.borrow()
    }

    /// The checkpoint known of one model: its documents include every event up to it.
    pub fn model_position(&self, model: Model) -> u64 {
        let index = Model::ALL.iter().position(|m| *m == model).unwrap_or(0);
        self.checkpoints()[index]
    }

    /// Per model: (model, live generation, checkpoint).
    pub fn models(&self) -> Vec<(Model, u32, u64)> {
        let generations = self.generations();
        let checkpoints = self.checkpoints();
        Model::ALL
            .iter()
            .zip(checkpoints)
            .map(|(model, checkpoint)| (*model, generations.get(*model), checkpoint))
            .collect()
    }

    pub fn generations(&self) -> Generations {
        match self.generations.read() {
            Ok(generations) => *generations,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn checkpoints(&self) -> [u64; 5] {
        match self.checkpoints.lock() {
            Ok(checkpoints) => *checkpoints,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// The position once it is at least `required`, waiting at most `timeout`.
    pub async fn wait_for(&self, required: u64, timeout: Duration) -> Result<u64, NotYet> {
        let current = self.position();
        if current >= required {
            return Ok(current);
        }
        self.metrics
            .consistency_waits
            .fetch_add(1, Ordering::Relaxed);
        let mut receiver = self.position.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|p| *p >= required)).await;
        match reached {
            Ok(Ok(position)) => Ok(*position),
            _ => {
                self.metrics
                    .consistency_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Err(NotYet {
                    current: self.position(),
                })
            }
        }
    }

    /// Applies one change notice (the raw NATS payload).
    pub async fn on_notice(self: &Arc<Self>, payload: &[u8]) {
        self.metrics.change_notices.fetch_add(1, Ordering::Relaxed);
        let notice: ChangeNotice = match serde_json::from_slice(payload) {
            Ok(notice) => notice,
            Err(error) => {
                // Not knowing what changed, the only safe answer is to forget everything.
                tracing::warn!(%error, "undecodable change notice; dropping the whole cache");
                self.metrics
                    .undecodable_notices
                    .fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .invalidated_models
                    .fetch_add(1, Ordering::Relaxed);
                self.docs.invalidate_all();
                self.changes.announce(Change::everything(self.position()));
                return;
            }
        };
        // The invalidation continues the trace of the first command the notice covers and
        // links the others.
        let span = tracing::info_span!(
            "invalidate",
            position = notice.position,
            docs = notice.docs.len()
        );
        let mut traces = notice.traceparents.iter();
        if let Some(first) = traces.next() {
            platform::trace_context::continue_trace(&span, first);
        }
        for other in traces {
            platform::trace_context::link_trace(&span, other);
        }
        self.apply_notice(notice).instrument(span).await;
    }

    async fn apply_notice(self: &Arc<Self>, notice: ChangeNotice) {
        let mut change = Change::of_collections(
            notice.position,
            notice.docs.iter().map(|d| d.collection.as_str()),
        );
        if notice.registry {
            change = Change::everything(notice.position);
            self.metrics
                .invalidated_models
                .fetch_add(1, Ordering::Relaxed);
            self.docs.invalidate_all();
            if let Err(error) = self.poll().await {
                tracing::warn!(%error, "reloading the registry after a notice failed");
            }
        }
        let keys: Vec<DocKey> = notice
            .docs
            .into_iter()
            .map(|d| DocKey {
                collection: d.collection,
                id: d.id,
            })
            .collect();
        if !keys.is_empty() {
            self.docs.invalidate(&keys).await;
            self.metrics
                .invalidated_docs
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REINVALIDATE_AFTER).await;
                this.docs.invalidate(&keys).await;
                // A stream that rendered a stale copy put back meanwhile renders again.
                this.changes.announce(change);
            });
        }
        // The announcing projector instance flushed the models it writes up to the notice's
        // position.
        if let Ok(mut checkpoints) = self.checkpoints.lock() {
            for (model, known) in Model::ALL.iter().zip(checkpoints.iter_mut()) {
                let named = notice
                    .models
                    .as_ref()
                    .is_none_or(|models| models.iter().any(|m| m == model.as_str()));
                if named {
                    *known = (*known).max(notice.position);
                }
            }
        }
        self.publish_position();
        self.changes.announce(change);
    }

    /// Re-reads the registry and the checkpoints from MongoDB; drops from the cache every
    /// model whose generation changed or whose checkpoint moved without a notice.
    pub async fn poll(&self) -> anyhow::Result<()> {
        let source = Uncached(&self.docs);
        let generations = Generations::load(&source).await?;
        let stored = model_checkpoints(&source, &generations).await?;
        let previous = self.generations();
        let known = self.checkpoints();
        let mut change = Change::of_collections(0, std::iter::empty());
        for (index, model) in Model::ALL.into_iter().enumerate() {
            let switched = previous.get(model) != generations.get(model);
            if switched || stored[index] > known[index] {
                change = change.with(model);
                self.docs.invalidate_collections(&names::generation_prefix(
                    model,
                    generations.get(model),
                ));
                if switched {
                    self.docs.invalidate_collections(&names::generation_prefix(
                        model,
                        previous.get(model),
                    ));
                }
                self.metrics
                    .invalidated_models
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Ok(mut slot) = self.generations.write() {
            *slot = generations;
        }
        if let Ok(mut checkpoints) = self.checkpoints.lock() {
            for (index, model) in Model::ALL.into_iter().enumerate() {
                // A new generation may legitimately be behind the old one's notices.
                checkpoints[index] = if previous.get(model) != generations.get(model) {
                    stored[index]
                } else {
                    checkpoints[index].max(stored[index])
                };
            }
        }
        self.publish_position();
        change.position = self.position();
        self.changes.announce(change);
        Ok(())
    }

    fn publish_position(&self) {
        let position = self.checkpoints().into_iter().min().unwrap_or(0);
        self.position.send_if_modified(|current| {
            if *current != position {
                *current = position;
                true
            } else {
                false
            }
        });
    }

    /// Follows change notices from `subscriber` (subscribed before the service answers, so
    /// no notice after start-up is missed) and polls the checkpoints, until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        nats: async_nats::Client,
        subject: String,
        mut subscriber: async_nats::Subscriber,
        shutdown: platform::shutdown::Shutdown,
    ) {
        let notices = {
            let this = self.clone();
            async move {
                loop {
                    while let Some(message) = subscriber.next().await {
                        this.on_notice(&message.payload).await;
                    }
                    // The client closed the subscription; take a new one (the poll covers the gap).
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        match nats.subscribe(subject.clone()).await {
                            Ok(fresh) => {
                                subscriber = fresh;
                                break;
                            }
                            Err(error) => {
                                tracing::warn!(%error, %subject, "cannot subscribe to change notices; retrying");
                            }
                        }
                    }
                }
            }
        };
        let polls = async {
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = self.poll().await {
                    tracing::warn!(%error, "polling the read-model checkpoints failed");
                }
            }
        };
        tokio::select! {
            _ = notices => {}
            _ = polls => {}
            _ = shutdown.wait() => {}
        }
    }
}
