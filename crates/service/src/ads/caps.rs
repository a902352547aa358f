//! The dialect's writes: spend cap changes and resets (money, in two phases)
//! and Business Manager and pixel bindings; and the recovery job that settles
//! writes whose platform answer was lost.
//!
//! A write is recorded under its `search_id` before anything happens
//! (`ad_writes`, state `started`), which is also the account's lock for money
//! changes (one at a time). A spend cap change then:
//!
//! 1. reserves the difference of caps (a hold): from the tenant's USD wallet
//!    to the account's `ad_cap` wallet when the cap rises, the other way when
//!    it falls; a reservation the tenant cannot fund is refused (nothing asked
//!    upstream);
//! 2. asks the platform to set the cap (outside any transaction, never on the
//!    ledger worker);
//! 3. posts the hold when the platform applied it, with the account's new cap
//!    written in the same transaction (`AdMoneyRecord`); voids it when the
//!    platform refused; leaves both when the answer was lost (`unknown`).
//!
//! The recovery job ([`Services::recover_ad_writes`], each server, at start
//! and periodically) takes writes left `started` or `unknown` for longer than
//! a call can last, reads the account back from the platform and posts or
//! voids accordingly — never guessing. A hold that expired meanwhile while the
//! platform did apply the change is made good by a transfer of its own.

use subledger_ads::{AdPlatform, PlatformError, RESET_SPEND_CAP_CENTS, Scope};
use subledger_domain::ads::{SpendCap, cap_change_cents, recharge_refusal, reset_cents};
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind, TransferRejection, WalletPurpose};
use subledger_domain::money::{Currency, PositiveAmount, format_minor};
use subledger_domain::oplog::{Actor, Operation, OperationKind};
use subledger_domain::posting::HoldState;
use subledger_storage::StorageError;
use subledger_storage::UniqueKey;
use subledger_storage::ads::{self as store_ads, AdWriteRecord};
use subledger_storage::records::{AdMoneyRecord, ChangeRecords};
use subledger_storage::wallets::{self as store_wallets, WalletOwner};

use super::{AdAccountView, AdRefusal, AdWrite, SEARCH_ID_CHARS_MAX, Upstream};
use crate::cache::WalletKey;
use crate::error::{ServiceError, ServiceResult};
use crate::funds::{Holder, WalletRef};
use crate::ledger::{HoldAction, HoldRequest, HoldStep, TransferRequest};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Most unsettled writes one recovery round visits.
pub const RECOVERY_BATCH_MAX: i64 = 256;

/// The kinds of write, as `ad_writes.operation` stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    SpendCap,
    Reset,
    BindBusiness,
    UnbindBusiness,
    BindPixel,
    UnbindPixel,
}

impl WriteKind {
    const ALL: [WriteKind; 6] = [WriteKind::SpendCap, WriteKind::Reset, WriteKind::BindBusiness, WriteKind::UnbindBusiness, WriteKind::BindPixel, WriteKind::UnbindPixel];

    fn code(self) -> &'static str {
        match self {
            WriteKind::SpendCap => "change_spend_cap",
            WriteKind::Reset => "account_spend_cap_reset",
            WriteKind::BindBusiness => "account_binding_bm",
            WriteKind::UnbindBusiness => "account_remove_bm",
            WriteKind::BindPixel => "account_binding_pixel",
            WriteKind::UnbindPixel => "account_remove_pixel",
        }
    }

    fn parse(code: &str) -> Option<WriteKind> {
        WriteKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    fn operation(self) -> OperationKind {
        match self {
            WriteKind::SpendCap => OperationKind::AdSpendCap,
            WriteKind::Reset => OperationKind::AdReset,
            WriteKind::BindBusiness => OperationKind::AdBindBusiness,
            WriteKind::UnbindBusiness => OperationKind::AdUnbindBusiness,
            WriteKind::BindPixel => OperationKind::AdBindPixel,
            WriteKind::UnbindPixel => OperationKind::AdUnbindPixel,
        }
    }

    fn moves_money(self) -> bool {
        matches!(self, WriteKind::SpendCap | WriteKind::Reset)
    }
}

/// One write as asked: its kind, the account, and its one parameter (the
/// cap in cents, or the Business Manager's or pixel's id).
#[derive(Debug, Clone)]
struct Intent {
    kind: WriteKind,
    account: String,
    cap_after_cents: Option<i64>,
    target: String,
}

