//! The storage error type: what the layers above need to tell apart.
//!
//! Every database failure is classified here, once, whichever connection it
//! came from (sqlx on either backend, or the ledger's own rusqlite
//! connection): see [`classify`].

use crate::Backend;

/// A storage failure, classified so the service layer can retry or map it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique key refused the write: which one is `key`.
    #[error("unique key {key:?} violated: {detail}")]
    UniqueViolation { key: UniqueKey, detail: String },
    /// A `CHECK` constraint refused the write: which one is `check`.
    #[error("check {check:?} violated: {detail}")]
    CheckViolation { check: Check, detail: String },
    /// A conflict that a retry of the whole transaction resolves: a
    /// serialization failure, a deadlock, or a busy SQLite file.
    #[error("transient conflict, retry: {0}")]
    Transient(String),
    /// The database refused a value it was given or computed: a number out of
    /// its column's range (PostgreSQL 22003, SQLite's `integer overflow` in a
    /// `SUM`) or text it cannot hold (PostgreSQL 22021, a NUL byte; 22P05).
    /// The statement changed nothing; retrying cannot help.
    #[error("value refused by the database: {detail}")]
    ValueRefused { kind: RefusedValue, detail: String },
    /// A stored value that cannot be read back into its domain type: what it
    /// is and where it was found.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A record that must be the first of its kind was there already (a
    /// signed request seen before): the change it went with was refused.
    #[error("replayed: {0}")]
    Replayed(String),
    /// A row the change was computed from changed since it was read (an ad
    /// account's money, [`crate::records::AdMoneyRecord`]): the change was
    /// refused and may be computed again from fresh reads.
    #[error("stale: {0}")]
    Stale(String),
    #[error("database configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A database failure known by its message: from the ledger's own SQLite
    /// connection, or shared by every caller of a failed ledger batch.
    #[error("database error: {0}")]
    Failed(String),
}

/// What kind of value the database refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedValue {
    /// A number too large for its type.
    Number,
    /// Text the database cannot store.
    Text,
}

/// The unique keys of the schema (primary keys, `UNIQUE` constraints and
/// unique indexes), one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueKey {
    ServerSetting,
    TenantId,
    TenantPublicId,
    TenantAppId,
    TenantApiToken,
    AccountId,
    /// A username is taken in the tenant.
    AccountUsername,
    /// A phone number is taken in the tenant.
    AccountPhone,
    AccountApiUser,
    WalletId,
    /// The owner has a wallet of this purpose and currency.
    WalletOwner,
    TransferId,
    /// The tenant used this idempotency key before.
    TransferIdempotencyKey,
    /// A wallet's entry number is taken.
    EntryPosition,
    QuotaDay,
    ProductCode,
    TariffId,
    /// A version of the tariff starts at the same instant.
    TariffVersion,
    UsageEventId,
    UsageDay,
    UsageMonth,
    /// The month is closed already.
    MonthClose,
    /// The month's close is under way.
    MonthClosing,
    Bill,
    BillLine,
    Settlement,
    SignedRequest,
    HoldId,
    /// The tenant used this idempotency key for a hold before.
    HoldIdempotencyKey,
    RoleId,
    /// A tenant's role names are unique.
    RoleName,
    RoleApp,
    AccountApp,
    SessionToken,
    NoticeId,
    NoticeTarget,
    OperationId,
    TimeCardId,
    SubscriptionId,
    /// An account has at most one open subscription to a product.
    SubscriptionOpen,
    AdConnection,
    AdRequest,
    AdRequestOrder,
    AdAccount,
    AdAccountBusiness,
    AdAccountPixel,
    AdBlacklist,
    AdWrite,
    AdWriteInFlight,
    AdSandboxTenant,
    AdSandboxSpend,
    AdSandboxSpendDay,
    AdSandboxBinding,
    AdInsightsDay,
}

