//! The projector's settings: connections, listen address, consumer name and tuning knobs.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use platform::config::{BusinessArgs, ConnectionArgs, TelemetryArgs};

use crate::projection::CacheLimits;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "projector",
    about = "Keeps the SimplePro read models current from the event stream, and rebuilds them"
)]
pub struct Config {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    #[command(flatten)]
    pub business: BusinessArgs,
    /// Address of the health and metrics endpoints.
    #[arg(
        long,
        env = "SIMPLEPRO_PROJECTOR_LISTEN",
        default_value = "127.0.0.1:8083"
    )]
    pub listen: SocketAddr,
    /// Name of the durable JetStream consumers; the instance id and the stream name are
    /// appended (`<name>-<instance>_<stream>`), so no two instances share a consumer.
    #[arg(
        long,
        env = "SIMPLEPRO_PROJECTOR_CONSUMER",
        default_value = "projector"
    )]
    pub consumer: String,
    /// Names this instance among the projectors sharing the read models: in their leases, in
    /// the instances collection and in its JetStream consumer. Default `<hostname>-<pid>`.
    /// Keep it across restarts (a fixed name per deployed instance) so a restarted instance
    /// finds its consumer again.
    #[arg(long = "instance-id", env = "SIMPLEPRO_PROJECTOR_INSTANCE")]
    pub instance_id: Option<String>,
    /// Read models this instance prefers (comma-separated; all when empty): it takes their
    /// leases first and keeps them; any other model it projects only while no live instance
    /// prefers it and its lease has been free for `--takeover-grace-ms`.
    #[arg(
        long = "models",
        env = "SIMPLEPRO_PROJECTOR_MODELS",
        value_delimiter = ','
    )]
    pub preferred_models: Vec<String>,
    #[command(flatten)]
    pub tuning: Tuning,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Rebuilds read models from the event store into a new generation and switches to it.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Models to rebuild (dashboard, calendar, inbox, lists, messages); all when none is given.
    pub models: Vec<String>,
    /// Compares every document of the new generation with the live one before switching;
    /// a difference keeps the old generation live and fails the command.
    #[arg(long)]
    pub verify: bool,
    /// Seconds to wait after the switch before dropping the old generation's collections,
    /// so running projectors and query services notice the switch first.
    #[arg(long, default_value_t = 5)]
    pub drop_delay_secs: u64,
    /// Changed documents the new generations hold in memory, all models together, before
    /// writing them: fewer flushes rewrite busy documents less often, and documents new to
    /// the store are inserted rather than updated (see `--catch-up-docs` of the live
    /// projector). Measured at M: the lists model written in two flushes took 79 s, in one
    /// 45 s.
    #[arg(long, default_value_t = 1_000_000)]
    pub flush_docs: usize,
    /// Serves the rebuild's `/metrics` (its progress among them) on this address while it
    /// runs, e.g. `127.0.0.1:9464`.
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// Knobs with defaults that suit both FerretDB and MongoDB.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Most events applied in one batch.
    #[arg(long, default_value_t = 1_000)]
    pub batch_max: usize,
    /// How long a batch waits to fill up after its first event (milliseconds).
    #[arg(long, default_value_t = 50)]
    pub batch_wait_ms: u64,
    /// How long a missing position may be awaited on JetStream before it is read from the
    /// event store (milliseconds).
    #[arg(long, default_value_t = 200)]
    pub gap_wait_ms: u64,
    /// Early deliveries held while waiting for a missing position.
    #[arg(long, default_value_t = 5_000)]
    pub reorder_capacity: usize,
    /// Document writes in flight during a flush.
    #[arg(long, default_value_t = 4)]
    pub flush_concurrency: usize,
    /// Documents each model keeps cached between batches.
    #[arg(long, default_value_t = 20_000)]
    pub cache_docs: usize,
    /// Encoded size of the documents each model keeps cached between batches (MiB): the
    /// bound of the projector's memory, about five times this plus the batch in hand.
    #[arg(long, default_value_t = 64)]
    pub cache_mib: usize,
    /// Events per read from the event store when catching up.
    #[arg(long, default_value_t = 10_000)]
    pub store_chunk: usize,
    /// Catch-ups and rebuilds of at least this many events read JetStream's copy of the log
    /// first, and the event store from the first position the stream lacks: on FerretDB a
    /// read of any part of the log decodes all of it (M: 24–32 s, against 1.6 s from
    /// JetStream).
    #[arg(long, default_value_t = 1_000)]
    pub bus_replay_min: u64,
    /// Changed documents (over all models) a catch-up holds in memory before writing them.
    /// A backlog's busy documents are then written once per flush rather than once per
    /// chunk of 10,000 events, and documents new to the store are inserted rather than
    /// updated (on FerretDB an update scans its collection, an insert does not); memory
    /// grows with it. M from empty changes 155,784 documents: one flush, 25–28 s and
    /// 0.5 GB, where two flushes took 37 s.
    #[arg(long, default_value_t = 250_000)]
    pub catch_up_docs: usize,
    /// Attempts at applying an event that fails as undecodable before it is dead-lettered.
    #[arg(long, default_value_t = 3)]
    pub poison_attempts: u32,
    /// How often the registry and the store's tail are re-read (milliseconds).
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// Unacknowledged JetStream messages the consumer may have out.
    #[arg(long, default_value_t = 10_000)]
    pub max_ack_pending: i64,
    /// A model's lease not renewed for this long (milliseconds) may be taken by another
    /// instance; it also bounds how long a holder that lost the database may still flush.
    #[arg(long, default_value_t = 10_000)]
    pub lease_ttl_ms: u64,
    /// How long (milliseconds) a model that is not among an instance's preferred ones must
    /// have been without a live holder before that instance takes it.
    #[arg(long, default_value_t = 10_000)]
    pub takeover_grace_ms: u64,
    /// A JetStream consumer whose instance has not pulled for this long (seconds) is deleted
    /// by the server: what is left of an instance that is gone for good.
    #[arg(long, default_value_t = 3_600)]
    pub consumer_inactive_secs: u64,
}