impl Intent {
    /// What a replay must match.
    fn fingerprint(&self) -> String {
        format!("{}:{}:{}:{}", self.kind.code(), self.account, self.cap_after_cents.map(|c| c.to_string()).unwrap_or_default(), self.target)
    }

    fn operation(&self) -> Operation {
        let detail = match (self.kind, self.cap_after_cents) {
            (WriteKind::SpendCap, Some(cents)) => format!("{} USD", format_minor(cents)),
            _ => self.target.clone(),
        };
        Operation::new(self.kind.operation(), self.account.clone()).with_detail(detail)
    }
}

/// How a settled write's outcome is stored, so that a replay answers it.
fn encode(result: &ServiceResult<()>) -> Option<(String, Option<String>)> {
    let (outcome, message) = match result {
        Ok(()) => ("applied".to_owned(), None),
        Err(ServiceError::Rejected(rejection)) => (format!("rejected:{}", rejection.as_str()), None),
        Err(ServiceError::AdRefused(AdRefusal::NotApplied)) => ("not_applied".to_owned(), None),
        Err(ServiceError::AdRefused(AdRefusal::CapNotAboveSpent { amount_spent_cents })) => (format!("cap_not_above_spent:{amount_spent_cents}"), None),
        Err(ServiceError::AdRefused(AdRefusal::UnbindingPaused)) => ("unbinding_paused".to_owned(), None),
        Err(ServiceError::AdRefused(AdRefusal::Recharge(refusal))) => (format!("recharge:{}", refusal_code(*refusal)), None),
        Err(ServiceError::AdRefused(AdRefusal::ResetStatus(status))) => (format!("reset_status:{}", status.code()), None),
        Err(ServiceError::Upstream(PlatformError::Refused { code, subcode, message })) => (format!("upstream_refused:{code}:{}", subcode.unwrap_or(0)), Some(message.clone())),
        Err(ServiceError::Upstream(PlatformError::NotFound)) => ("upstream_not_found".to_owned(), None),
        Err(ServiceError::Upstream(PlatformError::RateLimited { retry_after_s })) => (format!("upstream_rate_limited:{retry_after_s}"), None),
        // Anything else is not an outcome of the write (it may still happen).
        Err(_) => return None,
    };
    Some((outcome, message))
}

fn refusal_code(refusal: subledger_domain::ads::RechargeRefusal) -> String {
    use subledger_domain::ads::RechargeRefusal;
    match refusal {
        RechargeRefusal::Violation => "violation".to_owned(),
        RechargeRefusal::Blacklisted(level) => format!("blacklisted:{}", level.code()),
        RechargeRefusal::Status(status) => format!("status:{}", status.code()),
    }
}

/// The answer a stored outcome gives again.
fn decode(outcome: &str, message: Option<String>) -> ServiceResult<()> {
    use subledger_domain::ads::{AdStatus, BlacklistLevel, RechargeRefusal};
    let corrupt = || ServiceError::Storage(StorageError::Corrupt(format!("ad write outcome {outcome:?}")));
    let parts: Vec<&str> = outcome.split(':').collect();
    let number = |index: usize| parts.get(index).and_then(|p| p.parse::<i64>().ok()).ok_or_else(corrupt);
    let status = |code: i64| [AdStatus::Normal, AdStatus::Closed, AdStatus::Disabled, AdStatus::Empty, AdStatus::DisabledZeroing].into_iter().find(|s| s.code() == code).ok_or_else(corrupt);
    Err(match parts.as_slice() {
        ["applied"] => return Ok(()),
        ["rejected", reason] => ServiceError::Rejected(reason.parse::<TransferRejection>().map_err(|()| corrupt())?),
        ["not_applied"] => ServiceError::AdRefused(AdRefusal::NotApplied),
        ["cap_not_above_spent", _] => ServiceError::AdRefused(AdRefusal::CapNotAboveSpent { amount_spent_cents: number(1)? }),
        ["unbinding_paused"] => ServiceError::AdRefused(AdRefusal::UnbindingPaused),
        ["recharge", "violation"] => ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Violation)),
        ["recharge", "blacklisted", _] => ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Blacklisted(BlacklistLevel::from_code(number(2)?).ok_or_else(corrupt)?))),
        ["recharge", "status", _] => ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Status(status(number(2)?)?))),
        ["reset_status", _] => ServiceError::AdRefused(AdRefusal::ResetStatus(status(number(1)?)?)),
        ["upstream_refused", _, _] => {
            let subcode = number(2)?;
            ServiceError::Upstream(PlatformError::Refused { code: number(1)?, subcode: (subcode != 0).then_some(subcode), message: message.unwrap_or_default() })
        }
        ["upstream_not_found"] => ServiceError::Upstream(PlatformError::NotFound),
        ["upstream_rate_limited", _] => ServiceError::Upstream(PlatformError::RateLimited { retry_after_s: u64::try_from(number(1)?).map_err(|_| corrupt())? }),
        _ => return Err(corrupt()),
    })
}

