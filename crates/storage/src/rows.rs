//! Rows as the database holds them: one struct per row kind, declared once
//! with `row!`, from which everything that names its columns is derived.
//!
//! A row's field names are its column names, so nothing pairs a value with a
//! column by position by hand: the column list of every statement, the
//! SQLite parameters (`?1 … ?N` in field order, or `:column`), the sqlx
//! arguments (`$1 … $N` in field order), the PostgreSQL JSON rows (arrays in
//! field order, taken apart by expressions `(e->>i)::type AS column`
//! generated from the same list) and the decoding of a read (by name from
//! sqlx; by position from JSON arrays built with `json_build_array` of
//! [`Row::COLUMNS`] and from rusqlite statements that select them) all come
//! from the field list. A value written to another column of the same type
//! is therefore not a mistake one can make silently, and the round-trip
//! tests in `tests/rows.rs` would show it anyway.
//!
//! Statements that name a row's columns are built once from these (in
//! `LazyLock`s), so each keeps one fixed text and is prepared once per
//! connection.
//!
//! Text fields are generic (`S`): `&str` when writing (no copy of the
//! caller's strings on the hot path), `String` when reading. Each row kind
//! converts from and to the crate's public types here, by field name, and a
//! stored value that does not decode is [`StorageError::Corrupt`] naming the
//! value and its row, never a default.

use std::str::FromStr;

use subledger_domain::account::AccountStatus;
use subledger_domain::billing::LineKind;
use subledger_domain::calendar::Month;
use subledger_domain::ids::{AccountId, TenantId, TransferId, WalletId};
use subledger_domain::ledger::{DebitRule, TransferIntent, TransferKind, TransferRejection, WalletPurpose, WalletState};
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_domain::posting::{Hold, HoldState, WalletRead};
use subledger_domain::rating::Quantity;
use subledger_domain::usage::{Accepted, AccountTerms, Outcome, RollupAmounts, SpendableWallets, UsageRejection};

use crate::accounts::NewAccount;
use crate::bills::{BillRecord, DayUsage, LineRecord, SettlementRecord};
use crate::catalog::{NewTariff, ProductRecord};
use crate::ledger::close::{CloseProgress, MonthRow, NewBillLine, NewSettlement};
use crate::ledger::usage::{NewUsageEvent, RollupKey};
use crate::ledger::{NewEntry, StoredHold, StoredTransfer};
use crate::tenants::NewTenant;
use crate::wallets::WalletRecord;
use crate::{Result, StorageError};

