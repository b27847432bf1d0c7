//! One model generation being written: its document cache, the position applied in memory,
//! the persisted checkpoint, and the aggregates parked behind a dead letter.
//!
//! Live projection and rebuilds share this code: apply a dense run of events, then flush the
//! dirty documents, the parked list and the checkpoint, in that order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::codec::Codec;
use events::EventEnvelope;
use platform::stored::upcast_in_place;
use read_models::cache::{DirtyDoc, DocCache};
use read_models::dbs::ReadModelDbs;
use read_models::store::{DeadLetter, ParkedAggregate, ProjectionStore};
use read_models::{Model, ProjectionContext};

use crate::metrics::Metrics;
use crate::notify::ChangedDoc;
use crate::ProjectError;

/// An event ready for the models: upcast to the current schema, or the reason it could not be.
pub(crate) struct Prepared {
    pub(crate) event: EventEnvelope,
    pub(crate) upcast_error: Option<String>,
}

pub(crate) fn prepare(codec: &Codec, events: Vec<EventEnvelope>) -> Vec<Prepared> {
    events
        .into_iter()
        .map(|mut event| {
            let upcast_error = upcast_in_place(codec, &mut event)
                .err()
                .map(|e| e.to_string());
            Prepared {
                event,
                upcast_error,
            }
        })
        .collect()
}

/// The position every one of `projections` has reached (0 for none).
pub(crate) fn lowest_applied(projections: &[ModelProjection]) -> u64 {
    projections
        .iter()
        .map(ModelProjection::applied)
        .min()
        .unwrap_or(0)
}

