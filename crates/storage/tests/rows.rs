//! Every row kind written and read back through the crate's own readers, on
//! SQLite and (with `SUBLEDGER_TEST_POSTGRES_URL`) PostgreSQL.
//!
//! The values of each row are distinct from one another wherever two columns
//! share a type, so a value written to the wrong column shows as a
//! difference. Columns that no reader of the crate returns are read with
//! plain SQL. The constraint violations the service tells apart are
//! triggered too, and must come back as their typed [`UniqueKey`] or [`Check`].

#[macro_use]
mod support;

use sqlx::{AnyConnection, Connection};
use subledger_domain::billing::LineKind;
use subledger_domain::calendar::Month;
use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind, TransferRejection, WalletPurpose, WalletState};
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_domain::oplog::{Actor, Operation, OperationKind, Outcome as OpOutcome};
use subledger_domain::posting::{Hold, HoldState, WalletRead};
use subledger_domain::rating::Quantity;
use subledger_domain::usage::{Accepted, AccountTerms, Outcome, RollupAmounts, SpendableWallets, UsageRejection};
use subledger_storage::accounts::{self, AccountRecord, Clashes, NewAccount};
use subledger_storage::bills::{self, BillRecord, DayUsage, LineRecord, SettlementRecord};
use subledger_storage::catalog::{self, NewTariff, ProductRecord, TariffRecord};
use subledger_storage::ledger::close::{self, Chunk, CloseProgress, CloseWrites, MonthRow, NewBillLine, NewSettlement};
use subledger_storage::ledger::usage::{self, NewUsageEvent, RollupKey, UsageKeys, UsageWrites};
use subledger_storage::ledger::{self, BatchKeys, LedgerWriter, LedgerWrites, Locking, NewEntry, StoredHold, StoredTransfer};
use subledger_storage::oplog::{self, OperationFilter};
use subledger_storage::records::{ChangeRecords, OperationRecord};
use subledger_storage::signed_requests::Sighting;
use subledger_storage::statements::{self, ProductMonth, WalletPeriod};
use subledger_storage::tenants::{self, NewTenant, TenantChanges, TenantRecord};
use subledger_storage::wallets::{self, EntryRecord, WalletOwner, WalletRecord};
use subledger_storage::{Check, StorageError, Store, StoreOptions, UniqueKey};
use support::TestDb;

/// A base for instants, so that no instant equals another value.
const T0_US: i64 = 1_700_000_000_000_000;

on_both_backends!(
    transfers_entries_and_wallets_round_trip,
    records_commit_with_a_ledger_batch_or_refuse_it,
    holds_round_trip_and_resolve_once,
    usage_rows_round_trip,
    close_rows_round_trip,
    sightings_round_trip,
    tenants_accounts_and_catalog_round_trip,
    account_clashes_name_their_key,
    close_progress_round_trip,
);

/// A migrated store with one tenant, one account and its wallets, whose ids
/// differ from one another: fillers come first, so that the tenant is 3, the
/// account 2 and the wallets 5 (primary), 6 (promo) and 7 (revenue).
struct Fixture {
    store: Store,
    /// Which backend, for the assertions' messages.
    backend: &'static str,
    /// Plain SQL, for the columns no reader of the crate returns.
    sql: AnyConnection,
    tenant: TenantId,
    account: AccountId,
    primary: WalletId,
    promo: WalletId,
    revenue: WalletId,
}

impl Fixture {
    async fn new(db: &TestDb) -> Fixture {
        let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
        let mut tx = store.begin_write().await.expect("a write transaction");
        let mut tenant_ids = Vec::new();
        for name in ["filler-1", "filler-2", "tenant"] {
            let tenant = NewTenant {
                public_id: &format!("tn_{name}"),
                name,
                timezone: "Asia/Shanghai",
                app_id: &format!("app-{name}"),
                app_key: "key",
                api_token_sha256: &format!("token-{name}"),
                account_limit: 10,
                default_daily_quota: 100,
                now_us: T0_US,
            };
            tenant_ids.push(tenants::insert(&mut tx, &tenant).await.expect("a tenant"));
        }
        let (filler, tenant) = (tenant_ids[0], tenant_ids[2]);
        let filler_account = accounts::insert(&mut tx, &new_account(filler, "filler", Some("13800000000"))).await.expect("an account");
        for purpose in [WalletPurpose::Primary, WalletPurpose::Promo] {
            wallets::ensure(&mut tx, WalletOwner::Account(filler, filler_account), purpose, Currency::Cny, Some(0), T0_US).await.expect("a wallet");
        }
        for purpose in [WalletPurpose::World, WalletPurpose::Revenue] {
            wallets::ensure(&mut tx, WalletOwner::Tenant(filler), purpose, Currency::Cny, None, T0_US).await.expect("a wallet");
        }
        let account = accounts::insert(&mut tx, &new_account(tenant, "user-b", Some("13900000002"))).await.expect("an account");
        let owner = WalletOwner::Account(tenant, account);
        let primary = wallets::ensure(&mut tx, owner, WalletPurpose::Primary, Currency::Cny, Some(-31), T0_US + 41).await.expect("a wallet");
        let promo = wallets::ensure(&mut tx, owner, WalletPurpose::Promo, Currency::Cny, Some(0), T0_US + 42).await.expect("a wallet");
        let revenue = wallets::ensure(&mut tx, WalletOwner::Tenant(tenant), WalletPurpose::Revenue, Currency::Cny, None, T0_US + 43).await.expect("a wallet");
        tx.commit().await.expect("commit");
        assert_eq!((tenant.0, account.0, primary.0, promo.0, revenue.0), (3, 2, 5, 6, 7), "the fixture's ids");
        sqlx::any::install_default_drivers();
        let sql = AnyConnection::connect(&db.url).await.expect("a plain connection");
        Fixture { backend: store.backend().name(), store, sql, tenant, account, primary, promo, revenue }
    }
}

fn new_account<'a>(tenant: TenantId, username: &'a str, phone: Option<&'a str>) -> NewAccount<'a> {
    NewAccount {
        tenant_id: tenant,
        username,
        user_type: 0,
        phone,
        email: None,
        company_name: None,
        company_url: None,
        password_hash: None,
        api_user: None,
        api_key_sha256: None,
        daily_quota: 700,
        funding: "own",
        now_us: T0_US,
    }
}

