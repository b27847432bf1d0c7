//! `POST /v1/customers`, `…/{id}/contact`, `…/{id}/status`.

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use domain::customer::{Customer, CustomerCommand};
use domain::enums::{CustomerStatus, ReferralSource};
use domain::values::{Address, Email, PersonName, Phone};
use platform::problem::Problem;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::email::Reserved;
use crate::execute::{self, Decision};
use crate::parse::{self, text};
use crate::request::CommandHeaders;
use crate::request::{CommandRequest, PathIds};
use crate::routes::answers::{CommandAnswers, CreateAnswers};
use crate::routes::bodies::{ChangeCustomerStatusBody, RegisterCustomerBody, UpdateContactBody};
use crate::{authz, AppState};

pub(crate) const REGISTER_FIELDS: &[&str] = &[
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "referral_source",
    "address",
];
pub(crate) const CONTACT_FIELDS: &[&str] =
    &["first_name", "last_name", "email", "phone", "address"];
pub(crate) const STATUS_FIELDS: &[&str] = &["status"];

#[derive(Debug)]
pub(crate) struct Registration {
    customer_id: Option<Uuid>,
    first_name: PersonName,
    last_name: PersonName,
    email: Email,
    phone: Phone,
    referral_source: ReferralSource,
    address: Address,
}

pub(crate) fn parse_register(body: Map<String, Value>) -> Result<Registration, Problem> {
    parse::body(body, REGISTER_FIELDS, |f| {
        let customer_id = f.optional("customer_id", parse::uuid);
        let first_name = f.required("first_name", text(PersonName::parse));
        let last_name = f.required("last_name", text(PersonName::parse));
        let email = f.required("email", text(Email::parse));
        let phone = f.required("phone", text(Phone::parse));
        let referral_source = f.required("referral_source", parse::choice);
        let address = f.required("address", parse::address);
        Some(Registration {
            customer_id: customer_id?,
            first_name: first_name?,
            last_name: last_name?,
            email: email?,
            phone: phone?,
            referral_source: referral_source?,
            address: address?,
        })
    })
}

/// Whether `holder` is a registered customer who still uses `email`.
async fn holder_uses_email(app: AppState, holder: Uuid, email: Email) -> Result<bool, Problem> {
    let (state, _) = execute::load::<Customer>(&app, holder).await?;
    Ok(state.customer.is_some_and(|c| c.email == email))
}

