//! The schemas of the answers and filters, for the OpenAPI document.
//!
//! The read-model views (`read_models::query::views`) are plain `Serialize` types without a
//! schema; the `*View`/`*Item` types here describe the JSON they serialize to, and a test
//! (`tests/api/schemas.rs`) reads real answers into them with unknown fields refused.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
pub use platform::openapi::{CustomerStatusName, ReferralSourceName, ServiceTypeName};
use serde::Deserialize;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

/// A page of a list of `T`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON respond::PageBody writes")]
pub struct PageEnvelope<T: ToSchema> {
    /// The items of this page.
    data: Vec<T>,
    /// Opaque cursor of the next page (same route, filters and user only); null on the last.
    next_cursor: Option<String>,
    has_more: bool,
    /// The read-model checkpoint this answer reflects (also in `X-Position`).
    position: u64,
    /// Number of items in the whole list, where the read model keeps it cheaply.
    #[schema(required = false)]
    total: Option<u64>,
}

/// One view of `T`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the JSON respond::ViewBody writes")]
pub struct ViewEnvelope<T: ToSchema> {
    data: T,
    /// The read-model checkpoint this answer reflects (also in `X-Position`).
    position: u64,
}

/// One message of a live stream of `T`, as an event-stream parser reads it: `event` is
/// `update`, `id` is `<position>.<fingerprint>` (sent back as `Last-Event-ID` to resume), and
/// `data` is the JSON body the matching `GET` answers, a [`ViewEnvelope`] of `T`, given as
/// `contentSchema`. Heartbeats are comments, not messages.
fn live_update<T: ToSchema>() -> RefOr<Schema> {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let body =
        serde_json::to_value(<ViewEnvelope<T> as PartialSchema>::schema()).unwrap_or_default();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "One message of the stream, as an event-stream parser reads it.",
        ))
        .property("event", text().enum_values(Some(["update"])))
        .required("event")
        .property(
            "id",
            text()
                .pattern(Some("^[0-9]+\\.[0-9a-f]{16}$"))
                .description(Some("`<position>.<fingerprint>`: the followed read model's position and a fingerprint of the view; send it back as `Last-Event-ID` to resume.")),
        )
        .required("id")
        .property(
            "data",
            text()
                .content_media_type("application/json")
                // `contentSchema` (JSON Schema 2020-12) has no field in utoipa's `Object`; its
                // extensions are written into the schema as they are named.
                .extensions(Some(Extensions::from_iter([("contentSchema", body)])))
                .description(Some("The body the matching `GET` answers: `{data, position}`.")),
        )
        .required("data")
        .into()
}

/// A message of a live stream of one view ([`live_update`]).
macro_rules! live_update {
    ($(#[$meta:meta])* $name:ident of $view:ty) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                live_update::<$view>()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((<$view>::name().into_owned(), <$view>::schema()));
                <$view>::schemas(schemas);
            }
        }
    };
}

live_update!(
    /// A message of `GET /v1/live/dashboard`.
    DashboardUpdate of DashboardView
);
live_update!(
    /// A message of `GET /v1/live/calendar/week/{date}`.
    CalendarWeekUpdate of CalendarWeekView
);
live_update!(
    /// A message of `GET /v1/live/me/unread-count`.
    UnreadCountUpdate of UnreadCountView
);

/// Job status filter.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatusParam {
    Created,
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
}

/// Aggregate type filter of the event log.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateTypeParam {
    Customer,
    Job,
    User,
    CrewMember,
    Thread,
}

/// `direct`, `group` or `job`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadKindName {
    Direct,
    Group,
    Job,
}

macro_rules! view {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code, reason = "describes the JSON of a read-model view")]
        pub struct $name {
            $($(#[$field_meta])* $field: $ty),*
        }
    };
}

