//! `projector rebuild [MODEL...] [--verify]`: replays the event store into a new generation of
//! each model, optionally compares it with the live one, switches the registry, and drops the
//! old generation.
//!
//! The new generations are written with the same `apply` code as live projection, all of them
//! from one replay of the log, only with a larger cache and fewer flushes. The switch is one replace of the model's registry document;
//! the live projector notices it and continues the new generation from its checkpoint.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document};
use events::{Bus, EventStore};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use read_models::dbs::ReadModelDbs;
use read_models::store::ProjectionStore;
use read_models::{Model, ProjectionContext};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::RebuildArgs;
use crate::projection::{self, CacheLimits, ModelProjection, Prepared, Shared};
use crate::source::{self, RangeReader};
use crate::{notify, ProjectError};

/// Events per read from the store during a rebuild.
const READ_CHUNK: usize = 5_000;
/// What each model's cache keeps between a rebuild's flushes: more than the live
/// projector's, as re-reading an evicted document costs a scan of its partition on FerretDB.
const REBUILD_CACHE: CacheLimits = CacheLimits {
    docs: 200_000,
    bytes: 1024 << 20,
};
/// A rebuild switches once it is at most this far behind the tail.
const CLOSE_ENOUGH: u64 = 100;
/// Replays after the first; each one only covers what arrived during the previous.
const MAX_ROUNDS: usize = 20;
/// How long `--verify` waits for the live model to reach the rebuilt position.
const LIVE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub model: String,
    pub generation: u32,
    /// The rebuilt generation's checkpoint at the switch.
    pub position: u64,
    pub events: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub verify: Option<VerifyReport>,
    pub switched: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub equal: u64,
    pub different: u64,
    /// Live documents changed after the rebuilt position, which cannot be compared.
    pub skipped: u64,
    /// A few `collection/_id` of differing documents.
    pub examples: Vec<String>,
}

pub(crate) struct Rebuilder {
    pub(crate) shared: Shared,
    pub(crate) store: EventStore,
    /// JetStream's copy of the log, read first where it holds the replayed range.
    pub(crate) bus: Bus,
    pub(crate) bus_replay_min: u64,
    pub(crate) codec: domain::codec::Codec,
    pub(crate) context: ProjectionContext,
    pub(crate) nats: async_nats::Client,
    pub(crate) changes_subject: String,
    pub(crate) flush_concurrency: usize,
}

/// The models being rebuilt, in the order named.
struct Targets {
    projections: Vec<ModelProjection>,
    /// The generation each one replaces.
    live_generations: Vec<u32>,
    bars: Vec<ProgressBar>,
}

impl Targets {
    /// The position every target has reached.
    fn lowest_applied(&self) -> u64 {
        projection::lowest_applied(&self.projections)
    }
}

/// Where a replay's time went: waiting for the log, applying, writing.
#[derive(Default)]
struct ReplayTimes {
    read: Duration,
    apply: Duration,
    write: Duration,
}

/// The time since `mark`, which moves to now.
fn lap(mark: &mut Instant) -> Duration {
    let now = Instant::now();
    let lap = now - *mark;
    *mark = now;
    lap
}

impl Rebuilder {
    /// Rebuilds `models` together: one replay of the log feeds every new generation (reading
    /// the log is most of a rebuild's time on FerretDB, which decodes each event it serves),
    /// then each is verified if asked, switched and its old generation dropped.
    pub(crate) async fn rebuild(
        &self,
        models: &[Model],
        args: &RebuildArgs,
        bars: &MultiProgress,
    ) -> Result<Vec<RebuildReport>, ProjectError> {
        let mut targets = self.open_targets(models, bars).await?;
        let started = Instant::now();
        let tail = self
            .replay_rounds(&mut targets, args.flush_docs.max(1))
            .await?;
        self.replay(&mut targets, tail, usize::MAX).await?;
        let seconds = started.elapsed().as_secs_f64();
        let mut reports = Vec::with_capacity(models.len());
        for (projection, &live_generation) in
            targets.projections.iter().zip(&targets.live_generations)
        {
            reports.push(
                self.switch(projection, live_generation, args, seconds)
                    .await?,
            );
        }
        for bar in &targets.bars {
            bar.finish_and_clear();
        }
        if reports.iter().any(|r| r.switched) && args.drop_delay_secs > 0 {
            tokio::time::sleep(Duration::from_secs(args.drop_delay_secs)).await;
        }
        for ((&model, &live_generation), report) in
            models.iter().zip(&targets.live_generations).zip(&reports)
        {
            if report.switched {
                drop_generation(&self.shared.db, model, live_generation).await?;
            }
        }
        Ok(reports)
    }

