//! Synced ad insights: one row per ad account, breakdown, day and breakdown
//! value (table `ad_insights_daily`), written by the sync job and read by
//! the insights queries, which the domain answers from them
//! (`subledger_domain::insights`).
//!
//! The scalar metrics are columns (spend in cents); the per-action-type
//! lists are kept as Graph writes them, JSON text, and read only when a
//! query needs them. A breakdown value of several columns (`age,gender`) is
//! stored as the columns' values joined with U+001F, which no value holds
//! (the domain refuses control characters in them).

use std::sync::LazyLock;

use serde_json::{Map, Value};
use subledger_domain::calendar::Day;
use subledger_domain::ids::TenantId;
use subledger_domain::insights::{ActionLists, Breakdown, DailyMetrics, DailyRow, parse_day};

use crate::{RefusedValue, Result, StorageError, Store, WriteTx};

/// Whose rows: one ad account of a tenant, as a whole (`breakdown` `None`)
/// or by one synced breakdown.
#[derive(Debug, Clone, Copy)]
pub struct InsightsKey<'a> {
    pub tenant: TenantId,
    /// Digits, without Graph's `act_`.
    pub account_id: &'a str,
    pub breakdown: Option<Breakdown>,
}

impl InsightsKey<'_> {
    /// `''` for the account as a whole, else the breakdown's key.
    fn breakdown_key(&self) -> &'static str {
        self.breakdown.map_or("", Breakdown::key)
    }

    fn column_count(&self) -> usize {
        self.breakdown.map_or(0, Breakdown::column_count)
    }

    fn place(&self, day: &str) -> String {
        format!("the insights of ad account {} ({}) on {day}", self.account_id, self.breakdown.map_or("no breakdown", Breakdown::key))
    }
}

/// Between the values of a breakdown of several columns.
const VALUE_SEPARATOR: char = '\u{1f}';

/// The most rows one read returns. A query reads one account's days of one
/// breakdown over at most 37 months (the domain's rule), which is below this
/// for any real account; past it the read is refused instead of filling memory.
pub const READ_ROWS_MAX: usize = 250_000;

/// The columns of a row, in the order statements bind them.
const COLUMNS: [&str; 13] =
    ["tenant_id", "account_id", "breakdown", "day", "breakdown_value", "spend_cents", "impressions", "clicks", "reach", "inline_link_clicks", "total_postbacks", "action_lists", "synced_at_us"];

/// The columns a later sync of the same key overwrites.
const SYNCED_COLUMNS: [&str; 8] = ["spend_cents", "impressions", "clicks", "reach", "inline_link_clicks", "total_postbacks", "action_lists", "synced_at_us"];

/// Rows per `INSERT`: 13 parameters each, 6,500 a statement, well within
/// both backends' limits (SQLite 32,766, PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 500;

/// `INSERT … VALUES (…), (…) ON CONFLICT … DO UPDATE` for `rows` rows.
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let parameters: Vec<String> = (1..=COLUMNS.len()).map(|column| format!("${}", row * COLUMNS.len() + column)).collect();
            format!("({})", parameters.join(", "))
        })
        .collect();
    let updates: Vec<String> = SYNCED_COLUMNS.iter().map(|column| format!("{column} = excluded.{column}")).collect();
    format!(
        "INSERT INTO ad_insights_daily ({}) VALUES {} ON CONFLICT (tenant_id, account_id, breakdown, day, breakdown_value) DO UPDATE SET {}",
        COLUMNS.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

/// The statement of a full chunk, built once.
static UPSERT_FULL: LazyLock<String> = LazyLock::new(|| upsert_sql(ROWS_PER_STATEMENT));

/// A row's values as stored.
struct Encoded<'a> {
    day: String,
    breakdown_value: String,
    metrics: &'a DailyMetrics,
    action_lists: String,
}

fn encode<'a>(key: &InsightsKey<'_>, row: &'a DailyRow) -> Result<Encoded<'a>> {
    let day = row.day.to_string();
    if row.breakdown_values.len() != key.column_count() || row.breakdown_values.iter().any(|value| value.contains(VALUE_SEPARATOR)) {
        return Err(StorageError::ValueRefused { kind: RefusedValue::Text, detail: format!("{} has {} breakdown values, or one holds U+001F", key.place(&day), row.breakdown_values.len()) });
    }
    let breakdown_value = row.breakdown_values.join(&VALUE_SEPARATOR.to_string());
    let action_lists = Value::Object(row.metrics.action_lists.to_graph()).to_string();
    Ok(Encoded { day, breakdown_value, metrics: &row.metrics, action_lists })
}

