//! Compares every query function, paged, with the reference's full views.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{Duration, NaiveDate};
use domain::enums::{CustomerStatus, JobStatus, ReferralSource};
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId, UserId};
use events::EventEnvelope;
use uuid::Uuid;

use super::all_pages;
use super::pipeline::time_zone;
use crate::memory::MemoryStore;
use crate::query::{self, CustomerFilter, Generations, JobFilter};
use crate::reference::ReferenceModel;

fn ids<I: FromStr>(events: &[EventEnvelope], aggregate_type: &str) -> Vec<I> {
    let set: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.aggregate_type == aggregate_type)
        .map(|e| e.aggregate_id.as_str())
        .collect();
    set.into_iter().filter_map(|id| id.parse().ok()).collect()
}

/// A query with a typo in the first name: a deletion, a transposition or none.
fn typo(word: &str, n: usize) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    match n % 3 {
        0 if chars.len() > 3 => {
            chars.remove(1 + n % (chars.len() - 2));
        }
        1 if chars.len() > 3 => chars.swap(1, 2),
        _ => {}
    }
    chars.into_iter().collect()
}

pub(crate) async fn assert_views_match(
    store: &MemoryStore,
    reference: &ReferenceModel,
    events: &[EventEnvelope],
    limit: usize,
) {
    let gens = Generations::default();
    let src = store;
    let checkpoint = query::checkpoint(src, &gens).await.expect("checkpoint");
    assert_eq!(checkpoint, events.len() as u64);
    let unknown = Uuid::from_u128(u128::MAX);

    let mut users: Vec<UserId> = ids(events, "user");
    users.push(UserId::from_uuid(unknown));
    for user in users {
        let count = query::unread_count(src, &gens, user)
            .await
            .expect("unread count");
        assert_eq!(
            count,
            reference.unread_count(user),
            "unread count of {user}"
        );
        for unread_only in [false, true] {
            let pages = all_pages(limit, |page| {
                query::user_threads(src, &gens, user, unread_only, page)
            })
            .await;
            assert_eq!(
                pages,
                reference.user_threads(user, unread_only),
                "threads of {user}, unread only: {unread_only}"
            );
        }
    }

    let mut threads: Vec<ThreadId> = ids(events, "thread");
    threads.push(ThreadId::from_uuid(unknown));
    for thread in threads {
        let meta = query::thread_meta(src, &gens, thread)
            .await
            .expect("thread meta");
        assert_eq!(meta, reference.thread_meta(thread), "meta of {thread}");
        let messages = all_pages(limit + 2, |page| {
            query::thread_messages(src, &gens, thread, page)
        })
        .await;
        assert_eq!(
            messages,
            reference.thread_messages(thread),
            "messages of {thread}"
        );
    }

    assert_customers_match(src, &gens, reference, events, limit).await;
    assert_jobs_match(src, &gens, reference, events, limit).await;
    assert_calendar_and_dashboard_match(src, &gens, reference, events).await;
}

async fn assert_customers_match(
    src: &MemoryStore,
    gens: &Generations,
    reference: &ReferenceModel,
    events: &[EventEnvelope],
    limit: usize,
) {
    let mut customers: Vec<CustomerId> = ids(events, "customer");
    customers.push(CustomerId::from_uuid(Uuid::from_u128(u128::MAX)));
    for id in &customers {
        let summary = query::customer(src, gens, *id).await.expect("customer");
        assert_eq!(summary, reference.customer(*id), "customer {id}");
    }
    let mut filters = vec![CustomerFilter::default()];
    for status in CustomerStatus::ALL.iter().map(|s| Some(*s)).chain([None]) {
        for source in ReferralSource::ALL.iter().map(|s| Some(*s)).chain([None]) {
            filters.push(CustomerFilter {
                status,
                source,
                search: None,
            });
        }
    }
    let everyone = reference.customers(&CustomerFilter::default());
    let mut searches: Vec<String> = vec![
        "Jon Smith".into(),
        "smi".into(),
        "555".into(),
        "example.com".into(),
        "x".into(),
    ];
    for (n, c) in everyone.iter().enumerate().take(12) {
        searches.push(format!("{} {}", typo(&c.first_name, n), c.last_name));
        searches.push(typo(&c.last_name.to_lowercase(), n + 1));
        searches.push(c.email.clone());
    }
    for search in searches {
        filters.push(CustomerFilter {
            search: Some(search.clone()),
            ..CustomerFilter::default()
        });
        filters.push(CustomerFilter {
            status: Some(CustomerStatus::Lead),
            search: Some(search),
            source: None,
        });
    }
    for filter in &filters {
        let pages = all_pages(limit, |page| query::customers(src, gens, filter, page)).await;
        assert_eq!(
            pages,
            reference.customers(filter),
            "customers with {filter:?}"
        );
    }
    // The typo case the contract names: whoever is called John Smith is found by "Jon Smith".
    let found = reference.customers(&CustomerFilter {
        search: Some("Jon Smith".into()),
        ..CustomerFilter::default()
    });
    for john in everyone
        .iter()
        .filter(|c| c.first_name == "John" && c.last_name == "Smith")
    {
        assert!(found.contains(john), "Jon Smith finds John Smith");
    }
}

