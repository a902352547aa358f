//! Synced ad insights on SQLite and (with `SUBLEDGER_TEST_POSTGRES_URL`)
//! PostgreSQL: daily rows written and read back (with and without their
//! action lists), by tenant, account, breakdown and range; a later write of
//! the same day replaces it, a replaced window loses the days no longer
//! reported, batches past one statement, the checks that guard the rows, and
//! the account's name and currency read from `ad_accounts`.

#[macro_use]
mod support;

use sqlx::Connection;
use subledger_domain::calendar::Day;
use subledger_domain::ids::TenantId;
use subledger_domain::insights::{ActionLists, ActionStats, Breakdown, DailyMetrics, DailyRow, parse_day};
use subledger_storage::ad_insights::{self, AccountDetails, DaysRead, InsightsKey};
use subledger_storage::tenants::{self, NewTenant};
use subledger_storage::{Check, RefusedValue, StorageError, Store, StoreOptions};
use support::TestDb;

const T0_US: i64 = 1_700_000_000_000_000;

on_both_backends!(
    daily_rows_round_trip_by_key_and_range,
    summed_reads_add_up_in_the_database,
    later_syncs_replace_days,
    large_batches_and_refused_rows,
    corrupt_rows_are_refused_when_read,
    account_details_come_from_ad_accounts
);

async fn open(db: &TestDb) -> (Store, TenantId, TenantId) {
    let store = Store::open(&db.url, &StoreOptions::default()).await.expect("the store opens");
    let mut tx = store.begin_write().await.unwrap();
    let mut ids = Vec::new();
    for name in ["agency-a", "agency-b"] {
        let tenant = NewTenant { public_id: name, name, timezone: "Asia/Shanghai", app_id: name, app_key: "key", api_token_sha256: name, account_limit: 10, default_daily_quota: 100, now_us: T0_US };
        ids.push(tenants::insert(&mut tx, &tenant).await.unwrap());
    }
    tx.commit().await.unwrap();
    (store, ids[0], ids[1])
}

fn day(text: &str) -> Day {
    parse_day(text).unwrap()
}

fn days_from(first: &str, count: usize) -> impl Iterator<Item = Day> {
    std::iter::successors(Some(day(first)), |on| Some(on.next())).take(count)
}

fn metrics(seed: i64) -> DailyMetrics {
    DailyMetrics {
        spend_cents: 100 * seed + 1,
        impressions: 1_000 + seed,
        clicks: 10 + seed,
        reach: 900 + seed,
        inline_link_clicks: seed,
        total_postbacks: seed % 3,
        action_lists: ActionLists::default(),
    }
}

fn with_lists(seed: i64) -> DailyMetrics {
    let stats = |entries: &[(&str, i64)]| ActionStats::new(entries.iter().map(|(t, v)| ((*t).to_owned(), *v))).unwrap();
    DailyMetrics {
        action_lists: ActionLists {
            actions: stats(&[("link_click", 100 * seed), ("omni_purchase", 150)]),
            action_values: stats(&[("omni_purchase", 12_345)]),
            conversions: ActionStats::default(),
            conversion_values: stats(&[("purchase", 1)]),
        },
        ..metrics(seed)
    }
}

fn row(on: Day, values: &[&str], metrics: DailyMetrics) -> DailyRow {
    DailyRow { day: on, breakdown_values: values.iter().map(|v| (*v).to_owned()).collect(), metrics }
}

/// Rows sorted as the tests compare them (reads come in no particular order).
fn sorted(mut rows: Vec<DailyRow>) -> Vec<DailyRow> {
    rows.sort_by(|a, b| (a.day, &a.breakdown_values).cmp(&(b.day, &b.breakdown_values)));
    rows
}