/// The `CHECK` constraints of the schema, one per variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    TenantAccountLimit,
    TenantDefaultDailyQuota,
    AccountUserType,
    AccountStatus,
    AccountDailyQuota,
    AccountBillingMode,
    WalletPurpose,
    /// A wallet's balance is below its floor.
    WalletFloor,
    TransferStatus,
    TransferAmount,
    /// A rejected transfer has its reason, a posted one none.
    TransferRejection,
    /// A posted transfer has both entry numbers, a rejected one neither.
    TransferEntries,
    EntryAmount,
    QuotaUsed,
    ProductGrouping,
    UsageEventStatus,
    /// A rejected event has its reason, an accepted one none.
    UsageEventRejection,
    BillLineKind,
    SettlementStatus,
    /// A wallet would reserve more than it can pay, down to its floor.
    WalletReservation,
    HoldState,
    HoldAmount,
    /// A rejected hold has its reason, any other none.
    HoldRejection,
    /// A resolved hold has its resolution time, a pending or rejected one none.
    HoldResolution,
    /// A posted hold names its transfer and posts at most what it reserved.
    HoldPosted,
    TenantLanguage,
    AccountFunding,
    AccountAccessState,
    AccountRoleTemplate,
    AccountFailedLogins,
    AccountLogins,
    RoleLevel,
    AccountAppGranted,
    OperationActorKind,
    /// A sub-user's entry names it; any other names none.
    OperationActor,
    ProductKind,
    ProductBillCategory,
    TimeCardMinutesTotal,
    TimeCardState,
    /// A card's minutes left are between 0 and its total.
    TimeCardMinutesLeft,
    /// A card expires after it takes effect.
    TimeCardPeriod,
    /// A subscription ends at or after its start.
    SubscriptionPeriod,
    AdConnectionPlatform,
    AdConnectionToken,
    AdSpendCap,
    AdAmountSpent,
    AdTotalSpent,
    AdBlacklistLevel,
    AdBlacklistUntil,
    AdWriteState,
    AdWriteOutcome,
    AdSandboxSpendSeq,
    AdSandboxSpendCap,
    /// A sandbox account's amount spent is below 0 or above its cap.
    AdSandboxAmountSpent,
    AdSandboxLifetimeSpent,
    AdSandboxBindingKind,
    AdSandboxBindingBound,
    /// A synced insights metric is negative.
    AdInsightsMetrics,
}

