//! The sandbox ad platform's storage on SQLite and (with
//! `SUBLEDGER_TEST_POSTGRES_URL`) PostgreSQL: epochs that the first writer
//! sets, spend segments that advance only over the one they read (also
//! from two processes at once), the last segment of each day, bindings, and
//! the constraints that guard them.

#[macro_use]
mod support;

use subledger_domain::ids::TenantId;
use subledger_storage::ad_sandbox::{self, BindingKind, BindingRecord, SpendRecord};
use subledger_storage::tenants::{self, NewTenant};
use subledger_storage::{Check, StorageError, Store, StoreOptions};
use support::TestDb;

const T0_US: i64 = 1_700_000_000_000_000;
const DAY: i64 = 19_676;

on_both_backends!(epochs_are_set_once, spend_advances_only_over_what_it_read, two_processes_advance_one_at_a_time, bindings_differ_from_the_start, constraints_guard_spend);

async fn open(db: &TestDb) -> (Store, TenantId) {
    let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
    let mut tx = store.begin_write().await.unwrap();
    let tenant = NewTenant {
        public_id: "tn_sandbox",
        name: "sandbox",
        timezone: "Asia/Shanghai",
        app_id: "app-sandbox",
        app_key: "key",
        api_token_sha256: "token-sandbox",
        account_limit: 10,
        default_daily_quota: 100,
        now_us: T0_US,
    };
    let tenant = tenants::insert(&mut tx, &tenant).await.unwrap();
    assert_eq!(ad_sandbox::start(&mut tx, tenant, T0_US).await.unwrap(), T0_US);
    tx.commit().await.unwrap();
    (store, tenant)
}

fn segment(seq: i64, local_day: i64, cap_cents: i64, amount_spent_cents: i64) -> SpendRecord {
    SpendRecord { seq, at_us: T0_US + seq, local_day, cap_cents, amount_spent_cents, lifetime_spent_cents: amount_spent_cents + 100 }
}

