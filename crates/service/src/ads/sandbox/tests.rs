//! The sandbox through its `AdPlatform` face, on a real SQLite database:
//! epochs, spend under caps as stored and read back, insights from the
//! stored days, bindings, tenant isolation, and two processes writing at
//! once. (The SQL itself runs on both backends in storage's tests.)

use subledger_ads::sandbox_model::{DAY_US, date_of_day};
use subledger_ads::{AdPlatform, InsightsWindow, PlatformError, RESET_SPEND_CAP_CENTS, Scope, account_status};
use subledger_storage::tenants::{self, NewTenant};
use subledger_storage::{Store, StoreOptions};

use super::*;
use crate::ads::test_db::TempDb;

const T0_US: i64 = 1_714_521_600_000_000; // 2024-05-01T00:00:00Z
const HOUR_US: i64 = 3_600_000_000;
const AGENCY_BM: &str = "100200300";

/// A database with two tenants, and the sandbox on it.
async fn setup(config: SandboxConfig) -> (TempDb, Store, Sandbox, Scope, Scope) {
    let db = TempDb::new("ad-sandbox");
    let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
    let mut tx = store.begin_write().await.unwrap();
    let mut scopes = Vec::new();
    for name in ["first", "second"] {
        let tenant = NewTenant { public_id: name, name, timezone: "Asia/Shanghai", app_id: name, app_key: "key", api_token_sha256: name, account_limit: 10, default_daily_quota: 100, now_us: T0_US };
        let id = tenants::insert(&mut tx, &tenant).await.unwrap();
        scopes.push(Scope { tenant_id: id.0, business_id: AGENCY_BM.to_owned(), access_token: String::new() });
    }
    tx.commit().await.unwrap();
    let sandbox = Sandbox::new(store.clone(), config);
    let second = scopes.pop().unwrap();
    (db, store, sandbox, scopes.pop().unwrap(), second)
}

fn never_disabled() -> SandboxConfig {
    SandboxConfig { disabled_per_mille: 0, ..SandboxConfig::default() }
}

