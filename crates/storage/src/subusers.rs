//! Sub-users: an account's seat fields, login state and application grants
//! (`account_apps`: granted 1, revoked 0), and listings by seat fields.

use subledger_domain::access::AppId;
use subledger_domain::ids::{AccountId, RoleId, TenantId};

use crate::accounts::{AccountRecord, COLUMNS};
use crate::{Backend, Result, Store, WriteTx};

/// What a login checks, read by username.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LoginState {
    pub id: i64,
    pub username: String,
    pub password_hash: Option<String>,
    pub access_state: i64,
    pub failed_logins: i64,
    pub locked_until_us: Option<i64>,
}

pub async fn login_state(store: &Store, tenant: TenantId, username: &str) -> Result<Option<LoginState>> {
    Ok(sqlx::query_as("SELECT id, username, password_hash, access_state, failed_logins, locked_until_us FROM accounts WHERE tenant_id = $1 AND username = $2")
        .bind(tenant.0)
        .bind(username)
        .fetch_optional(store.reader())
        .await?)
}

/// Counts a failed login; at the `failures_max`-th in a row the account
/// locks until `lock_until_us` and the count starts over. The lock it is
/// under afterwards (`None`: not locked). One statement, so that concurrent
/// failures each count.
pub async fn count_failed_login(tx: &mut WriteTx, tenant: TenantId, account: AccountId, failures_max: i64, lock_until_us: i64) -> Result<Option<i64>> {
    let locked: Option<Option<i64>> = sqlx::query_scalar(
        "UPDATE accounts SET
            failed_logins = CASE WHEN failed_logins + 1 >= $3 THEN 0 ELSE failed_logins + 1 END,
            locked_until_us = CASE WHEN failed_logins + 1 >= $3 THEN $4 ELSE locked_until_us END
         WHERE id = $1 AND tenant_id = $2 RETURNING locked_until_us",
    )
    .bind(account.0)
    .bind(tenant.0)
    .bind(failures_max)
    .bind(lock_until_us)
    .fetch_optional(tx.conn())
    .await?;
    Ok(locked.flatten())
}

/// A successful login: the failure count and any lock are cleared.
pub async fn count_login(tx: &mut WriteTx, account: AccountId, now_us: i64) -> Result<()> {
    sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until_us = NULL, last_login_at_us = $2, logins = logins + 1 WHERE id = $1").bind(account.0).bind(now_us).execute(tx.conn()).await?;
    Ok(())
}

/// Changes to a seat; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatChanges<'a> {
    pub person_name: Option<&'a str>,
    pub job_number: Option<&'a str>,
    pub extension: Option<i64>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub department: Option<&'a str>,
    pub note: Option<&'a str>,
    /// `Some(None)` takes the role away.
    pub role: Option<Option<RoleId>>,
    pub role_template: Option<bool>,
    pub funding: Option<&'a str>,
    /// 1 enabled, 2 disabled, 3 cancelled.
    pub access_state: Option<i64>,
    /// A new password's hash; it also clears failed logins and any lock.
    pub password_hash: Option<&'a str>,
}

