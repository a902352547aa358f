//! The sandbox ad platform's state (`ad_sandbox_*`, migration 0011): each
//! tenant's epoch, each ad account's spend segment in force and the last
//! one of every day it changed, and the bindings that differ from the
//! start. The service's `ads::sandbox` decides what to write; every write
//! here applies only over what it read (a sequence number, an absent row),
//! so that several server processes can write at once.

use subledger_domain::ids::TenantId;

use crate::{Result, Store, WriteTx};

/// An account's spend segment: from `at_us` on it spends under
/// `cap_cents`, having spent so much then. `seq` counts its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SpendRecord {
    pub seq: i64,
    pub at_us: i64,
    /// The local day of `at_us` in the account's time zone.
    pub local_day: i64,
    pub cap_cents: i64,
    pub amount_spent_cents: i64,
    pub lifetime_spent_cents: i64,
}

const SPEND_COLUMNS: &str = "seq, at_us, local_day, cap_cents, amount_spent_cents, lifetime_spent_cents";

/// The tenant's epoch, if its sandbox was used before.
pub async fn epoch(store: &Store, tenant: TenantId) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT epoch_us FROM ad_sandbox_tenants WHERE tenant_id = $1").bind(tenant.0).fetch_optional(store.reader()).await?)
}

/// The tenant's epoch: `now_us` if its sandbox starts now, or the one it
/// started at (when another process started it first).
pub async fn start(tx: &mut WriteTx, tenant: TenantId, now_us: i64) -> Result<i64> {
    sqlx::query("INSERT INTO ad_sandbox_tenants (tenant_id, epoch_us, created_at_us) VALUES ($1, $2, $2) ON CONFLICT (tenant_id) DO NOTHING").bind(tenant.0).bind(now_us).execute(tx.conn()).await?;
    Ok(sqlx::query_scalar("SELECT epoch_us FROM ad_sandbox_tenants WHERE tenant_id = $1").bind(tenant.0).fetch_one(tx.conn()).await?)
}

fn spend_query() -> String {
    format!("SELECT {SPEND_COLUMNS} FROM ad_sandbox_spend WHERE tenant_id = $1 AND account_id = $2")
}

/// The account's segment in force; `None` while it is in its first one.
pub async fn spend(store: &Store, tenant: TenantId, account_id: &str) -> Result<Option<SpendRecord>> {
    Ok(sqlx::query_as(&spend_query()).bind(tenant.0).bind(account_id).fetch_optional(store.reader()).await?)
}

/// As [`spend`], inside a write (what [`advance`] will apply over).
pub async fn spend_for_write(tx: &mut WriteTx, tenant: TenantId, account_id: &str) -> Result<Option<SpendRecord>> {
    Ok(sqlx::query_as(&spend_query()).bind(tenant.0).bind(account_id).fetch_optional(tx.conn()).await?)
}

#[derive(sqlx::FromRow)]
struct AccountSpendRow {
    account_id: String,
    #[sqlx(flatten)]
    spend: SpendRecord,
}

/// The segment in force of every account of the tenant that was written to.
pub async fn all_spend(store: &Store, tenant: TenantId) -> Result<Vec<(String, SpendRecord)>> {
    let sql = format!("SELECT account_id, {SPEND_COLUMNS} FROM ad_sandbox_spend WHERE tenant_id = $1 ORDER BY account_id");
    let rows: Vec<AccountSpendRow> = sqlx::query_as(&sql).bind(tenant.0).fetch_all(store.reader()).await?;
    Ok(rows.into_iter().map(|row| (row.account_id, row.spend)).collect())
}

/// The segments needed to read the account's spend over local days
/// `from_day..=to_day`, in order: the last one of a day before the range
/// (if any), then the last one of each day in it that had a write. At most
/// one row a day, whatever the number of writes.
pub async fn spend_days(store: &Store, tenant: TenantId, account_id: &str, from_day: i64, to_day: i64) -> Result<Vec<SpendRecord>> {
    let before = format!("SELECT {SPEND_COLUMNS} FROM ad_sandbox_spend_days WHERE tenant_id = $1 AND account_id = $2 AND local_day < $3 ORDER BY local_day DESC LIMIT 1");
    let within = format!("SELECT {SPEND_COLUMNS} FROM ad_sandbox_spend_days WHERE tenant_id = $1 AND account_id = $2 AND local_day BETWEEN $3 AND $4 ORDER BY local_day");
    let mut segments: Vec<SpendRecord> = sqlx::query_as(&before).bind(tenant.0).bind(account_id).bind(from_day).fetch_optional(store.reader()).await?.into_iter().collect();
    segments.extend(sqlx::query_as::<_, SpendRecord>(&within).bind(tenant.0).bind(account_id).bind(from_day).bind(to_day).fetch_all(store.reader()).await?);
    Ok(segments)
}

const INSERT_FIRST_SPEND: &str = "INSERT INTO ad_sandbox_spend (tenant_id, account_id, seq, at_us, local_day, cap_cents, amount_spent_cents, lifetime_spent_cents)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, account_id) DO NOTHING";
const UPDATE_SPEND: &str = "UPDATE ad_sandbox_spend SET seq = $3, at_us = $4, local_day = $5, cap_cents = $6, amount_spent_cents = $7, lifetime_spent_cents = $8
     WHERE tenant_id = $1 AND account_id = $2 AND seq = $9";