/// A kind of row: its columns and how its values bind.
pub trait Row {
    /// The columns, in field order.
    const COLUMNS: &'static [&'static str];
    /// Their PostgreSQL types, in the same order (for `jsonb_to_recordset`).
    const POSTGRES_TYPES: &'static [&'static str];
    /// Binds the values, in column order, to the SQLite parameters
    /// `?first_index …`. See [`sqlite_bind`].
    fn bind_sqlite(&self, statement: &mut rusqlite::Statement<'_>, first_index: usize) -> rusqlite::Result<()>;
    /// Binds each value whose column the statement names as `:column`, and
    /// says how many it bound. See [`sqlite_bind_named`].
    fn bind_sqlite_named(&self, statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<usize>;
    /// The values as sqlx arguments `$1 … $N`, in column order, for either
    /// backend; more may be added after them.
    fn sqlx_arguments(&self) -> sqlx::Result<sqlx::any::AnyArguments<'static>>;
}

/// A row of a table.
pub trait TableRow: Row {
    const TABLE: &'static str;
}

/// A row read back from SQLite, from a statement that selects
/// [`Row::COLUMNS`] in order.
pub trait SqliteDecode: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A column's PostgreSQL type.
pub trait SqlType {
    const POSTGRES: &'static str;
}

impl SqlType for i64 {
    const POSTGRES: &'static str = "bigint";
}

impl SqlType for String {
    const POSTGRES: &'static str = "text";
}

impl SqlType for &str {
    const POSTGRES: &'static str = "text";
}

impl<T: SqlType> SqlType for Option<T> {
    const POSTGRES: &'static str = T::POSTGRES;
}

/// A column's value as an sqlx argument (owned: these statements are not on
/// the ledger's hot path, which binds through rusqlite or JSON).
pub trait SqlxValue {
    type Owned: sqlx::Encode<'static, sqlx::Any> + sqlx::Type<sqlx::Any> + 'static;
    fn sqlx_value(&self) -> Self::Owned;
}

impl SqlxValue for i64 {
    type Owned = i64;
    fn sqlx_value(&self) -> i64 {
        *self
    }
}

impl SqlxValue for &str {
    type Owned = String;
    fn sqlx_value(&self) -> String {
        (*self).to_owned()
    }
}

impl SqlxValue for String {
    type Owned = String;
    fn sqlx_value(&self) -> String {
        self.clone()
    }
}

impl<T: SqlxValue> SqlxValue for Option<T> {
    type Owned = Option<T::Owned>;
    fn sqlx_value(&self) -> Option<T::Owned> {
        self.as_ref().map(SqlxValue::sqlx_value)
    }
}

/// Adds a value to sqlx arguments.
pub(crate) fn add_argument<T: SqlxValue>(arguments: &mut sqlx::any::AnyArguments<'static>, value: &T) -> sqlx::Result<()> {
    use sqlx::Arguments as _;
    arguments.add(value.sqlx_value()).map_err(sqlx::Error::Encode)
}

/// What a text field holds: borrowed when written, owned when read.
pub trait Text: SqlType + SqlxValue + rusqlite::ToSql + serde::Serialize {}

impl Text for &str {}

impl Text for String {}

/// Declares a row kind: the struct, its [`Row`] (and with `in "table"`, its
/// [`TableRow`]) implementation, and its decoding from SQLite, sqlx and JSON.
macro_rules! row {
    (@owned $text:ident) => { String };
    (@table [$text:ident] $name:ident $table:literal) => {
        impl<$text: $crate::rows::Text> $crate::rows::TableRow for $name<$text> {
            const TABLE: &'static str = $table;
        }
    };
    (@table [] $name:ident $table:literal) => {
        impl $crate::rows::TableRow for $name {
            const TABLE: &'static str = $table;
        }
    };
    (@table [$($text:ident)?] $name:ident) => {};
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$text:ident>)? $(in $table:literal)? {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        $vis struct $name $(<$text>)? {
            $($(#[$field_meta])* pub $field: $ty),+
        }

        /// As a JSON array of its values in field order, the order in which
        /// the derived `Deserialize` reads an array back.
        impl $(<$text: serde::Serialize>)? serde::Serialize for $name $(<$text>)? {
            fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> ::std::result::Result<Z::Ok, Z::Error> {
                use serde::ser::SerializeTuple as _;
                let mut tuple = serializer.serialize_tuple([$(stringify!($field)),+].len())?;
                $(tuple.serialize_element(&self.$field)?;)+
                tuple.end()
            }
        }

        impl $(<$text: $crate::rows::Text>)? $crate::rows::Row for $name $(<$text>)? {
            const COLUMNS: &'static [&'static str] = &[$(stringify!($field)),+];
            const POSTGRES_TYPES: &'static [&'static str] = &[$(<$ty as $crate::rows::SqlType>::POSTGRES),+];

            #[allow(unused_assignments)]
            fn bind_sqlite(&self, statement: &mut rusqlite::Statement<'_>, first_index: usize) -> rusqlite::Result<()> {
                let mut index = first_index;
                $(
                    statement.raw_bind_parameter(index, &self.$field)?;
                    index += 1;
                )+
                Ok(())
            }

            fn bind_sqlite_named(&self, statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<usize> {
                let mut bound = 0;
                $(
                    if let Some(index) = statement.parameter_index(concat!(":", stringify!($field)))? {
                        statement.raw_bind_parameter(index, &self.$field)?;
                        bound += 1;
                    }
                )+
                Ok(bound)
            }

            fn sqlx_arguments(&self) -> sqlx::Result<sqlx::any::AnyArguments<'static>> {
                let mut arguments = sqlx::any::AnyArguments::default();
                $($crate::rows::add_argument(&mut arguments, &self.$field)?;)+
                Ok(arguments)
            }
        }

        row!(@table [$($text)?] $name $($table)?);

        impl $crate::rows::SqliteDecode for $name $(<row!(@owned $text)>)? {
            #[allow(unused_assignments)]
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let mut column = 0;
                Ok(Self {
                    $($field: {
                        let value = row.get(column)?;
                        column += 1;
                        value
                    }),+
                })
            }
        }

        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $name $(<row!(@owned $text)>)? {
            fn from_row(row: &'r sqlx::any::AnyRow) -> sqlx::Result<Self> {
                use sqlx::Row as _;
                Ok(Self { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
    };
}

/// Binds a row's values to the SQLite parameters `?1 … ?N` and `extra` to
/// those after them, refusing a statement with any other number of
/// parameters; then run it with `raw_execute` or `raw_query`.
pub(crate) fn sqlite_bind<R: Row>(statement: &mut rusqlite::Statement<'_>, row: &R, extra: &[&dyn rusqlite::ToSql]) -> rusqlite::Result<()> {
    row.bind_sqlite(statement, 1)?;
    for (offset, value) in extra.iter().enumerate() {
        statement.raw_bind_parameter(R::COLUMNS.len() + 1 + offset, value)?;
    }
    expect_parameters(statement, R::COLUMNS.len() + extra.len())
}

/// Binds a row's values to the parameters `:column` of a statement written
/// by hand, refusing one with a parameter that is not a column of the row
/// (it would otherwise be NULL); then run it with `raw_execute` or `raw_query`.
pub(crate) fn sqlite_bind_named<R: Row>(statement: &mut rusqlite::Statement<'_>, row: &R) -> rusqlite::Result<()> {
    let bound = row.bind_sqlite_named(statement)?;
    expect_parameters(statement, bound)
}

fn expect_parameters(statement: &rusqlite::Statement<'_>, bound: usize) -> rusqlite::Result<()> {
    if statement.parameter_count() == bound { Ok(()) } else { Err(rusqlite::Error::InvalidParameterCount(bound, statement.parameter_count())) }
}

/// The rows a bound statement returns, decoded.
pub(crate) fn sqlite_rows<R: SqliteDecode>(statement: &mut rusqlite::Statement<'_>) -> rusqlite::Result<Vec<R>> {
    let mut rows = statement.raw_query();
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        decoded.push(R::from_sqlite(row)?);
    }
    Ok(decoded)
}

/// `SELECT a, b, c FROM (query) AS q`: a query written by hand, its columns
/// put in the row's order, so that decoding by position holds.
pub(crate) fn select_from<R: Row>(query: &str) -> String {
    format!("SELECT {} FROM ({query}) AS q", columns::<R>(Some("q")))
}

/// `a, b, c`, or `t.a, t.b, t.c` with an alias.
pub(crate) fn columns<R: Row>(alias: Option<&str>) -> String {
    R::COLUMNS.iter().map(|c| alias.map_or_else(|| (*c).to_owned(), |a| format!("{a}.{c}"))).collect::<Vec<_>>().join(", ")
}

/// `INSERT INTO table (a, b, c) VALUES (?1, ?2, ?3)`, for [`sqlite_bind`].
pub(crate) fn sqlite_insert<R: TableRow>() -> String {
    insert::<R>('?')
}

/// `INSERT INTO table (a, b, c) VALUES ($1, $2, $3)`, for [`Row::sqlx_arguments`].
pub(crate) fn sqlx_insert<R: TableRow>() -> String {
    insert::<R>('$')
}

/// The row's columns, and as values the parameters numbered in their order.
fn insert<R: TableRow>(placeholder: char) -> String {
    let placeholders: Vec<String> = (1..=R::COLUMNS.len()).map(|i| format!("{placeholder}{i}")).collect();
    format!("INSERT INTO {} ({}) VALUES ({})", R::TABLE, columns::<R>(None), placeholders.join(", "))
}

/// `a = ?1 AND b = ?2` over a key row's columns (qualified by `alias` if
/// any), for [`sqlite_bind`].
pub(crate) fn sqlite_match<K: Row>(alias: Option<&str>) -> String {
    let prefix = alias.map(|a| format!("{a}.")).unwrap_or_default();
    K::COLUMNS.iter().enumerate().map(|(i, c)| format!("{prefix}{c} = ?{}", i + 1)).collect::<Vec<_>>().join(" AND ")
}

/// PostgreSQL's rows from a JSON array parameter `$n` (see [`json`]), as a
/// derived table `alias` with the row's columns by name and type:
/// `(SELECT (e->>0)::bigint AS id, e->>1 AS name, … FROM jsonb_array_elements($n::jsonb) AS e) AS alias`.
/// The positions are the fields' order, the one order [`json`] writes.
pub(crate) fn postgres_records<R: Row>(param: usize, alias: &str) -> String {
    let fields: Vec<String> = R::COLUMNS.iter().zip(R::POSTGRES_TYPES).enumerate().map(|(i, (c, t))| format!("(e->>{i})::{t} AS {c}")).collect();
    format!("(SELECT {} FROM jsonb_array_elements(${param}::jsonb) AS e) AS {alias}", fields.join(", "))
}

/// `INSERT INTO table (a, b) SELECT a, b FROM` [`postgres_records`] of parameter `$n`.
pub(crate) fn postgres_insert<R: TableRow>(param: usize) -> String {
    let list = columns::<R>(None);
    format!("INSERT INTO {} ({list}) SELECT {list} FROM {}", R::TABLE, postgres_records::<R>(param, "r"))
}

/// `t.a = k.a AND t.b = k.b` over a key row's columns.
pub(crate) fn postgres_match<K: Row>(table_alias: &str, key_alias: &str) -> String {
    K::COLUMNS.iter().map(|c| format!("{table_alias}.{c} = {key_alias}.{c}")).collect::<Vec<_>>().join(" AND ")
}

/// `COALESCE(json_agg(json_build_array(alias.a, alias.b, …))::text, '[]')`:
/// the rows of `alias` as one JSON text, each row an array in the row's
/// column order, for [`from_json`].
pub(crate) fn postgres_agg<R: Row>(alias: &str) -> String {
    format!("COALESCE(json_agg(json_build_array({}))::text, '[]')", columns::<R>(Some(alias)))
}

/// Rows as JSON, for PostgreSQL: an array of rows, each an array of its
/// values in field order. Not objects keyed by column: taking the keys apart
/// cost `ledger-probe` 18% of its PostgreSQL throughput on batches of a few
/// dozen transfers (see ARCHITECTURE.md, storage).
pub(crate) fn json<R: serde::Serialize>(rows: &[R]) -> String {
    serde_json::to_string(rows).expect("rows of integers and text serialize")
}

/// Rows read back as JSON ([`postgres_agg`]): each an array in field order.
pub(crate) fn from_json<R: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<Vec<R>> {
    serde_json::from_str(text).map_err(|e| StorageError::corrupt(format!("{what}: {e}")))
}

/// The one way a stored text becomes its domain value: `Corrupt`, naming
/// the value and the row, when it does not parse.
fn parse<T>(value: &str, parsed: Option<T>, what: &str, place: impl FnOnce() -> String) -> Result<T> {
    parsed.ok_or_else(|| StorageError::corrupt(format!("{what} {value:?} of {}", place())))
}

/// A stored quantity, in thousandths.
fn quantity(milli: i64, what: &str, place: impl FnOnce() -> String) -> Result<Quantity> {
    Quantity::from_milli(milli).ok_or_else(|| StorageError::corrupt(format!("{what} {milli} of {}", place())))
}

pub(crate) fn currency(code: &str, place: impl FnOnce() -> String) -> Result<Currency> {
    parse(code, Currency::from_str(code).ok(), "currency", place)
}

// --- Tenants, accounts, wallets, catalog --------------------------------------

row! {
    /// A new row of `tenants` (the database draws its id).
    pub struct NewTenantRow<S> in "tenants" {
        public_id: S,
        name: S,
        timezone: S,
        app_id: S,
        app_key: S,
        api_token_sha256: S,
        account_limit: i64,
        default_daily_quota: i64,
        created_at_us: i64,
        updated_at_us: i64,
    }
}

impl<'a> From<&NewTenant<'a>> for NewTenantRow<&'a str> {
    fn from(t: &NewTenant<'a>) -> Self {
        NewTenantRow {
            public_id: t.public_id,
            name: t.name,
            timezone: t.timezone,
            app_id: t.app_id,
            app_key: t.app_key,
            api_token_sha256: t.api_token_sha256,
            account_limit: t.account_limit,
            default_daily_quota: t.default_daily_quota,
            created_at_us: t.now_us,
            updated_at_us: t.now_us,
        }
    }
}

row! {
    /// The settings of `tenants` that can change; `None` leaves one as it is.
    #[derive(Default)]
    pub struct TenantChangesRow<S> {
        name: Option<S>,
        timezone: Option<S>,
        language: Option<S>,
        account_limit: Option<i64>,
        default_daily_quota: Option<i64>,
        app_key: Option<S>,
        api_token_sha256: Option<S>,
    }
}

row! {
    /// A new row of `accounts` (the database draws its id).
    pub struct NewAccountRow<S> in "accounts" {
        tenant_id: i64,
        username: S,
        user_type: i64,
        status: i64,
        phone: Option<S>,
        email: Option<S>,
        company_name: Option<S>,
        company_url: Option<S>,
        password_hash: Option<S>,
        api_user: Option<S>,
        api_key_sha256: Option<S>,
        daily_quota: i64,
        funding: S,
        created_at_us: i64,
        updated_at_us: i64,
    }
}

impl<'a> From<&NewAccount<'a>> for NewAccountRow<&'a str> {
    fn from(a: &NewAccount<'a>) -> Self {
        NewAccountRow {
            tenant_id: a.tenant_id.0,
            username: a.username,
            user_type: a.user_type,
            status: AccountStatus::Active.code(),
            phone: a.phone,
            email: a.email,
            company_name: a.company_name,
            company_url: a.company_url,
            password_hash: a.password_hash,
            api_user: a.api_user,
            api_key_sha256: a.api_key_sha256,
            daily_quota: a.daily_quota,
            funding: a.funding,
            created_at_us: a.now_us,
            updated_at_us: a.now_us,
        }
    }
}