/// Applies [`SeatChanges`] to one of the tenant's accounts; `None` if it has
/// no such account. A phone another account uses is `UniqueViolation` `AccountPhone`.
pub async fn update_seat(tx: &mut WriteTx, tenant: TenantId, account: AccountId, changes: &SeatChanges<'_>, now_us: i64) -> Result<Option<AccountRecord>> {
    let sql = format!(
        "UPDATE accounts SET
            person_name = COALESCE($3, person_name), job_number = COALESCE($4, job_number), extension = COALESCE($5, extension),
            email = COALESCE($6, email), phone = COALESCE($7, phone), department = COALESCE($8, department), note = COALESCE($9, note),
            role_id = CASE WHEN $10 = 1 THEN $11 ELSE role_id END, role_template = COALESCE($12, role_template),
            funding = COALESCE($13, funding), access_state = COALESCE($14, access_state),
            password_hash = COALESCE($15, password_hash),
            failed_logins = CASE WHEN $15 IS NULL THEN failed_logins ELSE 0 END,
            locked_until_us = CASE WHEN $15 IS NULL THEN locked_until_us ELSE NULL END,
            updated_at_us = $16
         WHERE id = $1 AND tenant_id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(account.0)
        .bind(tenant.0)
        .bind(changes.person_name)
        .bind(changes.job_number)
        .bind(changes.extension)
        .bind(changes.email)
        .bind(changes.phone)
        .bind(changes.department)
        .bind(changes.note)
        .bind(i64::from(changes.role.is_some()))
        .bind(changes.role.flatten().map(|r| r.0))
        .bind(changes.role_template.map(i64::from))
        .bind(changes.funding)
        .bind(changes.access_state)
        .bind(changes.password_hash)
        .bind(now_us)
        .fetch_optional(tx.conn())
        .await?)
}

/// One of the tenant's accounts by id; another tenant's is `None`.
pub async fn get(store: &Store, tenant: TenantId, account: AccountId) -> Result<Option<SubUserRecord>> {
    let sql = format!("SELECT {}, r.name AS role_name FROM accounts a LEFT JOIN roles r ON r.id = a.role_id WHERE a.id = $1 AND a.tenant_id = $2", qualified());
    Ok(sqlx::query_as(&sql).bind(account.0).bind(tenant.0).fetch_optional(store.reader()).await?)
}

/// [`get`] inside a write transaction, without the role's name.
pub async fn get_in_tx(tx: &mut WriteTx, tenant: TenantId, account: AccountId) -> Result<Option<AccountRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1 AND tenant_id = $2");
    Ok(sqlx::query_as(&sql).bind(account.0).bind(tenant.0).fetch_optional(tx.conn()).await?)
}

/// An account with its role's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubUserRecord {
    #[sqlx(flatten)]
    pub account: AccountRecord,
    pub role_name: Option<String>,
}

/// Which sub-users a listing returns; every filter optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubUserQuery<'a> {
    pub id: Option<AccountId>,
    /// Exact.
    pub username: Option<&'a str>,
    /// Part of the name (case-sensitive).
    pub person_name: Option<&'a str>,
    /// Exact.
    pub job_number: Option<&'a str>,
    pub extension: Option<i64>,
    /// Part of the role's name (case-sensitive).
    pub role_name: Option<&'a str>,
    pub access_state: Option<i64>,
}

fn qualified() -> String {
    COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
}

/// `haystack` holds the parameter `?`, the same way on both backends (no
/// `LIKE`, whose case rules differ between them).
fn contains(backend: Backend, haystack: &str) -> String {
    match backend {
        Backend::Sqlite => format!("instr({haystack}, ?) > 0"),
        Backend::Postgres => format!("strpos({haystack}, ?) > 0"),
    }
}

/// The `WHERE` of a listing, from $1 (the tenant); the next free parameter.
fn conditions(backend: Backend, query: &SubUserQuery<'_>) -> (String, usize) {
    let wanted = [
        (query.id.is_some(), "a.id = ?".to_owned()),
        (query.username.is_some(), "a.username = ?".to_owned()),
        (query.person_name.is_some(), contains(backend, "a.person_name")),
        (query.job_number.is_some(), "a.job_number = ?".to_owned()),
        (query.extension.is_some(), "a.extension = ?".to_owned()),
        (query.role_name.is_some(), contains(backend, "r.name")),
        (query.access_state.is_some(), "a.access_state = ?".to_owned()),
    ];
    let mut sql = String::from(" WHERE a.tenant_id = $1");
    let mut next = 2;
    for (_, condition) in wanted.iter().filter(|(present, _)| *present) {
        sql.push_str(" AND ");
        sql.push_str(&condition.replace('?', &format!("${next}")));
        next += 1;
    }
    (sql, next)
}