async fn assert_jobs_match(
    src: &MemoryStore,
    gens: &Generations,
    reference: &ReferenceModel,
    events: &[EventEnvelope],
    limit: usize,
) {
    let mut jobs: Vec<JobId> = ids(events, "job");
    jobs.push(JobId::from_uuid(Uuid::from_u128(u128::MAX)));
    for id in &jobs {
        let summary = query::job(src, gens, *id).await.expect("job");
        assert_eq!(summary, reference.job(*id), "job {id}");
    }
    let crew: Vec<CrewMemberId> = ids(events, "crew_member");
    let customers: Vec<CustomerId> = ids(events, "customer");
    let all = reference.jobs(&JobFilter::default());
    let dates: Vec<NaiveDate> = all.iter().map(|j| j.list_date).collect();
    let mut filters = vec![JobFilter::default()];
    for status in JobStatus::ALL.iter().map(|s| Some(*s)).chain([None]) {
        filters.push(JobFilter {
            status,
            ..JobFilter::default()
        });
        for member in &crew {
            filters.push(JobFilter {
                status,
                crew: Some(*member),
                ..JobFilter::default()
            });
        }
        for customer in customers.iter().take(6) {
            filters.push(JobFilter {
                status,
                customer: Some(*customer),
                ..JobFilter::default()
            });
        }
    }
    for (member, customer) in crew.iter().zip(customers.iter().cycle()).take(4) {
        filters.push(JobFilter {
            crew: Some(*member),
            customer: Some(*customer),
            ..JobFilter::default()
        });
    }
    if let (Some(min), Some(max)) = (dates.iter().min(), dates.iter().max()) {
        let middle = *min + (*max - *min) / 2;
        for (from, to) in [
            (Some(*min), Some(middle)),
            (Some(middle), None),
            (None, Some(middle)),
            (Some(middle), Some(middle)),
        ] {
            filters.push(JobFilter {
                from,
                to,
                ..JobFilter::default()
            });
            filters.push(JobFilter {
                from,
                to,
                status: Some(JobStatus::Scheduled),
                ..JobFilter::default()
            });
            if let Some(member) = crew.first() {
                filters.push(JobFilter {
                    from,
                    to,
                    crew: Some(*member),
                    ..JobFilter::default()
                });
            }
        }
    }
    for filter in &filters {
        let pages = all_pages(limit, |page| query::jobs(src, gens, filter, page)).await;
        assert_eq!(pages, reference.jobs(filter), "jobs with {filter:?}");
    }
}

async fn assert_calendar_and_dashboard_match(
    src: &MemoryStore,
    gens: &Generations,
    reference: &ReferenceModel,
    events: &[EventEnvelope],
) {
    let weeks: BTreeSet<NaiveDate> = reference
        .jobs(&JobFilter::default())
        .iter()
        .filter_map(|j| j.scheduled_date)
        .map(domain::calendar::week_start)
        .collect();
    for monday in weeks
        .iter()
        .copied()
        .chain([NaiveDate::MIN + Duration::days(7)])
    {
        let week = query::calendar_week(src, gens, monday)
            .await
            .expect("calendar week");
        assert_eq!(week, reference.calendar_week(monday), "week of {monday}");
    }
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return;
    };
    let tz = time_zone();
    let start = tz.local_date(first.occurred_at) - Duration::days(3);
    let today = tz.local_date(last.occurred_at);
    let end = (start + Duration::days(365)).min(today + Duration::days(40));
    let middle = start + (end - start) / 2;
    for (from, to, today) in [
        (start, end, today),
        (middle, end, middle),
        (start, middle, end),
    ] {
        let view = query::dashboard(src, gens, from, to, today)
            .await
            .expect("dashboard");
        assert_eq!(
            view,
            reference.dashboard(from, to, today),
            "dashboard {from}..{to}"
        );
    }
    let too_long = query::dashboard(src, gens, start, start + Duration::days(366), today).await;
    assert!(too_long.is_err_and(|e| e.is_bad_request()));
}