async fn transfers_entries_and_wallets_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let posted = StoredTransfer {
        id: TransferId(901),
        tenant_id: f.tenant,
        idempotency_key: Some("key-a".to_owned()),
        fingerprint: "fingerprint-a".to_owned(),
        outcome: Ok(()),
        kind: TransferKind::Allocation,
        debit: f.revenue,
        credit: f.primary,
        amount_minor: 4_100,
        currency: Currency::Cny,
        memo: Some("memo-a".to_owned()),
        created_at_us: T0_US + 777,
        entry_seqs: Some((13, 17)),
    };
    let rejected = StoredTransfer {
        id: TransferId(902),
        tenant_id: f.tenant,
        idempotency_key: Some("key-b".to_owned()),
        fingerprint: "fingerprint-b".to_owned(),
        outcome: Err(TransferRejection::InsufficientFunds),
        kind: TransferKind::Reclaim,
        debit: f.primary,
        credit: f.promo,
        amount_minor: 55,
        currency: Currency::Usd,
        memo: None,
        created_at_us: T0_US + 888,
        entry_seqs: None,
    };
    let debit = NewEntry { wallet: f.revenue, seq: 13, tenant_id: f.tenant, transfer_id: posted.id, amount_minor: -4_100, balance_after_minor: -4_133, created_at_us: T0_US + 777 };
    let credit = NewEntry { wallet: f.primary, seq: 17, tenant_id: f.tenant, transfer_id: posted.id, amount_minor: 4_100, balance_after_minor: 4_109, created_at_us: T0_US + 778 };
    let primary = WalletState { id: f.primary, currency: Currency::Cny, balance_minor: 4_109, floor_minor: Some(-31), entry_seq: 17, reserved_minor: 0 };
    let revenue = WalletState { id: f.revenue, currency: Currency::Cny, balance_minor: -4_133, floor_minor: None, entry_seq: 13, reserved_minor: 0 };

    let (tx, reads) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.primary, f.revenue], ids_needed: 2, ..BatchKeys::default() }, Locking::Pessimistic).await.expect("a batch");
    assert_eq!(reads.transfer_ids.len(), 2, "{}", f.backend);
    ledger::finish_batch(
        tx,
        &LedgerWrites {
            transfers: vec![posted.clone(), rejected.clone()],
            entries: vec![debit.clone(), credit.clone()],
            wallets: vec![(primary.clone(), read(0)), (revenue.clone(), read(0))],
            ..LedgerWrites::default()
        },
    )
    .await
    .expect("the batch is written");

    // By id, and by idempotency key (the batch's own read).
    assert_eq!(ledger::get_transfer(&f.store, f.tenant, posted.id).await.unwrap().as_ref(), Some(&posted), "{}", f.backend);
    assert_eq!(ledger::get_transfer(&f.store, f.tenant, rejected.id).await.unwrap().as_ref(), Some(&rejected), "{}", f.backend);
    let keys = [(f.tenant, "key-a"), (f.tenant, "key-b"), (f.tenant, "key-c")];
    let (mut tx, reads) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.revenue, f.primary], transfer_keys: &keys, ..BatchKeys::default() }, Locking::Pessimistic).await.expect("a batch");
    let mut earlier = reads.earlier.clone();
    earlier.sort_by_key(|t| t.id);
    assert_eq!(earlier, [posted.clone(), rejected.clone()], "{}", f.backend);
    let mut states = reads.wallets.clone();
    states.sort_by_key(|(_, w)| w.id);
    assert_eq!(states, [(f.tenant, primary.clone()), (f.tenant, revenue.clone())], "{}", f.backend);
    let balances = ledger::balances_after(&mut tx, &[(f.revenue, 13), (f.primary, 17)]).await.expect("the balances after");
    assert_eq!(balances, [(posted.id, f.revenue, -4_133), (posted.id, f.primary, 4_109)], "{}", f.backend);
    let missing = ledger::balances_after(&mut tx, &[(f.primary, 99)]).await;
    assert!(matches!(missing, Err(StorageError::Corrupt(_))), "{}: a missing entry is corrupt, not skipped: {missing:?}", f.backend);
    ledger::finish_batch(tx, &LedgerWrites::default()).await.expect("an empty batch ends");

    // The wallet and its entry as the readers show them.
    let wallet = wallets::get(&f.store, f.tenant, f.primary).await.unwrap().expect("the wallet");
    let expected = WalletRecord {
        id: f.primary,
        tenant_id: f.tenant,
        account_id: Some(f.account),
        purpose: WalletPurpose::Primary,
        currency: Currency::Cny,
        balance_minor: 4_109,
        floor_minor: Some(-31),
        entry_seq: 17,
        reserved_minor: 0,
        created_at_us: T0_US + 41,
    };
    assert_eq!(wallet, expected, "{}", f.backend);
    let entries = wallets::entries_after(&f.store, f.primary, 0, 10).await.unwrap();
    let entry = EntryRecord {
        seq: 17,
        transfer_id: 901,
        amount_minor: 4_100,
        balance_after_minor: 4_109,
        created_at_us: T0_US + 778,
        kind: "allocation".to_owned(),
        memo: Some("memo-a".to_owned()),
        counterparty_wallet_id: f.revenue.0,
    };
    assert_eq!(entries, [entry], "{}", f.backend);
    let period = statements::wallet_period(&f.store, f.primary, T0_US, &[TransferKind::Allocation]).await.unwrap();
    assert_eq!(period, WalletPeriod { opening_minor: 0, credited_minor: 4_100, balance_minor: 4_109 }, "{}", f.backend);
    let period = statements::wallet_period(&f.store, f.revenue, T0_US + 778, &[]).await.unwrap();
    assert_eq!(period, WalletPeriod { opening_minor: -4_133, credited_minor: 0, balance_minor: -4_133 }, "{}", f.backend);
    let sql = &mut f.sql;
    let tenant_of_entry: i64 = sqlx::query_scalar("SELECT tenant_id FROM entries WHERE wallet_id = 5 AND seq = 17").fetch_one(&mut *sql).await.unwrap();
    assert_eq!(tenant_of_entry, f.tenant.0, "{}", f.backend);

    // The idempotency key and the wallet's floor, by name.
    let reuse = StoredTransfer { id: TransferId(903), ..posted.clone() };
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Pessimistic).await.unwrap();
    let error = ledger::finish_batch(tx, &LedgerWrites { transfers: vec![reuse], ..LedgerWrites::default() }).await.unwrap_err();
    assert!(matches!(error, StorageError::UniqueViolation { key: UniqueKey::TransferIdempotencyKey, .. }), "{}: {error:?}", f.backend);
    let below = WalletState { balance_minor: -32, ..primary };
    let alone = StoredTransfer { id: TransferId(904), idempotency_key: None, ..rejected.clone() };
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.primary], ..BatchKeys::default() }, Locking::Pessimistic).await.unwrap();
    let error = ledger::finish_batch(tx, &LedgerWrites { transfers: vec![alone], wallets: vec![(below, read(17))], ..LedgerWrites::default() }).await.unwrap_err();
    assert!(matches!(error, StorageError::CheckViolation { check: Check::WalletFloor, .. }), "{}: {error:?}", f.backend);
    assert_eq!(ledger::get_transfer(&f.store, f.tenant, TransferId(904)).await.unwrap(), None, "{}: a failed batch writes nothing", f.backend);
}

