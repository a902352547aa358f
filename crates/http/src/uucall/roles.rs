//! Tag `power`: roles and their application templates.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::{AppSet, Language, RoleName, app, parse_app_ids};
use subledger_domain::ids::RoleId;
use subledger_service::roles::{Role, RoleChanges};
use subledger_service::{Resource, ServiceError};

use super::error::default_field;
use super::params::Params;
use super::{Auth, PathValue, Refusal, created, list, ok};
use crate::AppState;

/// `Role`.
#[derive(Serialize)]
struct RoleView {
    uid: i64,
    id: i64,
    level: i64,
    name: String,
}

/// `CustomApplication`: one application, named in the enterprise's language.
#[derive(Serialize)]
pub struct CustomApplication {
    uid: i64,
    id: i64,
    name: &'static str,
    pid: i64,
}

/// The applications of a set as the spec lists them: tree order, parents
/// of what is held included, optionally only the children of `pid`.
pub fn applications(uid: i64, set: AppSet, language: Language, pid: Option<i64>) -> Vec<CustomApplication> {
    set.apps().filter(|a| pid.is_none_or(|p| a.pid == p)).map(|a| CustomApplication { uid, id: a.id.0, name: a.name(language), pid: a.pid }).collect()
}

/// `authAppIds` / `unAuthAppIds`: comma lists of application ids.
pub fn app_lists(params: &Params) -> Result<(Vec<subledger_domain::access::AppId>, Vec<subledger_domain::access::AppId>), Refusal> {
    let parse = |name: &str| parse_app_ids(params.text(name).unwrap_or_default()).map_err(|e| Refusal::invalid(name, e.to_string()));
    Ok((parse("authAppIds")?, parse("unAuthAppIds")?))
}

fn view(uid: i64, role: Role) -> RoleView {
    RoleView { uid, id: role.id.0, level: role.level, name: role.name }
}

fn role_name(text: &str) -> Result<RoleName, Refusal> {
    RoleName::parse(text).map_err(|e| Refusal::invalid("name", e.to_string()))
}

fn level(params: &Params) -> Result<Option<i64>, Refusal> {
    params.int64("level")
}

/// A role's name taken, or a role still assigned: about the parameter the caller sent.
fn role_refusal(error: ServiceError) -> Refusal {
    match error {
        ServiceError::Conflict(what) if what.contains("name") => Refusal::invalid("name", what),
        ServiceError::Conflict(what) => Refusal::invalid("roleId", what),
        other => Refusal::from_service(other, default_field),
    }
}

/// `GET /power/role`: the enterprise's roles, by part of `name`.
pub async fn list_roles(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let roles = state.services.roles(&auth.tenant, params.text("name")).await?;
    let uid = auth.tenant.id.0;
    Ok(list(Some(roles.len() as i64), roles.into_iter().skip(page.offset as usize).take(page.limit as usize).map(|r| view(uid, r)).collect()))
}

/// `POST /power/role`: `name` and `level` (default 0).
pub async fn create_role(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_MANAGE)?;
    params.check_uid(&auth.tenant, true)?;
    let name = role_name(params.required("name")?)?;
    let role = state.services.create_role(&auth.tenant, name, level(&params)?.unwrap_or(0), &auth.caller.change()).await.map_err(role_refusal)?;
    Ok(created(format!("/rest/power/role/{}", role.id.0)))
}

/// `PUT /power/role/{roleId}`: `name` and/or `level`.
pub async fn update_role(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let id = RoleId(id.id("roleId")?);
    let changes = RoleChanges { name: params.text("name").map(role_name).transpose()?, level: level(&params)? };
    state.services.update_role(&auth.tenant, id, changes, &auth.caller.change()).await.map_err(role_refusal)?;
    Ok(ok(()))
}

/// `DELETE /power/role/{roleId}`: refused (424) while a sub-user has the role.
pub async fn delete_role(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let id = RoleId(id.id("roleId")?);
    state.services.delete_role(&auth.tenant, id, &auth.caller.change()).await.map_err(role_refusal)?;
    Ok(ok(()))
}

/// `GET /power/role/auth/{roleId}`: the role's template as applications.
pub async fn role_apps(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let id = RoleId(id.id("roleId")?);
    let set = state.services.role_apps(&auth.tenant, id).await?;
    let apps = applications(auth.tenant.id.0, set, auth.tenant.language, None);
    Ok(list(Some(apps.len() as i64), apps))
}

/// `PUT /power/role/auth/{roleId}`: grants `authAppIds`, takes away `unAuthAppIds`.
pub async fn set_role_apps(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let id = RoleId(id.id("roleId")?);
    let (grant, revoke) = app_lists(&params)?;
    state.services.set_role_apps(&auth.tenant, id, &grant, &revoke, &auth.caller.change()).await.map_err(|e| match e {
        ServiceError::Invalid { field: "apps", reason } => Refusal::invalid("authAppIds", reason),
        ServiceError::NotFound(Resource::Role) => Refusal::unknown("roleId"),
        other => other.into(),
    })?;
    Ok(ok(()))
}
