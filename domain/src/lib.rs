//! Pure business rules of SimplePro: no IO, no async, no clock, no randomness.
//!
//! - [`aggregate`]: the [`Aggregate`] trait (`decide(&State, Command) -> Result<Vec<Event>,
//!   DomainError>`, `evolve(State, &Event) -> State`) and [`DomainEvent`] (stable event type
//!   names and JSON payloads).
//! - One module per aggregate, each with a marker type implementing [`Aggregate`], its
//!   `State`, `Command`, `Event`, and free `decide`/`evolve` functions:
//!   [`customer`], [`job`], [`user`], [`crew_member`], [`thread`].
//! - Values, parsed at the edge so invalid ones cannot exist: [`ids`] (UUID newtypes),
//!   [`values`] (email, names, phone, message body, address, time window, …), [`money`]
//!   (currency and non-negative minor-unit amounts), [`enums`] (roles, statuses, …).
//! - [`calendar`]: business time zone, local dates and Monday-based ISO weeks.
//! - [`codec`]: stored events to typed events and back, with the upcasters of old schema
//!   versions; every reader and writer of stored events goes through it.
//! - [`error`]: [`DomainError`] (one variant per business rule, with a stable
//!   [`DomainError::rule`] code), [`FieldError`] for parse failures, [`PayloadError`].
//!
//! Time and ids arrive inside commands; the caller (command API) reads the clock and makes
//! ids. Events are the stored facts; `State` is only what `decide` needs, and is
//! `Serialize` deliberately so stores can snapshot it (see each module's `SNAPSHOT_VERSION`).

pub mod aggregate;
pub mod calendar;
pub mod codec;
pub mod crew_member;
pub mod customer;
pub mod enums;
pub mod error;
pub mod ids;
pub mod job;
pub mod money;
pub mod thread;
pub mod user;
pub mod values;

#[cfg(test)]
mod testing;

pub use aggregate::{Aggregate, DomainEvent};
pub use error::{DomainError, FieldError, PayloadError};
