//! Two-phase transfers (holds), TigerBeetle's pending transfers: a hold
//! reserves money on its debit wallet; it is later posted (for at most what
//! it reserved, the rest given back) or voided, and a hold that reaches its
//! timeout voids itself (`expired`) — in every process, and after a crash,
//! through [`Services::expire_overdue_holds`], which each server runs every
//! second. A post that arrives after the timeout finds the hold expired even
//! if the sweep has not come by yet.
//!
//! Reserved money stays on the wallet (its balance does not move) but no
//! longer counts as available: transfers, charges and other holds see
//! `balance − reserved` against the floor.

use subledger_domain::ids::{TransferId, WalletId};
use subledger_domain::ledger::TransferIntent;
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_storage::StorageError;
use subledger_storage::ledger as store_ledger;
pub use subledger_storage::ledger::{HOLDS_PAGE_MAX, StoredHold};
use subledger_storage::records::ChangeRecords;

use crate::error::{Resource, ServiceError, ServiceResult};
use crate::funds::{MoveOptions, WalletRef, move_between};
use crate::ledger::{HoldAction, HoldReceipt, HoldRequest, HoldStep, TransferReceipt};
use crate::tenants::Tenant;
use crate::{Change, Services};

/// Shortest timeout a hold may ask for, in seconds.
pub const HOLD_TIMEOUT_SECONDS_MIN: u32 = 1;
/// Longest timeout a hold may ask for, in seconds: 30 days.
pub const HOLD_TIMEOUT_SECONDS_MAX: u32 = 30 * 24 * 3_600;
/// The timeout of a hold that names none, in seconds: an hour.
pub const HOLD_TIMEOUT_SECONDS_DEFAULT: u32 = 3_600;
/// Most overdue holds one sweep expires; the sweep runs again at once while it finds this many.
pub const EXPIRY_SWEEP_MAX: i64 = 512;

/// A hold's states, as the API and storage name them.
pub const HOLD_STATES: [&str; 5] = ["pending", "posted", "voided", "expired", "rejected"];

/// What a hold reserves, where, and for how long.
#[derive(Debug, Clone)]
pub struct HoldInput {
    /// The wallet the money is reserved on.
    pub from: WalletRef,
    /// The wallet a posting pays.
    pub to: WalletRef,
    pub amount: PositiveAmount,
    pub currency: Currency,
    /// Seconds until it voids itself, from [`HOLD_TIMEOUT_SECONDS_MIN`] to [`HOLD_TIMEOUT_SECONDS_MAX`].
    pub timeout_seconds: u32,
}

/// A posted hold and the transfer that moved its money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedHold {
    pub hold: StoredHold,
    pub transfer: TransferReceipt,
    /// True when this answers a replayed key: nothing moved this time.
    pub replayed: bool,
}

/// Which holds to list.
#[derive(Debug, Clone, Default)]
pub struct HoldFilter {
    /// Only holds of this state (one of [`HOLD_STATES`]).
    pub state: Option<String>,
    /// Only holds debiting or crediting this wallet.
    pub wallet: Option<WalletId>,
    /// Only holds older than this one (the previous page's last id).
    pub before: Option<TransferId>,
}

impl Services {
    /// Reserves `amount` on `from` for a later move to `to`, until posted,
    /// voided, or `timeout_seconds` pass. Refused (insufficient funds), the
    /// receipt's hold is `rejected` and nothing is reserved; with a key, the
    /// refusal is kept, so that replaying the key answers it again.
    pub async fn open_hold(&self, tenant: &Tenant, input: &HoldInput, options: MoveOptions, change: &Change) -> ServiceResult<HoldReceipt> {
        let HoldInput { from, to, amount, currency, timeout_seconds } = input;
        let (amount, currency, timeout_seconds) = (*amount, *currency, *timeout_seconds);
        if !(HOLD_TIMEOUT_SECONDS_MIN..=HOLD_TIMEOUT_SECONDS_MAX).contains(&timeout_seconds) {
            return Err(ServiceError::Invalid { field: "timeout_seconds", reason: format!("must be from {HOLD_TIMEOUT_SECONDS_MIN} to {HOLD_TIMEOUT_SECONDS_MAX}") });
        }
        let (kind, debit_rule) = move_between(from, to);
        let debit = self.spendable_wallet(tenant, from, currency).await?;
        let credit = self.spendable_wallet(tenant, to, currency).await?;
        if debit == credit {
            return Err(ServiceError::Invalid { field: "to", reason: "a hold moves money between two different wallets".to_owned() });
        }
        let intent = TransferIntent { debit, credit, amount, currency, debit_rule };
        let timeout_at_us = crate::now_us() + i64::from(timeout_seconds) * 1_000_000;
        let request = HoldRequest {
            tenant: tenant.id,
            idempotency_key: options.idempotency_key,
            kind,
            intent,
            memo: options.memo,
            timeout_at_us,
            records: change.records(tenant.id, Operation::new(OperationKind::HoldOpen, "").with_detail(format!("{} {currency}", subledger_domain::money::format_minor(amount.minor())))),
        };
        self.ledger.submit_hold(request).await
    }

