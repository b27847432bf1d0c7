//! The whole system in one process, nothing replaced: commands over HTTP to the command API,
//! the event store on the shared MongoDB server, the relay onto JetStream, the projector, and
//! reads over HTTP from the query API. Every read passes the `position` of the command it
//! depends on as `min_position`, so the test waits exactly as long as the pipeline needs.

mod access;
mod as_of;
mod live;
mod matrix;
mod observability;
mod old_events;
mod system;

use chrono::{Days, Utc};
use domain::calendar::BusinessTimeZone;
use domain::enums::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use system::{System, TIME_ZONE};
use tests::bodies;

/// The job's day, a Wednesday; its calendar week starts on Monday 2030-03-11.
const JOB_DATE: &str = "2030-03-13";
const REVENUE_MINOR: i64 = 118_500;

fn slot(date: &str, start: &str, end: &str) -> Value {
    json!({"date": date, "window": {"start": start, "end": end}})
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .map(|item| item["job_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_flow_through_the_store_jetstream_and_projector_into_the_query_api() {
    let system = System::start().await;

    // Staff. The first administrator's token signs its own registration.
    let admin = system.first_admin().await;
    let dispatcher = system
        .member(&admin, "Dana Dispatch", Role::Dispatcher)
        .await;
    let sales = system.member(&admin, "Sam Sales", Role::Sales).await;
    let crew = system.member(&admin, "Cris Crew", Role::Crew).await;
    let cris = system
        .post(
            "/v1/crew-members",
            &dispatcher.token,
            json!({"name": "Cris Crew", "skills": ["piano"], "user_id": crew.id}),
        )
        .await;
    // A crew user sees their (still empty) job list as soon as their record is linked:
    // the link is looked up only after the read models reached the position asked for.
    let mine = system.get("/v1/jobs", &crew.token, cris.position).await;
    assert_eq!(mine["data"], json!([]), "{mine}");
    let olga = system
        .post(
            "/v1/crew-members",
            &dispatcher.token,
            json!({"name": "Olga Other", "skills": ["packing"]}),
        )
        .await;

    // John Smith's job: created, crewed, scheduled, then run by the crew member.
    let john = system
        .post(
            "/v1/customers",
            &sales.token,
            bodies::customer(
                "John",
                "Smith",
                "jsmith.moves@example.com",
                "+1 555 010 0001",
            ),
        )
        .await;
    let job = system
        .post("/v1/jobs", &sales.token, bodies::job(john.id))
        .await;
    let job_path = |action: &str| format!("/v1/jobs/{}/{action}", job.id);
    system
        .post(
            &job_path("crew"),
            &dispatcher.token,
            json!({"crew_member_id": cris.id}),
        )
        .await;
    system
        .post(
            &job_path("schedule"),
            &dispatcher.token,
            slot(JOB_DATE, "08:00", "12:00"),
        )
        .await;
    system
        .command(Method::POST, &job_path("start"), &crew.token, None)
        .await;
    let completed = system
        .post(
            &job_path("complete"),
            &crew.token,
            json!({"actual_revenue": {"amount_minor": REVENUE_MINOR, "currency": "USD"}}),
        )
        .await;
    assert_eq!(completed.body["version"], 5, "{}", completed.body);

    // Another customer's job, the next day, with another crew member: what the crew user
    // and the customer filter must leave out.
    let mary = system
        .post(
            "/v1/customers",
            &sales.token,
            bodies::customer("Mary", "Jones", "mary.jones@example.com", "+1 555 010 0002"),
        )
        .await;
    let other_job = system
        .post("/v1/jobs", &sales.token, bodies::job(mary.id))
        .await;
    system
        .post(
            &format!("/v1/jobs/{}/crew", other_job.id),
            &dispatcher.token,
            json!({"crew_member_id": olga.id}),
        )
        .await;
    let other_scheduled = system
        .post(
            &format!("/v1/jobs/{}/schedule", other_job.id),
            &dispatcher.token,
            slot("2030-03-14", "13:00", "17:00"),
        )
        .await;

    // Typo-tolerant search finds the customer under the name he has before the rename.
    let found = system
        .get(
            "/v1/customers?search=jon%20smith",
            &sales.token,
            other_scheduled.position,
        )
        .await;
    let found = found["data"].as_array().expect("customer list");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["customer_id"], json!(john.id));
    assert_eq!(found[0]["last_name"], "Smith");

    // Sam writes to Dana.
    let thread = system
        .post(
            "/v1/threads",
            &sales.token,
            json!({"kind": "direct", "participants": [sales.id, dispatcher.id]}),
        )
        .await;
    let message = system
        .post(
            &format!("/v1/threads/{}/messages", thread.id),
            &sales.token,
            json!({"body": "The Smith move went well"}),
        )
        .await;
    assert_eq!(message.body["seq"], 1, "{}", message.body);
    let dana = system.unread(&dispatcher, message.position).await;
    assert_eq!(
        (&dana["unread"], &dana["unread_threads"], &dana["threads"]),
        (&json!(1), &json!(1), &json!(1)),
        "{dana}"
    );
    let sam = system.unread(&sales, message.position).await;
    assert_eq!(
        (&sam["unread"], &sam["threads"]),
        (&json!(0), &json!(1)),
        "own messages are never unread: {sam}"
    );
    let threads = system
        .get("/v1/me/threads", &dispatcher.token, message.position)
        .await;
    let threads = threads["data"].as_array().expect("thread list");
    assert_eq!(threads.len(), 1, "{threads:?}");
    assert_eq!(threads[0]["thread_id"], json!(thread.id));
    assert_eq!(threads[0]["kind"], "direct");
    assert_eq!(
        threads[0]["participants"],
        json!([{"user_id": sales.id, "name": "Sam Sales"}])
    );
    assert_eq!(
        (&threads[0]["unread"], &threads[0]["last_seq"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(threads[0]["last_author_id"], json!(sales.id));

    let read = system
        .post(
            &format!("/v1/threads/{}/read", thread.id),
            &dispatcher.token,
            json!({"up_to_seq": 1}),
        )
        .await;
    let dana = system.unread(&dispatcher, read.position).await;
    assert_eq!(
        (&dana["unread"], &dana["unread_threads"]),
        (&json!(0), &json!(0)),
        "{dana}"
    );

    // John Smith becomes John Carter.
    let renamed = system
        .post(
            &format!("/v1/customers/{}/contact", john.id),
            &sales.token,
            json!({"last_name": "Carter"}),
        )
        .await;
    let last = renamed.position;

    // The dashboard around today (the completion counts on the day it happened, in the
    // business time zone) holds the one completion and its revenue.
    let today = BusinessTimeZone::parse(TIME_ZONE)
        .expect("time zone")
        .local_date(Utc::now());
    let dashboard = system
        .get(
            &format!(
                "/v1/dashboard?from={}&to={}",
                today - Days::new(1),
                today + Days::new(1)
            ),
            &admin.token,
            last,
        )
        .await;
    let totals = &dashboard["data"]["totals"];
    assert_eq!(totals["jobs_completed"], 1, "{totals}");
    assert_eq!(totals["revenue_minor"], REVENUE_MINOR, "{totals}");
    assert_eq!(totals["average_job_value_minor"], REVENUE_MINOR, "{totals}");
    assert_eq!(totals["jobs_created"], 2, "{totals}");
    assert_eq!(totals["jobs_scheduled"], 2, "{totals}");
    assert_eq!(
        (&totals["leads"], &totals["conversions"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(
        dashboard["data"]["crew"],
        json!([{"crew_member_id": cris.id, "name": "Cris Crew", "completed_jobs": 1}])
    );

    // The calendar week shows the job on its day, with the new name and the crew.
    let week = system
        .get(
            &format!("/v1/calendar/week/{JOB_DATE}"),
            &dispatcher.token,
            last,
        )
        .await;
    let days = week["data"]["days"].as_array().expect("seven days");
    assert_eq!(week["data"]["week_start"], "2030-03-11");
    assert_eq!(days.len(), 7);
    assert_eq!(days[2]["date"], JOB_DATE);
    assert_eq!(ids(&days[2]["jobs"]), vec![job.id.to_string()]);
    let entry = &days[2]["jobs"][0];
    assert_eq!(entry["customer_name"], "John Carter", "{entry}");
    assert_eq!(entry["status"], "completed");
    assert_eq!(
        entry["window"],
        json!({"start": "08:00:00", "end": "12:00:00", "time_zone": TIME_ZONE})
    );
    assert_eq!(
        entry["crew"],
        json!([{"crew_member_id": cris.id, "name": "Cris Crew"}])
    );
    assert_eq!(ids(&days[3]["jobs"]), vec![other_job.id.to_string()]);
    let crew_week = system
        .get(&format!("/v1/calendar/week/{JOB_DATE}"), &crew.token, last)
        .await;
    let crew_days = &crew_week["data"]["days"];
    assert_eq!(ids(&crew_days[2]["jobs"]), vec![job.id.to_string()]);
    assert_eq!(ids(&crew_days[3]["jobs"]), Vec::<String>::new());

    // Search follows the rename.
    let found = system
        .get("/v1/customers?search=jon%20cartr", &sales.token, last)
        .await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["data"][0]["customer_id"], json!(john.id));
    let found = system
        .get("/v1/customers?search=jon%20smith", &sales.token, last)
        .await;
    assert_eq!(
        found["data"],
        json!([]),
        "the old name is no longer indexed"
    );

    let customer = system
        .get(&format!("/v1/customers/{}", john.id), &sales.token, last)
        .await;
    let customer = &customer["data"];
    assert_eq!(
        (&customer["first_name"], &customer["last_name"]),
        (&json!("John"), &json!("Carter"))
    );
    assert_eq!(customer["email"], "jsmith.moves@example.com");
    assert_eq!(customer["referral_source"], "google");
    assert_eq!(customer["job_count"], 1, "{customer}");
    assert_eq!(
        customer["lifetime_revenue_minor"], REVENUE_MINOR,
        "{customer}"
    );

    // The customer's jobs, and the job itself, carry the new name.
    let jobs = system
        .get(
            &format!("/v1/jobs?customer={}", john.id),
            &dispatcher.token,
            last,
        )
        .await;
    assert_eq!(ids(&jobs["data"]), vec![job.id.to_string()], "{jobs}");
    assert_eq!(jobs["total"], 1);
    let summary = system
        .get(&format!("/v1/jobs/{}", job.id), &dispatcher.token, last)
        .await;
    let summary = &summary["data"];
    assert_eq!(jobs["data"][0], *summary);
    assert_eq!(summary["customer_id"], json!(john.id));
    assert_eq!(summary["customer_name"], "John Carter");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["scheduled_date"], JOB_DATE);
    assert_eq!(summary["estimated_price_minor"], 125_000);
    assert_eq!(summary["revenue_minor"], REVENUE_MINOR);
    assert_eq!(
        summary["crew"],
        json!([{"crew_member_id": cris.id, "name": "Cris Crew"}])
    );

    // The crew user sees their job and nothing else.
    let mine = system.get("/v1/jobs", &crew.token, last).await;
    assert_eq!(ids(&mine["data"]), vec![job.id.to_string()], "{mine}");
    let office = system.get("/v1/jobs", &dispatcher.token, last).await;
    assert_eq!(office["total"], 2, "{office}");
    let foreign = system
        .read(&format!("/v1/jobs/{}", other_job.id), &crew.token, last)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);

    // The thread's messages are for its participants.
    let messages_path = format!("/v1/threads/{}/messages", thread.id);
    let messages = system.get(&messages_path, &dispatcher.token, last).await;
    let messages = messages["data"].as_array().expect("message list");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(messages[0]["message_id"], message.body["message_id"]);
    assert_eq!(messages[0]["author_id"], json!(sales.id));
    assert_eq!(messages[0]["author_name"], "Sam Sales");
    assert_eq!(messages[0]["body"], "The Smith move went well");
    let outsider = system.read(&messages_path, &crew.token, last).await;
    assert_eq!(outsider.status, StatusCode::FORBIDDEN, "{}", outsider.body);

    // The read models are plain documents: what the API served, a MongoDB user finds by `_id`
    // with the driver and reads by field name.
    let find = |collection: &'static str, id: String| {
        let collection = system
            .read_models()
            .collection::<bson::Document>(collection);
        async move {
            collection
                .find_one(bson::doc! {"_id": &id})
                .await
                .expect("find by _id")
                .unwrap_or_else(|| panic!("no document {id}"))
        }
    };
    let day = find("rm_calendar_g1_days", "2030-03-13".to_owned()).await;
    assert_eq!(day.get_str("date"), Ok("2030-03-13"), "{day}");
    assert_eq!(day.get_str("week_start"), Ok("2030-03-11"), "{day}");
    let entries = day.get_array("jobs").expect("a day's jobs");
    let entry = entries
        .iter()
        .filter_map(bson::Bson::as_document)
        .find(|entry| entry.get_str("job_id") == Ok(job.id.to_string().as_str()))
        .unwrap_or_else(|| panic!("the job on its day: {day}"));
    assert_eq!(entry.get_str("customer_name"), Ok("John Carter"));
    assert_eq!(entry.get_str("status"), Ok("completed"));
    let day = find("rm_dashboard_g1_days", "2030-03-13".to_owned()).await;
    assert_eq!(day.get_str("month"), Ok("2030-03"), "{day}");
    let count = |doc: &bson::Document, field: &str| {
        doc.get_i32(field)
            .map(i64::from)
            .or_else(|_| doc.get_i64(field))
            .unwrap_or_else(|_| panic!("{field} is not an integer: {doc}"))
    };
    assert_eq!(
        (count(&day, "planned"), count(&day, "crewed")),
        (1, 1),
        "{day}"
    );
    let sam = find("rm_inbox_g1_users", sales.id.to_string()).await;
    assert_eq!(
        (count(&sam, "unread"), count(&sam, "threads")),
        (0, 1),
        "{sam}"
    );
    let job_doc = find("rm_lists_g1_jobs", job.id.to_string()).await;
    let summary = job_doc.get_document("summary").expect("a job's summary");
    assert_eq!(
        summary.get_str("customer_name"),
        Ok("John Carter"),
        "{job_doc}"
    );
    assert_eq!(count(summary, "revenue_minor"), REVENUE_MINOR, "{job_doc}");
    // Ids are text and instants are dates, as a MongoDB user filters and sorts them.
    assert_eq!(
        summary.get_str("customer_id"),
        Ok(john.id.to_string().as_str()),
        "{job_doc}"
    );
    let created = summary
        .get_datetime("created_at")
        .unwrap_or_else(|_| panic!("created_at is not a BSON date: {job_doc}"));
    assert!(created.to_chrono() <= Utc::now(), "{job_doc}");

    system.stop().await;
}