fn spend_cents(row: &InsightsRow) -> i64 {
    let (dollars, cents) = row.values["spend"].as_str().unwrap().split_once('.').unwrap();
    dollars.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

fn days(since: i64, until: i64) -> InsightsWindow {
    InsightsWindow { since: date_of_day(since).unwrap(), until: date_of_day(until).unwrap(), breakdown: None, total_postbacks: false }
}

fn today(account: &AccountProfile, now_us: i64) -> i64 {
    account.zone().local_day(now_us)
}

#[tokio::test]
async fn a_tenant_s_world_starts_at_its_first_use() {
    let (db, _store, sandbox, first, _) = setup(SandboxConfig::default()).await;
    let at_start = sandbox.at(T0_US).creation_requests(&first).await.unwrap();
    assert_eq!(at_start.len(), 4);
    assert_eq!(sandbox.at(T0_US + 6 * HOUR_US).creation_requests(&first).await.unwrap().len(), 5);
    // Another process, later: the same world, from the same epoch.
    let other = Sandbox::new(Store::open(&db.url, &StoreOptions::default()).await.unwrap(), SandboxConfig::default());
    let later = other.at(T0_US + 10 * DAY_US).creation_requests(&first).await.unwrap();
    assert_eq!(later.len(), 4 + 40);
    for (early, late) in at_start.iter().zip(&later) {
        assert_eq!((&early.id, &early.oe_request_id, &early.legal_entity_name), (&late.id, &late.oe_request_id, &late.legal_entity_name));
    }
    assert_eq!(sandbox.at(T0_US + 10 * DAY_US).creation_requests(&first).await.unwrap(), later);
    // Approved requests' accounts are the agency's accounts.
    let issued: Vec<String> = later.iter().flat_map(|r| r.ad_accounts.iter().map(|(id, _)| id.clone())).collect();
    let accounts = other.at(T0_US + 10 * DAY_US).ad_accounts(&first).await.unwrap();
    assert_eq!(accounts.iter().map(|a| a.account_id.clone()).collect::<Vec<_>>(), issued);
    assert!(accounts.iter().all(|a| a.spend_cap_cents == RESET_SPEND_CAP_CENTS && a.amount_spent_cents <= 1 && a.currency == "USD"));
}

#[tokio::test]
async fn spend_grows_under_the_cap_from_the_instant_it_is_set() {
    let (_db, _store, sandbox, scope, _) = setup(never_disabled()).await;
    let world_config = never_disabled().world();
    let epoch = sandbox.at(T0_US).epoch(scope.tenant_id, T0_US).await.unwrap();
    let account = World::new(&world_config, scope.tenant_id, epoch).unwrap().accounts(T0_US).remove(0);
    let id = account.account_id.as_str();
    let set_at = T0_US + HOUR_US;
    sandbox.at(set_at).set_spend_cap(&scope, id, 100_000).await.unwrap();
    let read = |at: i64| {
        let sandbox = sandbox.at(at);
        let scope = scope.clone();
        async move { sandbox.ad_account(&scope, id).await.unwrap() }
    };
    assert_eq!((read(set_at).await.spend_cap_cents, read(set_at).await.amount_spent_cents), (100_000, 1));
    let mut last = 0;
    for hour in 1..=200 {
        let spent = read(set_at + hour * HOUR_US).await.amount_spent_cents;
        assert!(spent >= last && spent <= 100_000, "{spent}");
        last = spent;
    }
    assert_eq!(last, 100_000, "a $1,000 cap is spent within 200 hours at $50–$500 a day");
    // Raised, it spends again from then on.
    let raised_at = set_at + 300 * HOUR_US;
    sandbox.at(raised_at).set_spend_cap(&scope, id, 200_000).await.unwrap();
    assert_eq!(read(raised_at).await.amount_spent_cents, 100_000);
    let day_later = read(raised_at + DAY_US).await.amount_spent_cents;
    assert!(day_later > 100_000 && day_later < 200_000, "{day_later}");
    // Not below what was spent; Meta's refusal, nothing changed.
    let Err(PlatformError::Refused { code: 100, .. }) = sandbox.at(raised_at + DAY_US).set_spend_cap(&scope, id, day_later - 1).await else { panic!("refused") };
    assert_eq!(read(raised_at + DAY_US).await.spend_cap_cents, 200_000);
    // The days' spend adds up to what was spent.
    let now = raised_at + DAY_US;
    let all = days(today(&account, account.created_us()), today(&account, now));
    let rows = sandbox.at(now).daily_insights(&scope, id, &all).await.unwrap();
    assert_eq!(rows.iter().map(spend_cents).sum::<i64>(), day_later);
    // A reset: nothing spent, a cent of cap; the insights keep the past.
    sandbox.at(now).reset_spend_cap(&scope, id).await.unwrap();
    let reset = read(now).await;
    assert_eq!((reset.spend_cap_cents, reset.amount_spent_cents), (RESET_SPEND_CAP_CENTS, 0));
    let after = now + 3 * DAY_US;
    assert_eq!(read(after).await.amount_spent_cents, 1);
    let rows = sandbox.at(after).daily_insights(&scope, id, &days(model::day_number(all.since), today(&account, after))).await.unwrap();
    assert_eq!(rows.iter().map(spend_cents).sum::<i64>(), day_later + 1);
}

/// Writes at many instants, several a day, stored as the last segment of
/// each day: the insights read back equal those of the whole history.
#[tokio::test]
async fn insights_from_the_stored_days_equal_those_of_every_write() {
    let (_db, store, sandbox, scope, _) = setup(never_disabled()).await;
    let world_config = never_disabled().world();
    let epoch = sandbox.at(T0_US).epoch(scope.tenant_id, T0_US).await.unwrap();
    let world = World::new(&world_config, scope.tenant_id, epoch).unwrap();
    let account = world.accounts(T0_US).remove(1);
    let id = account.account_id.as_str();
    let mut at = account.created_us();
    let mut history = vec![account.first_segment()];
    let mut state = 12_345u64;
    for write in 0..40 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        at += ((state >> 16) % (18 * HOUR_US as u64)) as i64;
        let current = *history.last().unwrap();
        if write % 7 == 6 {
            sandbox.at(at).reset_spend_cap(&scope, id).await.unwrap();
            history.push(account.reset_spend_cap(&current, at));
        } else {
            let spent = account.spent_at(&current, at).amount_spent_cents;
            let cap = spent + (state >> 40) as i64 % 30_000 + 1;
            sandbox.at(at).set_spend_cap(&scope, id, cap).await.unwrap();
            if let Some(next) = account.set_spend_cap(&current, cap, at).unwrap() {
                history.push(next);
            }
        }
    }
    let stored = ad_sandbox::spend(&store, TenantId(scope.tenant_id), id).await.unwrap().map(segment);
    assert_eq!(stored.as_ref(), history.last());
    let now = at + 2 * DAY_US;
    let window = days(today(&account, account.created_us()) - 2, today(&account, now));
    let expected = account.daily_insights(&history, &window, now).unwrap();
    assert!(expected.len() > 10);
    assert_eq!(sandbox.at(now).daily_insights(&scope, id, &window).await.unwrap(), expected);
    for breakdown in ["country", "age,gender"] {
        let window = InsightsWindow { breakdown: Some(breakdown), ..window.clone() };
        assert_eq!(sandbox.at(now).daily_insights(&scope, id, &window).await.unwrap(), account.daily_insights(&history, &window, now).unwrap());
    }
    let middle = days(today(&account, account.created_us()) + 3, today(&account, account.created_us()) + 5);
    assert_eq!(sandbox.at(now).daily_insights(&scope, id, &middle).await.unwrap(), account.daily_insights(&history, &middle, now).unwrap());
    assert_eq!(sandbox.at(now).ad_account(&scope, id).await.unwrap(), account.ad_account(history.last().unwrap(), AGENCY_BM, now));
}