    /// Posts a pending hold for `amount` (all it reserved when `None`); the
    /// rest of its reservation is given back. A key replays the posting.
    pub async fn post_hold(&self, tenant: &Tenant, id: TransferId, amount: Option<PositiveAmount>, options: MoveOptions, change: &Change) -> ServiceResult<PostedHold> {
        let action = HoldAction::Post { amount, memo: options.memo, idempotency_key: options.idempotency_key };
        let HoldReceipt { hold, replayed, posted } = self.hold_step(tenant, id, action, change.records(tenant.id, Operation::new(OperationKind::HoldPost, id.to_string()))).await?;
        let transfer = posted.ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("hold {id} was posted without a transfer"))))?;
        Ok(PostedHold { hold, transfer, replayed })
    }

    /// Voids a pending hold: its reservation is given back. Voiding a hold
    /// already voided (or expired) answers it as it is.
    pub async fn void_hold(&self, tenant: &Tenant, id: TransferId, change: &Change) -> ServiceResult<HoldReceipt> {
        self.hold_step(tenant, id, HoldAction::Void, change.records(tenant.id, Operation::new(OperationKind::HoldVoid, id.to_string()))).await
    }

    async fn hold_step(&self, tenant: &Tenant, id: TransferId, action: HoldAction, records: ChangeRecords) -> ServiceResult<HoldReceipt> {
        // A hold's wallets never change: read here, they let the batch lock
        // them; its state is read again inside the batch.
        let stored = self.hold(tenant, id).await?;
        let step = HoldStep { tenant: tenant.id, hold: id, debit: stored.hold.intent.debit, credit: stored.hold.intent.credit, action, records };
        self.ledger.submit_hold_step(step).await
    }

    /// A hold of this tenant by id.
    pub async fn hold(&self, tenant: &Tenant, id: TransferId) -> ServiceResult<StoredHold> {
        store_ledger::get_hold(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Hold))
    }

    /// A page of the tenant's holds, newest first.
    pub async fn holds(&self, tenant: &Tenant, filter: &HoldFilter, limit: i64) -> ServiceResult<Vec<StoredHold>> {
        if let Some(state) = &filter.state
            && !HOLD_STATES.contains(&state.as_str())
        {
            return Err(ServiceError::Invalid { field: "state", reason: format!("must be one of {}", HOLD_STATES.join(", ")) });
        }
        Ok(store_ledger::list_holds(&self.store, tenant.id, filter.before, filter.state.as_deref(), filter.wallet, limit.clamp(1, HOLDS_PAGE_MAX)).await?)
    }

    /// Expires pending holds past their timeout, of every tenant, at most
    /// [`EXPIRY_SWEEP_MAX`] at a time; returns how many it expired. Safe in
    /// several processes at once: a hold is expired once, the others find it
    /// no longer pending.
    pub async fn expire_overdue_holds(&self) -> ServiceResult<usize> {
        let overdue = store_ledger::overdue_holds(&self.store, crate::now_us(), EXPIRY_SWEEP_MAX).await?;
        // Queued together, they share the ledger's batches.
        let mut steps = tokio::task::JoinSet::new();
        for stored in overdue {
            let step = HoldStep {
                tenant: stored.hold.tenant,
                hold: stored.hold.id,
                debit: stored.hold.intent.debit,
                credit: stored.hold.intent.credit,
                action: HoldAction::Expire,
                records: ChangeRecords::default(),
            };
            let ledger = self.ledger.clone();
            steps.spawn(async move { ledger.submit_hold_step(step).await });
        }
        let mut expired = 0;
        while let Some(receipt) = steps.join_next().await {
            let receipt = receipt.map_err(|_| ServiceError::Unavailable("an expiry step panicked"))??;
            if !receipt.replayed {
                expired += 1;
            }
        }
        Ok(expired)
    }
}
