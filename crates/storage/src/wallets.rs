//! Wallets and their entry history (reads and creation; balances move only
//! through [`crate::ledger`]).

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId, WalletId};
use subledger_domain::ledger::{WalletPurpose, WalletState};
use subledger_domain::money::Currency;

use crate::rows::{self, NewWalletRow, Row, WalletRow, columns};
use crate::{Result, Store, WriteTx};

/// Who a wallet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalletOwner {
    /// The tenant itself (and its system wallets).
    Tenant(TenantId),
    Account(TenantId, AccountId),
}

impl WalletOwner {
    pub fn tenant(self) -> TenantId {
        match self {
            WalletOwner::Tenant(t) | WalletOwner::Account(t, _) => t,
        }
    }

    fn account_key(self) -> i64 {
        match self {
            WalletOwner::Tenant(_) => 0,
            WalletOwner::Account(_, a) => a.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRecord {
    pub id: WalletId,
    pub tenant_id: TenantId,
    pub account_id: Option<AccountId>,
    pub purpose: WalletPurpose,
    pub currency: Currency,
    pub balance_minor: i64,
    pub floor_minor: Option<i64>,
    pub entry_seq: i64,
    /// Held by pending transfers (holds): not spendable until they resolve.
    pub reserved_minor: i64,
    pub created_at_us: i64,
}

impl WalletRecord {
    /// The wallet as the ledger sees it.
    pub fn state(&self) -> WalletState {
        WalletState { id: self.id, currency: self.currency, balance_minor: self.balance_minor, floor_minor: self.floor_minor, entry_seq: self.entry_seq, reserved_minor: self.reserved_minor }
    }

    /// What it can still pay (see [`WalletState::available_minor`]); `None` for a system wallet.
    pub fn available_minor(&self) -> Option<i64> {
        self.state().available_minor()
    }
}

/// The columns of a wallet, qualified by `w`.
static COLUMNS: LazyLock<String> = LazyLock::new(|| columns::<WalletRow<String>>(Some("w")));

static INSERT: LazyLock<String> = LazyLock::new(|| format!("{} ON CONFLICT DO NOTHING", rows::sqlx_insert::<NewWalletRow<&str>>()));

/// Creates a wallet unless the owner has one for this purpose and currency
/// already, and returns its id either way.
pub async fn ensure(tx: &mut WriteTx, owner: WalletOwner, purpose: WalletPurpose, currency: Currency, floor_minor: Option<i64>, now_us: i64) -> Result<WalletId> {
    let account_id = match owner {
        WalletOwner::Tenant(_) => None,
        WalletOwner::Account(_, a) => Some(a.0),
    };
    let row = NewWalletRow { tenant_id: owner.tenant().0, account_id, purpose: purpose.as_str(), currency: currency.code(), balance_minor: 0, floor_minor, entry_seq: 0, created_at_us: now_us };
    sqlx::query_with(&INSERT, row.sqlx_arguments()?).execute(tx.conn()).await?;
    let id: i64 = sqlx::query_scalar("SELECT id FROM wallets WHERE tenant_id = $1 AND COALESCE(account_id, 0) = $2 AND ad_account_id IS NULL AND purpose = $3 AND currency = $4")
        .bind(owner.tenant().0)
        .bind(owner.account_key())
        .bind(purpose.as_str())
        .bind(currency.code())
        .fetch_one(tx.conn())
        .await?;
    Ok(WalletId(id))
}

/// Finds the wallet of an owner for a purpose and currency.
pub async fn find(store: &Store, owner: WalletOwner, purpose: WalletPurpose, currency: Currency) -> Result<Option<WalletRecord>> {
    let sql = format!("SELECT {} FROM wallets w WHERE tenant_id = $1 AND COALESCE(account_id, 0) = $2 AND ad_account_id IS NULL AND purpose = $3 AND currency = $4", *COLUMNS);
    let row: Option<WalletRow<String>> = sqlx::query_as(&sql).bind(owner.tenant().0).bind(owner.account_key()).bind(purpose.as_str()).bind(currency.code()).fetch_optional(store.reader()).await?;
    row.map(WalletRecord::try_from).transpose()
}

/// All wallets of an owner (its own, not those of its accounts), by currency then purpose.
pub async fn of_owner(store: &Store, owner: WalletOwner) -> Result<Vec<WalletRecord>> {
    let sql = format!("SELECT {} FROM wallets w WHERE tenant_id = $1 AND COALESCE(account_id, 0) = $2 AND ad_account_id IS NULL ORDER BY currency, id", *COLUMNS);
    let rows: Vec<WalletRow<String>> = sqlx::query_as(&sql).bind(owner.tenant().0).bind(owner.account_key()).fetch_all(store.reader()).await?;
    rows.into_iter().map(WalletRecord::try_from).collect()
}

pub async fn get(store: &Store, tenant: TenantId, id: WalletId) -> Result<Option<WalletRecord>> {
    let sql = format!("SELECT {} FROM wallets w WHERE tenant_id = $1 AND id = $2", *COLUMNS);
    let row: Option<WalletRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(id.0).fetch_optional(store.reader()).await?;
    row.map(WalletRecord::try_from).transpose()
}

/// One entry of a wallet's history, with the transfer it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EntryRecord {
    pub seq: i64,
    pub transfer_id: i64,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub created_at_us: i64,
    pub kind: String,
    pub memo: Option<String>,
    pub counterparty_wallet_id: i64,
}

/// Entries of a wallet after sequence number `after_seq`, oldest first.
pub async fn entries_after(store: &Store, wallet: WalletId, after_seq: i64, limit: i64) -> Result<Vec<EntryRecord>> {
    Ok(sqlx::query_as(
        "SELECT e.seq, e.transfer_id, e.amount_minor, e.balance_after_minor, e.created_at_us, t.kind, t.memo,
                CASE WHEN t.debit_wallet_id = e.wallet_id THEN t.credit_wallet_id ELSE t.debit_wallet_id END AS counterparty_wallet_id
         FROM entries e JOIN transfers t ON t.id = e.transfer_id
         WHERE e.wallet_id = $1 AND e.seq > $2
         ORDER BY e.seq LIMIT $3",
    )
    .bind(wallet.0)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(store.reader())
    .await?)
}

/// The wallet of the account with this username, in one lookup.
pub async fn find_for_username(store: &Store, tenant: TenantId, username: &str, purpose: WalletPurpose, currency: Currency) -> Result<Option<WalletRecord>> {
    let sql = format!(
        "SELECT {} FROM wallets w JOIN accounts a ON a.id = w.account_id
         WHERE a.tenant_id = $1 AND a.username = $2 AND w.purpose = $3 AND w.currency = $4",
        *COLUMNS
    );
    let row: Option<WalletRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(username).bind(purpose.as_str()).bind(currency.code()).fetch_optional(store.reader()).await?;
    row.map(WalletRecord::try_from).transpose()
}

/// Sets a wallet's floor (its overdraft limit, negated). Refused — `false` —
/// when the balance is already below the new floor: the floor is an
/// invariant, so it cannot be raised past money already owed.
pub async fn set_floor(tx: &mut WriteTx, wallet: WalletId, floor_minor: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE wallets SET floor_minor = $2 WHERE id = $1 AND balance_minor - reserved_minor >= $2 AND floor_minor IS NOT NULL")
        .bind(wallet.0)
        .bind(floor_minor)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}