/// Each unique key with the name PostgreSQL gives it and what SQLite says
/// after `UNIQUE constraint failed: ` (the columns, or the index when it
/// holds an expression). `constraint_names_cover_the_schema` checks this
/// table against both migrated schemas.
const UNIQUE_KEYS: [(UniqueKey, &str, &str); 54] = [
    (UniqueKey::ServerSetting, "server_settings_pkey", "server_settings.key"),
    (UniqueKey::TenantId, "tenants_pkey", "tenants.id"),
    (UniqueKey::TenantPublicId, "tenants_public_id_key", "tenants.public_id"),
    (UniqueKey::TenantAppId, "tenants_app_id_key", "tenants.app_id"),
    (UniqueKey::TenantApiToken, "tenants_api_token_sha256_key", "tenants.api_token_sha256"),
    (UniqueKey::AccountId, "accounts_pkey", "accounts.id"),
    (UniqueKey::AccountUsername, "accounts_tenant_id_username_key", "accounts.tenant_id, accounts.username"),
    (UniqueKey::AccountPhone, "accounts_tenant_phone", "accounts.tenant_id, accounts.phone"),
    (UniqueKey::AccountApiUser, "accounts_api_user", "accounts.api_user"),
    (UniqueKey::WalletId, "wallets_pkey", "wallets.id"),
    (UniqueKey::WalletOwner, "wallets_owner", "index 'wallets_owner'"),
    (UniqueKey::TransferId, "transfers_pkey", "transfers.id"),
    (UniqueKey::TransferIdempotencyKey, "transfers_idempotency", "transfers.tenant_id, transfers.idempotency_key"),
    (UniqueKey::EntryPosition, "entries_pkey", "entries.wallet_id, entries.seq"),
    (UniqueKey::QuotaDay, "quota_usage_pkey", "quota_usage.account_id, quota_usage.day"),
    (UniqueKey::ProductCode, "products_pkey", "products.tenant_id, products.code"),
    (UniqueKey::TariffId, "tariffs_pkey", "tariffs.id"),
    (UniqueKey::TariffVersion, "tariffs_version", "index 'tariffs_version'"),
    (UniqueKey::UsageEventId, "usage_events_pkey", "usage_events.tenant_id, usage_events.event_id"),
    (UniqueKey::UsageDay, "usage_daily_pkey", "usage_daily.account_id, usage_daily.product_code, usage_daily.day, usage_daily.attr"),
    (UniqueKey::UsageMonth, "usage_monthly_pkey", "usage_monthly.account_id, usage_monthly.product_code, usage_monthly.month, usage_monthly.attr"),
    (UniqueKey::MonthClose, "month_closes_pkey", "month_closes.tenant_id, month_closes.month"),
    (UniqueKey::MonthClosing, "month_closings_pkey", "month_closings.tenant_id, month_closings.month"),
    (UniqueKey::Bill, "bills_pkey", "bills.account_id, bills.month, bills.currency"),
    (UniqueKey::BillLine, "bill_lines_pkey", "bill_lines.account_id, bill_lines.month, bill_lines.currency, bill_lines.line_no"),
    (UniqueKey::Settlement, "settlements_pkey", "settlements.account_id, settlements.product_code, settlements.month"),
    (UniqueKey::SignedRequest, "signed_requests_pkey", "signed_requests.tenant_id, signed_requests.signature"),
    (UniqueKey::HoldId, "holds_pkey", "holds.id"),
    (UniqueKey::HoldIdempotencyKey, "holds_idempotency", "holds.tenant_id, holds.idempotency_key"),
    (UniqueKey::RoleId, "roles_pkey", "roles.id"),
    (UniqueKey::RoleName, "roles_tenant_id_name_key", "roles.tenant_id, roles.name"),
    (UniqueKey::RoleApp, "role_apps_pkey", "role_apps.role_id, role_apps.app_id"),
    (UniqueKey::AccountApp, "account_apps_pkey", "account_apps.account_id, account_apps.app_id"),
    (UniqueKey::SessionToken, "sessions_pkey", "sessions.token_sha256"),
    (UniqueKey::NoticeId, "notices_pkey", "notices.id"),
    (UniqueKey::NoticeTarget, "notice_targets_pkey", "notice_targets.notice_id, notice_targets.account_id"),
    (UniqueKey::OperationId, "operations_pkey", "operations.id"),
    (UniqueKey::TimeCardId, "time_cards_pkey", "time_cards.id"),
    (UniqueKey::SubscriptionId, "subscriptions_pkey", "subscriptions.id"),
    (UniqueKey::SubscriptionOpen, "subscriptions_open", "subscriptions.account_id, subscriptions.product_code"),
    (UniqueKey::AdConnection, "ad_connections_pkey", "ad_connections.tenant_id"),
    (UniqueKey::AdRequest, "ad_requests_pkey", "ad_requests.tenant_id, ad_requests.id"),
    (UniqueKey::AdRequestOrder, "ad_requests_order", "ad_requests.tenant_id, ad_requests.time_created_us, ad_requests.id"),
    (UniqueKey::AdAccount, "ad_accounts_pkey", "ad_accounts.tenant_id, ad_accounts.id"),
    (UniqueKey::AdAccountBusiness, "ad_account_businesses_pkey", "ad_account_businesses.tenant_id, ad_account_businesses.account_id, ad_account_businesses.business_id"),
    (UniqueKey::AdAccountPixel, "ad_account_pixels_pkey", "ad_account_pixels.tenant_id, ad_account_pixels.account_id, ad_account_pixels.pixel_id"),
    (UniqueKey::AdBlacklist, "ad_blacklist_pkey", "ad_blacklist.tenant_id, ad_blacklist.company_name"),
    (UniqueKey::AdWrite, "ad_writes_pkey", "ad_writes.tenant_id, ad_writes.search_id"),
    (UniqueKey::AdWriteInFlight, "ad_writes_one_in_flight", "ad_writes.tenant_id, ad_writes.account_id"),
    (UniqueKey::AdSandboxTenant, "ad_sandbox_tenants_pkey", "ad_sandbox_tenants.tenant_id"),
    (UniqueKey::AdSandboxSpend, "ad_sandbox_spend_pkey", "ad_sandbox_spend.tenant_id, ad_sandbox_spend.account_id"),
    (UniqueKey::AdSandboxSpendDay, "ad_sandbox_spend_days_pkey", "ad_sandbox_spend_days.tenant_id, ad_sandbox_spend_days.account_id, ad_sandbox_spend_days.local_day"),
    (UniqueKey::AdSandboxBinding, "ad_sandbox_bindings_pkey", "ad_sandbox_bindings.tenant_id, ad_sandbox_bindings.account_id, ad_sandbox_bindings.kind, ad_sandbox_bindings.target_id"),
    (
        UniqueKey::AdInsightsDay,
        "ad_insights_daily_pkey",
        "ad_insights_daily.tenant_id, ad_insights_daily.account_id, ad_insights_daily.breakdown, ad_insights_daily.day, ad_insights_daily.breakdown_value",
    ),
];

