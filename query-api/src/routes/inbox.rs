//! The caller's inbox (`/v1/me/…`) and the messages of a thread they take part in.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use domain::ids::ThreadId;
use platform::auth::Caller;
use platform::problem::Problem;
use read_models::query;
use read_models::Model;

use super::{path_id, query_failed, AppState};
use crate::cursor::ListScope;
use crate::params::Params;
use crate::respond::{json_ok, ApiError, ViewBody};

/// The caller's threads, most recent activity first.
#[utoipa::path(
    get,
    path = "/v1/me/threads",
    tag = "messages",
    params(
        ("unread_only" = Option<bool>, Query, description = "Only threads with unread messages (default false)."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page, 1..=100 (default 20)."),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page; valid only for the same user and `unread_only`."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data[]`: {thread_id, kind (direct|group|job), job_id, title, participants[] {user_id, name} (for direct threads: the other user), unread, last_seq, last_message_at, preview, last_author_id, activity_at}, sorted by activity_at desc, thread id desc. `total` when the read model has it.", body = super::schemas::PageEnvelope<super::schemas::ThreadItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid parameters or a cursor of another list or user.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn my_threads(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut params = Params::parse(&uri, &["unread_only", "limit", "cursor"]);
    let min_position = params.min_position(&headers);
    let unread_only = params.boolean("unread_only").unwrap_or(false);
    let limit = params.limit();
    let cursor = params.cursor();
    params.finish()?;
    let scope = ListScope::new(
        "me/threads",
        &[
            ("user", Some(caller.user_id.to_string())),
            ("unread_only", Some(unread_only.to_string())),
        ],
    );
    let page = app.page_request(&scope, limit, cursor.as_deref())?;
    let position = app.consistent(min_position).await?;
    let gens = app.freshness.generations();
    let threads = query::user_threads(
        app.docs.as_ref(),
        &gens,
        caller.user_id,
        unread_only,
        page.clone(),
    );
    app.page_answer(
        &headers,
        &scope,
        gens.get(Model::Inbox),
        page,
        position,
        threads,
    )
    .await
}

/// The caller's unread message and thread counts.
#[utoipa::path(
    get,
    path = "/v1/me/unread-count",
    tag = "messages",
    params(super::MinPositionQuery),
    responses(
        (status = 200, description = "`data`: {user_id, unread (messages), unread_threads, threads}. The caller's own messages never count as unread.", body = super::schemas::ViewEnvelope<super::schemas::UnreadCountView>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Unknown parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn my_unread_count(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut params = Params::parse(&uri, &[]);
    let min_position = params.min_position(&headers);
    params.finish()?;
    let position = app.consistent(min_position).await?;
    let gens = app.freshness.generations();
    let view = query::unread_count(app.docs.as_ref(), &gens, caller.user_id)
        .await
        .map_err(query_failed)?;
    Ok(json_ok(
        &headers,
        position,
        &ViewBody {
            data: view,
            position,
        },
    ))
}

/// The messages of a thread, newest first; participants only.
#[utoipa::path(
    get,
    path = "/v1/threads/{id}/messages",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Thread id."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Items per page, 1..=100 (default 20)."),
        ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the previous page of the same thread."),
        super::MinPositionQuery,
    ),
    responses(
        (status = 200, description = "`data[]`: {seq, message_id, author_id, author_name, body, posted_at}, seq descending. `total` when the read model has it.", body = super::schemas::PageEnvelope<super::schemas::MessageItem>, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Invalid id, parameters or cursor.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid bearer token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller does not take part in the thread.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such thread.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not yet consistent with `min_position`.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn thread_messages(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let thread: ThreadId = path_id(path, "id")?;
    let mut params = Params::parse(&uri, &["limit", "cursor"]);
    let min_position = params.min_position(&headers);
    let limit = params.limit();
    let cursor = params.cursor();
    params.finish()?;
    let scope = ListScope::new(
        "threads/messages",
        &[
            ("thread", Some(thread.to_string())),
            ("user", Some(caller.user_id.to_string())),
        ],
    );
    let page = app.page_request(&scope, limit, cursor.as_deref())?;
    let position = app.consistent(min_position).await?;
    let gens = app.freshness.generations();
    let meta = query::thread_meta(app.docs.as_ref(), &gens, thread)
        .await
        .map_err(query_failed)?
        .ok_or_else(|| Problem::not_found(format!("no thread {thread}")))?;
    if !meta.is_participant(caller.user_id) {
        return Err(Problem::forbidden("only the participants of a thread may read it").into());
    }
    let messages = query::thread_messages(app.docs.as_ref(), &gens, thread, page.clone());
    app.page_answer(
        &headers,
        &scope,
        gens.get(Model::Messages),
        page,
        position,
        messages,
    )
    .await
}
