//! The OpenAPI document of the query API, generated from the handlers' annotations.

use axum::Json;
use platform::consistency::POSITION_HEADER;
use utoipa::openapi::header::Header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{KnownFormat, ObjectBuilder, RefOr, SchemaFormat, Type};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SimplePro query API",
        description = "Read side of SimplePro. Every 200 carries `X-Position` and a body field `position`: the read-model checkpoint it reflects. Pass `min_position` (or `X-Min-Position`) to read your own writes. Lists are keyset-paginated with opaque cursors bound to the route, filters and user. Responses carry a strong `ETag`; send `If-None-Match` to get 304. Errors are `application/problem+json`.",
    ),
    paths(
        routes::views::dashboard,
        routes::views::calendar_week,
        routes::inbox::my_threads,
        routes::inbox::my_unread_count,
        routes::inbox::thread_messages,
        routes::lists::list_customers,
        routes::lists::get_customer,
        routes::lists::list_jobs,
        routes::lists::get_job,
        routes::events::list_events,
        routes::service::checkpoint,
    ),
    components(schemas(platform::problem::Problem, platform::problem::FieldProblem)),
    modifiers(&BearerAuth, &PositionHeader),
    tags(
        (name = "reports", description = "Dashboard and calendar"),
        (name = "messages", description = "The caller's inbox and thread messages"),
        (name = "lists", description = "Customers and jobs"),
        (name = "events", description = "The raw event log"),
        (name = "service", description = "Checkpoint"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents `X-Position` ([`POSITION_HEADER`]) on every 200 answer.
struct PositionHeader;

impl Modify for PositionHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schema = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(0))
            .build();
        let mut header = Header::new(schema);
        header.description = Some(
            "The read-model checkpoint this answer reflects, as the body's `position`.".to_owned(),
        );
        for item in openapi.paths.paths.values_mut() {
            let Some(operation) = item.get.as_mut() else {
                continue;
            };
            if let Some(RefOr::T(ok)) = operation.responses.responses.get_mut("200") {
                ok.headers
                    .insert(POSITION_HEADER.to_owned(), header.clone());
            }
        }
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use platform::consistency::{MIN_POSITION_HEADER, MIN_POSITION_PARAM};

    use super::*;

    /// Every read documents the consistency token by the names the service uses.
    #[test]
    fn every_read_documents_the_position_names() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 11);
        for (path, item) in paths {
            let get = &item["get"];
            let params = get["parameters"].as_array().unwrap();
            let has = |name: &str, place: &str| {
                params.iter().any(|p| p["name"] == name && p["in"] == place)
            };
            assert!(has(MIN_POSITION_PARAM, "query"), "{path}");
            assert!(has(MIN_POSITION_HEADER, "header"), "{path}");
            let headers = get["responses"]["200"]["headers"].as_object().unwrap();
            assert!(headers.contains_key(POSITION_HEADER), "{path}");
            assert!(headers.contains_key("ETag"), "{path}");
        }
    }
}
