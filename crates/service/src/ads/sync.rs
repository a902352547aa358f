//! The sync job: what the platform knows of a tenant's requests, ad accounts,
//! bindings and insights, copied into the database, and Meta's reported spend
//! moved through the ledger.
//!
//! Each server runs [`Services::sync_due_tenants`] in the background. A tenant
//! is synced by one process at a time (a lease in `ad_connections`); should
//! two processes still meet on one account (a lease that ran out), its money
//! cannot move twice: each move is written with the cap and spend it was
//! computed from, and refused if another move changed them first
//! (`AdMoneyRecord::expected`).

use std::collections::{HashMap, HashSet};

use jiff::ToSpan;
use serde_json::{Value, json};
use subledger_ads::{AdAccount, AdPlatform, CreationRequest, Scope};
use subledger_domain::ads::{CapAndSpend, Reconciliation, reconcile};
use subledger_domain::ids::TenantId;
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind};
use subledger_domain::money::{Currency, PositiveAmount, format_minor};
use subledger_domain::oplog::{Actor, Operation, OperationKind};
use subledger_storage::ads::{self as store_ads, RequestRecord, SyncedAdAccount};
use subledger_storage::records::AdMoneyRecord;

use super::Upstream;
use crate::error::{ServiceError, ServiceResult};
use crate::funds::{Holder, WalletRef};
use crate::ledger::TransferRequest;
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Most tenants one round of the background job syncs.
pub const SYNC_TENANTS_PER_ROUND_MAX: i64 = 16;

/// What one sync of a tenant did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub requests: usize,
    pub accounts: usize,
    /// Spend moved to `ad_payable` by this sync, in cents.
    pub spend_moved_cents: i64,
    /// Accounts left alone because a write of theirs is unsettled.
    pub accounts_in_flight: usize,
    /// What could not be synced (the rest was), one line each.
    pub errors: Vec<String>,
}

impl Services {
    /// Syncs the tenants due for it (never synced, or last synced longer than
    /// `sync_every` ago) whose lease is free; answers how many it synced.
    pub async fn sync_due_tenants(&self) -> ServiceResult<usize> {
        let now = now_us();
        let stale_before = now - i64::try_from(self.ads.config.sync_every.as_micros()).unwrap_or(i64::MAX / 2);
        let due = store_ads::due_for_sync(&self.store, stale_before, now, SYNC_TENANTS_PER_ROUND_MAX).await?;
        let mut synced = 0;
        for tenant in due {
            match self.sync_ads_leased(tenant).await {
                Ok(Some(_)) => synced += 1,
                Ok(None) => {}
                Err(error) => tracing::warn!(tenant = tenant.0, %error, "an ad sync failed; retried at the next round"),
            }
        }
        Ok(synced)
    }

    /// Syncs one tenant now (`POST /v1/ads/sync`); refused while another
    /// process holds its lease.
    pub async fn sync_ads_now(&self, tenant: &Tenant) -> ServiceResult<SyncReport> {
        self.ad_connection(tenant).await?;
        self.sync_ads_leased(tenant.id).await?.ok_or(ServiceError::Conflict("a sync of this tenant is under way"))
    }

    async fn sync_ads_leased(&self, tenant_id: TenantId) -> ServiceResult<Option<SyncReport>> {
        let now = now_us();
        let lease_until = now + i64::try_from(self.ads.config.sync_lease.as_micros()).unwrap_or(i64::MAX / 2);
        if !store_ads::take_sync_lease(&self.store, tenant_id, &self.ads.process_id, now, lease_until).await? {
            return Ok(None);
        }
        let result = async {
            let tenant = self.tenant(tenant_id).await?;
            self.sync_ads(&tenant).await
        }
        .await;
        let error = match &result {
            Ok(report) if report.errors.is_empty() => None,
            Ok(report) => Some(report.errors.join("; ")),
            Err(error) => Some(error.to_string()),
        };
        store_ads::finish_sync(&self.store, tenant_id, &self.ads.process_id, Some(now), error.as_deref()).await?;
        self.ads.answers.forget_version(tenant_id);
        result.map(Some)
    }

