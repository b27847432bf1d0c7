//! Content after a scripted history, compared with the reference fold; who may see what.

use chrono::{Days, NaiveDate, Utc};
use domain::calendar::BusinessTimeZone;
use domain::enums::Role;
use domain::ids::{CrewMemberId, CustomerId, JobId, ThreadId};
use platform::consistency::MIN_POSITION_PARAM;
use read_models::query::{CustomerFilter, JobFilter};
use serde_json::{json, Value};

use crate::projection::Projector;
use crate::script::*;
use crate::support::{Harness, User};

pub(crate) struct World {
    pub(crate) admin: User,
    pub(crate) dispatcher: User,
    pub(crate) sales: User,
    pub(crate) crew: User,
    pub(crate) analyst: User,
    pub(crate) outsider: User,
    pub(crate) john: CustomerId,
    pub(crate) jane: CustomerId,
    pub(crate) moved: JobId,
    pub(crate) cancelled: JobId,
    pub(crate) office_thread: ThreadId,
    pub(crate) position: u64,
}

pub(crate) fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Two customers, a completed and a cancelled job, two crew members, and a conversation.
pub(crate) async fn scripted_world(h: &Harness, projector: &mut Projector) -> World {
    let admin = h.user(Role::Admin);
    let dispatcher = h.user(Role::Dispatcher);
    let sales = h.user(Role::Sales);
    let crew = h.user(Role::Crew);
    let analyst = h.user(Role::Analyst);
    let outsider = h.user(Role::Sales);
    let (ana, bo): (CrewMemberId, CrewMemberId) = (new_id(), new_id());
    let (john, jane): (CustomerId, CustomerId) = (new_id(), new_id());
    let (moved, cancelled): (JobId, JobId) = (new_id(), new_id());
    let office_thread: ThreadId = new_id();
    let t = |s: &str| at(&format!("2025-03-{s}Z"));
    let script = vec![
        user_registered(admin.id, "Ada Admin", "admin", t("01T09:00:00")),
        user_registered(
            dispatcher.id,
            "Dee Spatcher",
            "dispatcher",
            t("01T09:01:00"),
        ),
        user_registered(sales.id, "Sal Es", "sales", t("01T09:02:00")),
        user_registered(crew.id, "Ana Crew", "crew", t("01T09:03:00")),
        user_registered(outsider.id, "Otto Side", "sales", t("01T09:04:00")),
        crew_registered(ana, "Ana Crew", Some(crew.id), t("01T10:00:00")),
        crew_registered(bo, "Bo Mover", None, t("01T10:01:00")),
        customer_registered(john, "John", "Smith", "website", t("02T14:00:00")),
        customer_registered(jane, "Jane", "Doe", "referral", t("03T15:00:00")),
        customer_status(john, "lead", "active", t("03T16:00:00")),
        job_created(moved, john, "local_move", 80_000, t("03T16:05:00")),
        job_scheduled(
            moved,
            date("2025-03-05"),
            "08:00:00",
            "12:00:00",
            t("03T16:10:00"),
        ),
        crew_assigned(moved, ana, t("03T16:11:00")),
        job_started(moved, t("05T13:00:00")),
        job_completed(moved, 95_000, t("05T17:00:00")),
        job_created(cancelled, jane, "packing", 30_000, t("04T10:00:00")),
        job_scheduled(
            cancelled,
            date("2025-03-06"),
            "13:00:00",
            "17:00:00",
            t("04T10:05:00"),
        ),
        crew_assigned(cancelled, bo, t("04T10:06:00")),
        job_cancelled(cancelled, "scheduled", t("04T18:00:00")),
        group_started(
            office_thread,
            "Office",
            &[dispatcher.id, sales.id],
            dispatcher.id,
            t("04T08:00:00"),
        ),
        message_posted(
            office_thread,
            1,
            dispatcher.id,
            "Morning! Truck 2 is in the shop.",
            t("04T08:01:00"),
        ),
        message_posted(
            office_thread,
            2,
            dispatcher.id,
            "Use truck 3 for the Smith job.",
            t("04T08:02:00"),
        ),
        message_posted(office_thread, 3, sales.id, "Noted.", t("04T08:30:00")),
        thread_read(office_thread, sales.id, 1, t("04T08:29:00")),
    ];
    let position = projector.flush(h, script).await;
    World {
        admin,
        dispatcher,
        sales,
        crew,
        analyst,
        outsider,
        john,
        jane,
        moved,
        cancelled,
        office_thread,
        position,
    }
}

