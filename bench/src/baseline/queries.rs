//! The old design's read paths, query for query.
//!
//! Where FerretDB 1.24 lacks what the old code used, the closest equivalent is used:
//! `$avg` becomes `$sum` of revenue and `$sum: 1` of jobs divided in Rust; grouping by month
//! (`$month`/`$year` on a date) groups on a `completedMonth` string kept on the job; the
//! thread list skips `populate` of participants and last message (which would only add
//! queries). Everything else is as the old services did it.

use bson::{doc, Bson, DateTime as BsonDateTime, Document};
use chrono::{Duration, NaiveDate};
use domain::calendar::BusinessTimeZone;
use futures::TryStreamExt;
use mongodb::{Collection, Database};
use serde::Serialize;

pub type QueryResult<T> = Result<T, mongodb::error::Error>;

fn json(doc: Document) -> serde_json::Value {
    Bson::Document(doc).into_relaxed_extjson()
}

async fn aggregate(
    collection: &Collection<Document>,
    pipeline: Vec<Document>,
) -> QueryResult<Vec<serde_json::Value>> {
    let cursor = collection.aggregate(pipeline).await?;
    let docs: Vec<Document> = cursor.try_collect().await?;
    Ok(docs.into_iter().map(json).collect())
}

#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub jobs_by_status: Vec<serde_json::Value>,
    pub revenue: serde_json::Value,
    pub today: Vec<serde_json::Value>,
    pub top_services: Vec<serde_json::Value>,
    pub monthly_revenue: Vec<serde_json::Value>,
    pub leads_by_source: Vec<serde_json::Value>,
}

/// Six aggregation pipelines over `jobs` and `customers`, run concurrently as the old
/// analytics service did with `Promise.all`.
pub async fn dashboard(
    db: &Database,
    tz: &BusinessTimeZone,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
) -> QueryResult<Dashboard> {
    let jobs = db.collection::<Document>("jobs");
    let customers = db.collection::<Document>("customers");
    let at = |day: NaiveDate| BsonDateTime::from_millis(tz.start_of_day(day).timestamp_millis());
    let (start, end) = (at(from), at(to + Duration::days(1)));
    let year_ago = at(to - Duration::days(365));
    let [by_status, totals, scheduled_today, services, months, leads] =
        dashboard_pipelines(start, end, year_ago, today);
    let (jobs_by_status, revenue, today, top_services, monthly_revenue, leads_by_source) = tokio::try_join!(
        aggregate(&jobs, by_status),
        aggregate(&jobs, totals),
        aggregate(&jobs, scheduled_today),
        aggregate(&jobs, services),
        aggregate(&jobs, months),
        aggregate(&customers, leads),
    )?;
    Ok(Dashboard {
        jobs_by_status,
        revenue: with_average(revenue),
        today,
        top_services,
        monthly_revenue,
        leads_by_source,
    })
}

/// The dashboard's pipelines in the order of [`Dashboard`]'s fields: the first five over
/// `jobs`, the last over `customers`.
fn dashboard_pipelines(
    start: BsonDateTime,
    end: BsonDateTime,
    year_ago: BsonDateTime,
    today: NaiveDate,
) -> [Vec<Document>; 6] {
    let completed = doc! {"status": "completed", "completedAt": {"$gte": start, "$lt": end}};
    [
        vec![
            doc! {"$match": {"createdAt": {"$gte": start, "$lt": end}}},
            doc! {"$group": {"_id": "$status", "count": {"$sum": 1}}},
        ],
        vec![
            doc! {"$match": completed.clone()},
            doc! {"$group": {"_id": Bson::Null, "totalRevenue": {"$sum": "$actualRevenue"}, "count": {"$sum": 1}}},
        ],
        vec![
            doc! {"$match": {"scheduledDate": today.to_string()}},
            doc! {"$group": {"_id": "$status", "count": {"$sum": 1}}},
        ],
        vec![
            doc! {"$match": completed.clone()},
            doc! {"$group": {"_id": "$serviceType", "count": {"$sum": 1}, "revenue": {"$sum": "$actualRevenue"}}},
            doc! {"$sort": {"revenue": -1}},
            doc! {"$limit": 5},
        ],
        vec![
            doc! {"$match": {"status": "completed", "completedAt": {"$gte": year_ago, "$lt": end}}},
            doc! {"$group": {"_id": "$completedMonth", "revenue": {"$sum": "$actualRevenue"}, "count": {"$sum": 1}}},
            doc! {"$sort": {"_id": 1}},
        ],
        vec![
            doc! {"$match": {"createdAt": {"$gte": start, "$lt": end}}},
            doc! {"$group": {"_id": "$referralSource", "count": {"$sum": 1}}},
        ],
    ]
}