/// The key of a write's hold, per tenant.
fn hold_key(search_id: &str) -> String {
    format!("ads:{search_id}")
}

/// Which way a cap change moves money, and how much.
struct Movement {
    kind: TransferKind,
    debit: WalletId,
    credit: WalletId,
    amount: PositiveAmount,
    debit_rule: DebitRule,
}

impl Services {
    /// Sets the account's spend cap to `cap` (US cents), funding the
    /// difference from the tenant's USD wallet or returning it there.
    pub async fn change_ad_spend_cap(&self, tenant: &Tenant, write: &AdWrite, id: &str, cap: SpendCap) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::SpendCap, account: id.to_owned(), cap_after_cents: Some(cap.cents()), target: String::new() }).await
    }

    /// Resets the account's spend (Meta's `spend_cap_action=reset`): what it
    /// had not spent goes back to the tenant's USD wallet.
    pub async fn reset_ad_spend_cap(&self, tenant: &Tenant, write: &AdWrite, id: &str) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::Reset, account: id.to_owned(), cap_after_cents: Some(RESET_SPEND_CAP_CENTS), target: String::new() }).await
    }

    pub async fn bind_ad_business(&self, tenant: &Tenant, write: &AdWrite, id: &str, business_id: &str) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::BindBusiness, account: id.to_owned(), cap_after_cents: None, target: business_id.to_owned() }).await
    }

    pub async fn unbind_ad_business(&self, tenant: &Tenant, write: &AdWrite, id: &str, business_id: &str) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::UnbindBusiness, account: id.to_owned(), cap_after_cents: None, target: business_id.to_owned() }).await
    }

    pub async fn bind_ad_pixel(&self, tenant: &Tenant, write: &AdWrite, id: &str, pixel_id: &str) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::BindPixel, account: id.to_owned(), cap_after_cents: None, target: pixel_id.to_owned() }).await
    }

    pub async fn unbind_ad_pixel(&self, tenant: &Tenant, write: &AdWrite, id: &str, pixel_id: &str) -> ServiceResult<()> {
        self.run_ad_write(tenant, write, Intent { kind: WriteKind::UnbindPixel, account: id.to_owned(), cap_after_cents: None, target: pixel_id.to_owned() }).await
    }

    async fn run_ad_write(&self, tenant: &Tenant, write: &AdWrite, intent: Intent) -> ServiceResult<()> {
        let account = self.ad_account(tenant, &intent.account).await?;
        let search_id = match &write.search_id {
            Some(id) if id.chars().count() > SEARCH_ID_CHARS_MAX => {
                return Err(ServiceError::Invalid { field: "search_id", reason: format!("at most {SEARCH_ID_CHARS_MAX} characters") });
            }
            Some(id) if !id.is_empty() => id.clone(),
            // No key: the write is still recorded (it is the account's lock), under a key nobody can replay.
            _ => format!("auto:{}", crate::secrets::random_lower36(24)),
        };
        if let Some(existing) = store_ads::write(&self.store, tenant.id, &search_id).await? {
            return replay(&existing, &intent);
        }
        if let Some(refusal) = self.ad_write_refusal(tenant, &account, &intent).await? {
            let refused = Err(ServiceError::AdRefused(refusal));
            // Kept only under the caller's key, for its replays: a refusal without one stores (and logs) nothing.
            if write.search_id.as_deref().is_some_and(|id| !id.is_empty()) {
                self.record_settled(tenant, &write.change, &search_id, &intent, &refused).await?;
            }
            return refused;
        }
        let now = now_us();
        let record = AdWriteRecord {
            tenant_id: tenant.id.0,
            search_id: search_id.clone(),
            operation: intent.kind.code().to_owned(),
            fingerprint: intent.fingerprint(),
            account_id: intent.account.clone(),
            state: "started".to_owned(),
            cap_before_cents: None,
            cap_after_cents: intent.cap_after_cents,
            hold_id: None,
            outcome: None,
            message: None,
            created_at_us: now,
            updated_at_us: now,
        };
        let mut tx = self.store.begin_write().await?;
        match store_ads::insert_write(&mut tx, &record).await {
            Ok(()) => {}
            Err(StorageError::UniqueViolation { key: UniqueKey::AdWrite, .. }) => {
                drop(tx);
                let existing = store_ads::write(&self.store, tenant.id, &search_id).await?.ok_or(ServiceError::AdRefused(AdRefusal::InProgress))?;
                return replay(&existing, &intent);
            }
            Err(StorageError::UniqueViolation { key: UniqueKey::AdWriteInFlight, .. }) => return Err(ServiceError::AdRefused(AdRefusal::InProgress)),
            Err(other) => return Err(other.into()),
        }
        tx.commit().await?;
        // The rest runs to its end even if the caller goes away.
        let services = self.clone();
        let (tenant, change) = (tenant.clone(), write.change.clone());
        let task = tokio::spawn(async move { services.perform_ad_write(&tenant, &change, &search_id, &intent, account).await });
        task.await.map_err(|_| ServiceError::Unavailable("an ad write stopped unexpectedly; the recovery job settles it"))?
    }

    /// The reseller's rules, checked before anything is reserved or asked.
    async fn ad_write_refusal(&self, tenant: &Tenant, account: &AdAccountView, intent: &Intent) -> ServiceResult<Option<AdRefusal>> {
        Ok(match intent.kind {
            WriteKind::SpendCap => match recharge_refusal(account.violation, account.blacklist, account.status) {
                Some(refusal) => Some(AdRefusal::Recharge(refusal)),
                None => intent.cap_after_cents.filter(|cap| *cap <= account.amount_spent_cents).map(|_| AdRefusal::CapNotAboveSpent { amount_spent_cents: account.amount_spent_cents }),
            },
            WriteKind::Reset => (!account.status.accepts_reset()).then_some(AdRefusal::ResetStatus(account.status)),
            WriteKind::UnbindBusiness => (self.ad_connection(tenant).await?.unbind_business_paused != 0).then_some(AdRefusal::UnbindingPaused),
            WriteKind::BindBusiness | WriteKind::BindPixel | WriteKind::UnbindPixel => None,
        })
    }

    async fn perform_ad_write(&self, tenant: &Tenant, change: &Change, search_id: &str, intent: &Intent, account: AdAccountView) -> ServiceResult<()> {
        let (upstream, scope) = self.ad_upstream(tenant).await?;
        if !intent.kind.moves_money() {
            let result = match intent.kind {
                WriteKind::BindBusiness => upstream.bind_business(&scope, &intent.account, &intent.target).await,
                WriteKind::UnbindBusiness => upstream.unbind_business(&scope, &intent.account, &intent.target).await,
                WriteKind::BindPixel => upstream.bind_pixel(&scope, &intent.account, &intent.target).await,
                _ => upstream.unbind_pixel(&scope, &intent.account, &intent.target).await,
            };
            return match result {
                Ok(()) => {
                    self.refresh_bindings(tenant, &upstream, &scope, intent).await;
                    self.settle(tenant, change, search_id, intent, Ok(())).await
                }
                Err(error) if error.outcome_unknown() => self.leave_unknown(tenant, search_id, error).await,
                Err(error) => self.settle(tenant, change, search_id, intent, Err(ServiceError::Upstream(error))).await,
            };
        }
        // A reset first accounts for what Meta spent up to now.
        if intent.kind == WriteKind::Reset {
            let fresh = upstream.ad_account(&scope, &intent.account).await;
            match fresh {
                Ok(fresh) => {
                    self.settle_account_money(tenant, &fresh, true).await?;
                }
                Err(error) => return self.settle(tenant, change, search_id, intent, Err(ServiceError::Upstream(error))).await,
            }
        }
        let current = self.ad_account(tenant, &account.id).await?;
        let cap_after = intent.cap_after_cents.expect("a money write names its cap");
        let moved_cents = match intent.kind {
            WriteKind::Reset => reset_cents(current.spend_cap_cents, current.amount_spent_cents),
            _ => cap_change_cents(current.spend_cap_cents, cap_after),
        };
        let hold = match self.movement(tenant, &current, moved_cents).await? {
            Some(movement) => {
                let request = HoldRequest {
                    tenant: tenant.id,
                    idempotency_key: Some(hold_key(search_id)),
                    kind: movement.kind,
                    intent: TransferIntent { debit: movement.debit, credit: movement.credit, amount: movement.amount, currency: Currency::Usd, debit_rule: movement.debit_rule },
                    memo: Some(format!("ad account {}", intent.account)),
                    timeout_at_us: now_us() + i64::try_from(self.ads.config.hold_timeout.as_micros()).unwrap_or(i64::MAX / 2),
                    records: ChangeRecords::default(),
                };
                let receipt = self.ledger.submit_hold(request).await?;
                if let HoldState::Rejected(rejection) = receipt.hold.hold.state {
                    return self.settle(tenant, change, search_id, intent, Err(ServiceError::Rejected(rejection))).await;
                }
                Some(receipt.hold)
            }
            None => None,
        };
        let call = match intent.kind {
            WriteKind::Reset => upstream.reset_spend_cap(&scope, &intent.account).await,
            _ => upstream.set_spend_cap(&scope, &intent.account, cap_after).await,
        };
        match call {
            Ok(()) => {
                self.apply_money(tenant, &intent.account, intent.kind, cap_after, hold.as_ref().map(|h| (h.hold.id, h.hold.intent.debit, h.hold.intent.credit))).await?;
                self.settle(tenant, change, search_id, intent, Ok(())).await
            }
            Err(error) if error.outcome_unknown() => self.leave_unknown(tenant, search_id, error).await,
            Err(error) => {
                if let Some(hold) = &hold {
                    self.void_ad_hold(tenant, hold.hold.id, hold.hold.intent.debit, hold.hold.intent.credit).await?;
                }
                self.settle(tenant, change, search_id, intent, Err(ServiceError::Upstream(error))).await
            }
        }
    }

    /// What a cap change of `moved_cents` moves: `None` when nothing.
    async fn movement(&self, tenant: &Tenant, account: &AdAccountView, moved_cents: i64) -> ServiceResult<Option<Movement>> {
        let Some(amount) = PositiveAmount::new(moved_cents.saturating_abs()).ok() else { return Ok(None) };
        let primary = self.spendable_wallet(tenant, &WalletRef::primary(Holder::Tenant), Currency::Usd).await?;
        let cap_wallet = self.cap_wallet(tenant, &account.id).await?;
        Ok(Some(if moved_cents > 0 {
            // A tenant in the red funds nobody (as SendCloud's 416).
            Movement { kind: TransferKind::AdFunding, debit: primary, credit: cap_wallet, amount, debit_rule: DebitRule::ToFloorFromNonNegative }
        } else {
            Movement { kind: TransferKind::AdReturn, debit: cap_wallet, credit: primary, amount, debit_rule: DebitRule::ToFloor }
        }))
    }

    /// The account's `ad_cap` wallet, made on first use.
    pub(crate) async fn cap_wallet(&self, tenant: &Tenant, account: &str) -> ServiceResult<WalletId> {
        if let Some((id, ..)) = store_ads::cap_wallet(&self.store, tenant.id, account, Currency::Usd.code()).await? {
            return Ok(id);
        }
        let mut tx = self.store.begin_write().await?;
        let id = store_ads::ensure_cap_wallet(&mut tx, tenant.id, account, Currency::Usd.code(), now_us()).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The tenant's `ad_payable` wallet (USD), made on first use.
    pub(crate) async fn ad_payable_wallet(&self, tenant: &Tenant) -> ServiceResult<WalletId> {
        let key = WalletKey { tenant: tenant.id, username: None, purpose: WalletPurpose::AdPayable, currency: Currency::Usd };
        if let Some(id) = self.caches.wallet_id(&key) {
            return Ok(id);
        }
        let mut tx = self.store.begin_write().await?;
        let id = store_wallets::ensure(&mut tx, WalletOwner::Tenant(tenant.id), WalletPurpose::AdPayable, Currency::Usd, None, now_us()).await?;
        tx.commit().await?;
        self.caches.remember_wallet_id(key, id);
        Ok(id)
    }

    /// Posts the hold (if any) of an applied cap change or reset, the
    /// account's new cap (and, for a reset, its zeroed spend) written with it.
    async fn apply_money(&self, tenant: &Tenant, account: &str, kind: WriteKind, cap_after: i64, hold: Option<(TransferId, WalletId, WalletId)>) -> ServiceResult<()> {
        let money = AdMoneyRecord {
            tenant: tenant.id,
            account_id: account.to_owned(),
            expected: None,
            spend_cap_cents: cap_after,
            amount_spent_cents: (kind == WriteKind::Reset).then_some(0),
            total_spent_delta_cents: 0,
        };
        let records = ChangeRecords { ad_money: vec![money], ..ChangeRecords::default() };
        match hold {
            Some((id, debit, credit)) => {
                let step = HoldStep { tenant: tenant.id, hold: id, debit, credit, action: HoldAction::Post { amount: None, memo: None, idempotency_key: Some(format!("ads:post:{id}")) }, records };
                self.ledger.submit_hold_step(step).await?;
            }
            None => {
                let tx = self.store.begin_write().await?;
                tx.commit_with(&records).await?;
            }
        }
        Ok(())
    }

    async fn void_ad_hold(&self, tenant: &Tenant, id: TransferId, debit: WalletId, credit: WalletId) -> ServiceResult<()> {
        let step = HoldStep { tenant: tenant.id, hold: id, debit, credit, action: HoldAction::Void, records: ChangeRecords::default() };
        self.ledger.submit_hold_step(step).await.map(|_| ())
    }

    /// Re-reads the account's bindings of the kind just changed (best effort:
    /// the next sync reads them anyway).
    async fn refresh_bindings(&self, tenant: &Tenant, upstream: &Upstream, scope: &Scope, intent: &Intent) {
        let refreshed = match intent.kind {
            WriteKind::BindBusiness | WriteKind::UnbindBusiness => match upstream.businesses(scope, &intent.account).await {
                Ok(businesses) => self.remember_businesses(tenant, &intent.account, &businesses).await,
                Err(error) => Err(ServiceError::Upstream(error)),
            },
            _ => match upstream.pixels(scope, &intent.account).await {
                Ok(pixels) => self.remember_pixels(tenant, &intent.account, &pixels).await,
                Err(error) => Err(ServiceError::Upstream(error)),
            },
        };
        if let Err(error) = refreshed {
            tracing::warn!(tenant = tenant.id.0, account = intent.account, %error, "re-reading an ad account's bindings failed; the next sync reads them");
        }
    }

    /// Marks the write settled with its outcome, and logs it, in one transaction.
    async fn settle(&self, tenant: &Tenant, change: &Change, search_id: &str, intent: &Intent, result: ServiceResult<()>) -> ServiceResult<()> {
        let Some((outcome, message)) = encode(&result) else { return result };
        let mut tx = self.store.begin_write().await?;
        store_ads::settle_write(&mut tx, tenant.id, search_id, "done", Some(&outcome), message.as_deref(), now_us()).await?;
        match &result {
            Ok(()) => change.commit(tx, tenant.id, intent.operation()).await?,
            Err(error) => change.commit_refused(tx, tenant.id, intent.operation(), &error.to_string()).await?,
        }
        result
    }

    /// Records a write refused by the rules, so that its `search_id` replays the refusal.
    async fn record_settled(&self, tenant: &Tenant, change: &Change, search_id: &str, intent: &Intent, result: &ServiceResult<()>) -> ServiceResult<()> {
        let Some((outcome, message)) = encode(result) else { return Ok(()) };
        let now = now_us();
        let record = AdWriteRecord {
            tenant_id: tenant.id.0,
            search_id: search_id.to_owned(),
            operation: intent.kind.code().to_owned(),
            fingerprint: intent.fingerprint(),
            account_id: intent.account.clone(),
            state: "done".to_owned(),
            cap_before_cents: None,
            cap_after_cents: intent.cap_after_cents,
            hold_id: None,
            outcome: Some(outcome),
            message,
            created_at_us: now,
            updated_at_us: now,
        };
        let mut tx = self.store.begin_write().await?;
        match store_ads::insert_write(&mut tx, &record).await {
            // A racing copy recorded it first: its outcome stands.
            Err(StorageError::UniqueViolation { .. }) => Ok(()),
            Err(other) => Err(other.into()),
            Ok(()) => Ok(change.commit_refused(tx, tenant.id, intent.operation(), &result.as_ref().err().map(ToString::to_string).unwrap_or_default()).await?),
        }
    }

    /// The platform's answer was lost: the write stays unsettled for the recovery job.
    async fn leave_unknown(&self, tenant: &Tenant, search_id: &str, error: PlatformError) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        store_ads::settle_write(&mut tx, tenant.id, search_id, "unknown", None, None, now_us()).await?;
        tx.commit().await?;
        Err(ServiceError::Upstream(error))
    }

    /// Settles writes whose outcome was lost or whose process died, by reading
    /// the account back from the platform; answers how many it settled.
    pub async fn recover_ad_writes(&self) -> ServiceResult<usize> {
        let before = now_us() - i64::try_from(self.ads.config.recovery_after.as_micros()).unwrap_or(i64::MAX / 2);
        let unsettled = store_ads::unsettled_writes(&self.store, before, RECOVERY_BATCH_MAX).await?;
        let mut settled = 0;
        for write in unsettled {
            match self.recover_ad_write(&write).await {
                Ok(true) => settled += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(tenant = write.tenant_id, search_id = write.search_id, %error, "an ad write could not be settled yet; retried later"),
            }
        }
        Ok(settled)
    }

    async fn recover_ad_write(&self, write: &AdWriteRecord) -> ServiceResult<bool> {
        let tenant = self.tenant(TenantId(write.tenant_id)).await?;
        let kind = WriteKind::parse(&write.operation).ok_or_else(|| ServiceError::Storage(StorageError::Corrupt(format!("ad write operation {:?}", write.operation))))?;
        let intent = Intent { kind, account: write.account_id.clone(), cap_after_cents: write.cap_after_cents, target: target_of(write) };
        let change = Change::by(Actor::System);
        let (upstream, scope) = self.ad_upstream(&tenant).await?;
        let applied = match kind {
            WriteKind::SpendCap | WriteKind::Reset => {
                let fresh = match upstream.ad_account(&scope, &write.account_id).await {
                    Ok(fresh) => fresh,
                    Err(PlatformError::NotFound) => {
                        self.void_write_hold(&tenant, &write.search_id).await?;
                        self.settle(&tenant, &change, &write.search_id, &intent, Err(ServiceError::Upstream(PlatformError::NotFound))).await.ok();
                        return Ok(true);
                    }
                    Err(error) => return Err(ServiceError::Upstream(error)),
                };
                let cap_after = write.cap_after_cents.unwrap_or_default();
                match kind {
                    WriteKind::Reset => fresh.amount_spent_cents == 0 && fresh.spend_cap_cents == cap_after,
                    _ => fresh.spend_cap_cents == cap_after,
                }
            }
            WriteKind::BindBusiness | WriteKind::UnbindBusiness => {
                let businesses = upstream.businesses(&scope, &write.account_id).await.map_err(ServiceError::Upstream)?;
                let bound = businesses.iter().any(|b| b.id == intent.target);
                self.remember_businesses(&tenant, &write.account_id, &businesses).await?;
                bound == (kind == WriteKind::BindBusiness)
            }
            WriteKind::BindPixel | WriteKind::UnbindPixel => {
                let pixels = upstream.pixels(&scope, &write.account_id).await.map_err(ServiceError::Upstream)?;
                let bound = pixels.iter().any(|p| p.id == intent.target);
                self.remember_pixels(&tenant, &write.account_id, &pixels).await?;
                bound == (kind == WriteKind::BindPixel)
            }
        };
        if !kind.moves_money() {
            let result = if applied { Ok(()) } else { Err(ServiceError::AdRefused(AdRefusal::NotApplied)) };
            self.settle(&tenant, &change, &write.search_id, &intent, result).await.ok();
            return Ok(true);
        }
        if !applied {
            self.void_write_hold(&tenant, &write.search_id).await?;
            self.settle(&tenant, &change, &write.search_id, &intent, Err(ServiceError::AdRefused(AdRefusal::NotApplied))).await.ok();
            return Ok(true);
        }
        let cap_after = write.cap_after_cents.unwrap_or_default();
        match store_ads::hold_by_key(&self.store, tenant.id, &hold_key(&write.search_id)).await? {
            None => self.apply_money(&tenant, &write.account_id, kind, cap_after, None).await?,
            Some(id) => {
                let stored = self.hold(&tenant, id).await?;
                let (debit, credit) = (stored.hold.intent.debit, stored.hold.intent.credit);
                match stored.hold.state {
                    HoldState::Pending => self.apply_money(&tenant, &write.account_id, kind, cap_after, Some((id, debit, credit))).await?,
                    HoldState::Posted { .. } => {}
                    HoldState::Rejected(_) => {
                        // Nothing was reserved, so the platform was never asked; what it shows is someone else's doing.
                        self.settle(&tenant, &change, &write.search_id, &intent, Err(ServiceError::AdRefused(AdRefusal::NotApplied))).await.ok();
                        return Ok(true);
                    }
                    HoldState::Voided | HoldState::Expired => {
                        // Applied upstream after its reservation lapsed: move the money now.
                        let money = AdMoneyRecord {
                            tenant: tenant.id,
                            account_id: write.account_id.clone(),
                            expected: None,
                            spend_cap_cents: cap_after,
                            amount_spent_cents: (kind == WriteKind::Reset).then_some(0),
                            total_spent_delta_cents: 0,
                        };
                        let request = TransferRequest {
                            tenant: tenant.id,
                            idempotency_key: Some(format!("{}:late", hold_key(&write.search_id))),
                            kind: stored.hold.kind,
                            intent: TransferIntent { debit_rule: DebitRule::ToFloor, ..stored.hold.intent },
                            memo: Some(format!("ad account {} (settled after its reservation lapsed)", write.account_id)),
                            records: ChangeRecords { ad_money: vec![money], ..ChangeRecords::default() },
                        };
                        self.ledger.submit(request).await?.posted()?;
                    }
                }
            }
        }
        self.settle(&tenant, &change, &write.search_id, &intent, Ok(())).await?;
        Ok(true)
    }

    async fn void_write_hold(&self, tenant: &Tenant, search_id: &str) -> ServiceResult<()> {
        if let Some(id) = store_ads::hold_by_key(&self.store, tenant.id, &hold_key(search_id)).await? {
            let stored = self.hold(tenant, id).await?;
            if stored.hold.state == HoldState::Pending {
                self.void_ad_hold(tenant, id, stored.hold.intent.debit, stored.hold.intent.credit).await?;
            }
        }
        Ok(())
    }
}

