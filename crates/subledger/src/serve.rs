//! `subledger serve`: open the database, start the ledger worker, serve HTTP,
//! and on SIGINT/SIGTERM stop accepting, finish in-flight requests and flush
//! the ledger before exiting.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use prometheus_client::registry::Registry;
use subledger_ads::graph::GraphConfig;
use subledger_http::HttpConfig;
use subledger_http::ratelimit::{Rate, RateLimitConfig};
use subledger_http::sendcloud::SendCloudConfig;
use subledger_http::server::ConnectionLimits;
use subledger_service::ads::{AdsConfig, SandboxConfig};
use subledger_service::ledger::CLOSE_CHUNK_ACCOUNTS_MAX;
use subledger_service::secrets::SealingKey;
use subledger_service::{AccessConfig, LedgerConfig, ServiceConfig, Services};
use subledger_storage::{Store, StoreOptions};

use crate::cli::ServeArgs;

pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Longest grace period before a month closes by itself: 60 days.
const AUTO_CLOSE_AFTER_HOURS_MAX: u32 = 24 * 60;
/// Largest ledger queue (and drain) that can be configured, in rows: a
/// queued row holds at most a usage event's memory, so 16 M rows stay within
/// a few GiB.
const LEDGER_QUEUE_ROWS_MAX: usize = 16 * 1024 * 1024;
/// How often the server looks for months due to close.
const AUTO_CLOSE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Shortest HTTP timeout: below it an honest client on a slow link is cut off.
const HTTP_TIMEOUT_MS_MIN: u64 = 100;
/// Longest header-read timeout: 10 minutes; beyond it a stalled head is held for nothing.
const HTTP_HEADER_READ_TIMEOUT_MS_MAX: u64 = 600_000;
/// Longest idle timeout: an hour.
const HTTP_IDLE_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// Largest connection and in-flight caps; more would not fit one process's memory anyway.
const HTTP_CAP_MAX: usize = 1_000_000;
/// Descriptors kept for everything but client connections and the database:
/// standard streams, the listener, the runtime's own, logs, export files.
const DESCRIPTORS_RESERVED: u64 = 64;
/// Descriptors per database connection: on SQLite the database, its WAL and
/// its shared-memory file (one socket on PostgreSQL).
const DESCRIPTORS_PER_DB_CONNECTION: u64 = 3;
/// Database connections besides `--db-connections`: SQLite's writer and the ledger's own.
const DB_CONNECTIONS_EXTRA: u64 = 2;