/// Binds a listing's parameters in the order [`conditions`] numbers them.
macro_rules! bind_query {
    ($statement:expr, $tenant:expr, $query:expr) => {{
        let mut statement = $statement.bind($tenant.0);
        if let Some(id) = $query.id {
            statement = statement.bind(id.0);
        }
        if let Some(username) = $query.username {
            statement = statement.bind(username);
        }
        if let Some(name) = $query.person_name {
            statement = statement.bind(name);
        }
        if let Some(job) = $query.job_number {
            statement = statement.bind(job);
        }
        if let Some(extension) = $query.extension {
            statement = statement.bind(extension);
        }
        if let Some(role) = $query.role_name {
            statement = statement.bind(role);
        }
        if let Some(state) = $query.access_state {
            statement = statement.bind(state);
        }
        statement
    }};
}

/// How many of the tenant's accounts match, and a page of them by id.
pub async fn list(store: &Store, tenant: TenantId, query: &SubUserQuery<'_>, offset: i64, limit: i64) -> Result<(i64, Vec<SubUserRecord>)> {
    let (conditions, next) = conditions(store.backend(), query);
    let from = "FROM accounts a LEFT JOIN roles r ON r.id = a.role_id";
    let count_sql = format!("SELECT COUNT(*) {from}{conditions}");
    let total: i64 = bind_query!(sqlx::query_scalar(&count_sql), tenant, query).fetch_one(store.reader()).await?;
    if limit == 0 {
        return Ok((total, Vec::new()));
    }
    let page_sql = format!("SELECT {}, r.name AS role_name {from}{conditions} ORDER BY a.id LIMIT ${next} OFFSET ${}", qualified(), next + 1);
    let rows = bind_query!(sqlx::query_as(&page_sql), tenant, query).bind(limit).bind(offset).fetch_all(store.reader()).await?;
    Ok((total, rows))
}

/// Which of these ids are accounts of the tenant.
pub async fn existing(store: &Store, tenant: TenantId, accounts: &[AccountId]) -> Result<Vec<AccountId>> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT id FROM accounts WHERE tenant_id = $1 AND {} ORDER BY id", crate::bills::in_ids(store.backend(), "id", 2));
    let ids: Vec<i64> = sqlx::query_scalar(&sql).bind(tenant.0).bind(crate::bills::ids_json(accounts)).fetch_all(store.reader()).await?;
    Ok(ids.into_iter().map(AccountId).collect())
}

/// What decides an account's applications: its role's template (when it
/// applies) and its own grants (`true`) and revocations (`false`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantRows {
    pub role_template: Vec<AppId>,
    pub own: Vec<(AppId, bool)>,
}

/// [`GrantRows`] of an account, in one query (authentication reads it on every call).
pub async fn grant_rows(store: &Store, account: AccountId) -> Result<GrantRows> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT ra.app_id, 1, 1 FROM accounts a JOIN role_apps ra ON ra.role_id = a.role_id WHERE a.id = $1 AND a.role_template = 1
         UNION ALL
         SELECT app_id, granted, 0 FROM account_apps WHERE account_id = $1",
    )
    .bind(account.0)
    .fetch_all(store.reader())
    .await?;
    let mut grants = GrantRows::default();
    for (app, granted, from_role) in rows {
        if from_role == 1 {
            grants.role_template.push(AppId(app));
        } else {
            grants.own.push((AppId(app), granted == 1));
        }
    }
    Ok(grants)
}

/// Records grants (`true`) and revocations (`false`) of leaves for an
/// account, each replacing what it had for that leaf.
pub async fn set_grants(tx: &mut WriteTx, account: AccountId, grants: &[(AppId, bool)]) -> Result<()> {
    for (app, granted) in grants {
        sqlx::query("INSERT INTO account_apps (account_id, app_id, granted) VALUES ($1, $2, $3) ON CONFLICT (account_id, app_id) DO UPDATE SET granted = excluded.granted")
            .bind(account.0)
            .bind(app.0)
            .bind(i64::from(*granted))
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}
