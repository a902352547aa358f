//! Seats' storage on SQLite and (with `SUBLEDGER_TEST_POSTGRES_URL`)
//! PostgreSQL: time cards and subscriptions written and read back, the
//! constraints that guard them, a usage batch that reads the paying wallets
//! of a tenant-funded account and consumes card minutes only as read, and a
//! close chunk that reads the month's subscriptions.

#[macro_use]
mod support;

use subledger_domain::ids::{AccountId, TenantId, TimeCardId, WalletId};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::Currency;
use subledger_domain::timecards::{Card, CardChange, CardStatus};
use subledger_domain::usage::SpendableWallets;
use subledger_storage::accounts::{self, NewAccount};
use subledger_storage::ledger::usage::{self, UsageKeys, UsageWrites};
use subledger_storage::ledger::{self, LedgerWriter, LedgerWrites, close};
use subledger_storage::subscriptions::{self, SubscriptionRecord};
use subledger_storage::tenants::{self, NewTenant};
use subledger_storage::timecards::{self, NewTimeCard};
use subledger_storage::wallets::{self, WalletOwner};
use subledger_storage::{Check, StorageError, Store, StoreOptions, UniqueKey};
use support::TestDb;

const T0_US: i64 = 1_700_000_000_000_000;

on_both_backends!(time_cards_round_trip_and_are_consumed_only_as_read, subscriptions_round_trip_and_close_reads_them, seats_are_paid_from_their_tenants_wallets);

struct Fixture {
    store: Store,
    backend: &'static str,
    tenant: TenantId,
    seat: AccountId,
    own: AccountId,
    tenant_wallets: SpendableWallets,
    own_wallets: SpendableWallets,
    revenue: WalletId,
}

fn new_account<'a>(tenant: TenantId, username: &'a str, funding: &'static str) -> NewAccount<'a> {
    NewAccount {
        tenant_id: tenant,
        username,
        user_type: 1,
        phone: None,
        email: None,
        company_name: None,
        company_url: None,
        password_hash: None,
        api_user: None,
        api_key_sha256: None,
        daily_quota: 100,
        funding,
        now_us: T0_US,
    }
}

impl Fixture {
    async fn new(db: &TestDb) -> Fixture {
        let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
        let mut tx = store.begin_write().await.unwrap();
        let tenant = NewTenant {
            public_id: "tn_seats",
            name: "seats",
            timezone: "Asia/Shanghai",
            app_id: "app-seats",
            app_key: "key",
            api_token_sha256: "token-seats",
            account_limit: 10,
            default_daily_quota: 100,
            now_us: T0_US,
        };
        let tenant = tenants::insert(&mut tx, &tenant).await.unwrap();
        let seat = accounts::insert(&mut tx, &new_account(tenant, "seat", "tenant")).await.unwrap();
        let own = accounts::insert(&mut tx, &new_account(tenant, "own", "own")).await.unwrap();
        let tenant_wallets = SpendableWallets {
            primary: wallets::ensure(&mut tx, WalletOwner::Tenant(tenant), WalletPurpose::Primary, Currency::Cny, Some(0), T0_US).await.unwrap(),
            promo: wallets::ensure(&mut tx, WalletOwner::Tenant(tenant), WalletPurpose::Promo, Currency::Cny, Some(0), T0_US).await.unwrap(),
        };
        let own_wallets = SpendableWallets {
            primary: wallets::ensure(&mut tx, WalletOwner::Account(tenant, own), WalletPurpose::Primary, Currency::Cny, Some(0), T0_US).await.unwrap(),
            promo: wallets::ensure(&mut tx, WalletOwner::Account(tenant, own), WalletPurpose::Promo, Currency::Cny, Some(0), T0_US).await.unwrap(),
        };
        // The seat has wallets of its own too: they must not be the ones read.
        for purpose in [WalletPurpose::Primary, WalletPurpose::Promo] {
            wallets::ensure(&mut tx, WalletOwner::Account(tenant, seat), purpose, Currency::Cny, Some(0), T0_US).await.unwrap();
        }
        let revenue = wallets::ensure(&mut tx, WalletOwner::Tenant(tenant), WalletPurpose::Revenue, Currency::Cny, None, T0_US).await.unwrap();
        tx.commit().await.unwrap();
        Fixture { backend: store.backend().name(), store, tenant, seat, own, tenant_wallets, own_wallets, revenue }
    }