async fn records_commit_with_a_ledger_batch_or_refuse_it(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let sighting = Sighting { tenant: f.tenant, signature: "sig-1".to_owned(), expires_at_ms: i64::MAX };
    let operation = OperationRecord {
        tenant: f.tenant,
        actor: Actor::SubUser { account: f.account, username: "user-b".to_owned() },
        operation: Operation::new(OperationKind::FundsTransfer, "a → b").with_detail("0.01 CNY"),
        outcome: OpOutcome::Refused("insufficient_funds".to_owned()),
    };
    let records = ChangeRecords { sightings: vec![sighting.clone()], operations: vec![operation.clone()], ad_money: Vec::new() };
    let transfer = |id| StoredTransfer {
        id: TransferId(id),
        tenant_id: f.tenant,
        idempotency_key: Some(format!("with-records-{id}")),
        fingerprint: "f".to_owned(),
        outcome: Err(TransferRejection::InsufficientFunds),
        kind: TransferKind::Internal,
        debit: f.primary,
        credit: f.promo,
        amount_minor: 1,
        currency: Currency::Cny,
        memo: None,
        created_at_us: T0_US,
        entry_seqs: None,
    };
    for locking in [Locking::Optimistic, Locking::Pessimistic] {
        let id = if locking == Locking::Optimistic { 970 } else { 971 };
        let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), locking).await.unwrap();
        let writes = LedgerWrites { transfers: vec![transfer(id)], records: records.clone(), ..LedgerWrites::default() };
        let outcome = ledger::finish_batch(tx, &writes).await;
        if locking == Locking::Optimistic {
            outcome.expect("the first sighting commits with the batch");
        } else {
            let error = outcome.unwrap_err();
            assert!(matches!(error, StorageError::Replayed(_)), "{}: {error:?}", f.backend);
        }
    }
    assert!(ledger::get_transfer(&f.store, f.tenant, TransferId(970)).await.unwrap().is_some(), "{}", f.backend);
    assert_eq!(ledger::get_transfer(&f.store, f.tenant, TransferId(971)).await.unwrap(), None, "{}: a replayed record refuses its whole batch", f.backend);
    assert!(subledger_storage::signed_requests::is_recorded(&f.store, f.tenant, "sig-1", 0).await.unwrap(), "{}", f.backend);
    let logged = oplog::list(&f.store, f.tenant, &OperationFilter::default(), 0, 10).await.unwrap();
    assert_eq!(logged.len(), 1, "{}: the refused batch left no entry", f.backend);
    assert_eq!((&logged[0].actor, &logged[0].operation, &logged[0].outcome), (&operation.actor, &operation.operation, &operation.outcome), "{}", f.backend);

    // Without a sighting, an optimistic batch writes its entries in its one statement.
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Optimistic).await.unwrap();
    let only_operation = ChangeRecords { sightings: Vec::new(), operations: vec![OperationRecord { actor: Actor::Tenant, outcome: OpOutcome::Done, ..operation.clone() }], ad_money: Vec::new() };
    ledger::finish_batch(tx, &LedgerWrites { transfers: vec![transfer(972)], records: only_operation, ..LedgerWrites::default() }).await.unwrap();
    let by_name = OperationFilter { actor_name: Some("user-b"), ..OperationFilter::default() };
    assert_eq!(oplog::list(&f.store, f.tenant, &by_name, 0, 10).await.unwrap().len(), 1, "{}: filtered by the sub-user", f.backend);
    assert_eq!(oplog::count(&f.store, f.tenant).await.unwrap(), 2, "{}", f.backend);
    let appended = sqlx::query("UPDATE operations SET outcome = 'done'").execute(&mut f.sql).await;
    assert!(appended.is_err(), "{}: the operation log is append-only", f.backend);
}

/// A wallet as a batch read it, with nothing reserved.
fn read(entry_seq: i64) -> WalletRead {
    WalletRead { entry_seq, reserved_minor: 0 }
}

