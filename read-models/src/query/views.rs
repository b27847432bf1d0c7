//! The views the query functions return (and the reference fold computes): plain
//! `Serialize` types without internal fields.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use domain::calendar::BusinessTimeZone;
use domain::enums::{CustomerStatus, JobStatus, ReferralSource, ServiceType};
use domain::ids::{CrewMemberId, CustomerId, JobId, MessageId, ThreadId, UserId};
use domain::values::TimeWindow;
use serde::{Deserialize, Serialize};

/// Dashboard for the local dates `from..=to`, plus `today` and a 12-month revenue chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardView {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Sums over `from..=to`.
    pub totals: Stats,
    /// One entry per date of `from..=to`, in order.
    pub days: Vec<DayStats>,
    /// The stats of `today` (whatever the range).
    pub today: DayStats,
    /// Completed jobs and their revenue per service type over the range, by service type.
    pub service_types: Vec<ServiceTypeStat>,
    /// Leads registered in the range per referral source, and how many of those converted
    /// (have completed a first job), by source.
    pub lead_sources: Vec<LeadSourceStat>,
    /// Jobs completed in the range per crew member, most first, then by name and id.
    pub crew: Vec<CrewStat>,
    /// The 12 months ending with the month of `today`, oldest first.
    pub monthly_revenue: Vec<MonthRevenue>,
}

/// [`Stats`] of one local date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub stats: Stats,
}

/// Counts for one local date or summed over a range. Events count on the local date they
/// happened; `planned_jobs`/`crewed_jobs` count jobs scheduled *for* the date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub jobs_created: u64,
    pub jobs_scheduled: u64,
    pub jobs_completed: u64,
    pub jobs_cancelled: u64,
    pub revenue_minor: i64,
    /// `revenue_minor / jobs_completed` (0 when none), rounded down.
    pub average_job_value_minor: i64,
    /// Customers registered that day.
    pub leads: u64,
    /// Of the customers registered that day, how many have completed a first job by now.
    pub conversions: u64,
    /// Jobs (not cancelled) scheduled for that day.
    pub planned_jobs: u64,
    /// Of those, how many have at least one crew member.
    pub crewed_jobs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTypeStat {
    pub service_type: ServiceType,
    pub completed: u64,
    pub revenue_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadSourceStat {
    pub source: ReferralSource,
    pub leads: u64,
    pub conversions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrewStat {
    pub crew_member_id: CrewMemberId,
    pub name: String,
    pub completed_jobs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthRevenue {
    /// `YYYY-MM`.
    pub month: String,
    pub revenue_minor: i64,
    pub completed: u64,
}

/// One Monday-to-Sunday week of scheduled jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarWeekView {
    pub week_start: NaiveDate,
    /// Seven days, Monday first.
    pub days: Vec<CalendarDay>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarDay {
    pub date: NaiveDate,
    /// Jobs on the day that are not cancelled.
    pub scheduled: u64,
    pub cancelled: u64,
    /// Sorted by window start, then job id; cancelled jobs stay listed.
    pub jobs: Vec<CalendarJob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarJob {
    pub job_id: JobId,
    pub date: NaiveDate,
    pub window: WindowView,
    pub customer_id: CustomerId,
    pub customer_name: String,
    pub service_type: ServiceType,
    /// Sorted by crew member id.
    pub crew: Vec<CrewRef>,
    pub status: JobStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowView {
    pub start: NaiveTime,
    pub end: NaiveTime,
    /// IANA zone `start` and `end` are local times of.
    pub time_zone: BusinessTimeZone,
}

impl From<&TimeWindow> for WindowView {
    fn from(window: &TimeWindow) -> Self {
        Self {
            start: window.start(),
            end: window.end(),
            time_zone: window.time_zone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrewRef {
    pub crew_member_id: CrewMemberId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadCountView {
    pub user_id: UserId,
    /// Messages by others after the user's read marker, over all the user's threads.
    pub unread: u64,
    /// Threads with at least one unread message.
    pub unread_threads: u64,
    /// Threads the user takes part in.
    pub threads: u64,
}

/// `direct`, `group` or `job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadKindView {
    Direct,
    Group,
    Job,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: UserId,
    pub name: String,
}

/// One thread in a user's inbox. Lists are sorted by `activity_at` (last message, or start
/// when there is none) newest first, then thread id descending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadListItem {
    pub thread_id: ThreadId,
    pub kind: ThreadKindView,
    pub job_id: Option<JobId>,
    pub title: Option<String>,
    /// Every participant but the user, for direct threads; empty for the others.
    pub participants: Vec<Participant>,
    pub unread: u64,
    pub last_seq: u64,
    #[serde(with = "crate::instant::optional")]
    pub last_message_at: Option<DateTime<Utc>>,
    /// The first 100 characters of the last message.
    pub preview: Option<String>,
    pub last_author_id: Option<UserId>,
    #[serde(with = "crate::instant")]
    pub activity_at: DateTime<Utc>,
}

/// A thread's header; the query API checks participation with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMeta {
    pub thread_id: ThreadId,
    pub kind: ThreadKindView,
    pub job_id: Option<JobId>,
    pub title: Option<String>,
    /// Sorted by user id.
    pub participants: Vec<Participant>,
    pub last_seq: u64,
    pub started_by: UserId,
    #[serde(with = "crate::instant")]
    pub started_at: DateTime<Utc>,
}

impl ThreadMeta {
    pub fn is_participant(&self, user: UserId) -> bool {
        self.participants.iter().any(|p| p.user_id == user)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageItem {
    pub seq: u64,
    pub message_id: MessageId,
    pub author_id: UserId,
    pub author_name: String,
    pub body: String,
    #[serde(with = "crate::instant")]
    pub posted_at: DateTime<Utc>,
}

/// Customer list filters; `search` ranks by relevance instead of creation time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFilter {
    pub status: Option<CustomerStatus>,
    pub source: Option<ReferralSource>,
    pub search: Option<String>,
}

/// Customers are listed newest first (`created_at` desc, then id desc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSummary {
    pub customer_id: CustomerId,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub referral_source: ReferralSource,
    pub status: CustomerStatus,
    #[serde(with = "crate::instant")]
    pub created_at: DateTime<Utc>,
    /// Jobs created for the customer, whatever their status.
    pub job_count: u64,
    /// Sum of the actual revenue of the customer's completed jobs.
    pub lifetime_revenue_minor: i64,
}

/// Job list filters. `from`/`to` bound the job's list date (scheduled date, or local
/// creation date while unscheduled), inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub crew: Option<CrewMemberId>,
    pub customer: Option<CustomerId>,
}

/// Jobs are listed by `list_date` desc, then `created_at` desc, then id desc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: JobId,
    pub customer_id: CustomerId,
    pub customer_name: String,
    pub service_type: ServiceType,
    pub status: JobStatus,
    pub scheduled_date: Option<NaiveDate>,
    pub window: Option<WindowView>,
    /// Sorted by crew member id.
    pub crew: Vec<CrewRef>,
    pub estimated_price_minor: i64,
    /// Actual revenue once completed.
    pub revenue_minor: Option<i64>,
    #[serde(with = "crate::instant")]
    pub created_at: DateTime<Utc>,
    /// Scheduled date, or the local creation date while unscheduled: what lists sort and
    /// date filters apply on.
    pub list_date: NaiveDate,
}