row! {
    /// What a new account would clash with (a query's row): see `accounts::Clashes`.
    pub struct ClashCountsRow {
        usernames: i64,
        phones: i64,
        accounts: i64,
        account_limit: i64,
    }
}

row! {
    /// A new row of `wallets`, empty (the database draws its id).
    pub struct NewWalletRow<S> in "wallets" {
        tenant_id: i64,
        account_id: Option<i64>,
        purpose: S,
        currency: S,
        balance_minor: i64,
        floor_minor: Option<i64>,
        entry_seq: i64,
        created_at_us: i64,
    }
}

row! {
    /// A row of `products`: a product the tenant added to the catalog.
    pub struct ProductRow<S> in "products" {
        tenant_id: i64,
        code: S,
        name: S,
        unit: S,
        order_type: i64,
        grouping: S,
        /// What its tariffs price in.
        currency: S,
        supplement_order_type: i64,
        refund_order_type: Option<i64>,
        quantity_meaning: S,
        created_at_us: i64,
        kind: S,
        bill_category: S,
    }
}

impl<'a> ProductRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, p: &'a ProductRecord) -> Self {
        ProductRow {
            tenant_id: tenant.0,
            code: &p.code,
            name: &p.name,
            unit: &p.unit,
            order_type: p.order_type,
            grouping: &p.grouping,
            currency: p.currency.code(),
            supplement_order_type: p.supplement_order_type,
            refund_order_type: p.refund_order_type,
            quantity_meaning: &p.quantity_meaning,
            created_at_us: p.created_at_us,
            kind: &p.kind,
            bill_category: &p.bill_category,
        }
    }
}

impl TryFrom<ProductRow<String>> for ProductRecord {
    type Error = StorageError;

    fn try_from(row: ProductRow<String>) -> Result<ProductRecord> {
        Ok(ProductRecord {
            currency: currency(&row.currency, || format!("product {}", row.code))?,
            code: row.code,
            name: row.name,
            unit: row.unit,
            order_type: row.order_type,
            grouping: row.grouping,
            supplement_order_type: row.supplement_order_type,
            refund_order_type: row.refund_order_type,
            quantity_meaning: row.quantity_meaning,
            created_at_us: row.created_at_us,
            kind: row.kind,
            bill_category: row.bill_category,
        })
    }
}

row! {
    /// A new row of `tariffs`: a version of a price (the database draws its id).
    pub struct NewTariffRow<S> in "tariffs" {
        tenant_id: i64,
        account_id: Option<i64>,
        product_code: S,
        effective_from_us: i64,
        /// JSON of a `PriceModel`.
        model: S,
        created_at_us: i64,
    }
}

impl<'a> From<&NewTariff<'a>> for NewTariffRow<&'a str> {
    fn from(t: &NewTariff<'a>) -> Self {
        NewTariffRow { tenant_id: t.tenant.0, account_id: t.account.map(|a| a.0), product_code: t.product_code, effective_from_us: t.effective_from_us, model: t.model, created_at_us: t.now_us }
    }
}

// --- The ledger -------------------------------------------------------------