async fn holds_round_trip_and_resolve_once(db: TestDb) {
    let f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let intent = |amount_minor| TransferIntent { debit: f.primary, credit: f.revenue, amount: PositiveAmount::new(amount_minor).unwrap(), currency: Currency::Cny, debit_rule: DebitRule::ToFloor };
    let pending = StoredHold {
        hold: Hold { id: TransferId(950), tenant: f.tenant, kind: TransferKind::Charge, intent: intent(25), timeout_at_us: T0_US + 9_000, state: HoldState::Pending },
        fingerprint: "hold-a".to_owned(),
        memo: Some("spend cap".to_owned()),
        idempotency_key: Some("hold-key".to_owned()),
        created_at_us: T0_US + 5,
        resolved_at_us: None,
    };
    let refused = StoredHold {
        hold: Hold { id: TransferId(951), intent: intent(10_000), state: HoldState::Rejected(TransferRejection::InsufficientFunds), ..pending.hold.clone() },
        idempotency_key: Some("refused-key".to_owned()),
        memo: None,
        ..pending.clone()
    };
    // Reserving 25 of the primary wallet's 31 of overdraft.
    let reserving = WalletState { id: f.primary, currency: Currency::Cny, balance_minor: 0, floor_minor: Some(-31), entry_seq: 0, reserved_minor: 25 };
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.primary], ids_needed: 2, ..BatchKeys::default() }, Locking::Optimistic).await.unwrap();
    let opened = LedgerWrites { holds_opened: vec![pending.clone(), refused.clone()], wallets: vec![(reserving.clone(), read(0))], ..LedgerWrites::default() };
    ledger::finish_batch(tx, &opened).await.expect("the holds are written");

    assert_eq!(ledger::get_hold(&f.store, f.tenant, pending.hold.id).await.unwrap().as_ref(), Some(&pending), "{}", f.backend);
    assert_eq!(ledger::get_hold(&f.store, f.tenant, refused.hold.id).await.unwrap().as_ref(), Some(&refused), "{}", f.backend);
    assert_eq!(ledger::get_hold(&f.store, TenantId(1), pending.hold.id).await.unwrap(), None, "{}: another tenant's hold", f.backend);
    let keys = [(f.tenant, "hold-key"), (f.tenant, "no-such-key")];
    let ids = [(f.tenant, pending.hold.id), (TenantId(1), refused.hold.id)];
    let (tx, reads) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.primary], hold_keys: &keys, hold_ids: &ids, ..BatchKeys::default() }, Locking::Pessimistic).await.unwrap();
    assert_eq!((reads.earlier_holds.as_slice(), reads.holds.as_slice()), (&[pending.clone()][..], &[pending.clone()][..]), "{}", f.backend);
    assert_eq!(reads.wallets, [(f.tenant, reserving.clone())], "{}", f.backend);
    ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
    assert_eq!(ledger::overdue_holds(&f.store, T0_US + 9_000, 10).await.unwrap(), std::slice::from_ref(&pending), "{}: due at its timeout", f.backend);
    assert_eq!(ledger::overdue_holds(&f.store, T0_US + 8_999, 10).await.unwrap(), [], "{}", f.backend);
    let listed = ledger::list_holds(&f.store, f.tenant, None, Some("pending"), Some(f.revenue), 10).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&pending), "{}", f.backend);

    // A wallet whose reservation moved since the read is not written (optimistic: a conflict to retry).
    let posted_state = HoldState::Posted { transfer: TransferId(960), amount_minor: 20 };
    let stale = LedgerWrites { wallets: vec![(WalletState { reserved_minor: 0, ..reserving.clone() }, read(0))], ..LedgerWrites::default() };
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys { wallets: &[f.primary], ..BatchKeys::default() }, Locking::Optimistic).await.unwrap();
    let error = ledger::finish_batch(tx, &stale).await.unwrap_err();
    assert!(error.is_retryable() || matches!(error, StorageError::Corrupt(_)), "{}: {error:?}", f.backend);

    // Resolved once; resolving it again finds it no longer pending.
    let resolve = LedgerWrites { holds_resolved: vec![(pending.hold.id, posted_state, T0_US + 70)], ..LedgerWrites::default() };
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Optimistic).await.unwrap();
    ledger::finish_batch(tx, &resolve).await.expect("the hold is resolved");
    let resolved = StoredHold { hold: Hold { state: posted_state, ..pending.hold.clone() }, resolved_at_us: Some(T0_US + 70), ..pending.clone() };
    assert_eq!(ledger::get_hold(&f.store, f.tenant, pending.hold.id).await.unwrap(), Some(resolved), "{}", f.backend);
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Optimistic).await.unwrap();
    let error = ledger::finish_batch(tx, &resolve).await.unwrap_err();
    assert!(error.is_retryable() || matches!(error, StorageError::Corrupt(_)), "{}: {error:?}", f.backend);

    // Constraints, by name: a reused key, a posting above the reservation.
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Optimistic).await.unwrap();
    let reused = StoredHold { hold: Hold { id: TransferId(952), ..refused.hold.clone() }, ..refused.clone() };
    let error = ledger::finish_batch(tx, &LedgerWrites { holds_opened: vec![reused], ..LedgerWrites::default() }).await.unwrap_err();
    assert!(matches!(error, StorageError::UniqueViolation { key: UniqueKey::HoldIdempotencyKey, .. }), "{}: {error:?}", f.backend);
    let (tx, _) = ledger::begin_batch(&writer, &BatchKeys::default(), Locking::Optimistic).await.unwrap();
    let over = StoredHold {
        hold: Hold { id: TransferId(953), state: HoldState::Posted { transfer: TransferId(961), amount_minor: 26 }, ..pending.hold.clone() },
        idempotency_key: None,
        resolved_at_us: Some(T0_US),
        ..pending.clone()
    };
    let error = ledger::finish_batch(tx, &LedgerWrites { holds_opened: vec![over], ..LedgerWrites::default() }).await.unwrap_err();
    assert!(matches!(error, StorageError::CheckViolation { check: Check::HoldPosted, .. }), "{}: {error:?}", f.backend);
}

fn amounts(base: i64) -> RollupAmounts {
    RollupAmounts { quantity_milli: base + 1_000, billable_milli: base + 2_000, events: base + 11, rated_micros: base + 5_555, charged_cents: base + 66, card_milli: base + 3_000 }
}

fn sum(a: RollupAmounts, b: RollupAmounts) -> RollupAmounts {
    a.checked_add(&b).expect("small amounts add up")
}

