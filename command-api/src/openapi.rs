//! The OpenAPI 3.1 document of the command API, served at `/openapi.json`.
//!
//! Request bodies are described by the `*Body` types below (the handlers parse the same
//! fields by hand, to list every bad field at once; a unit test keeps both lists equal).
//! Every command operation documents the same answers: the success body
//! [`CommandAccepted`], and problem documents for 400, 401, 403, 404, 409, 412, 413, 415,
//! 422, 500 and 503.

use std::collections::BTreeMap;

use platform::consistency::POSITION_HEADER;
use platform::problem::{FieldProblem, Problem};
use serde::Deserialize;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema,
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::execute::CommandAccepted;

/// A postal address; `line1` and `city` are required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct AddressBody {
    #[schema(min_length = 1, max_length = 200)]
    line1: String,
    #[schema(max_length = 200)]
    line2: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    city: String,
    #[schema(max_length = 100)]
    region: Option<String>,
    #[schema(max_length = 20)]
    postal_code: Option<String>,
}

/// Money in minor units of the business currency (`SIMPLEPRO_CURRENCY`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct MoneyBody {
    #[schema(minimum = 0)]
    amount_minor: i64,
    #[schema(pattern = "^[A-Za-z]{3}$", example = "USD")]
    currency: String,
}

/// A same-day window, `start` before `end`, as `HH:MM` or `HH:MM:SS`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "describes the JSON the handlers parse")]
pub(crate) struct TimeWindowBody {
    #[schema(
        pattern = "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        example = "08:00"
    )]
    start: String,
    #[schema(
        pattern = "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        example = "12:00"
    )]
    end: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReferralSourceName {
    Website,
    Referral,
    Google,
    Repeat,
    Social,
    Other,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ServiceTypeName {
    LocalMove,
    LongDistance,
    Packing,
    Storage,
    Commercial,
    Other,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CustomerStatusName {
    Lead,
    Active,
    Inactive,
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ThreadKindName {
    Direct,
    Group,
    Job,
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
        #[schema(min_length = 1, max_length = 100)] first_name: String,
        #[schema(min_length = 1, max_length = 100)] last_name: String,
        #[schema(format = Email, max_length = 254)] email: String,
        #[schema(example = "555-123-4567")] phone: String,
        referral_source: ReferralSourceName,
        address: AddressBody,
    }
);
body!(
    /// Only the fields given change; fields equal to the current value are no change.
    UpdateContactBody {
        #[schema(min_length = 1, max_length = 100)] first_name: Option<String>,
        #[schema(min_length = 1, max_length = 100)] last_name: Option<String>,
        #[schema(format = Email, max_length = 254)] email: Option<String>,
        phone: Option<String>,
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
        #[schema(max_length = 2000)] notes: Option<String>,
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
    #[schema(max_length = 500)] reason: Option<String>,
});
body!(AssignCrewBody {
    crew_member_id: Uuid
});
body!(CompleteJobBody {
    actual_revenue: MoneyBody
});
body!(CancelJobBody {
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
});
body!(RegisterUserBody {
    user_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 100)] display_name: String,
    #[schema(format = Email, max_length = 254)] email: String,
    role: RoleName,
});
body!(ChangeRoleBody { role: RoleName });
body!(RegisterCrewMemberBody {
    crew_member_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 100)] name: String,
    skills: Option<Vec<String>>,
    /// The staff user this crew member logs in as.
    user_id: Option<Uuid>,
});
body!(
    /// `direct`: exactly two participants, the id is derived from them (starting it again
    /// answers 200 with the existing thread). `group`: 2–100 participants and a title.
    /// `job`: 1–100 participants and `job_id`. The caller must be a participant.
    StartThreadBody {
        thread_id: Option<Uuid>,
        kind: ThreadKindName,
        job_id: Option<Uuid>,
        participants: Vec<Uuid>,
        #[schema(min_length = 1, max_length = 200)] title: Option<String>,
    }
);
body!(PostMessageBody {
    #[schema(min_length = 1, max_length = 10000)]
    body: String,
});
body!(MarkReadBody {
    #[schema(minimum = 1)]
    up_to_seq: u64,
});

/// One documented command operation.
pub(crate) struct Operation {
    /// `post` or `delete`.
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) tag: &'static str,
    /// Component name of the request body, if the command takes fields.
    pub(crate) body: Option<&'static str>,
    pub(crate) path_ids: &'static [&'static str],
    pub(crate) creates: bool,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
    body: Option<&'static str>,
    path_ids: &'static [&'static str],
    creates: bool,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        tag,
        body,
        path_ids,
        creates,
    }
}

