//! Answers rendered once and reused: the encoded `data` of a view or a page of a list, kept in
//! the document store's cache of rendered answers until the next change of the read models
//! (see [`crate::docs`]).

use axum::http::HeaderMap;
use axum::response::Response;
use read_models::query::{Page, PageRequest, QueryError};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{query_failed, App};
use crate::cursor::ListScope;
use crate::docs::Rendered;
use crate::respond::{json_ok_rendered, ApiError, PageBody, ViewBody};

/// Why an answer could not be rendered (kept apart from [`ApiError`], which is a finished
/// response: a failed rendering is shared by every request that waited for it).
#[derive(Debug, Clone)]
pub(super) enum RenderError {
    Query(QueryError),
    Encode(String),
}

impl RenderError {
    pub(super) fn into_api(self) -> ApiError {
        match self {
            RenderError::Query(error) => query_failed(error),
            RenderError::Encode(reason) => ApiError::internal("encoding an answer", reason),
        }
    }
}

pub(super) fn encode(value: &impl Serialize) -> Result<Box<RawValue>, RenderError> {
    serde_json::value::to_raw_value(value).map_err(|error| RenderError::Encode(error.to_string()))
}

impl App {
    /// Answers with one page of the list `scope`, rendered by `query` unless the same page
    /// was rendered since the read models last changed. `generation` is that of the model
    /// the list belongs to; the page is named by the list (route, filters, user), the page
    /// size and the cursor's keyset position.
    pub async fn page_answer<T, F>(
        &self,
        headers: &HeaderMap,
        scope: &ListScope,
        generation: u32,
        page: PageRequest,
        position: u64,
        query: F,
    ) -> Result<Response, ApiError>
    where
        T: Serialize,
        F: std::future::Future<Output = Result<Page<T>, QueryError>>,
    {
        let view = format!(
            "{}|g{generation}|{}|{}",
            scope.view_key(),
            page.limit,
            page.after
                .as_ref()
                .map(|key| key.0.to_string())
                .unwrap_or_default()
        );
        let rendered = self
            .docs
            .rendered(view, async {
                let page = query.await.map_err(RenderError::Query)?;
                Ok(Rendered::page(
                    encode(&page.items)?,
                    page.next.map(|key| self.cursors.encode(scope, &key.0)),
                    page.total,
                ))
            })
            .await
            .map_err(RenderError::into_api)?;
        Ok(json_ok_rendered(
            headers,
            position,
            &PageBody {
                data: &*rendered.data,
                has_more: rendered.next_cursor.is_some(),
                next_cursor: rendered.next_cursor.clone(),
                position,
                total: rendered.total,
            },
            &rendered.start,
        ))
    }
}

/// The answer around a rendered view. The body is built here and in [`App::page_answer`]
/// only, from the same [`Rendered`] whose hashed start finishes its ETag.
pub(super) fn view_answer(headers: &HeaderMap, position: u64, view: &Rendered) -> Response {
    json_ok_rendered(
        headers,
        position,
        &ViewBody {
            data: &*view.data,
            position,
        },
        &view.start,
    )
}