row! {
    /// A row of `transfers`: a request and its outcome.
    pub struct TransferRow<S> in "transfers" {
        id: i64,
        tenant_id: i64,
        idempotency_key: Option<S>,
        fingerprint: S,
        status: S,
        rejection: Option<S>,
        kind: S,
        debit_wallet_id: i64,
        credit_wallet_id: i64,
        amount_minor: i64,
        currency: S,
        memo: Option<S>,
        created_at_us: i64,
        debit_seq: Option<i64>,
        credit_seq: Option<i64>,
    }
}

const POSTED: &str = "posted";
const REJECTED: &str = "rejected";

impl<'a> From<&'a StoredTransfer> for TransferRow<&'a str> {
    fn from(t: &'a StoredTransfer) -> Self {
        let (status, rejection) = match t.outcome {
            Ok(()) => (POSTED, None),
            Err(reason) => (REJECTED, Some(reason.as_str())),
        };
        TransferRow {
            id: t.id.0,
            tenant_id: t.tenant_id.0,
            idempotency_key: t.idempotency_key.as_deref(),
            fingerprint: &t.fingerprint,
            status,
            rejection,
            kind: t.kind.as_str(),
            debit_wallet_id: t.debit.0,
            credit_wallet_id: t.credit.0,
            amount_minor: t.amount_minor,
            currency: t.currency.code(),
            memo: t.memo.as_deref(),
            created_at_us: t.created_at_us,
            debit_seq: t.entry_seqs.map(|(debit, _)| debit),
            credit_seq: t.entry_seqs.map(|(_, credit)| credit),
        }
    }
}

impl TryFrom<TransferRow<String>> for StoredTransfer {
    type Error = StorageError;

    fn try_from(row: TransferRow<String>) -> Result<StoredTransfer> {
        let place = || format!("transfer {}", row.id);
        let outcome = match (row.status.as_str(), row.rejection.as_deref(), row.debit_seq.zip(row.credit_seq)) {
            (POSTED, None, Some(_)) => Ok(()),
            (REJECTED, Some(reason), None) => Err(parse(reason, TransferRejection::from_str(reason).ok(), "rejection", place)?),
            _ => return Err(StorageError::corrupt(format!("status {:?} with rejection {:?} and entries {:?}/{:?} of {}", row.status, row.rejection, row.debit_seq, row.credit_seq, place()))),
        };
        Ok(StoredTransfer {
            id: TransferId(row.id),
            tenant_id: TenantId(row.tenant_id),
            kind: parse(&row.kind, TransferKind::from_str(&row.kind).ok(), "kind", place)?,
            currency: currency(&row.currency, place)?,
            idempotency_key: row.idempotency_key,
            fingerprint: row.fingerprint,
            outcome,
            debit: WalletId(row.debit_wallet_id),
            credit: WalletId(row.credit_wallet_id),
            amount_minor: row.amount_minor,
            memo: row.memo,
            created_at_us: row.created_at_us,
            entry_seqs: row.debit_seq.zip(row.credit_seq),
        })
    }
}

row! {
    /// A row of `entries`: one side of a posted transfer.
    pub struct EntryRow in "entries" {
        wallet_id: i64,
        seq: i64,
        tenant_id: i64,
        transfer_id: i64,
        amount_minor: i64,
        balance_after_minor: i64,
        created_at_us: i64,
    }
}

impl From<&NewEntry> for EntryRow {
    fn from(e: &NewEntry) -> Self {
        EntryRow {
            wallet_id: e.wallet.0,
            seq: e.seq,
            tenant_id: e.tenant_id.0,
            transfer_id: e.transfer_id.0,
            amount_minor: e.amount_minor,
            balance_after_minor: e.balance_after_minor,
            created_at_us: e.created_at_us,
        }
    }
}

impl From<EntryRow> for NewEntry {
    fn from(row: EntryRow) -> Self {
        NewEntry {
            wallet: WalletId(row.wallet_id),
            seq: row.seq,
            tenant_id: TenantId(row.tenant_id),
            transfer_id: TransferId(row.transfer_id),
            amount_minor: row.amount_minor,
            balance_after_minor: row.balance_after_minor,
            created_at_us: row.created_at_us,
        }
    }
}

row! {
    /// The key of an entry.
    pub struct EntryKey {
        wallet_id: i64,
        seq: i64,
    }
}

row! {
    /// The key of a transfer recorded under an idempotency key.
    pub struct TransferKey<S> {
        tenant_id: i64,
        idempotency_key: S,
    }
}

row! {
    /// A row of `wallets`.
    pub struct WalletRow<S> in "wallets" {
        id: i64,
        tenant_id: i64,
        account_id: Option<i64>,
        purpose: S,
        currency: S,
        balance_minor: i64,
        floor_minor: Option<i64>,
        entry_seq: i64,
        reserved_minor: i64,
        created_at_us: i64,
    }
}

impl WalletRow<String> {
    /// The wallet as a ledger batch holds it, with its owner.
    pub(crate) fn state(self) -> Result<(TenantId, WalletState)> {
        let record = WalletRecord::try_from(self)?;
        Ok((record.tenant_id, record.state()))
    }
}

impl TryFrom<WalletRow<String>> for WalletRecord {
    type Error = StorageError;

    fn try_from(row: WalletRow<String>) -> Result<WalletRecord> {
        let place = || format!("wallet {}", row.id);
        Ok(WalletRecord {
            id: WalletId(row.id),
            tenant_id: TenantId(row.tenant_id),
            account_id: row.account_id.map(AccountId),
            purpose: parse(&row.purpose, WalletPurpose::from_str(&row.purpose).ok(), "purpose", place)?,
            currency: currency(&row.currency, place)?,
            balance_minor: row.balance_minor,
            floor_minor: row.floor_minor,
            entry_seq: row.entry_seq,
            reserved_minor: row.reserved_minor,
            created_at_us: row.created_at_us,
        })
    }
}

row! {
    /// A wallet's new balance, last entry number and reservation, written
    /// only if the wallet still has the entry number, floor and reservation
    /// the batch read.
    pub struct WalletUpdate {
        id: i64,
        balance_minor: i64,
        entry_seq: i64,
        reserved_minor: i64,
        entry_seq_read: i64,
        floor_minor: Option<i64>,
        reserved_minor_read: i64,
    }
}

impl WalletUpdate {
    pub(crate) fn of(wallet: &WalletState, read: WalletRead) -> WalletUpdate {
        WalletUpdate {
            id: wallet.id.0,
            balance_minor: wallet.balance_minor,
            entry_seq: wallet.entry_seq,
            reserved_minor: wallet.reserved_minor,
            entry_seq_read: read.entry_seq,
            floor_minor: wallet.floor_minor,
            reserved_minor_read: read.reserved_minor,
        }
    }
}

row! {
    /// A row of `holds`: a pending transfer and where it stands.
    pub struct HoldRow<S> in "holds" {
        id: i64,
        tenant_id: i64,
        idempotency_key: Option<S>,
        fingerprint: S,
        state: S,
        rejection: Option<S>,
        kind: S,
        debit_wallet_id: i64,
        credit_wallet_id: i64,
        amount_minor: i64,
        currency: S,
        memo: Option<S>,
        timeout_at_us: i64,
        created_at_us: i64,
        resolved_at_us: Option<i64>,
        posted_transfer_id: Option<i64>,
        posted_amount_minor: Option<i64>,
    }
}

