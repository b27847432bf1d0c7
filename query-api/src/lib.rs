//! The query API of SimplePro: serves the read models over HTTP, paginated, cached and
//! consistent on request.
//!
//! - [`routes`]: the `/v1` handlers, one module per resource; each checks the caller's role,
//!   parses its parameters ([`params`]) into typed values, waits for `min_position` if asked,
//!   and assembles its view with `read_models::query` over [`docs`].
//! - [`docs`]: read-model documents by `(collection, _id)` from MongoDB behind a moka cache
//!   weighed in bytes, with coalesced misses; it is the `DocSource` the queries read through.
//! - [`freshness`]: the position the read models reached, kept from the projector's change
//!   notices (which also invalidate cached documents) and a once-a-second checkpoint poll.
//! - [`cursor`]: opaque HMAC-signed page cursors bound to route, filters and user.
//! - [`respond`]: JSON bodies with `position`, strong ETags, 304s, problem documents.
//! - [`metrics`]: Prometheus text on `/metrics`; [`openapi`]: the OpenAPI document.

pub mod cursor;
pub mod docs;
pub mod freshness;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod params;
pub mod push;
pub mod respond;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use clap::Parser;
use domain::codec::Codec;
use platform::config::{AuthArgs, BusinessArgs, ConnectionArgs, Secret, TelemetryArgs};
use platform::http::{health_routes, serve_with, Readiness};
use platform::limits::RateLimits;
use platform::problem::Problem;
use platform::shutdown::Shutdown;

use crate::cursor::CursorCodec;
use crate::docs::{CacheSettings, DocStore};
use crate::freshness::Freshness;
use crate::metrics::Metrics;
use crate::push::{Admission, StreamLimits};
use crate::routes::{App, AppState};

#[derive(Debug, Clone, Parser)]
#[command(name = "query-api", about = "SimplePro query API")]
pub struct Config {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub business: BusinessArgs,
    #[command(flatten)]
    pub limits: platform::limits::RateLimitArgs,
    #[command(flatten)]
    pub edge: platform::http::EdgeArgs,
    /// Address to listen on.
    #[arg(
        long,
        env = "SIMPLEPRO_QUERY_API_LISTEN",
        default_value = "127.0.0.1:8082"
    )]
    pub listen: SocketAddr,
    /// Capacity of the read-model cache in bytes: documents, and (one eighth of it) the
    /// answers rendered from them (dashboards, calendar weeks, pages of lists).
    #[arg(long, env = "SIMPLEPRO_CACHE_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: u64,
    /// Longest time a cached document is served; change notices normally drop it sooner.
    #[arg(long, env = "SIMPLEPRO_CACHE_TTL_SECS", default_value_t = 60)]
    pub cache_ttl_secs: u64,
    /// Longest wait for `min_position` before answering 503 not-yet-consistent.
    #[arg(long, env = "SIMPLEPRO_CONSISTENCY_WAIT_MS", default_value_t = 2000)]
    pub consistency_wait_ms: u64,
    /// Turn the cache off: every request reads MongoDB and renders its view (for benchmarks).
    #[arg(long, env = "SIMPLEPRO_NO_CACHE")]
    pub no_cache: bool,
    /// Secret that signs page cursors (default: derived from the JWT secret).
    #[arg(long, env = "SIMPLEPRO_CURSOR_SECRET", hide_env_values = true)]
    pub cursor_secret: Option<Secret>,
    /// Server-sent event streams (`/v1/live/...`) open at once, all users together; past it
    /// a new stream gets 429.
    #[arg(long, env = "SIMPLEPRO_LIVE_MAX_STREAMS", default_value_t = 10_000)]
    pub live_max_streams: usize,
    /// Server-sent event streams one user may have open at once.
    #[arg(long, env = "SIMPLEPRO_LIVE_MAX_STREAMS_PER_USER", default_value_t = 8)]
    pub live_max_streams_per_user: usize,
    /// Seconds between heartbeat comments on an idle stream.
    #[arg(long, env = "SIMPLEPRO_LIVE_HEARTBEAT_SECS", default_value_t = 15)]
    pub live_heartbeat_secs: u64,
}

