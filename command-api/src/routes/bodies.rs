//! The request bodies of the commands, as OpenAPI schemas.
//!
//! The handlers parse bodies by hand (`parse`) so that every bad field is listed at once;
//! these types only describe what that parsing accepts, and tests in this module keep the
//! two equal: the same field names, the same required ones, and values the schema admits
//! parse while values it refuses do not. Text is trimmed before it is measured, so text
//! fields carry a pattern that says so instead of a bare `maxLength`.

use domain::crew_member::MAX_SKILLS;
use domain::money::Currency;
use domain::thread::MAX_PARTICIPANTS;
use domain::values::{CancelReason, Email, MessageBody, PersonName, Skill, ThreadTitle};
use platform::openapi::{CustomerStatusName, ReferralSourceName, ServiceTypeName};
use serde::Deserialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::ToSchema;
use uuid::Uuid;

/// What `str::trim` removes (Unicode `White_Space`), spelled out so that every regex
/// dialect reads it alike (`\s` differs between them).
const SPACE: &str = r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (`char::is_control`).
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// Text that, once trimmed, is `min..=max` characters without control characters (line
/// breaks and tabs allowed when `multiline`): the rule of `domain::values`' text newtypes
/// and of `parse::free_text`.
pub(crate) fn trimmed_text_pattern(min: usize, max: usize, multiline: bool) -> String {
    let visible = format!("[^{CONTROL}{SPACE}]");
    let inner = if multiline {
        r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]".to_owned()
    } else {
        format!("[^{CONTROL}]")
    };
    let core = match max {
        0 => String::new(),
        1 => visible.clone(),
        _ => format!("{visible}(?:{inner}{{0,{}}}{visible})?", max - 2),
    };
    let core = if min == 0 {
        format!("(?:{core})?")
    } else {
        core
    };
    format!("^[{SPACE}]*{core}[{SPACE}]*$")
}

/// The business currency's code, in any letter case (`Currency::parse`).
pub(crate) fn currency_pattern(currency: Currency) -> String {
    let letters: String = currency
        .as_str()
        .chars()
        .map(|c| format!("[{c}{}]", c.to_ascii_lowercase()))
        .collect();
    format!("^[{SPACE}]*{letters}[{SPACE}]*$")
}

fn text_schema(pattern: String, nullable: bool) -> Schema {
    text_builder(pattern, nullable).into()
}

fn text_builder(pattern: String, nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .pattern(Some(pattern))
}