impl<'a> From<&'a StoredHold> for HoldRow<&'a str> {
    fn from(h: &'a StoredHold) -> Self {
        let resolution = HoldResolutionRow::of(h.hold.id, h.hold.state, h.resolved_at_us);
        HoldRow {
            id: h.hold.id.0,
            tenant_id: h.hold.tenant.0,
            idempotency_key: h.idempotency_key.as_deref(),
            fingerprint: &h.fingerprint,
            state: h.hold.state.as_str(),
            rejection: match h.hold.state {
                HoldState::Rejected(reason) => Some(reason.as_str()),
                _ => None,
            },
            kind: h.hold.kind.as_str(),
            debit_wallet_id: h.hold.intent.debit.0,
            credit_wallet_id: h.hold.intent.credit.0,
            amount_minor: h.hold.intent.amount.minor(),
            currency: h.hold.intent.currency.code(),
            memo: h.memo.as_deref(),
            timeout_at_us: h.hold.timeout_at_us,
            created_at_us: h.created_at_us,
            resolved_at_us: resolution.resolved_at_us,
            posted_transfer_id: resolution.posted_transfer_id,
            posted_amount_minor: resolution.posted_amount_minor,
        }
    }
}

impl TryFrom<HoldRow<String>> for StoredHold {
    type Error = StorageError;

    fn try_from(row: HoldRow<String>) -> Result<StoredHold> {
        let place = || format!("hold {}", row.id);
        let state = match (row.state.as_str(), row.rejection.as_deref(), row.posted_transfer_id.zip(row.posted_amount_minor)) {
            ("pending", None, None) => HoldState::Pending,
            ("posted", None, Some((transfer, amount_minor))) => HoldState::Posted { transfer: TransferId(transfer), amount_minor },
            ("voided", None, None) => HoldState::Voided,
            ("expired", None, None) => HoldState::Expired,
            ("rejected", Some(reason), None) => HoldState::Rejected(parse(reason, TransferRejection::from_str(reason).ok(), "rejection", place)?),
            _ => {
                return Err(StorageError::corrupt(format!(
                    "state {:?} with rejection {:?} and posting {:?}/{:?} of {}",
                    row.state,
                    row.rejection,
                    row.posted_transfer_id,
                    row.posted_amount_minor,
                    place()
                )));
            }
        };
        let amount = PositiveAmount::new(row.amount_minor).map_err(|_| StorageError::corrupt(format!("amount {} of {}", row.amount_minor, place())))?;
        Ok(StoredHold {
            hold: Hold {
                id: TransferId(row.id),
                tenant: TenantId(row.tenant_id),
                kind: parse(&row.kind, TransferKind::from_str(&row.kind).ok(), "kind", place)?,
                intent: TransferIntent {
                    debit: WalletId(row.debit_wallet_id),
                    credit: WalletId(row.credit_wallet_id),
                    amount,
                    currency: currency(&row.currency, place)?,
                    // The funds were checked when it was reserved; posting it
                    // moves reserved money, down to the floor.
                    debit_rule: DebitRule::ToFloor,
                },
                timeout_at_us: row.timeout_at_us,
                state,
            },
            fingerprint: row.fingerprint,
            memo: row.memo,
            idempotency_key: row.idempotency_key,
            created_at_us: row.created_at_us,
            resolved_at_us: row.resolved_at_us,
        })
    }
}

row! {
    /// A hold's resolution, written only while the hold is still pending.
    pub struct HoldResolutionRow<S> {
        id: i64,
        state: S,
        resolved_at_us: Option<i64>,
        posted_transfer_id: Option<i64>,
        posted_amount_minor: Option<i64>,
    }
}

impl HoldResolutionRow<&'static str> {
    pub(crate) fn of(id: TransferId, state: HoldState, at_us: Option<i64>) -> Self {
        let (posted_transfer_id, posted_amount_minor) = match state {
            HoldState::Posted { transfer, amount_minor } => (Some(transfer.0), Some(amount_minor)),
            _ => (None, None),
        };
        let resolved_at_us = match state {
            HoldState::Pending | HoldState::Rejected(_) => None,
            _ => at_us,
        };
        HoldResolutionRow { id: id.0, state: state.as_str(), resolved_at_us, posted_transfer_id, posted_amount_minor }
    }
}

row! {
    /// The key of a hold recorded under an idempotency key.
    pub struct HoldKey<S> {
        tenant_id: i64,
        idempotency_key: S,
    }
}

row! {
    /// A hold of a tenant, by id.
    pub struct HoldIdKey {
        tenant_id: i64,
        id: i64,
    }
}

row! {
    /// A row of `signed_requests`.
    pub struct SightingRow<S> in "signed_requests" {
        tenant_id: i64,
        signature: S,
        expires_at_ms: i64,
    }
}

impl<'a> From<&'a crate::signed_requests::Sighting> for SightingRow<&'a str> {
    fn from(s: &'a crate::signed_requests::Sighting) -> Self {
        SightingRow { tenant_id: s.tenant.0, signature: &s.signature, expires_at_ms: s.expires_at_ms }
    }
}

row! {
    /// A row of `operations`: one entry of the operation log.
    pub struct OperationRow<S> in "operations" {
        tenant_id: i64,
        at_us: i64,
        actor_kind: S,
        actor_account_id: Option<i64>,
        actor_name: Option<S>,
        kind: S,
        subject: S,
        detail: S,
        outcome: S,
    }
}

row! {
    /// An entry of the operation log as read back, with its id.
    pub struct StoredOperationRow<S> {
        id: i64,
        tenant_id: i64,
        at_us: i64,
        actor_kind: S,
        actor_account_id: Option<i64>,
        actor_name: Option<S>,
        kind: S,
        subject: S,
        detail: S,
        outcome: S,
    }
}

// --- Usage -------------------------------------------------------------------

row! {
    /// A row of `usage_events`: an event with its first outcome.
    pub struct UsageEventRow<S> in "usage_events" {
        tenant_id: i64,
        event_id: S,
        account_id: Option<i64>,
        username: S,
        product_code: S,
        quantity_milli: i64,
        occurred_at_us: i64,
        attributes: Option<S>,
        status: S,
        rejection: Option<S>,
        billable_milli: Option<i64>,
        rated_micros: Option<i64>,
        charge_cents: Option<i64>,
        ingested_at_us: i64,
        /// Minutes time cards covered (accepted events; NULL before migration 0009 means 0).
        card_milli: Option<i64>,
    }
}

const ACCEPTED: &str = "accepted";

impl<'a> UsageEventRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, ingested_at_us: i64, e: &NewUsageEvent<'a>) -> Self {
        let (status, rejection, accepted) = match e.outcome {
            Outcome::Accepted(a) => (ACCEPTED, None, Some(a)),
            Outcome::Rejected(r) => (REJECTED, Some(r.as_str()), None),
        };
        UsageEventRow {
            tenant_id: tenant.0,
            event_id: e.event_id,
            account_id: e.account_id.map(|a| a.0),
            username: e.username,
            product_code: e.product_code,
            quantity_milli: e.quantity_milli,
            occurred_at_us: e.occurred_at_us,
            attributes: e.attributes,
            status,
            rejection,
            billable_milli: accepted.map(|a| a.billable.milli()),
            rated_micros: accepted.map(|a| a.rated_micros),
            charge_cents: accepted.map(|a| a.charge_cents),
            ingested_at_us,
            card_milli: accepted.map(|a| a.card_minutes * subledger_domain::rating::MILLI),
        }
    }
}