/// Applies `events` to every projection, each on a task of its own: models share nothing,
/// so a backlog's apply uses every core (M, five models: 10 s on one). A projection whose
/// task failed to finish is not given back; the caller treats the error like any failed
/// apply and reopens the models from their checkpoints.
pub(crate) async fn apply_all<S: ProjectionStore>(
    projections: &mut Vec<ModelProjection>,
    shared: &Shared<S>,
    events: &Arc<[Prepared]>,
) -> Result<(), ProjectError> {
    let tasks: Vec<_> = projections
        .drain(..)
        .map(|mut projection| {
            let (shared, events) = (shared.clone(), Arc::clone(events));
            tokio::spawn(async move {
                let before = projection.applied();
                let applied = projection.apply(&shared, &events).await;
                let model = projection.model.as_str();
                let count = projection.applied().saturating_sub(before);
                shared.metrics.applied_to(model, count);
                (projection, applied)
            })
        })
        .collect();
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok((projection, applied)) => {
                projections.push(projection);
                if let Err(error) = applied {
                    first_error.get_or_insert(error);
                }
            }
            Err(error) => {
                first_error.get_or_insert(ProjectError::Apply(format!(
                    "a model's apply task ended: {error}"
                )));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Shared by every model of one process: the read models' storage (MongoDB; memory in unit
/// tests), which also loads the documents the caches miss.
#[derive(Clone)]
pub(crate) struct Shared<S = ReadModelDbs> {
    pub(crate) db: S,
    pub(crate) metrics: std::sync::Arc<Metrics>,
    pub(crate) poison_attempts: u32,
}

/// What a model's document cache may hold after each flush.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheLimits {
    pub(crate) docs: usize,
    /// Encoded size of the documents held.
    pub(crate) bytes: usize,
}

pub(crate) struct ModelProjection {
    pub(crate) model: Model,
    pub(crate) generation: u32,
    /// Every event at or below it is in the cache (and, once flushed, in the database).
    applied: u64,
    /// What the checkpoint document says.
    persisted: u64,
    cache: DocCache,
    context: ProjectionContext,
    meta: String,
    parked: HashMap<(String, String), i64>,
    parked_changed: bool,
    /// Built from empty collections, none of which is created yet (see
    /// [`ModelProjection::create_collections`]).
    uncreated: bool,
}

/// A backlog at least this long makes a projection built from empty create its collections
/// before applying it: a backlog that size writes to nearly all of them anyway.
pub(crate) const CREATE_COLLECTIONS_BACKLOG: u64 = 10_000;

impl ModelProjection {
    /// Opens a generation where its checkpoint says (0 when it has none: built from scratch).
    pub(crate) async fn open<S: ProjectionStore>(
        db: &S,
        model: Model,
        generation: u32,
        context: ProjectionContext,
        cache: CacheLimits,
    ) -> Result<Self, ProjectError> {
        let meta = read_models::names::meta_collection(model, generation);
        let checkpoint = db.checkpoint(&meta).await?.unwrap_or(0);
        // No rollback copies: after any failed apply the projector drops this projection and
        // opens the model again from its checkpoint (`Live::recover`, a failed rebuild).
        let mut cache = DocCache::new(cache.docs)
            .with_byte_limit(cache.bytes)
            .without_rollback();
        let empty = checkpoint == 0 && holds_no_documents(db, model, generation, &meta).await?;
        if empty {
            // Built from scratch into empty collections (a first start, a rebuild): the
            // cache knows every document it will find, so it creates them without reading.
            cache.starting_from_empty_store();
        }
        let parked = db
            .parked(&meta)
            .await?
            .into_iter()
            .map(|p| ((p.aggregate_type, p.aggregate_id), p.position))
            .collect();
        Ok(ModelProjection {
            model,
            generation,
            applied: checkpoint,
            persisted: checkpoint,
            cache,
            context: ProjectionContext {
                generation,
                ..context
            },
            meta,
            parked,
            parked_changed: false,
            uncreated: empty,
        })
    }

    pub(crate) fn applied(&self) -> u64 {
        self.applied
    }

    pub(crate) fn persisted(&self) -> u64 {
        self.persisted
    }

    /// Applies the events above `applied`; they must continue it without a gap.
    pub(crate) async fn apply<S: ProjectionStore>(
        &mut self,
        shared: &Shared<S>,
        events: &[Prepared],
    ) -> Result<(), ProjectError> {
        for prepared in events {
            let position = prepared.event.position.unwrap_or(0);
            if position <= self.applied {
                continue;
            }
            if position != self.applied + 1 {
                return Err(ProjectError::Gap {
                    model: self.model.as_str().to_owned(),
                    applied: self.applied,
                    next: position,
                });
            }
            self.apply_one(shared, prepared).await?;
            self.applied = position;
        }
        Ok(())
    }

    async fn apply_one<S: ProjectionStore>(
        &mut self,
        shared: &Shared<S>,
        prepared: &Prepared,
    ) -> Result<(), ProjectError> {
        let event = &prepared.event;
        let position = event.position.unwrap_or(0);
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        if let Some(first) = self.parked.get(&key) {
            let reason = format!("parked behind {first}");
            return self.dead_letter(shared, event, &reason, 1).await;
        }
        if let Some(error) = &prepared.upcast_error {
            return self.park(shared, event, error, 1).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match read_models::apply(
                self.model,
                &self.context,
                &mut self.cache,
                &shared.db,
                event,
            )
            .await
            {
                Ok(()) => return Ok(()),
                Err(error) if error.is_poison() => {
                    if attempt >= shared.poison_attempts.max(1) {
                        let reason = error.to_string();
                        tracing::error!(
                            model = self.model.as_str(),
                            position,
                            event_type = %event.event_type,
                            %reason,
                            "event cannot be applied; dead-lettered and its aggregate parked"
                        );
                        return self.park(shared, event, &reason, attempt).await;
                    }
                    // Backoff in case the failure depends on something transient after all.
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                }
                Err(error) => return Err(ProjectError::Apply(error.to_string())),
            }
        }
    }

    async fn park<S: ProjectionStore>(
        &mut self,
        shared: &Shared<S>,
        event: &EventEnvelope,
        reason: &str,
        attempts: u32,
    ) -> Result<(), ProjectError> {
        self.parked.insert(
            (event.aggregate_type.clone(), event.aggregate_id.clone()),
            event.position.unwrap_or(0) as i64,
        );
        self.parked_changed = true;
        self.dead_letter(shared, event, reason, attempts).await
    }

    async fn dead_letter<S: ProjectionStore>(
        &mut self,
        shared: &Shared<S>,
        event: &EventEnvelope,
        reason: &str,
        attempts: u32,
    ) -> Result<(), ProjectError> {
        let letter = DeadLetter {
            model: self.model.as_str(),
            generation: self.generation,
            event,
            error: reason,
            attempts,
        };
        shared.db.dead_letter(letter).await?;
        shared.metrics.dead_lettered();
        Ok(())
    }

    /// Creates every physical collection of a projection built from empty, one after the
    /// other, ahead of a backlog of `backlog` events that is at least
    /// [`CREATE_COLLECTIONS_BACKLOG`]; otherwise the first writes create them as they go. On
    /// FerretDB's SQLite backend each new table makes every other connection re-parse the
    /// whole schema (about 1,440 collections and their indexes) before its next statement:
    /// created by the first inserts of four concurrent writers, that happened to nearly every
    /// write of a catch-up's first flush. (A restart before the first checkpoint then finds the
    /// collections and reads before creating documents: slower, equally right.)
    pub(crate) async fn create_collections<S: ProjectionStore>(
        &mut self,
        db: &S,
        backlog: u64,
    ) -> Result<(), ProjectError> {
        if !self.uncreated || backlog < CREATE_COLLECTIONS_BACKLOG {
            return Ok(());
        }
        for kind in self.model.kinds() {
            let collection = read_models::names::collection(self.model, self.generation, kind);
            db.create_collection(&collection).await?;
        }
        self.uncreated = false;
        Ok(())
    }

    /// The encoded size of the documents the cache holds after the last flush.
    pub(crate) fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Documents changed since the last flush.
    pub(crate) fn dirty_count(&self) -> usize {
        self.cache.dirty_count()
    }

    /// Takes the documents changed since the last flush (the cache marks them clean).
    pub(crate) fn take_dirty(&mut self) -> Result<Vec<DirtyDoc>, ProjectError> {
        if self.cache.is_torn() {
            // Unreachable: a failed apply returns its error before anything is flushed.
            return Err(ProjectError::Torn(self.model.as_str().to_owned()));
        }
        Ok(self.cache.take_dirty())
    }

    /// Persists the parked list and the checkpoint; call after the documents are written.
    pub(crate) async fn write_checkpoint<S: ProjectionStore>(
        &mut self,
        db: &S,
    ) -> Result<(), ProjectError> {
        if self.parked_changed {
            let parked: Vec<ParkedAggregate> = self
                .parked
                .iter()
                .map(
                    |((aggregate_type, aggregate_id), position)| ParkedAggregate {
                        aggregate_type: aggregate_type.clone(),
                        aggregate_id: aggregate_id.clone(),
                        position: *position,
                    },
                )
                .collect();
            db.write_parked(&self.meta, &parked).await?;
            self.parked_changed = false;
        }
        if self.applied != self.persisted {
            db.write_checkpoint(&self.meta, self.applied).await?;
            self.persisted = self.applied;
        }
        Ok(())
    }
}

/// Whether no collection of the generation but its `meta` exists: one listing of collection
/// names, where checking each partition would be a read per collection.
async fn holds_no_documents<S: ProjectionStore>(
    db: &S,
    model: Model,
    generation: u32,
    meta: &str,
) -> Result<bool, ProjectError> {
    let prefix = read_models::names::generation_prefix(model, generation);
    Ok(db
        .collections_named(&prefix)
        .await?
        .iter()
        .all(|name| name == meta))
}

/// What a flush's document writes did.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub(crate) changed: Vec<ChangedDoc>,
    /// Documents not written because the stored version is newer (see [`write_docs`]).
    pub(crate) fenced: usize,
}