/// Writes the rows of one key, each replacing the stored row of its day and
/// breakdown value if there is one. A day and breakdown value may appear
/// once in `rows`.
pub async fn upsert_days(tx: &mut WriteTx, key: &InsightsKey<'_>, rows: &[DailyRow], synced_at_us: i64) -> Result<()> {
    let encoded: Vec<Encoded<'_>> = rows.iter().map(|row| encode(key, row)).collect::<Result<_>>()?;
    let breakdown = key.breakdown_key();
    for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
        let partial;
        let sql = if chunk.len() == ROWS_PER_STATEMENT {
            UPSERT_FULL.as_str()
        } else {
            partial = upsert_sql(chunk.len());
            partial.as_str()
        };
        let mut query = sqlx::query(sql);
        for row in chunk {
            let m = row.metrics;
            query = query
                .bind(key.tenant.0)
                .bind(key.account_id)
                .bind(breakdown)
                .bind(row.day.as_str())
                .bind(row.breakdown_value.as_str())
                .bind(m.spend_cents)
                .bind(m.impressions)
                .bind(m.clicks)
                .bind(m.reach)
                .bind(m.inline_link_clicks)
                .bind(m.total_postbacks)
                .bind(row.action_lists.as_str())
                .bind(synced_at_us);
        }
        query.execute(tx.conn()).await?;
    }
    Ok(())
}

