//! Tag `power`: sub-users (`subuser`), sub-users with their roles
//! (`roleuser`), and sub-users' own grants (`subuser/auth`).

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use subledger_domain::access::app;
use subledger_domain::account::{AccessState, AccountStatus, Department, Email, Extension, JobNumber, Password, PersonName, Phone, SeatNote, Username};
use subledger_domain::ids::{AccountId, RoleId};
use subledger_service::accounts::Account;
use subledger_service::subusers::{NewSubUser, SubUserChanges, SubUserFilter, SubUserView};
use subledger_service::{Resource, ServiceError};

use super::error::default_field;
use super::params::Params;
use super::roles::{app_lists, applications};
use super::{Auth, PathValue, Refusal, created, list, millis, ok};
use crate::AppState;

/// The spec's longest login password, in bytes (on top of the core's rule:
/// 6 or more printable ASCII characters with a letter and a digit).
const PASSWORD_BYTES_MAX: usize = 15;

/// UUCall `state`: 1 valid, 2 disabled, 3 cancelled, 4 frozen. A cancelled
/// or disabled seat shows that whatever its money-side state; an enabled
/// one shows frozen (4) while its account is frozen.
fn state_code(account: &Account) -> i64 {
    match (account.access, account.status) {
        (AccessState::Cancelled, _) => 3,
        (AccessState::Disabled, _) => 2,
        (AccessState::Enabled, AccountStatus::Frozen) => 4,
        (AccessState::Enabled, AccountStatus::Active) => 1,
    }
}

/// `SubUser`. The password is never shown (`""`); what subledger does not
/// track (login IP, server, client) is null.
#[derive(Serialize)]
struct SubUser {
    uid: i64,
    state: i64,
    login_ip: Option<i64>,
    password: &'static str,
    history_online_count: i64,
    id: i64,
    createtime: i64,
    jobnumber: Option<String>,
    history_online_time: Option<i64>,
    login_time: Option<i64>,
    login_server: Option<String>,
    email: Option<String>,
    name: Option<String>,
    account: String,
    mphone: Option<String>,
    dept: Option<String>,
    login_version: Option<i64>,
    bind_ext: Option<i64>,
    note: Option<String>,
    login_os_info: Option<String>,
}

fn sub_user(uid: i64, a: Account) -> SubUser {
    SubUser {
        uid,
        state: state_code(&a),
        login_ip: None,
        password: "",
        history_online_count: a.seat.logins,
        id: a.id.0,
        createtime: millis(a.created_at_us),
        jobnumber: a.seat.job_number,
        history_online_time: None,
        login_time: a.seat.last_login_at_us.map(millis),
        login_server: None,
        email: a.email,
        name: a.seat.person_name,
        account: a.username,
        mphone: a.phone,
        dept: a.seat.department,
        login_version: None,
        bind_ext: a.seat.extension,
        note: a.seat.note,
        login_os_info: None,
    }
}

/// `SubUserRole`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubUserRole {
    id: i64,
    jobnumber: Option<String>,
    name: Option<String>,
    state: i64,
    account: String,
    role_name: Option<String>,
}

fn sub_user_role(v: SubUserView) -> SubUserRole {
    SubUserRole { id: v.account.id.0, state: state_code(&v.account), jobnumber: v.account.seat.job_number, name: v.account.seat.person_name, account: v.account.username, role_name: v.role_name }
}

/// Every refusal about a sub-user's fields names the spec's parameter.
fn field<T, E: std::fmt::Display>(name: &str, parsed: Result<T, E>) -> Result<T, Refusal> {
    parsed.map_err(|e| Refusal::invalid(name, e.to_string()))
}