#[tokio::test]
async fn other_tenants_accounts_and_unknown_ids_are_not_found() {
    let (_db, _store, sandbox, first, second) = setup(SandboxConfig::default()).await;
    let now = T0_US + DAY_US;
    let sandbox = sandbox.at(now);
    let theirs = sandbox.ad_accounts(&second).await.unwrap().remove(0).account_id;
    let window = days(19_000, 19_001);
    for id in [theirs.as_str(), "1000000000000000", "act_1", ""] {
        assert_eq!(sandbox.ad_account(&first, id).await, Err(PlatformError::NotFound), "{id}");
        assert_eq!(sandbox.set_spend_cap(&first, id, 500).await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.reset_spend_cap(&first, id).await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.businesses(&first, id).await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.bind_business(&first, id, "5").await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.pixels(&first, id).await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.unbind_pixel(&first, id, "5").await, Err(PlatformError::NotFound));
        assert_eq!(sandbox.daily_insights(&first, id, &window).await, Err(PlatformError::NotFound));
    }
    assert!(sandbox.ad_account(&second, &theirs).await.is_ok());
    // A tenant id the ids have no room for.
    let huge = Scope { tenant_id: 1 << 40, ..first.clone() };
    assert!(matches!(sandbox.ad_accounts(&huge).await, Err(PlatformError::Unavailable(_))));
}

