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
    /// Name of the durable JetStream consumer; the stream name is appended, so projectors of
    /// different streams on one NATS server never share a consumer.
    #[arg(
        long,
        env = "SIMPLEPRO_PROJECTOR_CONSUMER",
        default_value = "projector"
    )]
    pub consumer: String,
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
    /// Document writes in flight during a flush. FerretDB's SQLite backend has one writer per
    /// database: more than a few concurrent updates of large documents only queue on its lock
    /// and start failing with SQLITE_BUSY (measured: 4 in flight is its best rate).
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
}

impl Config {
    /// The durable consumer's name: the configured name plus the stream name, restricted to
    /// characters JetStream accepts in names.
    pub fn durable_name(&self) -> String {
        durable_name(&self.consumer, &self.connection.nats_stream)
    }
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
}
