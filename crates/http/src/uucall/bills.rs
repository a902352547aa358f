//! Tag `account`: charge bills (`chargebill`), basic bills by day
//! (`chargebill/basicbill`), function bills by day (`chargebill/funbill`),
//! and the same three as files (`file/chargebill…`).
//!
//! The JSON views and the files are rendered from the same service
//! projections (`subledger_service::seat_bills`), so a file holds exactly
//! the numbers of its view: `ChargeBill` amounts in yuan with two decimals,
//! `BasicBill` and `FunBill` amounts in integer fen.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::Serialize;
use subledger_domain::access::app;
use subledger_domain::calendar::{Day, Month};
use subledger_domain::paging::Page;
use subledger_service::accounts::Account;
use subledger_service::exports::{Cell, ExportFormat, TABLE_ROWS_MAX, Table};
use subledger_service::seat_bills::{BasicBillDay, CHARGE_BILL_PAGE_MAX, ChargeBillRow, FunctionBillDay};
use subledger_service::{Resource, ServiceError};

use super::params::Params;
use super::{Auth, Refusal, list};
use crate::AppState;
use crate::numbers::Yuan;

/// `ChargeBill`: one sub-user's bill of a month, in yuan (the spec's
/// `number (double)`, written with two decimals, never through a float).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChargeBill {
    sub_user_name: String,
    time: String,
    basic_bill: Yuan,
    function_bill: Yuan,
    total: Yuan,
}

impl From<&ChargeBillRow> for ChargeBill {
    fn from(r: &ChargeBillRow) -> Self {
        ChargeBill { sub_user_name: r.username.clone(), time: r.month.to_string(), basic_bill: Yuan(r.basic_cents), function_bill: Yuan(r.function_cents), total: Yuan(r.total_cents) }
    }
}

/// `BasicBill`: one day of a sub-user's basic bill, in fen. `id` is the
/// sub-user's id (the model names no account otherwise); a row is the pair
/// (`id`, `daily_symbol`).
#[derive(Serialize)]
struct BasicBill {
    id: i64,
    daily_symbol: i64,
    day_seat: i64,
    day_callin: i64,
    day_callout: i64,
    day_intvoice: i64,
    day_sms: i64,
    /// The day's whole basic bill: the columns plus products of no column.
    total: i64,
}

impl BasicBill {
    fn of(id: i64, d: &BasicBillDay) -> BasicBill {
        BasicBill {
            id,
            daily_symbol: daily_symbol(d.day),
            day_seat: d.seat_cents,
            day_callin: d.call_in_cents,
            day_callout: d.call_out_cents,
            day_intvoice: d.internal_voice_cents,
            day_sms: d.sms_cents,
            total: d.total_cents,
        }
    }

    const COLUMNS: [&'static str; 8] = ["id", "daily_symbol", "day_seat", "day_callin", "day_callout", "day_intvoice", "day_sms", "total"];

    fn cells(&self) -> Vec<Cell> {
        [self.id, self.daily_symbol, self.day_seat, self.day_callin, self.day_callout, self.day_intvoice, self.day_sms, self.total].into_iter().map(Cell::Whole).collect()
    }
}

/// `FunBill`: one function fee or rental on one day, in fen. `id` is the
/// sub-user's id, as in `BasicBill`; a row is (`id`, `daily_symbol`, `name`).
#[derive(Serialize)]
struct FunBill {
    id: i64,
    daily_symbol: i64,
    name: String,
    day_account: i64,
}

impl FunBill {
    fn of(id: i64, d: &FunctionBillDay) -> FunBill {
        FunBill { id, daily_symbol: daily_symbol(d.day), name: d.name.clone(), day_account: d.amount_cents }
    }