async fn usage_rows_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let accepted = Outcome::Accepted(Accepted { billable: Quantity::from_milli(4_000).unwrap(), rated_micros: 5_000_000, charge_cents: 9, card_minutes: 7 });
    let rejected = Outcome::Rejected(UsageRejection::QuotaExceeded);
    let events = [
        NewUsageEvent {
            event_id: "ev-1",
            account_id: Some(f.account),
            username: "user-b",
            product_code: "sms",
            quantity_milli: 3_000,
            occurred_at_us: T0_US + 1,
            attributes: Some(r#"{"country":"86"}"#),
            outcome: &accepted,
        },
        NewUsageEvent { event_id: "ev-2", account_id: None, username: "ghost", product_code: "email", quantity_milli: 6_000, occurred_at_us: T0_US + 2, attributes: None, outcome: &rejected },
    ];
    let day: RollupKey = (f.account, "sms".to_owned(), "2025-03-14".to_owned(), "86".to_owned());
    let month: RollupKey = (f.account, "sms".to_owned(), "2025-03".to_owned(), "86".to_owned());
    let quota = (f.account, "2025-03-14".to_owned());
    let keys = UsageKeys {
        tenant: f.tenant,
        event_ids: &["ev-1", "ev-2"],
        // The account has wallets in yuan, none in dollars.
        accounts: &[(f.account, Currency::Cny), (f.account, Currency::Usd)],
        months: &[(f.account, "sms", "2025-03")],
        quota_days: &[(f.account, "2025-03-14")],
        month_names: &["2025-03"],
        revenue: &[f.revenue],
        ids_needed: 0,
        card_accounts: &[],
        cards_after_us: 0,
    };

    // Written twice: the second time the rollups add up, and a month once late stays late.
    for (round, late) in [(0, true), (100_000, false)] {
        let (first, second) = (amounts(round), amounts(round + 1));
        let writes = UsageWrites {
            tenant: f.tenant,
            ingested_at_us: T0_US + 3 + round,
            events: if round == 0 { &events } else { &[] },
            days: &[(&day, &first)],
            months: &[(&month, &second, late)],
            quota: &[(&quota, 12 + round)],
            cards: &[],
        };
        let (tx, _) = usage::begin_usage(&writer, &keys).await.expect("a usage batch");
        usage::finish_usage(tx, &writes, &LedgerWrites::default()).await.expect("the usage batch is written");
    }
    let (day_total, month_total) = (sum(amounts(0), amounts(100_000)), sum(amounts(1), amounts(100_001)));

    let (tx, reads) = usage::begin_usage(&writer, &keys).await.expect("a usage batch");
    ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
    let mut earlier = reads.earlier.clone();
    earlier.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(earlier, [("ev-1".to_owned(), accepted), ("ev-2".to_owned(), rejected)], "{}", f.backend);
    let wallets = [(Currency::Cny, SpendableWallets { primary: f.primary, promo: f.promo })].into();
    assert_eq!(
        reads.accounts,
        [AccountTerms { id: f.account, active: true, cancelled: false, seat: false, postpaid: false, daily_quota: 700, wallets }],
        "{}: the USD wallets it has not are left out",
        f.backend
    );
    let mut locked: Vec<WalletId> = reads.wallets.iter().map(|(_, w)| w.id).collect();
    locked.sort();
    assert_eq!(locked, [f.primary, f.promo, f.revenue], "{}", f.backend);
    assert_eq!(reads.months, [(month.clone(), month_total)], "{}", f.backend);
    assert_eq!(reads.quota, [(quota.clone(), 12 + 100_012)], "{}", f.backend);
    assert_eq!(reads.closed_months, Vec::<String>::new(), "{}", f.backend);

    let month_row = MonthRow { account: f.account, product: "sms".to_owned(), month: "2025-03".to_owned(), attr: "86".to_owned(), amounts: month_total };
    assert_eq!(bills::month_rows(&f.store, f.tenant, &[f.account], "2025-03").await.unwrap(), std::slice::from_ref(&month_row), "{}", f.backend);
    assert_eq!(bills::late_rows(&f.store, f.tenant, &[f.account], "2025-04").await.unwrap(), [month_row], "{}: the late flag stays", f.backend);
    let day_usage = DayUsage {
        product_code: "sms".to_owned(),
        day: "2025-03-14".to_owned(),
        quantity: Quantity::from_milli(day_total.quantity_milli).unwrap(),
        billable: Quantity::from_milli(day_total.billable_milli).unwrap(),
        card: Quantity::from_milli(day_total.card_milli).unwrap(),
        events: day_total.events,
        rated_micros: day_total.rated_micros,
        charged_cents: day_total.charged_cents,
    };
    assert_eq!(bills::daily(&f.store, f.tenant, f.account, "2025-03-01", "2025-03-31").await.unwrap(), [day_usage], "{}", f.backend);
    let by_product = statements::month_by_product(&f.store, f.tenant, f.account, "2025-03").await.unwrap();
    let expected =
        ProductMonth { product_code: "sms".to_owned(), billable: Quantity::from_milli(month_total.billable_milli).unwrap(), events: month_total.events, rated_micros: month_total.rated_micros };
    assert_eq!(by_product, [expected], "{}", f.backend);

    // What no reader returns.
    let sql = &mut f.sql;
    type EventColumns = (i64, Option<i64>, String, String, i64, i64, Option<String>, i64);
    let event: EventColumns =
        sqlx::query_as("SELECT tenant_id, account_id, username, product_code, quantity_milli, occurred_at_us, attributes, ingested_at_us FROM usage_events WHERE event_id = 'ev-1'")
            .fetch_one(&mut *sql)
            .await
            .unwrap();
    assert_eq!(event, (3, Some(2), "user-b".to_owned(), "sms".to_owned(), 3_000, T0_US + 1, Some(r#"{"country":"86"}"#.to_owned()), T0_US + 3), "{}", f.backend);
    let tenants: (i64, i64, i64) =
        sqlx::query_as("SELECT (SELECT tenant_id FROM usage_daily), (SELECT tenant_id FROM usage_monthly WHERE late = 1), (SELECT tenant_id FROM quota_usage WHERE day = '2025-03-14')")
            .fetch_one(&mut *sql)
            .await
            .unwrap();
    assert_eq!(tenants, (3, 3, 3), "{}", f.backend);
}

async fn close_rows_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    // A closed month with late usage, for the reads that follow it.
    let late: RollupKey = (f.account, "sms".to_owned(), "2025-02".to_owned(), String::new());
    let writes = UsageWrites { tenant: f.tenant, ingested_at_us: T0_US, events: &[], days: &[], months: &[(&late, &amounts(0), true)], quota: &[], cards: &[] };
    let keys =
        UsageKeys { tenant: f.tenant, event_ids: &[], accounts: &[], months: &[], quota_days: &[], month_names: &[], revenue: &[f.revenue], ids_needed: 0, card_accounts: &[], cards_after_us: 0 };
    let (tx, _) = usage::begin_usage(&writer, &keys).await.unwrap();
    usage::finish_usage(tx, &writes, &LedgerWrites::default()).await.unwrap();

    let line = NewBillLine {
        account: f.account,
        currency: Currency::Usd,
        line_no: 4,
        kind: "supplement",
        for_month: "2025-02",
        product_code: "sms",
        order_type: 15,
        description: "description",
        unit: "unit",
        quantity_milli: 8_000,
        card_milli: 2_000,
        money_cents: 4_321,
        previous: Some((6_000, 1_234)),
        detail: r#"[{"tier":1}]"#.to_owned(),
    };
    let settlements = [
        NewSettlement { account: f.account, product_code: "sms", currency: Currency::Cny, order_type: 16, amount_cents: 777, transfer_id: Some(TransferId(901)) },
        NewSettlement { account: f.account, product_code: "email", currency: Currency::Usd, order_type: 17, amount_cents: 888, transfer_id: None },
    ];
    let now_us = T0_US + 999;
    let (tx, reads) = close::begin_close(&writer, f.tenant, "2025-03", (T0_US, T0_US + 1), 10).await.expect("a close");
    assert!(!reads.already_closed, "{}", f.backend);
    assert_eq!((reads.progress, reads.chunk), (None, Chunk { after: AccountId(0), through: None }), "{}: one chunk takes the tenant's one account", f.backend);
    let progress = CloseProgress { started_at_us: now_us, last_account: AccountId(0), chunks: 1, bills: 1 };
    let writes =
        CloseWrites { tenant: f.tenant, month: "2025-03", now_us, chunk: reads.chunk, progress: &progress, bills: &[(f.account, Currency::Usd, 5_432)], lines: &[line], settlements: &settlements };
    close::finish_close(tx, &writes, &LedgerWrites::default()).await.expect("the close is written");

    let bill = BillRecord { account: f.account, month: "2025-03".to_owned(), currency: Currency::Usd, total_cents: 5_432, created_at_us: now_us };
    assert_eq!(bills::bills(&f.store, f.tenant, &[f.account], "2025-03", "2025-03").await.unwrap(), [bill], "{}", f.backend);
    let line = LineRecord {
        account: f.account,
        month: "2025-03".to_owned(),
        currency: Currency::Usd,
        line_no: 4,
        kind: LineKind::Supplement,
        for_month: "2025-02".to_owned(),
        product_code: "sms".to_owned(),
        order_type: 15,
        description: "description".to_owned(),
        unit: "unit".to_owned(),
        quantity: Quantity::from_milli(8_000).unwrap(),
        card: Quantity::from_milli(2_000).unwrap(),
        money_cents: 4_321,
        previous: Some((Quantity::from_milli(6_000).unwrap(), 1_234)),
        detail: r#"[{"tier":1}]"#.to_owned(),
    };
    assert_eq!(bills::bill_lines(&f.store, f.tenant, &[f.account], "2025-03", "2025-03").await.unwrap(), [line], "{}", f.backend);
    let settlement = |product: &str, currency, order_type, amount_cents, transfer| SettlementRecord {
        account: f.account,
        product_code: product.to_owned(),
        month: "2025-03".to_owned(),
        currency,
        order_type,
        amount_cents,
        transfer,
        created_at_us: now_us,
    };
    let expected = [settlement("email", Currency::Usd, 17, 888, None), settlement("sms", Currency::Cny, 16, 777, Some(TransferId(901)))];
    assert_eq!(bills::settlements(&f.store, f.tenant, &[f.account], "2025-03", "2025-03").await.unwrap(), expected, "{}", f.backend);
    assert_eq!(bills::closed_months(&f.store, f.tenant).await.unwrap().iter().map(ToString::to_string).collect::<Vec<_>>(), ["2025-03"], "{}", f.backend);
    let (tenant_of_bill, tenant_of_line, tenant_of_settlement): (i64, i64, i64) =
        sqlx::query_as("SELECT (SELECT tenant_id FROM bills), (SELECT tenant_id FROM bill_lines), (SELECT MIN(tenant_id) FROM settlements)").fetch_one(&mut f.sql).await.unwrap();
    assert_eq!((tenant_of_bill, tenant_of_line, tenant_of_settlement), (3, 3, 3), "{}", f.backend);
    let sql = &mut f.sql;
    let close: (i64, String, i64, i64) = sqlx::query_as("SELECT tenant_id, month, closed_at_us, accounts FROM month_closes").fetch_one(&mut *sql).await.unwrap();
    assert_eq!(close, (3, "2025-03".to_owned(), now_us, 1), "{}", f.backend);
    let late_flags: i64 = sqlx::query_scalar("SELECT CAST(SUM(late) AS BIGINT) FROM usage_monthly").fetch_one(&mut *sql).await.unwrap();
    assert_eq!(late_flags, 0, "{}: the close clears the late flags", f.backend);

    // The next close reads the running totals.
    let writes = UsageWrites { tenant: f.tenant, ingested_at_us: T0_US, events: &[], days: &[], months: &[(&late, &amounts(1), true)], quota: &[], cards: &[] };
    let (tx, _) = usage::begin_usage(
        &writer,
        &UsageKeys { tenant: f.tenant, event_ids: &[], accounts: &[], months: &[], quota_days: &[], month_names: &[], revenue: &[f.revenue], ids_needed: 0, card_accounts: &[], cards_after_us: 0 },
    )
    .await
    .unwrap();
    usage::finish_usage(tx, &writes, &LedgerWrites::default()).await.unwrap();
    let (tx, reads) = close::begin_close(&writer, f.tenant, "2025-04", (T0_US, T0_US + 1), 10).await.expect("a close");
    close::abandon(tx).await.unwrap();
    let sms = (f.account, "sms".to_owned());
    assert!(!reads.already_closed, "{}", f.backend);
    assert_eq!(reads.previous_billed, [((f.account, "sms".to_owned(), "2025-02".to_owned()), (8_000, 4_321))], "{}", f.backend);
    assert_eq!(reads.billed, [(sms.clone(), 4_321)], "{}", f.backend);
    assert_eq!(reads.charged, [(sms.clone(), amounts(0).charged_cents + amounts(1).charged_cents)], "{}", f.backend);
    assert_eq!(reads.settled, [(sms, 777)], "{}", f.backend);
    assert_eq!(reads.month_rows, [], "{}", f.backend);
    let late_row = MonthRow { account: f.account, product: "sms".to_owned(), month: "2025-02".to_owned(), attr: String::new(), amounts: sum(amounts(0), amounts(1)) };
    assert_eq!(reads.late_rows, [late_row], "{}", f.backend);

    // A month closes once.
    let (tx, reads) = close::begin_close(&writer, f.tenant, "2025-03", (T0_US, T0_US + 1), 10).await.expect("a close");
    assert!(reads.already_closed, "{}", f.backend);
    let again = CloseWrites { tenant: f.tenant, month: "2025-03", now_us, chunk: reads.chunk, progress: &progress, bills: &[], lines: &[], settlements: &[] };
    let error = close::finish_close(tx, &again, &LedgerWrites::default()).await.unwrap_err();
    assert!(matches!(error, StorageError::UniqueViolation { key: UniqueKey::MonthClose, .. }), "{}: {error:?}", f.backend);
}

async fn sightings_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let sighting = |signature: &str, expires_at_ms| Sighting { tenant: f.tenant, signature: signature.to_owned(), expires_at_ms };
    let (first, second) = (sighting("sig-1", 5_000), sighting("sig-2", 6_000));
    let seen = ledger::record_sightings(&writer, &[first.clone(), second.clone(), first.clone()], 4_000).await.unwrap();
    assert_eq!(seen, [true, true, false], "{}", f.backend);
    assert_eq!(ledger::record_sightings(&writer, std::slice::from_ref(&second), 6_000).await.unwrap(), [false], "{}: live through its expiry", f.backend);
    assert_eq!(ledger::record_sightings(&writer, &[sighting("sig-1", 9_000)], 5_001).await.unwrap(), [true], "{}: an expired record is taken over", f.backend);
    let sql = &mut f.sql;
    let stored: Vec<(i64, String, i64)> = sqlx::query_as("SELECT tenant_id, signature, expires_at_ms FROM signed_requests ORDER BY signature").fetch_all(&mut *sql).await.unwrap();
    assert_eq!(stored, [(3, "sig-1".to_owned(), 9_000), (3, "sig-2".to_owned(), 6_000)], "{}", f.backend);
}

async fn tenants_accounts_and_catalog_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let tenant = tenants::get(&f.store, f.tenant).await.unwrap().expect("the tenant");
    let expected = TenantRecord {
        id: 3,
        public_id: "tn_tenant".to_owned(),
        name: "tenant".to_owned(),
        timezone: "Asia/Shanghai".to_owned(),
        language: "zh-CN".to_owned(),
        app_id: "app-tenant".to_owned(),
        app_key: "key".to_owned(),
        account_limit: 10,
        default_daily_quota: 100,
        created_at_us: T0_US,
        updated_at_us: T0_US,
    };
    assert_eq!(tenant, expected, "{}", f.backend);
    let changes =
        TenantChanges { name: Some("renamed"), timezone: None, language: Some("en"), account_limit: Some(12), default_daily_quota: None, app_key: Some("key-2"), api_token_sha256: Some("token-2") };
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(tenants::update(&mut tx, f.tenant, &changes, T0_US + 5).await.unwrap(), "{}", f.backend);
    tx.commit().await.unwrap();
    let changed = TenantRecord { name: "renamed".to_owned(), account_limit: 12, app_key: "key-2".to_owned(), language: "en".to_owned(), updated_at_us: T0_US + 5, ..expected };
    assert_eq!(tenants::find_by_token_sha256(&f.store, "token-2").await.unwrap(), Some(changed), "{}", f.backend);

    let account = NewAccount {
        tenant_id: f.tenant,
        username: "user-c",
        user_type: 0,
        phone: Some("13700000003"),
        email: Some("c@example.com"),
        company_name: Some("Company C"),
        company_url: Some("https://c.example.com"),
        password_hash: Some("password-hash-c"),
        api_user: Some("api-user-c"),
        api_key_sha256: Some("api-key-c"),
        daily_quota: 800,
        funding: "tenant",
        now_us: T0_US + 9,
    };
    let mut tx = f.store.begin_write().await.unwrap();
    let id = accounts::insert(&mut tx, &account).await.unwrap();
    let product = ProductRecord {
        code: "p-code".to_owned(),
        name: "p-name".to_owned(),
        unit: "p-unit".to_owned(),
        order_type: 21,
        grouping: "country".to_owned(),
        currency: Currency::Usd,
        supplement_order_type: 22,
        refund_order_type: Some(23),
        quantity_meaning: "p-meaning".to_owned(),
        kind: "rental".to_owned(),
        bill_category: "call_in".to_owned(),
        created_at_us: T0_US + 6,
    };
    catalog::insert_product(&mut tx, f.tenant, &product).await.unwrap();
    let tariff = NewTariff { tenant: f.tenant, account: Some(f.account), product_code: "p-code", effective_from_us: T0_US + 7, model: r#"{"per_unit":1}"#, now_us: T0_US + 8 };
    let tariff_id = catalog::insert_tariff(&mut tx, &tariff).await.unwrap();
    tx.commit().await.unwrap();

    let record = AccountRecord {
        id: id.0,
        tenant_id: 3,
        username: "user-c".to_owned(),
        user_type: 0,
        status: 1,
        phone: Some("13700000003".to_owned()),
        email: Some("c@example.com".to_owned()),
        company_name: Some("Company C".to_owned()),
        company_url: Some("https://c.example.com".to_owned()),
        api_user: Some("api-user-c".to_owned()),
        daily_quota: 800,
        billing_mode: "prepaid".to_owned(),
        funding: "tenant".to_owned(),
        access_state: 1,
        role_id: None,
        role_template: 1,
        person_name: None,
        job_number: None,
        extension: None,
        department: None,
        note: None,
        last_login_at_us: None,
        logins: 0,
        created_at_us: T0_US + 9,
        updated_at_us: T0_US + 9,
    };
    assert_eq!(accounts::find_by_username(&f.store, f.tenant, "user-c").await.unwrap(), Some(record), "{}", f.backend);
    let secrets: (String, String) = sqlx::query_as("SELECT password_hash, api_key_sha256 FROM accounts WHERE username = 'user-c'").fetch_one(&mut f.sql).await.unwrap();
    assert_eq!(secrets, ("password-hash-c".to_owned(), "api-key-c".to_owned()), "{}", f.backend);
    assert_eq!(catalog::products(&f.store, f.tenant).await.unwrap(), [product], "{}", f.backend);
    assert_eq!(accounts::spendable_balances(&f.store, f.tenant, &[f.account, id]).await.unwrap(), [(f.account, Currency::Cny, 0)], "{}: an account without wallets has no balance", f.backend);
    let version = TariffRecord {
        id: tariff_id,
        account_id: Some(f.account.0),
        username: Some("user-b".to_owned()),
        product_code: "p-code".to_owned(),
        effective_from_us: T0_US + 7,
        model: r#"{"per_unit":1}"#.to_owned(),
        created_at_us: T0_US + 8,
    };
    assert_eq!(catalog::tariffs(&f.store, f.tenant).await.unwrap(), [version], "{}", f.backend);

    let clashes = |username, phone| accounts::clashes(&f.store, f.tenant, username, phone);
    let both = Clashes { username_taken: true, phone_taken: true, accounts: 2, account_limit: 12 };
    assert_eq!(clashes("user-b", Some("13700000003")).await.unwrap(), both, "{}", f.backend);
    assert_eq!(clashes("user-b", None).await.unwrap(), Clashes { phone_taken: false, ..both }, "{}", f.backend);
    assert_eq!(clashes("user-d", Some("13700000003")).await.unwrap(), Clashes { username_taken: false, ..both }, "{}", f.backend);
}

async fn account_clashes_name_their_key(db: TestDb) {
    let f = Fixture::new(&db).await;
    for (username, phone, key) in [("user-b", None, UniqueKey::AccountUsername), ("user-c", Some("13900000002"), UniqueKey::AccountPhone)] {
        let mut tx = f.store.begin_write().await.unwrap();
        let error = accounts::insert(&mut tx, &new_account(f.tenant, username, phone)).await.unwrap_err();
        assert!(matches!(error, StorageError::UniqueViolation { key: found, .. } if found == key), "{}: {error:?}", f.backend);
    }
}

/// A close in chunks of one account: each chunk reads where the last left
/// off, the progress round-trips, usage reads see the month closing up to
/// its last account billed, and the last chunk closes the month and forgets
/// the progress.
async fn close_progress_round_trip(db: TestDb) {
    let mut f = Fixture::new(&db).await;
    let mut tx = f.store.begin_write().await.unwrap();
    let more = [accounts::insert(&mut tx, &new_account(f.tenant, "user-c", None)).await.unwrap(), accounts::insert(&mut tx, &new_account(f.tenant, "user-d", None)).await.unwrap()];
    tx.commit().await.unwrap();
    assert_eq!(more, [AccountId(3), AccountId(4)], "{}", f.backend);
    let writer = LedgerWriter::open(&f.store).expect("the ledger writer");
    let month = "2025-03";
    let usage_keys =
        UsageKeys { tenant: f.tenant, event_ids: &[], accounts: &[], months: &[], quota_days: &[], month_names: &[month], revenue: &[f.revenue], ids_needed: 0, card_accounts: &[], cards_after_us: 0 };

    let mut chunks = Vec::new();
    let mut last = None;
    for (round, account) in [f.account, more[0], more[1]].into_iter().enumerate() {
        let (tx, reads) = close::begin_close(&writer, f.tenant, month, (T0_US, T0_US + 1), 1).await.expect("a chunk");
        assert_eq!(reads.progress, last, "{}: chunk {round} reads the progress as written", f.backend);
        chunks.push(reads.chunk);
        let round = round as i64;
        let progress = CloseProgress { started_at_us: T0_US + 7, last_account: reads.chunk.through.unwrap_or(account), chunks: round + 1, bills: 10 * round + 1 };
        let writes = CloseWrites { tenant: f.tenant, month, now_us: T0_US + 8 + round, chunk: reads.chunk, progress: &progress, bills: &[(account, Currency::Cny, 5)], lines: &[], settlements: &[] };
        close::finish_close(tx, &writes, &LedgerWrites::default()).await.expect("the chunk is written");
        let (tx, usage_reads) = usage::begin_usage(&writer, &usage_keys).await.unwrap();
        ledger::finish_batch(tx, &LedgerWrites::default()).await.unwrap();
        if reads.chunk.is_last() {
            assert_eq!(usage_reads.closing_months, [], "{}", f.backend);
            assert_eq!(usage_reads.closed_months, [month], "{}", f.backend);
        } else {
            assert_eq!(usage_reads.closing_months, [(month.to_owned(), progress.last_account)], "{}", f.backend);
            assert_eq!(bills::month_closing(&f.store, f.tenant, month).await.unwrap(), Some(progress), "{}", f.backend);
            assert_eq!(bills::unclosed_months_with_usage(&f.store, f.tenant, "2025-12").await.unwrap(), [Month::parse_dashed(month).unwrap()], "{}: a closing month is open", f.backend);
        }
        last = Some(progress);
    }
    let expected = [Chunk { after: AccountId(0), through: Some(f.account) }, Chunk { after: f.account, through: Some(more[0]) }, Chunk { after: more[0], through: None }];
    assert_eq!(chunks, expected, "{}", f.backend);
    assert_eq!(bills::month_closing(&f.store, f.tenant, month).await.unwrap(), None, "{}: the last chunk forgets the progress", f.backend);
    assert_eq!(bills::unclosed_months_with_usage(&f.store, f.tenant, "2025-12").await.unwrap(), Vec::<Month>::new(), "{}", f.backend);
    let close: (i64, i64) = sqlx::query_as("SELECT closed_at_us, accounts FROM month_closes").fetch_one(&mut f.sql).await.unwrap();
    assert_eq!(close, (T0_US + 10, 21), "{}: the month closed with every chunk's bills", f.backend);
    let bills: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bills").fetch_one(&mut f.sql).await.unwrap();
    assert_eq!(bills, 3, "{}", f.backend);
    let (tx, reads) = close::begin_close(&writer, f.tenant, month, (T0_US, T0_US + 1), 1).await.unwrap();
    close::abandon(tx).await.unwrap();
    assert!(reads.already_closed, "{}", f.backend);
}
