//! The projector of SimplePro: keeps every read model exactly up to date from the event stream,
//! and rebuilds read models from the event store.
//!
//! - [`config`]: flags and environment ([`Config`], the `rebuild` subcommand, tuning).
//! - `consumer`: the durable JetStream pull consumer (explicit acks, bounded pending).
//! - `ordering`: the bounded reorder buffer that hands out events strictly by position.
//! - `source`: the event store as the record: its tail, and ranges read by point reads or one
//!   streaming cursor.
//! - `projection`: one model generation being written (cache, checkpoint, dead letters).
//! - `live`: the service loop; `rebuild`: new generations, `--verify`, the registry switch.
//! - `ownership`: which models this instance writes (a lease per model, heartbeats, sharing).
//! - `notify`: change notices. The read models' storage (documents, checkpoints, registry,
//!   parked aggregates, dead letters, heartbeats) is `read_models::dbs::ReadModelDbs`, through
//!   `read_models::store::ProjectionStore` where projecting a model needs it.
//! - [`metrics`] and `http`: `/healthz`, `/readyz`, `/metrics`, `GET /v1/checkpoint`.
//!
//! # Guarantees and how they are enforced
//!
//! **Position order.** Positions are dense and global. Each live model generation keeps a
//! checkpoint `P` (every position ≤ `P` applied). Deliveries go through a reorder buffer keyed
//! by position: at or below the applied position is a duplicate (acked, skipped); above the
//! next one it is held (bounded); only the run `applied + 1, applied + 2, …` is applied.
//! A model never receives an event that does not continue its own applied position
//! (`projection` refuses a gap), so per-aggregate version order follows from position order.
//!
//! **No waiting forever.** If `applied + 1` has not arrived within `gap_wait` (200 ms) while
//! something later is held or the store's tail is past it, or the buffer is full, the missing
//! range is read from the event store by point reads (a streaming cursor for long ranges).
//! The tail is re-probed every `poll` (500 ms), so events JetStream lost or never delivered
//! are applied from the store too; held messages beyond the store's tail were not published
//! by the relay and are dropped (counted as invalid).
//!
//! //! **One writer per model.** Several instances may run; each projects only the models whose
//! lease it holds (`ownership`), prefers some (`--models`), takes over those of an instance
//! that died, and gives back those another live instance prefers. Each has its own durable
//! consumer and applies every event to the models it holds.
//!
//! **Exactly once.** The projector is the only writer of read-model documents. A batch is
//! applied in memory, then its documents are written tier by tier (upserts by `_id`), then
//! each model's checkpoint, then the change notice, and only then the JetStream acks. A crash
//! anywhere re-applies events after the checkpoint; every document carries `_pos`, and the
//! cache skips an event for a document persisted at or past it, so nothing counts twice.
//! Any failure drops the caches and restarts from the persisted checkpoints by re-reading
//! the store.
//!
//! **Poison events.** An event that a model cannot apply (undecodable, impossible; or whose
//! upcast fails) is retried a few times with backoff, then written to `rm_dead_letters`
//! (`<model>/<position>`) with the envelope and error, and its aggregate is parked for that
//! model (persisted with the checkpoint): later events of the aggregate are dead-lettered as
//! "parked behind <position>". The checkpoint still advances; nothing is dropped silently.
//!
//! **Restarts and rebuilds.** The durable consumer remembers what was acknowledged; the
//! checkpoints say what is applied; at start each model catches up from its checkpoint to the
//! store's tail (a model without a checkpoint builds from 0). The registry is re-read every
//! poll; a model switched to a rebuilt generation is reopened at that generation's checkpoint
//! and filled from the store up to the live position before the next batch.

pub mod config;
mod consumer;
#[cfg(feature = "fault-points")]
mod fault_points;
mod http;
mod live;
pub mod metrics;
mod notify;
mod ordering;
mod ownership;
mod projection;
mod rebuild;
mod source;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::codec::Codec;
use events::{Bus, EventStore};
use platform::http::Readiness;
use platform::shutdown::Shutdown;
use read_models::{Model, ProjectionContext};
use tokio::net::TcpListener;