    /// One sync of the tenant: requests, accounts (and their money),
    /// bindings, insights. What fails for one account is reported and the
    /// others go on.
    async fn sync_ads(&self, tenant: &Tenant) -> ServiceResult<SyncReport> {
        let (upstream, scope) = self.ad_upstream(tenant).await?;
        let mut report = SyncReport::default();
        let requests = upstream.creation_requests(&scope).await.map_err(ServiceError::Upstream)?;
        let issued_by = self.store_requests(tenant, &requests).await?;
        report.requests = requests.len();
        let accounts = upstream.ad_accounts(&scope).await.map_err(ServiceError::Upstream)?;
        self.store_accounts(tenant, &accounts, &issued_by).await?;
        report.accounts = accounts.len();
        let in_flight: HashSet<String> = store_ads::accounts_in_flight(&self.store, tenant.id).await?.into_iter().collect();
        let today = tenant.timezone.day_of(jiff::Timestamp::now());
        let since = subledger_domain::calendar::Day(today.0.checked_sub(i64::from(self.ads.config.insights_days.saturating_sub(1)).days()).unwrap_or(today.0));
        for account in &accounts {
            if in_flight.contains(&account.account_id) {
                report.accounts_in_flight += 1;
            } else {
                match self.settle_account_money(tenant, account, false).await {
                    Ok(moved) => report.spend_moved_cents += moved,
                    Err(error) => report.errors.push(format!("account {}: money: {error}", account.account_id)),
                }
            }
            if let Err(error) = self.sync_bindings(tenant, &upstream, &scope, &account.account_id).await {
                report.errors.push(format!("account {}: bindings: {error}", account.account_id));
            }
            if let Err(error) = self.sync_ad_insights(&upstream, &scope, tenant, &account.account_id, since.0, today.0).await {
                report.errors.push(format!("account {}: insights: {error}", account.account_id));
            }
        }
        Ok(report)
    }

    /// Stores the requests; answers which request (and company) issued each account.
    async fn store_requests(&self, tenant: &Tenant, requests: &[CreationRequest]) -> ServiceResult<HashMap<String, (String, String)>> {
        let now = now_us();
        let mut issued_by = HashMap::new();
        let mut records = Vec::with_capacity(requests.len());
        for request in requests {
            let mut fields = request.fields.clone();
            if !fields.contains_key("adaccounts") {
                let data: Vec<Value> = request.ad_accounts.iter().map(|(id, name)| json!({"account_id": id, "name": name})).collect();
                fields.insert("adaccounts".to_owned(), json!({ "data": data }));
            }
            for (account, _) in &request.ad_accounts {
                issued_by.insert(account.clone(), (request.oe_request_id.clone(), request.legal_entity_name.clone()));
            }
            records.push(RequestRecord {
                tenant_id: tenant.id.0,
                id: request.oe_request_id.clone(),
                aac_id: request.id.clone(),
                status: request.status.clone(),
                company_name: request.legal_entity_name.clone(),
                time_created_us: request.time_created_us,
                time_updated_us: request.time_updated_us,
                fields: Value::Object(fields).to_string(),
                synced_at_us: now,
            });
        }
        let mut tx = self.store.begin_write().await?;
        store_ads::upsert_requests(&mut tx, &records).await?;
        tx.commit().await?;
        Ok(issued_by)
    }

