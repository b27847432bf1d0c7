//! The design being replaced, rebuilt faithfully on the same stack (axum, the mongodb driver)
//! so that only the design differs: current-state collections (`customers`, `jobs` with the
//! assigned crew embedded, `message_threads`, `messages` with a `readBy` list) queried and
//! aggregated on every read. It uses the driver directly, not `events` or `read-models`: the
//! design it rebuilds has neither an event store nor read models to go through.
//!
//! - [`fill`]: folds a generated data set into those collections.
//! - [`queries`]: the endpoints' logic — six concurrent aggregation pipelines for the
//!   dashboard, seven sequential per-day finds for the calendar week, one find plus one count
//!   per thread for the thread list with unread counts, an unpaginated customer find and a
//!   regex search.
//! - [`server`]: the HTTP server (`bench baseline-server`).

pub mod fill;
pub mod queries;
pub mod server;

pub use fill::fill;
