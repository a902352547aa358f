//! Synced ad insights: one row per ad account, breakdown, day and breakdown
//! value (table `ad_insights_daily`), written by the sync job and read by
//! the insights queries, which the domain answers from them
//! (`subledger_domain::insights`).
//!
//! The scalar metrics are columns (spend in cents); the per-action-type
//! lists are JSON text (the domain's `ActionLists`, values in hundredths),
//! read only when a query needs them. A breakdown value of several columns (`age,gender`) is
//! stored as the columns' values joined with U+001F, which no value holds
//! (the domain refuses control characters in them).

use std::borrow::Cow;
use std::sync::LazyLock;

use subledger_domain::calendar::Day;
use subledger_domain::ids::TenantId;
use subledger_domain::insights::{ActionLists, Breakdown, DailyMetrics, DailyRow, parse_day};

use crate::{Backend, RefusedValue, Result, StorageError, Store, WriteTx};

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

/// Rows per `INSERT`: 13 parameters each, 520 a statement. Not more: sqlx
/// looks up each parameter of an SQLite statement by its name, and SQLite
/// finds a name by walking the list of them, so a statement's binding costs
/// the square of its parameters (6,500 of them took 40% of a fill's time).
const ROWS_PER_STATEMENT: usize = 40;

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
    let action_lists = serde_json::to_string(&row.metrics.action_lists).expect("lists of text and integers serialize");
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

/// A row as a read's JSON gives it: an array in the order of [`read_sql`]'s
/// columns; the lists `null` when the read leaves them out.
#[derive(serde::Deserialize)]
struct StoredRow<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>, i64, i64, i64, i64, i64, i64, Option<ActionLists>);

impl StoredRow<'_> {
    fn decode(self, key: &InsightsKey<'_>) -> Result<DailyRow> {
        let StoredRow(day, breakdown_value, spend_cents, impressions, clicks, reach, inline_link_clicks, total_postbacks, action_lists) = self;
        let corrupt = |what: &str| StorageError::corrupt(format!("{what} of {}", key.place(&day)));
        let parsed_day = parse_day(&day).ok_or_else(|| corrupt("day"))?;
        let breakdown_values: Vec<String> = if key.breakdown.is_none() { Vec::new() } else { breakdown_value.split(VALUE_SEPARATOR).map(str::to_owned).collect() };
        if breakdown_values.len() != key.column_count() {
            return Err(corrupt("breakdown value"));
        }
        let metrics = DailyMetrics { spend_cents, impressions, clicks, reach, inline_link_clicks, total_postbacks, action_lists: action_lists.unwrap_or_default() };
        Ok(DailyRow { day: parsed_day, breakdown_values, metrics })
    }
}

/// How a read gives the stored days of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
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

impl DaysRead {
    const ALL: [DaysRead; 4] = [DaysRead::Daily, DaysRead::DailyWithoutLists, DaysRead::SummedOverRange, DaysRead::SummedPerMonth];
}

/// The stored rows of one key over `since..=until`, in no particular order,
/// as `how` says. More than [`READ_ROWS_MAX`] rows is refused.
///
/// The rows come as one JSON text, built by the database: sqlx hands each
/// row of an SQLite read from the connection's thread to the caller's, so a
/// read of 365 rows cost 365 hand-offs, most of its time.
pub async fn read_days(store: &Store, key: &InsightsKey<'_>, since: Day, until: Day, how: DaysRead) -> Result<Vec<DailyRow>> {
    static STATEMENTS: LazyLock<[[String; 4]; 2]> = LazyLock::new(|| [Backend::Sqlite, Backend::Postgres].map(|backend| DaysRead::ALL.map(|how| read_sql(backend, how))));
    let sql = &STATEMENTS[usize::from(store.backend() == Backend::Postgres)][how as usize];
    let text: String = sqlx::query_scalar(sql)
        .bind(key.tenant.0)
        .bind(key.account_id)
        .bind(key.breakdown_key())
        .bind(since.to_string())
        .bind(until.to_string())
        .bind(READ_ROWS_MAX as i64 + 1)
        .fetch_one(store.reader())
        .await?;
    let place = || format!("{} to {until}", key.place(&since.to_string()));
    let rows: Vec<StoredRow<'_>> = serde_json::from_str(&text).map_err(|e| StorageError::corrupt(format!("{}: {e}", place())))?;
    if rows.len() > READ_ROWS_MAX {
        return Err(StorageError::ValueRefused { kind: RefusedValue::Number, detail: format!("{} has more than {READ_ROWS_MAX} rows", place()) });
    }
    rows.into_iter().map(|row| row.decode(key)).collect()
}

/// The statement of a read: the rows of `how` (sums cast back to `BIGINT`:
/// PostgreSQL's `SUM` of `bigint` is `numeric`), as one JSON array of
/// arrays, `[]` when there are none.
fn read_sql(backend: Backend, how: DaysRead) -> String {
    const METRICS: [&str; 6] = ["spend_cents", "impressions", "clicks", "reach", "inline_link_clicks", "total_postbacks"];
    let filter = "FROM ad_insights_daily WHERE tenant_id = $1 AND account_id = $2 AND breakdown = $3 AND day BETWEEN $4 AND $5";
    let summed = || METRICS.iter().map(|m| format!("CAST(SUM({m}) AS BIGINT) AS {m}")).collect::<Vec<_>>().join(", ");
    let no_lists = "CAST(NULL AS TEXT) AS action_lists";
    let rows = match how {
        DaysRead::Daily => format!("SELECT day, breakdown_value, {}, action_lists {filter} LIMIT $6", METRICS.join(", ")),
        DaysRead::DailyWithoutLists => format!("SELECT day, breakdown_value, {}, {no_lists} {filter} LIMIT $6", METRICS.join(", ")),
        DaysRead::SummedOverRange => format!("SELECT MIN(day) AS day, breakdown_value, {}, {no_lists} {filter} GROUP BY breakdown_value LIMIT $6", summed()),
        DaysRead::SummedPerMonth => format!("SELECT MIN(day) AS day, breakdown_value, {}, {no_lists} {filter} GROUP BY SUBSTR(day, 1, 7), breakdown_value LIMIT $6", summed()),
    };
    let columns = format!("r.day, r.breakdown_value, {}", METRICS.map(|m| format!("r.{m}")).join(", "));
    match backend {
        Backend::Sqlite => format!("SELECT COALESCE(json_group_array(json_array({columns}, json(r.action_lists))), '[]') FROM ({rows}) AS r"),
        Backend::Postgres => format!("SELECT COALESCE(json_agg(json_build_array({columns}, r.action_lists::json))::text, '[]') FROM ({rows}) AS r"),
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
