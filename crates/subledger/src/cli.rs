//! The command line. Names here are a contract: scripts and docs rely on them.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/subledger.db";

#[derive(Parser, Debug)]
#[command(name = "subledger", version, about = "Account, wallet and billing hub for resellers. Without a command, runs the server.")]
pub struct Cli {
    /// Where the data lives: sqlite://PATH (created as needed) or postgres://…
    #[arg(long, global = true, env = "SUBLEDGER_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Sub-accounts a new tenant may have (SendCloud 417 beyond it); applies
    /// to tenants created by the server and by `tenant create` alike.
    #[arg(long, global = true, env = "SUBLEDGER_ACCOUNT_LIMIT_DEFAULT", default_value_t = 10_000)]
    pub account_limit_default: i64,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Manage tenants (resellers).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage sub-accounts of a tenant.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Money in wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Holds: reserve money now, post it (or part of it) or void it later.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Print a SendCloud-signed parameter string, ready for curl.
    Sign(SignArgs),
    /// The admin token of the native API.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCommand),
    /// Ledger maintenance.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The product catalog of a tenant.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Tariffs: how a tenant's products are priced.
    #[command(subcommand)]
    Tariff(TariffCommand),
    /// Usage events.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Monthly bills: close a month, show and export its bills.
    #[command(subcommand)]
    Bill(BillCommand),
    /// Roles and the applications they grant.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Sub-users: seats, their state, role and own grants.
    #[command(subcommand)]
    Subuser(SubuserCommand),
    /// Notices to sub-users.
    #[command(subcommand)]
    Notice(NoticeCommand),
    /// The operation log.
    #[command(subcommand)]
    Oplog(OplogCommand),
    /// Time cards (时长卡): prepaid minutes used before money.
    #[command(subcommand)]
    Card(CardCommand),
    /// Monthly function fees and rentals: subscriptions and rates.
    #[command(subcommand)]
    Function(FunctionCommand),
}