fn json_of<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[tokio::test]
async fn every_view_matches_the_reference_fold_after_a_scripted_history() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let reference = &projector.reference;
    let min = format!("{MIN_POSITION_PARAM}={}", w.position);

    let today = BusinessTimeZone::parse("America/New_York")
        .unwrap()
        .local_date(Utc::now());
    let reply = h
        .get(
            &app,
            &format!("/v1/dashboard?from=2025-03-01&to=2025-03-31&{min}"),
            Some(&w.dispatcher),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.position(), w.position);
    assert_eq!(
        reply.body["data"],
        json_of(reference.dashboard(date("2025-03-01"), date("2025-03-31"), today))
    );
    assert_eq!(reply.body["data"]["totals"]["revenue_minor"], 95_000);

    let reply = h
        .get(&app, "/v1/calendar/week/2025-03-06", Some(&w.sales))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["data"],
        json_of(reference.calendar_week(date("2025-03-03")))
    );
    assert_eq!(reply.body["data"]["days"][3]["cancelled"], 1);

    let reply = h.get(&app, "/v1/customers", Some(&w.sales)).await;
    assert_eq!(
        reply.body["data"],
        json_of(reference.customers(&CustomerFilter::default()))
    );
    let reply = h
        .get(&app, "/v1/customers?status=active", Some(&w.sales))
        .await;
    let ids: Vec<&str> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![w.john.to_string()]);
    let reply = h
        .get(&app, "/v1/customers?search=Jon%20Smth", Some(&w.sales))
        .await;
    assert_eq!(
        reply.body["data"][0]["customer_id"],
        w.john.to_string(),
        "{}",
        reply.body
    );
    let reply = h
        .get(&app, &format!("/v1/customers/{}", w.jane), Some(&w.admin))
        .await;
    assert_eq!(reply.body["data"], json_of(reference.customer(w.jane)));

    let reply = h.get(&app, "/v1/jobs", Some(&w.dispatcher)).await;
    assert_eq!(
        reply.body["data"],
        json_of(reference.jobs(&JobFilter::default()))
    );
    let reply = h
        .get(&app, "/v1/jobs?status=completed", Some(&w.dispatcher))
        .await;
    assert_eq!(reply.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(reply.body["data"][0]["job_id"], w.moved.to_string());
    let reply = h
        .get(
            &app,
            &format!("/v1/jobs?customer={}", w.jane),
            Some(&w.dispatcher),
        )
        .await;
    assert_eq!(reply.body["data"][0]["job_id"], w.cancelled.to_string());
    let reply = h
        .get(&app, &format!("/v1/jobs/{}", w.moved), Some(&w.sales))
        .await;
    assert_eq!(reply.body["data"], json_of(reference.job(w.moved)));

    let reply = h.get(&app, "/v1/me/threads", Some(&w.sales)).await;
    assert_eq!(
        reply.body["data"],
        json_of(reference.user_threads(w.sales.id, false))
    );
    let reply = h.get(&app, "/v1/me/unread-count", Some(&w.sales)).await;
    assert_eq!(
        reply.body["data"],
        json_of(reference.unread_count(w.sales.id))
    );
    assert_eq!(reply.body["data"]["unread"], 1);
    // The dispatcher has not read the sales reply yet; the sales user has nothing unread
    // but the dispatcher's second message.
    let reply = h
        .get(&app, "/v1/me/threads?unread_only=true", Some(&w.dispatcher))
        .await;
    assert_eq!(
        reply.body["data"],
        json_of(reference.user_threads(w.dispatcher.id, true))
    );
    assert_eq!(reply.body["data"][0]["unread"], 1);
    let reply = h
        .get(&app, "/v1/me/threads?unread_only=true", Some(&w.admin))
        .await;
    assert_eq!(reply.body["data"], json!([]));
    let reply = h
        .get(
            &app,
            &format!("/v1/threads/{}/messages?limit=2", w.office_thread),
            Some(&w.sales),
        )
        .await;
    let seqs: Vec<u64> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 2]);
    assert_eq!(reply.body["has_more"], true);
    let next = reply.body["next_cursor"].as_str().unwrap();
    let reply = h
        .get(
            &app,
            &format!(
                "/v1/threads/{}/messages?limit=2&cursor={next}",
                w.office_thread
            ),
            Some(&w.sales),
        )
        .await;
    assert_eq!(reply.body["data"][0]["seq"], 1);
    assert_eq!(reply.body["has_more"], false);
    assert_eq!(reply.body["next_cursor"], Value::Null);
    let everything = reference.thread_messages(w.office_thread);
    assert_eq!(everything.len(), 3);

    let reply = h.get(&app, "/v1/checkpoint", Some(&w.crew)).await;
    assert_eq!(reply.position(), w.position);
}