async fn reserve(app: &AppState, email: &Email, id: Uuid) -> Result<Reserved, Problem> {
    app.emails
        .reserve(email.as_str(), id, |holder| {
            holder_uses_email(app.clone(), holder, email.clone())
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/customers",
    summary = "Register a customer",
    operation_id = "register_a_customer",
    tag = "customers",
    params(CommandHeaders),
    request_body = RegisterCustomerBody,
    responses(CreateAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(app): State<AppState>,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::manage_customers(&context.caller)?;
    let input = parse_register(request.body)?;
    if let Some(done) = execute::replay::<Customer>(&app, context).await? {
        return Ok(done.respond(true, |_, _| {}));
    }
    let id = input.customer_id.unwrap_or_else(Uuid::now_v7);
    let reserved = reserve(&app, &input.email, id).await?;
    let email = input.email.clone();
    let command = CustomerCommand::Register {
        customer_id: id.into(),
        first_name: input.first_name,
        last_name: input.last_name,
        email: input.email,
        phone: input.phone,
        referral_source: input.referral_source,
        address: input.address,
        registered_at: Utc::now(),
    };
    let result =
        execute::execute::<Customer, _>(&app, context, id, |_| Ok(Decision::Run(command.clone())))
            .await;
    if result.is_err() && reserved == Reserved::New {
        app.emails.release(email.as_str(), id).await;
    }
    Ok(result?.respond(true, |_, _| {}))
}

#[derive(Debug)]
pub(crate) struct ContactUpdate {
    first_name: Option<PersonName>,
    last_name: Option<PersonName>,
    email: Option<Email>,
    phone: Option<Phone>,
    address: Option<Address>,
}

pub(crate) fn parse_contact(body: Map<String, Value>) -> Result<ContactUpdate, Problem> {
    parse::body(body, CONTACT_FIELDS, |f| {
        let first_name = f.optional("first_name", text(PersonName::parse));
        let last_name = f.optional("last_name", text(PersonName::parse));
        let email = f.optional("email", text(Email::parse));
        let phone = f.optional("phone", text(Phone::parse));
        let address = f.optional("address", parse::address);
        Some(ContactUpdate {
            first_name: first_name?,
            last_name: last_name?,
            email: email?,
            phone: phone?,
            address: address?,
        })
    })
}

/// A changed email is reserved before the append and the old one released after it.
#[utoipa::path(
    post,
    path = "/v1/customers/{id}/contact",
    summary = "Update a customer's contact details",
    operation_id = "update_a_customer_s_contact_details",
    tag = "customers",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = UpdateContactBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn update_contact(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::manage_customers(&context.caller)?;
    let id = ids.get("id")?;
    let input = parse_contact(request.body)?;
    if let Some(done) = execute::replay::<Customer>(&app, context).await? {
        return Ok(done.respond(false, |_, _| {}));
    }
    let mut old_email = None;
    let mut reserved = None;
    if let Some(new_email) = &input.email {
        let (state, _) = execute::load::<Customer>(&app, id).await?;
        let Some(current) = state.customer else {
            return Err(Problem::not_found(format!("no such customer {id}")));
        };
        if current.email != *new_email {
            reserved = Some(reserve(&app, new_email, id).await?);
            old_email = Some(current.email);
        }
    }
    let command = CustomerCommand::UpdateContact {
        first_name: input.first_name,
        last_name: input.last_name,
        email: input.email.clone(),
        phone: input.phone,
        address: input.address,
        updated_at: Utc::now(),
    };
    let result =
        execute::execute::<Customer, _>(&app, context, id, |_| Ok(Decision::Run(command.clone())))
            .await;
    match (&result, &input.email) {
        (Err(_), Some(new_email)) if reserved == Some(Reserved::New) => {
            app.emails.release(new_email.as_str(), id).await;
        }
        (Ok(accepted), _) if !accepted.event_ids.is_empty() => {
            if let Some(old) = &old_email {
                app.emails.release(old.as_str(), id).await;
            }
        }
        _ => {}
    }
    Ok(result?.respond(false, |_, _| {}))
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}/status",
    summary = "Change a customer's status",
    operation_id = "change_a_customer_s_status",
    tag = "customers",
    params(("id" = Uuid, Path, description = "UUID of the aggregate; a malformed one is a 400"), CommandHeaders),
    request_body = ChangeCustomerStatusBody,
    responses(CommandAnswers),
    security(("bearer" = []))
)]
pub(crate) async fn change_status(
    State(app): State<AppState>,
    ids: PathIds,
    request: CommandRequest,
) -> Result<Response, Problem> {
    let context = &request.context;
    authz::manage_customers(&context.caller)?;
    let id = ids.get("id")?;
    let status: CustomerStatus = parse::body(request.body, STATUS_FIELDS, |f| {
        f.required("status", parse::choice)
    })?;
    let changed_at = Utc::now();
    let accepted = execute::execute::<Customer, _>(&app, context, id, |_| {
        Ok(Decision::Run(CustomerCommand::ChangeStatus {
            status,
            changed_at,
        }))
    })
    .await?;
    Ok(accepted.respond(false, |_, _| {}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn fields(problem: &Problem) -> Vec<&str> {
        problem.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_complete_registration_parses_into_domain_values() {
        let parsed = parse_register(object(json!({
            "first_name": " Ana ", "last_name": "Silva", "email": "Ana@Example.com",
            "phone": "555-123-4567", "referral_source": "google",
            "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "62701"}
        })))
        .unwrap();
        assert_eq!(parsed.first_name.as_str(), "Ana");
        assert_eq!(parsed.email.as_str(), "ana@example.com");
        assert_eq!(parsed.customer_id, None);
    }

    #[test]
    fn every_bad_registration_field_is_listed_at_once() {
        let problem = parse_register(object(json!({
            "customer_id": "nope", "first_name": "", "email": "no-at-sign",
            "phone": "call me", "referral_source": "tv", "address": {"city": "X", "zip": 1},
            "shoe_size": 42, "nickname": "A"
        })))
        .unwrap_err();
        assert_eq!(problem.status.as_u16(), 422);
        assert_eq!(
            fields(&problem),
            vec![
                "nickname",
                "shoe_size",
                "customer_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "referral_source",
                "address.zip",
                "address.line1",
            ]
        );
        let reasons: Vec<&str> = problem.errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons[0], "unknown field");
        assert_eq!(reasons[4], "is required");
        assert!(reasons[5].contains('@'), "{}", reasons[5]);
    }

    #[test]
    fn address_errors_name_the_nested_field() {
        let problem = parse_contact(object(json!({
            "address": {"line1": "1 Main St", "city": "   "}
        })))
        .unwrap_err();
        assert_eq!(fields(&problem), vec!["address.city"]);
        let problem = parse_contact(object(json!({"address": "1 Main St"}))).unwrap_err();
        assert_eq!(fields(&problem), vec!["address"]);
    }

    #[test]
    fn an_empty_contact_update_is_valid_and_changes_nothing() {
        let parsed = parse_contact(Map::new()).unwrap();
        assert!(parsed.email.is_none() && parsed.address.is_none());
    }

    /// Any JSON value, nested a few levels, with keys drawn from the real field names and
    /// from noise.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            proptest::sample::select(REGISTER_FIELDS.to_vec()).prop_map(str::to_owned),
            proptest::sample::select(vec!["line1", "city", "postal_code", "$where", ""])
                .prop_map(str::to_owned),
            "[a-z_$.]{0,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever the body, parsing answers: values, or a 422 whose every error names a
        /// field of the body's shape (a known field, a path under one, or an unknown key).
        #[test]
        fn any_body_parses_or_names_its_bad_fields(body in proptest::collection::btree_map(
            proptest::strategy::Strategy::prop_map(
                proptest::sample::select(REGISTER_FIELDS.to_vec()),
                str::to_owned,
            ),
            any_json(),
            0..10,
        ), noise in any_json()) {
            let mut body: Map<String, Value> = body.into_iter().collect();
            if let Value::Object(extra) = noise {
                body.extend(extra);
            }
            if let Err(problem) = parse_register(body.clone()) {
                proptest::prop_assert_eq!(problem.status.as_u16(), 422);
                proptest::prop_assert!(!problem.errors.is_empty());
                for error in &problem.errors {
                    let root = error.field.split(['.', '[']).next().unwrap_or_default();
                    // The empty key is named by its JSON spelling.
                    let key = if error.field == "\"\"" { "" } else { error.field.as_str() };
                    proptest::prop_assert!(
                        REGISTER_FIELDS.contains(&root) || body.contains_key(key),
                        "{} is not a field of {:?}", error.field, body
                    );
                    proptest::prop_assert!(!error.reason.is_empty());
                }
            }
        }
    }
}