#[tokio::test]
async fn bindings_behave_as_meta_s() {
    let (_db, _store, sandbox, scope, other) = setup(SandboxConfig::default()).await;
    let sandbox = sandbox.at(T0_US + DAY_US);
    let id = sandbox.ad_accounts(&scope).await.unwrap().remove(0).account_id;
    let ids = |businesses: Vec<Business>| businesses.into_iter().map(|b| (b.id, b.permitted_tasks.len())).collect::<Vec<_>>();
    // The agency's own Business Manager manages it from the start.
    assert_eq!(ids(sandbox.businesses(&scope, &id).await.unwrap()), [(AGENCY_BM.to_owned(), 3)]);
    let invalid = |result: PlatformResult<()>| matches!(result, Err(PlatformError::Refused { code: 100, .. }));
    assert!(invalid(sandbox.bind_business(&scope, &id, "12ab").await));
    assert!(invalid(sandbox.bind_business(&scope, &id, "").await));
    sandbox.bind_business(&scope, &id, "555").await.unwrap();
    sandbox.bind_business(&scope, &id, "555").await.unwrap();
    let bound = sandbox.businesses(&scope, &id).await.unwrap();
    assert_eq!(bound[1], Business { id: "555".into(), name: "Business 555".into(), permitted_tasks: vec!["ADVERTISE".into(), "ANALYZE".into()] });
    assert_eq!(bound.len(), 2);
    sandbox.unbind_business(&scope, &id, "555").await.unwrap();
    assert!(invalid(sandbox.unbind_business(&scope, &id, "555").await));
    assert!(invalid(sandbox.unbind_business(&scope, &id, "556").await));
    sandbox.unbind_business(&scope, &id, AGENCY_BM).await.unwrap();
    assert!(invalid(sandbox.unbind_business(&scope, &id, AGENCY_BM).await));
    assert_eq!(sandbox.businesses(&scope, &id).await.unwrap(), []);
    sandbox.bind_business(&scope, &id, AGENCY_BM).await.unwrap();
    assert_eq!(ids(sandbox.businesses(&scope, &id).await.unwrap()), [(AGENCY_BM.to_owned(), 3)]);
    // Pixels: the tenant's own only, listed with their names.
    assert_eq!(sandbox.pixels(&scope, &id).await.unwrap(), []);
    let epoch = sandbox.epoch(scope.tenant_id, 0).await.unwrap();
    let world_config = SandboxConfig::default().world();
    let pixels = World::new(&world_config, scope.tenant_id, epoch).unwrap().pixels();
    let other_epoch = sandbox.epoch(other.tenant_id, 0).await.unwrap();
    let foreign = World::new(&world_config, other.tenant_id, other_epoch).unwrap().pixels().remove(0);
    assert!(invalid(sandbox.bind_pixel(&scope, &id, &foreign.id).await));
    assert!(invalid(sandbox.bind_pixel(&scope, &id, "123").await));
    sandbox.bind_pixel(&scope, &id, &pixels[2].id).await.unwrap();
    sandbox.bind_pixel(&scope, &id, &pixels[2].id).await.unwrap();
    sandbox.bind_pixel(&scope, &id, &pixels[0].id).await.unwrap();
    let mut expected = vec![pixels[0].clone(), pixels[2].clone()];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(sandbox.pixels(&scope, &id).await.unwrap(), expected);
    sandbox.unbind_pixel(&scope, &id, &pixels[2].id).await.unwrap();
    assert!(invalid(sandbox.unbind_pixel(&scope, &id, &pixels[2].id).await));
    assert!(invalid(sandbox.unbind_pixel(&scope, &id, &pixels[1].id).await));
    assert_eq!(sandbox.pixels(&scope, &id).await.unwrap(), [pixels[0].clone()]);
    // Another account has none of this.
    let another = sandbox.ad_accounts(&scope).await.unwrap().remove(1).account_id;
    assert_eq!(sandbox.pixels(&scope, &another).await.unwrap(), []);
    assert_eq!(sandbox.businesses(&scope, &another).await.unwrap().len(), 1);
}

#[tokio::test]
async fn disabled_accounts_refuse_caps_and_stop_spending() {
    let config = SandboxConfig { disabled_per_mille: 1_000, ..SandboxConfig::default() };
    let (_db, _store, sandbox, scope, _) = setup(config.clone()).await;
    let world_config = config.world();
    let epoch = sandbox.at(T0_US).epoch(scope.tenant_id, T0_US).await.unwrap();
    let account = World::new(&world_config, scope.tenant_id, epoch).unwrap().accounts(T0_US).remove(0);
    let (disabled_at, reason) = account.disabled.unwrap();
    let id = account.account_id.as_str();
    sandbox.at(T0_US).set_spend_cap(&scope, id, 100_000_000).await.unwrap();
    let at_disable = sandbox.at(disabled_at).ad_account(&scope, id).await.unwrap();
    assert_eq!((at_disable.account_status, at_disable.disable_reason), (account_status::DISABLED, reason));
    let later = sandbox.at(disabled_at + 10 * DAY_US).ad_account(&scope, id).await.unwrap();
    assert_eq!(later.amount_spent_cents, at_disable.amount_spent_cents);
    assert!(matches!(sandbox.at(disabled_at).set_spend_cap(&scope, id, 200_000_000).await, Err(PlatformError::Refused { code: 100, .. })));
    sandbox.at(disabled_at + DAY_US).reset_spend_cap(&scope, id).await.unwrap();
    let reset = sandbox.at(disabled_at + 2 * DAY_US).ad_account(&scope, id).await.unwrap();
    assert_eq!((reset.spend_cap_cents, reset.amount_spent_cents, reset.account_status), (RESET_SPEND_CAP_CENTS, 0, account_status::DISABLED));
}

