//! Tag `power`: the operation log.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::app;
use subledger_service::oplog::{OperationFilter, OperationView};

use super::params::Params;
use super::{Auth, Refusal, list, millis};
use crate::AppState;

/// `OpLogSubUser`: one entry of the operation log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpLogSubUser {
    uid: i64,
    id: i64,
    time: i64,
    opdescribe: String,
    /// The sub-user who made the change; null for the enterprise's own
    /// credentials, the administrator, the CLI and subledger itself.
    sub_user_name: Option<String>,
}

/// Longest `subUserName` filter (a username is shorter).
const NAME_BYTES_MAX: usize = 200;

/// `GET /power/oplog`: entries newest first, filtered by sub-user, id and
/// time range (`yyyy-MM-dd HH:mm:ss` in the enterprise's zone, both
/// included). No total: counting a long log costs more than a page.
pub async fn oplog(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::OPLOG_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let time = |name: &str| params.text(name).map(|text| auth.tenant.timezone.parse_local_time(text).map_err(|e| Refusal::invalid(name, e.to_string()))).transpose();
    let (from_us, until_us) = (time("startTime")?, time("endTime")?);
    // A range ending within its last second: `endTime` 12:00:00 includes 12:00:00.999.
    let until_us = until_us.map(|us| us + 999_999);
    if let (Some(from), Some(until)) = (from_us, until_us)
        && from > until
    {
        return Err(Refusal::invalid("endTime", "must not be before startTime"));
    }
    let actor_name = params.text("subUserName");
    if actor_name.is_some_and(|name| name.len() > NAME_BYTES_MAX) {
        return Err(Refusal::invalid("subUserName", format!("at most {NAME_BYTES_MAX} bytes")));
    }
    let filter = OperationFilter { id: params.int64("id")?, actor_name, kind: None, from_us, until_us };
    let entries = state.services.operations(&auth.tenant, &filter, page).await?;
    let uid = auth.tenant.id.0;
    let view = |e: OperationView| OpLogSubUser { uid, id: e.id, time: millis(e.at_us), sub_user_name: e.actor.username().map(str::to_owned), opdescribe: e.description };
    Ok(list(None, entries.into_iter().map(view).collect()))
}