    /// Opens the next generation of each model, empty: whatever an interrupted rebuild left
    /// of it is dropped first.
    async fn open_targets(
        &self,
        models: &[Model],
        bars: &MultiProgress,
    ) -> Result<Targets, ProjectError> {
        let db = &self.shared.db;
        let registry = db.registry().await?;
        let mut targets = Targets {
            projections: Vec::with_capacity(models.len()),
            live_generations: Vec::with_capacity(models.len()),
            bars: Vec::with_capacity(models.len()),
        };
        for &model in models {
            let live_generation = registry.get(model.as_str()).copied().unwrap_or(1);
            let generation = live_generation + 1;
            drop_generation(db, model, generation).await?;
            let projection =
                ModelProjection::open(db, model, generation, self.context, REBUILD_CACHE).await?;
            targets.projections.push(projection);
            targets.live_generations.push(live_generation);
            targets.bars.push(progress_bar(bars, model));
        }
        Ok(targets)
    }

    /// Replays up to the tail round after round while appends keep coming; returns the tail
    /// last seen, which the final round replays to.
    async fn replay_rounds(
        &self,
        targets: &mut Targets,
        flush_docs: usize,
    ) -> Result<u64, ProjectError> {
        let mut tail = source::store_tail(&self.store, 0).await?;
        let mut behind = u64::MAX;
        for _ in 0..MAX_ROUNDS {
            self.replay(targets, tail, flush_docs).await?;
            let applied = targets.lowest_applied();
            tail = source::store_tail(&self.store, applied).await?;
            let now_behind = tail.saturating_sub(applied);
            // Near enough, or not getting nearer: appends arrive as fast as a round replays
            // them (on FerretDB each round reads the log with a scan of all of it). The live
            // projector fills whatever is left after the switch.
            if now_behind <= CLOSE_ENOUGH || now_behind.saturating_mul(2) > behind {
                break;
            }
            behind = now_behind;
        }
        Ok(tail)
    }

    /// Verifies a rebuilt generation if asked, then makes it the live one unless it differs.
    async fn switch(
        &self,
        projection: &ModelProjection,
        live_generation: u32,
        args: &RebuildArgs,
        seconds: f64,
    ) -> Result<RebuildReport, ProjectError> {
        let model = projection.model;
        let generation = projection.generation;
        let position = projection.applied();
        let mut report = RebuildReport {
            model: model.as_str().to_owned(),
            generation,
            position,
            events: position,
            seconds,
            events_per_second: position as f64 / seconds.max(1e-9),
            verify: None,
            switched: false,
        };
        if args.verify {
            let verify = self
                .verify(model, live_generation, generation, position)
                .await?;
            let different = verify.different;
            report.verify = Some(verify);
            if different > 0 {
                tracing::error!(
                    model = model.as_str(),
                    different,
                    "rebuilt model differs from the live one; not switched"
                );
                return Ok(report);
            }
        }
        self.shared.db.switch_generation(model, generation).await?;
        report.switched = true;
        notify::publish(
            &self.nats,
            &self.changes_subject,
            position,
            &[model.as_str()],
            &[],
            true,
            &[],
        )
        .await;
        tracing::info!(
            model = model.as_str(),
            generation,
            position,
            "switched to the rebuilt generation"
        );
        Ok(report)
    }