/// Two server processes (two stores on one database) change one account's
/// cap at once, many times each: every change lands, one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_sandbox() {
    let (db, store, first, scope, _) = setup(never_disabled()).await;
    let second = Sandbox::new(Store::open(&db.url, &StoreOptions::default()).await.unwrap(), never_disabled());
    let now = T0_US + DAY_US;
    let id = first.at(now).ad_accounts(&scope).await.unwrap().remove(0).account_id;
    let mut tasks = Vec::new();
    for (process, sandbox) in [first.at(now), second.at(now)].into_iter().enumerate() {
        for change in 0..10 {
            let (sandbox, scope, id) = (sandbox.clone(), scope.clone(), id.clone());
            tasks.push(tokio::spawn(async move { sandbox.set_spend_cap(&scope, &id, 10_000 + (process as i64) * 100 + change).await }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    let stored = ad_sandbox::spend(&store, TenantId(scope.tenant_id), &id).await.unwrap().unwrap();
    assert_eq!(stored.seq, 20);
    let read = second.at(now).ad_account(&scope, &id).await.unwrap();
    assert_eq!(read.spend_cap_cents, stored.cap_cents);
}

/// The figures of `docs/ads-sandbox.md`: 64 callers each changing its own
/// account's cap 40 times, reads of one and of every account, 37 months of
/// daily insights. Run with `cargo test --release -p subledger-service
/// --lib throughput -- --ignored --nocapture`.
#[ignore = "a measurement: run it in release, see its doc"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput() {
    let (_db, _store, sandbox, scope, old) = setup(never_disabled()).await;
    let now = T0_US + 1_200 * DAY_US;
    // The first tenant started 40 days ago, the second 1,200 days ago.
    sandbox.at(now - 40 * DAY_US).creation_requests(&scope).await.unwrap();
    sandbox.at(now - 1_200 * DAY_US).creation_requests(&old).await.unwrap();
    let accounts: Vec<String> = sandbox.at(now).ad_accounts(&scope).await.unwrap().into_iter().map(|a| a.account_id).take(64).collect();
    assert_eq!(accounts.len(), 64);
    let started = std::time::Instant::now();
    let mut callers = Vec::new();
    for (caller, id) in accounts.iter().enumerate() {
        let (sandbox, scope, id) = (sandbox.clone(), scope.clone(), id.clone());
        callers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for change in 0..40i64 {
                let started = std::time::Instant::now();
                sandbox.at(now + change * 1_000_000 + caller as i64).set_spend_cap(&scope, &id, 10_000_000 + change).await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!("set_spend_cap: {rate:.0}/s, p50 {:?}, p99 {:?}", latencies[latencies.len() / 2], latencies[latencies.len() * 99 / 100]);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        sandbox.at(now).ad_account(&scope, &accounts[0]).await.unwrap();
    }
    println!("ad_account: {:?} each", started.elapsed() / 200);
    let started = std::time::Instant::now();
    let every = sandbox.at(now).ad_accounts(&scope).await.unwrap().len();
    println!("ad_accounts ({every}): {:?}", started.elapsed());
    let id = sandbox.at(now).ad_accounts(&old).await.unwrap().remove(0).account_id;
    for change in 0..118 {
        sandbox.at(now - 1_190 * DAY_US + change * 10 * DAY_US).set_spend_cap(&old, &id, 100_000_000_000 + change).await.unwrap();
    }
    let today = jiff::Timestamp::from_microsecond(now).unwrap().to_zoned(jiff::tz::TimeZone::UTC).date();
    let since = today.checked_sub(jiff::ToSpan::months(37)).unwrap().tomorrow().unwrap();
    for breakdown in [None, Some("age,gender")] {
        let window = InsightsWindow { since, until: today, breakdown, total_postbacks: false };
        let started = std::time::Instant::now();
        let rows = sandbox.at(now).daily_insights(&old, &id, &window).await.unwrap();
        println!("daily_insights, 37 months, {breakdown:?}: {} rows in {:?}", rows.len(), started.elapsed());
    }
    assert!(rate >= 400.0, "{rate:.0} changes/s");
}
