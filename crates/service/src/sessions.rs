//! Sub-user logins and sessions.
//!
//! The rules (`docs/access-control.md` states them for users):
//! - A session token is `sls_` and 40 random base-62 characters; only its
//!   SHA-256 is stored. It lasts [`AccessConfig::session_ttl`] (12 h by
//!   default) and ends earlier on logout, or when its sub-user is disabled,
//!   cancelled or given a new password.
//! - A wrong password counts on the account; the
//!   [`AccessConfig::login_failures_max`]-th in a row (5) locks it for
//!   [`AccessConfig::lock_for`] (15 min) and the count starts over. Each
//!   counted failure is a committed change with its operation log entry
//!   (`session.login`, refused `wrong_password`, or `locked` for the one that
//!   locked). While locked, logins are refused at once (429, with the seconds
//!   left) without a password check, and its sessions stop working.
//! - A right password clears the count and the lock; a disabled or
//!   cancelled sub-user is then refused (only someone who knows the
//!   password learns its state).
//! - An unknown username costs the same password check as a known one, so
//!   the answer's timing does not tell which usernames exist.
//!
//! Per-address and per-username limits on login attempts live in the HTTP
//! layer (`crates/http/src/ratelimit.rs`).

use subledger_domain::account::{AccessState, Password, Username};
use subledger_domain::ids::AccountId;
use subledger_domain::oplog::{Actor, Operation, OperationKind};
use subledger_storage::sessions::{self as store_sessions, NewSession};
use subledger_storage::subusers as store_subusers;
use tokio::sync::OnceCell;

use crate::access::SESSION_TOKEN_PREFIX;
use crate::accounts::Account;
use crate::error::{ServiceError, ServiceResult};
use crate::secrets::{hash_password, random_base62, token_digest, verify_password};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// A session just opened; the token is shown this once.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at_us: i64,
    pub account: Account,
}

const SESSION_TOKEN_CHARS: usize = 40;
/// Longest password looked at: longer is wrong without a hash.
const PASSWORD_BYTES_MAX: usize = 128;
const WRONG: ServiceError = ServiceError::Unauthenticated("wrong username or password");
/// Sessions that ended or expired are kept this long, then forgotten.
const SESSIONS_KEPT_US: i64 = 24 * 3600 * 1_000_000;
const FORGET_BATCH: i64 = 1_000;

/// A hash to check against when the username is unknown, made once.
async fn decoy_hash() -> ServiceResult<&'static str> {
    static DECOY: OnceCell<String> = OnceCell::const_new();
    let hash = DECOY.get_or_try_init(|| async { hash_password(&decoy_password()).await }).await?;
    Ok(hash)
}

fn decoy_password() -> Password {
    Password::parse("decoy-password-0").expect("a valid password")
}

impl Services {
    /// Logs a sub-user of `tenant` in with its username and password.
    pub async fn login(&self, tenant: &Tenant, username: &str, password: &str) -> ServiceResult<Session> {
        let state = match Username::parse(username) {
            Ok(username) => store_subusers::login_state(&self.store, tenant.id, username.as_str()).await?,
            Err(_) => None,
        };
        let Some((state, hash)) = state.and_then(|s| s.password_hash.clone().map(|hash| (s, hash))) else {
            verify_password(&decoy_password(), decoy_hash().await?).await?;
            return Err(WRONG);
        };
        let now = now_us();
        if let Some(until) = state.locked_until_us.filter(|until| *until > now) {
            return Err(ServiceError::RateLimited { retry_after_s: ((until - now) as u64).div_ceil(1_000_000).max(1) });
        }
        let account = AccountId(state.id);
        let change = Change::by(Actor::SubUser { account, username: state.username.clone() });
        let operation = Operation::new(OperationKind::SessionLogin, state.username.as_str());
        let typed = if password.len() <= PASSWORD_BYTES_MAX { Password::parse(password).ok() } else { None };
        // A password the rules refuse was never set, so it is wrong; it still counts.
        let right = match &typed {
            Some(typed) => verify_password(typed, &hash).await?,
            None => false,
        };
        if !right {
            let lock_until = now.saturating_add(self.config.access.lock_for.as_micros() as i64);
            let mut tx = self.store.begin_write().await?;
            let locked = store_subusers::count_failed_login(&mut tx, tenant.id, account, self.config.access.login_failures_max, lock_until).await?;
            let reason = if locked == Some(lock_until) { "locked" } else { "wrong_password" };
            change.commit_refused(tx, tenant.id, operation, reason).await?;
            return Err(WRONG);
        }
        if AccessState::from_code(state.access_state) != Some(AccessState::Enabled) {
            return Err(ServiceError::Unauthenticated("this sub-user is disabled or cancelled"));
        }
        let token = format!("{SESSION_TOKEN_PREFIX}{}", random_base62(SESSION_TOKEN_CHARS));
        let expires_at_us = now.saturating_add(self.config.access.session_ttl.as_micros() as i64);
        let mut tx = self.store.begin_write().await?;
        store_sessions::insert(&mut tx, &NewSession { token_sha256: &token_digest(&token), tenant: tenant.id, account, created_at_us: now, expires_at_us }).await?;
        store_subusers::count_login(&mut tx, account, now).await?;
        change.commit(tx, tenant.id, operation).await?;
        let account = self.account(tenant, &state.username).await?;
        Ok(Session { token, expires_at_us, account })
    }

    /// Ends the session of this token. Only a live session can end
    /// (`Unauthenticated` otherwise); the entry is the sub-user's.
    pub async fn logout(&self, token: &str) -> ServiceResult<()> {
        if !token.starts_with(SESSION_TOKEN_PREFIX) {
            return Err(ServiceError::Invalid { field: "token", reason: "only a sub-user's session can log out".to_owned() });
        }
        let mut tx = self.store.begin_write().await?;
        let Some((tenant, account, username)) = store_sessions::end(&mut tx, &token_digest(token), now_us()).await? else {
            return Err(ServiceError::Unauthenticated("no live session with this token"));
        };
        let operation = Operation::new(OperationKind::SessionLogout, username.as_str());
        Change::by(Actor::SubUser { account, username }).commit(tx, tenant, operation).await
    }

    /// Deletes sessions that ended or expired more than a day ago; how many.
    pub async fn forget_old_sessions(&self) -> ServiceResult<u64> {
        let before = now_us() - SESSIONS_KEPT_US;
        let mut forgotten = 0;
        loop {
            let deleted = store_sessions::forget_old(&self.store, before, FORGET_BATCH).await?;
            forgotten += deleted;
            if deleted < FORGET_BATCH as u64 {
                return Ok(forgotten);
            }
        }
    }
}
