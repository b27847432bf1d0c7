//! Benchmarks of SimplePro: precomputed read models against on-read aggregation.
//!
//! - [`generator`]: deterministic, realistic data from a seed (sizes S, M, L) as domain
//!   commands; [`decide`] turns them into the events the aggregates decide.
//! - [`loader`]: bulk-writes decided events into the event store and publishes them;
//!   [`seed`] sends the same commands through the command API instead.
//! - [`baseline`]: the replaced design (current-state collections, aggregation on read)
//!   behind an HTTP server on the same stack.
//! - [`services`]: starting the real services and the baseline as child processes.
//! - [`measure`]: sequential latency, `wrk` throughput, writes, projection catch-up and lag,
//!   rebuild, memory.
//! - [`run`]: one size end to end; [`report`] and [`chart`] write Markdown, JSON and SVG;
//!   [`run::soak`]: the services under a fixed load for minutes, memory and backlogs sampled.

pub mod baseline;
pub mod chart;
pub mod cli;
pub mod compare;
pub mod decide;
pub mod generator;
pub mod loader;
pub mod measure;
pub mod report;
pub mod run;
pub mod seed;
pub mod services;

pub use generator::{generate, Dataset, GenConfig, Size};