/// `$avg` is not available on FerretDB: the average is the sum over the count.
fn with_average(revenue: Vec<serde_json::Value>) -> serde_json::Value {
    match revenue.into_iter().next() {
        Some(serde_json::Value::Object(mut totals)) => {
            let total = totals
                .get("totalRevenue")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            let count = totals.get("count").and_then(|v| v.as_i64()).unwrap_or(0);
            let average = if count > 0 { total / count } else { 0 };
            totals.insert("averageRevenue".into(), average.into());
            serde_json::Value::Object(totals)
        }
        _ => serde_json::json!({"totalRevenue": 0, "count": 0, "averageRevenue": 0}),
    }
}

#[derive(Debug, Serialize)]
pub struct CalendarDay {
    pub date: String,
    pub jobs: Vec<serde_json::Value>,
    pub count: usize,
}

#[derive(Debug, Serialize)]
pub struct CalendarWeek {
    pub schedule: Vec<CalendarDay>,
    pub week_start: String,
    pub total_jobs: usize,
}

/// Seven sequential per-day queries, as the old weekly calendar endpoint awaited them.
pub async fn calendar_week(db: &Database, start: NaiveDate) -> QueryResult<CalendarWeek> {
    let jobs = db.collection::<Document>("jobs");
    let mut schedule = Vec::with_capacity(7);
    for offset in 0..7 {
        let day = start + Duration::days(offset);
        let found: Vec<Document> = jobs
            .find(doc! {"scheduledDate": day.to_string()})
            .await?
            .try_collect()
            .await?;
        let jobs: Vec<serde_json::Value> = found.into_iter().map(json).collect();
        schedule.push(CalendarDay {
            date: day.to_string(),
            count: jobs.len(),
            jobs,
        });
    }
    let total_jobs = schedule.iter().map(|d| d.count).sum();
    Ok(CalendarWeek {
        schedule,
        week_start: start.to_string(),
        total_jobs,
    })
}

#[derive(Debug, Serialize)]
pub struct ThreadWithUnread {
    #[serde(flatten)]
    pub thread: serde_json::Value,
    pub unread_count: u64,
}

/// The user's threads newest first, then one unread count query per thread, all issued at
/// once (the old `Promise.all` over `getUnreadCountForThread`).
pub async fn user_threads(
    db: &Database,
    user: &str,
    unread_only: bool,
) -> QueryResult<Vec<ThreadWithUnread>> {
    let threads: Vec<Document> = db
        .collection::<Document>("message_threads")
        .find(doc! {"participants": user})
        .sort(doc! {"lastMessageAt": -1})
        .await?
        .try_collect()
        .await?;
    let messages = db.collection::<Document>("messages");
    let counts = futures::future::try_join_all(threads.iter().map(|thread| {
        let messages = messages.clone();
        let thread_id = thread.get_str("_id").unwrap_or_default().to_owned();
        async move {
            messages
                .count_documents(doc! {"threadId": thread_id, "senderId": {"$ne": user}, "readBy": {"$ne": user}})
                .await
        }
    }))
    .await?;
    Ok(threads
        .into_iter()
        .zip(counts)
        .filter(|(_, unread)| !unread_only || *unread > 0)
        .map(|(thread, unread_count)| ThreadWithUnread {
            thread: json(thread),
            unread_count,
        })
        .collect())
}

/// Every customer (no pagination), newest first; with `search`, a case-insensitive regex on
/// names, email and phone.
pub async fn customers(db: &Database, search: Option<&str>) -> QueryResult<Vec<serde_json::Value>> {
    let filter = match search {
        Some(text) => {
            let pattern = escape_regex(text.trim());
            let regex = |field: &str| doc! {field: {"$regex": pattern.clone(), "$options": "i"}};
            doc! {"$or": [regex("firstName"), regex("lastName"), regex("email"), regex("phone")]}
        }
        None => doc! {},
    };
    let found: Vec<Document> = db
        .collection::<Document>("customers")
        .find(filter)
        .sort(doc! {"createdAt": -1})
        .await?
        .try_collect()
        .await?;
    Ok(found.into_iter().map(json).collect())
}

