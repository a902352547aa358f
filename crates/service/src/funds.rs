//! Moving money: deposits from the outside world, allocations to accounts
//! (SendCloud `transferIn`), transfers between a tenant's wallets, and reading
//! balances and entries.

use subledger_domain::account::Username;
use subledger_domain::ids::{TenantId, WalletId};
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind, WalletPurpose};
use subledger_domain::money::{Currency, PositiveAmount, format_minor};
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_storage::accounts as store_accounts;
pub use subledger_storage::ledger::StoredTransfer;
use subledger_storage::wallets::{self as store_wallets, WalletOwner};
pub use subledger_storage::wallets::{EntryRecord, WalletRecord};

use crate::Change;
use crate::accounts::create_account_wallets;
use crate::cache::WalletKey;
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::ledger::{TransferReceipt, TransferRequest};
use crate::tenants::{Tenant, create_tenant_wallets};
use crate::{Services, now_us};

/// Whose wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The tenant's own.
    Tenant,
    /// One of the tenant's accounts.
    Account(Username),
}

/// A spendable wallet (`primary` or `promo`) of a holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRef {
    pub holder: Holder,
    pub purpose: WalletPurpose,
}

impl WalletRef {
    pub fn primary(holder: Holder) -> Self {
        WalletRef { holder, purpose: WalletPurpose::Primary }
    }
}

/// Optional request fields every money movement takes.
#[derive(Debug, Clone, Default)]
pub struct MoveOptions {
    pub idempotency_key: Option<String>,
    pub memo: Option<String>,
}

/// What a move between two spendable wallets is, and how far it may take
/// its debit wallet: from the tenant to an account it is an allocation
/// (分账), which a tenant in the red may not make.
pub(crate) fn move_between(from: &WalletRef, to: &WalletRef) -> (TransferKind, DebitRule) {
    match (&from.holder, &to.holder) {
        (Holder::Tenant, Holder::Account(_)) => (TransferKind::Allocation, DebitRule::ToFloorFromNonNegative),
        (Holder::Account(_), Holder::Tenant) => (TransferKind::Reclaim, DebitRule::ToFloor),
        _ => (TransferKind::Internal, DebitRule::ToFloor),
    }
}

/// How the operation log names a wallet's holder: the account's username,
/// or the tenant's name.
pub(crate) fn holder_name(tenant: &Tenant, holder: &Holder) -> String {
    match holder {
        Holder::Tenant => tenant.name.clone(),
        Holder::Account(username) => username.as_str().to_owned(),
    }
}

/// Most entries one page of a wallet's history returns.
pub const ENTRY_PAGE_MAX: i64 = 500;

impl Services {
    /// A recharge from the outside world into a spendable wallet of the tenant
    /// or of one of its accounts.
    pub async fn deposit(&self, tenant: &Tenant, to: &WalletRef, amount: PositiveAmount, currency: Currency, options: MoveOptions, change: &Change) -> ServiceResult<TransferReceipt> {
        let credit = self.spendable_wallet(tenant, to, currency).await?;
        let world = self.system_wallet(tenant, WalletPurpose::World, currency).await?;
        let intent = TransferIntent { debit: world, credit, amount, currency, debit_rule: DebitRule::ToFloor };
        let operation = Operation::new(OperationKind::FundsDeposit, holder_name(tenant, &to.holder)).with_detail(format!("{} {currency}", format_minor(amount.minor())));
        self.post(tenant.id, TransferKind::Deposit, intent, options, change, operation).await
    }

    /// Moves money between two spendable wallets of the tenant (its own and
    /// its accounts'). From the tenant to an account this is an allocation
    /// (分账), which a tenant in the red may not make.
    #[expect(clippy::too_many_arguments, reason = "the two sides, the money and the request's context are all the caller's")]
    pub async fn transfer(
        &self,
        tenant: &Tenant,
        from: &WalletRef,
        to: &WalletRef,
        amount: PositiveAmount,
        currency: Currency,
        options: MoveOptions,
        change: &Change,
    ) -> ServiceResult<TransferReceipt> {
        let (kind, debit_rule) = move_between(from, to);
        let debit = self.spendable_wallet(tenant, from, currency).await?;
        let credit = self.spendable_wallet(tenant, to, currency).await?;
        let intent = TransferIntent { debit, credit, amount, currency, debit_rule };
        let operation = Operation::new(OperationKind::FundsTransfer, format!("{} → {}", holder_name(tenant, &from.holder), holder_name(tenant, &to.holder)))
            .with_detail(format!("{} {currency}", format_minor(amount.minor())));
        self.post(tenant.id, kind, intent, options, change, operation).await
    }

    async fn post(&self, tenant: TenantId, kind: TransferKind, intent: TransferIntent, options: MoveOptions, change: &Change, operation: Operation) -> ServiceResult<TransferReceipt> {
        self.ledger.submit(TransferRequest { tenant, idempotency_key: options.idempotency_key, kind, intent, memo: options.memo, records: change.records(tenant, operation) }).await
    }

    /// The id of a spendable wallet, created on first use for a new currency.
    pub(crate) async fn spendable_wallet(&self, tenant: &Tenant, wallet: &WalletRef, currency: Currency) -> ServiceResult<WalletId> {
        if !wallet.purpose.is_spendable() {
            return Err(ServiceError::Invalid { field: "wallet", reason: "must be primary or promo".to_owned() });
        }
        let key = WalletKey {
            tenant: tenant.id,
            username: match &wallet.holder {
                Holder::Tenant => None,
                Holder::Account(username) => Some(username.as_str().to_owned()),
            },
            purpose: wallet.purpose,
            currency,
        };
        if let Some(id) = self.caches.wallet_id(&key) {
            return Ok(id);
        }
        let id = self.find_or_open_spendable_wallet(tenant, wallet, currency).await?;
        self.caches.remember_wallet_id(key, id);
        Ok(id)
    }

