//! `/v1/notices`: a tenant's notices. A sub-user sees those aimed at it and
//! those without targets; the tenant's token sees all.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use subledger_domain::access::{NOTICE_TARGETS_MAX, NoticeContent, NoticeTitle};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::{AccountId, NoticeId};
use subledger_service::notices::{NewNotice, Notice, NoticeChanges, NoticeFilter};
use utoipa::{IntoParams, ToSchema};

use super::accounts::invalid;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct NoticeView {
    pub id: i64,
    pub title: String,
    pub content: String,
    /// Account ids it is aimed at; empty: every sub-user.
    pub targets: Vec<i64>,
    pub created_at: String,
}

impl From<Notice> for NoticeView {
    fn from(notice: Notice) -> Self {
        NoticeView {
            id: notice.id.0,
            title: notice.title,
            content: notice.content,
            targets: notice.targets.into_iter().map(|a| a.0).collect(),
            created_at: from_unix_micros(notice.created_at_us).to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NoticeList {
    pub items: Vec<NoticeView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NoticeQuery {
    pub id: Option<i64>,
    /// Part of the title.
    pub title: Option<String>,
}

/// List notices (newest first, at most 500)
#[utoipa::path(get, path = "/v1/notices", tag = "access", security(("api_token" = []), ("session_token" = [])), params(NoticeQuery),
    responses((status = 200, body = NoticeList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(Granted { tenant, caller, .. }: Granted<need::NoticesView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<NoticeQuery>) -> Result<Json<NoticeList>, ApiError> {
    let filter = NoticeFilter { id: query.id.map(NoticeId), title: query.title, visible_to: caller.sub_user() };
    let notices = state.services.notices(&tenant, &filter).await?;
    Ok(Json(NoticeList { items: notices.into_iter().map(NoticeView::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeBody {
    /// 1 to 100 characters.
    pub title: String,
    /// 1 to 5000 characters.
    pub content: String,
    /// Account ids of the tenant (at most 1000); none: every sub-user.
    #[serde(default)]
    pub targets: Vec<i64>,
}

fn targets(ids: Vec<i64>) -> Result<Vec<AccountId>, ApiError> {
    if ids.len() > NOTICE_TARGETS_MAX {
        return Err(ApiError::bad_request("invalid_targets", "at most 1000 targets"));
    }
    Ok(ids.into_iter().map(AccountId).collect())
}

/// Publish a notice
#[utoipa::path(post, path = "/v1/notices", tag = "access", security(("api_token" = []), ("session_token" = [])), request_body = NoticeBody,
    responses((status = 201, body = NoticeView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(Granted { tenant, caller, .. }: Granted<need::NoticesManage>, State(state): State<AppState>, ApiJson(body): ApiJson<NoticeBody>) -> Result<impl IntoResponse, ApiError> {
    let new = NewNotice {
        title: NoticeTitle::parse(&body.title).map_err(|e| invalid("invalid_title", e))?,
        content: NoticeContent::parse(&body.content).map_err(|e| invalid("invalid_content", e))?,
        targets: targets(body.targets)?,
    };
    let notice = state.services.create_notice(&tenant, new, &caller.change()).await?;
    Ok((StatusCode::CREATED, Json(NoticeView::from(notice))))
}

/// Show a notice
#[utoipa::path(get, path = "/v1/notices/{notice_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("notice_id" = i64, Path)),
    responses((status = 200, body = NoticeView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(Granted { tenant, caller, .. }: Granted<need::NoticesView>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<Json<NoticeView>, ApiError> {
    Ok(Json(state.services.notice(&tenant, NoticeId(id), caller.sub_user()).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeChangesBody {
    pub title: Option<String>,
    pub content: Option<String>,
    /// Replaces the targets; `[]`: every sub-user.
    pub targets: Option<Vec<i64>>,
}

/// Change a notice
#[utoipa::path(patch, path = "/v1/notices/{notice_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("notice_id" = i64, Path)), request_body = NoticeChangesBody,
    responses((status = 200, body = NoticeView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    Granted { tenant, caller, .. }: Granted<need::NoticesManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NoticeChangesBody>,
) -> Result<Json<NoticeView>, ApiError> {
    let changes = NoticeChanges {
        title: body.title.as_deref().map(NoticeTitle::parse).transpose().map_err(|e| invalid("invalid_title", e))?,
        content: body.content.as_deref().map(NoticeContent::parse).transpose().map_err(|e| invalid("invalid_content", e))?,
        targets: body.targets.map(targets).transpose()?,
    };
    Ok(Json(state.services.update_notice(&tenant, NoticeId(id), changes, &caller.change()).await?.into()))
}

/// Delete a notice
#[utoipa::path(delete, path = "/v1/notices/{notice_id}", tag = "access", security(("api_token" = []), ("session_token" = [])), params(("notice_id" = i64, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(Granted { tenant, caller, .. }: Granted<need::NoticesManage>, State(state): State<AppState>, ApiPath(id): ApiPath<i64>) -> Result<StatusCode, ApiError> {
    state.services.delete_notice(&tenant, NoticeId(id), &caller.change()).await?;
    Ok(StatusCode::NO_CONTENT)
}
