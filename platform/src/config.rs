//! Connection settings shared by the services. Every value comes from a flag or the
//! environment, with defaults that point at the services `./dev up` starts.

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// MongoDB connection string (FerretDB locally, MongoDB 7 in production).
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:37017/?directConnection=true"
    )]
    pub mongodb_uri: String,
    /// Database holding the event store (events, commits, outbox, relay state).
    #[arg(long, env = "MONGODB_DB", default_value = "simplepro")]
    pub mongodb_db: String,
    /// Database holding the read models, the projector's checkpoints and its dead letters
    /// [default: `<mongodb-db>_read_models`]. Kept apart from the event store: the read models
    /// can be dropped and rebuilt, given other durability settings or moved to another server
    /// without touching the record.
    #[arg(long, env = "MONGODB_READ_MODELS_DB")]
    pub mongodb_read_models_db: Option<String>,
    /// NATS server(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:34222")]
    pub nats_url: String,
    /// JetStream stream that carries the events.
    #[arg(
        long,
        env = "SIMPLEPRO_NATS_STREAM",
        default_value = "SIMPLEPRO_EVENTS"
    )]
    pub nats_stream: String,
    /// Subject prefix of the events: `<prefix>.<aggregate_type>.<aggregate_id>`. Read-model
    /// change notices go to the sibling subject `read_models::names::changes_subject` names
    /// (`<prefix>-changes`), outside the events' stream (see ARCHITECTURE.md).
    #[arg(
        long,
        env = "SIMPLEPRO_SUBJECT_PREFIX",
        default_value = "simplepro.events"
    )]
    pub subject_prefix: String,
    /// JetStream stream replicas (3 on a NATS cluster).
    #[arg(long, env = "SIMPLEPRO_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,
}

/// The read-model database that goes with the event store database `event_store_db` when
/// none is named.
pub fn default_read_models_db(event_store_db: &str) -> String {
    format!("{event_store_db}_read_models")
}

impl ConnectionArgs {
    /// The database of the read models: the one named, or the default beside the event store.
    pub fn read_models_db(&self) -> String {
        self.mongodb_read_models_db
            .clone()
            .unwrap_or_else(|| default_read_models_db(&self.mongodb_db))
    }

    pub fn bus_config(&self) -> events::BusConfig {
        events::BusConfig {
            stream_name: self.nats_stream.clone(),
            subject_prefix: self.subject_prefix.clone(),
            duplicate_window: Duration::from_secs(120),
            replicas: self.nats_replicas,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when standard error is not a terminal (a container, a log shipper), human
    /// otherwise.
    #[default]
    Auto,
    Human,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "SIMPLEPRO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver (e.g.
    /// `http://otel-collector:4318`); spans are sent to `<url>/v1/traces`. Unset: no export
    /// (trace ids are still made and propagated).
    #[arg(long, env = "SIMPLEPRO_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        TelemetryArgs {
            log_format: LogFormat::Auto,
            log_filter: "info".into(),
            otlp_endpoint: None,
        }
    }
}

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < 16 {
            return Err("the JWT secret must be at least 16 characters".into());
        }
        Ok(Secret(s.to_owned()))
    }
}

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// HS256 secret that verifies bearer tokens without a `kid` (and signs tokens unless
    /// `--jwt-signing-key` names another key).
    #[arg(long, env = "SIMPLEPRO_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Secret,
    /// More verification keys, by key id: `<kid>=<HS256|EdDSA|RS256>:<file>` (comma-separated
    /// in the environment), e.g. `2026-12=EdDSA:/etc/simplepro/jwt-2026-12.pub.pem`.
    #[arg(long = "jwt-key", env = "SIMPLEPRO_JWT_KEYS", value_delimiter = ',')]
    pub jwt_keys: Vec<crate::jwt::KeySpec>,
    /// The key `mint-token` signs with, same form (a private PEM for EdDSA and RS256).
    #[arg(long, env = "SIMPLEPRO_JWT_SIGNING_KEY")]
    pub jwt_signing_key: Option<crate::jwt::KeySpec>,
    /// `iss` every token must carry.
    #[arg(long, env = "SIMPLEPRO_JWT_ISSUER", default_value = crate::jwt::DEFAULT_ISSUER)]
    pub jwt_issuer: String,
    /// `aud` every token must carry.
    #[arg(long, env = "SIMPLEPRO_JWT_AUDIENCE", default_value = crate::jwt::DEFAULT_AUDIENCE)]
    pub jwt_audience: String,
    /// Longest a user's standing (active with a role, or deactivated) is trusted before it
    /// is read from their events again; a publication of theirs on the bus drops it sooner.
    #[arg(long, env = "SIMPLEPRO_ACCOUNT_TTL_MS", default_value_t = 2_000)]
    pub account_ttl_ms: u64,
}

impl AuthArgs {
    /// Checks tokens against the secret, callers against their events in `store` and their
    /// rate against `limits`.
    pub fn authenticator(
        &self,
        store: events::EventStore,
        codec: domain::codec::Codec,
        limits: crate::limits::RateLimits,
    ) -> Result<crate::auth::Authenticator, crate::jwt::KeyError> {
        Ok(crate::auth::Authenticator::new(
            self.keys()?,
            crate::accounts::Accounts::new(
                store,
                codec,
                Duration::from_millis(self.account_ttl_ms),
            ),
            limits,
        ))
    }

    /// The authenticator a service runs with: keys loaded, callers' standings followed on
    /// the user subjects under `events_prefix`, and rate-limit buckets pruned in the
    /// background.
    pub async fn start_authenticator(
        &self,
        limits: &crate::limits::RateLimitArgs,
        store: events::EventStore,
        codec: domain::codec::Codec,
        nats: async_nats::Client,
        events_prefix: &str,
    ) -> anyhow::Result<crate::auth::Authenticator> {
        use anyhow::Context;
        let limits = limits.limits();
        tokio::spawn(limits.clone().prune_every(Duration::from_secs(60)));
        let auth = self
            .authenticator(store, codec, limits)
            .context("loading the JWT keys")?;
        auth.accounts
            .follow(nats, events_prefix)
            .await
            .context("subscribing to users' events")?;
        Ok(auth)
    }

    /// The configured signing and verification keys.
    pub fn keys(&self) -> Result<crate::jwt::JwtKeys, crate::jwt::KeyError> {
        crate::jwt::JwtKeys::configured(
            &self.jwt_secret,
            &self.jwt_keys,
            self.jwt_signing_key.as_ref(),
            &self.jwt_issuer,
            &self.jwt_audience,
        )
    }
}

/// The business time zone: "today" and calendar weeks are computed in it.
#[derive(Debug, Clone, Args)]
pub struct BusinessArgs {
    /// IANA time zone of the business, e.g. America/Chicago.
    #[arg(long, env = "SIMPLEPRO_TIMEZONE", default_value = "America/New_York")]
    pub timezone: String,
}

impl BusinessArgs {
    /// The configured zone; an unknown name stops the service at start-up.
    pub fn time_zone(&self) -> anyhow::Result<domain::calendar::BusinessTimeZone> {
        domain::calendar::BusinessTimeZone::parse(&self.timezone)
            .map_err(|e| anyhow::anyhow!("SIMPLEPRO_TIMEZONE: {}", e.reason))
    }

    /// The codec every stored event of this business is read through.
    pub fn codec(&self) -> anyhow::Result<domain::codec::Codec> {
        Ok(domain::codec::Codec::for_business(self.time_zone()?))
    }
}