pub async fn run(database_url: &str, account_limit_default: i64, args: ServeArgs) -> Result<ExitCode, AnyError> {
    if args.ledger_batch_max == 0 || args.db_connections == 0 || args.ledger_batches_in_flight == 0 {
        return Err("--ledger-batch-max, --ledger-batches-in-flight and --db-connections must be at least 1".into());
    }
    if !(1..=LEDGER_QUEUE_ROWS_MAX).contains(&args.ledger_queue_rows_max) || !(1..=LEDGER_QUEUE_ROWS_MAX).contains(&args.ledger_drain_rows_max) {
        return Err(format!("--ledger-queue-rows-max and --ledger-drain-rows-max must be from 1 to {LEDGER_QUEUE_ROWS_MAX}").into());
    }
    if !(1..=CLOSE_CHUNK_ACCOUNTS_MAX).contains(&args.close_chunk_accounts) {
        return Err(format!("--close-chunk-accounts must be from 1 to {CLOSE_CHUNK_ACCOUNTS_MAX}").into());
    }
    if args.auto_close_after_hours > AUTO_CLOSE_AFTER_HOURS_MAX {
        return Err(format!("--auto-close-after-hours must be at most {AUTO_CLOSE_AFTER_HOURS_MAX} (0 turns automatic close off)").into());
    }
    if !(1..=300_000).contains(&args.sendcloud_timestamp_window_ms) {
        return Err("--sendcloud-timestamp-window-ms must be from 1 to 300000".into());
    }
    if !(0..=subledger_service::tenants::ACCOUNT_LIMIT_MAX).contains(&account_limit_default) {
        return Err(format!("--account-limit-default must be from 0 to {}", subledger_service::tenants::ACCOUNT_LIMIT_MAX).into());
    }
    if args.admin_token.as_deref().is_some_and(|t| t.len() < subledger_service::admin::ADMIN_TOKEN_CHARS_MIN) {
        return Err(format!("--admin-token must be at least {} characters", subledger_service::admin::ADMIN_TOKEN_CHARS_MIN).into());
    }
    if !(HTTP_TIMEOUT_MS_MIN..=HTTP_HEADER_READ_TIMEOUT_MS_MAX).contains(&args.http_header_read_timeout_ms) {
        return Err(format!("--http-header-read-timeout-ms must be from {HTTP_TIMEOUT_MS_MIN} to {HTTP_HEADER_READ_TIMEOUT_MS_MAX}").into());
    }
    if !(HTTP_TIMEOUT_MS_MIN..=HTTP_IDLE_TIMEOUT_MS_MAX).contains(&args.http_idle_timeout_ms) {
        return Err(format!("--http-idle-timeout-ms must be from {HTTP_TIMEOUT_MS_MIN} to {HTTP_IDLE_TIMEOUT_MS_MAX}").into());
    }
    if !(1..=HTTP_CAP_MAX).contains(&args.http_connections_max) || !(1..=HTTP_CAP_MAX).contains(&args.http_requests_in_flight_max) {
        return Err(format!("--http-connections-max and --http-requests-in-flight-max must be from 1 to {HTTP_CAP_MAX}").into());
    }
    if !(1..=100).contains(&args.login_failures_max) || !(1..=30 * 24 * 60).contains(&args.session_ttl_minutes) || !(1..=86_400).contains(&args.login_lock_seconds) {
        return Err("--login-failures-max must be from 1 to 100, --session-ttl-minutes from 1 to 43200, --login-lock-seconds from 1 to 86400".into());
    }
    let connections_max = connections_within_descriptors(args.http_connections_max, args.db_connections)?;
    let store = Store::open(database_url, &StoreOptions { connections_max: args.db_connections, ..StoreOptions::default() }).await?;
    tracing::info!(backend = store.backend().name(), "database ready");

    let mut registry = Registry::default();
    let config = ServiceConfig {
        account_limit_default,
        ledger: LedgerConfig {
            batch_max: args.ledger_batch_max,
            batches_in_flight: args.ledger_batches_in_flight,
            queue_rows_max: args.ledger_queue_rows_max,
            drain_rows_max: args.ledger_drain_rows_max,
            close_chunk_accounts: args.close_chunk_accounts,
            ..LedgerConfig::default()
        },
        access: AccessConfig {
            session_ttl: Duration::from_secs(u64::from(args.session_ttl_minutes) * 60),
            login_failures_max: args.login_failures_max,
            lock_for: Duration::from_secs(u64::from(args.login_lock_seconds)),
        },
        ads: AdsConfig {
            graph: GraphConfig {
                base_url: args.ads_graph_url.clone(),
                api_version: args.ads_graph_version.clone(),
                call_timeout: Duration::from_millis(args.ads_graph_timeout_ms),
                ..GraphConfig::default()
            },

            sandbox: SandboxConfig {
                seed: args.ads_sandbox_seed,
                review_step_seconds: args.ads_sandbox_review_step_seconds,
                request_every_seconds: args.ads_sandbox_request_every_seconds,
                ..SandboxConfig::default()
            },
            token_key: args.ads_token_key.as_deref().map(SealingKey::from_hex).transpose().map_err(|e| format!("--ads-token-key: {e}"))?,
            sync_every: Duration::from_secs(args.ads_sync_seconds.max(1)),
            insights_days: args.ads_insights_days.clamp(1, 1_200),
            hold_timeout: Duration::from_secs(args.ads_hold_timeout_seconds),
            recovery_after: Duration::from_secs(args.ads_recovery_after_seconds),
            ..AdsConfig::default()
        },
        ..ServiceConfig::default()
    };
    if args.ads_hold_timeout_seconds <= args.ads_recovery_after_seconds.saturating_mul(2) {
        return Err("--ads-hold-timeout-seconds must exceed twice --ads-recovery-after-seconds, so that unknown outcomes are settled before their reservation lapses".into());
    }
    let (services, ledger_worker) = Services::start(store.clone(), config, &mut registry);
    if let Some(token) = services.ensure_admin_token(args.admin_token.as_deref()).await? {
        // Shown once; only its digest is stored. `subledger admin-token rotate` makes a new one.
        println!("admin token (shown once, keep it): {token}");
    }

    let http_config = HttpConfig {
        sendcloud: SendCloudConfig { timestamp_window_ms: args.sendcloud_timestamp_window_ms, transfer_requires_timestamp: !args.sendcloud_transfer_timestamp_optional, ..SendCloudConfig::default() },
        requests_in_flight_max: args.http_requests_in_flight_max,
        rate_limits: RateLimitConfig {
            tenant: Rate::per_second(args.rate_limit_tenant_per_second, args.rate_limit_tenant_burst),
            session: Rate::per_second(args.rate_limit_session_per_second, args.rate_limit_session_burst),
            login_per_address: Rate::per_minute(args.login_rate_per_address, args.login_rate_per_address),
            login_per_username: Rate::per_minute(args.login_rate_per_username, args.login_rate_per_username),
        },
        connections: ConnectionLimits { header_read_timeout: Duration::from_millis(args.http_header_read_timeout_ms), idle_timeout: Duration::from_millis(args.http_idle_timeout_ms), connections_max },
        ..HttpConfig::default()
    };
    let auto_close = (args.auto_close_after_hours > 0).then(|| tokio::spawn(auto_close(services.clone(), args.auto_close_after_hours)));
    let expiry = tokio::spawn(expire_overdue_holds(services.clone()));
    let sessions = tokio::spawn(forget_old_sessions(services.clone()));
    let ads = tokio::spawn(ads_jobs(services.clone(), args.ads_sync_seconds > 0));
    let sweep = tokio::spawn(forget_expired_sightings(services.clone(), subledger_service::signed_requests::sweep_every(args.sendcloud_timestamp_window_ms)));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to find the port.
    println!("subledger listening on http://{local}");
    std::io::stdout().flush()?;
    tracing::info!(%local, "serving");

    subledger_http::serve(listener, services.clone(), http_config, registry, shutdown_signal()).await?;
    tracing::info!("stopped accepting; in-flight requests done; flushing the ledger");
    if let Some(task) = auto_close {
        // A chunk already handed to the ledger worker still commits or not
        // as a whole; the month stays closing and the next start resumes it.
        task.abort();
        let _ = task.await;
    }
    for task in [sweep, expiry, sessions, ads] {
        task.abort();
        let _ = task.await;
    }
    drop(services);
    ledger_worker.await?;
    store.close().await;
    tracing::info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// The connection cap, kept below the descriptor limit: every connection is a
/// descriptor, and running out of them would also fail database connections
/// and files. The soft limit is first raised to the hard one (distributions
/// often start services at a soft 1,024 under a far higher hard limit).
fn connections_within_descriptors(connections_max: usize, db_connections: u32) -> Result<usize, AnyError> {
    let Some(descriptors) = raise_descriptor_limit() else { return Ok(connections_max) };
    let reserved = DESCRIPTORS_RESERVED + DESCRIPTORS_PER_DB_CONNECTION * (u64::from(db_connections) + DB_CONNECTIONS_EXTRA);
    let room = usize::try_from(descriptors.saturating_sub(reserved)).unwrap_or(usize::MAX);
    if room == 0 {
        return Err(format!("the open-descriptor limit ({descriptors}) leaves no room for connections beside the {reserved} reserved; raise it (ulimit -n)").into());
    }
    if connections_max > room {
        tracing::warn!(configured = connections_max, used = room, descriptors, reserved, "--http-connections-max lowered to fit the open-descriptor limit");
        return Ok(room);
    }
    Ok(connections_max)
}

/// Raises the soft limit on open descriptors to the hard limit; returns the
/// limit in force, `None` when there is none.
fn raise_descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    match limit.maximum {
        Some(hard) if hard > soft => match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
            Ok(()) => {
                tracing::info!(from = soft, to = hard, "raised the open-descriptor limit to the hard limit");
                Some(hard)
            }
            Err(error) => {
                tracing::warn!(%error, soft, hard, "could not raise the open-descriptor limit");
                Some(soft)
            }
        },
        // Equal to the soft limit, or unlimited (which the kernel does not
        // allow as a soft limit for descriptors): keep what is in force.
        _ => Some(soft),
    }
}

