//! Time cards (时长卡): issued, listed and cancelled here with plain writes;
//! consumed by usage batches on the ledger writer (`ledger::usage`), which
//! read them under the batch's lock and write their minutes left only as read.

use std::sync::LazyLock;

use subledger_domain::ids::{AccountId, TenantId, TimeCardId};
use subledger_domain::timecards::Card;

use crate::rows::{self, NewTimeCardRow, Row, TimeCardRow, columns};
use crate::{Result, StorageError, Store, WriteTx};

/// A card as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCardRecord {
    /// What the usage engine sees of it (id, holder, minutes left, validity, status).
    pub card: Card,
    pub name: String,
    pub minutes_total: i64,
    pub note: String,
    pub created_at_us: i64,
}

impl TryFrom<TimeCardRow<String>> for TimeCardRecord {
    type Error = StorageError;

    fn try_from(row: TimeCardRow<String>) -> Result<TimeCardRecord> {
        Ok(TimeCardRecord { card: row.card()?, name: row.name, minutes_total: row.minutes_total, note: row.note, created_at_us: row.created_at_us })
    }
}

pub struct NewTimeCard<'a> {
    pub tenant: TenantId,
    /// `None`: shared by the tenant's seats.
    pub account: Option<AccountId>,
    pub name: &'a str,
    pub minutes: i64,
    pub effective_at_us: i64,
    pub expires_at_us: i64,
    pub note: &'a str,
    pub now_us: i64,
}

static INSERT: LazyLock<String> = LazyLock::new(|| format!("{} RETURNING id", rows::sqlx_insert::<NewTimeCardRow<&str>>()));

pub async fn insert(tx: &mut WriteTx, card: &NewTimeCard<'_>) -> Result<TimeCardId> {
    let row = NewTimeCardRow {
        tenant_id: card.tenant.0,
        account_id: card.account.map(|a| a.0),
        name: card.name,
        minutes_total: card.minutes,
        minutes_left: card.minutes,
        effective_at_us: card.effective_at_us,
        expires_at_us: card.expires_at_us,
        state: "active",
        note: card.note,
        created_at_us: card.now_us,
        updated_at_us: card.now_us,
    };
    Ok(TimeCardId(sqlx::query_scalar_with(&INSERT, row.sqlx_arguments()?).fetch_one(tx.conn()).await?))
}

/// `account_id` of one holder: an account's cards, or the shared ones.
fn holder(account: Option<AccountId>) -> &'static str {
    if account.is_some() { "account_id = $2" } else { "account_id IS NULL AND CAST($2 AS BIGINT) IS NULL" }
}

/// How many cards of a holder can still cover something after `now_us`
/// (active, minutes left, not expired): what a usage batch may read of it.
pub async fn count_usable(tx: &mut WriteTx, tenant: TenantId, account: Option<AccountId>, now_us: i64) -> Result<i64> {
    let sql = format!("SELECT COUNT(*) FROM time_cards WHERE tenant_id = $1 AND {} AND state = 'active' AND minutes_left > 0 AND expires_at_us > $3", holder(account));
    Ok(sqlx::query_scalar(&sql).bind(tenant.0).bind(account.map(|a| a.0)).bind(now_us).fetch_one(tx.conn()).await?)
}

/// A page of the tenant's cards, by id: all of them, or with `account` the
/// cards that can cover it (its own and the shared ones), and how many there are.
pub async fn list(store: &Store, tenant: TenantId, account: Option<AccountId>, offset: i64, limit: i64) -> Result<(i64, Vec<TimeCardRecord>)> {
    let filter = if account.is_some() { "tenant_id = $1 AND (account_id = $2 OR account_id IS NULL)" } else { "tenant_id = $1 AND CAST($2 AS BIGINT) IS NULL" };
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM time_cards WHERE {filter}")).bind(tenant.0).bind(account.map(|a| a.0)).fetch_one(store.reader()).await?;
    let sql = format!("SELECT {} FROM time_cards WHERE {filter} ORDER BY id LIMIT $3 OFFSET $4", columns::<TimeCardRow<String>>(None));
    let rows: Vec<TimeCardRow<String>> = sqlx::query_as(&sql).bind(tenant.0).bind(account.map(|a| a.0)).bind(limit).bind(offset).fetch_all(store.reader()).await?;
    Ok((total, rows.into_iter().map(TimeCardRecord::try_from).collect::<Result<_>>()?))
}

/// Cancels a card of the tenant (it covers nothing more; its minutes left
/// stay as they were). `None` when the tenant has no such card.
pub async fn cancel(tx: &mut WriteTx, tenant: TenantId, id: TimeCardId, now_us: i64) -> Result<Option<TimeCardRecord>> {
    let sql = format!("UPDATE time_cards SET state = 'cancelled', updated_at_us = $3 WHERE id = $1 AND tenant_id = $2 RETURNING {}", columns::<TimeCardRow<String>>(None));
    let row: Option<TimeCardRow<String>> = sqlx::query_as(&sql).bind(id.0).bind(tenant.0).bind(now_us).fetch_optional(tx.conn()).await?;
    row.map(TimeCardRecord::try_from).transpose()
}
