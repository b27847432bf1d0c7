//! Response envelopes for the OpenAPI document. The views inside `data` are described in
//! each operation's description (the read-model view types carry no schema).

/// A page of a list.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PageEnvelope {
    /// The items of this page.
    #[schema(value_type = Vec<Object>)]
    data: Vec<serde_json::Value>,
    /// Opaque cursor of the next page (same route, filters and user only); null on the last.
    next_cursor: Option<String>,
    has_more: bool,
    /// The read-model checkpoint this answer reflects (also in `X-Position`).
    position: u64,
    /// Number of items in the whole list, where the read model keeps it cheaply.
    total: Option<u64>,
}

/// One view.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ViewEnvelope {
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// The read-model checkpoint this answer reflects (also in `X-Position`).
    position: u64,
}

/// Customer status filter.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CustomerStatusParam {
    Lead,
    Active,
    Inactive,
}

/// Referral source filter.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ReferralSourceParam {
    Website,
    Referral,
    Google,
    Repeat,
    Social,
    Other,
}

/// Job status filter.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum JobStatusParam {
    Created,
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
}

/// Aggregate type filter of the event log.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AggregateTypeParam {
    Customer,
    Job,
    User,
    CrewMember,
    Thread,
}
