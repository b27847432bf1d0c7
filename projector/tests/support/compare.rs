//! Every query over the projected documents must equal the reference fold of the same log.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{Days, NaiveDate};
use domain::calendar::{week_start, BusinessTimeZone};
use domain::enums::{CustomerStatus, JobStatus, ReferralSource};
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use events::EventEnvelope;
use read_models::query::{
    self, CustomerFilter, Generations, JobFilter, Page, PageRequest, QueryError,
};
use read_models::reference::ReferenceModel;
use serde::Serialize;

use super::MongoSource;

/// What was compared, so tests can assert the comparison covered something.
#[derive(Debug, Default)]
pub(crate) struct Compared {
    pub(crate) views: usize,
    pub(crate) items: usize,
}

fn same<T: Serialize>(what: &str, projected: &T, reference: &T) {
    let projected = serde_json::to_value(projected).expect("view encodes");
    let reference = serde_json::to_value(reference).expect("view encodes");
    if projected != reference {
        let p = serde_json::to_string_pretty(&projected).unwrap_or_default();
        let r = serde_json::to_string_pretty(&reference).unwrap_or_default();
        let first_difference = p
            .lines()
            .zip(r.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let context = |s: &str| {
            s.lines()
                .skip(first_difference.saturating_sub(8))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{what}: projected view differs from the reference\n--- projected (near line {first_difference})\n{}\n--- reference\n{}",
            context(&p),
            context(&r)
        );
    }
}

async fn all_pages<T, F, Fut>(mut page: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, QueryError>>,
{
    let mut items = Vec::new();
    let mut request = PageRequest::first(37);
    for _ in 0..10_000 {
        let result = page(request).await.expect("query");
        items.extend(result.items);
        match result.next {
            Some(next) => {
                request = PageRequest {
                    limit: 37,
                    after: Some(next),
                }
            }
            None => return items,
        }
    }
    panic!("paging did not end");
}

/// Folds `events` into the reference (events it refuses are skipped, as the projector
/// dead-letters them) and compares every query.
pub(crate) async fn everything(src: &MongoSource, events: &[EventEnvelope]) -> Compared {
    let time_zone = BusinessTimeZone::parse("America/New_York").expect("zone");
    let mut reference = ReferenceModel::new(time_zone);
    let mut ids: [BTreeSet<String>; 5] = Default::default();
    let mut dates = BTreeSet::new();
    for event in events {
        let _ = reference.apply(event);
        let slot = match event.aggregate_type.as_str() {
            "customer" => 0,
            "job" => 1,
            "user" => 2,
            "crew_member" => 3,
            _ => 4,
        };
        ids[slot].insert(event.aggregate_id.clone());
        dates.insert(time_zone.local_date(event.occurred_at));
    }
    let gens = Generations::load(src).await.expect("registry");
    let mut compared = Compared::default();
    let parse = |s: &String| s.parse::<uuid::Uuid>().ok();
    let customers: Vec<CustomerId> = ids[0]
        .iter()
        .filter_map(parse)
        .map(CustomerId::from_uuid)
        .collect();
    let jobs: Vec<JobId> = ids[1]
        .iter()
        .filter_map(parse)
        .map(JobId::from_uuid)
        .collect();
    let users: Vec<UserId> = ids[2]
        .iter()
        .filter_map(parse)
        .map(UserId::from_uuid)
        .collect();
    let crew: Vec<CrewMemberId> = ids[3]
        .iter()
        .filter_map(parse)
        .map(CrewMemberId::from_uuid)
        .collect();
    let threads: Vec<ThreadId> = ids[4]
        .iter()
        .filter_map(parse)
        .map(ThreadId::from_uuid)
        .collect();

    let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
        return compared;
    };
    // Dashboard over consecutive ranges of at most a year, "today" being the last day.
    let mut from = first;
    while from <= last {
        let to = from
            .checked_add_days(Days::new(300))
            .unwrap_or(last)
            .min(last);
        let projected = query::dashboard(src, &gens, from, to, last)
            .await
            .expect("dashboard");
        same(
            &format!("dashboard {from}..{to}"),
            &projected,
            &reference.dashboard(from, to, last),
        );
        compared.views += 1;
        from = to.succ_opt().unwrap_or(NaiveDate::MAX);
    }
    // Every calendar week from the first event to 60 days after the last.
    let mut monday = week_start(first.checked_sub_days(Days::new(7)).unwrap_or(first));
    let end = last.checked_add_days(Days::new(60)).unwrap_or(last);
    while monday <= end {
        let projected = query::calendar_week(src, &gens, monday)
            .await
            .expect("calendar");
        let expected = reference.calendar_week(monday);
        compared.items += expected.days.iter().map(|d| d.jobs.len()).sum::<usize>();
        same(&format!("calendar week {monday}"), &projected, &expected);
        compared.views += 1;
        monday = monday
            .checked_add_days(Days::new(7))
            .unwrap_or(NaiveDate::MAX);
    }
    for &user in &users {
        let projected = query::unread_count(src, &gens, user).await.expect("unread");
        same(
            &format!("unread count of {user}"),
            &projected,
            &reference.unread_count(user),
        );
        for unread_only in [false, true] {
            let projected =
                all_pages(|page| query::user_threads(src, &gens, user, unread_only, page)).await;
            let expected = reference.user_threads(user, unread_only);
            compared.items += expected.len();
            same(
                &format!("threads of {user} (unread only: {unread_only})"),
                &projected,
                &expected,
            );
        }
        compared.views += 3;
    }
    for &thread in &threads {
        let projected = query::thread_meta(src, &gens, thread)
            .await
            .expect("thread meta");
        same(
            &format!("thread {thread}"),
            &projected,
            &reference.thread_meta(thread),
        );
        let projected = all_pages(|page| query::thread_messages(src, &gens, thread, page)).await;
        let expected = reference.thread_messages(thread);
        compared.items += expected.len();
        same(&format!("messages of {thread}"), &projected, &expected);
        compared.views += 2;
    }
    let mut customer_filters = vec![CustomerFilter::default()];
    for status in [
        CustomerStatus::Lead,
        CustomerStatus::Active,
        CustomerStatus::Inactive,
    ] {
        customer_filters.push(CustomerFilter {
            status: Some(status),
            ..Default::default()
        });
    }
    for source in [ReferralSource::Website, ReferralSource::Google] {
        customer_filters.push(CustomerFilter {
            source: Some(source),
            ..Default::default()
        });
        customer_filters.push(CustomerFilter {
            status: Some(CustomerStatus::Active),
            source: Some(source),
            ..Default::default()
        });
    }
    for search in ["Jon Smith", "mary", "garc", "chen wei"] {
        customer_filters.push(CustomerFilter {
            search: Some(search.into()),
            ..Default::default()
        });
    }
    for filter in &customer_filters {
        let projected = all_pages(|page| query::customers(src, &gens, filter, page)).await;
        let expected = reference.customers(filter);
        compared.items += expected.len();
        same(&format!("customers {filter:?}"), &projected, &expected);
        compared.views += 1;
    }
    for &customer in &customers {
        let projected = query::customer(src, &gens, customer)
            .await
            .expect("customer");
        same(
            &format!("customer {customer}"),
            &projected,
            &reference.customer(customer),
        );
    }
    let mut job_filters = vec![JobFilter::default()];
    for status in [
        JobStatus::Created,
        JobStatus::Scheduled,
        JobStatus::Completed,
        JobStatus::Cancelled,
    ] {
        job_filters.push(JobFilter {
            status: Some(status),
            ..Default::default()
        });
    }
    for &member in crew.iter().take(4) {
        job_filters.push(JobFilter {
            crew: Some(member),
            ..Default::default()
        });
    }
    for &customer in customers.iter().take(4) {
        job_filters.push(JobFilter {
            customer: Some(customer),
            ..Default::default()
        });
    }
    let middle = first.checked_add_days(Days::new(20)).unwrap_or(first);
    job_filters.push(JobFilter {
        from: Some(middle),
        to: middle.checked_add_days(Days::new(30)),
        ..Default::default()
    });
    for filter in &job_filters {
        let projected = all_pages(|page| query::jobs(src, &gens, filter, page)).await;
        let expected = reference.jobs(filter);
        compared.items += expected.len();
        same(&format!("jobs {filter:?}"), &projected, &expected);
        compared.views += 1;
    }
    for &job in &jobs {
        let projected = query::job(src, &gens, job).await.expect("job");
        same(&format!("job {job}"), &projected, &reference.job(job));
    }
    compared.views += customers.len() + jobs.len();
    compared
}