/// User input is matched literally, as the old code intended (it built `new RegExp(term)`,
/// which let users inject patterns; escaping only makes the baseline safer, not faster).
fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::generator::{generate, GenConfig, Size};

    /// A small generated data set folded and written into a fresh database.
    async fn filled() -> (
        ::tests::TestEnv,
        crate::Dataset,
        super::super::fill::Collections,
    ) {
        let env = ::tests::TestEnv::new().await;
        let config = GenConfig {
            seed: 5,
            size: Size::S,
            anchor: NaiveDate::from_ymd_opt(2025, 6, 4).unwrap(),
            time_zone: BusinessTimeZone::parse("America/New_York").unwrap(),
        };
        let dataset = generate(config.clone()).unwrap();
        let fold = |ops| super::super::fill::fold(ops, &config.time_zone);
        super::super::fill(&env.database, fold(&dataset.ops))
            .await
            .unwrap();
        let expected = fold(&dataset.ops);
        (env, dataset, expected)
    }

    #[tokio::test]
    async fn baseline_endpoints_agree_with_the_folded_documents() {
        let (env, dataset, expected) = filled().await;
        let db = &env.database;
        let tz = &dataset.config.time_zone;
        let today = dataset.config.anchor;
        let from = today - Duration::days(364);

        // Dashboard: jobs by status created in range, and revenue of completed jobs.
        let view = dashboard(db, tz, from, today, today).await.unwrap();
        let start = tz.start_of_day(from).timestamp_millis();
        let end = tz
            .start_of_day(today + Duration::days(1))
            .timestamp_millis();
        let in_range = |d: &Document, field: &str| {
            d.get_datetime(field)
                .map(|t| (start..end).contains(&t.timestamp_millis()))
                .unwrap_or(false)
        };
        let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
        for job in expected.jobs.iter().filter(|j| in_range(j, "createdAt")) {
            *by_status
                .entry(job.get_str("status").unwrap().to_owned())
                .or_default() += 1;
        }
        let got: BTreeMap<String, i64> = view
            .jobs_by_status
            .iter()
            .map(|g| {
                (
                    g["_id"].as_str().unwrap().to_owned(),
                    g["count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, by_status);
        let revenue: i64 = expected
            .jobs
            .iter()
            .filter(|j| j.get_str("status") == Ok("completed") && in_range(j, "completedAt"))
            .map(|j| j.get_i64("actualRevenue").unwrap())
            .sum();
        assert!(revenue > 0);
        assert_eq!(view.revenue["totalRevenue"].as_i64(), Some(revenue));
        assert!(view.top_services.len() <= 5);

        // Calendar: each day holds exactly the jobs scheduled on it.
        let week = domain::calendar::week_start(today - Duration::days(14));
        let calendar = calendar_week(db, week).await.unwrap();
        for day in &calendar.schedule {
            let want = expected
                .jobs
                .iter()
                .filter(|j| j.get_str("scheduledDate") == Ok(day.date.as_str()))
                .count();
            assert_eq!(day.count, want, "{}", day.date);
        }
        assert!(calendar.total_jobs > 0);

        // Threads: unread = messages by others not read by the user. Each thread's count
        // scans the messages in this design, so the check takes a user with a few threads,
        // some with unread messages and some without, rather than the focus user's 200.
        let unread_of = |user: &str| {
            let mut unread: HashMap<String, u64> = HashMap::new();
            for m in &expected.messages {
                let read = m
                    .get_array("readBy")
                    .unwrap()
                    .iter()
                    .any(|r| r.as_str() == Some(user));
                if m.get_str("senderId").unwrap() != user && !read {
                    *unread
                        .entry(m.get_str("threadId").unwrap().to_owned())
                        .or_default() += 1;
                }
            }
            unread
        };
        let threads_of = |user: &str| {
            expected
                .threads
                .iter()
                .filter(|t| {
                    t.get_array("participants")
                        .unwrap()
                        .iter()
                        .any(|p| p.as_str() == Some(user))
                })
                .map(|t| t.get_str("_id").unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let (user, threads, unread) = dataset
            .users
            .iter()
            .map(|staff| staff.id.to_string())
            .filter_map(|user| {
                let threads = threads_of(&user);
                let unread = unread_of(&user);
                let with_unread = threads.iter().filter(|t| unread.contains_key(*t)).count();
                (threads.len() >= 5 && with_unread > 0 && with_unread < threads.len())
                    .then_some((user, threads, unread))
            })
            .min_by_key(|(_, threads, _)| threads.len())
            .expect("a user with read and unread threads");
        let all = user_threads(db, &user, false).await.unwrap();
        let mut listed: Vec<String> = all
            .iter()
            .map(|t| t.thread["_id"].as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        let mut threads = threads;
        threads.sort();
        assert_eq!(listed, threads);
        for thread in &all {
            let id = thread.thread["_id"].as_str().unwrap();
            assert_eq!(
                thread.unread_count,
                unread.get(id).copied().unwrap_or(0),
                "{id}"
            );
        }
        let unread_only = user_threads(db, &user, true).await.unwrap();
        assert!(!unread_only.is_empty() && unread_only.len() < all.len());
        assert!(unread_only.iter().all(|t| t.unread_count > 0));
        assert_eq!(
            unread_only.len(),
            all.iter().filter(|t| t.unread_count > 0).count()
        );

        // Customers: all of them unpaginated; search is a case-insensitive literal match.
        assert_eq!(
            customers(db, None).await.unwrap().len(),
            expected.customers.len()
        );
        let smiths = expected
            .customers
            .iter()
            .filter(|c| {
                ["firstName", "lastName", "email", "phone"]
                    .iter()
                    .any(|f| c.get_str(f).unwrap().to_lowercase().contains("smi"))
            })
            .count();
        assert_eq!(customers(db, Some("SMI")).await.unwrap().len(), smiths);
        assert!(customers(db, Some("(.*")).await.unwrap().is_empty());
        env.database.drop().await.unwrap();
    }
}
