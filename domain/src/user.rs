//! User aggregate: staff accounts with a role. Deactivated users keep their history but
//! their role no longer changes.
//!
//! Email uniqueness across users is enforced outside, like for customers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::enums::Role;
use crate::error::DomainError;
use crate::ids::UserId;
use crate::values::{Email, PersonName};

/// Marker type implementing [`Aggregate`] for staff users.
#[derive(Debug, Clone, Copy)]
pub struct User;

/// Snapshot version of [`UserState`]; bump when its shape changes.
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// `None` until registered.
    pub user: Option<UserRecord>,
}

impl UserState {
    /// The role of an active user; `None` for unknown or deactivated users.
    pub fn active_role(&self) -> Option<Role> {
        self.user.as_ref().filter(|u| u.active).map(|u| u.role)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: UserId,
    pub role: Role,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: UserId,
        display_name: PersonName,
        email: Email,
        role: Role,
        registered_at: DateTime<Utc>,
    },
    ChangeRole {
        role: Role,
        changed_at: DateTime<Utc>,
    },
    Deactivate {
        deactivated_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        user_id: UserId,
        display_name: PersonName,
        email: Email,
        role: Role,
        registered_at: DateTime<Utc>,
    },
    UserRoleChanged {
        from: Role,
        to: Role,
        changed_at: DateTime<Utc>,
    },
    UserDeactivated {
        deactivated_at: DateTime<Utc>,
    },
}

impl DomainEvent for UserEvent {
    const EVENT_TYPES: &'static [&'static str] =
        &["UserRegistered", "UserRoleChanged", "UserDeactivated"];

    fn event_type(&self) -> &'static str {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::UserRoleChanged { .. } => "UserRoleChanged",
            Self::UserDeactivated { .. } => "UserDeactivated",
        }
    }
}

pub fn decide(state: &UserState, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
    const AGGREGATE: &str = "user";
    match (&state.user, command) {
        (
            None,
            UserCommand::Register {
                user_id,
                display_name,
                email,
                role,
                registered_at,
            },
        ) => Ok(vec![UserEvent::UserRegistered {
            user_id,
            display_name,
            email,
            role,
            registered_at,
        }]),
        (Some(_), UserCommand::Register { .. }) => Err(DomainError::AlreadyExists {
            aggregate: AGGREGATE,
        }),
        (None, _) => Err(DomainError::NotFound {
            aggregate: AGGREGATE,
        }),
        (Some(user), UserCommand::ChangeRole { .. }) if !user.active => {
            Err(DomainError::UserDeactivated)
        }
        (Some(user), UserCommand::ChangeRole { role, changed_at }) => {
            if role == user.role {
                Ok(vec![])
            } else {
                Ok(vec![UserEvent::UserRoleChanged {
                    from: user.role,
                    to: role,
                    changed_at,
                }])
            }
        }
        (Some(user), UserCommand::Deactivate { .. }) if !user.active => {
            Err(DomainError::UserAlreadyDeactivated)
        }
        (Some(_), UserCommand::Deactivate { deactivated_at }) => {
            Ok(vec![UserEvent::UserDeactivated { deactivated_at }])
        }
    }
}

pub fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
    match event {
        UserEvent::UserRegistered { user_id, role, .. } => {
            state.user = Some(UserRecord {
                user_id: *user_id,
                role: *role,
                active: true,
            });
        }
        UserEvent::UserRoleChanged { to, .. } => {
            if let Some(user) = &mut state.user {
                user.role = *to;
            }
        }
        UserEvent::UserDeactivated { .. } => {
            if let Some(user) = &mut state.user {
                user.active = false;
            }
        }
    }
    state
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    const SNAPSHOT_VERSION: u32 = SNAPSHOT_VERSION;
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;

    fn decide(state: &UserState, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: UserState, event: &UserEvent) -> UserState {
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

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            user_id: UserId::from_uuid(Uuid::from_u128(5)),
            display_name: PersonName::parse("Dana Dispatch").unwrap(),
            email: Email::parse("dana@simplepro.example").unwrap(),
            role: Role::Dispatcher,
            registered_at: at(8),
        }
    }

    fn register() -> UserCommand {
        UserCommand::Register {
            user_id: UserId::from_uuid(Uuid::from_u128(5)),
            display_name: PersonName::parse("Dana Dispatch").unwrap(),
            email: Email::parse("dana@simplepro.example").unwrap(),
            role: Role::Dispatcher,
            registered_at: at(8),
        }
    }

    fn change_role(role: Role) -> UserCommand {
        UserCommand::ChangeRole {
            role,
            changed_at: at(9),
        }
    }

    fn deactivated() -> UserEvent {
        UserEvent::UserDeactivated {
            deactivated_at: at(10),
        }
    }

    fn deactivate() -> UserCommand {
        UserCommand::Deactivate {
            deactivated_at: at(10),
        }
    }

    #[test]
    fn registered_user_is_active_with_its_role() {
        let state = given::<User>(vec![])
            .when(register())
            .then(vec![registered()]);
        assert_eq!(state.active_role(), Some(Role::Dispatcher));
    }

    #[test]
    fn user_cannot_be_registered_twice() {
        given::<User>(vec![registered()])
            .when(register())
            .then_err(DomainError::AlreadyExists { aggregate: "user" });
    }

    #[test]
    fn unknown_user_cannot_change_role_or_be_deactivated() {
        for command in [change_role(Role::Admin), deactivate()] {
            given::<User>(vec![])
                .when(command)
                .then_err(DomainError::NotFound { aggregate: "user" });
        }
    }

    #[test]
    fn active_user_can_change_role() {
        let state = given::<User>(vec![registered()])
            .when(change_role(Role::Admin))
            .then(vec![UserEvent::UserRoleChanged {
                from: Role::Dispatcher,
                to: Role::Admin,
                changed_at: at(9),
            }]);
        assert_eq!(state.active_role(), Some(Role::Admin));
    }

    #[test]
    fn changing_to_the_same_role_emits_nothing() {
        given::<User>(vec![registered()])
            .when(change_role(Role::Dispatcher))
            .then(vec![]);
    }

    #[test]
    fn deactivated_user_role_cannot_change() {
        given::<User>(vec![registered(), deactivated()])
            .when(change_role(Role::Admin))
            .then_err(DomainError::UserDeactivated);
    }

    #[test]
    fn active_user_can_be_deactivated() {
        let state = given::<User>(vec![registered()])
            .when(deactivate())
            .then(vec![deactivated()]);
        assert_eq!(state.active_role(), None);
    }

    #[test]
    fn user_cannot_be_deactivated_twice() {
        given::<User>(vec![registered(), deactivated()])
            .when(deactivate())
            .then_err(DomainError::UserAlreadyDeactivated);
    }

    #[test]
    fn user_events_round_trip_through_payloads() {
        let role_changed = UserEvent::UserRoleChanged {
            from: Role::Sales,
            to: Role::Analyst,
            changed_at: at(9),
        };
        assert_payload_round_trips(&[registered(), role_changed, deactivated()]);
        assert_eq!(registered().to_payload()["role"], "dispatcher");
    }
}