async fn daily_rows_round_trip_by_key_and_range(db: TestDb) {
    let (store, tenant, other_tenant) = open(&db).await;
    let backend = store.backend().name();
    let plain = InsightsKey { tenant, account_id: "1001", breakdown: None };
    let by_age_gender = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("age,gender") };
    let by_region = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("region") };
    let plain_rows: Vec<DailyRow> = days_from("2024-04-28", 10).enumerate().map(|(i, on)| row(on, &[], with_lists(i as i64))).collect();
    let age_gender_rows: Vec<DailyRow> =
        days_from("2024-05-01", 3).flat_map(|on| [row(on, &["18-24", "female"], with_lists(1)), row(on, &["18-24", "male"], metrics(2)), row(on, &["65+", "unknown"], metrics(3))]).collect();
    // A region's name may hold a comma.
    let region_rows = vec![row(day("2024-05-01"), &["Washington, District of Columbia"], metrics(4))];

    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &plain, &plain_rows, T0_US).await.unwrap();
    ad_insights::upsert_days(&mut tx, &by_age_gender, &age_gender_rows, T0_US).await.unwrap();
    ad_insights::upsert_days(&mut tx, &by_region, &region_rows, T0_US).await.unwrap();
    // The same days of another account and of another tenant.
    ad_insights::upsert_days(&mut tx, &InsightsKey { account_id: "1002", ..plain }, &plain_rows[..2], T0_US).await.unwrap();
    ad_insights::upsert_days(&mut tx, &InsightsKey { tenant: other_tenant, ..plain }, &plain_rows[..2], T0_US).await.unwrap();
    tx.commit().await.unwrap();

    let read = |key: InsightsKey<'static>, since: &str, until: &str, lists: bool| {
        let store = store.clone();
        let (since, until) = (day(since), day(until));
        let how = if lists { DaysRead::Daily } else { DaysRead::DailyWithoutLists };
        async move { sorted(ad_insights::read_days(&store, &key, since, until, how).await.unwrap()) }
    };
    let plain: InsightsKey<'static> = InsightsKey { tenant, account_id: "1001", breakdown: None };
    // Everything of the key, as written.
    assert_eq!(read(plain, "2024-01-01", "2024-12-31", true).await, plain_rows, "{backend}");
    // A range: its days only, both ends included.
    assert_eq!(read(plain, "2024-04-30", "2024-05-02", true).await, plain_rows[2..5], "{backend}");
    // Without the lists: the same rows, lists empty.
    let without: Vec<DailyRow> = plain_rows[2..5].iter().map(|r| DailyRow { metrics: DailyMetrics { action_lists: ActionLists::default(), ..r.metrics.clone() }, ..r.clone() }).collect();
    assert_eq!(read(plain, "2024-04-30", "2024-05-02", false).await, without, "{backend}");
    // Breakdowns keep their columns apart, and their own rows.
    let by_age_gender: InsightsKey<'static> = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("age,gender") };
    assert_eq!(read(by_age_gender, "2024-05-01", "2024-05-03", true).await, sorted(age_gender_rows.clone()), "{backend}");
    let by_region: InsightsKey<'static> = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("region") };
    assert_eq!(read(by_region, "2024-05-01", "2024-05-01", true).await, region_rows, "{backend}");
    assert!(read(InsightsKey { breakdown: Breakdown::from_key("country"), ..plain }, "2024-01-01", "2024-12-31", true).await.is_empty(), "{backend}");
    // Another account's and another tenant's rows are theirs.
    assert_eq!(read(InsightsKey { account_id: "1002", ..plain }, "2024-01-01", "2024-12-31", true).await.len(), 2, "{backend}");
    assert_eq!(read(InsightsKey { tenant: other_tenant, ..plain }, "2024-01-01", "2024-12-31", true).await.len(), 2, "{backend}");
    assert!(read(InsightsKey { account_id: "1003", ..plain }, "2024-01-01", "2024-12-31", true).await.is_empty(), "{backend}");
}

