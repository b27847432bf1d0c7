//! What every SimplePro service binary needs around its own logic.
//!
//! - [`config`]: connection settings from flags and environment, with local defaults.
//! - [`consistency`]: the names of the consistency token (`X-Position`, `min_position`,
//!   `X-Min-Position`) both APIs use.
//! - [`telemetry`]: `tracing` output, human-readable or JSON, and spans as OpenTelemetry spans
//!   (exported over OTLP when configured).
//! - [`trace_context`]: the W3C `traceparent` in and out of spans, across services.
//! - [`metrics`]: a Prometheus registry per service, `/metrics` and request latencies.
//! - [`shutdown`]: one signal (SIGTERM or Ctrl-C) shared by every task of a process.
//! - [`http`]: the edge layers every API router gets; `/healthz` and `/readyz`.
//! - [`serve`]: the server loop, with limits on slow and oversized request heads.
//! - [`openapi`]: OpenAPI pieces both APIs' documents share (bearer scheme, health routes).
//! - [`problem`]: `application/problem+json` errors (RFC 9457) and a JSON extractor that
//!   reports its rejections in the same format.
//! - [`auth`]: the extractor for the caller.
//! - [`jwt`]: signing and checking tokens: HS256, EdDSA, RS256, several keys by `kid`.
//! - [`limits`]: rate limits per user and per client address.
//! - [`accounts`]: each user's current standing (active with a role, or deactivated).
//! - [`stored`]: stored events brought to the current schema through the domain's codec.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod consistency;
pub mod http;
pub mod jwt;
mod latency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod serve;
pub mod shutdown;
pub mod stored;
pub mod telemetry;
pub mod trace_context;
