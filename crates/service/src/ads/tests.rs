//! The money of ad accounts through the service layer, on a real SQLite
//! database and the sandbox: cap changes funded from the tenant's USD wallet
//! exactly once, spend moved as Meta reports it, resets returning what was
//! not spent, the rules refusing before anything moves, and the ledger's
//! invariants (funded = spent + remaining cap) after every step. The HTTP
//! dialect and both backends are tested black-box in the suite.

use std::time::Duration;

use prometheus_client::registry::Registry;
use subledger_domain::account::TenantName;
use subledger_domain::ads::{AdStatus, BlacklistLevel, RechargeRefusal, SpendCap};
use subledger_domain::calendar::TenantTimeZone;
use subledger_domain::ledger::TransferRejection;
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_domain::oplog::Actor;
use subledger_storage::{Store, StoreOptions};

use super::*;
use crate::ads::test_db::TempDb;
use crate::funds::{Holder, MoveOptions, WalletRef};
use crate::{ServiceConfig, Services};

/// Services over a fresh database whose sandbox has approved accounts at
/// once and spends fast (about 100 cents a second per account).
async fn setup() -> (TempDb, Services, Tenant) {
    let db = TempDb::new("ads-money");
    let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
    let sandbox = SandboxConfig { review_step_seconds: 1, initial_requests: 8, disabled_per_mille: 0, daily_spend_cents_min: 8_640_000, daily_spend_cents_max: 8_640_000, ..SandboxConfig::default() };
    let config = ServiceConfig { ads: AdsConfig { sandbox, ..AdsConfig::default() }, ..ServiceConfig::default() };
    let (services, _worker) = Services::start(store, config, &mut Registry::default());
    let change = Change::by(Actor::Admin);
    let created = services.create_tenant(TenantName::parse("agency").unwrap(), TenantTimeZone::parse("Asia/Shanghai").unwrap(), &change).await.expect("a tenant");
    let tenant = created.tenant;
    let amount = PositiveAmount::new(100_000).unwrap();
    services.deposit(&tenant, &WalletRef::primary(Holder::Tenant), amount, Currency::Usd, MoveOptions::default(), &change).await.expect("a deposit");
    (db, services, tenant)
}

async fn usd_balance(services: &Services, tenant: &Tenant) -> i64 {
    let id = services.spendable_wallet(tenant, &WalletRef::primary(Holder::Tenant), Currency::Usd).await.unwrap();
    subledger_storage::wallets::get(&services.store, tenant.id, id).await.unwrap().unwrap().balance_minor
}

async fn assert_sound(services: &Services) {
    let report = subledger_storage::ledger::audit(&services.store).await.unwrap();
    assert!(report.is_sound(), "{report:#?}");
}

fn write(search_id: &str) -> AdWrite {
    AdWrite { search_id: Some(search_id.to_owned()), change: Change::by(Actor::Tenant) }
}

