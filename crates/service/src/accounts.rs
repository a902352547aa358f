//! Sub-accounts: creation under the tenant's cap, listing with balances and
//! today's quota use, quota changes, freezing.

use std::collections::{BTreeMap, HashMap};

use subledger_domain::account::{AccessState, AccountStatus, CompanyName, CompanyUrl, DailyQuota, Email, Funding, Password, Phone, UserType, Username};
use subledger_domain::catalog::BUILTIN_CURRENCY;
use subledger_domain::ids::{AccountId, RoleId};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::Currency;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_storage::accounts::{self as store_accounts, AccountFilter, AccountRecord, Clashes, NewAccount};
use subledger_storage::subusers::{self as store_subusers, SeatChanges};
use subledger_storage::tenants as store_tenants;
use subledger_storage::wallets::{self as store_wallets, WalletOwner};
use subledger_storage::{StorageError, UniqueKey, WriteTx};

use crate::Change;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::roles::role_in_tx;
use crate::secrets::{hash_password, random_base62, token_digest};
use crate::tenants::Tenant;
use crate::{Services, now_us};

/// What it takes to create an account; every field already parsed.
#[derive(Debug, Clone)]
pub struct NewAccountInput {
    pub username: Username,
    pub user_type: UserType,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
    pub company_name: Option<CompanyName>,
    pub company_url: Option<CompanyUrl>,
    pub password: Option<Password>,
    /// `None`: the tenant's default.
    pub daily_quota: Option<DailyQuota>,
    /// Whose wallets its charges draw on.
    pub funding: Funding,
}

/// An account as the dialects show it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub user_type: UserType,
    pub status: AccountStatus,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company_name: Option<String>,
    pub company_url: Option<String>,
    pub api_user: Option<String>,
    pub daily_quota: i64,
    pub funding: Funding,
    pub access: AccessState,
    /// The seat's fields (UUCall sub-users); empty for other accounts.
    pub seat: Seat,
    pub created_at_us: i64,
}

/// What a sub-user seat carries beside the account's own fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seat {
    pub role: Option<RoleId>,
    /// Whether the role's application template applies (UUCall `roleEnble` 1).
    pub role_template: bool,
    /// The employee's name.
    pub person_name: Option<String>,
    pub job_number: Option<String>,
    /// The bound extension (`bind_ext`).
    pub extension: Option<i64>,
    pub department: Option<String>,
    pub note: Option<String>,
    pub last_login_at_us: Option<i64>,
    pub logins: i64,
}

impl Account {
    pub(crate) fn from_record(record: AccountRecord) -> ServiceResult<Account> {
        let corrupt = |what: &str| ServiceError::Storage(StorageError::Corrupt(format!("account {}: {what}", record.id)));
        Ok(Account {
            id: record.account_id(),
            user_type: UserType::from_code(record.user_type).map_err(|_| corrupt("user_type"))?,
            status: AccountStatus::from_code(record.status).ok_or_else(|| corrupt("status"))?,
            username: record.username,
            phone: record.phone,
            email: record.email,
            company_name: record.company_name,
            company_url: record.company_url,
            api_user: record.api_user,
            daily_quota: record.daily_quota,
            funding: Funding::parse(&record.funding).ok_or_else(|| corrupt("funding"))?,
            access: AccessState::from_code(record.access_state).ok_or_else(|| corrupt("access_state"))?,
            seat: Seat {
                role: record.role_id.map(RoleId),
                role_template: record.role_template == 1,
                person_name: record.person_name,
                job_number: record.job_number,
                extension: record.extension,
                department: record.department,
                note: record.note,
                last_login_at_us: record.last_login_at_us,
                logins: record.logins,
            },
            created_at_us: record.created_at_us,
        })
    }
}

/// An account just created. For SendCloud accounts (`userType` 0) it carries
/// the API user and key, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedAccount {
    pub account: Account,
    pub api_key: Option<String>,
}

/// One row of a listing: the account, its balances and today's quota use.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub account: Account,
    /// Primary plus promo balance, per currency the account has wallets in.
    pub balances: BTreeMap<Currency, i64>,
    pub used_today: i64,
}

impl AccountSummary {
    /// Primary plus promo balance in `currency` (0 without wallets in it).
    pub fn balance_minor(&self, currency: Currency) -> i64 {
        self.balances.get(&currency).copied().unwrap_or(0)
    }
}