    fn keys<'a>(&'a self, accounts: &'a [(AccountId, Currency)], card_accounts: &'a [AccountId], after_us: i64) -> UsageKeys<'a> {
        UsageKeys {
            tenant: self.tenant,
            event_ids: &[],
            accounts,
            months: &[],
            quota_days: &[],
            month_names: &[],
            revenue: std::slice::from_ref(&self.revenue),
            ids_needed: 0,
            card_accounts,
            cards_after_us: after_us,
        }
    }
}

fn card(tenant: TenantId, account: Option<AccountId>, name: &str, minutes: i64, from: i64, until: i64) -> NewTimeCard<'_> {
    NewTimeCard { tenant, account, name, minutes, effective_at_us: from, expires_at_us: until, note: "note", now_us: T0_US + 5 }
}

async fn time_cards_round_trip_and_are_consumed_only_as_read(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    let own = timecards::insert(&mut tx, &card(f.tenant, Some(f.seat), "own", 10, T0_US, T0_US + 100)).await.unwrap();
    let shared = timecards::insert(&mut tx, &card(f.tenant, None, "shared", 20, T0_US + 1, T0_US + 200)).await.unwrap();
    let other = timecards::insert(&mut tx, &card(f.tenant, Some(f.own), "other", 30, T0_US, T0_US + 300)).await.unwrap();
    let expired = timecards::insert(&mut tx, &card(f.tenant, Some(f.seat), "expired", 40, T0_US, T0_US + 10)).await.unwrap();
    assert_eq!(timecards::count_usable(&mut tx, f.tenant, Some(f.seat), T0_US + 50).await.unwrap(), 1, "{}: the expired card is not usable", f.backend);
    assert_eq!(timecards::count_usable(&mut tx, f.tenant, None, T0_US + 50).await.unwrap(), 1, "{}", f.backend);
    tx.commit().await.unwrap();

    // Listing: all of them, or the cards that can cover the seat (its own and the shared one).
    let (total, all) = timecards::list(&f.store, f.tenant, None, 0, 10).await.unwrap();
    assert_eq!((total, all.iter().map(|c| c.card.id).collect::<Vec<_>>()), (4, vec![own, shared, other, expired]), "{}", f.backend);
    let first = &all[0];
    assert_eq!(
        (first.card, first.name.as_str(), first.minutes_total, first.note.as_str(), first.created_at_us),
        (Card { id: own, account: Some(f.seat), minutes_left: 10, effective_at_us: T0_US, expires_at_us: T0_US + 100, status: CardStatus::Active }, "own", 10, "note", T0_US + 5),
        "{}",
        f.backend
    );
    let (total, seats) = timecards::list(&f.store, f.tenant, Some(f.seat), 0, 10).await.unwrap();
    assert_eq!((total, seats.iter().map(|c| c.card.id).collect::<Vec<_>>()), (3, vec![own, shared, expired]), "{}", f.backend);

    // A usage batch reads the usable cards of its card accounts and the shared ones, locked.
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let (tx, reads) = usage::begin_usage(&writer, &f.keys(&[], &[f.seat], T0_US + 50)).await.unwrap();
    let mut read: Vec<TimeCardId> = reads.cards.iter().map(|c| c.id).collect();
    read.sort();
    assert_eq!(read, [own, shared], "{}: not another account's, not expired", f.backend);
    let consumed = [CardChange { id: own, minutes_left_read: 10, minutes_left: 4 }];
    let writes = UsageWrites { tenant: f.tenant, ingested_at_us: T0_US + 60, events: &[], days: &[], months: &[], quota: &[], cards: &consumed };
    usage::finish_usage(tx, &writes, &LedgerWrites::default()).await.unwrap();
    let (_, seats) = timecards::list(&f.store, f.tenant, Some(f.seat), 0, 1).await.unwrap();
    assert_eq!(seats[0].card.minutes_left, 4, "{}", f.backend);

    // Minutes left are written only as read: a stale read fails the whole batch.
    let (tx, _) = usage::begin_usage(&writer, &f.keys(&[], &[f.seat], T0_US + 50)).await.unwrap();
    let stale = [CardChange { id: own, minutes_left_read: 10, minutes_left: 0 }];
    let writes = UsageWrites { cards: &stale, ..writes };
    assert!(usage::finish_usage(tx, &writes, &LedgerWrites::default()).await.is_err(), "{}", f.backend);
    let (_, seats) = timecards::list(&f.store, f.tenant, Some(f.seat), 0, 1).await.unwrap();
    assert_eq!(seats[0].card.minutes_left, 4, "{}: nothing of the failed batch", f.backend);

    // Cancelled: it covers nothing more, and another tenant cannot cancel it.
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(timecards::cancel(&mut tx, TenantId(f.tenant.0 + 1), own, T0_US + 70).await.unwrap().is_none(), "{}", f.backend);
    let cancelled = timecards::cancel(&mut tx, f.tenant, own, T0_US + 70).await.unwrap().unwrap();
    assert_eq!((cancelled.card.status, cancelled.card.minutes_left), (CardStatus::Cancelled, 4), "{}", f.backend);
    tx.commit().await.unwrap();
    let (tx, reads) = usage::begin_usage(&writer, &f.keys(&[], &[f.seat], T0_US + 50)).await.unwrap();
    ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
    assert_eq!(reads.cards.iter().map(|c| c.id).collect::<Vec<_>>(), [shared], "{}", f.backend);

    // The constraints.
    let mut tx = f.store.begin_write().await.unwrap();
    let error = timecards::insert(&mut tx, &card(f.tenant, None, "empty", 0, T0_US, T0_US + 1)).await.unwrap_err();
    assert!(matches!(error, StorageError::CheckViolation { check: Check::TimeCardMinutesTotal, .. }), "{}: {error:?}", f.backend);
    tx.rollback().await.unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    let error = timecards::insert(&mut tx, &card(f.tenant, None, "backwards", 1, T0_US, T0_US)).await.unwrap_err();
    assert!(matches!(error, StorageError::CheckViolation { check: Check::TimeCardPeriod, .. }), "{}: {error:?}", f.backend);
    tx.rollback().await.unwrap();
}