fn name() -> Schema {
    text_schema(trimmed_text_pattern(1, PersonName::MAX_CHARS, false), false)
}
fn optional_name() -> Schema {
    text_schema(trimmed_text_pattern(1, PersonName::MAX_CHARS, false), true)
}
fn email_pattern() -> String {
    let visible = format!("[^{CONTROL}{SPACE}]");
    let label = format!("[^{CONTROL}{SPACE}@.]+");
    let local = format!("[^{CONTROL}{SPACE}@]+");
    format!(
        "^[{SPACE}]*(?={visible}{{3,{max}}}[{SPACE}]*$){local}@(?:{label}\\.)+{label}[{SPACE}]*$",
        max = Email::MAX_CHARS
    )
}
fn email() -> Schema {
    text_schema(email_pattern(), false)
}
fn optional_email() -> Schema {
    text_schema(email_pattern(), true)
}
/// 7–15 digits among spaces and `+ - ( ) .` (`domain::values::Phone`).
fn phone_pattern() -> String {
    format!("^[{SPACE}]*(?:[ +().-]*[0-9]){{7,15}}[ +().-]*[{SPACE}]*$")
}
fn phone() -> Schema {
    text_schema(phone_pattern(), false)
}
fn optional_phone() -> Schema {
    text_schema(phone_pattern(), true)
}
fn address_line() -> Schema {
    text_schema(trimmed_text_pattern(1, 200, false), false)
}
fn optional_address_line() -> Schema {
    text_schema(trimmed_text_pattern(0, 200, false), true)
}
fn city() -> Schema {
    text_schema(trimmed_text_pattern(1, 100, false), false)
}
fn optional_region() -> Schema {
    text_schema(trimmed_text_pattern(0, 100, false), true)
}
fn optional_postal_code() -> Schema {
    text_schema(trimmed_text_pattern(0, 20, false), true)
}
fn optional_notes() -> Schema {
    text_schema(trimmed_text_pattern(0, super::jobs::MAX_NOTES, true), true)
}
fn optional_reschedule_reason() -> Schema {
    text_schema(
        trimmed_text_pattern(0, super::jobs::MAX_RESCHEDULE_REASON, true),
        true,
    )
}
fn cancel_reason() -> Schema {
    text_schema(
        trimmed_text_pattern(1, CancelReason::MAX_CHARS, true),
        false,
    )
}
fn optional_title() -> Schema {
    text_schema(trimmed_text_pattern(1, ThreadTitle::MAX_CHARS, false), true)
}
fn message_body() -> Schema {
    text_schema(trimmed_text_pattern(1, MessageBody::MAX_CHARS, true), false)
}
/// Duplicates are merged by the domain, so the parser allows some slack before counting.
fn optional_skills() -> Schema {
    let skill = text_builder(trimmed_text_pattern(1, Skill::MAX_CHARS, false), false);
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(skill)
        .max_items(Some(MAX_SKILLS * 5))
        .into()
}
fn participants() -> Schema {
    let id = ObjectBuilder::new().schema_type(Type::String).format(Some(
        utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
    ));
    ArrayBuilder::new()
        .items(id)
        .max_items(Some(MAX_PARTICIPANTS * 2))
        .into()
}
fn time_of_day(example: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9](:([0-5][0-9]|60))?$"))
        .examples([example])
        .into()
}
fn window_start() -> Schema {
    time_of_day("08:00")
}
fn window_end() -> Schema {
    time_of_day("12:00")
}
/// Any IANA zone name chrono-tz knows.
fn optional_time_zone() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            chrono_tz::TZ_VARIANTS
                .iter()
                .map(|zone| serde_json::Value::from(zone.name()))
                .chain([serde_json::Value::Null]),
        ))
        .into()
}

/// A postal address; `line1` and `city` are required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct AddressBody {
    #[schema(schema_with = address_line)]
    line1: String,
    #[schema(schema_with = optional_address_line)]
    line2: Option<String>,
    #[schema(schema_with = city)]
    city: String,
    #[schema(schema_with = optional_region)]
    region: Option<String>,
    #[schema(schema_with = optional_postal_code)]
    postal_code: Option<String>,
}

/// Money in minor units of the business currency (`SIMPLEPRO_CURRENCY`); the served
/// document names that currency (see `openapi::document`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct MoneyBody {
    #[schema(minimum = 0, maximum = 9007199254740991_i64)]
    amount_minor: i64,
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    currency: String,
}

/// A same-day window, `start` before `end`, as `HH:MM` or `HH:MM:SS`, in `time_zone` (by
/// default the business's zone).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct TimeWindowBody {
    #[schema(schema_with = window_start)]
    start: String,
    #[schema(schema_with = window_end)]
    end: String,
    #[schema(schema_with = optional_time_zone)]
    time_zone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RoleName {
    Admin,
    Dispatcher,
    Sales,
    Crew,
    Analyst,
}

macro_rules! body {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "describes the JSON the handlers parse")]
        pub(crate) struct $name {
            $($(#[$field_meta])* $field: $ty),*
        }
    };
}