/// Writes dirty documents of one or more models ([`ProjectionStore::write_docs`]: tier by
/// tier, `concurrency` writes at a time within a tier, every write fenced by `_pos` so that a
/// former owner of a model cannot put back an older version of a document a later owner
/// wrote). Returns what changed.
pub(crate) async fn write_docs<S: ProjectionStore>(
    db: &S,
    dirty: Vec<DirtyDoc>,
    concurrency: usize,
) -> Result<Written, ProjectError> {
    let changed = dirty
        .iter()
        .map(|d| ChangedDoc {
            collection: d.collection.clone(),
            id: d.id.clone(),
        })
        .collect();
    let fenced = db.write_docs(dirty, concurrency).await?;
    Ok(Written { changed, fenced })
}

#[cfg(test)]
mod tests {
    //! Projection and flush against the in-memory store: a run that crashes part-way through a
    //! flush and reopens its models from their checkpoints ends with the same documents,
    //! checkpoints and parked aggregates as a run without a crash.

    use std::collections::BTreeMap;

    use chrono::{DateTime, Duration as Minutes, TimeZone, Utc};
    use domain::calendar::BusinessTimeZone;
    use domain::customer::{Customer, CustomerCommand, CustomerState};
    use domain::enums::{CustomerStatus, ReferralSource};
    use domain::ids::CustomerId;
    use domain::values::{Address, AddressInput, Email, PersonName, Phone};
    use domain::{Aggregate, DomainEvent};
    use platform::metrics::MetricsRegistry;
    use read_models::cache::flush_batches;
    use read_models::memory::{self, MemoryStore};
    use read_models::names;
    use uuid::Uuid;

