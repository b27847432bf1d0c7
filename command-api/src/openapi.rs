//! The header of the OpenAPI 3.1 document served at `/openapi.json`: title, security scheme,
//! the shared components and the routes merged in by `platform` (health). The operations
//! come from the handlers' `#[utoipa::path]`s through `routes::documented`.

use domain::money::Currency;
use platform::openapi::BearerAuth;
use platform::problem::{FieldProblem, Problem};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr, Required};
use utoipa::{Modify, ToSchema};

use crate::execute::CommandAccepted;
use crate::routes;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "SimplePro command API",
        description = "Commands of SimplePro. Each accepted command answers `CommandAccepted`; errors are application/problem+json documents.",
    ),
    paths(platform::openapi::healthz, platform::openapi::readyz),
    components(schemas(CommandAccepted, Problem, FieldProblem)),
    modifiers(&BearerAuth),
    tags(
        (name = "customers", description = "Customers: registration, contact details, status"),
        (name = "jobs", description = "Jobs and their lifecycle"),
        (name = "users", description = "Staff users"),
        (name = "crew-members", description = "Crew members"),
        (name = "threads", description = "Message threads"),
        (name = "service", description = "Health, metrics and this document"),
    )
)]
pub(crate) struct ApiHeader;

/// The document served at `/openapi.json`, for a service whose business currency is
/// `currency` (the only one money fields accept).
pub fn openapi(currency: Currency) -> OpenApi {
    let mut document = routes::documented().into_openapi();
    BusinessCurrency(currency).modify(&mut document);
    OptionalBodies.modify(&mut document);
    document
}

/// A request without a body is read as `{}`, so a body none of whose fields is required
/// may be left out.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_ref() else {
            return;
        };
        let needs_fields = |body: &RequestBody| {
            body.content.values().any(|content| match &content.schema {
                Some(RefOr::Ref(reference)) => {
                    let name = reference
                        .ref_location
                        .rsplit('/')
                        .next()
                        .unwrap_or_default();
                    match components.schemas.get(name) {
                        Some(RefOr::T(Schema::Object(object))) => !object.required.is_empty(),
                        _ => true,
                    }
                }
                _ => true,
            })
        };
        let mut optional = Vec::new();
        for (path, item) in &openapi.paths.paths {
            for (method, operation) in item_operations(item) {
                if operation
                    .request_body
                    .as_ref()
                    .is_some_and(|b| !needs_fields(b))
                {
                    optional.push((path.clone(), method));
                }
            }
        }
        for (path, method) in optional {
            let Some(item) = openapi.paths.paths.get_mut(&path) else {
                continue;
            };
            let operation = match method {
                "delete" => item.delete.as_mut(),
                _ => item.post.as_mut(),
            };
            if let Some(body) = operation.and_then(|o| o.request_body.as_mut()) {
                body.required = Some(Required::False);
            }
        }
    }
}

/// The command operations of a path item (commands are `POST` or `DELETE`).
fn item_operations(item: &PathItem) -> impl Iterator<Item = (&'static str, &Operation)> {
    [
        ("post", item.post.as_ref()),
        ("delete", item.delete.as_ref()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|o| (method, o)))
}

/// Money fields name the one currency the service accepts (in any letter case).
struct BusinessCurrency(Currency);

impl Modify for BusinessCurrency {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let money = components
            .schemas
            .get_mut(&routes::bodies::MoneyBody::name().into_owned());
        if let Some(RefOr::T(Schema::Object(money))) = money {
            let currency = ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(routes::bodies::currency_pattern(self.0)))
                .examples([self.0.as_str()])
                .build();
            money
                .properties
                .insert("currency".to_owned(), currency.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use platform::consistency::POSITION_HEADER;
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(openapi(Currency::parse("USD").unwrap())).unwrap()
    }

    /// The command operations: every documented operation outside `service`.
    fn commands(document: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation["tags"][0] != "service" {
                    found.push((path.clone(), method.clone(), operation.clone()));
                }
            }
        }
        found
    }

    /// Every accepted command documents its position by the name the query API reports it.
    #[test]
    fn every_command_documents_the_position_header() {
        let document = document();
        let commands = commands(&document);
        assert_eq!(commands.len(), 19);
        for (path, _, operation) in commands {
            let responses = &operation["responses"];
            let accepted: Vec<_> = ["200", "201"]
                .into_iter()
                .filter_map(|status| responses.get(status))
                .collect();
            assert!(!accepted.is_empty(), "{path}");
            for response in accepted {
                assert!(response["headers"].get(POSITION_HEADER).is_some(), "{path}");
            }
        }
    }

    #[test]
    fn every_command_documents_bearer_auth_and_all_problem_statuses() {
        let document = document();
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for (path, _, operation) in commands(&document) {
            assert!(operation["security"][0].get("bearer").is_some(), "{path}");
            for status in [
                "400", "401", "403", "404", "409", "412", "413", "415", "422", "503",
            ] {
                assert!(
                    operation["responses"].get(status).is_some(),
                    "{path} {status}"
                );
            }
        }
    }

    #[test]
    fn money_fields_name_the_business_currency() {
        let document = serde_json::to_value(openapi(Currency::parse("EUR").unwrap())).unwrap();
        let currency = &document["components"]["schemas"]["MoneyBody"]["properties"]["currency"];
        let pattern = currency["pattern"].as_str().unwrap();
        assert!(pattern.contains("[Ee][Uu][Rr]"), "{pattern}");
    }
}