view!(
    /// Counts for one local date or summed over a range.
    StatsView {
        jobs_created: u64,
        jobs_scheduled: u64,
        jobs_completed: u64,
        jobs_cancelled: u64,
        revenue_minor: i64,
        /// `revenue_minor / jobs_completed` (0 when none), rounded down.
        average_job_value_minor: i64,
        /// Customers registered that day.
        leads: u64,
        /// Of those customers, how many have completed a first job by now.
        conversions: u64,
        /// Jobs (not cancelled) scheduled for that day.
        planned_jobs: u64,
        /// Of those, how many have at least one crew member.
        crewed_jobs: u64,
    }
);
view!(
    /// The stats of one local date.
    DayStatsView {
        date: NaiveDate,
        jobs_created: u64,
        jobs_scheduled: u64,
        jobs_completed: u64,
        jobs_cancelled: u64,
        revenue_minor: i64,
        average_job_value_minor: i64,
        leads: u64,
        conversions: u64,
        planned_jobs: u64,
        crewed_jobs: u64,
    }
);
view!(ServiceTypeStatView {
    service_type: ServiceTypeName,
    completed: u64,
    revenue_minor: i64,
});
view!(LeadSourceStatView {
    source: ReferralSourceName,
    leads: u64,
    conversions: u64,
});
view!(CrewStatView {
    crew_member_id: Uuid,
    name: String,
    completed_jobs: u64,
});
view!(MonthRevenueView {
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: String,
    revenue_minor: i64,
    completed: u64,
});
view!(
    /// Dashboard for the local dates `from..=to`, plus `today` and a 12-month revenue chart.
    DashboardView {
        from: NaiveDate,
        to: NaiveDate,
        totals: StatsView,
        /// One entry per date of `from..=to`, in order.
        days: Vec<DayStatsView>,
        today: DayStatsView,
        service_types: Vec<ServiceTypeStatView>,
        lead_sources: Vec<LeadSourceStatView>,
        crew: Vec<CrewStatView>,
        /// The 12 months ending with the month of `today`, oldest first.
        monthly_revenue: Vec<MonthRevenueView>,
    }
);
view!(
    /// A same-day window in the IANA zone `time_zone`.
    WindowView {
        #[schema(pattern = "^[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?$")]
        start: String,
        #[schema(pattern = "^[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?$")]
        end: String,
        time_zone: String,
    }
);
view!(CrewRefView {
    crew_member_id: Uuid,
    name: String,
});
view!(CalendarJobView {
    job_id: Uuid,
    date: NaiveDate,
    window: WindowView,
    customer_id: Uuid,
    customer_name: String,
    service_type: ServiceTypeName,
    crew: Vec<CrewRefView>,
    status: JobStatusParam,
});
view!(CalendarDayView {
    date: NaiveDate,
    /// Jobs on the day that are not cancelled.
    scheduled: u64,
    cancelled: u64,
    /// Sorted by window start, then job id; cancelled jobs stay listed.
    jobs: Vec<CalendarJobView>,
});
view!(
    /// One Monday-to-Sunday week of scheduled jobs.
    CalendarWeekView {
        week_start: NaiveDate,
        /// Seven days, Monday first.
        days: Vec<CalendarDayView>,
    }
);
view!(UnreadCountView {
    user_id: Uuid,
    /// Messages by others after the user's read marker, over all the user's threads.
    unread: u64,
    /// Threads with at least one unread message.
    unread_threads: u64,
    /// Threads the user takes part in.
    threads: u64,
});
view!(ParticipantView {
    user_id: Uuid,
    name: String,
});
view!(
    /// One thread in the caller's inbox.
    ThreadItem {
        thread_id: Uuid,
        kind: ThreadKindName,
        job_id: Option<Uuid>,
        title: Option<String>,
        /// Every participant but the caller, for direct threads; empty for the others.
        participants: Vec<ParticipantView>,
        unread: u64,
        last_seq: u64,
        last_message_at: Option<DateTime<Utc>>,
        /// The first 100 characters of the last message.
        preview: Option<String>,
        last_author_id: Option<Uuid>,
        activity_at: DateTime<Utc>,
    }
);
view!(MessageItem {
    seq: u64,
    message_id: Uuid,
    author_id: Uuid,
    author_name: String,
    body: String,
    posted_at: DateTime<Utc>,
});
view!(CustomerItem {
    customer_id: Uuid,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    referral_source: ReferralSourceName,
    status: CustomerStatusName,
    created_at: DateTime<Utc>,
    /// Jobs created for the customer, whatever their status.
    job_count: u64,
    /// Sum of the actual revenue of the customer's completed jobs.
    lifetime_revenue_minor: i64,
});
view!(JobItem {
    job_id: Uuid,
    customer_id: Uuid,
    customer_name: String,
    service_type: ServiceTypeName,
    status: JobStatusParam,
    scheduled_date: Option<NaiveDate>,
    window: Option<WindowView>,
    /// Sorted by crew member id.
    crew: Vec<CrewRefView>,
    estimated_price_minor: i64,
    /// Actual revenue once completed.
    revenue_minor: Option<i64>,
    created_at: DateTime<Utc>,
    /// Scheduled date, or the local creation date while unscheduled.
    list_date: NaiveDate,
});
