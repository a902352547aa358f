//! The enterprise's recharge log (UUCall `cashlog`): a read projection of the
//! ledger's deposits into the tenant's own wallets, in the statement currency.

use subledger_domain::ledger::WalletPurpose;
use subledger_domain::paging::Page;
use subledger_storage::StorageError;
use subledger_storage::recharges::{self as store_recharges, RechargeRecord};
use subledger_storage::wallets::{self as store_wallets, WalletOwner};

use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::statements::STATEMENT_CURRENCY;
use crate::tenants::Tenant;

/// Most recharges one page returns.
pub const RECHARGE_PAGE_MAX: i64 = 200;

/// One recharge of the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recharge {
    /// The deposit's transfer id.
    pub id: i64,
    pub at_us: i64,
    /// In minor units (fen) of [`STATEMENT_CURRENCY`].
    pub amount_minor: i64,
    /// The wallet credited: `Primary` (充值账户) or `Promo` (赠送账户).
    pub purpose: WalletPurpose,
    pub memo: Option<String>,
    /// The deposit's idempotency key, or its transfer id when it had none:
    /// what the recharge is known by outside.
    pub serial_number: String,
}

impl Recharge {
    fn of(record: RechargeRecord) -> ServiceResult<Recharge> {
        let purpose = record.purpose.parse::<WalletPurpose>().ok().filter(|p| p.is_spendable());
        let purpose = purpose.ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("transfer {}: a deposit into a {:?} wallet", record.transfer_id, record.purpose))))?;
        Ok(Recharge {
            id: record.transfer_id,
            at_us: record.created_at_us,
            amount_minor: record.amount_minor,
            purpose,
            memo: record.memo,
            serial_number: record.idempotency_key.unwrap_or_else(|| record.transfer_id.to_string()),
        })
    }
}

impl Services {
    /// A page of the tenant's recharges, newest first, with how many there
    /// are. Deposits into its accounts' wallets are theirs, not the
    /// enterprise's, and deposits in other currencies are left out: the
    /// recharge log shows yuan.
    pub async fn recharges(&self, tenant: &Tenant, page: Page) -> ServiceResult<(i64, Vec<Recharge>)> {
        let Some(world) = store_wallets::find(&self.store, WalletOwner::Tenant(tenant.id), WalletPurpose::World, STATEMENT_CURRENCY).await? else {
            return Ok((0, Vec::new()));
        };
        let total = store_recharges::count(&self.store, tenant.id, world.id).await?;
        let limit = page.limit.min(RECHARGE_PAGE_MAX);
        let records = if limit == 0 { Vec::new() } else { store_recharges::list(&self.store, tenant.id, world.id, page.offset, limit).await? };
        Ok((total, records.into_iter().map(Recharge::of).collect::<ServiceResult<_>>()?))
    }
}