/// In-flight requests get this long to finish after shutdown was requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Config {
    fn cache_settings(&self) -> CacheSettings {
        CacheSettings {
            max_bytes: (!self.no_cache).then_some(self.cache_max_bytes),
            ttl: Duration::from_secs(self.cache_ttl_secs.max(1)),
        }
    }

    /// Signs cursors with their own secret, or one derived from the JWT secret.
    fn cursor_codec(&self) -> CursorCodec {
        let secret = self
            .cursor_secret
            .clone()
            .unwrap_or_else(|| CursorCodec::derive_secret(&self.auth.jwt_secret));
        CursorCodec::new(&secret)
    }
}

/// The read models' databases, the event store and NATS.
async fn connect(
    connection: &ConnectionArgs,
) -> anyhow::Result<(
    read_models::dbs::ReadModelDbs,
    events::EventStore,
    async_nats::Client,
)> {
    let client = events::store::connect_client(&connection.mongodb_uri, "query-api")
        .await
        .context("connecting to MongoDB")?;
    let database = read_models::dbs::ReadModelDbs::new(client.clone(), connection.read_models_db());
    let store = events::EventStore::open(client.database(&connection.mongodb_db))
        .await
        .context("opening the event store")?;
    let nats = events::bus::connect_nats(&connection.nats_url, "query-api")
        .await
        .context("connecting to NATS")?;
    Ok((database, store, nats))
}

/// What the read models have reached, loaded now and then kept current from the projector's
/// change notices until `shutdown`.
async fn follow_changes(
    config: &Config,
    nats: &async_nats::Client,
    docs: &Arc<DocStore>,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> anyhow::Result<Arc<Freshness>> {
    let freshness = Freshness::load(docs.clone(), metrics.clone())
        .await
        .context("reading the read-model registry and checkpoints")?;
    let subject = read_models::names::changes_subject(&config.connection.subject_prefix);
    let subscriber = nats
        .subscribe(subject.clone())
        .await
        .with_context(|| format!("subscribing to change notices on {subject}"))?;
    tokio::spawn(
        freshness
            .clone()
            .run(nats.clone(), subject, subscriber, shutdown.clone()),
    );
    Ok(freshness)
}

/// Serves the query API on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let time_zone = config.business.time_zone()?;
    let (database, store, nats) = connect(&config.connection).await?;
    let metrics = Arc::new(Metrics::default());
    let docs = Arc::new(DocStore::new(
        database.clone(),
        config.cache_settings(),
        metrics.clone(),
    ));
    let freshness = follow_changes(&config, &nats, &docs, &metrics, &shutdown).await?;
    let auth = config
        .auth
        .start_authenticator(
            &config.limits,
            store.clone(),
            Codec::for_business(time_zone),
            nats.clone(),
            &config.connection.subject_prefix,
        )
        .await?;
    let limits = auth.limits.clone();
    let app = AppState(Arc::new(App {
        auth,
        docs,
        freshness,
        cursors: config.cursor_codec(),
        store: store.clone(),
        time_zone,
        metrics,
        consistency_wait: Duration::from_millis(config.consistency_wait_ms),
        push: Admission::new(StreamLimits {
            total: config.live_max_streams,
            per_user: config.live_max_streams_per_user,
        }),
        push_heartbeat: Duration::from_secs(config.live_heartbeat_secs.max(1)),
        shutdown: shutdown.clone(),
        as_of: routes::as_of::as_of_cache(),
    }));
    let router = router(
        app,
        limits,
        &config.edge,
        Readiness {
            store: store.clone(),
            nats,
        },
    );
    tracing::info!(address = ?listener.local_addr().ok(), "query API listening");
    let limits = config.edge.connection_limits();
    serve_with(listener, router, shutdown, SHUTDOWN_GRACE, limits)
        .await
        .context("serving HTTP")
}

fn router(
    app: AppState,
    limits: RateLimits,
    edge: &platform::http::EdgeArgs,
    readiness: Readiness,
) -> Router {
    let (v1, _) = routes::routes().split_for_parts();
    let registry = app.metrics.registry();
    // One `layer` call: each call boxes every route once more, and a request clones them all.
    let per_route = tower::ServiceBuilder::new()
        .layer(platform::http::route_timing(&registry, edge))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            platform::limits::limit_by_address,
        ))
        .layer(axum::middleware::from_fn(platform::http::run_to_completion));
    let v1 = v1
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(per_route)
        .with_state(app);
    platform::http::edge(
        v1.merge(health_routes(readiness)).merge(page::routes()),
        edge,
        platform::http::RequestSpans::LogsOnly,
    )
}

async fn not_found() -> Response {
    Problem::not_found("no such resource; see /openapi.json").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this resource only answers GET",
    )
    .into_response()
}