/// Deletes the stored rows of one key over `since..=until`; says how many.
pub async fn delete_days(tx: &mut WriteTx, key: &InsightsKey<'_>, since: Day, until: Day) -> Result<u64> {
    let done = sqlx::query("DELETE FROM ad_insights_daily WHERE tenant_id = $1 AND account_id = $2 AND breakdown = $3 AND day BETWEEN $4 AND $5")
        .bind(key.tenant.0)
        .bind(key.account_id)
        .bind(key.breakdown_key())
        .bind(since.to_string())
        .bind(until.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

/// Makes the stored rows of one key over `since..=until` exactly `rows`
/// (days within the range): a day the platform no longer reports is gone,
/// as it is upstream.
pub async fn replace_days(tx: &mut WriteTx, key: &InsightsKey<'_>, since: Day, until: Day, rows: &[DailyRow], synced_at_us: i64) -> Result<()> {
    delete_days(tx, key, since, until).await?;
    upsert_days(tx, key, rows, synced_at_us).await
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    day: String,
    breakdown_value: String,
    spend_cents: i64,
    impressions: i64,
    clicks: i64,
    reach: i64,
    inline_link_clicks: i64,
    total_postbacks: i64,
    /// Empty when the read left the lists out.
    action_lists: String,
}

impl StoredRow {
    fn decode(self, key: &InsightsKey<'_>) -> Result<DailyRow> {
        let corrupt = |what: &str| StorageError::corrupt(format!("{what} of {}", key.place(&self.day)));
        let day = parse_day(&self.day).ok_or_else(|| corrupt("day"))?;
        let breakdown_values: Vec<String> = if key.breakdown.is_none() { Vec::new() } else { self.breakdown_value.split(VALUE_SEPARATOR).map(str::to_owned).collect() };
        if breakdown_values.len() != key.column_count() {
            return Err(corrupt("breakdown value"));
        }
        let action_lists = if self.action_lists.is_empty() {
            ActionLists::default()
        } else {
            let lists: Map<String, Value> = serde_json::from_str(&self.action_lists).map_err(|_| corrupt("action lists"))?;
            ActionLists::from_graph(&lists).map_err(|e| corrupt(&format!("action lists ({e})")))?
        };
        let metrics = DailyMetrics {
            spend_cents: self.spend_cents,
            impressions: self.impressions,
            clicks: self.clicks,
            reach: self.reach,
            inline_link_clicks: self.inline_link_clicks,
            total_postbacks: self.total_postbacks,
            action_lists,
        };
        Ok(DailyRow { day, breakdown_values, metrics })
    }
}

/// How a read gives the stored days of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaysRead {
    /// Every stored day (and breakdown value), with its action lists.
    Daily,
    /// Every stored day, its lists left empty (not read).
    DailyWithoutLists,
    /// One row per breakdown value: the sums of its days over the range,
    /// dated by its first day; lists left empty. The database adds up, so
    /// a read of many days moves a few rows.
    SummedOverRange,
    /// One row per calendar month and breakdown value, as
    /// [`DaysRead::SummedOverRange`] within each month.
    SummedPerMonth,
}

/// The stored rows of one key over `since..=until`, in no particular order,
/// as `how` says. More than [`READ_ROWS_MAX`] rows is refused.
pub async fn read_days(store: &Store, key: &InsightsKey<'_>, since: Day, until: Day, how: DaysRead) -> Result<Vec<DailyRow>> {
    static DAILY: LazyLock<String> = LazyLock::new(|| read_sql(DaysRead::Daily));
    static DAILY_WITHOUT_LISTS: LazyLock<String> = LazyLock::new(|| read_sql(DaysRead::DailyWithoutLists));
    static OVER_RANGE: LazyLock<String> = LazyLock::new(|| read_sql(DaysRead::SummedOverRange));
    static PER_MONTH: LazyLock<String> = LazyLock::new(|| read_sql(DaysRead::SummedPerMonth));
    let sql = match how {
        DaysRead::Daily => &DAILY,
        DaysRead::DailyWithoutLists => &DAILY_WITHOUT_LISTS,
        DaysRead::SummedOverRange => &OVER_RANGE,
        DaysRead::SummedPerMonth => &PER_MONTH,
    };
    let rows: Vec<StoredRow> = sqlx::query_as(sql)
        .bind(key.tenant.0)
        .bind(key.account_id)
        .bind(key.breakdown_key())
        .bind(since.to_string())
        .bind(until.to_string())
        .bind(READ_ROWS_MAX as i64 + 1)
        .fetch_all(store.reader())
        .await?;
    if rows.len() > READ_ROWS_MAX {
        return Err(StorageError::ValueRefused { kind: RefusedValue::Number, detail: format!("{} to {until} has more than {READ_ROWS_MAX} rows", key.place(&since.to_string())) });
    }
    rows.into_iter().map(|row| row.decode(key)).collect()
}

/// The statement of a read: the same columns whichever `how`, sums cast
/// back to `BIGINT` (PostgreSQL's `SUM` of `bigint` is `numeric`).
fn read_sql(how: DaysRead) -> String {
    const METRICS: [&str; 6] = ["spend_cents", "impressions", "clicks", "reach", "inline_link_clicks", "total_postbacks"];
    let filter = "FROM ad_insights_daily WHERE tenant_id = $1 AND account_id = $2 AND breakdown = $3 AND day BETWEEN $4 AND $5";
    let summed = || METRICS.iter().map(|m| format!("CAST(SUM({m}) AS BIGINT) AS {m}")).collect::<Vec<_>>().join(", ");
    match how {
        DaysRead::Daily => format!("SELECT day, breakdown_value, {}, action_lists {filter} LIMIT $6", METRICS.join(", ")),
        DaysRead::DailyWithoutLists => format!("SELECT day, breakdown_value, {}, '' AS action_lists {filter} LIMIT $6", METRICS.join(", ")),
        DaysRead::SummedOverRange => format!("SELECT MIN(day) AS day, breakdown_value, {}, '' AS action_lists {filter} GROUP BY breakdown_value LIMIT $6", summed()),
        DaysRead::SummedPerMonth => {
            format!("SELECT MIN(day) AS day, breakdown_value, {}, '' AS action_lists {filter} GROUP BY SUBSTR(day, 1, 7), breakdown_value LIMIT $6", summed())
        }
    }
}

/// What an insights answer says of the ad account itself, as last synced
/// into `ad_accounts`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountDetails {
    pub name: String,
    pub currency: String,
}

/// The ad account's name and currency; `None` when the tenant has no such account.
pub async fn account_details(store: &Store, tenant: TenantId, account_id: &str) -> Result<Option<AccountDetails>> {
    Ok(sqlx::query_as("SELECT name, currency FROM ad_accounts WHERE tenant_id = $1 AND id = $2").bind(tenant.0).bind(account_id).fetch_optional(store.reader()).await?)
}
