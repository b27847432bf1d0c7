//! Which events a command looks at: a time range of `recorded_at`, a position range, event
//! types and one aggregate type or stream. Built from command-line strings and checked before
//! anything is read, so a typo is an input error rather than an empty result.

use std::collections::HashSet;

use events::EventEnvelope;

use crate::time::TimeRange;
use crate::{all_event_types, parse_aggregate_type, HistoryError};

/// The raw filter arguments, as the command line gives them.
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    pub from: Option<String>,
    pub to: Option<String>,
    pub after_position: u64,
    pub until_position: Option<u64>,
    pub event_types: Vec<String>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub time: TimeRange,
    /// Positions greater than this.
    pub after_position: u64,
    /// Positions up to and including this.
    pub until_position: Option<u64>,
    /// Empty = every type.
    pub event_types: HashSet<String>,
    pub aggregate_type: Option<&'static str>,
    pub aggregate_id: Option<String>,
}

impl Filter {
    pub fn parse(args: &FilterArgs) -> Result<Self, HistoryError> {
        let time = TimeRange::parse(args.from.as_deref(), args.to.as_deref())?;
        if let Some(until) = args.until_position {
            if until <= args.after_position {
                return Err(HistoryError::input(format!(
                    "--until-position {until} is not after --after-position {}",
                    args.after_position
                )));
            }
        }
        let known: HashSet<&str> = all_event_types().collect();
        let mut event_types = HashSet::new();
        for event_type in &args.event_types {
            if !known.contains(event_type.as_str()) {
                let mut valid: Vec<&str> = known.iter().copied().collect();
                valid.sort_unstable();
                return Err(HistoryError::input(format!(
                    "unknown event type `{event_type}`; valid types: {}",
                    valid.join(", ")
                )));
            }
            event_types.insert(event_type.clone());
        }
        let aggregate_type = args
            .aggregate_type
            .as_deref()
            .map(parse_aggregate_type)
            .transpose()?;
        if let Some(id) = &args.aggregate_id {
            // Stream ids are restricted to characters safe in subjects and `_id`s; anything
            // else cannot exist in the store.
            events::StreamId::new(aggregate_type.unwrap_or("customer"), id.as_str())
                .map_err(|_| HistoryError::input(format!("invalid aggregate id `{id}`")))?;
        }
        Ok(Filter {
            time,
            after_position: args.after_position,
            until_position: args.until_position,
            event_types,
            aggregate_type,
            aggregate_id: args.aggregate_id.clone(),
        })
    }

    /// Whether `event` passes every condition (the position lower bound is the reader's).
    pub fn matches(&self, event: &EventEnvelope) -> bool {
        self.time.contains(event.recorded_at)
            && self
                .until_position
                .is_none_or(|until| event.position.is_some_and(|p| p <= until))
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && self
                .aggregate_type
                .is_none_or(|t| event.aggregate_type == t)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|id| &event.aggregate_id == id)
    }

    /// True once `position` is past the last one the filter can accept: the log is read in
    /// position order, so the reader may stop.
    pub fn is_past_end(&self, position: Option<u64>) -> bool {
        matches!((self.until_position, position), (Some(until), Some(p)) if p > until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_types_aggregates_and_inverted_positions_are_refused() {
        let bad_type = FilterArgs {
            event_types: vec!["CustomerRegistred".into()],
            ..FilterArgs::default()
        };
        let err = Filter::parse(&bad_type).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("CustomerRegistered"), "{err}");

        let bad_aggregate = FilterArgs {
            aggregate_type: Some("invoice".into()),
            ..FilterArgs::default()
        };
        assert!(Filter::parse(&bad_aggregate)
            .unwrap_err()
            .to_string()
            .contains("crew_member"));

        let inverted = FilterArgs {
            after_position: 10,
            until_position: Some(10),
            ..FilterArgs::default()
        };
        assert_eq!(Filter::parse(&inverted).unwrap_err().exit_code(), 2);
    }
}
