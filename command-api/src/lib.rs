//! The write side of SimplePro: an HTTP API that turns requests into domain commands, decides
//! them with the pure `domain` crate and appends the resulting events to the event store.
//!
//! - [`Config`] and [`run`]: flags and environment, MongoDB and NATS connections, the
//!   in-process outbox relay (so appended events reach JetStream) and the HTTP server.
//! - `request`: the request extractor (caller, `If-Match`, `Idempotency-Key`, correlation id,
//!   body) and `parse`, which turns a JSON object into domain values listing every bad field.
//! - `execute`: the one load → decide → append path shared by every endpoint: snapshot
//!   loading, optimistic concurrency, retries, idempotent replays and the response shape.
//! - `states`: the state each stream was left in by this process's last append, from which
//!   the next command to it decides without reading the store.
//! - `authz`: who may issue which command (the authorization matrix).
//! - `email`: customer email reservations, unique under concurrency.
//! - `routes`: one module per aggregate with its handlers and cross-aggregate checks.
//! - `openapi`: the header of the OpenAPI document served at `/openapi.json`; its operations
//!   come from the handlers (`routes::documented`).
//! - `observe`: correlation ids and the series on `/metrics`.

mod authz;
mod email;
mod errors;
mod execute;
mod observe;
mod openapi;
mod parse;
mod request;
mod routes;
mod states;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use domain::calendar::BusinessTimeZone;
use domain::codec::Codec;
use domain::enums::Role;
use domain::ids::UserId;
use domain::money::Currency;
use events::{Bus, EventStore, Relay, RelayConfig};
use platform::auth::{Authenticator, Caller};
use platform::config::{AuthArgs, BusinessArgs, ConnectionArgs, TelemetryArgs};
use platform::limits::RateLimitArgs;
use platform::shutdown::Shutdown;
use tokio::net::TcpListener;

pub use execute::CommandAccepted;
pub use openapi::openapi;

/// Settings of the command API, from flags or the environment.
#[derive(Debug, Clone, Parser)]
#[command(name = "command-api", about = "SimplePro command API")]
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
    pub limits: RateLimitArgs,
    #[command(flatten)]
    pub edge: platform::http::EdgeArgs,
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "SIMPLEPRO_COMMAND_API_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub listen: SocketAddr,
    /// The one business currency; money in any other currency is refused.
    #[arg(long, env = "SIMPLEPRO_CURRENCY", default_value = "USD", value_parser = parse_currency)]
    pub currency: Currency,
    /// Largest accepted request body.
    #[arg(long, env = "SIMPLEPRO_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,
    /// How long a command waits for its events' global position (the consistency token).
    #[arg(long, env = "SIMPLEPRO_POSITION_WAIT_MS", default_value_t = 1_000)]
    pub position_wait_ms: u64,
    /// Memory for the state each stream was left in by this process's last append (MiB),
    /// from which the next command to the stream decides without reading the store; 0 keeps
    /// none.
    #[arg(long, env = "SIMPLEPRO_STATE_CACHE_MIB", default_value_t = 64)]
    pub state_cache_mib: u64,
    /// Most requests worked on at once; beyond it a request is answered 503 `overloaded` with
    /// `Retry-After: 1` instead of waiting in memory.
    #[arg(long, env = "SIMPLEPRO_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Prints a bearer token signed with the JWT secret (for development and scripts).
    MintToken {
        #[arg(long)]
        user_id: UserId,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
    },
}

fn parse_currency(raw: &str) -> Result<Currency, String> {
    Currency::parse(raw).map_err(|e| e.reason)
}

fn parse_role(raw: &str) -> Result<Role, String> {
    raw.parse::<Role>().map_err(|e| e.reason)
}

/// A signed development token for the `mint-token` subcommand.
pub fn mint_token(
    config: &Config,
    user_id: UserId,
    name: &str,
    role: Role,
    ttl_hours: i64,
) -> anyhow::Result<String> {
    let keys = config.auth.keys().context("loading the JWT keys")?;
    let caller = Caller {
        user_id,
        name: name.to_owned(),
        role,
    };
    keys.mint(&caller, chrono::Duration::hours(ttl_hours))
        .context("signing the token")
}

/// Shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: EventStore,
    pub(crate) auth: Authenticator,
    pub(crate) currency: Currency,
    /// The zone a job's window is in when its command does not name one.
    pub(crate) time_zone: BusinessTimeZone,
    pub(crate) codec: Codec,
    pub(crate) position_wait: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) emails: email::Reservations,
    pub(crate) metrics: Arc<observe::CommandMetrics>,
    pub(crate) locks: Arc<execute::StreamLocks>,
    pub(crate) states: states::RecentStates,
    pub(crate) in_flight: platform::http::InFlightLimit,
}

impl axum::extract::FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// The event store, and JetStream through NATS.
async fn connect(connection: &ConnectionArgs) -> anyhow::Result<(EventStore, Bus)> {
    let store = EventStore::connect(
        &connection.mongodb_uri,
        &connection.mongodb_db,
        "command-api",
    )
    .await
    .context("connecting to MongoDB and opening the event store")?;
    let nats = events::bus::connect_nats(&connection.nats_url, "command-api")
        .await
        .context("connecting to NATS")?;
    Ok((store, Bus::new(nats, connection.bus_config())))
}

/// What every handler shares.
fn app_state(
    config: &Config,
    store: EventStore,
    auth: Authenticator,
    time_zone: BusinessTimeZone,
    codec: Codec,
) -> AppState {
    let metrics = observe::CommandMetrics::new(&store);
    AppState {
        emails: email::Reservations::new(&store),
        store,
        auth,
        currency: config.currency,
        time_zone,
        codec,
        position_wait: Duration::from_millis(config.position_wait_ms),
        max_body_bytes: config.max_body_bytes,
        metrics,
        locks: Arc::default(),
        states: states::RecentStates::new(config.state_cache_mib.saturating_mul(1024 * 1024)),
        in_flight: platform::http::InFlightLimit::new(config.max_in_flight),
    }
}

/// Connects to MongoDB and NATS, runs the outbox relay and serves until `shutdown`; the relay
/// makes a last pass after the server has finished its in-flight requests.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    let (store, bus) = connect(&config.connection).await?;
    let nats = bus.client().clone();

    let time_zone = config.business.time_zone()?;
    let codec = Codec::for_business(time_zone);
    let (stop_relay, relay_stopped) = platform::shutdown::channel();
    let relay = Relay::new(store.clone(), bus, RelayConfig::default());
    let relay_task = tokio::spawn(relay.run(relay_stopped.wait()));

    let auth = config
        .auth
        .start_authenticator(
            &config.limits,
            store.clone(),
            codec,
            nats.clone(),
            &config.connection.subject_prefix,
        )
        .await?;
    let limits = auth.limits.clone();
    let state = app_state(&config, store, auth, time_zone, codec);
    let readiness = platform::http::Readiness {
        store: state.store.clone(),
        nats,
    };
    let registry = state.metrics.registry();
    let router = routes::router(state)
        .layer(
            tower::ServiceBuilder::new()
                .layer(platform::http::route_timing(&registry, &config.edge))
                .layer(axum::middleware::from_fn_with_state(
                    limits,
                    platform::limits::limit_by_address,
                )),
        )
        .merge(platform::http::health_routes(readiness));
    let router = platform::http::edge(router, &config.edge, platform::http::RequestSpans::Traced);
    tracing::info!(address = ?listener.local_addr().ok(), "command API listening");
    let served = platform::http::serve_with(
        listener,
        router,
        shutdown,
        Duration::from_secs(10),
        config.edge.connection_limits(),
    )
    .await;
    stop_relay.trigger();
    if let Err(error) = relay_task.await {
        tracing::error!(%error, "relay task failed");
    }
    served.context("serving HTTP")
}
