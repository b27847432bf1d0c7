//! What every SimplePro service binary needs around its own logic.
//!
//! - [`config`]: connection settings from flags and environment, with local defaults.
//! - [`telemetry`]: `tracing` output, human-readable or JSON.
//! - [`shutdown`]: one signal (SIGTERM or Ctrl-C) shared by every task of a process.
//! - [`http`]: serving a router with graceful shutdown; `/healthz` and `/readyz`.
//! - [`problem`]: `application/problem+json` errors (RFC 9457) and a JSON extractor that
//!   reports its rejections in the same format.
//! - [`auth`]: bearer JWTs (HS256): claims, minting, and the extractor for the caller.

pub mod auth;
pub mod config;
pub mod http;
pub mod problem;
pub mod shutdown;
pub mod telemetry;
