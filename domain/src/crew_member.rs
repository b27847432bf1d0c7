//! Crew member aggregate: the people who do the jobs, optionally linked to a staff user so
//! they can log in and act on jobs they are assigned to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::error::DomainError;
use crate::ids::{CrewMemberId, UserId};
use crate::values::{PersonName, Skill};

/// Marker type implementing [`Aggregate`] for crew members.
#[derive(Debug, Clone, Copy)]
pub struct CrewMember;

/// Snapshot version of [`CrewMemberState`]; bump when its shape changes.
pub const SNAPSHOT_VERSION: u32 = 1;

/// At most this many skills per crew member.
pub const MAX_SKILLS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrewMemberState {
    /// `None` until registered.
    pub crew_member: Option<CrewMemberRecord>,
}

impl CrewMemberState {
    /// Registered and not deactivated.
    pub fn active(&self) -> bool {
        self.crew_member.as_ref().is_some_and(|c| c.active)
    }

    /// The staff user this crew member logs in as, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.crew_member.as_ref().and_then(|c| c.user_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrewMemberRecord {
    pub crew_member_id: CrewMemberId,
    pub user_id: Option<UserId>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrewMemberCommand {
    /// Duplicate skills are dropped, keeping the first occurrence.
    Register {
        crew_member_id: CrewMemberId,
        name: PersonName,
        skills: Vec<Skill>,
        user_id: Option<UserId>,
        registered_at: DateTime<Utc>,
    },
    Deactivate {
        deactivated_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum CrewMemberEvent {
    CrewMemberRegistered {
        crew_member_id: CrewMemberId,
        name: PersonName,
        skills: Vec<Skill>,
        user_id: Option<UserId>,
        registered_at: DateTime<Utc>,
    },
    CrewMemberDeactivated {
        deactivated_at: DateTime<Utc>,
    },
}

impl DomainEvent for CrewMemberEvent {
    const EVENT_TYPES: &'static [&'static str] = &["CrewMemberRegistered", "CrewMemberDeactivated"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::CrewMemberRegistered { .. } => "CrewMemberRegistered",
            Self::CrewMemberDeactivated { .. } => "CrewMemberDeactivated",
        }
    }
}

pub fn decide(
    state: &CrewMemberState,
    command: CrewMemberCommand,
) -> Result<Vec<CrewMemberEvent>, DomainError> {
    const AGGREGATE: &str = "crew member";
    match (&state.crew_member, command) {
        (
            None,
            CrewMemberCommand::Register {
                crew_member_id,
                name,
                skills,
                user_id,
                registered_at,
            },
        ) => {
            let mut unique: Vec<Skill> = Vec::with_capacity(skills.len());
            for skill in skills {
                if !unique.contains(&skill) {
                    unique.push(skill);
                }
            }
            if unique.len() > MAX_SKILLS {
                return Err(DomainError::TooManySkills { max: MAX_SKILLS });
            }
            Ok(vec![CrewMemberEvent::CrewMemberRegistered {
                crew_member_id,
                name,
                skills: unique,
                user_id,
                registered_at,
            }])
        }
        (Some(_), CrewMemberCommand::Register { .. }) => Err(DomainError::AlreadyExists {
            aggregate: AGGREGATE,
        }),
        (None, _) => Err(DomainError::NotFound {
            aggregate: AGGREGATE,
        }),
        (Some(member), CrewMemberCommand::Deactivate { .. }) if !member.active => {
            Err(DomainError::CrewMemberAlreadyDeactivated)
        }
        (Some(_), CrewMemberCommand::Deactivate { deactivated_at }) => {
            Ok(vec![CrewMemberEvent::CrewMemberDeactivated {
                deactivated_at,
            }])
        }
    }
}

pub fn evolve(mut state: CrewMemberState, event: &CrewMemberEvent) -> CrewMemberState {
    match event {
        CrewMemberEvent::CrewMemberRegistered {
            crew_member_id,
            user_id,
            ..
        } => {
            state.crew_member = Some(CrewMemberRecord {
                crew_member_id: *crew_member_id,
                user_id: *user_id,
                active: true,
            });
        }
        CrewMemberEvent::CrewMemberDeactivated { .. } => {
            if let Some(member) = &mut state.crew_member {
                member.active = false;
            }
        }
    }
    state
}

impl Aggregate for CrewMember {
    const TYPE: &'static str = "crew_member";
    const SNAPSHOT_VERSION: u32 = SNAPSHOT_VERSION;
    type State = CrewMemberState;
    type Command = CrewMemberCommand;
    type Event = CrewMemberEvent;

