//! OpenAPI pieces both APIs' documents share: the `bearer` security scheme, the health
//! routes of [`crate::http::health_routes`], the outline of a served document, and the
//! closed sets of names (as `domain::enums` spells them) both APIs take or answer.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::{Modify, ToSchema};

use crate::problem::Problem;

/// The `bearer` security scheme (a JWT) both APIs' operations name.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
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

/// What `/healthz` answers.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON crate::http answers")]
pub struct Liveness {
    #[schema(pattern = "^ok$")]
    status: String,
}

/// What `/readyz` answers when MongoDB and NATS answer.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON crate::http answers")]
pub struct Readiness {
    #[schema(pattern = "^ready$")]
    status: String,
    #[schema(pattern = "^ok$")]
    mongodb: String,
    #[schema(pattern = "^ok$")]
    nats: String,
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Liveness))
)]
#[allow(dead_code, reason = "documents a route of crate::http::health_routes")]
pub fn healthz() {}

/// Readiness of MongoDB and NATS.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "service",
    operation_id = "readyz",
    responses(
        (status = 200, description = "MongoDB and NATS answer", body = Readiness),
        (status = 503, description = "A dependency is not answering", body = Problem, content_type = "application/problem+json"),
    )
)]
#[allow(dead_code, reason = "documents a route of crate::http::health_routes")]
pub fn readyz() {}

/// The outline of an OpenAPI document, as `/openapi.json` answers it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON utoipa writes")]
pub struct DocumentOutline {
    #[schema(pattern = r"^3\.1\.")]
    openapi: String,
    info: DocumentInfo,
    /// Operations by path, then by method.
    paths: BTreeMap<String, BTreeMap<String, OperationOutline>>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON utoipa writes")]
pub struct DocumentInfo {
    title: String,
    version: String,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON utoipa writes")]
pub struct OperationOutline {
    /// Answers by status code.
    responses: BTreeMap<String, ResponseOutline>,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON utoipa writes")]
pub struct ResponseOutline {
    description: String,
}

/// How a customer found the company.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferralSourceName {
    Website,
    Referral,
    Google,
    Repeat,
    Social,
    Other,
}

/// The kind of work a job is.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTypeName {
    LocalMove,
    LongDistance,
    Packing,
    Storage,
    Commercial,
    Other,
}

/// Where a customer stands.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CustomerStatusName {
    Lead,
    Active,
    Inactive,
}