async fn subscriptions_round_trip_and_close_reads_them(db: TestDb) {
    let f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    subscriptions::insert(&mut tx, f.tenant, f.seat, "recording", T0_US + 10, T0_US).await.unwrap();
    let error = subscriptions::insert(&mut tx, f.tenant, f.seat, "recording", T0_US + 20, T0_US).await.unwrap_err();
    assert!(matches!(error, StorageError::UniqueViolation { key: UniqueKey::SubscriptionOpen, .. }), "{}: {error:?}", f.backend);
    tx.rollback().await.unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    // Rolled back above: the ids drawn then are not reused on PostgreSQL.
    let recording = subscriptions::insert(&mut tx, f.tenant, f.seat, "recording", T0_US + 10, T0_US).await.unwrap();
    let seat_fee = subscriptions::insert(&mut tx, f.tenant, f.seat, "seat", T0_US + 30, T0_US).await.unwrap();
    let ivr = subscriptions::insert(&mut tx, f.tenant, f.own, "ivr", T0_US + 500, T0_US).await.unwrap();
    assert!(subscriptions::in_force_from(&mut tx, f.tenant, f.seat, "recording", T0_US + 1_000).await.unwrap(), "{}", f.backend);
    // Ended before its start: it covers nothing (until = from).
    let ended = subscriptions::end_open(&mut tx, f.tenant, f.own, "ivr", T0_US + 100).await.unwrap().unwrap();
    assert_eq!(ended.until_us, Some(T0_US + 500), "{}", f.backend);
    assert!(subscriptions::end_open(&mut tx, f.tenant, f.own, "ivr", T0_US + 100).await.unwrap().is_none(), "{}: none open", f.backend);
    let ended = subscriptions::end_open(&mut tx, f.tenant, f.seat, "recording", T0_US + 400).await.unwrap().unwrap();
    assert_eq!(ended, SubscriptionRecord { id: ended.id, account: f.seat, product_code: "recording".to_owned(), from_us: T0_US + 10, until_us: Some(T0_US + 400) }, "{}", f.backend);
    assert!(!subscriptions::in_force_from(&mut tx, f.tenant, f.seat, "recording", T0_US + 400).await.unwrap(), "{}", f.backend);
    assert!(!subscriptions::month_billed(&mut tx, f.tenant, "2023-11").await.unwrap(), "{}", f.backend);
    tx.commit().await.unwrap();

    // The window [T0+300, T0+450): the recording (until T0+400) and the seat fee; not the empty IVR.
    let found = subscriptions::of_accounts(&f.store, f.tenant, &[f.seat, f.own], T0_US + 300, T0_US + 450).await.unwrap();
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), [recording, seat_fee], "{}", f.backend);
    assert!(subscriptions::of_accounts(&f.store, f.tenant, &[f.seat], T0_US + 400, T0_US + 450).await.unwrap().iter().all(|s| s.id == seat_fee), "{}: until is exclusive", f.backend);
    let (total, listed) = subscriptions::list(&f.store, f.tenant, None, 0, 10).await.unwrap();
    assert_eq!((total, listed.iter().map(|s| s.id).collect::<Vec<_>>()), (3, vec![ivr, seat_fee, recording]), "{}: newest first", f.backend);

    // A close chunk reads them in its own transaction.
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let (tx, reads) = close::begin_close(&writer, f.tenant, "2023-11", (T0_US + 300, T0_US + 450), 10).await.unwrap();
    close::abandon(tx).await.unwrap();
    assert_eq!(reads.subscriptions, found, "{}", f.backend);

    let mut tx = f.store.begin_write().await.unwrap();
    assert_eq!(subscriptions::end_all_open(&mut tx, f.tenant, f.seat, T0_US + 600).await.unwrap(), 1, "{}: the seat fee", f.backend);
    tx.commit().await.unwrap();
    let (_, listed) = subscriptions::list(&f.store, f.tenant, Some(f.seat), 0, 10).await.unwrap();
    assert!(listed.iter().all(|s| s.until_us.is_some()), "{}", f.backend);
}

