//! Read models of SimplePro: document layouts, how events change them, and how views are
//! read back from them.
//!
//! - [`store`]: the storage port of a model generation's projection
//!   ([`store::ProjectionStore`], [`store::DbError`]), implemented by [`dbs`] and [`memory`].
//! - [`dbs`]: the MongoDB adapter ([`dbs::ReadModelDbs`], the read models' one database): point
//!   reads, fenced document writes, the projector's checkpoints, registry, parked aggregates,
//!   dead letters, heartbeats and leases.
//! - [`names`]: collection names (`rm_<model>_g<generation>_<kind>`), the registry and
//!   checkpoint documents, the change-notification subject.
//! - [`cache`]: the typed document cache the projector applies events through
//!   ([`cache::DocCache`], [`cache::DocLoader`]), with the persisted-`_pos` guard and flush
//!   tiers that make re-applying events after a crash exact.
//! - [`apply`](fn@apply): one event → one model's documents ([`Model`],
//!   [`ProjectionContext`], [`ApplyError`]). The models live in `models/`: dashboard,
//!   calendar, inbox, lists (with customer search) and messages.
//! - [`query`]: views assembled from point reads through a [`query::DocSource`].
//! - [`reference`](mod@reference): a straightforward in-memory fold computing the same views, the oracle
//!   the tests compare the document pipeline with.
//! - [`memory`]: an in-memory document store (loader, source and projection store) for tests.
//! - [`stored`]: the stored form of a document: `_id`, `_pos`, then its fields by name.
//!   Ids are stored as text (see `domain::ids`), instants as BSON dates (`instant`).
//!
//! Internals: `list_index` (ordered lists as a directory document plus bucket documents,
//! paged by keyset) and `models/*` (one module per model; each module's docs list its
//! documents, their `_id`s and the events that change them; `models/search` holds the
//! customer search postings and matching rules).
//!
//! The one rule the projector must follow besides "documents before checkpoint": write the
//! output of [`cache::DocCache::take_dirty`] tier by tier, lowest first
//! ([`cache::flush_batches`]); see [`cache`] for why.

mod apply;
pub mod cache;
pub mod dbs;
mod instant;
mod list_index;
pub mod memory;
mod models;
pub mod names;
pub mod query;
pub mod reference;
pub mod store;
pub mod stored;

pub use apply::{apply, ApplyError, Model, ProjectionContext, UnknownModel};

#[cfg(test)]
mod tests;