async fn summed_reads_add_up_in_the_database(db: TestDb) {
    let (store, tenant, _) = open(&db).await;
    let backend = store.backend().name();
    let key = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("age,gender") };
    // 2024-04-25 ..= 2024-05-06: two values a day, the second only on even days.
    let days: Vec<Day> = days_from("2024-04-25", 12).collect();
    let rows: Vec<DailyRow> = days
        .iter()
        .enumerate()
        .flat_map(|(i, on)| {
            let mut rows = vec![row(*on, &["18-24", "female"], with_lists(i as i64))];
            if i % 2 == 0 {
                rows.push(row(*on, &["25-34", "male"], metrics(i as i64)));
            }
            rows
        })
        .collect();
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &key, &rows, T0_US).await.unwrap();
    tx.commit().await.unwrap();
    let sum = |rows: &[&DailyRow], on: Day, values: &[String]| {
        let total = |f: fn(&DailyMetrics) -> i64| rows.iter().map(|r| f(&r.metrics)).sum::<i64>();
        DailyRow {
            day: on,
            breakdown_values: values.to_vec(),
            metrics: DailyMetrics {
                spend_cents: total(|m| m.spend_cents),
                impressions: total(|m| m.impressions),
                clicks: total(|m| m.clicks),
                reach: total(|m| m.reach),
                inline_link_clicks: total(|m| m.inline_link_clicks),
                total_postbacks: total(|m| m.total_postbacks),
                action_lists: ActionLists::default(),
            },
        }
    };
    // Over 04-27 ..= 05-05: one row per value, dated by its first day in the range.
    let (since, until) = (day("2024-04-27"), day("2024-05-05"));
    let expected: Vec<DailyRow> = ["18-24\u{1f}female", "25-34\u{1f}male"]
        .iter()
        .map(|joined| {
            let values: Vec<String> = joined.split('\u{1f}').map(str::to_owned).collect();
            let of: Vec<&DailyRow> = rows.iter().filter(|r| r.breakdown_values == values && since <= r.day && r.day <= until).collect();
            sum(&of, of[0].day, &values)
        })
        .collect();
    assert_eq!(sorted(ad_insights::read_days(&store, &key, since, until, DaysRead::SummedOverRange).await.unwrap()), expected, "{backend}");
    // Per month: April's and May's rows of each value.
    let per_month = sorted(ad_insights::read_days(&store, &key, since, until, DaysRead::SummedPerMonth).await.unwrap());
    let seen: Vec<(String, String, i64)> = per_month.iter().map(|r| (r.day.to_string(), r.breakdown_values.join("|"), r.metrics.spend_cents)).collect();
    let spend = |values: &[&str], from: &str, to: &str| rows.iter().filter(|r| r.breakdown_values == values && day(from) <= r.day && r.day <= day(to)).map(|r| r.metrics.spend_cents).sum::<i64>();
    assert_eq!(
        seen,
        [
            ("2024-04-27".to_owned(), "18-24|female".to_owned(), spend(&["18-24", "female"], "2024-04-27", "2024-04-30")),
            ("2024-04-27".to_owned(), "25-34|male".to_owned(), spend(&["25-34", "male"], "2024-04-27", "2024-04-30")),
            ("2024-05-01".to_owned(), "18-24|female".to_owned(), spend(&["18-24", "female"], "2024-05-01", "2024-05-05")),
            ("2024-05-01".to_owned(), "25-34|male".to_owned(), spend(&["25-34", "male"], "2024-05-01", "2024-05-05")),
        ],
        "{backend}"
    );
    // Nothing stored in the range: no rows.
    assert!(ad_insights::read_days(&store, &key, day("2023-01-01"), day("2023-12-31"), DaysRead::SummedOverRange).await.unwrap().is_empty(), "{backend}");
    // A sum past i64 is refused as a number, on both backends.
    let plain = InsightsKey { tenant, account_id: "1001", breakdown: None };
    let huge = [row(day("2024-05-01"), &[], DailyMetrics { spend_cents: i64::MAX, ..metrics(1) }), row(day("2024-05-02"), &[], metrics(1))];
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &plain, &huge, T0_US).await.unwrap();
    tx.commit().await.unwrap();
    let error = ad_insights::read_days(&store, &plain, day("2024-05-01"), day("2024-05-02"), DaysRead::SummedOverRange).await.unwrap_err();
    assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{backend}: {error:?}");
}

