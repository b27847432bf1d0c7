//! The dashboard and a calendar week as of a past position or date are what the live models
//! showed then.

use domain::enums::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::bodies;

use super::system::{Staff, System};

const RANGE: &str = "from=2030-03-01&to=2030-03-31";
const WEEK: &str = "/v1/calendar/week/2030-03-13";

/// Creates, schedules and completes a job worth `revenue_minor`; the last command's position.
async fn completed_job(
    system: &System,
    staff: &Staff,
    customer: uuid::Uuid,
    revenue_minor: i64,
) -> u64 {
    let job = system
        .post("/v1/jobs", &staff.token, bodies::job(customer))
        .await;
    let path = |action: &str| format!("/v1/jobs/{}/{action}", job.id);
    let crew = system
        .post(
            "/v1/crew-members",
            &staff.token,
            json!({"name": "Olga Other"}),
        )
        .await;
    system
        .post(
            &path("crew"),
            &staff.token,
            json!({"crew_member_id": crew.id}),
        )
        .await;
    system
        .post(
            &path("schedule"),
            &staff.token,
            json!({"date": "2030-03-13", "window": {"start": "08:00", "end": "12:00"}}),
        )
        .await;
    system
        .command(reqwest::Method::POST, &path("start"), &staff.token, None)
        .await;
    system
        .post(
            &path("complete"),
            &staff.token,
            json!({"actual_revenue": {"amount_minor": revenue_minor, "currency": "USD"}}),
        )
        .await
        .position
}

async fn as_of(system: &System, token: &str, query: &str) -> (StatusCode, Value) {
    read(system, token, &format!("/v1/dashboard/as-of?{query}")).await
}

async fn read(system: &System, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    let (_, base) = system.base_urls();
    let answer = reqwest::Client::new()
        .get(format!("{base}{path_and_query}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the query API answers");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_as_of_a_position_or_a_date_is_what_the_live_model_showed_then() {
    let system = System::start().await;
    let admin = system.first_admin().await;
    let customer = system
        .post(
            "/v1/customers",
            &admin.token,
            bodies::customer("Asa", "Of", "asa.of@example.com", "+1 555 010 0031"),
        )
        .await;
    let first = completed_job(&system, &admin, customer.id, 100_000).await;
    let then = system
        .get(&format!("/v1/dashboard?{RANGE}"), &admin.token, first)
        .await;
    assert_eq!(then["position"], first, "nothing else was written: {then}");
    let week_then = system.get(WEEK, &admin.token, first).await;
    let second = completed_job(&system, &admin, customer.id, 250_000).await;
    let now = system
        .get(&format!("/v1/dashboard?{RANGE}"), &admin.token, second)
        .await;
    assert_ne!(
        now["data"], then["data"],
        "the second job changed the dashboard"
    );
    let week_now = system.get(WEEK, &admin.token, second).await;
    assert_ne!(
        week_now["data"], week_then["data"],
        "a second job that week"
    );

    let (status, past) = as_of(&system, &admin.token, &format!("position={first}&{RANGE}")).await;
    assert_eq!(status, StatusCode::OK, "{past}");
    assert_eq!(past["data"], then["data"]);
    assert_eq!(past["position"], first);
    let (_, latest) = as_of(&system, &admin.token, &format!("position={second}&{RANGE}")).await;
    assert_eq!(latest["data"], now["data"]);
    // Every event was recorded today: the end of today is the latest position.
    let today = now["data"]["today"]["date"]
        .as_str()
        .expect("the dashboard names its today")
        .to_owned();
    let (_, by_date) = as_of(&system, &admin.token, &format!("date={today}&{RANGE}")).await;
    assert_eq!(by_date["data"], now["data"]);
    assert_eq!(by_date["position"], second);

    let week_as_of = |query: String| format!("/v1/calendar/as-of?{query}");
    let (status, past_week) = read(
        &system,
        &admin.token,
        &week_as_of(format!("position={first}&week=2030-03-15")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{past_week}");
    assert_eq!(past_week["data"], week_then["data"]);
    assert_eq!(past_week["position"], first);
    let (_, week_by_date) = read(
        &system,
        &admin.token,
        &week_as_of(format!("date={today}&week=2030-03-11")),
    )
    .await;
    assert_eq!(week_by_date["data"], week_now["data"]);
    // Without `week`, the week of the as-of day.
    let (_, this_week) = read(&system, &admin.token, &week_as_of(format!("date={today}"))).await;
    assert_eq!(this_week["data"]["days"].as_array().map(Vec::len), Some(7));
    assert!(
        this_week["data"]["days"]
            .as_array()
            .unwrap()
            .iter()
            .any(|day| day["date"] == today.as_str()),
        "{this_week}"
    );

    let (status, beyond) = as_of(
        &system,
        &admin.token,
        &format!("position={}", second + 1000),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{beyond}");
    assert!(beyond.to_string().contains("position"), "{beyond}");
    let (status, neither) = as_of(&system, &admin.token, RANGE).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{neither}");
    let crew = system.member(&admin, "Cris Crew", Role::Crew).await;
    let (status, _) = as_of(&system, &crew.token, &format!("position={first}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let analyst = system.member(&admin, "Ana Lyst", Role::Analyst).await;
    let (status, _) = read(
        &system,
        &analyst.token,
        &week_as_of(format!("position={first}")),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "analysts may not read the calendar"
    );
    system.stop().await;
}
