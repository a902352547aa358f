//! Billing commands: the product catalog, tariffs, month close, and a month's
//! bills (shown and exported). Each parses its flags and calls one service
//! method; the rules (codes, models, which months may close) live below.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use subledger_domain::account::Username;
use subledger_domain::calendar::{Month, from_unix_micros};
use subledger_domain::money::{Currency, checked_sum, format_minor};
use subledger_domain::oplog::Actor;
use subledger_domain::paging::Page;
use subledger_domain::rating::PriceModel;
use subledger_domain::text::check_json_text;
use subledger_service::Change;
use subledger_service::billing::{BillRange, BillView, CloseReport};
use subledger_service::catalog::{NewProduct, Product, TariffVersion};
use subledger_service::exports::ExportFormat;
use subledger_service::tenants::Tenant;
use subledger_service::{ServiceError, Services};

use super::{parse_instant, print};
use crate::cli::{BillCommand, BillExportFormat, ProductCommand, TariffCommand};
use crate::serve::AnyError;

fn product_json(p: &Product) -> Value {
    json!({
        "code": p.code,
        "name": p.name,
        "unit": p.unit,
        "order_type": p.order_type,
        "grouping": p.grouping.as_str(),
        "currency": p.currency.code(),
        "supplement_order_type": p.supplement_order_type,
        "refund_order_type": p.refund_order_type,
        "quantity_meaning": p.quantity_meaning,
        "builtin": p.builtin,
        "telephony_group": p.telephony.map(|t| t.group.key()),
        "kind": p.kind.as_str(),
        "bill_category": p.category.as_str(),
    })
}

fn product_row(p: &Product) -> String {
    format!("{:<24} {:>5}  {:<8} {:<8} {:<6} {}{}", p.code, p.order_type, p.grouping.as_str(), p.currency, p.unit, p.name, if p.builtin { "" } else { "  (own)" })
}

