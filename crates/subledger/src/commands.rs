//! The CLI commands. Each parses its flags into domain types and calls the
//! same service methods the HTTP dialects call.

mod access;
mod billing;
mod holds;
mod seats;
mod usage_import;

use std::process::ExitCode;
use std::str::FromStr;

use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use subledger_domain::account::{AccountStatus, CompanyName, CompanyUrl, DailyQuota, Email, Funding, Password, Phone, TenantName, UserType, Username};
use subledger_domain::calendar::{TenantTimeZone, from_unix_micros};
use subledger_domain::ledger::WalletPurpose;
use subledger_domain::money::{Currency, PositiveAmount, format_minor, parse_amount_minor};
use subledger_domain::oplog::Actor;
use subledger_domain::paging::Page;
use subledger_service::Change;
use subledger_service::accounts::{ACCOUNT_PAGE_MAX, Account, NewAccountInput};
use subledger_service::funds::{Holder, MoveOptions, WalletRef};
use subledger_service::tenants::{Tenant, TenantUpdate, TenantWithSecrets};
use subledger_service::{ServiceConfig, Services};
use subledger_storage::{Store, StoreOptions};

use crate::cli::{AccountCommand, AccountRef, AdminTokenCommand, BillingMode, Command, LedgerCommand, SignArgs, TenantCommand, UsageCommand, WalletCommand};
use crate::serve::AnyError;

pub async fn run(database_url: &str, account_limit_default: i64, command: Command) -> Result<ExitCode, AnyError> {
    if let Command::Sign(args) = &command
        && args.tenant.is_none()
    {
        // Signing with a key given on the command line needs no database.
        return sign(None, args).await;
    }
    let store = Store::open(database_url, &StoreOptions { connections_max: 2, ..StoreOptions::default() }).await?;
    let config = ServiceConfig { account_limit_default, ..ServiceConfig::default() };
    let (services, worker) = Services::start(store.clone(), config, &mut Registry::default());
    let outcome = dispatch(&services, command).await;
    // Let the ledger worker finish (it stops once the last handle is gone).
    drop(services);
    worker.await?;
    store.close().await;
    outcome
}

