//! Tag `power`: notices (公告).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::{NoticeContent, NoticeTitle, app};
use subledger_domain::ids::{AccountId, NoticeId};
use subledger_service::notices::{NewNotice, Notice, NoticeChanges, NoticeFilter};

use super::params::Params;
use super::{Auth, PathValue, Refusal, created, list, millis, ok};
use crate::AppState;

/// `Notice`. `targets` is the comma-separated ids of the sub-users it is
/// aimed at; empty: every sub-user.
#[derive(Serialize)]
struct NoticeView {
    uid: i64,
    createtime: i64,
    content: String,
    id: i64,
    title: String,
    targets: String,
}

fn view(uid: i64, n: Notice) -> NoticeView {
    let targets = n.targets.iter().map(|a| a.0.to_string()).collect::<Vec<_>>().join(",");
    NoticeView { uid, createtime: millis(n.created_at_us), content: n.content, id: n.id.0, title: n.title, targets }
}

/// `targets`: comma-separated sub-user ids; blanks between commas are skipped.
fn parse_targets(text: &str) -> Result<Vec<AccountId>, Refusal> {
    text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(|t| super::params::parse_int64("targets", t).map(AccountId)).collect()
}

fn title(text: &str) -> Result<NoticeTitle, Refusal> {
    NoticeTitle::parse(text).map_err(|e| Refusal::invalid("title", e.to_string()))
}

fn content(text: &str) -> Result<NoticeContent, Refusal> {
    NoticeContent::parse(text).map_err(|e| Refusal::invalid("content", e.to_string()))
}

/// `GET /power/notice`: the notices the caller sees (a sub-user: those aimed
/// at it or at everyone), newest first, filtered by `id` and part of `title`.
pub async fn list_notices(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::NOTICES_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let filter = NoticeFilter { id: params.int64("id")?.map(NoticeId), title: params.text("title").map(str::to_owned), visible_to: auth.caller.sub_user() };
    let notices = state.services.notices(&auth.tenant, &filter).await?;
    let total = notices.len() as i64;
    let uid = auth.tenant.id.0;
    Ok(list(Some(total), notices.into_iter().skip(page.offset as usize).take(page.limit as usize).map(|n| view(uid, n)).collect()))
}

/// `POST /power/notice`: 201, `Location` naming the new notice.
pub async fn create_notice(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::NOTICES_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let new = NewNotice { title: title(params.required("title")?)?, content: content(params.required("content")?)?, targets: parse_targets(params.text("targets").unwrap_or_default())? };
    let notice = state.services.create_notice(&auth.tenant, new, &auth.caller.change()).await?;
    Ok(created(format!("/rest/power/notice/{}", notice.id.0)))
}

/// `GET /power/notice/{noticeId}`.
pub async fn get_notice(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::NOTICES_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let id = NoticeId(id.id("noticeId")?);
    let notice = state.services.notice(&auth.tenant, id, auth.caller.sub_user()).await?;
    Ok(ok(view(auth.tenant.id.0, notice)))
}

/// `PUT /power/notice/{noticeId}`: the fields given change; `targets` given
/// empty aims the notice at everyone.
pub async fn update_notice(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::NOTICES_MANAGE)?;
    params.check_uid(&auth.tenant, true)?;
    let id = NoticeId(id.id("noticeId")?);
    let changes = NoticeChanges {
        title: params.text("title").map(title).transpose()?,
        content: params.text("content").map(content).transpose()?,
        targets: params.given("targets").map(parse_targets).transpose()?,
    };
    state.services.update_notice(&auth.tenant, id, changes, &auth.caller.change()).await?;
    Ok(ok(()))
}

/// `DELETE /power/notice/{noticeId}`.
pub async fn delete_notice(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::NOTICES_MANAGE)?;
    params.check_uid(&auth.tenant, true)?;
    let id = NoticeId(id.id("noticeId")?);
    state.services.delete_notice(&auth.tenant, id, &auth.caller.change()).await?;
    Ok(ok(()))
}
