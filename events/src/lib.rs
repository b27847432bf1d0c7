//! The event log of SimplePro: what an event is, where it is kept, and how it reaches readers.
//!
//! - [`envelope`]: the event envelope (ids, stream, version, position, metadata, payload).
//! - [`store`]: the MongoDB event store — atomic, idempotent appends with optimistic
//!   concurrency; reads of one stream and of the whole log in position order — and the port
//!   it implements, [`store::EventLog`].
//! - [`memory`]: the in-memory [`store::EventLog`] of unit tests; `contract` (feature
//!   `contract`) the checks both adapters pass.
//! - [`relay`]: the outbox relay that sequences commits into the global log and publishes
//!   every event on JetStream, also after NATS or the process was down.
//! - [`bus`]: the JetStream stream and its subjects.
//! - [`lease`]: one holder at a time of a named role (relay leader, a projector's read model).
//! - [`metrics`]: counters of appended, sequenced, published and pending events.
//!
//! The flow of one append: `store.append` inserts an outbox entry (intent), then the commit
//! (fact); the relay gives the commit's events positions in `events`, publishes them with
//! `Nats-Msg-Id` = event id, and deletes the outbox entry once JetStream acknowledged them.

pub mod bus;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod envelope;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod relay;
pub mod store;

pub use bus::{Bus, BusConfig, BusError};
pub use envelope::{EventEnvelope, EventMetadata, NewEvent, StreamId};
pub use memory::MemoryEventLog;
pub use relay::{Relay, RelayConfig};
pub use store::{
    AppendError, AppendOutcome, AppendRequest, Backend, EventLog, EventStore, Expected,
    IdempotencyKey, StoreError,
};
