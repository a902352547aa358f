//! `/v1/operations`: the tenant's operation log, newest first.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use subledger_domain::calendar::{from_unix_micros, to_unix_micros};
use subledger_domain::oplog::Outcome;
use subledger_domain::paging::Page;
use subledger_service::oplog::{OPERATIONS_PAGE_MAX, OperationFilter, OperationView};
use utoipa::{IntoParams, ToSchema};

use super::accounts::invalid;
use super::{ApiError, ApiQuery, ErrorBody, Granted, need};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct OperationJson {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// `tenant`, `sub_user`, `admin`, `cli` or `system`.
    pub actor: String,
    /// The sub-user's account id and name, when a sub-user acted.
    pub actor_account_id: Option<i64>,
    pub actor_username: Option<String>,
    /// The operation's code (`account.create`, `session.login` …).
    pub kind: String,
    pub subject: String,
    pub detail: String,
    /// `done`, or `refused`.
    pub outcome: String,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The entry in the tenant's language.
    pub description: String,
}

impl From<OperationView> for OperationJson {
    fn from(view: OperationView) -> Self {
        let (outcome, reason) = match view.outcome {
            Outcome::Done => ("done", None),
            Outcome::Refused(reason) => ("refused", Some(reason)),
        };
        OperationJson {
            id: view.id,
            at: from_unix_micros(view.at_us).to_string(),
            actor: view.actor.kind().to_owned(),
            actor_account_id: view.actor.account().map(|a| a.0),
            actor_username: view.actor.username().map(str::to_owned),
            kind: view.kind.code().to_owned(),
            subject: view.subject,
            detail: view.detail,
            outcome: outcome.to_owned(),
            reason,
            description: view.description,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OperationList {
    pub items: Vec<OperationJson>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OperationQuery {
    pub id: Option<i64>,
    /// Entries of this sub-user (its username).
    pub user: Option<String>,
    /// At or after, RFC 3339.
    pub from: Option<String>,
    /// At or before, RFC 3339.
    pub until: Option<String>,
    pub offset: Option<i64>,
    /// Default 50, at most 500.
    pub limit: Option<i64>,
}

fn instant(text: Option<&str>, code: &'static str) -> Result<Option<i64>, ApiError> {
    text.map(|t| t.parse::<jiff::Timestamp>().map(to_unix_micros)).transpose().map_err(|e| invalid(code, e))
}

/// Read the operation log
#[utoipa::path(get, path = "/v1/operations", tag = "access", security(("api_token" = []), ("session_token" = [])), params(OperationQuery),
    responses((status = 200, body = OperationList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(Granted { tenant, .. }: Granted<need::OplogView>, State(state): State<AppState>, ApiQuery(query): ApiQuery<OperationQuery>) -> Result<Json<OperationList>, ApiError> {
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(50), OPERATIONS_PAGE_MAX).map_err(|e| invalid("invalid_page", e))?;
    let filter = OperationFilter {
        id: query.id,
        actor_name: query.user.as_deref().filter(|u| !u.is_empty()),
        kind: None,
        from_us: instant(query.from.as_deref(), "invalid_from")?,
        until_us: instant(query.until.as_deref(), "invalid_until")?,
    };
    let entries = state.services.operations(&tenant, &filter, page).await?;
    Ok(Json(OperationList { items: entries.into_iter().map(OperationJson::from).collect() }))
}
