//! A month's bills as files: CSV and XLSX, one row per bill line.

use subledger_domain::calendar::Month;
use subledger_domain::money::format_minor;

use crate::Services;
use crate::billing::BillView;
use crate::error::{ServiceError, ServiceResult};
use crate::tenants::Tenant;

/// The file formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<ExportFormat> {
        match text {
            "csv" => Some(ExportFormat::Csv),
            "xlsx" => Some(ExportFormat::Xlsx),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        }
    }
}

/// The columns of an export, in order. `money` and `bill_total` are in
/// `currency`, the bill's (an account has one bill per currency).
pub const COLUMNS: [&str; 12] = ["username", "month", "line", "kind", "for_month", "order_type", "description", "quantity", "unit", "money", "bill_total", "currency"];

/// One cell of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    /// A whole number (fen, counts, ids): a number cell in XLSX.
    Whole(i64),
    /// Money in minor units, written with two decimals (`12.34`): a number
    /// cell formatted `0.00` in XLSX (exact: cents fit a double exactly).
    Money(i64),
}

/// A file's content: a sheet name, a header row and the rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub sheet: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// Most rows a file may hold (XLSX allows about a million; a bill is far smaller).
pub const TABLE_ROWS_MAX: usize = 1_000_000;

impl Table {
    /// The table as a file in `format`.
    pub fn write(&self, format: ExportFormat) -> ServiceResult<Vec<u8>> {
        let failed = |e: String| ServiceError::Invalid { field: "export", reason: e };
        if self.rows.len() > TABLE_ROWS_MAX {
            return Err(failed(format!("at most {TABLE_ROWS_MAX} rows")));
        }
        match format {
            ExportFormat::Csv => {
                let mut bytes = csv_header(&self.columns)?;
                bytes.extend(csv_rows(&self.rows)?);
                Ok(bytes)
            }
            ExportFormat::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                let sheet = book.add_worksheet();
                sheet.set_name(&self.sheet).map_err(|e| failed(e.to_string()))?;
                let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
                let bold = rust_xlsxwriter::Format::new().set_bold();
                for (col, name) in self.columns.iter().enumerate() {
                    sheet.write_string_with_format(0, col as u16, *name, &bold).map_err(|e| failed(e.to_string()))?;
                }
                for (i, row) in self.rows.iter().enumerate() {
                    let r = i as u32 + 1;
                    for (col, cell) in row.iter().enumerate() {
                        let col = col as u16;
                        match cell {
                            Cell::Text(text) => sheet.write_string(r, col, text),
                            Cell::Whole(value) => sheet.write_number(r, col, *value as f64),
                            Cell::Money(minor) => sheet.write_number_with_format(r, col, *minor as f64 / 100.0, &money),
                        }
                        .map_err(|e| failed(e.to_string()))?;
                    }
                }
                book.save_to_buffer().map_err(|e| failed(e.to_string()))
            }
        }
    }
}

fn csv_failed(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid { field: "export", reason: error.to_string() }
}

/// A CSV file's header line: a file sent in parts starts with it.
pub fn csv_header(columns: &[&str]) -> ServiceResult<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(columns).map_err(csv_failed)?;
    writer.into_inner().map_err(csv_failed)
}

/// CSV lines of `rows` (no header): one part of a file sent in parts.
pub fn csv_rows(rows: &[Vec<Cell>]) -> ServiceResult<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        let cells = row.iter().map(|cell| match cell {
            Cell::Text(text) => text.clone(),
            Cell::Whole(value) => value.to_string(),
            Cell::Money(minor) => format_minor(*minor),
        });
        writer.write_record(cells).map_err(csv_failed)?;
    }
    writer.into_inner().map_err(csv_failed)
}

/// One row per bill line; money as money cells.
fn rows(bills: &[(String, BillView)]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for (username, bill) in bills {
        for (i, line) in bill.lines.iter().enumerate() {
            let text = |t: String| Cell::Text(t);
            rows.push(vec![
                text(username.clone()),
                text(bill.month.clone()),
                text((i + 1).to_string()),
                text(line.kind.as_str().to_owned()),
                text(line.for_month.clone()),
                text(line.order_type.to_string()),
                text(line.description.clone()),
                text(line.quantity.to_string()),
                text(line.unit.clone()),
                Cell::Money(line.money_cents),
                Cell::Money(bill.total_cents),
                text(bill.currency.code().to_owned()),
            ]);
        }
    }
    rows
}

impl Services {
    /// The bills of a closed month, every account, as a file.
    pub async fn export_bills(&self, tenant: &Tenant, month: Month, format: ExportFormat) -> ServiceResult<Vec<u8>> {
        if !self.closed_months(tenant).await?.contains(&month) {
            return Err(ServiceError::Invalid { field: "month", reason: format!("{month} is not closed; close it first") });
        }
        let bills = self.month_bills(tenant, month, false).await?;
        Table { sheet: format!("bills {month}"), columns: COLUMNS.to_vec(), rows: rows(&bills) }.write(format)
    }
}