const PUT_SPEND_DAY: &str = "INSERT INTO ad_sandbox_spend_days (tenant_id, account_id, seq, at_us, local_day, cap_cents, amount_spent_cents, lifetime_spent_cents)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (tenant_id, account_id, local_day) DO UPDATE SET seq = excluded.seq, at_us = excluded.at_us, cap_cents = excluded.cap_cents,
         amount_spent_cents = excluded.amount_spent_cents, lifetime_spent_cents = excluded.lifetime_spent_cents";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// A statement with the tenant, the account and a segment as `$1 … $8`.
fn segment_query<'q>(sql: &'q str, tenant: TenantId, account_id: &'q str, segment: &SpendRecord) -> AnyQuery<'q> {
    sqlx::query(sql)
        .bind(tenant.0)
        .bind(account_id)
        .bind(segment.seq)
        .bind(segment.at_us)
        .bind(segment.local_day)
        .bind(segment.cap_cents)
        .bind(segment.amount_spent_cents)
        .bind(segment.lifetime_spent_cents)
}

/// Makes `next` the account's segment in force, if the one in force is
/// still the one numbered `previous_seq` (0: none was written), and the
/// last one of its day. Returns whether it did: `false` when another write
/// came first (read again and decide again).
pub async fn advance(tx: &mut WriteTx, tenant: TenantId, account_id: &str, previous_seq: i64, next: &SpendRecord) -> Result<bool> {
    let applied = if previous_seq == 0 { segment_query(INSERT_FIRST_SPEND, tenant, account_id, next) } else { segment_query(UPDATE_SPEND, tenant, account_id, next).bind(previous_seq) };
    if applied.execute(tx.conn()).await?.rows_affected() != 1 {
        return Ok(false);
    }
    segment_query(PUT_SPEND_DAY, tenant, account_id, next).execute(tx.conn()).await?;
    Ok(true)
}

/// What an ad account is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// A Business Manager it is shared with.
    Business,
    /// A pixel shared with it.
    Pixel,
}

impl BindingKind {
    fn as_str(self) -> &'static str {
        match self {
            BindingKind::Business => "business",
            BindingKind::Pixel => "pixel",
        }
    }
}

/// A binding that differs from the start, or was confirmed since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRecord {
    pub target_id: String,
    pub bound: bool,
    pub updated_at_us: i64,
}

/// The account's bindings of a kind that were written, by target id.
pub async fn bindings(store: &Store, tenant: TenantId, account_id: &str, kind: BindingKind) -> Result<Vec<BindingRecord>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as("SELECT target_id, bound, updated_at_us FROM ad_sandbox_bindings WHERE tenant_id = $1 AND account_id = $2 AND kind = $3 ORDER BY target_id")
        .bind(tenant.0)
        .bind(account_id)
        .bind(kind.as_str())
        .fetch_all(store.reader())
        .await?;
    Ok(rows.into_iter().map(|(target_id, bound, updated_at_us)| BindingRecord { target_id, bound: bound == 1, updated_at_us }).collect())
}

/// A statement with the tenant, the account, the kind, the target and the
/// instant as `$1 … $5`.
fn binding_query<'q>(sql: &'q str, tenant: TenantId, account_id: &'q str, kind: BindingKind, target_id: &'q str, now_us: i64) -> AnyQuery<'q> {
    sqlx::query(sql).bind(tenant.0).bind(account_id).bind(kind.as_str()).bind(target_id).bind(now_us)
}

/// Binds the account to the target (again, harmlessly, if it was).
pub async fn bind(tx: &mut WriteTx, tenant: TenantId, account_id: &str, kind: BindingKind, target_id: &str, now_us: i64) -> Result<()> {
    let sql = "INSERT INTO ad_sandbox_bindings (tenant_id, account_id, kind, target_id, bound, updated_at_us) VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (tenant_id, account_id, kind, target_id) DO UPDATE SET bound = 1, updated_at_us = excluded.updated_at_us";
    binding_query(sql, tenant, account_id, kind, target_id, now_us).execute(tx.conn()).await?;
    Ok(())
}

/// Unbinds the account from the target if it is bound: by a row that says
/// so, or, with no row, when `bound_from_start`. Returns whether it was.
pub async fn unbind(tx: &mut WriteTx, tenant: TenantId, account_id: &str, kind: BindingKind, target_id: &str, bound_from_start: bool, now_us: i64) -> Result<bool> {
    let sql = "UPDATE ad_sandbox_bindings SET bound = 0, updated_at_us = $5 WHERE tenant_id = $1 AND account_id = $2 AND kind = $3 AND target_id = $4 AND bound = 1";
    if binding_query(sql, tenant, account_id, kind, target_id, now_us).execute(tx.conn()).await?.rows_affected() == 1 {
        return Ok(true);
    }
    if !bound_from_start {
        return Ok(false);
    }
    // No row, or one saying it is unbound already: only the first counts.
    let sql = "INSERT INTO ad_sandbox_bindings (tenant_id, account_id, kind, target_id, bound, updated_at_us) VALUES ($1, $2, $3, $4, 0, $5)
         ON CONFLICT (tenant_id, account_id, kind, target_id) DO NOTHING";
    Ok(binding_query(sql, tenant, account_id, kind, target_id, now_us).execute(tx.conn()).await?.rows_affected() == 1)
}
