//! The live projector: JetStream deliveries in, position-ordered batches applied to the live
//! generation of every model this instance holds the lease of (`ownership`), documents and
//! checkpoints flushed (each only while its lease is held), change notices out, acks last.
//!
//! The models held change while it runs: at each poll a model whose lease was taken is opened
//! at its own checkpoint and filled from the log up to the others (the catch-up path), one
//! given back is flushed and let go, and one whose lease was lost is dropped unwritten. With no
//! model held every delivery is acknowledged at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Stream as PullStream;
use async_nats::jetstream::message::Acker;
use domain::codec::Codec;
use events::{Bus, EventEnvelope, EventStore};
use platform::shutdown::Shutdown;
use read_models::{Model, ProjectionContext};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Tuning;
use crate::consumer::{self, Delivery};
use crate::metrics::{Metrics, ModelStatus};
use crate::ordering::{Held, Offer, Reorder};
use crate::ownership::Ownership;
use crate::projection::{self, ModelProjection, Prepared, Shared};
use crate::source::{self, RangeReader};
use crate::{notify, ProjectError};

pub(crate) struct Live {
    pub(crate) shared: Shared,
    pub(crate) store: EventStore,
    pub(crate) codec: Codec,
    pub(crate) tuning: Tuning,
    pub(crate) context: ProjectionContext,
    pub(crate) nats: async_nats::Client,
    pub(crate) changes_subject: String,
    models: Vec<ModelProjection>,
    /// The lease epoch under which each model in `models` was opened.
    epochs: BTreeMap<Model, i64>,
    ownership: Arc<Ownership>,
    reorder: Reorder<Delivery>,
    /// Messages whose events are handed to the models but not yet flushed.
    unacked: Vec<(u64, Acker)>,
    /// When the first event not yet flushed was handed to the models.
    unflushed_since: Option<Instant>,
    /// Time spent applying the events not yet flushed.
    unflushed_apply: Duration,
    /// One span per event in hand that came with its command's trace: a child of that trace,
    /// open from the event's delivery until the flush that makes it visible has announced it.
    event_spans: Vec<tracing::Span>,
    /// When the live deliveries in hand were recorded, for the visibility lag.
    unflushed_recorded: Vec<chrono::DateTime<chrono::Utc>>,
    tail: u64,
    /// JetStream's copy of the log, for long catch-ups; set when [`Live::run`] starts.
    bus: Option<Bus>,
}

impl Live {
    pub(crate) fn new(
        shared: Shared,
        store: EventStore,
        codec: Codec,
        tuning: Tuning,
        context: ProjectionContext,
        notices: notify::NoticeChannel,
        ownership: Arc<Ownership>,
    ) -> Self {
        let reorder = Reorder::new(0, tuning.reorder_capacity, tuning.gap_wait());
        Live {
            shared,
            store,
            codec,
            tuning,
            context,
            nats: notices.nats,
            changes_subject: notices.subject,
            models: Vec::new(),
            epochs: BTreeMap::new(),
            ownership,
            reorder,
            unacked: Vec::new(),
            unflushed_since: None,
            unflushed_apply: Duration::ZERO,
            event_spans: Vec::new(),
            unflushed_recorded: Vec::new(),
            tail: 0,
            bus: None,
        }
    }

