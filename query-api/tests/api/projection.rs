//! Writes read models the way the projector does: events through `read_models::apply` over a
//! document cache, dirty documents flushed tier by tier with `replace_one(upsert)`, the
//! checkpoints written, and a change notice published. A reference fold of the same events
//! gives the expected views. The document cache loads from an in-memory mirror of what was
//! written (this projector is the only writer), which keeps large histories fast.

use std::collections::HashMap;

use bson::{doc, RawDocumentBuf};
use chrono::{DateTime, Utc};
use domain::calendar::BusinessTimeZone;
use domain::DomainEvent;
use events::EventEnvelope;
use futures::StreamExt;
use read_models::cache::{flush_batches, DirtyDoc, DocCache};
use read_models::memory::MemoryStore;
use read_models::reference::ReferenceModel;
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
            for batch in flush_batches(cache.take_dirty()) {
                self.mirror.write(batch.clone());
                let database = &h.env.read_models;
                let written: Vec<(String, String)> = futures::stream::iter(batch)
                    .map(|dirty| write_doc(database, dirty))
                    .buffer_unordered(8)
                    .collect()
                    .await;
                changed.extend(written);
            }
        }
        changed
    }
}

/// Writes one document as the projector does; FerretDB's SQLite backend answers concurrent
/// writers with "database is locked" now and then, which is worth a retry.
async fn write_doc(database: &read_models::dbs::ReadModelDbs, dirty: DirtyDoc) -> (String, String) {
    let collection = database.collection::<RawDocumentBuf>(&dirty.collection);
    let mut attempt = 0;
    loop {
        let result = match &dirty.doc {
            Some(doc) => collection
                .replace_one(doc! {"_id": &dirty.id}, doc.clone())
                .upsert(true)
                .await
                .map(|_| ()),
            None => collection
                .delete_one(doc! {"_id": &dirty.id})
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => return (dirty.collection, dirty.id),
            Err(error) if attempt < 50 => {
                attempt += 1;
                let _ = error;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("writing {}/{}: {error}", dirty.collection, dirty.id),
        }
    }
}