async fn dispatch(services: &Services, command: Command) -> Result<ExitCode, AnyError> {
    match command {
        Command::Serve(_) => unreachable!("serve is handled by main"),
        Command::Tenant(command) => tenant(services, command).await,
        Command::Account(command) => account(services, command).await,
        Command::Wallet(command) => wallet(services, command).await,
        Command::Hold(command) => holds::hold(services, command).await,
        Command::Sign(args) => sign(Some(services), &args).await,
        Command::Product(command) => billing::product(services, command).await,
        Command::Tariff(command) => billing::tariff(services, command).await,
        Command::Usage(UsageCommand::Import(args)) => usage_import::import(services, args).await,
        Command::Bill(command) => billing::bill(services, command).await,
        Command::Card(command) => seats::card(services, command).await,
        Command::Function(command) => seats::function(services, command).await,
        Command::Role(command) => access::role(services, command).await,
        Command::Subuser(command) => access::subuser(services, command).await,
        Command::Notice(command) => access::notice(services, command).await,
        Command::Oplog(command) => access::oplog(services, command).await,
        Command::AdminToken(AdminTokenCommand::Rotate) => {
            println!("{}", services.rotate_admin_token().await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::Verify { json }) => {
            let report = subledger_storage::ledger::audit(&services.store).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report:#?}");
            }
            let sound = report.is_sound();
            if !json {
                println!("{}", if sound { "ledger is sound" } else { "LEDGER INVARIANT BROKEN" });
            }
            Ok(if sound { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn print(json_output: bool, value: Value, human: impl FnOnce() -> String) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON values serialize"));
    } else {
        println!("{}", human());
    }
}

/// An RFC 3339 instant in stored form, parsed as the native API parses it.
fn parse_instant(text: &str) -> Result<i64, String> {
    subledger_domain::calendar::parse_instant_us(text)
}

fn tenant_json(t: &Tenant) -> Value {
    json!({
        "tenant_id": t.public_id.to_string(),
        "name": t.name,
        "timezone": t.timezone.name(),
        "app_id": t.app_id,
        "account_limit": t.account_limit,
        "default_daily_quota": t.default_daily_quota,
        "created_at": from_unix_micros(t.created_at_us).to_string(),
    })
}

fn with_secrets(created: &TenantWithSecrets) -> Value {
    let mut value = tenant_json(&created.tenant);
    value["app_key"] = json!(created.app_key);
    value["api_token"] = json!(created.api_token);
    value
}

async fn tenant(services: &Services, command: TenantCommand) -> Result<ExitCode, AnyError> {
    match command {
        TenantCommand::Create { name, timezone, json } => {
            let created = services.create_tenant(TenantName::parse(&name)?, TenantTimeZone::parse(&timezone)?, &Change::by(Actor::Cli)).await?;
            print(json, with_secrets(&created), || {
                format!(
                    "tenant_id  {}\napp_id     {}\napp_key    {}\napi_token  {}\n(the app key and API token are shown only now)",
                    created.tenant.public_id, created.tenant.app_id, created.app_key, created.api_token
                )
            });
        }
        TenantCommand::List { offset, limit, json } => {
            let (total, tenants) = services.list_tenants(Page::new(offset, limit, subledger_service::tenants::TENANT_PAGE_MAX)?).await?;
            print(json, json!({"total": total, "items": tenants.iter().map(tenant_json).collect::<Vec<_>>()}), || {
                tenants.iter().map(|t| format!("{}  {}  {}  {}", t.public_id, t.app_id, t.timezone.name(), t.name)).collect::<Vec<_>>().join("\n")
            });
        }
        TenantCommand::Show { tenant, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            print(json, tenant_json(&tenant), || serde_json::to_string_pretty(&tenant_json(&tenant)).unwrap_or_default());
        }
        TenantCommand::Update { tenant, name, timezone, language, account_limit, default_daily_quota, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let update = TenantUpdate {
                name: name.as_deref().map(TenantName::parse).transpose()?,
                timezone: timezone.as_deref().map(TenantTimeZone::parse).transpose()?,
                language: language.as_deref().map(subledger_domain::access::Language::parse).transpose()?,
                account_limit,
                default_daily_quota: default_daily_quota.map(DailyQuota::new).transpose()?,
            };
            let tenant = services.update_tenant(tenant.id, update, &Change::by(Actor::Cli)).await?;
            print(json, tenant_json(&tenant), || serde_json::to_string_pretty(&tenant_json(&tenant)).unwrap_or_default());
        }
        TenantCommand::RotateSecrets { tenant, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let rotated = services.rotate_tenant_secrets(tenant.id, &Change::by(Actor::Cli)).await?;
            print(json, with_secrets(&rotated), || format!("app_key    {}\napi_token  {}", rotated.app_key, rotated.api_token));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn account_json(a: &Account) -> Value {
    json!({
        "username": a.username,
        "user_type": a.user_type.code(),
        "status": a.status.code(),
        "phone": a.phone,
        "email": a.email,
        "company_name": a.company_name,
        "company_url": a.company_url,
        "api_user": a.api_user,
        "daily_quota": a.daily_quota,
        "created_at": from_unix_micros(a.created_at_us).to_string(),
    })
}

async fn account(services: &Services, command: AccountCommand) -> Result<ExitCode, AnyError> {
    match command {
        AccountCommand::Create { tenant, username, user_type, phone, email, company_name, company_url, password, daily_quota, funding, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let input = NewAccountInput {
                username: Username::parse(&username)?,
                user_type: UserType::parse(&user_type)?,
                phone: phone.as_deref().map(Phone::parse).transpose()?,
                email: email.as_deref().map(Email::parse).transpose()?,
                company_name: company_name.as_deref().map(CompanyName::parse).transpose()?,
                company_url: company_url.as_deref().map(CompanyUrl::parse).transpose()?,
                password: password.as_deref().map(Password::parse).transpose()?,
                daily_quota: daily_quota.map(DailyQuota::new).transpose()?,
                funding: Funding::parse(&funding).ok_or("--funding is own or tenant")?,
            };
            let created = services.create_account(&tenant, input, &Change::by(Actor::Cli)).await?;
            let mut value = account_json(&created.account);
            value["api_key"] = json!(created.api_key);
            print(json, value.clone(), || serde_json::to_string_pretty(&value).unwrap_or_default());
        }
        AccountCommand::List { tenant, username, offset, limit, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let page = Page::new(offset, limit, ACCOUNT_PAGE_MAX)?;
            let found = services.list_accounts(&tenant, username.as_deref(), page).await?;
            let items: Vec<Value> = found
                .accounts
                .iter()
                .map(|row| {
                    let mut value = account_json(&row.account);
                    value["balances"] = row.balances.iter().map(|(currency, minor)| json!({"currency": currency.code(), "balance": format_minor(*minor)})).collect();
                    value["used_today"] = json!(row.used_today);
                    value
                })
                .collect();
            print(json, json!({"total": found.total, "frozen": found.frozen, "items": items}), || {
                found
                    .accounts
                    .iter()
                    .map(|r| {
                        let balances: Vec<String> = r.balances.iter().map(|(currency, minor)| format!("{} {currency}", format_minor(*minor))).collect();
                        format!("{:<32} {:>6} {:>10}/{}  {}", r.account.username, r.account.status.code(), r.used_today, r.account.daily_quota, balances.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AccountCommand::Freeze(target) => set_status(services, target, AccountStatus::Frozen).await?,
        AccountCommand::Unfreeze(target) => set_status(services, target, AccountStatus::Active).await?,
        AccountCommand::Quota { account, quota } => {
            let tenant = services.find_tenant(&account.tenant).await?;
            let (updated, state) = services.set_daily_quota(&tenant, &account.username, DailyQuota::new(quota)?, &Change::by(Actor::Cli)).await?;
            print(account.json, json!({"username": updated.username, "quota": state.quota, "today_used_quota": state.used_today}), || {
                format!("{}: quota {} (used today {})", updated.username, state.quota, state.used_today)
            });
        }
        AccountCommand::Billing { account, mode } => {
            let tenant = services.find_tenant(&account.tenant).await?;
            services.set_billing_mode(&tenant, &account.username, mode == BillingMode::Postpaid, &Change::by(Actor::Cli)).await?;
            let mode = match mode {
                BillingMode::Prepaid => "prepaid",
                BillingMode::Postpaid => "postpaid",
            };
            print(account.json, json!({"username": account.username, "billing_mode": mode}), || format!("{}: {mode}", account.username));
        }
        AccountCommand::Funding { account, funding } => {
            let tenant = services.find_tenant(&account.tenant).await?;
            services.set_funding(&tenant, &account.username, funding, &Change::by(Actor::Cli)).await?;
            print(account.json, json!({"username": account.username, "funding": funding.as_str()}), || format!("{}: paid by {}", account.username, funding.as_str()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_status(services: &Services, target: AccountRef, status: AccountStatus) -> Result<(), AnyError> {
    let tenant = services.find_tenant(&target.tenant).await?;
    let account = services.set_account_status(&tenant, &target.username, status, &Change::by(Actor::Cli)).await?;
    print(target.json, account_json(&account), || format!("{}: {}", account.username, if status == AccountStatus::Frozen { "frozen" } else { "active" }));
    Ok(())
}

async fn wallet(services: &Services, command: WalletCommand) -> Result<ExitCode, AnyError> {
    match command {
        WalletCommand::Deposit { tenant, amount, wallet, currency, username, note, idempotency_key, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let amount = PositiveAmount::new(parse_amount_minor(&amount)?)?;
            let currency = Currency::from_str(&currency)?;
            let holder = holder_of(username.as_deref())?;
            let to = WalletRef { holder, purpose: WalletPurpose::from_str(&wallet)? };
            // A fresh key unless given: re-running a script with the same key records nothing twice.
            let key = idempotency_key.unwrap_or_else(|| format!("cli:{}", uuid::Uuid::now_v7()));
            let receipt = services.deposit(&tenant, &to, amount, currency, MoveOptions { idempotency_key: Some(key), memo: note }, &Change::by(Actor::Cli)).await?;
            let replayed = receipt.replayed;
            let (receipt, balances) = receipt.posted()?;
            let value = json!({
                "transfer_id": receipt.transfer_id.to_string(),
                "tenant_id": tenant.public_id.to_string(),
                "wallet": wallet,
                "currency": currency.code(),
                "amount": format_minor(receipt.amount_minor),
                "balance": format_minor(balances.credit_balance_after_minor),
                "replayed": replayed,
            });
            print(json, value, || format!("deposited {} {} into {wallet}; balance {}", format_minor(receipt.amount_minor), currency, format_minor(balances.credit_balance_after_minor)));
        }
        WalletCommand::Overdraft { tenant, limit, currency, username, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let holder = holder_of(username.as_deref())?;
            let wallet = services.set_overdraft(&tenant, &holder, Currency::from_str(&currency)?, parse_amount_minor(&limit)?, &Change::by(Actor::Cli)).await?;
            let floor = wallet.floor_minor.unwrap_or_default();
            print(json, json!({"wallet_id": wallet.id.0, "currency": wallet.currency.code(), "overdraft_limit": format_minor(-floor), "balance": format_minor(wallet.balance_minor)}), || {
                format!("primary {} may go down to {}", wallet.currency, format_minor(floor))
            });
        }
        WalletCommand::Balances { tenant, username, json } => {
            let tenant = services.find_tenant(&tenant).await?;
            let holder = holder_of(username.as_deref())?;
            let wallets = services.wallets(&tenant, &holder).await?;
            let items: Vec<Value> = wallets
                .iter()
                .map(|w| {
                    json!({"wallet_id": w.id.0, "purpose": w.purpose.as_str(), "currency": w.currency.code(), "balance": format_minor(w.balance_minor),
                           "reserved": format_minor(w.reserved_minor), "available": w.available_minor().map(format_minor), "entries": w.entry_seq})
                })
                .collect();
            print(json, json!({"items": items}), || wallets.iter().map(|w| format!("{:<8} {} {:>16}", w.purpose.as_str(), w.currency, format_minor(w.balance_minor))).collect::<Vec<_>>().join("\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn sign(services: Option<&Services>, args: &SignArgs) -> Result<ExitCode, AnyError> {
    let (app_id, app_key) = match (&args.tenant, services) {
        (Some(reference), Some(services)) => {
            let tenant = services.find_tenant(reference).await?;
            (Some(tenant.app_id.clone()), tenant.signing_key().to_owned())
        }
        _ => (args.app_id.clone(), args.app_key.clone().ok_or("give --tenant, or --app-key (with --app-id)")?),
    };
    let mut params: Vec<(String, String)> = Vec::with_capacity(args.params.len() + 2);
    for pair in &args.params {
        let (name, value) = pair.split_once('=').ok_or_else(|| format!("parameter {pair:?} is not NAME=VALUE"))?;
        params.push((name.to_owned(), value.to_owned()));
    }
    if let Some(app_id) = app_id
        && !params.iter().any(|(k, _)| k == "appId")
    {
        params.push(("appId".to_owned(), app_id));
    }
    if !args.no_timestamp && !params.iter().any(|(k, _)| k == "timestamp") {
        params.push(("timestamp".to_owned(), jiff::Timestamp::now().as_millisecond().to_string()));
    }
    println!("{}", subledger_http::sendcloud::signature::signed_form(&app_key, &params));
    Ok(ExitCode::SUCCESS)
}

fn holder_of(username: Option<&str>) -> Result<Holder, AnyError> {
    Ok(match username {
        Some(name) => Holder::Account(Username::parse(name)?),
        None => Holder::Tenant,
    })
}