    use super::*;

    const CACHE: CacheLimits = CacheLimits {
        docs: 16,
        bytes: 1 << 20,
    };

    fn shared(store: &MemoryStore) -> Shared<MemoryStore> {
        Shared {
            db: store.clone(),
            metrics: Metrics::new(MetricsRegistry::new("projector-test")),
            poison_attempts: 1,
        }
    }

    fn context() -> ProjectionContext {
        ProjectionContext {
            time_zone: BusinessTimeZone::parse("America/New_York").expect("known time zone"),
            generation: 1,
        }
    }

    fn envelope(
        aggregate_id: &str,
        version: u64,
        position: u64,
        event: &impl DomainEvent,
        at: DateTime<Utc>,
    ) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::from_u128(u128::from(position)),
            aggregate_type: Customer::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            position: Some(position),
            event_type: event.event_type().to_owned(),
            schema_version: domain::codec::current_version(event.event_type()),
            occurred_at: at,
            recorded_at: at,
            correlation_id: format!("c{position}"),
            causation_id: None,
            actor: "tester".to_owned(),
            traceparent: None,
            payload: event.to_payload(),
        }
    }

    /// Customers registered, renamed and activated, decided by the domain; and an aggregate
    /// whose id is not a UUID, so its first event is dead-lettered and the later one parked.
    fn history() -> Vec<EventEnvelope> {
        let name = |raw: &str| PersonName::parse(raw).expect("valid name");
        let address = Address::parse(AddressInput {
            line1: "1 Main St".into(),
            city: "Springfield".into(),
            ..AddressInput::default()
        })
        .expect("valid address");
        let start = Utc
            .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
            .single()
            .expect("valid instant");
        let mut events: Vec<EventEnvelope> = Vec::new();
        let mut customers: Vec<(CustomerId, CustomerState, u64)> = Vec::new();
        let decide = |events: &mut Vec<EventEnvelope>,
                      id: CustomerId,
                      state: &mut CustomerState,
                      version: &mut u64,
                      command: CustomerCommand,
                      at: DateTime<Utc>| {
            for event in Customer::decide(state, command).expect("a valid command") {
                *version += 1;
                let position = events.len() as u64 + 1;
                events.push(envelope(&id.to_string(), *version, position, &event, at));
                *state = Customer::evolve(state.clone(), &event);
            }
        };
        for n in 0..40u32 {
            let at = start + Minutes::minutes(i64::from(n) * 37);
            let id = CustomerId::from_uuid(Uuid::from_u128(u128::from(n) + 1));
            let (mut state, mut version) = (CustomerState::default(), 0);
            let command = CustomerCommand::Register {
                customer_id: id,
                first_name: name(["Ana", "John", "Li", "Omar"][n as usize % 4]),
                last_name: name(["Smith", "Silva", "Nguyen"][n as usize % 3]),
                email: Email::parse(&format!("c{n}@example.com")).expect("valid email"),
                phone: Phone::parse(&format!("555-0100-{n:04}")).expect("valid phone"),
                referral_source: ReferralSource::ALL[n as usize % ReferralSource::ALL.len()],
                address: address.clone(),
                registered_at: at,
            };
            decide(&mut events, id, &mut state, &mut version, command, at);
            customers.push((id, state, version));
        }
        for (n, (id, state, version)) in customers.iter_mut().enumerate() {
            let at = start + Minutes::days(3) + Minutes::minutes(n as i64 * 11);
            let command = if n % 2 == 0 {
                CustomerCommand::ChangeStatus {
                    status: CustomerStatus::Active,
                    changed_at: at,
                }
            } else {
                CustomerCommand::UpdateContact {
                    first_name: Some(name("Maria")),
                    last_name: None,
                    email: None,
                    phone: None,
                    address: None,
                    updated_at: at,
                }
            };
            decide(&mut events, *id, state, version, command, at);
            // The poison aggregate: its first event before the crash run's checkpoint, its
            // later one after it.
            let poison = match n {
                5 => Some((1, events[0].clone())),
                30 => Some((2, events[1].clone())),
                _ => None,
            };
            if let Some((version, mut event)) = poison {
                event.aggregate_id = "not-a-uuid".to_owned();
                event.version = version;
                event.position = Some(events.len() as u64 + 1);
                events.push(event);
            }
        }
        events
    }

    async fn open_all(store: &MemoryStore) -> Vec<ModelProjection> {
        let mut projections = Vec::new();
        for model in Model::ALL {
            let opened = ModelProjection::open(store, model, 1, context(), CACHE).await;
            projections.push(opened.expect("memory does not fail"));
        }
        projections
    }

    /// Applies `events` to every model, then writes their documents and checkpoints.
    async fn apply_and_flush(
        projections: &mut Vec<ModelProjection>,
        shared: &Shared<MemoryStore>,
        events: &[EventEnvelope],
    ) {
        let codec = Codec::for_business(context().time_zone);
        let prepared: Arc<[Prepared]> = prepare(&codec, events.to_vec()).into();
        apply_all(projections, shared, &prepared)
            .await
            .expect("events apply");
        let mut dirty = Vec::new();
        for projection in projections.iter_mut() {
            dirty.extend(projection.take_dirty().expect("not torn"));
        }
        let written = write_docs(&shared.db, dirty, 4).await.expect("written");
        assert_eq!(written.fenced, 0, "one owner is never fenced");
        for projection in projections.iter_mut() {
            projection
                .write_checkpoint(&shared.db)
                .await
                .expect("checkpoint");
        }
    }

    /// Every collection but the dead letters, whose attempts count the replays.
    fn documents(store: &MemoryStore) -> BTreeMap<String, memory::Collection> {
        let mut all = store.snapshot();
        all.remove(names::DEAD_LETTERS_COLLECTION);
        all.retain(|_, docs| !docs.is_empty());
        all
    }

    #[tokio::test]
    async fn a_crash_mid_flush_and_a_reload_from_the_checkpoints_change_nothing() {
        let events = history();
        let last = events.len() as u64;

        let straight = MemoryStore::new();
        let shared_straight = shared(&straight);
        let mut projections = open_all(&straight).await;
        apply_and_flush(&mut projections, &shared_straight, &events).await;

        let crashed = MemoryStore::new();
        let shared_crashed = shared(&crashed);
        let mut projections = open_all(&crashed).await;
        apply_and_flush(&mut projections, &shared_crashed, &events[..50]).await;
        // The next run is applied, and only its lowest tier written when the process dies.
        let codec = Codec::for_business(context().time_zone);
        let prepared: Arc<[Prepared]> = prepare(&codec, events[50..80].to_vec()).into();
        apply_all(&mut projections, &shared_crashed, &prepared)
            .await
            .expect("events apply");
        let mut dirty = Vec::new();
        for projection in &mut projections {
            dirty.extend(projection.take_dirty().expect("not torn"));
        }
        let lowest = flush_batches(dirty).into_iter().next().expect("a tier");
        crashed.write(lowest);
        drop(projections);

        let mut reopened = open_all(&crashed).await;
        assert!(
            reopened.iter().all(|p| p.applied() == 50),
            "from the checkpoint"
        );
        apply_and_flush(&mut reopened, &shared_crashed, &events).await;

        assert!(reopened.iter().all(|p| p.applied() == last));
        let (crashed_docs, straight_docs) = (documents(&crashed), documents(&straight));
        assert_eq!(
            crashed_docs.keys().collect::<Vec<_>>(),
            straight_docs.keys().collect::<Vec<_>>()
        );
        for (name, docs) in &straight_docs {
            let after_crash = &crashed_docs[name];
            assert_eq!(after_crash.len(), docs.len(), "documents of {name}");
            for (id, doc) in docs {
                assert_eq!(after_crash.get(id), Some(doc), "{name}/{id}");
            }
        }
        let lists_meta = names::meta_collection(Model::Lists, 1);
        let parked = crashed.parked(&lists_meta).await.expect("parked");
        assert_eq!(
            parked
                .iter()
                .map(|p| p.aggregate_id.as_str())
                .collect::<Vec<_>>(),
            ["not-a-uuid"]
        );
        let poison = events.iter().rev().find(|e| e.aggregate_id == "not-a-uuid");
        let parked_behind = format!("lists/{}", poison.and_then(|e| e.position).unwrap_or(0));
        let letter = crashed.doc(names::DEAD_LETTERS_COLLECTION, &parked_behind);
        assert!(
            letter.is_some_and(|d| d.get_str("error").is_ok_and(|e| e.starts_with("parked"))),
            "the aggregate's later event is dead-lettered behind the first"
        );
    }
}