#[derive(Subcommand, Debug)]
pub enum CardCommand {
    /// Issue a card to an account, or (without --username) shared by the tenant's seats.
    Issue {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        minutes: i64,
        /// RFC 3339; default: now.
        #[arg(long)]
        effective_at: Option<String>,
        /// RFC 3339: the first instant it no longer covers.
        #[arg(long, conflicts_with = "expires_on", required_unless_present = "expires_on")]
        expires_at: Option<String>,
        /// YYYY-MM-DD: it covers until the end of that day in the tenant's zone.
        #[arg(long)]
        expires_on: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        json: bool,
    },
    /// List the tenant's cards (with --username: those that can cover it).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a card: it covers nothing more.
    Cancel {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum FunctionCommand {
    /// Subscribe an account to a function, rental or the seat fee.
    Subscribe {
        #[command(flatten)]
        account: AccountRef,
        #[arg(long)]
        product: String,
        /// RFC 3339, not before the current month; default: now.
        #[arg(long)]
        from: Option<String>,
    },
    /// End an account's subscription.
    Unsubscribe {
        #[command(flatten)]
        account: AccountRef,
        #[arg(long)]
        product: String,
        /// RFC 3339, not before the current month; default: now.
        #[arg(long)]
        until: Option<String>,
    },
    /// The function fees and rentals in force, with their prices.
    Rates {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    Create {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 0)]
        level: i64,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        /// Only roles whose name contains this.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        #[arg(long)]
        tenant: String,
        role: i64,
        #[arg(long)]
        json: bool,
    },
    Update {
        #[arg(long)]
        tenant: String,
        role: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        level: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a role no sub-user holds.
    Delete {
        #[arg(long)]
        tenant: String,
        role: i64,
    },
    /// The applications a role grants.
    Apps {
        #[arg(long)]
        tenant: String,
        role: i64,
        #[arg(long)]
        json: bool,
    },
    /// Grant and revoke applications of a role (comma-separated ids).
    Grant {
        #[arg(long)]
        tenant: String,
        role: i64,
        #[arg(long, default_value = "")]
        grant: String,
        #[arg(long, default_value = "")]
        revoke: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SubuserCommand {
    /// Create a seat: a sub-user paid by the tenant.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        #[arg(long, env = "SUBLEDGER_SUBUSER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        person_name: Option<String>,
        #[arg(long)]
        job_number: Option<String>,
        #[arg(long)]
        role: Option<i64>,
        /// Do not apply the role's applications.
        #[arg(long)]
        no_role_template: bool,
        #[arg(long)]
        extension: Option<i64>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: Option<String>,
        /// Only sub-users whose role's name contains this.
        #[arg(long)]
        role_name: Option<String>,
        #[arg(long, value_parser = ["enabled", "disabled", "cancelled"])]
        access: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Change a sub-user's seat fields, role, state or password.
    Update {
        #[arg(long)]
        tenant: String,
        username: String,
        #[arg(long)]
        person_name: Option<String>,
        #[arg(long)]
        job_number: Option<String>,
        #[arg(long)]
        extension: Option<i64>,
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// A role's id; 0 takes the role away.
        #[arg(long)]
        role: Option<i64>,
        #[arg(long, value_parser = ["enabled", "disabled", "cancelled"])]
        access: Option<String>,
        #[arg(long, env = "SUBLEDGER_SUBUSER_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// What a sub-user may do.
    Apps {
        #[arg(long)]
        tenant: String,
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Grant and revoke a sub-user's own applications (comma-separated ids).
    Grant {
        #[arg(long)]
        tenant: String,
        username: String,
        #[arg(long, default_value = "")]
        grant: String,
        #[arg(long, default_value = "")]
        revoke: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum NoticeCommand {
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        content: String,
        /// Comma-separated account ids; none: every sub-user.
        #[arg(long, default_value = "")]
        targets: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        notice: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum OplogCommand {
    /// Entries, newest first.
    List {
        #[arg(long)]
        tenant: String,
        /// Only this sub-user's entries.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// At most 500.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "SUBLEDGER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Admin token for tenant administration; generated (and printed once) at first start if not given.
    #[arg(long, env = "SUBLEDGER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// How far a SendCloud `timestamp` may be from server time, in milliseconds.
    #[arg(long, env = "SUBLEDGER_SENDCLOUD_TIMESTAMP_WINDOW_MS", default_value_t = 6_000)]
    pub sendcloud_timestamp_window_ms: i64,
    /// Accept SendCloud `transferIn` without `timestamp` (legacy clients; no replay protection).
    #[arg(long, env = "SUBLEDGER_SENDCLOUD_TRANSFER_TIMESTAMP_OPTIONAL")]
    pub sendcloud_transfer_timestamp_optional: bool,
    /// Database connections for reads (and, on PostgreSQL, writes).
    #[arg(long, env = "SUBLEDGER_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,
    /// Most transfers committed in one ledger batch.
    #[arg(long, env = "SUBLEDGER_LEDGER_BATCH_MAX", default_value_t = 512)]
    pub ledger_batch_max: usize,
    /// Most rows of work waiting for the ledger worker (a transfer is one row,
    /// a usage batch one per event); beyond it requests are answered busy at once.
    #[arg(long, env = "SUBLEDGER_LEDGER_QUEUE_ROWS_MAX", default_value_t = 65_536)]
    pub ledger_queue_rows_max: usize,
    /// Most rows of work the ledger worker takes in one drain of its queue.
    #[arg(long, env = "SUBLEDGER_LEDGER_DRAIN_ROWS_MAX", default_value_t = 8_192)]
    pub ledger_drain_rows_max: usize,
    /// Ledger batches committing at once on PostgreSQL (SQLite: always 1).
    #[arg(long, env = "SUBLEDGER_LEDGER_BATCHES_IN_FLIGHT", default_value_t = 1)]
    pub ledger_batches_in_flight: usize,
    /// Most accounts one chunk of a month close bills, in one transaction of
    /// the ledger worker; between chunks the worker serves other work.
    #[arg(long, env = "SUBLEDGER_CLOSE_CHUNK_ACCOUNTS", default_value_t = subledger_service::ledger::CLOSE_CHUNK_ACCOUNTS_DEFAULT)]
    pub close_chunk_accounts: usize,
    /// Close each month automatically this many hours after it ends in the
    /// tenant's time zone (late usage before then still lands in the month);
    /// 0 turns automatic close off (use `subledger bill close`).
    #[arg(long, env = "SUBLEDGER_AUTO_CLOSE_AFTER_HOURS", default_value_t = 72)]
    pub auto_close_after_hours: u32,
    /// Longest wait for a complete request head, in milliseconds: from the
    /// accept for a connection's first request, from its first byte for later ones.
    #[arg(long, env = "SUBLEDGER_HTTP_HEADER_READ_TIMEOUT_MS", default_value_t = subledger_http::server::HEADER_READ_TIMEOUT_MS_DEFAULT)]
    pub http_header_read_timeout_ms: u64,
    /// Close a connection with no request in flight after this many
    /// milliseconds without a byte either way (idle keep-alive, a stalled reader).
    #[arg(long, env = "SUBLEDGER_HTTP_IDLE_TIMEOUT_MS", default_value_t = subledger_http::server::IDLE_TIMEOUT_MS_DEFAULT)]
    pub http_idle_timeout_ms: u64,
    /// Most client connections open at once; one more evicts the connection
    /// waiting longest without a request in flight (kept below the descriptor limit).
    #[arg(long, env = "SUBLEDGER_HTTP_CONNECTIONS_MAX", default_value_t = subledger_http::server::CONNECTIONS_MAX_DEFAULT)]
    pub http_connections_max: usize,
    /// Most requests of the APIs served at once; beyond it each is answered
    /// busy at once (health and metrics endpoints are not counted).
    #[arg(long, env = "SUBLEDGER_HTTP_REQUESTS_IN_FLIGHT_MAX", default_value_t = subledger_http::REQUESTS_IN_FLIGHT_MAX_DEFAULT)]
    pub http_requests_in_flight_max: usize,
    /// Requests a second of one tenant on the APIs, all its callers
    /// together (a token bucket); 0 turns the limit off. Beyond it: 429 with `Retry-After`.
    #[arg(long, env = "SUBLEDGER_RATE_LIMIT_TENANT_PER_SECOND", default_value_t = subledger_http::ratelimit::TENANT_PER_SECOND_DEFAULT)]
    pub rate_limit_tenant_per_second: u32,
    /// Requests one tenant may send at once above its rate (the bucket's size).
    #[arg(long, env = "SUBLEDGER_RATE_LIMIT_TENANT_BURST", default_value_t = subledger_http::ratelimit::TENANT_BURST_DEFAULT)]
    pub rate_limit_tenant_burst: u32,
    /// Requests a second of one sub-user (all its sessions); 0 turns it off.
    #[arg(long, env = "SUBLEDGER_RATE_LIMIT_SESSION_PER_SECOND", default_value_t = subledger_http::ratelimit::SESSION_PER_SECOND_DEFAULT)]
    pub rate_limit_session_per_second: u32,
    /// Requests one sub-user may send at once above its rate.
    #[arg(long, env = "SUBLEDGER_RATE_LIMIT_SESSION_BURST", default_value_t = subledger_http::ratelimit::SESSION_BURST_DEFAULT)]
    pub rate_limit_session_burst: u32,
    /// Login attempts a minute from one client address; 0 turns it off.
    #[arg(long, env = "SUBLEDGER_LOGIN_RATE_PER_ADDRESS", default_value_t = subledger_http::ratelimit::LOGIN_PER_ADDRESS_PER_MINUTE_DEFAULT)]
    pub login_rate_per_address: u32,
    /// Login attempts a minute at one username of a tenant; 0 turns it off.
    #[arg(long, env = "SUBLEDGER_LOGIN_RATE_PER_USERNAME", default_value_t = subledger_http::ratelimit::LOGIN_PER_USERNAME_PER_MINUTE_DEFAULT)]
    pub login_rate_per_username: u32,
    /// How long a sub-user's session lasts, in minutes.
    #[arg(long, env = "SUBLEDGER_SESSION_TTL_MINUTES", default_value_t = 720)]
    pub session_ttl_minutes: u32,
    /// Wrong passwords in a row that lock a sub-user's account.
    #[arg(long, env = "SUBLEDGER_LOGIN_FAILURES_MAX", default_value_t = subledger_service::access::LOGIN_FAILURES_MAX_DEFAULT)]
    pub login_failures_max: i64,
    /// How long such a lock lasts, in seconds.
    #[arg(long, env = "SUBLEDGER_LOGIN_LOCK_SECONDS", default_value_t = 900)]
    pub login_lock_seconds: u32,
    /// Where Meta's Graph API is (a fake server's address in tests).
    #[arg(long, env = "SUBLEDGER_ADS_GRAPH_URL", default_value = "https://graph.facebook.com")]
    pub ads_graph_url: String,
    /// The Graph API version called.
    #[arg(long, env = "SUBLEDGER_ADS_GRAPH_VERSION", default_value = "v23.0")]
    pub ads_graph_version: String,
    /// Longest one Graph call may take, retries included, in milliseconds (then 1011).
    #[arg(long, env = "SUBLEDGER_ADS_GRAPH_TIMEOUT_MS", default_value_t = 20_000)]
    pub ads_graph_timeout_ms: u64,
    /// 64 hexadecimal digits: the key that seals tenants' Meta tokens. Without
    /// it only the sandbox serves the ad dialect.
    #[arg(long, env = "SUBLEDGER_ADS_TOKEN_KEY", hide_env_values = true)]
    pub ads_token_key: Option<String>,
    /// Seconds between two syncs of a tenant's ad data; 0 turns the background sync off.
    #[arg(long, env = "SUBLEDGER_ADS_SYNC_SECONDS", default_value_t = 300)]
    pub ads_sync_seconds: u64,
    /// Days of insights each sync reads again (today included).
    #[arg(long, env = "SUBLEDGER_ADS_INSIGHTS_DAYS", default_value_t = 7)]
    pub ads_insights_days: u32,
    /// How long a spend cap change's reservation lasts, in seconds.
    #[arg(long, env = "SUBLEDGER_ADS_HOLD_TIMEOUT_SECONDS", default_value_t = 3_600)]
    pub ads_hold_timeout_seconds: u64,
    /// How old an unsettled ad write must be before the recovery job reads it back, in seconds.
    #[arg(long, env = "SUBLEDGER_ADS_RECOVERY_AFTER_SECONDS", default_value_t = 60)]
    pub ads_recovery_after_seconds: u64,
    /// The sandbox's seed: the same seed and database give the same sandbox.
    #[arg(long, env = "SUBLEDGER_ADS_SANDBOX_SEED", default_value_t = 20_240_501)]
    pub ads_sandbox_seed: u64,
    /// Seconds between two review steps of a sandbox creation request.
    #[arg(long, env = "SUBLEDGER_ADS_SANDBOX_REVIEW_STEP_SECONDS", default_value_t = 600)]
    pub ads_sandbox_review_step_seconds: u64,
    /// Seconds between two new sandbox creation requests.
    #[arg(long, env = "SUBLEDGER_ADS_SANDBOX_REQUEST_EVERY_SECONDS", default_value_t = 21_600)]
    pub ads_sandbox_request_every_seconds: u64,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs::parse_from(["serve"])
    }
}

#[derive(Parser, Debug)]
struct ServeOnly {
    #[command(flatten)]
    args: ServeArgs,
}

impl ServeArgs {
    fn parse_from<I: IntoIterator<Item = &'static str>>(args: I) -> ServeArgs {
        ServeOnly::parse_from(args).args
    }
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant and print its credentials (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// IANA time zone in which days and months are cut.
        #[arg(long, default_value = "Asia/Shanghai")]
        timezone: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's settings.
    Update {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        timezone: Option<String>,
        /// `zh-CN` or `en`: the language of the operation log and application names.
        #[arg(long)]
        language: Option<String>,
        #[arg(long)]
        account_limit: Option<i64>,
        #[arg(long)]
        default_daily_quota: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new app key and API token (the old ones stop working).
    RotateSecrets {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct AccountRef {
    /// Tenant id (tn_…) or app id.
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create a sub-account.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        /// 0 SendCloud, 1 iFaxin.
        #[arg(long, default_value = "0")]
        user_type: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        company_name: Option<String>,
        #[arg(long)]
        company_url: Option<String>,
        #[arg(long, env = "SUBLEDGER_ACCOUNT_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long)]
        daily_quota: Option<i64>,
        /// Whose wallets its charges draw on: `own`, or `tenant` (a seat paid by the tenant).
        #[arg(long, default_value = "own")]
        funding: String,
        #[arg(long)]
        json: bool,
    },
    /// List sub-accounts with balances and today's quota use.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Freeze a sub-account (shown as status -1 in SendCloud `list`).
    Freeze(AccountRef),
    /// Unfreeze a sub-account.
    Unfreeze(AccountRef),
    /// Set a sub-account's daily request quota.
    Quota {
        #[command(flatten)]
        account: AccountRef,
        #[arg(long)]
        quota: i64,
    },
    /// Set how a sub-account pays for usage: per event (prepaid) or at month close (postpaid).
    Billing {
        #[command(flatten)]
        account: AccountRef,
        #[arg(long, value_enum)]
        mode: BillingMode,
    },
    /// Set whose wallets pay for a sub-account: its own, or its tenant's (a seat).
    Funding {
        #[command(flatten)]
        account: AccountRef,
        /// own or tenant.
        #[arg(long, value_parser = funding)]
        funding: subledger_domain::account::Funding,
    },
}

/// `own` or `tenant`, parsed by the domain like the native API does.
fn funding(text: &str) -> Result<subledger_domain::account::Funding, String> {
    subledger_domain::account::Funding::parse(text).ok_or_else(|| format!("{text:?} is not own or tenant"))
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingMode {
    Prepaid,
    Postpaid,
}

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Record a recharge of a wallet from the outside world.
    Deposit {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// Decimal amount, e.g. 1000.00.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "primary", value_parser = ["primary", "promo"])]
        wallet: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Deposit into this sub-account instead of the tenant's own wallet.
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Replaying the same key records nothing new (default: a fresh key).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Let a primary wallet go below zero, down to minus LIMIT (0 removes the overdraft).
    Overdraft {
        #[arg(long)]
        tenant: String,
        /// Decimal amount, e.g. 500.00.
        #[arg(long)]
        limit: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Grant it to this sub-account instead of the tenant.
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show wallets and balances of a tenant or of one of its sub-accounts.
    Balances {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Reserve money on a wallet for a later transfer; it voids itself at its timeout.
    Create {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// Reserve on this sub-account's wallet instead of the tenant's.
        #[arg(long)]
        from_username: Option<String>,
        /// Pay this sub-account's wallet when posted, instead of the tenant's.
        #[arg(long)]
        to_username: Option<String>,
        #[arg(long, default_value = "primary", value_parser = ["primary", "promo"])]
        from_wallet: String,
        #[arg(long, default_value = "primary", value_parser = ["primary", "promo"])]
        to_wallet: String,
        /// Decimal amount, e.g. 100.00.
        #[arg(long)]
        amount: String,
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Seconds until it voids itself (1 to 2592000).
        #[arg(long, default_value_t = subledger_service::holds::HOLD_TIMEOUT_SECONDS_DEFAULT)]
        timeout_seconds: u32,
        #[arg(long)]
        memo: Option<String>,
        /// Replaying the same key reserves nothing new (default: a fresh key).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Move the money a pending hold reserved (all of it, or --amount of it).
    Post {
        #[arg(long)]
        tenant: String,
        /// The hold's id.
        hold: String,
        /// At most what it reserved; the rest is given back.
        #[arg(long)]
        amount: Option<String>,
        #[arg(long)]
        memo: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Give back what a pending hold reserved.
    Void {
        #[arg(long)]
        tenant: String,
        hold: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one hold.
    Show {
        #[arg(long)]
        tenant: String,
        hold: String,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's holds, newest first.
    List {
        #[arg(long)]
        tenant: String,
        /// pending, posted, voided, expired or rejected.
        #[arg(long)]
        state: Option<String>,
        /// Only holds older than this hold id.
        #[arg(long)]
        before: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Take appId and the signing key from this tenant (tn_… or app id) in the database.
    #[arg(long, conflicts_with_all = ["app_id", "app_key"])]
    pub tenant: Option<String>,
    /// The appId, when not reading it from the database.
    #[arg(long, requires = "app_key")]
    pub app_id: Option<String>,
    /// The signing key, when not reading it from the database.
    #[arg(long, env = "SUBLEDGER_APP_KEY", hide_env_values = true)]
    pub app_key: Option<String>,
    /// Leave out the timestamp (only for endpoints and servers that accept that).
    #[arg(long)]
    pub no_timestamp: bool,
    /// Parameters as name=value (the value as it should arrive, not encoded).
    #[arg(value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminTokenCommand {
    /// Replace the admin token with a new one and print it.
    Rotate,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Check every ledger invariant over the whole database; exits 1 if one fails.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProductCommand {
    /// List the built-in products and the tenant's own.
    List {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a product of the tenant's own.
    Add {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// 2-40 lowercase letters, digits or _, a letter first.
        #[arg(long)]
        code: String,
        /// Description of its bill lines.
        #[arg(long)]
        name: String,
        /// Unit of the billed quantity, e.g. 条.
        #[arg(long)]
        unit: String,
        /// SendCloud `orderType` of its bill lines (1-9999).
        #[arg(long)]
        order_type: i64,
        /// Which event attribute picks the price: none, country or item.
        #[arg(long, default_value = "none", value_parser = grouping)]
        grouping: subledger_domain::rating::Grouping,
        /// What its tariffs price in, CNY or USD: its usage is charged from the
        /// accounts' wallets of this currency and billed on their bills in it.
        #[arg(long, default_value = "CNY", value_parser = currency)]
        currency: subledger_domain::money::Currency,
        /// `orderType` of its supplementary (补扣) lines (default 15, 人工补扣).
        #[arg(long)]
        supplement_order_type: Option<i64>,
        /// `orderType` of its refunds (返账); default: refunds carry the supplement code.
        #[arg(long)]
        refund_order_type: Option<i64>,
        /// What an event's quantity counts.
        #[arg(long)]
        quantity_meaning: Option<String>,
        /// usage (metered by events), function or rental (a monthly fee per subscribed account).
        #[arg(long, default_value = "usage", value_parser = product_kind)]
        kind: subledger_domain::catalog::ProductKind,
        /// A usage product's column in UUCall's basic bill: call_in, call_out, internal_voice, sms or other.
        #[arg(long, default_value = "other", value_parser = bill_category)]
        bill_category: subledger_domain::catalog::BillCategory,
        #[arg(long)]
        json: bool,
    },
}

/// `usage`, `function` or `rental`, parsed by the domain like the native API does.
fn product_kind(text: &str) -> Result<subledger_domain::catalog::ProductKind, String> {
    subledger_domain::catalog::ProductKind::parse(text).ok_or_else(|| format!("{text:?} is not usage, function or rental"))
}

/// A usage product's basic-bill category, parsed by the domain like the native API does.
fn bill_category(text: &str) -> Result<subledger_domain::catalog::BillCategory, String> {
    subledger_domain::catalog::BillCategory::parse_usage(text).ok_or_else(|| format!("{text:?} is not call_in, call_out, internal_voice, sms or other"))
}

/// `CNY` or `USD`, parsed by the domain like the native API does.
fn currency(text: &str) -> Result<subledger_domain::money::Currency, String> {
    text.parse().map_err(|e: subledger_domain::money::UnknownCurrency| e.to_string())
}

/// `none`, `country` or `item`, parsed by the domain like the native API does.
fn grouping(text: &str) -> Result<subledger_domain::rating::Grouping, String> {
    subledger_domain::rating::Grouping::parse(text).ok_or_else(|| format!("{text:?} is not none, country or item"))
}

#[derive(Subcommand, Debug)]
pub enum TariffCommand {
    /// Add a tariff version: the tenant's default, or with --username an account's override.
    Set {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// Product code (see `subledger product list`).
        #[arg(long)]
        product: String,
        /// Override for this sub-account only.
        #[arg(long)]
        username: Option<String>,
        /// RFC 3339 instant from which the version is in force (default: now).
        #[arg(long)]
        effective_from: Option<String>,
        /// The price model as JSON, as `POST /v1/tariffs` takes it, e.g.
        /// '{"model":"per_unit","price":"0.033","increment":"1"}'.
        #[arg(long)]
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// List tariff versions (defaults and per-account overrides).
    List {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// Only this product's versions.
        #[arg(long)]
        product: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Ingest usage events from a CSV or JSON-lines file, in batches.
    Import(UsageImportArgs),
}

#[derive(Args, Debug)]
pub struct UsageImportArgs {
    /// Tenant id (tn_…) or app id.
    #[arg(long)]
    pub tenant: String,
    /// CSV with a header row (id,account,product,quantity[,occurred_at], further
    /// columns become attributes) or JSON lines (one event object per line).
    pub file: std::path::PathBuf,
    /// File format; by default from the extension (.csv; .jsonl, .ndjson, .json).
    #[arg(long, value_enum)]
    pub format: Option<UsageFormat>,
    /// Events per batch (each batch is one transaction).
    #[arg(long, default_value_t = subledger_service::usage::USAGE_BATCH_MAX, value_parser = batch_size)]
    pub batch_size: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageFormat {
    Csv,
    Jsonl,
}

fn batch_size(text: &str) -> Result<usize, String> {
    let max = subledger_service::usage::USAGE_BATCH_MAX;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {max}")),
    }
}

#[derive(Subcommand, Debug)]
pub enum BillCommand {
    /// Close a month: compute the bills and settle them. Without --tenant, for every tenant.
    Close {
        /// YYYY-MM; it must have ended in the tenant's time zone.
        #[arg(long)]
        month: String,
        /// Tenant id (tn_…) or app id; default: every tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a closed month's bills (one row per bill line) to a file.
    Export {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long, value_enum)]
        format: BillExportFormat,
        /// Where to write; `-` writes CSV to standard output.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Show a month's bills with their lines (the current month: so far).
    Show {
        /// Tenant id (tn_…) or app id.
        #[arg(long)]
        tenant: String,
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only this sub-account's bill.
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillExportFormat {
    Csv,
    Xlsx,
}
