//! Reads of a tenant's recharges: the deposits from the outside world into the
//! tenant's own wallets (UUCall `cashlog`).
//!
//! Every deposit debits the tenant's `world` wallet of its currency, and
//! nothing else does, so the world wallet's entries are exactly the deposits:
//! reading them walks the entries' primary key `(wallet_id, seq)` instead of
//! the whole `transfers` table, which has no index by kind (one would cost
//! every ledger batch a write).

use subledger_domain::ids::{TenantId, WalletId};

use crate::{Result, Store};

/// One deposit into a tenant's own wallet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RechargeRecord {
    pub transfer_id: i64,
    pub created_at_us: i64,
    pub amount_minor: i64,
    /// `primary` or `promo`: the tenant's wallet credited.
    pub purpose: String,
    pub idempotency_key: Option<String>,
    pub memo: Option<String>,
}

/// The deposits among `world`'s entries that credited a wallet of the tenant
/// itself (not one of its accounts').
const FROM: &str = "FROM entries e
     JOIN transfers t ON t.id = e.transfer_id
     JOIN wallets c ON c.id = t.credit_wallet_id
     WHERE e.wallet_id = $1 AND e.tenant_id = $2 AND t.kind = 'deposit' AND c.tenant_id = $2 AND c.account_id IS NULL";

/// A page of the tenant's recharges through its world wallet `world`, newest first.
pub async fn list(store: &Store, tenant: TenantId, world: WalletId, offset: i64, limit: i64) -> Result<Vec<RechargeRecord>> {
    let sql = format!("SELECT t.id AS transfer_id, t.created_at_us, t.amount_minor, c.purpose, t.idempotency_key, t.memo {FROM} ORDER BY e.seq DESC LIMIT $3 OFFSET $4");
    Ok(sqlx::query_as(&sql).bind(world.0).bind(tenant.0).bind(limit.max(0)).bind(offset.max(0)).fetch_all(store.reader()).await?)
}

/// How many recharges the tenant has through `world`.
pub async fn count(store: &Store, tenant: TenantId, world: WalletId) -> Result<i64> {
    Ok(sqlx::query_scalar(&format!("SELECT COUNT(*) {FROM}")).bind(world.0).bind(tenant.0).fetch_one(store.reader()).await?)
}