body!(
    /// A new customer (always a lead). The server makes `customer_id` unless given.
    RegisterCustomerBody {
        customer_id: Option<Uuid>,
        #[schema(schema_with = name)] first_name: String,
        #[schema(schema_with = name)] last_name: String,
        #[schema(schema_with = email)] email: String,
        #[schema(schema_with = phone)] phone: String,
        referral_source: ReferralSourceName,
        address: AddressBody,
    }
);
body!(
    /// Only the fields given change; fields equal to the current value are no change. No
    /// body is the same as `{}`.
    UpdateContactBody {
        #[schema(schema_with = optional_name)] first_name: Option<String>,
        #[schema(schema_with = optional_name)] last_name: Option<String>,
        #[schema(schema_with = optional_email)] email: Option<String>,
        #[schema(schema_with = optional_phone)] phone: Option<String>,
        address: Option<AddressBody>,
    }
);
body!(ChangeCustomerStatusBody {
    status: CustomerStatusName
});
body!(
    /// A job for an existing customer; the price must be in the business currency.
    CreateJobBody {
        job_id: Option<Uuid>,
        customer_id: Uuid,
        service_type: ServiceTypeName,
        origin: AddressBody,
        destination: AddressBody,
        estimated_price: MoneyBody,
        #[schema(schema_with = optional_notes)] notes: Option<String>,
    }
);
body!(ScheduleJobBody {
    #[schema(value_type = String, format = Date)]
    date: String,
    window: TimeWindowBody,
});
body!(RescheduleJobBody {
    #[schema(value_type = String, format = Date)] date: String,
    window: TimeWindowBody,
    #[schema(schema_with = optional_reschedule_reason)] reason: Option<String>,
});
body!(AssignCrewBody {
    crew_member_id: Uuid
});
body!(CompleteJobBody {
    actual_revenue: MoneyBody
});
body!(CancelJobBody {
    #[schema(schema_with = cancel_reason)]
    reason: String,
});
body!(RegisterUserBody {
    user_id: Option<Uuid>,
    #[schema(schema_with = name)] display_name: String,
    #[schema(schema_with = email)] email: String,
    role: RoleName,
});
body!(ChangeRoleBody { role: RoleName });
body!(RegisterCrewMemberBody {
    crew_member_id: Option<Uuid>,
    #[schema(schema_with = name)] name: String,
    #[schema(schema_with = optional_skills)] skills: Option<Vec<String>>,
    /// The staff user this crew member logs in as.
    user_id: Option<Uuid>,
});
/// `direct`: exactly two participants, the id is derived from them (starting it again
/// answers 200 with the existing thread). `group`: 2–100 participants and a title. `job`:
/// 1–100 participants and `job_id`. The caller must be a participant.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) enum StartThreadBody {
    Job(StartJobThreadBody),
    Other(StartOtherThreadBody),
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobThreadKind {
    Job,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OtherThreadKind {
    Direct,
    Group,
}

/// `job_id` is never given for these kinds (null is the same as absent).
fn no_job_id() -> Schema {
    ObjectBuilder::new().schema_type(Type::Null).into()
}

body!(
    /// A thread about a job.
    StartJobThreadBody {
        thread_id: Option<Uuid>,
        kind: JobThreadKind,
        job_id: Uuid,
        #[schema(schema_with = participants)] participants: Vec<Uuid>,
        #[schema(schema_with = optional_title)] title: Option<String>,
    }
);
body!(
    /// A direct or group thread.
    StartOtherThreadBody {
        thread_id: Option<Uuid>,
        kind: OtherThreadKind,
        #[schema(schema_with = no_job_id)] job_id: Option<Uuid>,
        #[schema(schema_with = participants)] participants: Vec<Uuid>,
        #[schema(schema_with = optional_title)] title: Option<String>,
    }
);
body!(PostMessageBody {
    #[schema(schema_with = message_body)]
    body: String,
});
body!(MarkReadBody {
    /// Marks the messages up to this number read (0: none).
    #[schema(minimum = 0, maximum = 9007199254740991_i64)]
    up_to_seq: u64,
});

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::routes::{crew_members, customers, jobs, threads, users};

    fn schema_of<T: ToSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        names
    }

    fn properties(schema: &Value) -> Vec<String> {
        sorted(schema["properties"].as_object().unwrap().keys().cloned())
    }

    fn required(schema: &Value) -> Vec<String> {
        sorted(
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| f.as_str().unwrap().to_owned()),
        )
    }

    fn owned(fields: &[&str]) -> Vec<String> {
        sorted(fields.iter().map(|f| (*f).to_owned()))
    }

    /// The fields the parser reports missing in an empty body.
    fn missing(problem: platform::problem::Problem) -> Vec<String> {
        sorted(
            problem
                .errors
                .into_iter()
                .filter(|e| e.reason == "is required")
                .map(|e| e.field),
        )
    }

    /// The documented body fields are exactly the fields the handler parses, and no others
    /// are admitted.
    #[test]
    fn documented_bodies_list_the_parsed_fields() {
        let pairs: Vec<(Value, &[&str])> = vec![
            (
                schema_of::<RegisterCustomerBody>(),
                customers::REGISTER_FIELDS,
            ),
            (schema_of::<UpdateContactBody>(), customers::CONTACT_FIELDS),
            (
                schema_of::<ChangeCustomerStatusBody>(),
                customers::STATUS_FIELDS,
            ),
            (schema_of::<CreateJobBody>(), jobs::CREATE_FIELDS),
            (schema_of::<ScheduleJobBody>(), jobs::SCHEDULE_FIELDS),
            (schema_of::<RescheduleJobBody>(), jobs::RESCHEDULE_FIELDS),
            (schema_of::<AssignCrewBody>(), jobs::ASSIGN_FIELDS),
            (schema_of::<CompleteJobBody>(), jobs::COMPLETE_FIELDS),
            (schema_of::<CancelJobBody>(), jobs::CANCEL_FIELDS),
            (schema_of::<RegisterUserBody>(), users::REGISTER_FIELDS),
            (schema_of::<ChangeRoleBody>(), users::ROLE_FIELDS),
            (
                schema_of::<RegisterCrewMemberBody>(),
                crew_members::REGISTER_FIELDS,
            ),
            (schema_of::<StartJobThreadBody>(), threads::START_FIELDS),
            (schema_of::<StartOtherThreadBody>(), threads::START_FIELDS),
            (schema_of::<PostMessageBody>(), threads::MESSAGE_FIELDS),
            (schema_of::<MarkReadBody>(), threads::READ_FIELDS),
            (schema_of::<AddressBody>(), crate::parse::ADDRESS_FIELDS),
            (schema_of::<MoneyBody>(), &["amount_minor", "currency"]),
            (
                schema_of::<TimeWindowBody>(),
                &["start", "end", "time_zone"],
            ),
        ];
        for (schema, fields) in pairs {
            assert_eq!(properties(&schema), owned(fields), "{schema}");
            assert_eq!(schema["additionalProperties"], json!(false), "{schema}");
        }
    }

    /// The documented required fields are the ones the parser asks for in an empty body.
    #[test]
    fn documented_required_fields_are_the_parsed_required_fields() {
        let empty = Map::<String, Value>::new;
        let checks: Vec<(Value, platform::problem::Problem)> = vec![
            (
                schema_of::<RegisterCustomerBody>(),
                customers::parse_register(empty()).unwrap_err(),
            ),
            (
                schema_of::<CreateJobBody>(),
                jobs::parse_create(empty(), Currency::parse("USD").unwrap()).unwrap_err(),
            ),
            (
                schema_of::<RegisterUserBody>(),
                users::parse_register(empty()).unwrap_err(),
            ),
            (
                schema_of::<RegisterCrewMemberBody>(),
                crew_members::parse_register(empty()).unwrap_err(),
            ),
            (
                schema_of::<StartOtherThreadBody>(),
                threads::parse_start(empty()).unwrap_err(),
            ),
        ];
        for (schema, problem) in checks {
            assert_eq!(required(&schema), missing(problem), "{schema}");
        }
        assert!(customers::parse_contact(empty()).is_ok());
        assert!(required(&schema_of::<UpdateContactBody>()).is_empty());
    }

    fn names<T: ToSchema>() -> Vec<String> {
        schema_of::<T>()["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// Every documented name parses as the domain value it stands for.
    #[test]
    fn documented_names_are_the_domain_names() {
        use domain::enums::{CustomerStatus, ReferralSource, Role, ServiceType};
        for name in names::<ReferralSourceName>() {
            assert!(name.parse::<ReferralSource>().is_ok(), "{name}");
        }
        for name in names::<ServiceTypeName>() {
            assert!(name.parse::<ServiceType>().is_ok(), "{name}");
        }
        for name in names::<CustomerStatusName>() {
            assert!(name.parse::<CustomerStatus>().is_ok(), "{name}");
        }
        for name in names::<RoleName>() {
            assert!(name.parse::<Role>().is_ok(), "{name}");
        }
        assert_eq!(names::<ServiceTypeName>().len(), 6);
    }

    #[test]
    fn a_text_pattern_measures_the_trimmed_text() {
        let pattern = trimmed_text_pattern(1, 3, false);
        assert!(pattern.starts_with('^') && pattern.ends_with('$'));
        assert!(pattern.contains("{0,1}"), "{pattern}");
        assert!(trimmed_text_pattern(0, 20, false).contains(")?"));
    }
}
