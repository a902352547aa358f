//! Who is calling, and what it may do.
//!
//! Every dialect authenticates its own way and ends with a [`Caller`]: the
//! tenant's own credentials (API token, SendCloud key, telephony token) have
//! every right; a sub-user's session has exactly its effective applications
//! (its role's template when it applies, plus its own grants, minus its own
//! revocations: `subledger_domain::access::effective_apps`). Those are read
//! from the database on every call, so a revocation, a disabled or cancelled
//! sub-user or a lock takes effect on the very next request.
//!
//! Each endpoint names the one leaf application it needs and asks
//! [`Caller::require`] before calling the service; mutating calls build their
//! [`Change`] from the caller ([`Caller::change`]), so the operation log
//! records who acted.

use std::time::Duration;

use subledger_domain::access::{AppId, AppSet, Permissions, effective_apps, find_app};
use subledger_domain::account::AccessState;
use subledger_domain::ids::{AccountId, TenantId};
use subledger_domain::oplog::Actor;
use subledger_storage::sessions as store_sessions;
use subledger_storage::subusers::{self as store_subusers, GrantRows};

use crate::error::{ServiceError, ServiceResult};
use crate::roles::known_apps;
use crate::secrets::token_digest;
use crate::tenants::{API_TOKEN_PREFIX, Tenant};
use crate::{Change, Services, now_us};

/// Settings of sessions and logins.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// How long a session lasts after login.
    pub session_ttl: Duration,
    /// Consecutive failed logins after which an account locks.
    pub login_failures_max: i64,
    /// How long a lock lasts.
    pub lock_for: Duration,
}

/// A session lasts 12 hours: a working day and then some.
pub const SESSION_TTL_DEFAULT: Duration = Duration::from_secs(12 * 3600);
/// Five wrong passwords in a row lock the account ...
pub const LOGIN_FAILURES_MAX_DEFAULT: i64 = 5;
/// ... for fifteen minutes.
pub const LOCK_FOR_DEFAULT: Duration = Duration::from_secs(15 * 60);

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig { session_ttl: SESSION_TTL_DEFAULT, login_failures_max: LOGIN_FAILURES_MAX_DEFAULT, lock_for: LOCK_FOR_DEFAULT }
    }
}

/// Who calls, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub permissions: Permissions,
}

impl Caller {
    /// The tenant's own credentials: every right.
    pub fn tenant_credentials() -> Caller {
        Caller { actor: Actor::Tenant, permissions: Permissions::Everything }
    }

    /// A change asked for by this caller, for the operation log.
    pub fn change(&self) -> Change {
        Change::by(self.actor.clone())
    }

    /// `Ok` if the caller holds `app`, else [`ServiceError::Forbidden`].
    pub fn require(&self, app: AppId) -> ServiceResult<()> {
        if self.permissions.allows(app) { Ok(()) } else { Err(ServiceError::Forbidden { app, code: find_app(app).map_or("unknown", |a| a.code) }) }
    }

    /// The sub-user acting, if a sub-user acts (what it may see of notices).
    pub fn sub_user(&self) -> Option<AccountId> {
        self.actor.account()
    }
}

/// The prefix of a session token, beside the tenant API token's `slt_`.
pub const SESSION_TOKEN_PREFIX: &str = "sls_";
/// Longest token looked up; anything longer is no credential of ours.
const TOKEN_BYTES_MAX: usize = 128;

/// What an account may do, from its stored grants. An application id that
/// the tree no longer has grants nothing (the tree may lose a leaf in a
/// later version; stored grants must not then lock everyone out).
pub(crate) fn effective(rows: &GrantRows) -> AppSet {
    let own = |granted: bool| rows.own.iter().filter(|(_, g)| *g == granted).map(|(app, _)| *app).collect::<Vec<_>>();
    effective_apps(Some(known_apps(&rows.role_template)), known_apps(&own(true)), known_apps(&own(false)))
}

impl Services {
    /// The tenant and caller a bearer token stands for: the tenant's API
    /// token (every right) or a live sub-user session (its effective
    /// applications, read now). `None` for anything else, including the
    /// session of a sub-user that is disabled, cancelled or locked.
    pub async fn authenticate_bearer(&self, token: &str) -> ServiceResult<Option<(Tenant, Caller)>> {
        if token.starts_with(API_TOKEN_PREFIX) {
            return Ok(self.tenant_by_api_token(token).await?.map(|tenant| (tenant, Caller::tenant_credentials())));
        }
        if !token.starts_with(SESSION_TOKEN_PREFIX) || token.len() > TOKEN_BYTES_MAX {
            return Ok(None);
        }
        let now = now_us();
        let Some(live) = store_sessions::find_live(&self.store, &token_digest(token), now).await? else { return Ok(None) };
        let usable = live.access_state == AccessState::Enabled.code() && live.locked_until_us.is_none_or(|until| until <= now);
        if !usable {
            return Ok(None);
        }
        let account = AccountId(live.account_id);
        let apps = effective(&store_subusers::grant_rows(&self.store, account).await?);
        let tenant = self.tenant(TenantId(live.tenant_id)).await?;
        Ok(Some((tenant, Caller { actor: Actor::SubUser { account, username: live.username }, permissions: Permissions::Only(apps) })))
    }
}

#[cfg(test)]
mod tests {
    use subledger_domain::access::app;

    use super::*;

    #[test]
    fn the_tenant_may_do_everything_and_a_sub_user_what_it_holds() {
        assert!(Caller::tenant_credentials().require(app::ROLES_MANAGE).is_ok());
        let clerk = Caller { actor: Actor::SubUser { account: AccountId(4), username: "clerk".into() }, permissions: Permissions::Only(AppSet::of([app::ACCOUNTS_VIEW]).unwrap()) };
        assert!(clerk.require(app::ACCOUNTS_VIEW).is_ok());
        match clerk.require(app::ACCOUNTS_MANAGE) {
            Err(ServiceError::Forbidden { app, code }) => assert_eq!((app, code), (app::ACCOUNTS_MANAGE, "accounts.manage")),
            other => panic!("{other:?}"),
        }
        assert_eq!(clerk.change().actor(), &clerk.actor);
        assert_eq!(clerk.sub_user(), Some(AccountId(4)));
    }

    #[test]
    fn stored_grants_make_the_effective_set() {
        let rows = GrantRows { role_template: vec![app::FUNDS_VIEW, app::FUNDS_MOVE, AppId(99_999)], own: vec![(app::OPLOG_VIEW, true), (app::FUNDS_MOVE, false)] };
        let apps = effective(&rows);
        assert!(apps.contains(app::FUNDS_VIEW) && apps.contains(app::OPLOG_VIEW));
        assert!(!apps.contains(app::FUNDS_MOVE), "a revocation beats the role");
        assert_eq!(effective(&GrantRows::default()), AppSet::EMPTY);
    }
}