/// Closes months `hours` after they end, checking every minute (and at
/// start), and resumes closes that stopped part-way (their months stay
/// closing). Safe to run in several processes on one database: closing a
/// closed month is a no-op, and two closes of one month take turns chunk by
/// chunk. A tenant whose close fails is logged and retried at the next check;
/// the other tenants close regardless.
async fn auto_close(services: Services, hours: u32) {
    let grace = jiff::SignedDuration::from_hours(i64::from(hours));
    let mut ticks = tokio::time::interval(AUTO_CLOSE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match services.close_due_months(jiff::Timestamp::now(), grace).await {
            Ok(closed) => {
                for (tenant, outcome) in closed {
                    let reports = match outcome {
                        Ok(reports) => reports,
                        Err(error) => {
                            tracing::warn!(tenant = %tenant.public_id, %error, "automatic month close failed for this tenant; retrying in a minute");
                            continue;
                        }
                    };
                    for report in reports.iter().filter(|r| !r.already_closed) {
                        tracing::info!(tenant = %tenant.public_id, month = %report.month, bills = report.bills, "month closed automatically");
                        for (currency, totals) in &report.by_currency {
                            tracing::info!(tenant = %tenant.public_id, month = %report.month, %currency, bills = totals.bills, billed_cents = totals.billed_cents,
                                settled_cents = totals.settled_cents, outstanding_cents = totals.outstanding_cents, "month closed automatically: its amounts in one currency");
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "automatic month close failed; retrying in a minute"),
        }
    }
}

/// Deletes expired SendCloud replay-guard records, so the table holds about
/// one timestamp window of signed requests. Safe in several processes.
async fn forget_expired_sightings(services: Services, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = services.forget_expired_sightings(jiff::Timestamp::now().as_millisecond()).await {
            tracing::warn!(%error, "sweeping expired signed requests failed; retrying later");
        }
    }
}

/// How often a server forgets sessions that ended or expired a day ago.
const SESSION_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps the sessions table to the live sessions and a day of old ones.
async fn forget_old_sessions(services: Services) {
    let mut ticks = tokio::time::interval(SESSION_SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = services.forget_old_sessions().await {
            tracing::warn!(%error, "forgetting old sessions failed; retrying later");
        }
    }
}

/// How often a server looks for ad writes to settle and tenants to sync.
const ADS_JOBS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Settles ad writes whose platform answer was lost (at start, then every
/// few seconds) and syncs the tenants due for it. Safe in several processes:
/// a write is settled once (only as read), a tenant synced under a lease.
async fn ads_jobs(services: Services, sync: bool) {
    let mut ticks = tokio::time::interval(ADS_JOBS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match services.recover_ad_writes().await {
            Ok(0) => {}
            Ok(settled) => tracing::info!(settled, "ad writes with a lost answer settled"),
            Err(error) => tracing::warn!(%error, "settling ad writes failed; retrying later"),
        }
        if sync && let Err(error) = services.sync_due_tenants().await {
            tracing::warn!(%error, "syncing ad data failed; retrying later");
        }
    }
}

/// How often a server looks for holds past their timeout.
const HOLD_EXPIRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Voids holds that reached their timeout, of every tenant: within about a
/// second in a running server, and at start for those that timed out while
/// no server ran. Safe in several processes (a hold expires once).
async fn expire_overdue_holds(services: Services) {
    let mut ticks = tokio::time::interval(HOLD_EXPIRY_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        loop {
            match services.expire_overdue_holds().await {
                // A full sweep may have left more behind: go on at once.
                Ok(expired) if expired as i64 == subledger_service::holds::EXPIRY_SWEEP_MAX => continue,
                Ok(expired) => {
                    if expired > 0 {
                        tracing::info!(expired, "holds past their timeout expired");
                    }
                }
                Err(error) => tracing::warn!(%error, "expiring holds past their timeout failed; retrying in a second"),
            }
            break;
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