/// Each check with the name PostgreSQL gives it and what SQLite says after
/// `CHECK constraint failed: ` (the expression as the migration wrote it;
/// no two are alike).
const CHECKS: [(Check, &str, &str); 58] = [
    (Check::TenantAccountLimit, "tenants_account_limit_check", "account_limit >= 0"),
    (Check::TenantDefaultDailyQuota, "tenants_default_daily_quota_check", "default_daily_quota >= 0"),
    (Check::AccountUserType, "accounts_user_type_check", "user_type IN (0, 1)"),
    (Check::AccountStatus, "accounts_status_check", "status IN (1, -1)"),
    (Check::AccountDailyQuota, "accounts_daily_quota_check", "daily_quota >= 0"),
    (Check::AccountBillingMode, "accounts_billing_mode_check", "billing_mode IN ('prepaid', 'postpaid')"),
    (Check::WalletPurpose, "wallets_purpose_check", "purpose IN ('primary', 'promo', 'world', 'revenue', 'ad_cap', 'ad_payable')"),
    (Check::WalletFloor, "wallets_check", "floor_minor IS NULL OR balance_minor >= floor_minor"),
    (Check::TransferStatus, "transfers_status_check", "status IN ('posted', 'rejected')"),
    (Check::TransferAmount, "transfers_amount_minor_check", "amount_minor > 0"),
    (Check::TransferRejection, "transfers_check", "(status = 'posted') = (rejection IS NULL)"),
    (Check::TransferEntries, "transfers_check1", "(status = 'posted') = (debit_seq IS NOT NULL AND credit_seq IS NOT NULL)"),
    (Check::EntryAmount, "entries_amount_minor_check", "amount_minor <> 0"),
    (Check::QuotaUsed, "quota_usage_used_check", "used >= 0"),
    (Check::ProductGrouping, "products_grouping_check", "grouping IN ('none', 'country', 'item')"),
    (Check::UsageEventStatus, "usage_events_status_check", "status IN ('accepted', 'rejected')"),
    (Check::UsageEventRejection, "usage_events_check", "(status = 'accepted') = (rejection IS NULL)"),
    (Check::BillLineKind, "bill_lines_kind_check", "kind IN ('usage', 'supplement')"),
    (Check::SettlementStatus, "settlements_status_check", "status IN ('posted', 'outstanding')"),
    (Check::WalletReservation, "wallets_reservation", "reserved_minor >= 0 AND (reserved_minor = 0 OR floor_minor IS NULL OR balance_minor - reserved_minor >= floor_minor)"),
    (Check::HoldState, "holds_state_check", "state IN ('pending', 'posted', 'voided', 'expired', 'rejected')"),
    (Check::HoldAmount, "holds_amount_minor_check", "amount_minor >= 1"),
    (Check::HoldRejection, "holds_check", "(state = 'rejected') = (rejection IS NOT NULL)"),
    (Check::HoldResolution, "holds_check1", "(state IN ('pending', 'rejected')) = (resolved_at_us IS NULL)"),
    (Check::HoldPosted, "holds_check2", "(state = 'posted') = (posted_transfer_id IS NOT NULL AND posted_amount_minor BETWEEN 1 AND amount_minor)"),
    (Check::TenantLanguage, "tenants_language_check", "language IN ('zh-CN', 'en')"),
    (Check::AccountFunding, "accounts_funding_check", "funding IN ('own', 'tenant')"),
    (Check::AccountAccessState, "accounts_access_state_check", "access_state IN (1, 2, 3)"),
    (Check::AccountRoleTemplate, "accounts_role_template_check", "role_template IN (0, 1)"),
    (Check::AccountFailedLogins, "accounts_failed_logins_check", "failed_logins >= 0"),
    (Check::AccountLogins, "accounts_logins_check", "logins >= 0"),
    (Check::RoleLevel, "roles_level_check", "level >= 0"),
    (Check::AccountAppGranted, "account_apps_granted_check", "granted IN (0, 1)"),
    (Check::OperationActorKind, "operations_actor_kind_check", "actor_kind IN ('tenant', 'sub_user', 'admin', 'cli', 'system')"),
    (Check::OperationActor, "operations_check", "(actor_kind = 'sub_user') = (actor_account_id IS NOT NULL AND actor_name IS NOT NULL)"),
    (Check::ProductKind, "products_kind_check", "kind IN ('usage', 'function', 'rental')"),
    (Check::ProductBillCategory, "products_bill_category_check", "bill_category IN ('call_in', 'call_out', 'internal_voice', 'sms', 'other')"),
    (Check::TimeCardMinutesTotal, "time_cards_minutes_total_check", "minutes_total > 0"),
    (Check::TimeCardState, "time_cards_state_check", "state IN ('active', 'cancelled')"),
    (Check::TimeCardMinutesLeft, "time_cards_check", "minutes_left >= 0 AND minutes_left <= minutes_total"),
    (Check::TimeCardPeriod, "time_cards_check1", "expires_at_us > effective_at_us"),
    (Check::SubscriptionPeriod, "subscriptions_check", "until_us IS NULL OR until_us >= from_us"),
    (Check::AdConnectionPlatform, "ad_connections_platform_check", "platform IN ('sandbox', 'graph')"),
    (Check::AdConnectionToken, "ad_connections_check", "(platform = 'graph') = (token_sealed IS NOT NULL)"),
    (Check::AdSpendCap, "ad_accounts_spend_cap_cents_check", "spend_cap_cents >= 0"),
    (Check::AdAmountSpent, "ad_accounts_amount_spent_cents_check", "amount_spent_cents >= 0"),
    (Check::AdTotalSpent, "ad_accounts_total_spent_cents_check", "total_spent_cents >= 0"),
    (Check::AdBlacklistLevel, "ad_blacklist_level_check", "level BETWEEN 1 AND 4"),
    (Check::AdBlacklistUntil, "ad_blacklist_check", "(level = 4) = (until_us IS NULL)"),
    (Check::AdWriteState, "ad_writes_state_check", "state IN ('started', 'reserved', 'calling', 'unknown', 'done')"),
    (Check::AdWriteOutcome, "ad_writes_check", "(state = 'done') = (outcome IS NOT NULL)"),
    (Check::AdSandboxSpendSeq, "ad_sandbox_spend_seq_check", "seq >= 1"),
    (Check::AdSandboxSpendCap, "ad_sandbox_spend_cap_cents_check", "cap_cents >= 1"),
    (Check::AdSandboxAmountSpent, "ad_sandbox_spend_check", "amount_spent_cents >= 0 AND amount_spent_cents <= cap_cents"),
    (Check::AdSandboxLifetimeSpent, "ad_sandbox_spend_check1", "lifetime_spent_cents >= amount_spent_cents"),
    (Check::AdSandboxBindingKind, "ad_sandbox_bindings_kind_check", "kind IN ('business', 'pixel')"),
    (Check::AdSandboxBindingBound, "ad_sandbox_bindings_bound_check", "bound IN (0, 1)"),
    (Check::AdInsightsMetrics, "ad_insights_daily_check", "spend_cents >= 0 AND impressions >= 0 AND clicks >= 0 AND reach >= 0 AND inline_link_clicks >= 0 AND total_postbacks >= 0"),
];