impl UsageEventRow<String> {
    /// The event's first outcome.
    pub(crate) fn outcome(&self) -> Result<Outcome> {
        let place = || format!("usage event {:?}", self.event_id);
        match (self.status.as_str(), self.rejection.as_deref(), self.billable_milli, self.rated_micros, self.charge_cents) {
            (ACCEPTED, None, Some(billable), Some(rated_micros), Some(charge_cents)) => {
                let card_minutes = self.card_milli.unwrap_or(0) / subledger_domain::rating::MILLI;
                Ok(Outcome::Accepted(Accepted { billable: quantity(billable, "billable quantity", place)?, rated_micros, charge_cents, card_minutes }))
            }
            (REJECTED, Some(reason), None, None, None) => Ok(Outcome::Rejected(parse(reason, UsageRejection::parse(reason), "rejection", place)?)),
            _ => Err(StorageError::corrupt(format!("status {:?} with rejection {:?} and amounts of {}", self.status, self.rejection, place()))),
        }
    }
}

row! {
    /// A row of `usage_daily`: accepted usage of an account, product,
    /// grouping value and day.
    pub struct UsageDayRow<S> in "usage_daily" {
        tenant_id: i64,
        account_id: i64,
        product_code: S,
        day: S,
        attr: S,
        quantity_milli: i64,
        billable_milli: i64,
        events: i64,
        rated_micros: i64,
        charged_cents: i64,
        card_milli: i64,
    }
}

impl<'a> UsageDayRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, (account, product, day, attr): &'a RollupKey, a: &RollupAmounts) -> Self {
        UsageDayRow {
            tenant_id: tenant.0,
            account_id: account.0,
            product_code: product,
            day,
            attr,
            quantity_milli: a.quantity_milli,
            billable_milli: a.billable_milli,
            events: a.events,
            rated_micros: a.rated_micros,
            charged_cents: a.charged_cents,
            card_milli: a.card_milli,
        }
    }
}

row! {
    /// A row of `usage_monthly`: accepted usage of an account, product,
    /// grouping value and month.
    pub struct UsageMonthRow<S> in "usage_monthly" {
        tenant_id: i64,
        account_id: i64,
        product_code: S,
        month: S,
        attr: S,
        quantity_milli: i64,
        billable_milli: i64,
        events: i64,
        rated_micros: i64,
        charged_cents: i64,
        /// 1 when usage arrived after the month was closed.
        late: i64,
        card_milli: i64,
    }
}

impl<'a> UsageMonthRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, (account, product, month, attr): &'a RollupKey, a: &RollupAmounts, late: bool) -> Self {
        UsageMonthRow {
            tenant_id: tenant.0,
            account_id: account.0,
            product_code: product,
            month,
            attr,
            quantity_milli: a.quantity_milli,
            billable_milli: a.billable_milli,
            events: a.events,
            rated_micros: a.rated_micros,
            charged_cents: a.charged_cents,
            late: i64::from(late),
            card_milli: a.card_milli,
        }
    }
}

impl TryFrom<UsageMonthRow<String>> for MonthRow {
    type Error = StorageError;

    fn try_from(row: UsageMonthRow<String>) -> Result<MonthRow> {
        let amounts = RollupAmounts {
            quantity_milli: row.quantity_milli,
            billable_milli: row.billable_milli,
            events: row.events,
            rated_micros: row.rated_micros,
            charged_cents: row.charged_cents,
            card_milli: row.card_milli,
        };
        check_rollup(&amounts, || format!("the month rollup of account {} {} {} {:?}", row.account_id, row.product_code, row.month, row.attr))?;
        Ok(MonthRow { account: AccountId(row.account_id), product: row.product_code, month: row.month, attr: row.attr, amounts })
    }
}

/// Rollup quantities are quantities: within [`Quantity`]'s range.
pub(crate) fn check_rollup(amounts: &RollupAmounts, place: impl Fn() -> String) -> Result<()> {
    quantity(amounts.quantity_milli, "quantity", &place)?;
    quantity(amounts.billable_milli, "billable quantity", &place)?;
    quantity(amounts.card_milli, "card minutes", &place)?;
    Ok(())
}

row! {
    /// An account's day rollups of a product and day, summed over grouping
    /// values (a query's row).
    pub struct UsageDaySumRow<S> {
        product_code: S,
        day: S,
        quantity_milli: i64,
        billable_milli: i64,
        events: i64,
        rated_micros: i64,
        charged_cents: i64,
        card_milli: i64,
    }
}

impl TryFrom<UsageDaySumRow<String>> for DayUsage {
    type Error = StorageError;

    fn try_from(row: UsageDaySumRow<String>) -> Result<DayUsage> {
        let place = || format!("the day rollups of {} {}", row.product_code, row.day);
        Ok(DayUsage {
            quantity: quantity(row.quantity_milli, "quantity", place)?,
            billable: quantity(row.billable_milli, "billable quantity", place)?,
            card: quantity(row.card_milli, "card minutes", place)?,
            product_code: row.product_code,
            day: row.day,
            events: row.events,
            rated_micros: row.rated_micros,
            charged_cents: row.charged_cents,
        })
    }
}

row! {
    /// An account's month rollups of a product, summed over grouping values
    /// (a query's row).
    pub struct ProductMonthRow<S> {
        product_code: S,
        billable_milli: i64,
        events: i64,
        rated_micros: i64,
    }
}

impl ProductMonthRow<String> {
    pub(crate) fn product_month(self, account: AccountId, month: &str) -> Result<crate::statements::ProductMonth> {
        let billable = quantity(self.billable_milli, "billable quantity", || format!("the {month} rollups of {} of account {account}", self.product_code))?;
        Ok(crate::statements::ProductMonth { product_code: self.product_code, billable, events: self.events, rated_micros: self.rated_micros })
    }
}

row! {
    /// The key of a product's month rollups of an account.
    pub struct MonthKey<S> {
        account_id: i64,
        product_code: S,
        month: S,
    }
}

row! {
    /// A row of `quota_usage`: requests an account used on a day.
    pub struct QuotaRow<S> in "quota_usage" {
        account_id: i64,
        day: S,
        tenant_id: i64,
        used: i64,
    }
}

row! {
    /// The key of a usage event.
    pub struct UsageEventKey<S> {
        tenant_id: i64,
        event_id: S,
    }
}

row! {
    /// The key of an account's quota count on a day.
    pub struct QuotaKey<S> {
        account_id: i64,
        day: S,
    }
}

row! {
    /// A tenant's month: the key of a month close, and of the tenant's
    /// rollups of that month.
    pub struct TenantMonthKey<S> {
        tenant_id: i64,
        month: S,
    }
}

row! {
    /// One of a tenant's accounts and a currency: the key of its terms and
    /// its wallets of that currency.
    pub struct AccountCurrencyKey<S> {
        id: i64,
        tenant_id: i64,
        currency: S,
    }
}

