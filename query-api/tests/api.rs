//! End-to-end tests of the query API against the local FerretDB and NATS: read models are
//! written the way the projector writes them (see `projection`), then read over HTTP.

#[path = "api/projection.rs"]
mod projection;
#[path = "api/script.rs"]
mod script;
#[path = "api/support.rs"]
mod support;

#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/caching.rs"]
mod caching;
#[path = "api/consistency.rs"]
mod consistency;
#[path = "api/contract.rs"]
mod contract;
#[path = "api/docs.rs"]
mod docs;
#[path = "api/limits.rs"]
mod limits;
#[path = "api/log.rs"]
mod log;
#[path = "api/paging.rs"]
mod paging;
#[path = "api/views.rs"]
mod views;
