//! Closed sets of values: roles, referral sources, service types and lifecycle statuses.
//!
//! Each serializes as its snake_case name (`"local_move"`), which `Display`/`FromStr` and
//! `as_str` also use, so query strings, JSON and stored events agree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(test, derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The snake_case name used in JSON and query strings.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(FieldError::new(
                        $field,
                        format!("unknown value {other:?}; expected one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// What a staff user may do; the API decides permissions from it.
    Role, "role" {
        Admin => "admin",
        Dispatcher => "dispatcher",
        Sales => "sales",
        Crew => "crew",
        Analyst => "analyst",
    }
);

string_enum!(
    /// How a customer found the company.
    ReferralSource, "referral_source" {
        Website => "website",
        Referral => "referral",
        Google => "google",
        Repeat => "repeat",
        Social => "social",
        Other => "other",
    }
);

string_enum!(
    /// The kind of work a job is.
    ServiceType, "service_type" {
        LocalMove => "local_move",
        LongDistance => "long_distance",
        Packing => "packing",
        Storage => "storage",
        Commercial => "commercial",
        Other => "other",
    }
);

string_enum!(
    /// Sales lifecycle of a customer: lead → active ⇄ inactive, lead → inactive.
    CustomerStatus, "status" {
        Lead => "lead",
        Active => "active",
        Inactive => "inactive",
    }
);

string_enum!(
    /// Lifecycle of a job: created → scheduled → in_progress → completed, or cancelled
    /// from any non-terminal status.
    JobStatus, "status" {
        Created => "created",
        Scheduled => "scheduled",
        InProgress => "in_progress",
        Completed => "completed",
        Cancelled => "cancelled",
    }
);

impl JobStatus {
    /// Completed and cancelled jobs accept no further commands.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// Human wording for messages ("in progress" rather than "in_progress").
    pub const fn describe(self) -> &'static str {
        match self {
            Self::InProgress => "in progress",
            other => other.as_str(),
        }
    }
}

impl CustomerStatus {
    /// The allowed status changes; staying in the same status is not a change.
    pub fn can_change_to(self, to: Self) -> bool {
        use CustomerStatus::{Active, Inactive, Lead};
        matches!(
            (self, to),
            (Lead, Active) | (Lead, Inactive) | (Active, Inactive) | (Inactive, Active)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_names<T>(all: &[T])
    where
        T: Copy + fmt::Display + FromStr<Err = FieldError> + Serialize + PartialEq + fmt::Debug,
    {
        for value in all {
            let text = value.to_string();
            assert_eq!(serde_json::to_value(value).ok(), Some(json!(text)));
            assert_eq!(text.parse::<T>().ok(), Some(*value));
        }
    }

    #[test]
    fn serde_display_and_from_str_agree_for_every_value() {
        check_names(Role::ALL);
        check_names(ReferralSource::ALL);
        check_names(ServiceType::ALL);
        check_names(CustomerStatus::ALL);
        check_names(JobStatus::ALL);
        assert_eq!(ServiceType::LocalMove.as_str(), "local_move");
        assert_eq!(JobStatus::InProgress.as_str(), "in_progress");
    }

    #[test]
    fn unknown_enum_value_names_the_field() {
        let err = "boss".parse::<Role>().unwrap_err();
        assert_eq!(err.field, "role");
        assert!(err.reason.contains("dispatcher"));
    }

    #[test]
    fn customers_never_return_to_lead() {
        use CustomerStatus::*;
        assert!(Lead.can_change_to(Active));
        assert!(Inactive.can_change_to(Active));
        assert!(!Active.can_change_to(Lead));
        assert!(!Inactive.can_change_to(Lead));
        assert!(!Active.can_change_to(Active));
    }
}