    /// Applies the store from the lowest position of the targets to `up_to` to every target,
    /// flushing all of them whenever `flush_docs` documents have changed in all, and at the
    /// end.
    async fn replay(
        &self,
        targets: &mut Targets,
        up_to: u64,
        flush_docs: usize,
    ) -> Result<(), ProjectError> {
        let db = &self.shared.db;
        for (projection, bar) in targets.projections.iter_mut().zip(&targets.bars) {
            bar.set_length(up_to);
            let backlog = up_to.saturating_sub(projection.applied());
            projection.create_collections(db, backlog).await?;
        }
        let from = targets.lowest_applied();
        let mut reader = RangeReader::new(&self.store, from, up_to, READ_CHUNK)
            .with_bus(Some(&self.bus), self.bus_replay_min);
        let mut times = ReplayTimes::default();
        let mut mark = Instant::now();
        while let Some(chunk) = reader.next().await {
            let prepared: Arc<[Prepared]> = projection::prepare(&self.codec, chunk?).into();
            times.read += lap(&mut mark);
            projection::apply_all(&mut targets.projections, &self.shared, &prepared).await?;
            for (projection, bar) in targets.projections.iter().zip(&targets.bars) {
                bar.set_position(projection.applied());
            }
            self.shared
                .metrics
                .replay_progress(targets.lowest_applied(), up_to);
            times.apply += lap(&mut mark);
            let dirty: usize = targets
                .projections
                .iter()
                .map(ModelProjection::dirty_count)
                .sum();
            if dirty >= flush_docs {
                self.flush(&mut targets.projections).await?;
                times.write += lap(&mut mark);
            }
        }
        self.flush(&mut targets.projections).await?;
        times.write += lap(&mut mark);
        self.shared.metrics.replay_progress(0, 0);
        let read = reader.read();
        tracing::info!(
            from,
            to = targets.lowest_applied(),
            from_bus = read.bus,
            from_store = read.store,
            read_s = times.read.as_secs_f64(),
            apply_s = times.apply.as_secs_f64(),
            write_s = times.write.as_secs_f64(),
            "replayed"
        );
        Ok(())
    }

    /// Writes every target's changed documents and then its checkpoint, the targets
    /// concurrently (their collections are apart).
    async fn flush(&self, projections: &mut [ModelProjection]) -> Result<(), ProjectError> {
        let db = &self.shared.db;
        let concurrency = self.flush_concurrency;
        futures::future::try_join_all(projections.iter_mut().map(|model| async move {
            let dirty = model.take_dirty()?;
            projection::write_docs(db, dirty, concurrency).await?;
            model.write_checkpoint(db).await
        }))
        .await?;
        Ok(())
    }

    /// Compares every document of the rebuilt generation with the live one, field by field,
    /// ignoring `_pos` and skipping live documents changed after `position`.
    async fn verify(
        &self,
        model: Model,
        live: u32,
        rebuilt: u32,
        position: u64,
    ) -> Result<VerifyReport, ProjectError> {
        let db = &self.shared.db;
        let live_checkpoint = wait_for_live(db, model, live, position).await?;
        // Each collection is compared with its counterpart of the same kind.
        let (live_prefix, new_prefix) = (prefix(model, live), prefix(model, rebuilt));
        let mut report = VerifyReport::default();
        for partition in partitions(db, &live_prefix, &new_prefix).await? {
            let live_collection = format!("{live_prefix}{partition}");
            let live_docs = all_docs(db, &live_collection).await?;
            let new_docs = all_docs(db, &format!("{new_prefix}{partition}")).await?;
            report.compare(
                &live_collection,
                live_docs,
                new_docs,
                position,
                live_checkpoint,
            );
        }
        Ok(report)
    }
}

