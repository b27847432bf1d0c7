//! The OpenAPI document of the query API, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
    modifiers(&BearerAuth),
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

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