/// A page of accounts with the counts over everything the filter matches.
#[derive(Debug, Clone)]
pub struct AccountPage {
    pub total: i64,
    pub frozen: i64,
    pub accounts: Vec<AccountSummary>,
}

/// An account's quota and its use on the tenant's current day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    pub quota: i64,
    pub used_today: i64,
}

/// Most accounts one listing returns.
pub const ACCOUNT_PAGE_MAX: i64 = 200;
const API_KEY_CHARS: usize = 16;

impl Services {
    pub async fn create_account(&self, tenant: &Tenant, input: NewAccountInput, change: &Change) -> ServiceResult<CreatedAccount> {
        self.insert_account(tenant, input, None, change).await
    }

    /// Creates an account, and with `seat` its seat fields (a sub-user), in
    /// one transaction: the checks of [`Services::create_account`] apply to both.
    pub(crate) async fn insert_account(&self, tenant: &Tenant, input: NewAccountInput, seat: Option<SeatChanges<'_>>, change: &Change) -> ServiceResult<CreatedAccount> {
        let (username, phone) = (input.username.as_str(), input.phone.as_ref().map(Phone::as_str));
        // Cheap refusals first: a password hash costs about 19 MiB and tens of
        // milliseconds of CPU, so a taken name, a used phone or a full tenant
        // must not cost one. A concurrent create can make this read stale; the
        // same checks under the tenant's lock below decide.
        refuse_clash(&store_accounts::clashes(&self.store, tenant.id, username, phone).await?)?;
        // Hashed before the write lock is taken, behind the password gate.
        let password_hash = match &input.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let (api_user, api_key) = match input.user_type {
            UserType::SendCloud => (Some(format!("{}_{}", input.username, random_base62(6))), Some(random_base62(API_KEY_CHARS))),
            UserType::IFaxin => (None, None),
        };
        let api_key_digest = api_key.as_deref().map(token_digest);
        let now = now_us();

        let mut tx = self.store.begin_write().await?;
        // The tenant row lock makes the cap and uniqueness checks hold until commit.
        let locked = store_tenants::lock(&mut tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        refuse_clash(&store_accounts::clashes_in_tx(&mut tx, tenant.id, username, phone).await?)?;
        let id = store_accounts::insert(
            &mut tx,
            &NewAccount {
                tenant_id: tenant.id,
                username: input.username.as_str(),
                user_type: input.user_type.code(),
                phone: input.phone.as_ref().map(Phone::as_str),
                email: input.email.as_ref().map(Email::as_str),
                company_name: input.company_name.as_ref().map(CompanyName::as_str),
                company_url: input.company_url.as_ref().map(CompanyUrl::as_str),
                password_hash: password_hash.as_deref(),
                api_user: api_user.as_deref(),
                api_key_sha256: api_key_digest.as_deref(),
                daily_quota: input.daily_quota.map_or(locked.default_daily_quota, DailyQuota::get),
                funding: input.funding.as_str(),
                now_us: now,
            },
        )
        .await
        .map_err(|e| match e {
            // Only reachable if the checks above were bypassed; say the same thing they would.
            StorageError::UniqueViolation { key: UniqueKey::AccountPhone, .. } => ServiceError::PhoneTaken,
            StorageError::UniqueViolation { key: UniqueKey::AccountUsername, .. } => ServiceError::UsernameTaken,
            other => other.into(),
        })?;
        if let Some(seat) = &seat {
            // Under the tenant's lock, which deleting a role takes too.
            if let Some(Some(role)) = seat.role {
                role_in_tx(&mut tx, tenant, role).await?;
            }
            store_subusers::update_seat(&mut tx, tenant.id, id, seat, now).await?;
        }
        // Wallets in the built-in products' currency, which every tenant's
        // catalog has; other currencies open on first use (`open_currency`).
        create_account_wallets(&mut tx, tenant, id, BUILTIN_CURRENCY, now).await?;
        if input.funding == Funding::Tenant {
            // A seat from its creation: its seat fee runs from now.
            crate::seats::open_seat(&mut tx, tenant, id, now).await?;
        }
        change.commit(tx, tenant.id, Operation::new(OperationKind::AccountCreate, input.username.as_str())).await?;
        let account = self.account(tenant, input.username.as_str()).await?;
        Ok(CreatedAccount { account, api_key })
    }

    /// The account of this tenant with this username.
    pub async fn account(&self, tenant: &Tenant, username: &str) -> ServiceResult<Account> {
        let record = store_accounts::find_by_username(&self.store, tenant.id, username).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        Account::from_record(record)
    }

    /// A page of the tenant's accounts, optionally just the one named.
    pub async fn list_accounts(&self, tenant: &Tenant, username: Option<&str>, page: Page) -> ServiceResult<AccountPage> {
        let filter = AccountFilter { tenant: tenant.id, username };
        let counts = store_accounts::counts(&self.store, &filter).await?;
        let today = tenant.timezone.day_of(jiff::Timestamp::now()).to_string();
        let limit = page.limit.min(ACCOUNT_PAGE_MAX);
        let rows = if limit == 0 { Vec::new() } else { store_accounts::list_summaries(&self.store, &filter, &today, page.offset, limit).await? };
        let ids: Vec<AccountId> = rows.iter().map(|row| row.account.account_id()).collect();
        let mut balances: HashMap<AccountId, BTreeMap<Currency, i64>> = HashMap::new();
        if !ids.is_empty() {
            for (account, currency, balance_minor) in store_accounts::spendable_balances(&self.store, tenant.id, &ids).await? {
                balances.entry(account).or_default().insert(currency, balance_minor);
            }
        }
        let accounts = rows
            .into_iter()
            .map(|row| Ok(AccountSummary { balances: balances.remove(&row.account.account_id()).unwrap_or_default(), used_today: row.used_today, account: Account::from_record(row.account)? }))
            .collect::<ServiceResult<_>>()?;
        Ok(AccountPage { total: counts.total, frozen: counts.frozen, accounts })
    }

    pub async fn set_daily_quota(&self, tenant: &Tenant, username: &str, quota: DailyQuota, change: &Change) -> ServiceResult<(Account, QuotaState)> {
        let mut tx = self.store.begin_write().await?;
        let record = store_accounts::set_daily_quota(&mut tx, tenant.id, username, quota.get(), now_us()).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::AccountQuota, username).with_detail(quota.get().to_string())).await?;
        let account = Account::from_record(record)?;
        let state = self.quota_state(tenant, &account).await?;
        Ok((account, state))
    }

    pub async fn quota_state(&self, tenant: &Tenant, account: &Account) -> ServiceResult<QuotaState> {
        let today = tenant.timezone.day_of(jiff::Timestamp::now()).to_string();
        let used_today = store_accounts::used_on_day(&self.store, account.id, &today).await?;
        Ok(QuotaState { quota: account.daily_quota, used_today })
    }

    /// Freezes or unfreezes an account. Setting the state it already has is not an error.
    pub async fn set_account_status(&self, tenant: &Tenant, username: &str, status: AccountStatus, change: &Change) -> ServiceResult<Account> {
        let mut tx = self.store.begin_write().await?;
        let record = store_accounts::set_status(&mut tx, tenant.id, username, status.code(), now_us()).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        let kind = match status {
            AccountStatus::Active => OperationKind::AccountUnfreeze,
            AccountStatus::Frozen => OperationKind::AccountFreeze,
        };
        change.commit(tx, tenant.id, Operation::new(kind, username)).await?;
        Account::from_record(record)
    }
}

/// The rule a new account must pass against what exists: a free username,
/// a free phone, and room under the tenant's account limit, in that order.
fn refuse_clash(clashes: &Clashes) -> ServiceResult<()> {
    if clashes.username_taken {
        Err(ServiceError::UsernameTaken)
    } else if clashes.phone_taken {
        Err(ServiceError::PhoneTaken)
    } else if clashes.accounts >= clashes.account_limit {
        Err(ServiceError::AccountLimit { limit: clashes.account_limit })
    } else {
        Ok(())
    }
}

/// An account's wallets of a currency: `primary` and `promo`, floor 0.
pub(crate) async fn create_account_wallets(tx: &mut WriteTx, tenant: &Tenant, account: AccountId, currency: Currency, now: i64) -> ServiceResult<()> {
    let owner = WalletOwner::Account(tenant.id, account);
    for purpose in [WalletPurpose::Primary, WalletPurpose::Promo] {
        store_wallets::ensure(tx, owner, purpose, currency, Some(0), now).await?;
    }
    Ok(())
}