row! {
    /// An account's terms for usage and its spendable wallets of one
    /// currency, if it has them (a query's row).
    pub struct UsageAccountRow<S> {
        id: i64,
        status: i64,
        /// 3: cancelled.
        access_state: i64,
        /// `own` or `tenant`: whose wallets are the primary and promo ones below.
        funding: S,
        billing_mode: S,
        daily_quota: i64,
        currency: S,
        primary_wallet_id: Option<i64>,
        promo_wallet_id: Option<i64>,
    }
}

/// [`UsageAccountRow`]'s query over `accounts a`, its columns by their names
/// (and `tenant_id`, to filter on), for the currency the SQL expression
/// `currency` names (a parameter or a key's column).
///
/// The wallets are those that pay for the account: its own, or for a
/// tenant-funded account (a seat) its tenant's own spendable wallets (the
/// tenant's wallets have no account). Usage charges and close settlements
/// both read them here, so both follow the funding mode.
pub(crate) fn usage_account_select(currency: &str) -> String {
    let wallet = |purpose: &str| {
        format!(
            "(CASE WHEN a.funding = 'tenant'
                THEN (SELECT id FROM wallets WHERE tenant_id = a.tenant_id AND account_id IS NULL AND purpose = '{purpose}' AND currency = {currency})
                ELSE (SELECT id FROM wallets WHERE account_id = a.id AND purpose = '{purpose}' AND currency = {currency}) END)"
        )
    };
    format!(
        "SELECT a.id, a.tenant_id, a.status, a.access_state, a.funding, a.billing_mode, a.daily_quota, {currency} AS currency,
            {} AS primary_wallet_id, {} AS promo_wallet_id
         FROM accounts a",
        wallet("primary"),
        wallet("promo")
    )
}

/// The accounts' terms, each with its wallets of the currencies the rows
/// name (a currency it has no wallets in is left out), in the order of the
/// rows' first appearance.
pub(crate) fn usage_accounts(rows: Vec<UsageAccountRow<String>>) -> Result<Vec<AccountTerms>> {
    let mut accounts: Vec<AccountTerms> = Vec::new();
    for row in rows {
        let place = || format!("account {}", row.id);
        let status = parse(&row.status.to_string(), AccountStatus::from_code(row.status), "status", place)?;
        let postpaid = match row.billing_mode.as_str() {
            "prepaid" => false,
            "postpaid" => true,
            other => return Err(StorageError::corrupt(format!("billing mode {other:?} of {}", place()))),
        };
        let currency = currency(&row.currency, place)?;
        let index = match accounts.iter().position(|a| a.id.0 == row.id) {
            Some(index) => index,
            None => {
                let seat = match row.funding.as_str() {
                    "own" => false,
                    "tenant" => true,
                    other => return Err(StorageError::corrupt(format!("funding {other:?} of {}", place()))),
                };
                let cancelled = match row.access_state {
                    1 | 2 => false,
                    3 => true,
                    other => return Err(StorageError::corrupt(format!("access state {other} of {}", place()))),
                };
                let terms = AccountTerms { id: AccountId(row.id), active: status == AccountStatus::Active, cancelled, seat, postpaid, daily_quota: row.daily_quota, wallets: Default::default() };
                accounts.push(terms);
                accounts.len() - 1
            }
        };
        if let Some((primary, promo)) = row.primary_wallet_id.zip(row.promo_wallet_id) {
            accounts[index].wallets.insert(currency, SpendableWallets { primary: WalletId(primary), promo: WalletId(promo) });
        }
    }
    Ok(accounts)
}

// --- Month close -------------------------------------------------------------

row! {
    /// A row of `month_closes`.
    pub struct MonthCloseRow<S> in "month_closes" {
        tenant_id: i64,
        month: S,
        closed_at_us: i64,
        /// How many bills the close wrote.
        accounts: i64,
    }
}

row! {
    /// A row of `month_closings`: a month whose close is under way.
    pub struct MonthClosingRow<S> in "month_closings" {
        tenant_id: i64,
        month: S,
        started_at_us: i64,
        /// The accounts up to this id are billed.
        last_account_id: i64,
        chunks: i64,
        bills: i64,
    }
}

impl<'a> MonthClosingRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, month: &'a str, p: &CloseProgress) -> Self {
        MonthClosingRow { tenant_id: tenant.0, month, started_at_us: p.started_at_us, last_account_id: p.last_account.0, chunks: p.chunks, bills: p.bills }
    }
}

impl MonthClosingRow<String> {
    pub(crate) fn progress(self) -> CloseProgress {
        CloseProgress { started_at_us: self.started_at_us, last_account: AccountId(self.last_account_id), chunks: self.chunks, bills: self.bills }
    }
}

row! {
    /// The accounts of a tenant's month that one chunk of its close reads
    /// and writes: ids in `(after_account_id, through_account_id]`.
    pub struct ChunkKey<S> {
        tenant_id: i64,
        month: S,
        after_account_id: i64,
        through_account_id: i64,
    }
}

row! {
    /// A row of `bills`: an account's bill of a month in one currency.
    pub struct BillRow<S> in "bills" {
        tenant_id: i64,
        account_id: i64,
        month: S,
        currency: S,
        total_cents: i64,
        created_at_us: i64,
    }
}

impl TryFrom<BillRow<String>> for BillRecord {
    type Error = StorageError;

    fn try_from(row: BillRow<String>) -> Result<BillRecord> {
        let place = || format!("the bill of account {} {}", row.account_id, row.month);
        Ok(BillRecord {
            account: AccountId(row.account_id),
            currency: currency(&row.currency, place)?,
            month: month(row.month.clone(), place)?,
            total_cents: row.total_cents,
            created_at_us: row.created_at_us,
        })
    }
}

row! {
    /// A row of `bill_lines`.
    pub struct BillLineRow<S> in "bill_lines" {
        tenant_id: i64,
        account_id: i64,
        month: S,
        /// The bill's currency, which is its product's.
        currency: S,
        line_no: i64,
        /// `usage` or `supplement`.
        kind: S,
        for_month: S,
        product_code: S,
        order_type: i64,
        description: S,
        unit: S,
        quantity_milli: i64,
        money_cents: i64,
        previous_quantity_milli: Option<i64>,
        previous_money_cents: Option<i64>,
        /// JSON of the line's detail.
        detail: S,
        /// Minutes time cards covered (beside `quantity_milli`, which money paid for).
        card_milli: i64,
    }
}

impl<'a> BillLineRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, month: &'a str, l: &'a NewBillLine<'a>) -> Self {
        BillLineRow {
            tenant_id: tenant.0,
            account_id: l.account.0,
            month,
            currency: l.currency.code(),
            line_no: l.line_no,
            kind: l.kind,
            for_month: l.for_month,
            product_code: l.product_code,
            order_type: l.order_type,
            description: l.description,
            unit: l.unit,
            quantity_milli: l.quantity_milli,
            money_cents: l.money_cents,
            previous_quantity_milli: l.previous.map(|(quantity_milli, _)| quantity_milli),
            previous_money_cents: l.previous.map(|(_, money_cents)| money_cents),
            detail: &l.detail,
            card_milli: l.card_milli,
        }
    }
}

impl TryFrom<BillLineRow<String>> for LineRecord {
    type Error = StorageError;