    /// Runs until `shutdown`; never returns early on a failure, it backs off and recovers.
    pub(crate) async fn run(mut self, bus: Bus, durable: String, shutdown: Shutdown) {
        self.bus = Some(bus.clone());
        let mut feed = Feed {
            messages: None,
            connect_at: Instant::now(),
            store: self.store.identity().to_owned(),
        };
        let mut last_poll = Instant::now();
        let mut failures: u32 = 0;
        let mut recovered = false;
        while !shutdown.is_triggered() {
            if !recovered {
                match self.recover_or_back_off(&shutdown, &mut failures).await {
                    Flow::Go => recovered = true,
                    Flow::Retry => continue,
                    Flow::Stop => break,
                }
            }
            feed.connect_if_due(&bus, &durable, &self.tuning).await;
            let idle = self.idle_wait(last_poll);
            let Some(received) = feed.receive(&shutdown, &self.tuning, idle).await else {
                break;
            };
            match received {
                Ok(deliveries) => {
                    let span = tracing::info_span!("consume", messages = deliveries.len());
                    self.offer(deliveries).instrument(span).await
                }
                Err(error) => feed.broken(&error),
            }
            match self
                .step_or_back_off(&shutdown, &mut last_poll, &mut failures)
                .await
            {
                Flow::Go => {}
                Flow::Retry => recovered = false,
                Flow::Stop => break,
            }
        }
        tracing::info!(position = self.min_applied(), "projector stopped");
    }

    /// [`Live::recover`], or after a failure the backoff before the next attempt.
    async fn recover_or_back_off(&mut self, shutdown: &Shutdown, failures: &mut u32) -> Flow {
        match with_shutdown(shutdown, self.recover()).await {
            None => Flow::Stop,
            Some(Ok(())) => {
                *failures = 0;
                Flow::Go
            }
            Some(Err(error)) => {
                *failures += 1;
                tracing::error!(%error, "projector start-up failed; retrying");
                retry_after_backoff(shutdown, *failures).await
            }
        }
    }

    /// [`Live::step`], or after a failure the backoff before recovering from the checkpoints.
    async fn step_or_back_off(
        &mut self,
        shutdown: &Shutdown,
        last_poll: &mut Instant,
        failures: &mut u32,
    ) -> Flow {
        match self.step(last_poll).await {
            Ok(()) => {
                *failures = 0;
                Flow::Go
            }
            Err(error) => {
                *failures += 1;
                self.shared.metrics.batch_failed();
                tracing::error!(%error, failures = *failures, "projecting a batch failed; reloading from the checkpoints");
                retry_after_backoff(shutdown, *failures).await
            }
        }
    }

    /// How long to wait for deliveries: until the next poll or the next overdue gap.
    fn idle_wait(&self, last_poll: Instant) -> Duration {
        let now = Instant::now();
        let mut until = last_poll + self.tuning.poll();
        if let Some(deadline) = self.reorder.deadline() {
            until = until.min(deadline);
        }
        until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }

