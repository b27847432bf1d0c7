//! The header of the query API's OpenAPI document: title, security scheme, shared
//! components and the routes merged in by `platform` (health). The operations come from
//! the handlers' `#[utoipa::path]`s through `routes::routes`.

use platform::consistency::POSITION_HEADER;
use platform::openapi::BearerAuth;
use utoipa::openapi::header::Header;
use utoipa::openapi::{KnownFormat, ObjectBuilder, RefOr, SchemaFormat, Type};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SimplePro query API",
        description = "Read side of SimplePro. Every 200 carries `X-Position` and a body field `position`: the read-model checkpoint it reflects. Pass `min_position` (or `X-Min-Position`) to read your own writes. Lists are keyset-paginated with opaque cursors bound to the route, filters and user. Responses carry a strong `ETag`; send `If-None-Match` to get 304. Errors are `application/problem+json`.",
    ),
    paths(platform::openapi::healthz, platform::openapi::readyz),
    components(schemas(platform::problem::Problem, platform::problem::FieldProblem)),
    modifiers(&BearerAuth),
    tags(
        (name = "reports", description = "Dashboard and calendar"),
        (name = "messages", description = "The caller's inbox and thread messages"),
        (name = "lists", description = "Customers and jobs"),
        (name = "events", description = "The raw event log"),
        (name = "service", description = "Checkpoint, health, metrics and this document"),
    )
)]
pub struct ApiHeader;

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
        let reads = openapi
            .paths
            .paths
            .iter_mut()
            // Streams carry the position in each message, not in a header.
            .filter(|(path, _)| path.starts_with("/v1/") && !path.starts_with("/v1/live/"));
        for (_, item) in reads {
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

/// The document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = routes::routes().into_openapi();
    PositionHeader.modify(&mut document);
    document
}

#[cfg(test)]
mod tests {
    use platform::consistency::{MIN_POSITION_HEADER, MIN_POSITION_PARAM};

    use super::*;

    /// Every read documents the consistency token by the names the service uses.
    #[test]
    fn every_read_documents_the_position_names() {
        let document = serde_json::to_value(openapi()).unwrap();
        let paths = document["paths"].as_object().unwrap();
        let reads: Vec<_> = paths
            .iter()
            // The views as of a position read the log, not the read models.
            .filter(|(path, _)| {
                path.starts_with("/v1/")
                    && !path.starts_with("/v1/live/")
                    && !path.ends_with("/as-of")
            })
            .collect();
        assert_eq!(reads.len(), 11);
        let streams: Vec<_> = paths
            .iter()
            .filter(|(path, _)| path.starts_with("/v1/live/"))
            .collect();
        assert_eq!(streams.len(), 3);
        for (path, item) in streams {
            let params = item["get"]["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "Last-Event-ID" && p["in"] == "header"),
                "{path}"
            );
        }
        for (path, item) in reads {
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