#[tokio::test]
async fn other_users_threads_are_unreachable_by_id_list_or_unknown_id() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let path = format!("/v1/threads/{}/messages", w.office_thread);
    assert_eq!(h.get(&app, &path, Some(&w.outsider)).await.status, 403);
    assert_eq!(h.get(&app, &path, Some(&w.admin)).await.status, 403);
    assert_eq!(h.get(&app, &path, Some(&w.dispatcher)).await.status, 200);
    let unknown = format!("/v1/threads/{}/messages", uuid::Uuid::now_v7());
    assert_eq!(h.get(&app, &unknown, Some(&w.sales)).await.status, 404);
    let reply = h.get(&app, "/v1/me/threads", Some(&w.outsider)).await;
    assert_eq!(reply.body["data"], json!([]));
    let reply = h.get(&app, "/v1/me/unread-count", Some(&w.outsider)).await;
    assert_eq!(reply.body["data"]["unread"], 0);
    // There is no parameter that names another user.
    let reply = h
        .get(
            &app,
            &format!("/v1/me/threads?user={}", w.sales.id),
            Some(&w.outsider),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.bad_fields(), vec!["user"]);
}

#[tokio::test]
async fn roles_outside_a_resource_are_refused_and_missing_tokens_are_401() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    let refused = [
        ("/v1/dashboard", &w.crew),
        ("/v1/calendar/week/2025-03-05", &w.analyst),
        ("/v1/customers", &w.crew),
        ("/v1/customers", &w.analyst),
        ("/v1/jobs", &w.analyst),
        ("/v1/events", &w.sales),
    ];
    for (path, user) in refused {
        let reply = h.get(&app, path, Some(user)).await;
        assert_eq!(reply.status, 403, "{path} as {}", user.role);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/problem+json")
        );
    }
    let customer = format!("/v1/customers/{}", w.john);
    assert_eq!(h.get(&app, &customer, Some(&w.crew)).await.status, 403);
    assert_eq!(
        h.get(&app, "/v1/dashboard", Some(&w.analyst)).await.status,
        200
    );
    for path in [
        "/v1/dashboard",
        "/v1/me/threads",
        "/v1/checkpoint",
        customer.as_str(),
    ] {
        assert_eq!(h.get(&app, path, None).await.status, 401, "{path}");
        let reply = h
            .get_with(&app, path, None, &[("Authorization", "Bearer not-a-token")])
            .await;
        assert_eq!(reply.status, 401, "{path}");
    }
}

#[tokio::test]
async fn crew_callers_never_see_jobs_that_are_not_theirs() {
    let h = Harness::new().await;
    let mut projector = Projector::new();
    let w = scripted_world(&h, &mut projector).await;
    let app = h.start().await;
    // Ana's user account is linked to crew member Ana, assigned to `moved` only.
    let list = h.get(&app, "/v1/jobs", Some(&w.crew)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let listed: Vec<String> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, vec![w.moved.to_string()]);
    let own = h
        .get(&app, &format!("/v1/jobs/{}", w.moved), Some(&w.crew))
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    let other = h
        .get(&app, &format!("/v1/jobs/{}", w.cancelled), Some(&w.crew))
        .await;
    assert_eq!(other.status, 404, "{}", other.body);
    // Asking for another crew's list through the filter does not widen the view.
    let widened = h
        .get(
            &app,
            "/v1/jobs?crew=00000000-0000-7000-8000-000000000000",
            Some(&w.crew),
        )
        .await;
    assert!(!widened.body.to_string().contains(&w.cancelled.to_string()));
    for week in ["2025-03-03", "2025-03-05", "2025-03-10"] {
        let calendar = h
            .get(&app, &format!("/v1/calendar/week/{week}"), Some(&w.crew))
            .await;
        assert_eq!(calendar.status, 200, "{}", calendar.body);
        assert!(!calendar.body.to_string().contains(&w.cancelled.to_string()));
    }
    // A crew account with no crew-member record sees nothing.
    let stranger = h.user(Role::Crew);
    assert_eq!(h.get(&app, "/v1/jobs", Some(&stranger)).await.status, 403);
}

#[tokio::test]
async fn the_dashboard_defaults_to_the_last_thirty_days() {
    let h = Harness::new().await;
    let app = h.start().await;
    let reply = h
        .get(&app, "/v1/dashboard", Some(&h.user(Role::Admin)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let today = BusinessTimeZone::parse("America/New_York")
        .unwrap()
        .local_date(Utc::now());
    assert_eq!(reply.body["data"]["to"], today.to_string());
    assert_eq!(
        reply.body["data"]["from"],
        today.checked_sub_days(Days::new(29)).unwrap().to_string()
    );
}
