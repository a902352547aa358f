//! Hold commands: open a hold (a pending transfer), post or void it, list and
//! show holds. The same service calls as `/v1/holds`.

use std::process::ExitCode;
use std::str::FromStr;

use serde_json::{Value, json};
use subledger_domain::calendar::from_unix_micros;
use subledger_domain::ids::TransferId;
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::{Currency, PositiveAmount, format_minor, parse_amount_minor};
use subledger_domain::oplog::Actor;
use subledger_domain::posting::HoldState;
use subledger_service::Change;
use subledger_service::Services;
use subledger_service::funds::{MoveOptions, WalletRef};
use subledger_service::holds::{HoldFilter, HoldInput, StoredHold};

use super::{holder_of, print};
use crate::cli::HoldCommand;
use crate::serve::AnyError;

pub async fn hold(services: &Services, command: HoldCommand) -> Result<ExitCode, AnyError> {
    match command {
        HoldCommand::Create { tenant, from_username, to_username, from_wallet, to_wallet, amount, currency, timeout_seconds, memo, idempotency_key, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let input = HoldInput {
                from: WalletRef { holder: holder_of(from_username.as_deref())?, purpose: WalletPurpose::from_str(&from_wallet)? },
                to: WalletRef { holder: holder_of(to_username.as_deref())?, purpose: WalletPurpose::from_str(&to_wallet)? },
                amount: PositiveAmount::new(parse_amount_minor(&amount)?)?,
                currency: Currency::from_str(&currency)?,
                timeout_seconds,
            };
            // A fresh key unless given: re-running a script with the same key reserves nothing twice.
            let key = idempotency_key.unwrap_or_else(|| format!("cli:{}", uuid::Uuid::now_v7()));
            let receipt = services.open_hold(&tenant, &input, MoveOptions { idempotency_key: Some(key), memo }, &Change::by(Actor::Cli)).await?;
            if let HoldState::Rejected(reason) = receipt.hold.hold.state {
                return Err(format!("hold refused: {reason}").into());
            }
            show(json, &receipt.hold);
        }
        HoldCommand::Post { tenant, hold, amount, memo, idempotency_key, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let amount = match amount {
                Some(text) => Some(PositiveAmount::new(parse_amount_minor(&text)?)?),
                None => None,
            };
            let key = idempotency_key.unwrap_or_else(|| format!("cli:{}", uuid::Uuid::now_v7()));
            let posted = services.post_hold(&tenant, hold_id(&hold)?, amount, MoveOptions { idempotency_key: Some(key), memo }, &Change::by(Actor::Cli)).await?;
            show(json, &posted.hold);
        }
        HoldCommand::Void { tenant, hold, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let receipt = services.void_hold(&tenant, hold_id(&hold)?, &Change::by(Actor::Cli)).await?;
            show(json, &receipt.hold);
        }
        HoldCommand::Show { tenant, hold, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            show(json, &services.hold(&tenant, hold_id(&hold)?).await?);
        }
        HoldCommand::List { tenant, state, before, limit, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let filter = HoldFilter { state, wallet: None, before: before.as_deref().map(hold_id).transpose()? };
            let holds = services.holds(&tenant, &filter, limit).await?;
            print(json, json!({"items": holds.iter().map(hold_json).collect::<Vec<_>>()}), || holds.iter().map(hold_line).collect::<Vec<_>>().join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn hold_id(text: &str) -> Result<TransferId, AnyError> {
    TransferId::from_str(text).map_err(|()| format!("hold id {text:?} is not a whole number").into())
}

fn show(json: bool, hold: &StoredHold) {
    print(json, hold_json(hold), || hold_line(hold));
}

fn hold_json(stored: &StoredHold) -> Value {
    let hold = &stored.hold;
    let posted = match hold.state {
        HoldState::Posted { transfer, amount_minor } => json!({"transfer_id": transfer.to_string(), "amount": format_minor(amount_minor)}),
        _ => Value::Null,
    };
    json!({
        "hold_id": hold.id.to_string(),
        "state": hold.state.as_str(),
        "amount": format_minor(hold.intent.amount.minor()),
        "currency": hold.intent.currency.code(),
        "debit_wallet_id": hold.intent.debit.0,
        "credit_wallet_id": hold.intent.credit.0,
        "timeout_at": from_unix_micros(hold.timeout_at_us).to_string(),
        "posted": posted,
        "memo": stored.memo,
    })
}

fn hold_line(stored: &StoredHold) -> String {
    let hold = &stored.hold;
    format!("hold {} {:<8} {} {} until {}", hold.id, hold.state.as_str(), format_minor(hold.intent.amount.minor()), hold.intent.currency, from_unix_micros(hold.timeout_at_us))
}