/// A failure as the database reported it, before classification.
pub(crate) struct DatabaseFailure<'a> {
    pub backend: Backend,
    /// PostgreSQL's SQLSTATE, or SQLite's extended result code in decimal.
    pub code: &'a str,
    /// The constraint PostgreSQL names (SQLite names none: its message says).
    pub constraint: Option<&'a str>,
    pub message: &'a str,
}

/// SQLite's extended result codes that this module tells apart.
const SQLITE_CONSTRAINT_CHECK: i32 = 275;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;

/// The one classification of database failures: `None` for a failure that
/// is none of the kinds the layers above tell apart (the caller keeps it as
/// [`StorageError::Database`] or [`StorageError::Failed`]). A constraint this
/// module does not know is such a failure too: it would be a schema change
/// without its entry in [`UNIQUE_KEYS`] or [`CHECKS`], which the tests catch.
pub(crate) fn classify(failure: &DatabaseFailure<'_>) -> Option<StorageError> {
    let detail = || failure.message.to_owned();
    match failure.backend {
        Backend::Postgres => match failure.code {
            "23505" => UNIQUE_KEYS.iter().find(|(_, name, _)| Some(*name) == failure.constraint).map(|(key, _, _)| StorageError::UniqueViolation { key: *key, detail: detail() }),
            "23514" => CHECKS.iter().find(|(_, name, _)| Some(*name) == failure.constraint).map(|(check, _, _)| StorageError::CheckViolation { check: *check, detail: detail() }),
            // serialization_failure, deadlock_detected
            "40001" | "40P01" => Some(StorageError::Transient(detail())),
            "22003" => Some(StorageError::ValueRefused { kind: RefusedValue::Number, detail: detail() }),
            "22021" | "22P05" => Some(StorageError::ValueRefused { kind: RefusedValue::Text, detail: detail() }),
            _ => None,
        },
        Backend::Sqlite => {
            let extended: i32 = failure.code.parse().ok()?;
            match extended {
                SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY => {
                    let target = failure.message.strip_prefix("UNIQUE constraint failed: ")?;
                    UNIQUE_KEYS.iter().find(|(_, _, sqlite)| *sqlite == target).map(|(key, _, _)| StorageError::UniqueViolation { key: *key, detail: detail() })
                }
                SQLITE_CONSTRAINT_CHECK => {
                    let expression = failure.message.strip_prefix("CHECK constraint failed: ")?;
                    CHECKS.iter().find(|(_, _, sqlite)| *sqlite == expression).map(|(check, _, _)| StorageError::CheckViolation { check: *check, detail: detail() })
                }
                // SQLITE_BUSY and SQLITE_LOCKED, whatever their extended code.
                _ if matches!(extended & 0xff, 5 | 6) => Some(StorageError::Transient(detail())),
                // A `SUM` past i64: SQLITE_ERROR, which every SQL error shares,
                // so the message tells.
                1 if failure.message == "integer overflow" => Some(StorageError::ValueRefused { kind: RefusedValue::Number, detail: detail() }),
                _ => None,
            }
        }
    }
}