async fn later_syncs_replace_days(db: TestDb) {
    let (store, tenant, _) = open(&db).await;
    let backend = store.backend().name();
    let key = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("country") };
    let first: Vec<DailyRow> = days_from("2024-05-01", 5).flat_map(|on| [row(on, &["US"], metrics(1)), row(on, &["DE"], metrics(2))]).collect();
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &key, &first, T0_US).await.unwrap();
    tx.commit().await.unwrap();

    // An upsert of a day replaces that day's value, and leaves the others.
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &key, &[row(day("2024-05-01"), &["US"], with_lists(9))], T0_US + 1).await.unwrap();
    tx.commit().await.unwrap();
    let rows = ad_insights::read_days(&store, &key, day("2024-05-01"), day("2024-05-01"), DaysRead::Daily).await.unwrap();
    assert_eq!(sorted(rows), [row(day("2024-05-01"), &["DE"], metrics(2)), row(day("2024-05-01"), &["US"], with_lists(9))], "{backend}");

    // Replacing 05-02..05-04 with only FR on 05-03: the rest of that window is gone, the days around it stay.
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::replace_days(&mut tx, &key, day("2024-05-02"), day("2024-05-04"), &[row(day("2024-05-03"), &["FR"], metrics(7))], T0_US + 2).await.unwrap();
    tx.commit().await.unwrap();
    let rows = sorted(ad_insights::read_days(&store, &key, day("2024-05-01"), day("2024-05-05"), DaysRead::DailyWithoutLists).await.unwrap());
    let seen: Vec<(String, String)> = rows.iter().map(|r| (r.day.to_string(), r.breakdown_values.join("|"))).collect();
    let expected = [("2024-05-01", "DE"), ("2024-05-01", "US"), ("2024-05-03", "FR"), ("2024-05-05", "DE"), ("2024-05-05", "US")];
    assert_eq!(seen, expected.map(|(d, v)| (d.to_owned(), v.to_owned())), "{backend}");
    // A rolled-back replacement changes nothing.
    let mut tx = store.begin_write().await.unwrap();
    assert_eq!(ad_insights::delete_days(&mut tx, &key, day("2024-05-01"), day("2024-05-31")).await.unwrap(), 5, "{backend}");
    tx.rollback().await.unwrap();
    assert_eq!(ad_insights::read_days(&store, &key, day("2024-05-01"), day("2024-05-05"), DaysRead::DailyWithoutLists).await.unwrap().len(), 5, "{backend}");
}

