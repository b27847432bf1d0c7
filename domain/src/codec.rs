//! The one way stored events become typed events, and typed events become stored ones.
//!
//! A stored event is its type name, the schema version of its payload and the payload as
//! JSON. Stored events are never rewritten: when a payload's shape changes, the type's schema
//! version goes up and an upcaster from the previous version is registered in [`UPCASTERS`].
//! Every reader (command handling, projection, rebuilds, history, the event API) decodes
//! through [`Codec`], which runs the chain of upcasters before decoding, so each sees only the
//! current shape; every writer stamps events with [`current_version`] through [`encode`].
//!
//! The JSON Schema of every event type at every version is committed under
//! `domain/schemas/events/`; the schema guard test (see `codec/guard.rs`) fails when a type
//! changes in a way its committed schema does not admit and no upcaster covers the change.

use serde_json::Value;

use crate::aggregate::DomainEvent;
use crate::calendar::BusinessTimeZone;
use crate::error::PayloadError;

mod steps;

#[cfg(test)]
mod compat;
#[cfg(test)]
mod guard;

/// What an upcaster may need to know besides the payload: facts that held when the old
/// version was written and that the old payload left implicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpcastContext {
    /// The business's time zone, which version-1 windows were given in without naming it.
    pub business_time_zone: BusinessTimeZone,
}

/// Turns a payload of one schema version into the next.
pub type UpcastFn = fn(Value, &UpcastContext) -> Result<Value, String>;

/// One registered step: `event_type`'s payload from version `from` to `from + 1`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from: u32,
    pub step: UpcastFn,
}

/// Every upcaster, in the order of the versions they lead to. The current schema version of
/// an event type is one more than the number of steps registered for it.
pub const UPCASTERS: &[Upcaster] = &[
    Upcaster {
        event_type: "JobScheduled",
        from: 1,
        step: steps::job_scheduled_window_gains_time_zone,
    },
    Upcaster {
        event_type: "JobRescheduled",
        from: 1,
        step: steps::job_rescheduled_windows_gain_time_zone,
    },
];

/// The schema version writers stamp on new events of `event_type`, and readers expect.
pub fn current_version(event_type: &str) -> u32 {
    1 + UPCASTERS
        .iter()
        .filter(|upcaster| upcaster.event_type == event_type)
        .count() as u32
}

/// An event in its stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub payload: Value,
}

/// The stored form of `event`, at its type's current schema version.
pub fn encode<E: DomainEvent>(event: &E) -> Encoded {
    let event_type = event.event_type();
    Encoded {
        event_type,
        schema_version: current_version(event_type),
        payload: event.to_payload(),
    }
}

/// Why a stored event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{event_type} v{found} is newer than the v{current} this build knows")]
    FromTheFuture {
        event_type: String,
        found: u32,
        current: u32,
    },
    #[error("{event_type} v{from} could not be upcast: {reason}")]
    Upcast {
        event_type: String,
        from: u32,
        reason: String,
    },
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Reads stored events of any schema version as the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    context: UpcastContext,
}

impl Codec {
    pub fn new(context: UpcastContext) -> Self {
        Self { context }
    }

    /// A codec for a business in `business_time_zone`, the only fact upcasters need today.
    pub fn for_business(business_time_zone: BusinessTimeZone) -> Self {
        Self::new(UpcastContext { business_time_zone })
    }

    /// `payload` brought from `schema_version` to the current version of `event_type`.
    pub fn upcast(
        &self,
        event_type: &str,
        schema_version: u32,
        mut payload: Value,
    ) -> Result<Value, DecodeError> {
        let current = current_version(event_type);
        if schema_version > current {
            return Err(DecodeError::FromTheFuture {
                event_type: event_type.to_owned(),
                found: schema_version,
                current,
            });
        }
        // Version 0 never existed; it is read as 1 rather than refused, like a missing field.
        for from in schema_version.max(1)..current {
            let upcaster = UPCASTERS
                .iter()
                .find(|u| u.event_type == event_type && u.from == from)
                .ok_or_else(|| DecodeError::Upcast {
                    event_type: event_type.to_owned(),
                    from,
                    reason: format!("no upcaster registered from version {from}"),
                })?;
            payload =
                (upcaster.step)(payload, &self.context).map_err(|reason| DecodeError::Upcast {
                    event_type: event_type.to_owned(),
                    from,
                    reason,
                })?;
        }
        Ok(payload)
    }

    /// The typed event a stored one stands for.
    pub fn decode<E: DomainEvent>(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: Value,
    ) -> Result<E, DecodeError> {
        let current = self.upcast(event_type, schema_version, payload)?;
        Ok(E::from_payload(event_type, current)?)
    }
}

#[cfg(test)]
mod tests;