    const COLUMNS: [&'static str; 4] = ["id", "daily_symbol", "name", "day_account"];

    fn cells(&self) -> Vec<Cell> {
        vec![Cell::Whole(self.id), Cell::Whole(self.daily_symbol), Cell::Text(self.name.clone()), Cell::Whole(self.day_account)]
    }
}

/// A day as the spec's int64 `daily_symbol`: `yyyyMMdd` (20240315).
fn daily_symbol(day: Day) -> i64 {
    i64::from(day.0.year()) * 10_000 + i64::from(day.0.month()) * 100 + i64::from(day.0.day())
}

/// The parameters every bill operation reads after its application: `uidName`
/// (and `uid`, if given) and `time`.
fn bill_month(auth: &Auth, params: &Params) -> Result<Month, Refusal> {
    auth.require(app::BILLING_VIEW)?;
    params.check_uid_name(&auth.tenant)?;
    params.month(&auth.tenant)
}

/// The sub-user `subUserName` names (required); 424 naming it when it names nobody here.
async fn sub_user(state: &AppState, auth: &Auth, params: &Params) -> Result<Account, Refusal> {
    let name = params.required("subUserName")?;
    state.services.account(&auth.tenant, name).await.map_err(|e| Refusal::from_service(e, |_| "subUserName"))
}

/// The optional `account` filter of the charge bill; 424 `account` when it names nobody here.
fn account_field(resource: Resource) -> &'static str {
    match resource {
        Resource::Account => "account",
        other => super::error::default_field(other),
    }
}

/// A page of `items` (a bounded list: at most a month of days per product)
/// with the count of all of them.
fn paged<T>(items: Vec<T>, page: Page) -> (i64, Vec<T>) {
    let total = items.len() as i64;
    let start = usize::try_from(page.offset).unwrap_or(usize::MAX);
    (total, items.into_iter().skip(start).take(page.limit as usize).collect())
}

/// `GET /account/chargebill`: each sub-user's bill of `time` (or the one
/// `account` names), a page of sub-users at a time.
pub async fn charge_bills(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let page = params.page()?;
    let account = params.text("account");
    let (total, rows) = state.services.charge_bills(&auth.tenant, month, account, page).await.map_err(|e| Refusal::from_service(e, account_field))?;
    Ok(list(Some(total), rows.iter().map(ChargeBill::from).collect()))
}

/// `GET /account/chargebill/basicbill`: `subUserName`'s basic bill of `time`, by day.
pub async fn basic_bill(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let page = params.page()?;
    let account = sub_user(&state, &auth, &params).await?;
    let days = state.services.basic_bill_days(&auth.tenant, account.id, month).await?;
    let (total, days) = paged(days, page);
    Ok(list(Some(total), days.iter().map(|d| BasicBill::of(account.id.0, d)).collect()))
}

/// `GET /account/chargebill/funbill`: `subUserName`'s function fees and rentals of `time`, by day.
pub async fn function_bill(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let page = params.page()?;
    let account = sub_user(&state, &auth, &params).await?;
    let days = state.services.function_bill_days(&auth.tenant, account.id, month).await?;
    let (total, days) = paged(days, page);
    Ok(list(Some(total), days.iter().map(|d| FunBill::of(account.id.0, d)).collect()))
}

/// `format`: `xlsx` (the default) or `csv`.
fn file_format(params: &Params) -> Result<ExportFormat, Refusal> {
    match params.text("format") {
        None => Ok(ExportFormat::Xlsx),
        Some(text) => ExportFormat::parse(text).ok_or_else(|| Refusal::invalid("format", "must be xlsx or csv")),
    }
}

/// A file to download: its content type, and `Content-Disposition` naming it
/// `{stem}.{xlsx|csv}` (stems are built from ids, usernames and months:
/// ASCII letters, digits, `_` and `-` only, so the name needs no quoting).
fn file(stem: String, format: ExportFormat, table: Table) -> Result<Response, Refusal> {
    let bytes = table.write(format)?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{stem}.{}\"", format.extension())).map_err(|_| Refusal::Internal)?;
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

/// `GET /account/file/chargebill`: every sub-user's charge bill of `time`
/// (or the one `account` names) as a file, one row per sub-user.
pub async fn charge_bills_file(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let format = file_format(&params)?;
    let account = params.text("account");
    if format == ExportFormat::Csv {
        return charge_bills_csv(auth, state, month, account.map(str::to_owned)).await;
    }
    let mut rows: Vec<ChargeBillRow> = Vec::new();
    // Pages of the service's largest size until every sub-user is in; the
    // enterprise's sub-user limit bounds them, and the file's row limit too.
    loop {
        let page = Page { offset: rows.len() as i64, limit: CHARGE_BILL_PAGE_MAX };
        let (total, more) = state.services.charge_bills(&auth.tenant, month, account, page).await.map_err(|e| Refusal::from_service(e, account_field))?;
        let got = more.len();
        rows.extend(more);
        if got == 0 || rows.len() as i64 >= total {
            break;
        }
        if rows.len() >= TABLE_ROWS_MAX || rows.len() as i64 > Page::OFFSET_MAX {
            return Err(ServiceError::Invalid { field: "export", reason: format!("a file holds at most {TABLE_ROWS_MAX} rows") }.into());
        }
    }
    let table = Table { sheet: format!("chargebill {month}"), columns: CHARGE_BILL_COLUMNS.to_vec(), rows: rows.iter().map(charge_bill_cells).collect() };
    file(charge_bill_stem(&auth, month, account.is_some(), rows.first()), format, table)
}

/// The charge-bill file's name without its extension. With `account`, the
/// name as stored (a username), not as given, goes into the header.
fn charge_bill_stem(auth: &Auth, month: Month, for_account: bool, first: Option<&ChargeBillRow>) -> String {
    match (for_account, first) {
        (true, Some(row)) => format!("chargebill-{}-{}-{month}", auth.tenant.id.0, row.username),
        _ => format!("chargebill-{}-{month}", auth.tenant.id.0),
    }
}