/// A replayed `search_id`: the first outcome, or a refusal when it named another request.
fn replay(existing: &AdWriteRecord, intent: &Intent) -> ServiceResult<()> {
    if existing.fingerprint != intent.fingerprint() {
        return Err(ServiceError::AdRefused(AdRefusal::SearchIdReused));
    }
    match (&existing.state[..], &existing.outcome) {
        ("done", Some(outcome)) => decode(outcome, existing.message.clone()),
        _ => Err(ServiceError::AdRefused(AdRefusal::InProgress)),
    }
}

/// The Business Manager or pixel a stored write named (its fingerprint's last part).
fn target_of(write: &AdWriteRecord) -> String {
    write.fingerprint.rsplit(':').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use subledger_domain::ads::{AdStatus, BlacklistLevel, RechargeRefusal};

    #[test]
    fn every_stored_outcome_answers_again_as_it_was() {
        let outcomes: Vec<ServiceResult<()>> = vec![
            Ok(()),
            Err(ServiceError::Rejected(TransferRejection::InsufficientFunds)),
            Err(ServiceError::AdRefused(AdRefusal::NotApplied)),
            Err(ServiceError::AdRefused(AdRefusal::CapNotAboveSpent { amount_spent_cents: 1234 })),
            Err(ServiceError::AdRefused(AdRefusal::UnbindingPaused)),
            Err(ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Violation))),
            Err(ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Blacklisted(BlacklistLevel::SevenDays)))),
            Err(ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Status(AdStatus::DisabledZeroing)))),
            Err(ServiceError::AdRefused(AdRefusal::ResetStatus(AdStatus::Closed))),
            Err(ServiceError::Upstream(PlatformError::Refused { code: 100, subcode: Some(1487), message: "Invalid: a:b".to_owned() })),
            Err(ServiceError::Upstream(PlatformError::Refused { code: 190, subcode: None, message: String::new() })),
            Err(ServiceError::Upstream(PlatformError::NotFound)),
            Err(ServiceError::Upstream(PlatformError::RateLimited { retry_after_s: 30 })),
        ];
        for outcome in outcomes {
            let (stored, message) = encode(&outcome).expect("an outcome of the write");
            assert_eq!(format!("{:?}", decode(&stored, message)), format!("{outcome:?}"), "{stored}");
        }
        assert!(encode(&Err(ServiceError::Upstream(PlatformError::Timeout))).is_none(), "a lost answer is no outcome");
    }

    #[test]
    fn a_binding_write_remembers_its_target() {
        let intent = Intent { kind: WriteKind::BindPixel, account: "123".to_owned(), cap_after_cents: None, target: "987".to_owned() };
        let write = AdWriteRecord {
            tenant_id: 1,
            search_id: "s".to_owned(),
            operation: intent.kind.code().to_owned(),
            fingerprint: intent.fingerprint(),
            account_id: "123".to_owned(),
            state: "unknown".to_owned(),
            cap_before_cents: None,
            cap_after_cents: None,
            hold_id: None,
            outcome: None,
            message: None,
            created_at_us: 0,
            updated_at_us: 0,
        };
        assert_eq!(target_of(&write), "987");
        assert_eq!(WriteKind::parse(&write.operation), Some(WriteKind::BindPixel));
    }
}