    fn decide(
        state: &CrewMemberState,
        command: CrewMemberCommand,
    ) -> Result<Vec<CrewMemberEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: CrewMemberState, event: &CrewMemberEvent) -> CrewMemberState {
        evolve(state, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_payload_round_trips, given};
    use chrono::TimeZone;
    use uuid::Uuid;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, hour, 0, 0).unwrap()
    }

    fn id() -> CrewMemberId {
        CrewMemberId::from_uuid(Uuid::from_u128(3))
    }

    fn user() -> UserId {
        UserId::from_uuid(Uuid::from_u128(4))
    }

    fn skills(names: &[&str]) -> Vec<Skill> {
        names.iter().map(|s| Skill::parse(s).unwrap()).collect()
    }

    fn register(skill_names: &[&str]) -> CrewMemberCommand {
        CrewMemberCommand::Register {
            crew_member_id: id(),
            name: PersonName::parse("Carl Crew").unwrap(),
            skills: skills(skill_names),
            user_id: Some(user()),
            registered_at: at(8),
        }
    }

    fn registered(skill_names: &[&str]) -> CrewMemberEvent {
        CrewMemberEvent::CrewMemberRegistered {
            crew_member_id: id(),
            name: PersonName::parse("Carl Crew").unwrap(),
            skills: skills(skill_names),
            user_id: Some(user()),
            registered_at: at(8),
        }
    }

    fn deactivated() -> CrewMemberEvent {
        CrewMemberEvent::CrewMemberDeactivated {
            deactivated_at: at(9),
        }
    }

    fn deactivate() -> CrewMemberCommand {
        CrewMemberCommand::Deactivate {
            deactivated_at: at(9),
        }
    }

    #[test]
    fn registered_crew_member_is_active_and_linked_to_its_user() {
        let state = given::<CrewMember>(vec![])
            .when(register(&["packing", "driving"]))
            .then(vec![registered(&["packing", "driving"])]);
        assert!(state.active());
        assert_eq!(state.user_id(), Some(user()));
    }

    #[test]
    fn duplicate_skills_are_dropped() {
        given::<CrewMember>(vec![])
            .when(register(&["packing", "driving", "packing"]))
            .then(vec![registered(&["packing", "driving"])]);
    }

    #[test]
    fn crew_member_cannot_have_more_than_twenty_skills() {
        let names: Vec<String> = (0..21).map(|i| format!("skill {i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        given::<CrewMember>(vec![])
            .when(register(&names))
            .then_err(DomainError::TooManySkills { max: 20 });
        given::<CrewMember>(vec![])
            .when(register(&names[..20]))
            .then(vec![registered(&names[..20])]);
    }

    #[test]
    fn crew_member_cannot_be_registered_twice() {
        given::<CrewMember>(vec![registered(&[])])
            .when(register(&[]))
            .then_err(DomainError::AlreadyExists {
                aggregate: "crew member",
            });
    }

    #[test]
    fn unknown_crew_member_cannot_be_deactivated() {
        given::<CrewMember>(vec![])
            .when(deactivate())
            .then_err(DomainError::NotFound {
                aggregate: "crew member",
            });
    }

    #[test]
    fn active_crew_member_can_be_deactivated() {
        let state = given::<CrewMember>(vec![registered(&[])])
            .when(deactivate())
            .then(vec![deactivated()]);
        assert!(!state.active());
    }

    #[test]
    fn crew_member_cannot_be_deactivated_twice() {
        given::<CrewMember>(vec![registered(&[]), deactivated()])
            .when(deactivate())
            .then_err(DomainError::CrewMemberAlreadyDeactivated);
    }

    #[test]
    fn crew_member_events_round_trip_through_payloads() {
        assert_payload_round_trips(&[registered(&["piano"]), deactivated()]);
        let payload = registered(&["piano"]).to_payload();
        assert_eq!(payload["skills"], serde_json::json!(["piano"]));
        assert_eq!(payload["user_id"], user().to_string());
    }
}
