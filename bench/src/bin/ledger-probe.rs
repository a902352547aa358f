//! ledger-probe: the ledger alone, without HTTP. `CONCURRENCY` tasks each post
//! `PER_TASK` allocations from one tenant (a single hot parent wallet) to an
//! account of their own, through the service layer, and it reports
//! transfers/s and the mean batch size. It isolates the batch path (storage
//! and the worker) from the HTTP layer and the load generator.
//!
//!     cargo run --release -p subledger-bench --bin ledger-probe -- sqlite:///tmp/probe.db 64 800

use std::time::Instant;

use prometheus_client::registry::Registry;
use subledger_domain::account::{TenantName, UserType, Username};
use subledger_domain::calendar::TenantTimeZone;
use subledger_domain::money::{Currency, PositiveAmount};
use subledger_service::Change;
use subledger_service::accounts::NewAccountInput;
use subledger_service::funds::{Holder, MoveOptions, WalletRef};
use subledger_service::{ServiceConfig, Services};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: ledger-probe DATABASE_URL [CONCURRENCY] [PER_TASK]");
    let concurrency: usize = args.next().map_or(64, |v| v.parse().expect("CONCURRENCY"));
    let per_task: usize = args.next().map_or(500, |v| v.parse().expect("PER_TASK"));
    let store = subledger_storage::Store::open(&url, &Default::default()).await.expect("database opens");
    let mut registry = Registry::default();
    let (services, _worker) = Services::start(store, ServiceConfig::default(), &mut registry);
    let tenant = services.create_tenant(TenantName::parse("probe").unwrap(), TenantTimeZone::parse("UTC").unwrap(), &Change::by(subledger_domain::oplog::Actor::Cli)).await.unwrap().tenant;
    let funds = PositiveAmount::new(100_000_000_000).unwrap();
    services.deposit(&tenant, &WalletRef::primary(Holder::Tenant), funds, Currency::Cny, MoveOptions::default(), &Change::by(subledger_domain::oplog::Actor::Cli)).await.unwrap();
    let names: Vec<Username> = (0..concurrency).map(|i| Username::parse(&format!("probe{i:05}")).unwrap()).collect();
    for name in &names {
        let input = NewAccountInput {
            username: name.clone(),
            user_type: UserType::IFaxin,
            phone: None,
            email: None,
            company_name: None,
            company_url: None,
            password: None,
            daily_quota: None,
            funding: Default::default(),
        };
        services.create_account(&tenant, input, &Change::by(subledger_domain::oplog::Actor::Cli)).await.unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = names
        .into_iter()
        .map(|name| {
            let (services, tenant) = (services.clone(), tenant.clone());
            tokio::spawn(async move {
                let to = WalletRef::primary(Holder::Account(name.clone()));
                for n in 0..per_task {
                    let key = format!("probe:{}:{name}:{n}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros());
                    let options = MoveOptions { idempotency_key: Some(key), memo: None };
                    services
                        .transfer(&tenant, &WalletRef::primary(Holder::Tenant), &to, PositiveAmount::new(100).unwrap(), Currency::Cny, options, &Change::by(subledger_domain::oplog::Actor::Cli))
                        .await
                        .unwrap()
                        .posted()
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let metric = |name: &str| text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(0.0);
    let total = concurrency * per_task;
    println!(
        "{total} transfers in {:.2} s: {:.0}/s, mean batch {:.1}, mean commit {:.2} ms",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        metric("subledger_ledger_batch_transfers_sum ") / metric("subledger_ledger_batch_transfers_count ").max(1.0),
        1000.0 * metric("subledger_ledger_commit_seconds_sum ") / metric("subledger_ledger_commit_seconds_count ").max(1.0),
    );
}