async fn seats_are_paid_from_their_tenants_wallets(db: TestDb) {
    let f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let (tx, reads) = usage::begin_usage(&writer, &f.keys(&[(f.seat, Currency::Cny), (f.own, Currency::Cny)], &[], 0)).await.unwrap();
    ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
    let terms = |id| reads.accounts.iter().find(|a| a.id == id).unwrap().clone();
    let (seat, own) = (terms(f.seat), terms(f.own));
    assert_eq!((seat.seat, seat.cancelled, seat.wallets[&Currency::Cny]), (true, false, f.tenant_wallets), "{}: the tenant's wallets pay for the seat", f.backend);
    assert_eq!((own.seat, own.wallets[&Currency::Cny]), (false, f.own_wallets), "{}", f.backend);
    let mut locked: Vec<WalletId> = reads.wallets.iter().map(|(_, w)| w.id).collect();
    locked.sort();
    let mut expected = vec![f.tenant_wallets.primary, f.tenant_wallets.promo, f.own_wallets.primary, f.own_wallets.promo, f.revenue];
    expected.sort();
    assert_eq!(locked, expected, "{}", f.backend);

    // The funding mode changes whose wallets are read; a cancelled account is read as cancelled.
    let mut tx = f.store.begin_write().await.unwrap();
    let record = accounts::set_funding(&mut tx, f.tenant, "seat", "own", T0_US + 1).await.unwrap().unwrap();
    assert_eq!(record.funding, "own", "{}", f.backend);
    tx.commit().await.unwrap();
    // No writer of this crate cancels an account yet (the access service will): plain SQL.
    sqlx::any::install_default_drivers();
    let mut sql = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE accounts SET access_state = 3 WHERE id = $1").bind(f.own.0).execute(&mut sql).await.unwrap();
    let (tx, reads) = usage::begin_usage(&writer, &f.keys(&[(f.seat, Currency::Cny), (f.own, Currency::Cny)], &[], 0)).await.unwrap();
    ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
    let terms = |id| reads.accounts.iter().find(|a| a.id == id).unwrap().clone();
    assert!(!terms(f.seat).seat && terms(f.seat).wallets[&Currency::Cny] != f.tenant_wallets, "{}", f.backend);
    assert!(terms(f.own).cancelled, "{}", f.backend);
}
