//! Reads behind statements (the telephony dialect's balances, consumption and
//! monthly statements): wallet movements over a period, and usage rollups of
//! one account by day and by month. Raw usage events are never read.

use subledger_domain::ids::{AccountId, TenantId, WalletId};
use subledger_domain::ledger::TransferKind;
use subledger_domain::rating::Quantity;

use crate::rows::ProductMonthRow;
use crate::{Result, StorageError, Store};

/// One wallet over a period that starts at an instant and runs to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct WalletPeriod {
    /// `balance_after_minor` of the wallet's last entry before the period (0 if none).
    pub opening_minor: i64,
    /// Sum of the credits (positive entries) after that entry from transfers of the kinds asked for.
    pub credited_minor: i64,
    /// The wallet's balance now.
    pub balance_minor: i64,
}

/// A wallet from `from_us` on, read in one statement (one snapshot), so that
/// the opening balance, the credits and the balance agree with each other.
///
/// The period's entries are those after the last entry created before
/// `from_us`, so opening balance plus the period's entries is the balance.
/// Entries are keyed `(wallet_id, seq)`: the opening entry is found by
/// walking the wallet's entries back from the newest, and the credits by a
/// range of `seq`; nothing scans more than the period's entries.
pub async fn wallet_period(store: &Store, wallet: WalletId, from_us: i64, credited_by: &[TransferKind]) -> Result<WalletPeriod> {
    // The kinds are the ledger's own fixed names, never user input.
    let kinds = if credited_by.is_empty() { "''".to_owned() } else { credited_by.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ") };
    let sql = format!(
        "WITH opening AS (
            SELECT seq, balance_after_minor FROM entries WHERE wallet_id = $1 AND created_at_us < $2 ORDER BY seq DESC LIMIT 1
         )
         SELECT
            COALESCE((SELECT balance_after_minor FROM opening), 0) AS opening_minor,
            COALESCE((SELECT CAST(SUM(e.amount_minor) AS BIGINT) FROM entries e JOIN transfers t ON t.id = e.transfer_id
                      WHERE e.wallet_id = $1 AND e.seq > COALESCE((SELECT seq FROM opening), 0) AND e.amount_minor > 0 AND t.kind IN ({kinds})), 0) AS credited_minor,
            COALESCE((SELECT balance_minor FROM wallets WHERE id = $1), 0) AS balance_minor"
    );
    Ok(sqlx::query_as(&sql).bind(wallet.0).bind(from_us).fetch_one(store.reader()).await?)
}

/// One product's usage by one account in one month, summed over grouping values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductMonth {
    pub product_code: String,
    pub billable: Quantity,
    pub events: i64,
    pub rated_micros: i64,
}

/// An account's month rollups (`usage_monthly`) for `month` (`YYYY-MM`), per product.
pub async fn month_by_product(store: &Store, tenant: TenantId, account: AccountId, month: &str) -> Result<Vec<ProductMonth>> {
    let rows: Vec<ProductMonthRow<String>> = sqlx::query_as(
        "SELECT product_code, CAST(SUM(billable_milli) AS BIGINT) AS billable_milli, CAST(SUM(events) AS BIGINT) AS events,
                CAST(SUM(rated_micros) AS BIGINT) AS rated_micros
         FROM usage_monthly WHERE account_id = $1 AND tenant_id = $2 AND month = $3
         GROUP BY product_code ORDER BY product_code",
    )
    .bind(account.0)
    .bind(tenant.0)
    .bind(month)
    .fetch_all(store.reader())
    .await?;
    rows.into_iter().map(|row| row.product_month(account, month)).collect()
}

/// What a wallet was credited and debited per transfer kind since `from_us`
/// (its entries after the last one created before then, as in
/// [`wallet_period`]): `(kind, credited, debited)`, both positive.
pub async fn wallet_flows(store: &Store, wallet: WalletId, from_us: i64) -> Result<Vec<(TransferKind, i64, i64)>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "WITH opening AS (
            SELECT seq FROM entries WHERE wallet_id = $1 AND created_at_us < $2 ORDER BY seq DESC LIMIT 1
         )
         SELECT t.kind,
                CAST(COALESCE(SUM(CASE WHEN e.amount_minor > 0 THEN e.amount_minor ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN e.amount_minor < 0 THEN -e.amount_minor ELSE 0 END), 0) AS BIGINT)
         FROM entries e JOIN transfers t ON t.id = e.transfer_id
         WHERE e.wallet_id = $1 AND e.seq > COALESCE((SELECT seq FROM opening), 0)
         GROUP BY t.kind ORDER BY t.kind",
    )
    .bind(wallet.0)
    .bind(from_us)
    .fetch_all(store.reader())
    .await?;
    rows.into_iter().map(|(kind, credited, debited)| Ok((kind.parse().map_err(|()| StorageError::corrupt(format!("transfer kind {kind:?} of wallet {wallet}")))?, credited, debited))).collect()
}