fn text_of<T, E: std::fmt::Display>(params: &Params, name: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<Option<T>, Refusal> {
    params.text(name).map(|t| field(name, parse(t))).transpose()
}

fn password(text: &str) -> Result<Password, Refusal> {
    if text.len() > PASSWORD_BYTES_MAX {
        return Err(Refusal::invalid("password", format!("at most {PASSWORD_BYTES_MAX} bytes")));
    }
    field("password", Password::parse(text))
}

fn extension(params: &Params) -> Result<Option<Extension>, Refusal> {
    params.int64("bind_ext")?.map(|e| field("bind_ext", Extension::new(e))).transpose()
}

/// `state` of a filter or an update: 1 valid, 2 disabled, 3 cancelled, 4 frozen.
fn state_param(params: &Params) -> Result<Option<i64>, Refusal> {
    match params.int64("state")? {
        Some(s) if !(1..=4).contains(&s) => Err(Refusal::invalid("state", "must be 1 (valid), 2 (disabled), 3 (cancelled) or 4 (frozen)")),
        other => Ok(other),
    }
}

/// The sub-user refusals that name this operation's parameters.
fn sub_user_refusal(error: ServiceError) -> Refusal {
    match error {
        ServiceError::NotFound(Resource::Role) => Refusal::unknown("roleId"),
        ServiceError::Invalid { field: "role", reason } => Refusal::invalid("roleId", reason),
        other => Refusal::from_service(other, default_field),
    }
}

fn sub_user_id(id: &PathValue) -> Result<AccountId, Refusal> {
    id.id("subUserId").map(AccountId)
}

/// The filters `subuser` and `roleuser` share: a sub-user's id, account name,
/// person name, job number, extension, role name and state.
fn filter(params: &Params, username_param: &str) -> Result<SubUserFilter, Refusal> {
    Ok(SubUserFilter {
        id: params.int64("id")?.map(AccountId),
        username: params.text(username_param).map(str::to_owned),
        person_name: params.text("name").map(str::to_owned),
        job_number: params.text("jobnumber").map(str::to_owned),
        extension: params.int64("bind_ext")?,
        role_name: params.text("roleName").map(str::to_owned),
        access: match state_param(params)? {
            None => None,
            Some(1) => Some(AccessState::Enabled),
            Some(2) => Some(AccessState::Disabled),
            Some(3) => Some(AccessState::Cancelled),
            Some(_) => return Err(Refusal::invalid("state", "frozen (4) is a money-side state; list state 1 and read each sub-user's state")),
        },
    })
}

/// `GET /power/subuser`: the enterprise's sub-users, filtered.
pub async fn list_sub_users(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let (total, users) = state.services.sub_users(&auth.tenant, &filter(&params, "account")?, page).await?;
    let uid = auth.tenant.id.0;
    Ok(list(Some(total), users.into_iter().map(|v| sub_user(uid, v.account)).collect()))
}

/// `GET /power/subuser/{subUserId}`.
pub async fn get_sub_user(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_VIEW)?;
    params.check_uid(&auth.tenant, false)?;
    let view = state.services.sub_user(&auth.tenant, sub_user_id(&id)?).await?;
    Ok(ok(sub_user(auth.tenant.id.0, view.account)))
}

/// What a `SubUser` or `SubUserRole` body may change.
fn changes(params: &Params) -> Result<SubUserChanges, Refusal> {
    let access = match state_param(params)? {
        None => None,
        Some(1) => Some(AccessState::Enabled),
        Some(2) => Some(AccessState::Disabled),
        Some(_) => return Err(Refusal::invalid("state", "only 1 (valid) and 2 (disabled) can be set here: cancel with DELETE, freeze through the funds operations")),
    };
    Ok(SubUserChanges {
        person_name: text_of(params, "name", PersonName::parse)?,
        job_number: text_of(params, "jobnumber", JobNumber::parse)?,
        extension: extension(params)?,
        email: text_of(params, "email", Email::parse)?,
        phone: text_of(params, "mphone", Phone::parse)?,
        department: text_of(params, "dept", Department::parse)?,
        note: text_of(params, "note", SeatNote::parse)?,
        role: params.int64("roleId")?.map(|r| Some(RoleId(r))),
        role_template: role_template(params)?,
        access,
        password: params.text("password").map(password).transpose()?,
    })
}

/// `roleEnble`: 1 applies the role's application template, 2 does not.
fn role_template(params: &Params) -> Result<Option<bool>, Refusal> {
    match params.int64("roleEnble")? {
        None => Ok(None),
        Some(1) => Ok(Some(true)),
        Some(2) => Ok(Some(false)),
        Some(_) => Err(Refusal::invalid("roleEnble", "must be 1 (apply the role's template) or 2 (do not)")),
    }
}