const ID: &[&str] = &["id"];

/// Every command endpoint, as routed in `routes::router`.
pub(crate) fn operations() -> Vec<Operation> {
    const POST: &str = "post";
    const DELETE: &str = "delete";
    vec![
        op(
            POST,
            "/v1/customers",
            "Register a customer",
            "customers",
            Some("RegisterCustomerBody"),
            &[],
            true,
        ),
        op(
            POST,
            "/v1/customers/{id}/contact",
            "Update a customer's contact details",
            "customers",
            Some("UpdateContactBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/customers/{id}/status",
            "Change a customer's status",
            "customers",
            Some("ChangeCustomerStatusBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/jobs",
            "Create a job",
            "jobs",
            Some("CreateJobBody"),
            &[],
            true,
        ),
        op(
            POST,
            "/v1/jobs/{id}/schedule",
            "Schedule a job",
            "jobs",
            Some("ScheduleJobBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/jobs/{id}/reschedule",
            "Reschedule a job",
            "jobs",
            Some("RescheduleJobBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/jobs/{id}/crew",
            "Assign a crew member to a job",
            "jobs",
            Some("AssignCrewBody"),
            ID,
            false,
        ),
        op(
            DELETE,
            "/v1/jobs/{id}/crew/{crew_member_id}",
            "Unassign a crew member from a job",
            "jobs",
            None,
            &["id", "crew_member_id"],
            false,
        ),
        op(
            POST,
            "/v1/jobs/{id}/start",
            "Start a job",
            "jobs",
            None,
            ID,
            false,
        ),
        op(
            POST,
            "/v1/jobs/{id}/complete",
            "Complete a job",
            "jobs",
            Some("CompleteJobBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/jobs/{id}/cancel",
            "Cancel a job",
            "jobs",
            Some("CancelJobBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/users",
            "Register a staff user",
            "users",
            Some("RegisterUserBody"),
            &[],
            true,
        ),
        op(
            POST,
            "/v1/users/{id}/role",
            "Change a user's role",
            "users",
            Some("ChangeRoleBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/users/{id}/deactivate",
            "Deactivate a user",
            "users",
            None,
            ID,
            false,
        ),
        op(
            POST,
            "/v1/crew-members",
            "Register a crew member",
            "crew-members",
            Some("RegisterCrewMemberBody"),
            &[],
            true,
        ),
        op(
            POST,
            "/v1/crew-members/{id}/deactivate",
            "Deactivate a crew member",
            "crew-members",
            None,
            ID,
            false,
        ),
        op(
            POST,
            "/v1/threads",
            "Start a thread",
            "threads",
            Some("StartThreadBody"),
            &[],
            true,
        ),
        op(
            POST,
            "/v1/threads/{id}/messages",
            "Post a message",
            "threads",
            Some("PostMessageBody"),
            ID,
            false,
        ),
        op(
            POST,
            "/v1/threads/{id}/read",
            "Mark a thread's messages read",
            "threads",
            Some("MarkReadBody"),
            ID,
            false,
        ),
    ]
}

fn schemas() -> Vec<(String, RefOr<Schema>)> {
    fn entry<T: ToSchema>() -> (String, RefOr<Schema>) {
        (T::name().into_owned(), T::schema())
    }
    vec![
        entry::<AddressBody>(),
        entry::<MoneyBody>(),
        entry::<TimeWindowBody>(),
        entry::<ReferralSourceName>(),
        entry::<ServiceTypeName>(),
        entry::<CustomerStatusName>(),
        entry::<RoleName>(),
        entry::<ThreadKindName>(),
        entry::<RegisterCustomerBody>(),
        entry::<UpdateContactBody>(),
        entry::<ChangeCustomerStatusBody>(),
        entry::<CreateJobBody>(),
        entry::<ScheduleJobBody>(),
        entry::<RescheduleJobBody>(),
        entry::<AssignCrewBody>(),
        entry::<CompleteJobBody>(),
        entry::<CancelJobBody>(),
        entry::<RegisterUserBody>(),
        entry::<ChangeRoleBody>(),
        entry::<RegisterCrewMemberBody>(),
        entry::<StartThreadBody>(),
        entry::<PostMessageBody>(),
        entry::<MarkReadBody>(),
        entry::<CommandAccepted>(),
        entry::<Problem>(),
        entry::<FieldProblem>(),
    ]
}

fn string_schema(format: Option<KnownFormat>) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(format.map(SchemaFormat::KnownFormat))
            .build(),
    )
}

fn header_param(name: &str, description: &str, schema: Schema) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn accepted(description: &str) -> utoipa::openapi::Response {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("CommandAccepted")))
            .build(),
    );
    let headers = [
        (POSITION_HEADER, "Global position of the last event (when known), as the body's `position`: pass it to the query API as `min_position` or `X-Min-Position`.", Type::Integer),
        ("Idempotent-Replayed", "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.", Type::String),
        ("X-Correlation-Id", "The request's correlation id, recorded on its events.", Type::String),
    ];
    for (name, text, kind) in headers {
        let mut header = Header::new(ObjectBuilder::new().schema_type(kind).build());
        header.description = Some(text.to_owned());
        response = response.header(name, header);
    }
    response.build()
}

fn command_operation(operation: &Operation) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .summary(Some(operation.summary))
        .operation_id(Some(
            operation.summary.to_lowercase().replace(['\'', ' '], "_"),
        ))
        .tag(operation.tag)
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    for id in operation.path_ids {
        builder = builder.parameter(
            ParameterBuilder::new()
                .name(*id)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("UUID of the aggregate; a malformed one is a 400"))
                .schema(Some(string_schema(Some(KnownFormat::Uuid))))
                .build(),
        );
    }
    builder = builder
        .parameter(header_param(
            "If-Match",
            "The version the client read (`3` or `\"3\"`); a stale one is a 412.",
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^(W/)?\"?[0-9]{1,19}\"?$"))
                    .build(),
            ),
        ))
        .parameter(header_param(
            "Idempotency-Key",
            "1–200 visible ASCII characters; a retry with the same key and request gets the first answer.",
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(200))
                    .pattern(Some("^[!-~]{1,200}$"))
                    .build(),
            ),
        ))
        .parameter(header_param(
            "X-Correlation-Id",
            "Kept when 1–200 visible ASCII characters, else a new one is made; echoed back.",
            string_schema(None),
        ));
    if let Some(body) = operation.body {
        builder = builder.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(body)))
                        .build(),
                )
                .build(),
        ));
    }
    if operation.creates {
        builder = builder.response("201", accepted("Created")).response(
            "200",
            accepted("Nothing new to create (an existing direct thread)"),
        );
    } else {
        builder = builder.response(
            "200",
            accepted("Accepted; `event_ids` is empty when nothing changed"),
        );
    }
    let problems: BTreeMap<&str, &str> = BTreeMap::from([
        ("400", "Malformed JSON, path id or header"),
        ("401", "Missing or invalid bearer token"),
        ("403", "The caller's role or relation does not allow this command"),
        ("404", "No such aggregate"),
        ("409", "Refused by a business rule (`rule` names it, and the problem `type` ends in it in kebab-case: `job_terminal` is `…/problems/job-terminal`), or a concurrency conflict"),
        ("412", "If-Match is stale; `current_version` is the version now"),
        ("413", "Body over the size limit"),
        ("415", "Body is not application/json"),
        ("422", "Invalid fields, all listed in `errors`, or an Idempotency-Key reused for another request"),
        ("500", "Internal error (logged)"),
        ("503", "A dependency is unavailable, or the service is `overloaded` (more requests in progress than `--max-in-flight`); retry after `Retry-After` seconds"),
    ]);
    for (status, description) in problems {
        builder = builder.response(status, problem(description));
    }
    builder.build()
}