impl StorageError {
    /// Whether running the same transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Transient(_))
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        StorageError::Corrupt(what.into())
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            // The Any driver passes on the backend's own error.
            let backend = if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() { Backend::Postgres } else { Backend::Sqlite };
            let code = db.code().unwrap_or_default();
            if let Some(classified) = classify(&DatabaseFailure { backend, code: &code, constraint: db.constraint(), message: db.message() }) {
                return classified;
            }
        }
        if matches!(error, sqlx::Error::PoolTimedOut) {
            return StorageError::Transient("timed out waiting for a database connection".to_owned());
        }
        StorageError::Database(error)
    }
}
#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    use crate::test_support as support;

    /// Every unique key and check of the migrated schemas has its entry in
    /// [`UNIQUE_KEYS`] and [`CHECKS`], named as that backend names it, and
    /// every entry there names one of them: a migration that adds or renames
    /// a constraint fails here until this module knows it.
    #[tokio::test]
    async fn constraint_names_cover_the_schema() {
        let db = support::TestDb::sqlite();
        let store = crate::Store::open(&db.url, &crate::StoreOptions::default()).await.expect("the store opens");
        let conn = rusqlite::Connection::open(store.sqlite_path().expect("a file")).expect("a connection");
        let (unique, checks) = sqlite_constraints(&conn);
        assert_eq!(unique, sorted(UNIQUE_KEYS.iter().map(|(_, _, sqlite)| *sqlite)), "SQLite's unique keys");
        assert_eq!(checks, sorted(CHECKS.iter().map(|(_, _, sqlite)| *sqlite)), "SQLite's checks");
    }

    /// As [`constraint_names_cover_the_schema`], for PostgreSQL's schema.
    #[cfg_attr(not(postgres_tests), ignore = "set SUBLEDGER_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL half")]
    #[tokio::test]
    async fn constraint_names_cover_the_postgres_schema() {
        let db = support::TestDb::postgres().await;
        crate::Store::open(&db.url, &crate::StoreOptions::default()).await.expect("the store opens");
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("a connection");
        let names = |contypes: &'static str| {
            format!(
                "SELECT c.conname::text FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
                 WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ({contypes}) AND t.relname <> '_sqlx_migrations'"
            )
        };
        let unique_indexes = "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE 'CREATE UNIQUE INDEX%' AND tablename <> '_sqlx_migrations'";
        let unique: Vec<String> = sqlx::query_scalar(&format!("{} UNION {unique_indexes} ORDER BY 1", names("'p', 'u'"))).fetch_all(&mut conn).await.unwrap();
        let checks: Vec<String> = sqlx::query_scalar(&format!("{} ORDER BY 1", names("'c'"))).fetch_all(&mut conn).await.unwrap();
        assert_eq!(unique, sorted(UNIQUE_KEYS.iter().map(|(_, postgres, _)| *postgres)), "PostgreSQL's unique keys");
        assert_eq!(checks, sorted(CHECKS.iter().map(|(_, postgres, _)| *postgres)), "PostgreSQL's checks");
    }

    fn sorted<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mut names: Vec<String> = names.map(str::to_owned).collect();
        names.sort();
        names
    }

    /// What SQLite names after `UNIQUE constraint failed: ` and `CHECK
    /// constraint failed: ` for each constraint of the schema, sorted.
    fn sqlite_constraints(conn: &rusqlite::Connection) -> (Vec<String>, Vec<String>) {
        let pairs = |sql: &str| -> Vec<(String, String)> { conn.prepare(sql).unwrap().query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect() };
        let tables = pairs("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'");
        let (mut unique, mut checks) = (Vec::new(), Vec::new());
        for (table, sql) in &tables {
            let columns_of = |index: &str| -> Vec<(i64, String)> {
                conn.prepare(&format!("SELECT cid, name FROM pragma_index_xinfo('{index}') WHERE key = 1 ORDER BY seqno"))
                    .unwrap()
                    .query_map([], |row| Ok((row.get(0)?, row.get::<_, Option<String>>(1)?.unwrap_or_default())))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            };
            let indexes: Vec<String> =
                conn.prepare(&format!("SELECT name FROM pragma_index_list('{table}') WHERE \"unique\" = 1")).unwrap().query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
            for index in indexes {
                let columns = columns_of(&index);
                unique.push(if columns.iter().any(|(cid, _)| *cid == -2) {
                    format!("index '{index}'")
                } else {
                    columns.iter().map(|(_, name)| format!("{table}.{name}")).collect::<Vec<_>>().join(", ")
                });
            }
            // An INTEGER PRIMARY KEY is the rowid: no index lists it.
            if let [(key, kind)] = pairs(&format!("SELECT name, type FROM pragma_table_info('{table}') WHERE pk > 0")).as_slice()
                && kind == "INTEGER"
            {
                unique.push(format!("{table}.{key}"));
            }
            let mut rest = sql.as_str();
            while let Some(at) = rest.find("CHECK (") {
                let body = &rest[at + "CHECK (".len()..];
                let mut depth = 1;
                let end = body.char_indices().find(|(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                });
                let (end, _) = end.expect("a balanced CHECK");
                checks.push(body[..end].to_owned());
                rest = &body[end..];
            }
        }
        unique.sort();
        checks.sort();
        (unique, checks)
    }

    /// What each backend says when a `SUM` passes `i64` and when text holds a NUL byte.
    const OVERFLOWING_SUM: &str = "SELECT CAST(SUM(v) AS BIGINT) FROM (SELECT 9223372036854775807 AS v UNION ALL SELECT 1) AS t";

    #[tokio::test]
    async fn sqlite_overflow_is_a_refused_number() {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:").await.unwrap();
        let error: StorageError = sqlx::query_scalar::<_, i64>(OVERFLOWING_SUM).fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        // The ledger's own connection (rusqlite) says the same.
        let ledger = rusqlite::Connection::open_in_memory().unwrap();
        let error = crate::ledger::sqlite::storage_error(ledger.query_row(OVERFLOWING_SUM, [], |row| row.get::<_, i64>(0)).unwrap_err());
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        // Any other SQL error stays what it was.
        let error: StorageError = sqlx::query("SELECT * FROM no_such_table").execute(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::Database(_)), "{error:?}");
    }

    /// Runs with `SUBLEDGER_TEST_POSTGRES_URL` set (as the black-box suite does); passes without.
    #[tokio::test]
    async fn postgres_range_and_text_errors_are_refused_values() {
        let Ok(url) = std::env::var("SUBLEDGER_TEST_POSTGRES_URL") else { return };
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        let error: StorageError = sqlx::query_scalar::<_, i64>(OVERFLOWING_SUM).fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Number, .. }), "{error:?}");
        let error: StorageError = sqlx::query_scalar::<_, String>("SELECT $1::text").bind("a\0b").fetch_one(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::ValueRefused { kind: RefusedValue::Text, .. }), "{error:?}");
        let error: StorageError = sqlx::query("SELECT * FROM no_such_table").execute(&mut conn).await.unwrap_err().into();
        assert!(matches!(error, StorageError::Database(_)), "{error:?}");
    }
}