/// `PUT /power/subuser/{subUserId}`: the fields given change.
pub async fn update_sub_user(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let id = sub_user_id(&id)?;
    state.services.update_sub_user(&auth.tenant, id, changes(&params)?, &auth.caller.change()).await.map_err(sub_user_refusal)?;
    Ok(ok(()))
}

/// `DELETE /power/subuser/{subUserId}`: cancels (state 3); never a hard delete.
pub async fn delete_sub_user(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    state.services.cancel_sub_user(&auth.tenant, sub_user_id(&id)?, &auth.caller.change()).await?;
    Ok(ok(()))
}

/// `GET /power/subuser/auth/{subUserId}`: what the sub-user may do, as
/// applications (its role's template, plus its grants, minus its
/// revocations); with `pid`, only the children of that application.
pub async fn sub_user_apps(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_VIEW)?;
    params.check_uid(&auth.tenant, false)?;
    let pid = params.int64("pid")?;
    let set = state.services.user_apps(&auth.tenant, sub_user_id(&id)?).await?;
    let apps = applications(auth.tenant.id.0, set, auth.tenant.language, pid);
    Ok(list(Some(apps.len() as i64), apps))
}

/// `PUT /power/subuser/auth/{subUserId}`: the sub-user's own grants and revocations.
pub async fn set_sub_user_apps(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ROLES_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let (grant, revoke) = app_lists(&params)?;
    state.services.set_user_apps(&auth.tenant, sub_user_id(&id)?, &grant, &revoke, &auth.caller.change()).await.map_err(|e| match e {
        ServiceError::Invalid { field: "apps", reason } => Refusal::invalid("authAppIds", reason),
        other => other.into(),
    })?;
    Ok(ok(()))
}

/// `GET /power/roleuser`: sub-users with their roles, filtered by `name`,
/// `subUserName`, `roleName`, `jobnumber`, `state`.
pub async fn list_role_users(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_VIEW)?;
    params.check_uid(&auth.tenant, true)?;
    let page = params.page()?;
    let (total, users) = state.services.sub_users(&auth.tenant, &filter(&params, "subUserName")?, page).await?;
    Ok(list(Some(total), users.into_iter().map(sub_user_role).collect()))
}

/// `POST /power/roleuser`: a new sub-user (`account`, `name`, `password`,
/// optional `jobnumber`, `roleId`, `roleEnble`); 201 with `Location`.
pub async fn create_role_user(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_MANAGE)?;
    params.check_uid(&auth.tenant, false)?;
    let new = NewSubUser {
        username: field("account", Username::parse(params.required("account")?))?,
        password: password(params.required("password")?)?,
        person_name: Some(field("name", PersonName::parse(params.required("name")?))?),
        job_number: text_of(&params, "jobnumber", JobNumber::parse)?,
        role: params.int64("roleId")?.map(RoleId),
        role_template: role_template(&params)?.unwrap_or(true),
        extension: extension(&params)?,
        email: text_of(&params, "email", Email::parse)?,
        phone: text_of(&params, "mphone", Phone::parse)?,
        department: text_of(&params, "dept", Department::parse)?,
        note: text_of(&params, "note", SeatNote::parse)?,
    };
    let account = state.services.create_sub_user(&auth.tenant, new, &auth.caller.change()).await.map_err(sub_user_refusal)?;
    Ok(created(format!("/rest/power/roleuser/{}", account.id.0)))
}

/// `GET /power/roleuser/{subUserId}`.
pub async fn get_role_user(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    auth.require(app::ACCOUNTS_VIEW)?;
    params.check_uid(&auth.tenant, false)?;
    Ok(ok(sub_user_role(state.services.sub_user(&auth.tenant, sub_user_id(&id)?).await?)))
}

/// `PUT /power/roleuser/{subUserId}`: the fields given change (`roleId`, `roleEnble` …).
pub async fn update_role_user(auth: Auth, id: PathValue, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    update_sub_user(auth, id, State(state), params).await
}