async fn large_batches_and_refused_rows(db: TestDb) {
    let (store, tenant, _) = open(&db).await;
    let backend = store.backend().name();
    let key = InsightsKey { tenant, account_id: "1001", breakdown: Breakdown::from_key("region") };
    // 1,203 rows: more than two statements' worth.
    let rows: Vec<DailyRow> = days_from("2024-01-01", 401).flat_map(|on| (0..3).map(move |r| row(on, &[&format!("R{r}")], metrics(r)))).collect();
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &key, &rows, T0_US).await.unwrap();
    tx.commit().await.unwrap();
    let read = ad_insights::read_days(&store, &key, day("2024-01-01"), day("2025-12-31"), DaysRead::Daily).await.unwrap();
    assert_eq!(sorted(read), sorted(rows), "{backend}");

    // A negative metric is refused by the table's check, and nothing of the batch is written.
    let plain = InsightsKey { tenant, account_id: "1002", breakdown: None };
    let mut tx = store.begin_write().await.unwrap();
    let bad = [row(day("2024-05-01"), &[], metrics(1)), row(day("2024-05-02"), &[], DailyMetrics { clicks: -1, ..metrics(1) })];
    let error = ad_insights::upsert_days(&mut tx, &plain, &bad, T0_US).await.unwrap_err();
    assert!(matches!(error, StorageError::CheckViolation { check: Check::AdInsightsMetrics, .. }), "{backend}: {error:?}");
    drop(tx);
    assert!(ad_insights::read_days(&store, &plain, day("2024-05-01"), day("2024-05-02"), DaysRead::DailyWithoutLists).await.unwrap().is_empty(), "{backend}");

    // Breakdown values that do not fit the key are refused before the database sees them.
    let mut tx = store.begin_write().await.unwrap();
    for values in [&[][..], &["18-24"][..], &["18\u{1f}24", "male"][..]] {
        let key = InsightsKey { tenant, account_id: "1002", breakdown: Breakdown::from_key("age,gender") };
        let error = ad_insights::upsert_days(&mut tx, &key, &[row(day("2024-05-01"), values, metrics(1))], T0_US).await.unwrap_err();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Text, .. }), "{backend}: {values:?} {error:?}");
    }
    let error = ad_insights::upsert_days(&mut tx, &plain, &[row(day("2024-05-01"), &["US"], metrics(1))], T0_US).await.unwrap_err();
    assert!(matches!(error, StorageError::ValueRefused { .. }), "{backend}: {error:?}");
}

async fn corrupt_rows_are_refused_when_read(db: TestDb) {
    let (store, tenant, _) = open(&db).await;
    let backend = store.backend().name();
    let key = InsightsKey { tenant, account_id: "1001", breakdown: None };
    let mut tx = store.begin_write().await.unwrap();
    ad_insights::upsert_days(&mut tx, &key, &[row(day("2024-05-01"), &[], with_lists(1))], T0_US).await.unwrap();
    tx.commit().await.unwrap();
    // Written behind storage's back: lists that break a list's rules, then a day that is no day.
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    for (set, what) in [("action_lists = '{\"actions\": [[\"link_click\", -5]]}'", "lists"), ("action_lists = '{}', day = '2024-05-32'", "day")] {
        sqlx::query(&format!("UPDATE ad_insights_daily SET {set}")).execute(&mut conn).await.unwrap();
        let since = if what == "day" { "2024-05-31" } else { "2024-05-01" };
        let error = ad_insights::read_days(&store, &key, day(since), day("2024-06-30"), DaysRead::Daily).await.unwrap_err();
        assert!(matches!(error, StorageError::Corrupt(_)), "{backend} {what}: {error:?}");
    }
    conn.close().await.unwrap();
}

async fn account_details_come_from_ad_accounts(db: TestDb) {
    let (store, tenant, other_tenant) = open(&db).await;
    let backend = store.backend().name();
    // `ad_accounts` is written by the account sync (another module); its row is made here by hand.
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO ad_accounts (tenant_id, id, name, company_name, meta_status, disable_reason, currency, spend_cap_cents, amount_spent_cents, total_spent_cents, created_time_us, fields, synced_at_us)
         VALUES ($1, '1001', 'Shop A', 'Company', 1, 0, 'USD', 0, 0, 0, $2, '{}', $2)",
    )
    .bind(tenant.0)
    .bind(T0_US)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    assert_eq!(ad_insights::account_details(&store, tenant, "1001").await.unwrap(), Some(AccountDetails { name: "Shop A".to_owned(), currency: "USD".to_owned() }), "{backend}");
    assert_eq!(ad_insights::account_details(&store, other_tenant, "1001").await.unwrap(), None, "{backend}");
    assert_eq!(ad_insights::account_details(&store, tenant, "1002").await.unwrap(), None, "{backend}");
}