    async fn find_or_open_spendable_wallet(&self, tenant: &Tenant, wallet: &WalletRef, currency: Currency) -> ServiceResult<WalletId> {
        let found = match &wallet.holder {
            Holder::Tenant => store_wallets::find(&self.store, WalletOwner::Tenant(tenant.id), wallet.purpose, currency).await?,
            Holder::Account(username) => store_wallets::find_for_username(&self.store, tenant.id, username.as_str(), wallet.purpose, currency).await?,
        };
        if let Some(found) = found {
            return Ok(found.id);
        }
        // No wallet yet: an unknown account, or a currency not used before.
        let owner = match &wallet.holder {
            Holder::Tenant => WalletOwner::Tenant(tenant.id),
            Holder::Account(username) => {
                let account = store_accounts::find_by_username(&self.store, tenant.id, username.as_str()).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
                WalletOwner::Account(tenant.id, account.account_id())
            }
        };
        self.open_currency(tenant, owner, currency).await?;
        let found = store_wallets::find(&self.store, owner, wallet.purpose, currency).await?;
        Ok(found.ok_or(ServiceError::NotFound(Resource::Wallet))?.id)
    }

    pub(crate) async fn system_wallet(&self, tenant: &Tenant, purpose: WalletPurpose, currency: Currency) -> ServiceResult<WalletId> {
        let key = WalletKey { tenant: tenant.id, username: None, purpose, currency };
        if let Some(id) = self.caches.wallet_id(&key) {
            return Ok(id);
        }
        let owner = WalletOwner::Tenant(tenant.id);
        let found = match store_wallets::find(&self.store, owner, purpose, currency).await? {
            Some(found) => found,
            None => {
                self.open_currency(tenant, owner, currency).await?;
                store_wallets::find(&self.store, owner, purpose, currency).await?.ok_or(ServiceError::NotFound(Resource::Wallet))?
            }
        };
        self.caches.remember_wallet_id(key, found.id);
        Ok(found.id)
    }

    /// Creates an owner's wallets of a currency (and the tenant's, which every
    /// movement of that currency needs).
    async fn open_currency(&self, tenant: &Tenant, owner: WalletOwner, currency: Currency) -> ServiceResult<()> {
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        create_tenant_wallets(&mut tx, tenant.id, currency, now).await?;
        if let WalletOwner::Account(_, account) = owner {
            create_account_wallets(&mut tx, tenant, account, currency, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The wallets of the tenant itself (system wallets included) or of one account.
    pub async fn wallets(&self, tenant: &Tenant, holder: &Holder) -> ServiceResult<Vec<WalletRecord>> {
        let owner = match holder {
            Holder::Tenant => WalletOwner::Tenant(tenant.id),
            Holder::Account(username) => WalletOwner::Account(tenant.id, self.account(tenant, username.as_str()).await?.id),
        };
        Ok(store_wallets::of_owner(&self.store, owner).await?)
    }

    /// A wallet of this tenant (or of one of its accounts) by id.
    pub async fn wallet(&self, tenant: &Tenant, id: WalletId) -> ServiceResult<WalletRecord> {
        store_wallets::get(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Wallet))
    }

    /// A page of a wallet's entries after entry number `after_seq`, oldest first.
    pub async fn wallet_entries(&self, tenant: &Tenant, id: WalletId, after_seq: i64, limit: i64) -> ServiceResult<(WalletRecord, Vec<EntryRecord>)> {
        let wallet = self.wallet(tenant, id).await?;
        let entries = store_wallets::entries_after(&self.store, wallet.id, after_seq.max(0), limit.clamp(0, ENTRY_PAGE_MAX)).await?;
        Ok((wallet, entries))
    }
}

impl Services {
    /// A transfer of this tenant by id.
    pub async fn transfer_by_id(&self, tenant: &Tenant, id: subledger_domain::ids::TransferId) -> ServiceResult<StoredTransfer> {
        subledger_storage::ledger::get_transfer(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Transfer))
    }
}

/// Largest overdraft that can be granted, in minor units (10 million yuan).
pub const OVERDRAFT_MINOR_MAX: i64 = 1_000_000_000;

impl Services {
    /// Lets a primary wallet go down to `-limit_minor` (0 removes the overdraft).
    /// Refused when the wallet already owes (or has reserved) more than the new limit allows.
    pub async fn set_overdraft(&self, tenant: &Tenant, holder: &Holder, currency: Currency, limit_minor: i64, change: &Change) -> ServiceResult<WalletRecord> {
        if !(0..=OVERDRAFT_MINOR_MAX).contains(&limit_minor) {
            return Err(ServiceError::Invalid { field: "overdraft", reason: format!("must be from 0 to {}", subledger_domain::money::format_minor(OVERDRAFT_MINOR_MAX)) });
        }
        let wallet = self.spendable_wallet(tenant, &WalletRef::primary(holder.clone()), currency).await?;
        let mut tx = self.store.begin_write().await?;
        if !store_wallets::set_floor(&mut tx, wallet, -limit_minor).await? {
            return Err(ServiceError::Invalid { field: "overdraft", reason: "the wallet already owes more than this limit".to_owned() });
        }
        change.commit(tx, tenant.id, Operation::new(OperationKind::FundsOverdraft, holder_name(tenant, holder)).with_detail(format!("{} {currency}", format_minor(limit_minor)))).await?;
        self.wallet(tenant, wallet).await
    }
}