const CHARGE_BILL_COLUMNS: [&str; 5] = ["subUserName", "time", "basicBill", "functionBill", "total"];

fn charge_bill_cells(r: &ChargeBillRow) -> Vec<Cell> {
    vec![Cell::Text(r.username.clone()), Cell::Text(r.month.to_string()), Cell::Money(r.basic_cents), Cell::Money(r.function_cents), Cell::Money(r.total_cents)]
}

/// The charge bills as CSV, streamed a page of sub-users at a time, so that
/// an enterprise of any size costs one page of memory. The first page is
/// read before answering (a refusal is still a 424); a failure after it ends
/// the body early, which the client sees as a cut transfer.
async fn charge_bills_csv(auth: Auth, state: AppState, month: Month, account: Option<String>) -> Result<Response, Refusal> {
    let first = Page { offset: 0, limit: CHARGE_BILL_PAGE_MAX };
    let (total, rows) = state.services.charge_bills(&auth.tenant, month, account.as_deref(), first).await.map_err(|e| Refusal::from_service(e, account_field))?;
    let stem = charge_bill_stem(&auth, month, account.is_some(), rows.first());
    let mut head = subledger_service::exports::csv_header(&CHARGE_BILL_COLUMNS)?;
    head.extend(subledger_service::exports::csv_rows(&rows.iter().map(charge_bill_cells).collect::<Vec<_>>())?);
    let sent = rows.len() as i64;
    let tenant = auth.tenant;
    let next_parts = futures_util::stream::unfold((state, tenant, account, sent, rows.is_empty()), move |(state, tenant, account, sent, done)| async move {
        if done || sent >= total || sent > Page::OFFSET_MAX {
            return None;
        }
        let page = Page { offset: sent, limit: CHARGE_BILL_PAGE_MAX };
        let part = match state.services.charge_bills(&tenant, month, account.as_deref(), page).await {
            Ok((_, rows)) => subledger_service::exports::csv_rows(&rows.iter().map(charge_bill_cells).collect::<Vec<_>>()).map(|bytes| (bytes, rows.len() as i64)),
            Err(error) => Err(error),
        };
        match part {
            Ok((bytes, got)) => Some((Ok::<_, ServiceError>(axum::body::Bytes::from(bytes)), (state, tenant, account, sent + got, got == 0))),
            Err(error) => {
                tracing::warn!(%error, "a charge bill download stopped part way");
                Some((Err(error), (state, tenant, account, sent, true)))
            }
        }
    });
    let parts = futures_util::StreamExt::chain(futures_util::stream::iter([Ok(axum::body::Bytes::from(head))]), next_parts);
    let mut response = axum::body::Body::from_stream(parts).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ExportFormat::Csv.content_type()));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{stem}.csv\"")).map_err(|_| Refusal::Internal)?;
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    Ok(response)
}

/// `GET /account/file/chargebill/basicbill`: `subUserName`'s basic bill of `time` as a file.
pub async fn basic_bill_file(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let format = file_format(&params)?;
    let account = sub_user(&state, &auth, &params).await?;
    let days = state.services.basic_bill_days(&auth.tenant, account.id, month).await?;
    let rows = days.iter().map(|d| BasicBill::of(account.id.0, d).cells()).collect();
    let table = Table { sheet: format!("basicbill {month}"), columns: BasicBill::COLUMNS.to_vec(), rows };
    file(format!("basicbill-{}-{month}", account.username), format, table)
}

/// `GET /account/file/chargebill/funbill`: `subUserName`'s function bill of `time` as a file.
pub async fn function_bill_file(auth: Auth, State(state): State<AppState>, params: Params) -> Result<Response, Refusal> {
    let month = bill_month(&auth, &params)?;
    let format = file_format(&params)?;
    let account = sub_user(&state, &auth, &params).await?;
    let days = state.services.function_bill_days(&auth.tenant, account.id, month).await?;
    let rows = days.iter().map(|d| FunBill::of(account.id.0, d).cells()).collect();
    let table = Table { sheet: format!("funbill {month}"), columns: FunBill::COLUMNS.to_vec(), rows };
    file(format!("funbill-{}-{month}", account.username), format, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_symbol_is_the_date_as_digits() {
        let day = |text: &str| Day(text.parse().unwrap());
        assert_eq!(daily_symbol(day("2024-03-05")), 20_240_305);
        assert_eq!(daily_symbol(day("1999-12-31")), 19_991_231);
    }

    #[test]
    fn pages_of_a_bounded_list() {
        let items: Vec<i64> = (1..=31).collect();
        assert_eq!(paged(items.clone(), Page { offset: 0, limit: 10 }), (31, (1..=10).collect()));
        assert_eq!(paged(items.clone(), Page { offset: 30, limit: 10 }), (31, vec![31]));
        assert_eq!(paged(items, Page { offset: 40, limit: 10 }), (31, vec![]));
    }
}