pub use config::{Command, Config, RebuildArgs, Tuning};
pub use metrics::{CheckpointView, Metrics, ModelStatus};
pub use rebuild::{RebuildReport, VerifyReport};

/// Failures inside the projection loop; each one makes the loop reload from the checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("event store: {0}")]
    Store(#[from] events::StoreError),
    #[error(transparent)]
    ReadModels(#[from] read_models::store::DbError),
    #[error("applying an event: {0}")]
    Apply(String),
    #[error("{model} model is at {applied} but was handed position {next}")]
    Gap {
        model: String,
        applied: u64,
        next: u64,
    },
    #[error("verification: {0}")]
    Verify(String),
    #[error("the {0} model holds part of an event that failed to apply; it must be reloaded")]
    Torn(String),
    #[error("the lease of the {0} model is no longer held, or is about to run out")]
    LeaseLost(String),
}

/// What both the service and the rebuild command connect to.
struct Connections {
    db: read_models::dbs::ReadModelDbs,
    store: EventStore,
    nats: async_nats::Client,
    bus: Bus,
    context: ProjectionContext,
    changes_subject: String,
}

async fn connect(config: &Config) -> anyhow::Result<Connections> {
    let time_zone = config.business.time_zone()?;
    let client = events::store::connect_client(&config.connection.mongodb_uri, "projector")
        .await
        .context("connecting to MongoDB")?;
    let db =
        read_models::dbs::ReadModelDbs::new(client.clone(), config.connection.read_models_db());
    let store = EventStore::open(client.database(&config.connection.mongodb_db))
        .await
        .context("opening the event store")?;
    ensure_built_from(&db, store.identity())
        .await
        .context("checking which event store the read models were built from")?;
    let nats = events::bus::connect_nats(&config.connection.nats_url, "projector")
        .await
        .context("connecting to NATS")?;
    let bus = Bus::new(nats.clone(), config.connection.bus_config());
    Ok(Connections {
        changes_subject: read_models::names::changes_subject(&config.connection.subject_prefix),
        db,
        store,
        nats,
        bus,
        context: ProjectionContext {
            time_zone,
            generation: 1,
        },
    })
}

/// Read models built from another event store (its database dropped and filled again under
/// the same name, the read models' database kept) would take the new store's positions for
/// ones they already hold and skip them; read models stored in another physical layout hold
/// their documents where this version does not look. Either are dropped, and projected again
/// from the store's start.
async fn ensure_built_from(
    db: &read_models::dbs::ReadModelDbs,
    store_id: &str,
) -> Result<(), read_models::store::DbError> {
    let layout = read_models::names::LAYOUT_VERSION;
    match db.source().await? {
        Some(recorded) if recorded.store_id == store_id && recorded.layout == layout => {
            return Ok(())
        }
        Some(recorded) if recorded.store_id != store_id => {
            tracing::warn!(
                built_from = %recorded.store_id,
                event_store = %store_id,
                "the read models were built from another event store: dropping them to project this one from its start"
            );
            db.drop().await?;
        }
        Some(recorded) => {
            tracing::warn!(
                recorded_layout = recorded.layout,
                layout,
                "the read models are stored in another layout: dropping them to project the store again"
            );
            db.drop().await?;
        }
        None => {}
    }
    db.record_source(store_id).await
}

fn shared(
    db: &read_models::dbs::ReadModelDbs,
    metrics: Arc<Metrics>,
    tuning: &Tuning,
) -> projection::Shared {
    projection::Shared {
        db: db.clone(),
        metrics,
        poison_attempts: tuning.poison_attempts,
    }
}

/// Serves health and metrics on `listener` and projects until `shutdown`; then it finishes
/// the batch in hand, acknowledges it and returns.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let connections = connect(&config).await?;
    let instance = config.instance_id();
    let ttl = config.tuning.lease_ttl();
    let ownership = Arc::new(ownership::Ownership::new(&instance, ttl));
    let mut keeper = ownership::Keeper::new(
        &connections.db,
        ownership.clone(),
        config.preferred_models()?,
        ttl,
        config.tuning.takeover_grace(),
    );
    tracing::info!(%instance, preferred = ?config.preferred_models()?, "projector instance");
    // A first round before serving and projecting: the loop then opens the models taken
    // at once, and the instance is ready only once it knows what it holds.
    keeper.round().await;
    let metrics = Metrics::new(platform::metrics::MetricsRegistry::new("projector"));
    let router = http::router(
        Readiness {
            store: connections.store.clone(),
            nats: connections.nats.clone(),
        },
        metrics.clone(),
    );
    let server = tokio::spawn(platform::http::serve(
        listener,
        router,
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    let (stop_keeper, keeper_stopped) = platform::shutdown::channel();
    let keeper = tokio::spawn(keeper.run(keeper_stopped));
    let live = live::Live::new(
        shared(&connections.db, metrics, &config.tuning),
        connections.store,
        Codec::for_business(connections.context.time_zone),
        config.tuning.clone(),
        connections.context,
        notify::NoticeChannel {
            nats: connections.nats.clone(),
            subject: connections.changes_subject,
        },
        ownership,
    );
    live.run(connections.bus, config.durable_name(), shutdown)
        .await;
    // The leases go only once nothing more is written.
    stop_keeper.trigger();
    if let Err(error) = keeper.await {
        tracing::warn!(%error, "the lease keeper failed");
    }
    final_flush(&connections.nats).await;
    server
        .await
        .context("the HTTP server task failed")?
        .context("serving HTTP")?;
    Ok(())
}

/// Rebuilds the named models (all when none is named), together from one replay of the log.
pub async fn rebuild(config: &Config, args: &RebuildArgs) -> anyhow::Result<Vec<RebuildReport>> {
    let models = models_to_rebuild(args)?;
    let connections = connect(config).await?;
    let metrics = Metrics::new(platform::metrics::MetricsRegistry::new("projector-rebuild"));
    let (stop_metrics, metrics_stopped) = platform::shutdown::channel();
    if let Some(address) = args.metrics_listen {
        serve_rebuild_metrics(address, &metrics, metrics_stopped).await?;
    }
    let rebuilder = rebuild::Rebuilder {
        shared: shared(&connections.db, metrics, &config.tuning),
        store: connections.store,
        bus: connections.bus,
        bus_replay_min: config.tuning.bus_replay_min,
        codec: Codec::for_business(connections.context.time_zone),
        context: connections.context,
        nats: connections.nats.clone(),
        changes_subject: connections.changes_subject,
        flush_concurrency: config.tuning.flush_concurrency,
    };
    let bars = rebuild::progress_block();
    let names = models
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let reports = rebuilder
        .rebuild(&models, args, &bars)
        .await
        .with_context(|| format!("rebuilding the read models {names}"))?;
    final_flush(&connections.nats).await;
    stop_metrics.trigger();
    Ok(reports)
}

/// The models `args` names (all when none is named), each once.
fn models_to_rebuild(args: &RebuildArgs) -> anyhow::Result<Vec<Model>> {
    let mut models = if args.models.is_empty() {
        Model::ALL.to_vec()
    } else {
        args.models
            .iter()
            .map(|name| {
                name.parse::<Model>().map_err(|_| {
                    anyhow::anyhow!(
                        "unknown model {name:?}; expected one of: {}",
                        Model::ALL.map(Model::as_str).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    // Named twice, rebuilt once: two rebuilds of a model would write the same generation.
    let mut seen = std::collections::HashSet::new();
    models.retain(|model| seen.insert(*model));
    Ok(models)
}

/// Serves the rebuild's `/metrics` on `address` until `stopped`.
async fn serve_rebuild_metrics(
    address: std::net::SocketAddr,
    metrics: &Metrics,
    stopped: Shutdown,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address} for the rebuild's metrics"))?;
    let routes = metrics.registry().routes();
    tokio::spawn(platform::http::serve(
        listener,
        routes,
        stopped,
        Duration::from_secs(1),
    ));
    Ok(())
}

/// Sends what NATS still buffers (change notices) before the process exits.
async fn final_flush(nats: &async_nats::Client) {
    if let Err(error) = nats.flush().await {
        tracing::debug!(%error, "final NATS flush failed");
    }
}