pub(super) async fn product(services: &Services, command: ProductCommand) -> Result<ExitCode, AnyError> {
    match command {
        ProductCommand::List { tenant, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let products = services.products(&tenant).await?;
            print(json, json!({"items": products.iter().map(product_json).collect::<Vec<_>>()}), || {
                let header = format!("{:<24} {:>5}  {:<8} {:<8} {:<6} name", "code", "order", "grouping", "currency", "unit");
                std::iter::once(header).chain(products.iter().map(product_row)).collect::<Vec<_>>().join("\n")
            });
        }
        ProductCommand::Add { tenant, code, name, unit, order_type, grouping, currency, supplement_order_type, refund_order_type, quantity_meaning, kind, bill_category, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let new = NewProduct { code, name, unit, order_type, grouping, currency, supplement_order_type, refund_order_type, quantity_meaning, kind, bill_category };
            let product = services.add_product(&tenant, new, &Change::by(Actor::Cli)).await?;
            print(json, product_json(&product), || format!("added product {}", product_row(&product)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tariff_json(v: &TariffVersion) -> Value {
    json!({
        "tariff_id": v.id,
        "product": v.product_code,
        "currency": v.currency.code(),
        "account_id": v.account.map(|a| a.0),
        "username": v.username,
        "effective_from": from_unix_micros(v.effective_from_us).to_string(),
        "model": serde_json::to_value(v.model.as_ref()).expect("price models serialize"),
        "created_at": from_unix_micros(v.created_at_us).to_string(),
    })
}

fn tariff_row(v: &TariffVersion) -> String {
    let scope = v.username.as_deref().map_or_else(|| "default".to_owned(), |u| format!("for {u}"));
    let model = serde_json::to_string(v.model.as_ref()).expect("price models serialize");
    format!("{:>6}  {:<24} {} {:<14} from {}  {model}", v.id, v.product_code, v.currency, scope, from_unix_micros(v.effective_from_us))
}

pub(super) async fn tariff(services: &Services, command: TariffCommand) -> Result<ExitCode, AnyError> {
    match command {
        TariffCommand::Set { tenant, product, username, effective_from, model, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            check_json_text(model.as_bytes()).map_err(|e| format!("invalid price model JSON: the text {e}"))?;
            let model: PriceModel = serde_json::from_str(&model).map_err(|e| format!("invalid price model JSON: {e}"))?;
            let username = username.as_deref().map(Username::parse).transpose()?;
            let from = effective_from.as_deref().map(parse_instant).transpose()?;
            let version = services.set_tariff(&tenant, &product, username.as_ref(), from, model, &Change::by(Actor::Cli)).await?;
            let mut value = tariff_json(&version);
            value["username"] = json!(username.as_ref().map(Username::as_str));
            print(json, value, || format!("set tariff {}", tariff_row(&version)));
        }
        TariffCommand::List { tenant, product, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let book = services.tariff_book(&tenant).await?;
            let versions = book.listed(product.as_deref());
            print(json, json!({"items": versions.iter().map(|v| tariff_json(v)).collect::<Vec<_>>()}), || versions.iter().map(|v| tariff_row(v)).collect::<Vec<_>>().join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_month(text: &str) -> Result<Month, AnyError> {
    Month::parse_dashed(text).map_err(|e| format!("--month {text:?}: {e}").into())
}

fn report_json(r: &CloseReport) -> Value {
    let currencies: Vec<Value> = r
        .by_currency
        .iter()
        .map(|(currency, t)| {
            json!({
                "currency": currency.code(),
                "bills": t.bills,
                "billed": format_minor(t.billed_cents),
                "billed_minor": t.billed_cents,
                "settled": format_minor(t.settled_cents),
                "settled_minor": t.settled_cents,
                "outstanding": format_minor(t.outstanding_cents),
                "outstanding_minor": t.outstanding_cents,
            })
        })
        .collect();
    json!({"month": r.month, "already_closed": r.already_closed, "bills": r.bills, "currencies": currencies})
}

fn report_row(r: &CloseReport) -> String {
    if r.already_closed {
        return format!("{}: already closed, nothing changed", r.month);
    }
    let amounts: Vec<String> = r
        .by_currency
        .iter()
        .map(|(currency, t)| {
            format!("{currency}: {} bills, billed {}, settled {}, outstanding {}", t.bills, format_minor(t.billed_cents), format_minor(t.settled_cents), format_minor(t.outstanding_cents))
        })
        .collect();
    format!("{}: closed; {} bills{}{}", r.month, r.bills, if amounts.is_empty() { "" } else { "; " }, amounts.join("; "))
}

fn tenant_ref(t: &Tenant) -> Value {
    json!({"tenant_id": t.public_id.to_string(), "app_id": t.app_id, "name": t.name})
}

pub(super) async fn bill(services: &Services, command: BillCommand) -> Result<ExitCode, AnyError> {
    match command {
        BillCommand::Close { month, tenant: Some(reference), json } => {
            let month = parse_month(&month)?;
            let tenant = services.find_tenant(&reference).await?;
            let reports = services.close_month(&tenant, month, &Change::by(Actor::Cli)).await?;
            let mut value = tenant_ref(&tenant);
            value["months"] = reports.iter().map(report_json).collect();
            print(json, value, || reports.iter().map(report_row).collect::<Vec<_>>().join("\n"));
            Ok(ExitCode::SUCCESS)
        }
        BillCommand::Close { month, tenant: None, json } => {
            let month = parse_month(&month)?;
            let outcomes = services.close_month_all_tenants(month, &Change::by(Actor::Cli)).await?;
            let mut failed = 0;
            let mut items = Vec::with_capacity(outcomes.len());
            let mut lines = Vec::new();
            for (tenant, outcome) in &outcomes {
                let mut item = tenant_ref(tenant);
                let name = format!("{} ({})", tenant.public_id, tenant.name);
                match outcome {
                    Ok(reports) => {
                        item["status"] = json!("closed");
                        item["months"] = reports.iter().map(report_json).collect();
                        lines.extend(reports.iter().map(|r| format!("{name}  {}", report_row(r))));
                    }
                    // The month has not ended in this tenant's time zone: its turn comes later.
                    Err(ServiceError::Invalid { field: "month", reason }) => {
                        item["status"] = json!("skipped");
                        item["reason"] = json!(reason);
                        lines.push(format!("{name}  skipped: {reason}"));
                    }
                    Err(error) => {
                        failed += 1;
                        item["status"] = json!("failed");
                        item["error"] = json!(error.to_string());
                        lines.push(format!("{name}  FAILED: {error}"));
                    }
                }
                items.push(item);
            }
            print(json, json!({"month": month.to_string(), "tenants": items, "failed": failed}), || if lines.is_empty() { "no tenants".to_owned() } else { lines.join("\n") });
            if failed > 0 {
                eprintln!("error: closing {month} failed for {failed} tenant(s)");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        BillCommand::Export { tenant, month, format, out } => {
            let month = parse_month(&month)?;
            let to_stdout = out.as_os_str() == "-";
            let format = match format {
                BillExportFormat::Csv => ExportFormat::Csv,
                BillExportFormat::Xlsx if to_stdout => return Err("an XLSX export is binary: give --out a file path".into()),
                BillExportFormat::Xlsx => ExportFormat::Xlsx,
            };
            let tenant = services.find_tenant(&tenant).await?;
            let bytes = services.export_bills(&tenant, month, format).await?;
            if to_stdout {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&bytes)?;
                stdout.flush()?;
            } else {
                write_file(&out, &bytes)?;
                println!("wrote {} bytes to {}", bytes.len(), out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        BillCommand::Show { tenant, month, username, json } => {
            let month = parse_month(&month)?;
            let tenant = services.find_tenant(&tenant).await?;
            show_bills(services, &tenant, month, username.as_deref(), json).await
        }
    }
}

/// Writes the whole file or nothing: a sibling temporary file renamed into place.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AnyError> {
    let name = path.file_name().ok_or_else(|| format!("--out {}: not a file path", path.display()))?;
    let mut partial = name.to_owned();
    partial.push(".partial");
    let partial = path.with_file_name(partial);
    std::fs::write(&partial, bytes).map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot write {}: {e}", path.display())
    })?;
    Ok(())
}

fn bill_json(username: &str, bill: &BillView) -> Value {
    let lines: Vec<Value> = bill
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "line": i + 1,
                "kind": l.kind.as_str(),
                "for_month": l.for_month,
                "product": l.product_code,
                "order_type": l.order_type,
                "description": l.description,
                "quantity": l.quantity.to_string(),
                "unit": l.unit,
                "money": format_minor(l.money_cents),
                "money_minor": l.money_cents,
                "previous_quantity": l.previous.map(|(q, _)| q.to_string()),
                "previous_money": l.previous.map(|(_, c)| format_minor(c)),
                "detail": serde_json::to_value(&l.detail).expect("detail lines serialize"),
            })
        })
        .collect();
    let settlements: Vec<Value> = bill
        .settlements
        .iter()
        .map(|s| {
            json!({
                "product": s.product_code,
                "order_type": s.order_type,
                "amount": format_minor(s.amount_cents),
                "amount_minor": s.amount_cents,
                "status": if s.transfer_id.is_some() { "posted" } else { "outstanding" },
                "transfer_id": s.transfer_id,
            })
        })
        .collect();
    json!({
        "username": username,
        "month": bill.month,
        "currency": bill.currency.code(),
        "closed": bill.closed,
        "total": format_minor(bill.total_cents),
        "total_minor": bill.total_cents,
        "lines": lines,
        "settlements": settlements,
    })
}

fn bill_text(username: &str, bill: &BillView) -> String {
    let state = if bill.closed { "closed" } else { "month to date" };
    let mut text = format!("{username}  {}  total {} {}  ({state})", bill.month, format_minor(bill.total_cents), bill.currency);
    for (i, l) in bill.lines.iter().enumerate() {
        let for_month = if l.for_month == bill.month { String::new() } else { format!(" for {}", l.for_month) };
        text.push_str(&format!(
            "\n  {:>3} {:<10} {:>5}  {:<24} {:>14} {:<4} {:>12}  {}{for_month}",
            i + 1,
            l.kind.as_str(),
            l.order_type,
            l.product_code,
            l.quantity.to_string(),
            l.unit,
            format_minor(l.money_cents),
            l.description
        ));
    }
    for s in &bill.settlements {
        let state = if s.transfer_id.is_some() { "posted" } else { "outstanding" };
        text.push_str(&format!("\n      settlement {:<24} orderType {:>3} {:>12}  {state}", s.product_code, s.order_type, format_minor(s.amount_cents)));
    }
    text
}

async fn show_bills(services: &Services, tenant: &Tenant, month: Month, username: Option<&str>, json: bool) -> Result<ExitCode, AnyError> {
    let closed = services.closed_months(tenant).await?.contains(&month);
    // The current month is never closed: asking for it is asking for the month so far.
    let bills: Vec<(String, BillView)> = match username {
        Some(name) => {
            let range = BillRange { from: month, to: month, currency: None };
            let (_, accounts) = services.bills_page(tenant, Some(name), Page::new(0, 1, 1)?, range, |_| true).await?;
            accounts.into_iter().flat_map(|(account, bills)| bills.into_iter().map(move |bill| (account.username.clone(), bill))).collect()
        }
        None => services.month_bills(tenant, month, true).await?,
    };
    // Totals per currency: amounts in different currencies never add up.
    let mut totals: BTreeMap<Currency, i64> = BTreeMap::new();
    for (_, bill) in &bills {
        let total = totals.entry(bill.currency).or_default();
        *total = checked_sum([*total, bill.total_cents], "the month's bills")?;
    }
    let totals_json: Vec<Value> = totals.iter().map(|(currency, cents)| json!({"currency": currency.code(), "total": format_minor(*cents), "total_minor": cents})).collect();
    let value = json!({
        "tenant_id": tenant.public_id.to_string(),
        "month": month.to_string(),
        "closed": closed,
        "totals": totals_json,
        "bills": bills.iter().map(|(name, bill)| bill_json(name, bill)).collect::<Vec<_>>(),
    });
    print(json, value, || {
        let state = if closed { "closed" } else { "not closed" };
        let totals_text: Vec<String> = totals.iter().map(|(currency, cents)| format!("{} {currency}", format_minor(*cents))).collect();
        let mut text = format!("{month} ({state}): {} bills, total {}", bills.len(), if totals_text.is_empty() { "0.00".to_owned() } else { totals_text.join(" + ") });
        for (name, bill) in &bills {
            text.push('\n');
            text.push_str(&bill_text(name, bill));
        }
        if !closed && bills.is_empty() {
            text.push_str("\n(a month's bills are made when it closes: `subledger bill close`)");
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}