    async fn store_accounts(&self, tenant: &Tenant, accounts: &[AdAccount], issued_by: &HashMap<String, (String, String)>) -> ServiceResult<()> {
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        for account in accounts {
            let (request_id, company) = issued_by.get(&account.account_id).map_or((None, ""), |(request, company)| (Some(request.as_str()), company.as_str()));
            let fields = Value::Object(account.fields.clone()).to_string();
            let synced = SyncedAdAccount {
                tenant: tenant.id,
                id: &account.account_id,
                name: &account.name,
                request_id,
                company_name: company,
                meta_status: account.account_status,
                disable_reason: account.disable_reason,
                currency: &account.currency,
                created_time_us: account.created_time_us,
                fields: &fields,
                synced_at_us: now,
            };
            store_ads::upsert_account(&mut tx, &synced).await?;
            store_ads::ensure_cap_wallet(&mut tx, tenant.id, &account.account_id, Currency::Usd.code(), now).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn sync_bindings(&self, tenant: &Tenant, upstream: &Upstream, scope: &Scope, account: &str) -> ServiceResult<()> {
        let businesses = upstream.businesses(scope, account).await.map_err(ServiceError::Upstream)?;
        self.remember_businesses(tenant, account, &businesses).await?;
        let pixels = upstream.pixels(scope, account).await.map_err(ServiceError::Upstream)?;
        self.remember_pixels(tenant, account, &pixels).await
    }

    /// Brings the account's money in line with what Meta reports: a cap
    /// changed outside subledger is funded (or returned), and what Meta spent
    /// since the last look moves from the account's `ad_cap` wallet to the
    /// tenant's `ad_payable`. Answers the spend moved, in cents. Accounts with
    /// an unsettled write are left alone unless `in_write` (the write itself).
    pub(crate) async fn settle_account_money(&self, tenant: &Tenant, fresh: &AdAccount, in_write: bool) -> ServiceResult<i64> {
        let local = self.ad_account(tenant, &fresh.account_id).await?;
        if !in_write && store_ads::accounts_in_flight(&self.store, tenant.id).await?.contains(&fresh.account_id) {
            return Ok(0);
        }
        let cap_wallet = self.cap_wallet(tenant, &fresh.account_id).await?;
        let local_money = CapAndSpend { spend_cap_cents: local.spend_cap_cents, amount_spent_cents: local.amount_spent_cents };
        let meta_money = CapAndSpend { spend_cap_cents: fresh.spend_cap_cents, amount_spent_cents: fresh.amount_spent_cents };
        let Reconciliation { was_reset, funding_cents, spent_cents } = reconcile(local_money, meta_money);
        let spent_base = fresh.amount_spent_cents - spent_cents;
        if funding_cents != 0 || was_reset {
            let money = AdMoneyRecord {
                tenant: tenant.id,
                account_id: fresh.account_id.clone(),
                expected: Some((local.spend_cap_cents, local.amount_spent_cents)),
                spend_cap_cents: fresh.spend_cap_cents,
                amount_spent_cents: was_reset.then_some(0),
                total_spent_delta_cents: 0,
            };
            let operation = Operation::new(OperationKind::AdSpendCap, fresh.account_id.clone()).with_detail(format!("{} USD (changed at the ad platform)", format_minor(fresh.spend_cap_cents)));
            let mut records = Change::by(Actor::System).records(tenant.id, operation);
            records.ad_money.push(money);
            match PositiveAmount::new(funding_cents.saturating_abs()) {
                Ok(amount) => {
                    let primary = self.spendable_wallet(tenant, &WalletRef::primary(Holder::Tenant), Currency::Usd).await?;
                    let (kind, debit, credit) = if funding_cents > 0 { (TransferKind::AdFunding, primary, cap_wallet) } else { (TransferKind::AdReturn, cap_wallet, primary) };
                    let intent = TransferIntent { debit, credit, amount, currency: Currency::Usd, debit_rule: DebitRule::ToFloor };
                    let memo = Some(format!("ad account {}: cap set at the ad platform", fresh.account_id));
                    self.ledger.submit(TransferRequest { tenant: tenant.id, idempotency_key: None, kind, intent, memo, records }).await?.posted()?;
                }
                Err(_) => {
                    let tx = self.store.begin_write().await?;
                    tx.commit_with(&records).await?;
                }
            }
        }
        let Ok(amount) = PositiveAmount::new(spent_cents) else { return Ok(0) };
        let payable = self.ad_payable_wallet(tenant).await?;
        let money = AdMoneyRecord {
            tenant: tenant.id,
            account_id: fresh.account_id.clone(),
            expected: Some((fresh.spend_cap_cents, spent_base)),
            spend_cap_cents: fresh.spend_cap_cents,
            amount_spent_cents: Some(fresh.amount_spent_cents),
            total_spent_delta_cents: spent_cents,
        };
        let operation = Operation::new(OperationKind::AdSpend, fresh.account_id.clone()).with_detail(format!("{} USD", format_minor(spent_cents)));
        let mut records = Change::by(Actor::System).records(tenant.id, operation);
        records.ad_money.push(money);
        let intent = TransferIntent { debit: cap_wallet, credit: payable, amount, currency: Currency::Usd, debit_rule: DebitRule::ToFloor };
        let memo = Some(format!("ad account {}: spent at the ad platform", fresh.account_id));
        self.ledger.submit(TransferRequest { tenant: tenant.id, idempotency_key: None, kind: TransferKind::AdSpend, intent, memo, records }).await?.posted()?;
        Ok(spent_cents)
    }
}