async fn advance(store: &Store, tenant: TenantId, account: &str, previous: i64, next: &SpendRecord) -> Result<bool, StorageError> {
    let mut tx = store.begin_write().await?;
    let applied = ad_sandbox::advance(&mut tx, tenant, account, previous, next).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn epochs_are_set_once(db: TestDb) {
    let (store, tenant) = open(&db).await;
    assert_eq!(ad_sandbox::epoch(&store, tenant).await.unwrap(), Some(T0_US));
    // A later start (another process) gets the first one's epoch.
    let mut tx = store.begin_write().await.unwrap();
    assert_eq!(ad_sandbox::start(&mut tx, tenant, T0_US + 5).await.unwrap(), T0_US);
    tx.commit().await.unwrap();
    assert_eq!(ad_sandbox::epoch(&store, TenantId(tenant.0 + 1)).await.unwrap(), None);
}

async fn spend_advances_only_over_what_it_read(db: TestDb) {
    let (store, tenant) = open(&db).await;
    let account = "1000000000000001";
    assert_eq!(ad_sandbox::spend(&store, tenant, account).await.unwrap(), None);
    assert!(advance(&store, tenant, account, 0, &segment(1, DAY, 500, 1)).await.unwrap());
    // A second first write, or one over a stale segment, applies nothing.
    assert!(!advance(&store, tenant, account, 0, &segment(1, DAY, 900, 1)).await.unwrap());
    assert!(advance(&store, tenant, account, 1, &segment(2, DAY, 700, 300)).await.unwrap());
    assert!(!advance(&store, tenant, account, 1, &segment(2, DAY, 800, 300)).await.unwrap());
    assert_eq!(ad_sandbox::spend(&store, tenant, account).await.unwrap(), Some(segment(2, DAY, 700, 300)));
    let mut tx = store.begin_write().await.unwrap();
    assert_eq!(ad_sandbox::spend_for_write(&mut tx, tenant, account).await.unwrap(), Some(segment(2, DAY, 700, 300)));
    drop(tx);
    // Days later, twice on one day.
    assert!(advance(&store, tenant, account, 2, &segment(3, DAY + 3, 1, 0)).await.unwrap());
    assert!(advance(&store, tenant, account, 3, &segment(4, DAY + 5, 2_000, 0)).await.unwrap());
    assert!(advance(&store, tenant, account, 4, &segment(5, DAY + 5, 3_000, 10)).await.unwrap());
    // The last of each day, and the one in force before a range.
    let days = |from, to| ad_sandbox::spend_days(&store, tenant, account, from, to);
    let seqs = |segments: Vec<SpendRecord>| segments.iter().map(|s| s.seq).collect::<Vec<_>>();
    assert_eq!(seqs(days(DAY - 10, DAY + 10).await.unwrap()), [2, 3, 5]);
    assert_eq!(seqs(days(DAY + 1, DAY + 4).await.unwrap()), [2, 3]);
    assert_eq!(seqs(days(DAY + 4, DAY + 4).await.unwrap()), [3]);
    assert_eq!(seqs(days(DAY + 6, DAY + 9).await.unwrap()), [5]);
    assert_eq!(days(DAY - 9, DAY - 1).await.unwrap(), []);
    // Every account's segment in force; no other tenant's.
    assert!(advance(&store, tenant, "1000000000000002", 0, &segment(1, DAY, 5, 5)).await.unwrap());
    let all = ad_sandbox::all_spend(&store, tenant).await.unwrap();
    assert_eq!(all, [("1000000000000001".to_owned(), segment(5, DAY + 5, 3_000, 10)), ("1000000000000002".to_owned(), segment(1, DAY, 5, 5))]);
    assert_eq!(ad_sandbox::all_spend(&store, TenantId(tenant.0 + 1)).await.unwrap(), []);
}

/// Two server processes (two stores on one database) advance one account
/// from many tasks, each reading the segment in force and writing over it,
/// again when it lost: every write lands once, in sequence.
async fn two_processes_advance_one_at_a_time(db: TestDb) {
    let (first, tenant) = open(&db).await;
    let second = Store::open(&db.url, &StoreOptions::default()).await.unwrap();
    let account = "1000000000000003";
    let writers_per_process = 12;
    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone()] {
        for _ in 0..writers_per_process {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for attempt in 0.. {
                    assert!(attempt < 1_000, "a writer never got through");
                    let result: Result<bool, StorageError> = async {
                        let mut tx = store.begin_write().await?;
                        let seq = ad_sandbox::spend_for_write(&mut tx, tenant, account).await?.map_or(0, |s| s.seq);
                        let applied = ad_sandbox::advance(&mut tx, tenant, account, seq, &segment(seq + 1, DAY + seq / 5, 1_000 + seq, seq)).await?;
                        if applied {
                            tx.commit().await?;
                        }
                        Ok(applied)
                    }
                    .await;
                    match result {
                        Ok(true) => return,
                        Ok(false) => {}
                        Err(error) if error.is_retryable() || matches!(error, StorageError::UniqueViolation { .. }) => {}
                        Err(error) => panic!("{error}"),
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let writes = 2 * writers_per_process;
    assert_eq!(ad_sandbox::spend(&second, tenant, account).await.unwrap(), Some(segment(writes, DAY + (writes - 1) / 5, 1_000 + writes - 1, writes - 1)));
    let days = ad_sandbox::spend_days(&first, tenant, account, DAY, DAY + 100).await.unwrap();
    assert_eq!(days.iter().map(|s| s.seq).collect::<Vec<_>>(), [5, 10, 15, 20, 24]);
}

async fn bindings_differ_from_the_start(db: TestDb) {
    let (store, tenant) = open(&db).await;
    let account = "1000000000000004";
    let write = |kind, target: &'static str, bind: bool, from_start: bool, at: i64| {
        let store = store.clone();
        async move {
            let mut tx = store.begin_write().await.unwrap();
            let changed = if bind {
                ad_sandbox::bind(&mut tx, tenant, account, kind, target, at).await.unwrap();
                true
            } else {
                ad_sandbox::unbind(&mut tx, tenant, account, kind, target, from_start, at).await.unwrap()
            };
            tx.commit().await.unwrap();
            changed
        }
    };
    let list = |kind| ad_sandbox::bindings(&store, tenant, account, kind);
    assert_eq!(list(BindingKind::Pixel).await.unwrap(), []);
    write(BindingKind::Pixel, "2000", true, false, 1).await;
    write(BindingKind::Pixel, "2000", true, false, 2).await;
    assert_eq!(list(BindingKind::Pixel).await.unwrap(), [BindingRecord { target_id: "2000".into(), bound: true, updated_at_us: 2 }]);
    assert!(write(BindingKind::Pixel, "2000", false, false, 3).await);
    assert!(!write(BindingKind::Pixel, "2000", false, false, 4).await);
    assert!(!write(BindingKind::Pixel, "2001", false, false, 4).await);
    assert_eq!(list(BindingKind::Pixel).await.unwrap(), [BindingRecord { target_id: "2000".into(), bound: false, updated_at_us: 3 }]);
    // Bound from the start (the agency's Business Manager): unbound once.
    assert!(write(BindingKind::Business, "777", false, true, 5).await);
    assert!(!write(BindingKind::Business, "777", false, true, 6).await);
    write(BindingKind::Business, "777", true, true, 7).await;
    assert!(write(BindingKind::Business, "777", false, true, 8).await);
    assert_eq!(list(BindingKind::Business).await.unwrap(), [BindingRecord { target_id: "777".into(), bound: false, updated_at_us: 8 }]);
    assert_eq!(list(BindingKind::Pixel).await.unwrap().len(), 1);
}

async fn constraints_guard_spend(db: TestDb) {
    let (store, tenant) = open(&db).await;
    let refused = |check: Check, result: Result<bool, StorageError>| match result {
        Err(StorageError::CheckViolation { check: found, .. }) => assert_eq!(found, check),
        other => panic!("{check:?}: {other:?}"),
    };
    refused(Check::AdSandboxSpendCap, advance(&store, tenant, "1", 0, &segment(1, DAY, 0, 0)).await);
    refused(Check::AdSandboxAmountSpent, advance(&store, tenant, "1", 0, &segment(1, DAY, 10, 11)).await);
    refused(Check::AdSandboxAmountSpent, advance(&store, tenant, "1", 0, &segment(1, DAY, 10, -1)).await);
    refused(Check::AdSandboxSpendSeq, advance(&store, tenant, "1", 0, &segment(0, DAY, 10, 1)).await);
    let lifetime_short = SpendRecord { lifetime_spent_cents: 0, ..segment(1, DAY, 10, 5) };
    refused(Check::AdSandboxLifetimeSpent, advance(&store, tenant, "1", 0, &lifetime_short).await);
    assert_eq!(ad_sandbox::spend(&store, tenant, "1").await.unwrap(), None);
}
