//! Seat commands: time cards and subscriptions to monthly items. Each parses
//! its flags and calls one service method.

use std::process::ExitCode;

use serde_json::{Value, json};
use subledger_domain::calendar::{Day, from_unix_micros};
use subledger_domain::ids::TimeCardId;
use subledger_domain::oplog::Actor;
use subledger_domain::paging::Page;
use subledger_service::seats::Subscription;
use subledger_service::tenants::Tenant;
use subledger_service::timecards::{CardExpiry, NewTimeCard, TIME_CARD_PAGE_MAX, TimeCard};
use subledger_service::{Change, Services};

use super::{parse_instant, print};
use crate::cli::{CardCommand, FunctionCommand};
use crate::serve::AnyError;

async fn card_json(services: &Services, tenant: &Tenant, card: &TimeCard) -> Result<Value, AnyError> {
    let username = match card.account {
        Some(account) => Some(services.username_of(tenant, account).await?),
        None => None,
    };
    Ok(json!({
        "id": card.id.0,
        "name": card.name,
        "username": username,
        "minutes_total": card.minutes_total,
        "minutes_left": card.minutes_left,
        "effective_at": from_unix_micros(card.effective_at_us).to_string(),
        "expires_at": from_unix_micros(card.expires_at_us).to_string(),
        "state": card.state.as_str(),
        "note": card.note,
    }))
}

fn card_row(card: &Value) -> String {
    format!(
        "{:>6}  {:<20} {:<16} {:>8}/{:<8} {:<9} {} – {}",
        card["id"],
        card["name"].as_str().unwrap_or_default(),
        card["username"].as_str().unwrap_or("(shared)"),
        card["minutes_left"],
        card["minutes_total"],
        card["state"].as_str().unwrap_or_default(),
        card["effective_at"].as_str().unwrap_or_default(),
        card["expires_at"].as_str().unwrap_or_default()
    )
}

pub(super) async fn card(services: &Services, command: CardCommand) -> Result<ExitCode, AnyError> {
    match command {
        CardCommand::Issue { tenant, username, name, minutes, effective_at, expires_at, expires_on, note, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let expires = match (expires_at, expires_on) {
                (Some(at), _) => CardExpiry::At(parse_instant(&at)?),
                (None, Some(day)) => CardExpiry::EndOf(Day(day.parse().map_err(|_| format!("--expires-on {day:?} is not a YYYY-MM-DD date"))?)),
                (None, None) => return Err("give --expires-at or --expires-on".into()),
            };
            let account = match username {
                Some(username) => Some(services.account(&tenant, &username).await?.id),
                None => None,
            };
            let effective_at_us = effective_at.as_deref().map(parse_instant).transpose()?;
            let card = services.issue_time_card(&tenant, NewTimeCard { name, account, minutes, effective_at_us, expires, note }, &Change::by(Actor::Cli)).await?;
            let value = card_json(services, &tenant, &card).await?;
            print(json, value.clone(), || format!("issued {}", card_row(&value)));
        }
        CardCommand::List { tenant, username, offset, limit, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let account = match username {
                Some(username) => Some(services.account(&tenant, &username).await?.id),
                None => None,
            };
            let page = Page::new(offset, limit, TIME_CARD_PAGE_MAX)?;
            let (total, cards) = services.time_cards(&tenant, account, page).await?;
            let mut items = Vec::with_capacity(cards.len());
            for card in &cards {
                items.push(card_json(services, &tenant, card).await?);
            }
            let rows: Vec<String> = items.iter().map(card_row).collect();
            print(json, json!({"total": total, "items": items}), || format!("{total} cards\n{}", rows.join("\n")));
        }
        CardCommand::Cancel { tenant, id, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let card = services.cancel_time_card(&tenant, TimeCardId(id), &Change::by(Actor::Cli)).await?;
            let value = card_json(services, &tenant, &card).await?;
            print(json, value.clone(), || format!("cancelled {}", card_row(&value)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn subscription_json(username: &str, s: &Subscription) -> Value {
    json!({
        "id": s.id.0,
        "username": username,
        "product": s.product_code,
        "from": from_unix_micros(s.from_us).to_string(),
        "until": s.until_us.map(|u| from_unix_micros(u).to_string()),
    })
}

pub(super) async fn function(services: &Services, command: FunctionCommand) -> Result<ExitCode, AnyError> {
    match command {
        FunctionCommand::Subscribe { account, product, from } => {
            let tenant = services.find_tenant(&account.tenant).await?;
            let from = from.as_deref().map(parse_instant).transpose()?;
            let s = services.subscribe_function(&tenant, &account.username, &product, from, &Change::by(Actor::Cli)).await?;
            print(account.json, subscription_json(&account.username, &s), || format!("{} subscribed to {} from {}", account.username, s.product_code, from_unix_micros(s.from_us)));
        }
        FunctionCommand::Unsubscribe { account, product, until } => {
            let tenant = services.find_tenant(&account.tenant).await?;
            let until = until.as_deref().map(parse_instant).transpose()?;
            let s = services.unsubscribe_function(&tenant, &account.username, &product, until, &Change::by(Actor::Cli)).await?;
            let ended = s.until_us.map(|u| from_unix_micros(u).to_string()).unwrap_or_default();
            print(account.json, subscription_json(&account.username, &s), || format!("{} unsubscribed from {} at {ended}", account.username, s.product_code));
        }
        FunctionCommand::Rates { tenant, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let mut items = Vec::new();
            for (kind, rates) in [("function", services.function_rates(&tenant).await?), ("rental", services.rental_rates(&tenant).await?)] {
                items.extend(rates.into_iter().map(|r| {
                    json!({
                        "kind": kind,
                        "product": r.product_code,
                        "name": r.name,
                        "charge_unit": r.charge_unit,
                        "price": r.price.to_string(),
                        "currency": r.currency.code(),
                        "next_charge_at": from_unix_micros(r.next_charge_at_us).to_string(),
                    })
                }));
            }
            let rows: Vec<String> = items
                .iter()
                .map(|r| {
                    format!(
                        "{:<9} {:<20} {:>12} {} {}",
                        r["kind"].as_str().unwrap_or_default(),
                        r["product"].as_str().unwrap_or_default(),
                        r["price"].as_str().unwrap_or_default(),
                        r["currency"].as_str().unwrap_or_default(),
                        r["charge_unit"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            print(json, json!({"items": items}), || rows.join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
