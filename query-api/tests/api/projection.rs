//! Writes read models the way the projector does: events through `read_models::apply` over a
//! document cache, dirty documents flushed tier by tier with `replace_one(upsert)`, the
//! checkpoints written, and a change notice published. A reference fold of the same events
//! gives the expected views. The document cache loads from an in-memory mirror of what was
//! written (this projector is the only writer), which keeps large histories fast.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::calendar::BusinessTimeZone;
use domain::DomainEvent;
use events::EventEnvelope;
use read_models::cache::DocCache;
use read_models::memory::MemoryStore;
use read_models::reference::ReferenceModel;
use read_models::store::ProjectionStore;
use read_models::{apply, Model, ProjectionContext};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::support::Harness;

/// One event before it has a position: stream, type and payload, time.
pub(crate) struct Scripted {
    aggregate_type: &'static str,
    aggregate_id: String,
    event_type: String,
    payload: Value,
    occurred_at: DateTime<Utc>,
}

/// Builds a domain event from its tagged JSON form, so the payload is exactly what the
/// domain would store (value types are validated on the way).
pub(crate) fn event<E: DomainEvent + DeserializeOwned>(
    aggregate_type: &'static str,
    aggregate_id: impl ToString,
    occurred_at: DateTime<Utc>,
    tagged: Value,
) -> Scripted {
    let event: E = serde_json::from_value(tagged.clone())
        .unwrap_or_else(|e| panic!("invalid scripted event {tagged}: {e}"));
    Scripted {
        aggregate_type,
        aggregate_id: aggregate_id.to_string(),
        event_type: event.event_type().to_owned(),
        payload: event.to_payload(),
        occurred_at,
    }
}

pub(crate) struct Projector {
    mirror: MemoryStore,
    caches: Vec<(Model, DocCache)>,
    context: ProjectionContext,
    versions: HashMap<(String, String), u64>,
    pub(crate) position: u64,
    pub(crate) reference: ReferenceModel,
}

impl Projector {
    pub(crate) fn new() -> Self {
        Self::for_models(&Model::ALL)
    }

    /// Projects only `models` (the others' checkpoints still move, as after an empty flush).
    pub(crate) fn for_models(models: &[Model]) -> Self {
        let time_zone = BusinessTimeZone::parse("America/New_York").unwrap();
        Projector {
            mirror: MemoryStore::new(),
            caches: models
                .iter()
                .map(|m| (*m, DocCache::new(100_000)))
                .collect(),
            context: ProjectionContext {
                time_zone,
                generation: 1,
            },
            versions: HashMap::new(),
            position: 0,
            reference: ReferenceModel::new(time_zone),
        }
    }

    /// Applies `script` as one flush and announces it; returns the new checkpoint.
    pub(crate) async fn flush(&mut self, h: &Harness, script: Vec<Scripted>) -> u64 {
        let changed = self.apply_and_write(h, script).await;
        h.write_checkpoints(self.position).await;
        h.notify(self.position, &changed, false).await;
        self.position
    }

    /// Applies and writes documents and checkpoints, but publishes no notice (a lost one).
    pub(crate) async fn flush_silently(&mut self, h: &Harness, script: Vec<Scripted>) -> u64 {
        self.apply_and_write(h, script).await;
        h.write_checkpoints(self.position).await;
        self.position
    }

    async fn apply_and_write(
        &mut self,
        h: &Harness,
        script: Vec<Scripted>,
    ) -> Vec<(String, String)> {
        let envelopes: Vec<EventEnvelope> = script
            .into_iter()
            .map(|s| {
                self.position += 1;
                let version = self
                    .versions
                    .entry((s.aggregate_type.to_owned(), s.aggregate_id.clone()))
                    .or_insert(0);
                *version += 1;
                EventEnvelope {
                    event_id: uuid::Uuid::now_v7(),
                    aggregate_type: s.aggregate_type.to_owned(),
                    aggregate_id: s.aggregate_id,
                    version: *version,
                    position: Some(self.position),
                    schema_version: domain::codec::current_version(&s.event_type),
                    event_type: s.event_type,
                    occurred_at: s.occurred_at,
                    recorded_at: s.occurred_at,
                    correlation_id: "test".into(),
                    causation_id: None,
                    actor: "system:test".into(),
                    traceparent: None,
                    payload: s.payload,
                }
            })
            .collect();
        let mut changed = Vec::new();
        for envelope in &envelopes {
            self.reference.apply(envelope).unwrap();
        }
        for (model, cache) in &mut self.caches {
            for envelope in &envelopes {
                apply(*model, &self.context, cache, &self.mirror, envelope)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{model} cannot apply {}: {e:?}", envelope.event_type)
                    });
            }
            let dirty = cache.take_dirty();
            self.mirror.write(dirty.clone());
            changed.extend(dirty.iter().map(|d| (d.collection.clone(), d.id.clone())));
            let fenced = h
                .env
                .read_models
                .write_docs(dirty, 8)
                .await
                .expect("write the documents");
            assert_eq!(fenced, 0, "a document went back in `_pos`");
        }
        changed
    }
}
