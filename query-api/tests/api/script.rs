//! Domain events for scripted histories, in the shapes the domain stores.

use chrono::{DateTime, NaiveDate, Utc};
use domain::crew_member::CrewMemberEvent;
use domain::customer::CustomerEvent;
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use domain::job::JobEvent;
use domain::thread::ThreadEvent;
use domain::user::UserEvent;
use serde_json::json;

use crate::projection::{event, Scripted};

pub(crate) fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

pub(crate) fn new_id<T: From<uuid::Uuid>>() -> T {
    T::from(uuid::Uuid::now_v7())
}

pub(crate) fn user_registered(
    user: UserId,
    name: &str,
    role: &str,
    when: DateTime<Utc>,
) -> Scripted {
    let email = format!("{}@staff.example.com", &user.to_string()[..8]);
    event::<UserEvent>(
        "user",
        user,
        when,
        json!({"type": "UserRegistered", "data": {
            "user_id": user, "display_name": name, "email": email, "role": role, "registered_at": when,
        }}),
    )
}

pub(crate) fn crew_registered(
    crew: CrewMemberId,
    name: &str,
    user: Option<UserId>,
    when: DateTime<Utc>,
) -> Scripted {
    event::<CrewMemberEvent>(
        "crew_member",
        crew,
        when,
        json!({"type": "CrewMemberRegistered", "data": {
            "crew_member_id": crew, "name": name, "skills": [], "user_id": user, "registered_at": when,
        }}),
    )
}

pub(crate) fn customer_registered(
    customer: CustomerId,
    first: &str,
    last: &str,
    source: &str,
    when: DateTime<Utc>,
) -> Scripted {
    let email = format!(
        "{}.{}.{}@example.com",
        first.to_lowercase(),
        last.to_lowercase(),
        &customer.to_string()[..8]
    );
    event::<CustomerEvent>(
        "customer",
        customer,
        when,
        json!({"type": "CustomerRegistered", "data": {
            "customer_id": customer, "first_name": first, "last_name": last, "email": email,
            "phone": "+1 555 010 0000", "referral_source": source,
            "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345"},
            "status": "lead", "registered_at": when,
        }}),
    )
}

pub(crate) fn customer_status(
    customer: CustomerId,
    from: &str,
    to: &str,
    when: DateTime<Utc>,
) -> Scripted {
    event::<CustomerEvent>(
        "customer",
        customer,
        when,
        json!({"type": "CustomerStatusChanged", "data": {
            "from": from, "to": to, "changed_at": when,
        }}),
    )
}

pub(crate) fn job_created(
    job: JobId,
    customer: CustomerId,
    service: &str,
    price: i64,
    when: DateTime<Utc>,
) -> Scripted {
    let address = json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345"});
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "JobCreated", "data": {
            "job_id": job, "customer_id": customer, "service_type": service,
            "origin": address, "destination": address,
            "estimated_price": {"amount_minor": price, "currency": "USD"},
            "notes": null, "created_at": when,
        }}),
    )
}

pub(crate) fn job_scheduled(
    job: JobId,
    date: NaiveDate,
    start: &str,
    end: &str,
    when: DateTime<Utc>,
) -> Scripted {
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "JobScheduled", "data": {
            "date": date,
            "window": {"start": start, "end": end, "time_zone": "America/New_York"},
            "scheduled_at": when,
        }}),
    )
}

pub(crate) fn crew_assigned(job: JobId, crew: CrewMemberId, when: DateTime<Utc>) -> Scripted {
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "CrewAssigned", "data": {
            "crew_member_id": crew, "assigned_at": when,
        }}),
    )
}

pub(crate) fn job_started(job: JobId, when: DateTime<Utc>) -> Scripted {
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "JobStarted", "data": {"started_at": when}}),
    )
}

pub(crate) fn job_completed(job: JobId, revenue: i64, when: DateTime<Utc>) -> Scripted {
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "JobCompleted", "data": {
            "actual_revenue": {"amount_minor": revenue, "currency": "USD"}, "completed_at": when,
        }}),
    )
}

pub(crate) fn job_cancelled(job: JobId, previous: &str, when: DateTime<Utc>) -> Scripted {
    event::<JobEvent>(
        "job",
        job,
        when,
        json!({"type": "JobCancelled", "data": {
            "reason": "customer changed plans", "previous_status": previous, "cancelled_at": when,
        }}),
    )
}

pub(crate) fn group_started(
    thread: ThreadId,
    title: &str,
    participants: &[UserId],
    by: UserId,
    when: DateTime<Utc>,
) -> Scripted {
    let mut sorted = participants.to_vec();
    sorted.sort();
    event::<ThreadEvent>(
        "thread",
        thread,
        when,
        json!({"type": "ThreadStarted", "data": {
            "thread_id": thread, "kind": {"type": "group"}, "participants": sorted,
            "title": title, "started_by": by, "started_at": when,
        }}),
    )
}

pub(crate) fn message_posted(
    thread: ThreadId,
    seq: u64,
    author: UserId,
    body: &str,
    when: DateTime<Utc>,
) -> Scripted {
    event::<ThreadEvent>(
        "thread",
        thread,
        when,
        json!({"type": "MessagePosted", "data": {
            "message_id": uuid::Uuid::now_v7(), "seq": seq, "author": author, "body": body, "posted_at": when,
        }}),
    )
}

pub(crate) fn thread_read(
    thread: ThreadId,
    user: UserId,
    up_to: u64,
    when: DateTime<Utc>,
) -> Scripted {
    event::<ThreadEvent>(
        "thread",
        thread,
        when,
        json!({"type": "ThreadRead", "data": {
            "user": user, "up_to_seq": up_to, "read_at": when,
        }}),
    )
}