fn plain_operation(
    summary: &str,
    content_type: &str,
    codes: &[&str],
) -> utoipa::openapi::path::Operation {
    let mut builder = OperationBuilder::new()
        .summary(Some(summary))
        .tag("operations");
    for code in codes {
        let response = if *code == "503" {
            problem("A dependency is not answering")
        } else {
            ResponseBuilder::new()
                .description(summary)
                .content(content_type, ContentBuilder::new().build())
                .build()
        };
        builder = builder.response(*code, response);
    }
    builder.build()
}

/// The document served at `/openapi.json`.
pub fn openapi() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for operation in operations() {
        paths = paths.path(
            operation.path,
            PathItem::new(
                if operation.method == "delete" {
                    HttpMethod::Delete
                } else {
                    HttpMethod::Post
                },
                command_operation(&operation),
            ),
        );
    }
    paths = paths
        .path(
            "/healthz",
            PathItem::new(
                HttpMethod::Get,
                plain_operation("Liveness", "application/json", &["200"]),
            ),
        )
        .path(
            "/readyz",
            PathItem::new(
                HttpMethod::Get,
                plain_operation(
                    "Readiness of MongoDB and NATS",
                    "application/json",
                    &["200", "503"],
                ),
            ),
        )
        .path(
            "/metrics",
            PathItem::new(
                HttpMethod::Get,
                plain_operation("Prometheus metrics", "text/plain", &["200"]),
            ),
        )
        .path(
            "/openapi.json",
            PathItem::new(
                HttpMethod::Get,
                plain_operation("This document", "application/json", &["200"]),
            ),
        );
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas())
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("SimplePro command API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Commands of SimplePro. Each accepted command answers `CommandAccepted`; \
                     errors are application/problem+json documents.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes;

    /// The documented body fields are exactly the fields the handler parses.
    #[test]
    fn documented_bodies_list_the_parsed_fields() {
        let pairs: &[(&str, &[&str])] = &[
            ("RegisterCustomerBody", routes::customers::REGISTER_FIELDS),
            ("UpdateContactBody", routes::customers::CONTACT_FIELDS),
            ("ChangeCustomerStatusBody", routes::customers::STATUS_FIELDS),
            ("CreateJobBody", routes::jobs::CREATE_FIELDS),
            ("ScheduleJobBody", routes::jobs::SCHEDULE_FIELDS),
            ("RescheduleJobBody", routes::jobs::RESCHEDULE_FIELDS),
            ("AssignCrewBody", routes::jobs::ASSIGN_FIELDS),
            ("CompleteJobBody", routes::jobs::COMPLETE_FIELDS),
            ("CancelJobBody", routes::jobs::CANCEL_FIELDS),
            ("RegisterUserBody", routes::users::REGISTER_FIELDS),
            ("ChangeRoleBody", routes::users::ROLE_FIELDS),
            (
                "RegisterCrewMemberBody",
                routes::crew_members::REGISTER_FIELDS,
            ),
            ("StartThreadBody", routes::threads::START_FIELDS),
            ("PostMessageBody", routes::threads::MESSAGE_FIELDS),
            ("MarkReadBody", routes::threads::READ_FIELDS),
        ];
        let document = serde_json::to_value(openapi()).unwrap();
        for (schema, fields) in pairs {
            let properties = &document["components"]["schemas"][schema]["properties"];
            let mut documented: Vec<&str> = properties
                .as_object()
                .unwrap_or_else(|| panic!("{schema} has no properties"))
                .keys()
                .map(String::as_str)
                .collect();
            documented.sort();
            let mut parsed = fields.to_vec();
            parsed.sort();
            assert_eq!(documented, parsed, "{schema}");
            assert_eq!(
                document["components"]["schemas"][schema]["additionalProperties"],
                serde_json::json!(false),
                "{schema}"
            );
        }
        let mut documented_bodies: Vec<&str> = operations().iter().filter_map(|o| o.body).collect();
        documented_bodies.sort();
        let mut checked: Vec<&str> = pairs.iter().map(|(schema, _)| *schema).collect();
        checked.sort();
        assert_eq!(documented_bodies, checked);
    }

    /// Every accepted command documents its position by the name the query API reports it.
    #[test]
    fn every_command_documents_the_position_header() {
        let document = serde_json::to_value(openapi()).unwrap();
        for operation in operations() {
            let responses = &document["paths"][operation.path][operation.method]["responses"];
            let accepted: Vec<_> = ["200", "201"]
                .into_iter()
                .filter_map(|status| responses.get(status))
                .collect();
            assert!(!accepted.is_empty(), "{}", operation.path);
            for response in accepted {
                assert!(
                    response["headers"].get(POSITION_HEADER).is_some(),
                    "{}",
                    operation.path
                );
            }
        }
    }

    #[test]
    fn every_command_documents_bearer_auth_and_all_problem_statuses() {
        let document = serde_json::to_value(openapi()).unwrap();
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for operation in operations() {
            let documented = &document["paths"][operation.path][operation.method];
            assert!(
                documented["security"][0].get("bearer").is_some(),
                "{}",
                operation.path
            );
            for status in [
                "400", "401", "403", "404", "409", "412", "413", "415", "422", "503",
            ] {
                assert!(
                    documented["responses"].get(status).is_some(),
                    "{} {status}",
                    operation.path
                );
            }
        }
    }
}