    async fn offer(&mut self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            let Some(position) = delivery.position() else {
                // Not an event envelope: nothing to apply, and the store holds every real event.
                self.shared.metrics.invalid_message();
                consumer::ack(&delivery.acker).await;
                continue;
            };
            let (offer, returned) = self.reorder.offer(position, delivery);
            if offer == Offer::Duplicate {
                self.shared.metrics.duplicate();
                if let Some(delivery) = returned {
                    consumer::ack(&delivery.acker).await;
                }
            } else if offer == Offer::HeldAgain {
                self.shared.metrics.duplicate();
            }
        }
    }

    /// Applies what is ready, re-reads the registry and the tail when due, and fills an overdue
    /// gap from the store; repeats while that makes progress.
    async fn step(&mut self, last_poll: &mut Instant) -> Result<(), ProjectError> {
        loop {
            let mut progressed = false;
            loop {
                let ready = self.reorder.take_ready(self.tuning.batch_max);
                if ready.is_empty() {
                    break;
                }
                progressed = true;
                let mut events = Vec::with_capacity(ready.len());
                for (position, held) in ready {
                    let Held { item, copies } = held;
                    self.unacked.push((position, item.acker));
                    self.unacked
                        .extend(copies.into_iter().map(|c| (position, c.acker)));
                    if let Some(event) = item.event {
                        events.push(event);
                    }
                }
                self.commit(events).await?;
            }
            if last_poll.elapsed() >= self.tuning.poll() {
                self.refresh().await?;
                *last_poll = Instant::now();
            }
            if let Some((after, up_to)) = self.reorder.overdue_gap(Instant::now()) {
                progressed |= self.fill_gap(after, up_to).await?;
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Reads a missing range from the store; returns whether anything was applied.
    async fn fill_gap(&mut self, after: u64, up_to: Option<u64>) -> Result<bool, ProjectError> {
        let target = match up_to {
            Some(position) => position,
            None => {
                self.poll_tail().await?;
                self.tail
            }
        };
        let reached = self.catch_up_to(target).await?;
        if reached > after {
            self.shared.metrics.gap_filled((reached - after) as usize);
            for held in self.reorder.advance_to(reached) {
                ack_held(held, &self.shared.metrics).await;
            }
            return Ok(true);
        }
        // The store has nothing after `after`: whatever is held beyond its tail was not
        // published by the relay (the relay publishes only what the log already holds).
        self.poll_tail().await?;
        while self.reorder.held() > 0 {
            match self.reorder.drop_first() {
                Some((position, held)) if position > self.tail => {
                    tracing::warn!(
                        position,
                        tail = self.tail,
                        "message beyond the store's tail dropped"
                    );
                    self.shared.metrics.invalid_message();
                    ack_held(held, &self.shared.metrics).await;
                }
                Some((position, held)) => {
                    // Back in: the store has caught up with it meanwhile.
                    let Held { item, copies } = held;
                    self.reorder.offer(position, item);
                    for copy in copies {
                        self.reorder.offer(position, copy);
                    }
                    break;
                }
                None => break,
            }
        }
        self.reorder.settle();
        Ok(false)
    }

    /// Applies a dense run from JetStream, first filling any model that is behind it.
    async fn commit(&mut self, events: Vec<EventEnvelope>) -> Result<(), ProjectError> {
        let Some(first) = events.first().and_then(|e| e.position) else {
            return Ok(());
        };
        if self.min_applied() + 1 < first {
            let reached = self.catch_up_to(first - 1).await?;
            if reached + 1 < first {
                return Err(ProjectError::Gap {
                    model: "all".into(),
                    applied: reached,
                    next: first,
                });
            }
        }
        self.event_spans
            .extend(events.iter().filter_map(event_span));
        self.unflushed_recorded
            .extend(events.iter().map(|event| event.recorded_at));
        let prepared = projection::prepare(&self.codec, events);
        self.apply_and_flush(prepared.into()).await
    }

    /// Brings every model to `target` from the log (JetStream's copy of a long range first,
    /// the store for the rest); returns the lowest position reached.
    ///
    /// Applies the range chunk after chunk (`Tuning::store_chunk` events) and writes the
    /// changed documents once they number `Tuning::catch_up_docs`, and at the end: a document
    /// changed by many events of a backlog (a month of the dashboard, a busy list) is written
    /// once per flush, and into an empty store mostly inserted rather than updated.
    async fn catch_up_to(&mut self, target: u64) -> Result<u64, ProjectError> {
        let after = self.min_applied();
        if self.models.is_empty() {
            // Nothing to apply: the range is as good as read.
            return Ok(after.max(target));
        }
        if target <= after {
            return Ok(after);
        }
        for model in &mut self.models {
            let backlog = target.saturating_sub(model.applied());
            model.create_collections(&self.shared.db, backlog).await?;
        }
        let store = self.store.clone();
        let bus = self.bus.clone();
        let mut reader = RangeReader::new(&store, after, target, self.tuning.store_chunk.max(1))
            .with_bus(bus.as_ref(), self.tuning.bus_replay_min);
        while let Some(chunk) = reader.next().await {
            let prepared = projection::prepare(&self.codec, chunk?);
            if let Some(reached) = prepared.last().and_then(|p| p.event.position) {
                self.shared.metrics.replay_progress(reached, target);
            }
            self.apply(prepared.into()).await?;
            if self.dirty_docs() >= self.tuning.catch_up_docs {
                self.flush().await?;
            }
        }
        // Counted before the last flush, which makes the catch-up visible.
        self.shared.metrics.replayed(reader.read());
        self.shared.metrics.replay_progress(0, 0);
        self.flush().await?;
        Ok(self.min_applied())
    }

    /// One batch: applied, then flushed.
    async fn apply_and_flush(&mut self, prepared: Arc<[Prepared]>) -> Result<(), ProjectError> {
        self.apply(prepared).await?;
        self.flush().await
    }

    /// Applies events to every model (in parallel: they share nothing), in memory.
    async fn apply(&mut self, prepared: Arc<[Prepared]>) -> Result<(), ProjectError> {
        if prepared.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        self.unflushed_since.get_or_insert(started);
        if self.models.is_empty() {
            // Nothing held: the flush only acknowledges.
            return Ok(());
        }
        let span = tracing::info_span!("apply", events = prepared.len());
        projection::apply_all(&mut self.models, &self.shared, &prepared)
            .instrument(span)
            .await?;
        let took = started.elapsed();
        self.unflushed_apply += took;
        let newest = prepared.last().map(|p| p.event.recorded_at);
        self.shared.metrics.applied(prepared.len(), took, newest);
        Ok(())
    }

    /// Documents changed in memory and not yet written, over all models.
    fn dirty_docs(&self) -> usize {
        self.models.iter().map(ModelProjection::dirty_count).sum()
    }

    /// Writes the changed documents, then the checkpoints, then announces, then acknowledges
    /// the messages whose events are now persisted.
    async fn flush(&mut self) -> Result<(), ProjectError> {
        let Some(started) = self.unflushed_since.take() else {
            return Ok(());
        };
        let span = tracing::info_span!(
            "flush",
            docs = tracing::field::Empty,
            position = tracing::field::Empty
        );
        let traced = std::mem::take(&mut self.event_spans);
        let result = self
            .write_and_announce(started, &traced)
            .instrument(span)
            .await;
        // The events' spans end here: each one lasted from delivery to visible.
        drop(traced);
        result
    }

    async fn write_and_announce(
        &mut self,
        started: Instant,
        traced: &[tracing::Span],
    ) -> Result<(), ProjectError> {
        let applied_ms = std::mem::take(&mut self.unflushed_apply).as_millis() as u64;
        let written = Instant::now();
        self.fence()?;
        let shared = &self.shared;
        let mut dirty = Vec::new();
        for model in &mut self.models {
            dirty.extend(model.take_dirty()?);
        }
        #[cfg(feature = "fault-points")]
        crate::fault_points::stall_before_writing(&dirty).await;
        let writes =
            projection::write_docs(&shared.db, dirty, self.tuning.flush_concurrency).await?;
        if writes.fenced > 0 {
            // A later owner wrote these: this instance's lease is gone, which the fence
            // below finds.
            shared.metrics.fenced(writes.fenced);
            tracing::warn!(
                docs = writes.fenced,
                "documents not written: a newer version is stored"
            );
        }
        let changed = writes.changed;
        // Again: writing the documents may have taken a while.
        self.fence()?;
        let db = &self.shared.db;
        futures::future::try_join_all(self.models.iter_mut().map(|m| m.write_checkpoint(db)))
            .await?;
        tracing::debug!(
            position = self.min_applied(),
            docs = changed.len(),
            applied_ms,
            written_ms = written.elapsed().as_millis() as u64,
            took_ms = started.elapsed().as_millis() as u64,
            "batch flushed"
        );
        self.shared.metrics.flushed(
            changed.iter().map(|doc| doc.collection.as_str()),
            started.elapsed(),
        );
        self.shared
            .metrics
            .visible(&std::mem::take(&mut self.unflushed_recorded));
        self.report_models();
        let position = self.min_applied();
        let span = tracing::Span::current();
        span.record("docs", changed.len());
        span.record("position", position);
        let traceparents: Vec<String> = traced
            .iter()
            .filter_map(platform::trace_context::traceparent_of)
            .take(notify::TRACES_PER_NOTICE)
            .collect();
        let models: Vec<&str> = self.models.iter().map(|m| m.model.as_str()).collect();
        if !models.is_empty() {
            notify::publish(
                &self.nats,
                &self.changes_subject,
                position,
                &models,
                &changed,
                false,
                &traceparents,
            )
            .await;
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unacked)
            .into_iter()
            .partition(|(p, _)| *p <= position);
        self.unacked = waiting;
        for (_, acker) in done {
            consumer::ack(&acker).await;
        }
        Ok(())
    }

    /// Fails when a model in hand may not be written now: its lease is gone, in another epoch,
    /// or too close to running out (see [`Ownership::may_write`] for the window that remains).
    /// The caller then reloads from the checkpoints with the models still held.
    fn fence(&self) -> Result<(), ProjectError> {
        for model in &self.models {
            let epoch = self.epochs.get(&model.model).copied().unwrap_or_default();
            if !self.ownership.may_write(model.model, epoch) {
                return Err(ProjectError::LeaseLost(model.model.as_str().to_owned()));
            }
        }
        Ok(())
    }

    /// Follows the leases: drops the models lost (unwritten: their new holder starts from
    /// their checkpoint), flushes and lets go of those given back, and opens the ones taken,
    /// filling them from the log up to the others.
    async fn follow_leases(&mut self) -> Result<(), ProjectError> {
        let held = self.ownership.held();
        let current = |model: Model, epochs: &BTreeMap<Model, i64>| {
            held.get(&model)
                .filter(|h| epochs.get(&model) == Some(&h.epoch))
                .copied()
        };
        let lost: Vec<Model> = self
            .models
            .iter()
            .map(|m| m.model)
            .filter(|m| current(*m, &self.epochs).is_none())
            .collect();
        if !lost.is_empty() {
            for model in &lost {
                tracing::warn!(model = model.as_str(), "lease lost: the model is dropped");
            }
            self.let_go(&lost);
        }
        let give_back: Vec<Model> = self
            .models
            .iter()
            .map(|m| m.model)
            .filter(|m| current(*m, &self.epochs).is_some_and(|h| h.give_back))
            .collect();
        if !give_back.is_empty() {
            self.flush().await?;
            self.let_go(&give_back);
            for model in give_back {
                tracing::info!(
                    model = model.as_str(),
                    "giving the model back to an instance that prefers it"
                );
                self.ownership.dropped(model);
            }
        }
        for (&model, h) in &held {
            if h.give_back && !self.epochs.contains_key(&model) {
                // Taken and to be given back before it was opened: nothing of it is in hand.
                self.ownership.dropped(model);
            }
        }
        let taken: Vec<(Model, i64)> = held
            .iter()
            .filter(|(model, h)| !h.give_back && !self.epochs.contains_key(model))
            .map(|(model, h)| (*model, h.epoch))
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        let registry = self.shared.db.registry().await?;
        for (model, epoch) in taken {
            let generation = registry.get(model.as_str()).copied().unwrap_or(1);
            let projection = ModelProjection::open(
                &self.shared.db,
                model,
                generation,
                self.context,
                self.tuning.cache_limits(),
            )
            .await?;
            tracing::info!(
                model = model.as_str(),
                epoch,
                checkpoint = projection.applied(),
                "projecting the model"
            );
            self.models.push(projection);
            self.epochs.insert(model, epoch);
        }
        self.report_models();
        self.poll_tail().await?;
        self.catch_up_to_tail().await
    }

    /// Stops projecting `models`, discarding what of them is not flushed.
    fn let_go(&mut self, models: &[Model]) {
        self.models.retain(|m| !models.contains(&m.model));
        for model in models {
            self.epochs.remove(model);
            self.shared.metrics.remove_model(model.as_str());
        }
    }

    /// Re-reads the registry (switching models to a rebuilt generation) and the store's tail.
    async fn refresh(&mut self) -> Result<(), ProjectError> {
        self.follow_leases().await?;
        let registry = self.shared.db.registry().await?;
        let mut switched = false;
        for slot in &mut self.models {
            let generation = registry.get(slot.model.as_str()).copied().unwrap_or(1);
            if generation != slot.generation {
                tracing::info!(
                    model = slot.model.as_str(),
                    from = slot.generation,
                    to = generation,
                    "read model switched to a new generation"
                );
                *slot = ModelProjection::open(
                    &self.shared.db,
                    slot.model,
                    generation,
                    self.context,
                    self.tuning.cache_limits(),
                )
                .await?;
                switched = true;
            }
        }
        if switched {
            self.report_models();
            let applied = self.reorder.applied();
            self.catch_up_to(applied).await?;
        }
        self.poll_tail().await?;
        if self.tail > self.reorder.applied() {
            self.reorder.want_next();
        }
        Ok(())
    }

    async fn poll_tail(&mut self) -> Result<(), ProjectError> {
        let known = self.tail.max(self.reorder.applied());
        self.tail = source::store_tail(&self.store, known).await?;
        self.shared.metrics.set_store_tail(self.tail);
        Ok(())
    }

    /// (Re)opens every model held at its live generation with an empty cache and catches up to
    /// the store's tail: the start of the process and the way out of any failure.
    async fn recover(&mut self) -> Result<(), ProjectError> {
        let registry = self.shared.db.registry().await?;
        let held = self.ownership.held();
        let mut models = Vec::with_capacity(held.len());
        self.epochs.clear();
        for model in Model::ALL {
            self.shared.metrics.remove_model(model.as_str());
        }
        for (&model, h) in &held {
            if h.give_back {
                // Nothing of it is in hand: let it go as it is.
                self.ownership.dropped(model);
                continue;
            }
            self.epochs.insert(model, h.epoch);
            let generation = registry.get(model.as_str()).copied().unwrap_or(1);
            models.push(
                ModelProjection::open(
                    &self.shared.db,
                    model,
                    generation,
                    self.context,
                    self.tuning.cache_limits(),
                )
                .await?,
            );
        }
        self.models = models;
        self.unflushed_since = None;
        self.event_spans.clear();
        self.unflushed_recorded.clear();
        self.unflushed_apply = Duration::ZERO;
        self.report_models();
        let lowest = self.min_applied();
        self.tail = source::store_tail(&self.store, lowest).await?;
        self.shared.metrics.set_store_tail(self.tail);
        if self.tail > lowest {
            tracing::info!(
                from = lowest,
                to = self.tail,
                "catching up from the event store"
            );
        }
        self.catch_up_to_tail().await
    }

    /// Brings every model held to the store's tail (or as far as the reorder buffer already
    /// handed out) and acknowledges the deliveries held up to there.
    async fn catch_up_to_tail(&mut self) -> Result<(), ProjectError> {
        let reached = self
            .catch_up_to(self.tail.max(self.reorder.applied()))
            .await?;
        for held in self.reorder.advance_to(reached) {
            ack_held(held, &self.shared.metrics).await;
        }
        Ok(())
    }

    /// The position every model held has applied; with none held, what was taken from the
    /// reorder buffer.
    fn min_applied(&self) -> u64 {
        if self.models.is_empty() {
            return self.reorder.applied();
        }
        projection::lowest_applied(&self.models)
    }

    fn report_models(&self) {
        let cached = self.models.iter().map(|model| model.cache_bytes()).sum();
        self.shared.metrics.set_doc_cache_bytes(cached);
        for model in &self.models {
            self.shared.metrics.set_model(
                model.model.as_str(),
                ModelStatus {
                    generation: model.generation,
                    position: model.persisted(),
                },
            );
        }
    }
}

/// What the live loop does next after an attempt that may have failed.
enum Flow {
    Go,
    /// Failed and backed off: try again.
    Retry,
    /// Shutdown came first.
    Stop,
}

/// The JetStream side of the live loop: the durable consumer's message stream while there is
/// one, and when to try for one again. Without it the store alone serves the loop.
struct Feed {
    messages: Option<PullStream>,
    connect_at: Instant,
    /// The identity of the store whose events the loop applies.
    store: String,
}

impl Feed {
    /// Opens the message stream when there is none and a retry is due.
    async fn connect_if_due(&mut self, bus: &Bus, durable: &str, tuning: &Tuning) {
        if self.messages.is_some() || Instant::now() < self.connect_at {
            return;
        }
        let pull = async {
            let inactive = Duration::from_secs(tuning.consumer_inactive_secs.max(1));
            let durable_consumer =
                consumer::durable(bus, durable, tuning.max_ack_pending, inactive).await?;
            consumer::messages(&durable_consumer, tuning.batch_max).await
        };
        match pull.await {
            Ok(stream) => self.messages = Some(stream),
            Err(error) => {
                tracing::warn!(%error, "JetStream consumer unavailable; reading the event store meanwhile");
                self.connect_at = Instant::now() + Duration::from_secs(2);
            }
        }
    }

    /// The next deliveries (none after `idle` without a stream); `None` when shutdown came
    /// first, `Err` when the stream broke.
    async fn receive(
        &mut self,
        shutdown: &Shutdown,
        tuning: &Tuning,
        idle: Duration,
    ) -> Option<Result<Vec<Delivery>, String>> {
        match self.messages.as_mut() {
            Some(stream) => {
                let next = consumer::next_batch(
                    stream,
                    &self.store,
                    tuning.batch_max,
                    tuning.batch_wait(),
                    idle,
                );
                with_shutdown(shutdown, next).await
            }
            None => with_shutdown(shutdown, tokio::time::sleep(idle))
                .await
                .map(|()| Ok(Vec::new())),
        }
    }

    /// Drops a broken stream; it is re-created shortly.
    fn broken(&mut self, error: &str) {
        tracing::warn!(%error, "JetStream message stream broke; re-creating it");
        self.messages = None;
        self.connect_at = Instant::now() + Duration::from_millis(500);
    }
}

/// The span of one event's projection, continuing the trace of the command that recorded it.
fn event_span(event: &EventEnvelope) -> Option<tracing::Span> {
    let traceparent = event.traceparent.as_deref()?;
    let span = tracing::info_span!(
        "project_event",
        position = event.position,
        event_type = %event.event_type,
        event_id = %event.event_id,
    );
    platform::trace_context::continue_trace(&span, traceparent);
    Some(span)
}

/// Acknowledges deliveries whose event was applied from the event store instead: each one is a
/// duplicate skipped.
async fn ack_held(held: Held<Delivery>, metrics: &Metrics) {
    metrics.duplicate();
    consumer::ack(&held.item.acker).await;
    for copy in held.copies {
        metrics.duplicate();
        consumer::ack(&copy.acker).await;
    }
}

/// Runs `work` unless shutdown comes first (`None`).
async fn with_shutdown<T>(
    shutdown: &Shutdown,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = shutdown.clone().wait() => None,
        value = work => Some(value),
    }
}

/// Sleeps 100 ms doubling up to 5 s, then [`Flow::Retry`]; [`Flow::Stop`] when shutdown came
/// first.
async fn retry_after_backoff(shutdown: &Shutdown, failures: u32) -> Flow {
    let wait = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
    match with_shutdown(shutdown, tokio::time::sleep(wait)).await {
        Some(()) => Flow::Retry,
        None => Flow::Stop,
    }
}
