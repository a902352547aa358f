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

/// The columns that hold money, written as numbers in XLSX.
const MONEY_COLUMNS: [usize; 2] = [9, 10];

/// One row per bill line: text cells, and money as cents for the XLSX number cells.
fn rows(bills: &[(String, BillView)]) -> Vec<([String; 12], i64, i64)> {
    let mut rows = Vec::new();
    for (username, bill) in bills {
        for (i, line) in bill.lines.iter().enumerate() {
            rows.push((
                [
                    username.clone(),
                    bill.month.clone(),
                    (i + 1).to_string(),
                    line.kind.as_str().to_owned(),
                    line.for_month.clone(),
                    line.order_type.to_string(),
                    line.description.clone(),
                    line.quantity.to_string(),
                    line.unit.clone(),
                    format_minor(line.money_cents),
                    format_minor(bill.total_cents),
                    bill.currency.code().to_owned(),
                ],
                line.money_cents,
                bill.total_cents,
            ));
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
        let rows = rows(&bills);
        let failed = |e: String| ServiceError::Invalid { field: "export", reason: e };
        match format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::new());
                writer.write_record(COLUMNS).map_err(|e| failed(e.to_string()))?;
                for (cells, _, _) in &rows {
                    writer.write_record(cells).map_err(|e| failed(e.to_string()))?;
                }
                writer.into_inner().map_err(|e| failed(e.to_string()))
            }
            ExportFormat::Xlsx => {
                let mut book = rust_xlsxwriter::Workbook::new();
                let sheet = book.add_worksheet();
                sheet.set_name(format!("bills {month}")).map_err(|e| failed(e.to_string()))?;
                let money = rust_xlsxwriter::Format::new().set_num_format("0.00");
                let bold = rust_xlsxwriter::Format::new().set_bold();
                for (col, name) in COLUMNS.iter().enumerate() {
                    sheet.write_string_with_format(0, col as u16, *name, &bold).map_err(|e| failed(e.to_string()))?;
                }
                for (i, (cells, line_cents, total_cents)) in rows.iter().enumerate() {
                    let row = i as u32 + 1;
                    for (col, cell) in cells.iter().enumerate().filter(|(col, _)| !MONEY_COLUMNS.contains(col)) {
                        sheet.write_string(row, col as u16, cell).map_err(|e| failed(e.to_string()))?;
                    }
                    // Money as numbers (exact to the cent in a double), formatted with two decimals.
                    for (col, cents) in MONEY_COLUMNS.into_iter().zip([*line_cents, *total_cents]) {
                        sheet.write_number_with_format(row, col as u16, cents as f64 / 100.0, &money).map_err(|e| failed(e.to_string()))?;
                    }
                }
                book.save_to_buffer().map_err(|e| failed(e.to_string()))
            }
        }
    }
}