/// The live generation's checkpoint once it has reached `position` (the projector, running,
/// continues it meanwhile); an error after [`LIVE_WAIT`].
async fn wait_for_live(
    db: &ReadModelDbs,
    model: Model,
    live: u32,
    position: u64,
) -> Result<u64, ProjectError> {
    let live_meta = read_models::names::meta_collection(model, live);
    let deadline = Instant::now() + LIVE_WAIT;
    loop {
        let checkpoint = db.checkpoint(&live_meta).await?.unwrap_or(0);
        if checkpoint >= position {
            return Ok(checkpoint);
        }
        if Instant::now() >= deadline {
            return Err(ProjectError::Verify(format!(
                "the live {} model is at {checkpoint}, behind the rebuilt position {position}; \
                 is the projector running?",
                model.as_str()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kinds of collection either generation holds (the names after their prefixes), but
/// the meta kind.
async fn partitions(
    db: &ReadModelDbs,
    live_prefix: &str,
    new_prefix: &str,
) -> Result<Vec<String>, ProjectError> {
    let mut partitions: Vec<String> = Vec::new();
    for prefix in [live_prefix, new_prefix] {
        partitions.extend(
            db.collections_named(prefix)
                .await?
                .iter()
                .filter_map(|c| c.strip_prefix(prefix).map(str::to_owned))
                .filter(|partition| partition != read_models::names::META_KIND),
        );
    }
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

impl VerifyReport {
    /// Counts one partition: the documents of both generations by `_id`, without `_pos`;
    /// live ones changed after `position` cannot be compared and are skipped.
    fn compare(
        &mut self,
        live_collection: &str,
        mut live_docs: HashMap<String, Document>,
        new_docs: HashMap<String, Document>,
        position: u64,
        live_checkpoint: u64,
    ) {
        for (id, mut rebuilt_doc) in new_docs {
            match live_docs.remove(&id) {
                Some(mut live_doc) => {
                    if doc_pos(&live_doc) > position {
                        self.skipped += 1;
                        continue;
                    }
                    live_doc.remove("_pos");
                    rebuilt_doc.remove("_pos");
                    if live_doc == rebuilt_doc {
                        self.equal += 1;
                    } else {
                        self.different(live_collection, &id);
                    }
                }
                // Removed from the live model after the rebuilt position, or missing.
                None if live_checkpoint > position => self.skipped += 1,
                None => self.different(live_collection, &id),
            }
        }
        for (id, live_doc) in live_docs {
            if doc_pos(&live_doc) > position {
                self.skipped += 1;
            } else {
                self.different(live_collection, &id);
            }
        }
    }

    fn different(&mut self, collection: &str, id: &str) {
        self.different += 1;
        if self.examples.len() < 10 {
            self.examples.push(format!("{collection}/{id}"));
        }
    }
}

/// Drops every collection of one generation of `model`.
async fn drop_generation(
    db: &ReadModelDbs,
    model: Model,
    generation: u32,
) -> Result<(), ProjectError> {
    for collection in db.collections_named(&prefix(model, generation)).await? {
        db.drop_collection(&collection).await?;
    }
    Ok(())
}

/// `rm_<model>_g<n>_`: the start of every collection name of one generation.
fn prefix(model: Model, generation: u32) -> String {
    read_models::names::generation_prefix(model, generation)
}

/// Every document of one physical collection, by `_id`.
async fn all_docs(
    db: &ReadModelDbs,
    collection: &str,
) -> Result<HashMap<String, Document>, ProjectError> {
    let docs = db.all_docs(collection).await?;
    Ok(docs
        .into_iter()
        .map(|d| {
            let id = match d.get("_id") {
                Some(Bson::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (id, d)
        })
        .collect())
}

fn doc_pos(doc: &Document) -> u64 {
    match doc.get("_pos") {
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

/// Events/s and ETA on a terminal; nothing when stderr is not one.
/// The bars of models rebuilt together, drawn as one block on a terminal.
pub(crate) fn progress_block() -> MultiProgress {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    MultiProgress::with_draw_target(target)
}

fn progress_bar(bars: &MultiProgress, model: Model) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(0));
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} events, {per_sec}, ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(model.as_str());
    bar
}