    fn try_from(row: BillLineRow<String>) -> Result<LineRecord> {
        let place = || format!("bill line {} of account {} {} {}", row.line_no, row.account_id, row.month, row.currency);
        let kind = match row.kind.as_str() {
            "usage" => LineKind::Usage,
            "supplement" => LineKind::Supplement,
            other => return Err(StorageError::corrupt(format!("kind {other:?} of {}", place()))),
        };
        let previous = match (row.previous_quantity_milli, row.previous_money_cents) {
            (Some(milli), Some(cents)) => Some((quantity(milli, "previous quantity", place)?, cents)),
            (None, None) => None,
            (milli, cents) => return Err(StorageError::corrupt(format!("previous quantity {milli:?} with previous money {cents:?} of {}", place()))),
        };
        Ok(LineRecord {
            account: AccountId(row.account_id),
            currency: currency(&row.currency, place)?,
            line_no: row.line_no,
            kind,
            for_month: month(row.for_month.clone(), place)?,
            quantity: quantity(row.quantity_milli, "quantity", place)?,
            card: quantity(row.card_milli, "card minutes", place)?,
            previous,
            month: month(row.month.clone(), place)?,
            product_code: row.product_code,
            order_type: row.order_type,
            description: row.description,
            unit: row.unit,
            money_cents: row.money_cents,
            detail: row.detail,
        })
    }
}

row! {
    /// A row of `settlements`.
    pub struct SettlementRow<S> in "settlements" {
        tenant_id: i64,
        account_id: i64,
        product_code: S,
        month: S,
        /// Its product's currency, in which it moved money.
        currency: S,
        order_type: i64,
        amount_cents: i64,
        /// `posted`, or `outstanding` when the wallets could not pay.
        status: S,
        transfer_id: Option<i64>,
        created_at_us: i64,
    }
}

const OUTSTANDING: &str = "outstanding";

impl<'a> SettlementRow<&'a str> {
    pub(crate) fn of(tenant: TenantId, month: &'a str, created_at_us: i64, s: &'a NewSettlement<'a>) -> Self {
        SettlementRow {
            tenant_id: tenant.0,
            account_id: s.account.0,
            product_code: s.product_code,
            month,
            currency: s.currency.code(),
            order_type: s.order_type,
            amount_cents: s.amount_cents,
            status: if s.transfer_id.is_some() { POSTED } else { OUTSTANDING },
            transfer_id: s.transfer_id.map(|t| t.0),
            created_at_us,
        }
    }
}

impl TryFrom<SettlementRow<String>> for SettlementRecord {
    type Error = StorageError;

    fn try_from(row: SettlementRow<String>) -> Result<SettlementRecord> {
        let place = || format!("settlement {} {} {}", row.account_id, row.product_code, row.month);
        let transfer = match (row.status.as_str(), row.transfer_id) {
            (POSTED, Some(id)) => Some(TransferId(id)),
            (OUTSTANDING, None) => None,
            _ => return Err(StorageError::corrupt(format!("status {:?} with transfer {:?} of {}", row.status, row.transfer_id, place()))),
        };
        Ok(SettlementRecord {
            account: AccountId(row.account_id),
            currency: currency(&row.currency, place)?,
            month: month(row.month.clone(), place)?,
            product_code: row.product_code,
            order_type: row.order_type,
            amount_cents: row.amount_cents,
            transfer,
            created_at_us: row.created_at_us,
        })
    }
}

row! {
    /// What earlier bills counted for a product's month of an account (a query's row).
    pub struct PreviousBilledRow<S> {
        account_id: i64,
        product_code: S,
        for_month: S,
        quantity_milli: i64,
        money_cents: i64,
    }
}

impl PreviousBilledRow<String> {
    pub(crate) fn entry(self) -> ((AccountId, String, String), (i64, i64)) {
        ((AccountId(self.account_id), self.product_code, self.for_month), (self.quantity_milli, self.money_cents))
    }
}

row! {
    /// An amount per account and product (a query's row).
    pub struct ProductTotalRow<S> {
        account_id: i64,
        product_code: S,
        cents: i64,
    }
}

impl ProductTotalRow<String> {
    pub(crate) fn entry(self) -> ((AccountId, String), i64) {
        ((AccountId(self.account_id), self.product_code), self.cents)
    }
}

/// A stored month (`YYYY-MM`), checked.
pub(crate) fn month(text: String, place: impl FnOnce() -> String) -> Result<String> {
    parsed_month(&text, place)?;
    Ok(text)
}

/// A stored month (`YYYY-MM`), parsed.
pub(crate) fn parsed_month(text: &str, place: impl FnOnce() -> String) -> Result<Month> {
    Month::parse_dashed(text).map_err(|_| StorageError::corrupt(format!("month {text:?} of {}", place())))
}

// --- Seats: time cards and subscriptions -------------------------------------

row! {
    /// A new row of `time_cards` (its id is the database's).
    pub struct NewTimeCardRow<S> in "time_cards" {
        tenant_id: i64,
        account_id: Option<i64>,
        name: S,
        minutes_total: i64,
        minutes_left: i64,
        effective_at_us: i64,
        expires_at_us: i64,
        state: S,
        note: S,
        created_at_us: i64,
        updated_at_us: i64,
    }
}

row! {
    /// A row of `time_cards` as read.
    pub struct TimeCardRow<S> {
        id: i64,
        tenant_id: i64,
        account_id: Option<i64>,
        name: S,
        minutes_total: i64,
        minutes_left: i64,
        effective_at_us: i64,
        expires_at_us: i64,
        state: S,
        note: S,
        created_at_us: i64,
    }
}

impl TimeCardRow<String> {
    /// The card as the usage engine sees it.
    pub(crate) fn card(&self) -> Result<subledger_domain::timecards::Card> {
        use subledger_domain::timecards::{Card, CardStatus};
        let status = parse(&self.state, CardStatus::parse(&self.state), "state", || format!("time card {}", self.id))?;
        Ok(Card {
            id: subledger_domain::ids::TimeCardId(self.id),
            account: self.account_id.map(AccountId),
            minutes_left: self.minutes_left,
            effective_at_us: self.effective_at_us,
            expires_at_us: self.expires_at_us,
            status,
        })
    }
}

row! {
    /// Whose usable cards a usage batch reads: an account's (or, with no
    /// account, the tenant's shared ones) that expire after `after_us`.
    pub struct CardHolderKey {
        tenant_id: i64,
        account_id: Option<i64>,
        after_us: i64,
    }
}

row! {
    /// A card's minutes left, written only if still as read.
    pub struct CardUpdate {
        id: i64,
        minutes_left: i64,
        minutes_left_read: i64,
        updated_at_us: i64,
    }
}

row! {
    /// A new row of `subscriptions`.
    pub struct NewSubscriptionRow<S> in "subscriptions" {
        tenant_id: i64,
        account_id: i64,
        product_code: S,
        from_us: i64,
        until_us: Option<i64>,
        created_at_us: i64,
    }
}

row! {
    /// A row of `subscriptions` as read.
    pub struct SubscriptionRow<S> {
        id: i64,
        account_id: i64,
        product_code: S,
        from_us: i64,
        until_us: Option<i64>,
    }
}

row! {
    /// The subscriptions of a chunk's accounts in force during `[from_us, until_us)`.
    pub struct ChunkWindowKey {
        tenant_id: i64,
        after_account_id: i64,
        through_account_id: i64,
        from_us: i64,
        until_us: i64,
    }
}