/// An account of the tenant that is active at Meta.
async fn active_account(services: &Services, tenant: &Tenant) -> AdAccountView {
    for _ in 0..20 {
        services.sync_ads_now(tenant).await.expect("a sync");
        let (accounts, _) = services.ad_accounts(tenant, &AdAccountFilter::default(), 1, 100).await.unwrap();
        if let Some(account) = accounts.into_iter().find(|a| a.meta_status == 1) {
            return account;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the sandbox approved no account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_caps_move_money_once_and_the_ledger_follows_meta() {
    let (_db, services, tenant) = setup().await;
    let account = active_account(&services, &tenant).await;
    assert_sound(&services).await;
    let before = usd_balance(&services, &tenant).await;
    let funded_before = account.spend_cap_cents;

    services.change_ad_spend_cap(&tenant, &write("s1"), &account.id, SpendCap::parse("50000").unwrap()).await.expect("a raise");
    assert_eq!(usd_balance(&services, &tenant).await, before - (50_000 - funded_before), "the raise is funded by the difference of caps");
    // A replay moves nothing and answers the first outcome; another request under the key is refused.
    services.change_ad_spend_cap(&tenant, &write("s1"), &account.id, SpendCap::parse("50000").unwrap()).await.expect("a replay");
    assert_eq!(usd_balance(&services, &tenant).await, before - (50_000 - funded_before));
    let reused = services.change_ad_spend_cap(&tenant, &write("s1"), &account.id, SpendCap::parse("60000").unwrap()).await;
    assert!(matches!(reused, Err(ServiceError::AdRefused(AdRefusal::SearchIdReused))), "{reused:?}");
    assert_sound(&services).await;

    // Meta spends; a sync moves it to the payable wallet.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = services.sync_ads_now(&tenant).await.unwrap();
    assert!(report.spend_moved_cents > 0, "{report:?}");
    let synced = services.ad_account(&tenant, &account.id).await.unwrap();
    assert!(synced.amount_spent_cents > 0 && synced.total_spent_cents == synced.amount_spent_cents, "{synced:?}");
    assert_sound(&services).await;

    // Lowering returns the difference; a cap not above the spend is refused before anything moves.
    let balance = usd_balance(&services, &tenant).await;
    services.change_ad_spend_cap(&tenant, &write("s2"), &account.id, SpendCap::parse("40000").unwrap()).await.expect("a lowering");
    assert_eq!(usd_balance(&services, &tenant).await, balance + 10_000);
    let too_low = SpendCap::parse(&synced.amount_spent_cents.to_string()).unwrap();
    let refused = services.change_ad_spend_cap(&tenant, &write("s3"), &account.id, too_low).await;
    assert!(matches!(refused, Err(ServiceError::AdRefused(AdRefusal::CapNotAboveSpent { .. }))), "{refused:?}");
    assert_eq!(usd_balance(&services, &tenant).await, balance + 10_000);

    // More than the tenant holds: refused by the ledger, nothing asked upstream, the cap unchanged.
    let unfunded = services.change_ad_spend_cap(&tenant, &write("s4"), &account.id, SpendCap::parse("99999999").unwrap()).await;
    assert!(matches!(unfunded, Err(ServiceError::Rejected(TransferRejection::InsufficientFunds))), "{unfunded:?}");
    assert_eq!(services.ad_account(&tenant, &account.id).await.unwrap().spend_cap_cents, 40_000);
    // Its replay answers the same refusal.
    let replayed = services.change_ad_spend_cap(&tenant, &write("s4"), &account.id, SpendCap::parse("99999999").unwrap()).await;
    assert!(matches!(replayed, Err(ServiceError::Rejected(TransferRejection::InsufficientFunds))), "{replayed:?}");
    assert_sound(&services).await;

    // A reset returns what Meta did not spend, bar the cent Meta leaves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    services.reset_ad_spend_cap(&tenant, &write("s5"), &account.id).await.expect("a reset");
    let reset = services.ad_account(&tenant, &account.id).await.unwrap();
    assert_eq!((reset.spend_cap_cents, reset.amount_spent_cents), (1, 0));
    assert!(reset.total_spent_cents > 0);
    // The other accounts' caps stay at a cent, so only this account's changes touch the tenant's wallet.
    assert_eq!(before - usd_balance(&services, &tenant).await, reset.total_spent_cents + 1 - funded_before, "the tenant paid exactly what Meta spent and the cent left");
    assert_sound(&services).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_refuse_before_anything_moves() {
    let (_db, services, tenant) = setup().await;
    let account = active_account(&services, &tenant).await;
    let before = usd_balance(&services, &tenant).await;
    let operator = Change::by(Actor::Tenant);

    services.set_ad_violation(&tenant, &account.id, true, "fraud", &operator).await.unwrap();
    assert_eq!(services.ad_recharge_status(&tenant, &account.id).await.unwrap(), Some(RechargeRefusal::Violation));
    let refused = services.change_ad_spend_cap(&tenant, &write("v1"), &account.id, SpendCap::parse("1000").unwrap()).await;
    assert!(matches!(refused, Err(ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Violation)))), "{refused:?}");
    services.set_ad_violation(&tenant, &account.id, false, "", &operator).await.unwrap();

    let company = services.ad_account(&tenant, &account.id).await.unwrap().company_name;
    assert!(!company.is_empty(), "sandbox accounts name their opening company");
    services.set_ad_blacklist(&tenant, &BlacklistInput { company_name: company.clone(), level: BlacklistLevel::SevenDays, reason: "chargebacks".to_owned() }, &operator).await.unwrap();
    assert_eq!(services.ad_account(&tenant, &account.id).await.unwrap().blacklist, BlacklistLevel::SevenDays);
    let refused = services.change_ad_spend_cap(&tenant, &write("b1"), &account.id, SpendCap::parse("1000").unwrap()).await;
    assert!(matches!(refused, Err(ServiceError::AdRefused(AdRefusal::Recharge(RechargeRefusal::Blacklisted(BlacklistLevel::SevenDays))))), "{refused:?}");
    services.set_ad_blacklist(&tenant, &BlacklistInput { company_name: company, level: BlacklistLevel::None, reason: String::new() }, &operator).await.unwrap();
    assert_eq!(services.ad_recharge_status(&tenant, &account.id).await.unwrap(), None);

    services.set_ad_unbind_paused(&tenant, true, &operator).await.unwrap();
    let paused = services.unbind_ad_business(&tenant, &write("u1"), &account.id, "123456").await;
    assert!(matches!(paused, Err(ServiceError::AdRefused(AdRefusal::UnbindingPaused))), "{paused:?}");
    assert_eq!(usd_balance(&services, &tenant).await, before, "no refusal moved money");

    // Another tenant's account is unknown, exactly like a missing one.
    let other = services.create_tenant(TenantName::parse("other").unwrap(), TenantTimeZone::parse("Asia/Shanghai").unwrap(), &operator).await.unwrap().tenant;
    assert!(matches!(services.ad_account(&other, &account.id).await, Err(ServiceError::NotFound(Resource::AdAccount))));
    let foreign = services.change_ad_spend_cap(&other, &write("x1"), &account.id, SpendCap::parse("1000").unwrap()).await;
    assert!(matches!(foreign, Err(ServiceError::NotFound(Resource::AdAccount))), "{foreign:?}");
    assert_eq!(AdStatus::of(1, 1, 0), AdStatus::Empty);
    assert_sound(&services).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_go_through_and_replay() {
    let (_db, services, tenant) = setup().await;
    let account = active_account(&services, &tenant).await;
    services.bind_ad_business(&tenant, &write("bm1"), &account.id, "778899").await.expect("a binding");
    assert!(services.ad_businesses(&tenant, &account.id).await.unwrap().iter().any(|b| b.id == "778899"));
    services.bind_ad_business(&tenant, &write("bm1"), &account.id, "778899").await.expect("a replay");
    services.unbind_ad_business(&tenant, &write("bm2"), &account.id, "778899").await.expect("an unbinding");
    assert!(!services.ad_businesses(&tenant, &account.id).await.unwrap().iter().any(|b| b.id == "778899"));
    let pixels = services.ad_pixels(&tenant, &account.id).await.unwrap();
    let unknown_pixel = services.bind_ad_pixel(&tenant, &write("px0"), &account.id, "1").await;
    assert!(matches!(unknown_pixel, Err(ServiceError::Upstream(subledger_ads::PlatformError::Refused { .. }))), "{unknown_pixel:?}");
    let _ = pixels;
}