impl Tuning {
    pub(crate) fn cache_limits(&self) -> CacheLimits {
        CacheLimits {
            docs: self.cache_docs,
            bytes: self.cache_mib.saturating_mul(1 << 20),
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            batch_max: 1_000,
            batch_wait_ms: 50,
            gap_wait_ms: 200,
            reorder_capacity: 5_000,
            flush_concurrency: 4,
            cache_docs: 20_000,
            cache_mib: 64,
            store_chunk: 10_000,
            bus_replay_min: 1_000,
            catch_up_docs: 250_000,
            poison_attempts: 3,
            poll_ms: 500,
            max_ack_pending: 10_000,
            lease_ttl_ms: 10_000,
            takeover_grace_ms: 10_000,
            consumer_inactive_secs: 3_600,
        }
    }
}

impl Tuning {
    pub(crate) fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }

    pub(crate) fn gap_wait(&self) -> Duration {
        Duration::from_millis(self.gap_wait_ms)
    }

    pub(crate) fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms.max(10))
    }

    pub(crate) fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms.max(100))
    }

    pub(crate) fn takeover_grace(&self) -> Duration {
        Duration::from_millis(self.takeover_grace_ms)
    }
}

impl Config {
    /// The durable consumer's name: the configured name, the instance and the stream name,
    /// restricted to characters JetStream accepts in names. Each instance has its own.
    pub fn durable_name(&self) -> String {
        let consumer = format!("{}-{}", self.consumer, self.instance_id());
        durable_name(&consumer, &self.connection.nats_stream)
    }

    /// This instance's name: `--instance-id`, else `<hostname>-<pid>`.
    pub fn instance_id(&self) -> String {
        match self.instance_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!("{}-{}", hostname(), std::process::id()),
        }
    }

    /// The preferred models (all when none is named).
    pub fn preferred_models(&self) -> anyhow::Result<Vec<read_models::Model>> {
        let mut models = Vec::new();
        for name in self.preferred_models.iter().map(|n| n.trim()) {
            if name.is_empty() {
                continue;
            }
            let model = name.parse::<read_models::Model>().map_err(|_| {
                anyhow::anyhow!(
                    "unknown model {name:?} in --models; expected some of: {}",
                    read_models::Model::ALL
                        .map(read_models::Model::as_str)
                        .join(", ")
                )
            })?;
            if !models.contains(&model) {
                models.push(model);
            }
        }
        if models.is_empty() {
            models = read_models::Model::ALL.to_vec();
        }
        Ok(models)
    }
}

/// The host's name (a container's id under Docker), or a random one.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

pub(crate) fn durable_name(consumer: &str, stream: &str) -> String {
    format!("{consumer}_{stream}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_names_carry_the_stream_and_only_safe_characters() {
        assert_eq!(
            durable_name("projector", "TEST_ab12"),
            "projector_TEST_ab12"
        );
        assert_eq!(durable_name("p.x", "S*>"), "p_x_S__");
    }

    #[test]
    fn defaults_parse_without_arguments() {
        let config = Config::try_parse_from(["projector"]).unwrap();
        assert_eq!(config.listen.port(), 8083);
        assert_eq!(config.tuning.batch_max, Tuning::default().batch_max);
        assert!(config.command.is_none());
        let rebuild =
            Config::try_parse_from(["projector", "rebuild", "calendar", "--verify"]).unwrap();
        match rebuild.command {
            Some(Command::Rebuild(args)) => {
                assert_eq!(args.models, vec!["calendar"]);
                assert!(args.verify);
            }
            None => panic!("rebuild not parsed"),
        }
    }

    #[test]
    fn instances_name_their_consumer_and_their_preferred_models() {
        let config = Config::try_parse_from([
            "projector",
            "--instance-id",
            "p1",
            "--models",
            "lists, inbox,lists",
        ])
        .unwrap();
        assert_eq!(config.durable_name(), "projector-p1_SIMPLEPRO_EVENTS");
        assert_eq!(
            config.preferred_models().unwrap(),
            vec![read_models::Model::Lists, read_models::Model::Inbox]
        );
        let all = Config::try_parse_from(["projector"]).unwrap();
        assert_eq!(all.preferred_models().unwrap(), read_models::Model::ALL);
        assert!(!all.instance_id().is_empty());
        let wrong = Config::try_parse_from(["projector", "--models", "nope"]).unwrap();
        assert!(wrong.preferred_models().is_err());
    }
}
