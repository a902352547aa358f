//! A fake of Meta's Graph API: the endpoints subledger's connector calls,
//! in Graph's wire format, over real HTTP, with in-memory state.
//!
//! It is a test double of Meta's HTTP API, not of subledger's `AdPlatform`
//! trait: it knows nothing of subledger. Tests start it on `127.0.0.1:0`
//! ([`FakeGraph::start`]); the `fake-graph` binary serves it on a given
//! address for benchmarks and for subledger processes under test.
//!
//! What it serves, under `/{version}/` (`v23.0` by default):
//!
//! - `GET {business}/client_ad_accounts`, `GET {business}/owned_ad_accounts`,
//!   `GET {business}/adaccountcreationrequests` (with `adaccounts{…}`
//!   expanded), `GET {request}/adaccounts`;
//! - `GET act_{id}`, `POST act_{id}` (`spend_cap` in dollars,
//!   `spend_cap_action=reset`);
//! - `GET|POST|DELETE act_{id}/agencies` (`business`, `permitted_tasks`),
//!   `GET act_{id}/adspixels`, `GET|POST|DELETE {pixel}/shared_accounts`
//!   (`account_id`, `business`);
//! - `GET act_{id}/insights` (`time_range`, `time_increment=1`, `fields`,
//!   `breakdowns`, `level`, `limit`).
//!
//! Parameters are read from the query and from a form body alike, as Graph
//! does. `access_token` must be one the fake was given; it acts for one
//! Business Manager, which sees its own edges, the ad accounts it manages
//! or is an agency of, and its own pixels. Anything else answers Graph's
//! code 100 / subcode 33. Lists page with opaque cursors
//! (`paging.cursors.after`, `paging.next`, default `limit` 25).
//!
//! Everything a test sets goes through one type, [`Control`], whether from
//! the library handle ([`FakeGraph::apply`]) or over HTTP
//! (`POST /__control` with one control or an array of them); `GET /__calls`
//! counts calls per path and `GET /__account/{id}` shows an ad account.

mod server;
mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use world::World;

/// How an ad account is tied to the Business Manager it is seeded under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The business owns it (`owned_ad_accounts`).
    Owned,
    /// The business manages it for a client (`client_ad_accounts`).
    #[default]
    Client,
}

/// An ad account as the fake keeps it (money in cents, as Graph reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountSeed {
    /// Digits, without `act_`.
    pub account_id: String,
    /// The Business Manager whose edges list it.
    pub business_id: String,
    pub relation: Relation,
    pub name: String,
    pub account_status: i64,
    pub disable_reason: i64,
    pub currency: String,
    pub spend_cap_cents: i64,
    pub amount_spent_cents: i64,
    pub balance_cents: i64,
    /// As Graph writes it: `2024-05-01T10:00:00+0000`.
    pub created_time: String,
    pub timezone_id: i64,
    pub timezone_name: String,
}

impl Default for AccountSeed {
    fn default() -> Self {
        AccountSeed {
            account_id: String::new(),
            business_id: String::new(),
            relation: Relation::Client,
            name: String::new(),
            account_status: 1,
            disable_reason: 0,
            currency: "USD".to_owned(),
            spend_cap_cents: 0,
            amount_spent_cents: 0,
            balance_cents: 0,
            created_time: "2024-05-01T10:00:00+0000".to_owned(),
            timezone_id: 1,
            timezone_name: "America/Los_Angeles".to_owned(),
        }
    }
}

/// An ad account creation request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestSeed {
    pub id: String,
    pub business_id: String,
    /// As Meta writes it (`PENDING`, `APPROVED` …).
    pub status: String,
    pub time_created: String,
    pub oe_request_id: Option<String>,
    /// The ad accounts it issued (digits); they must be seeded as accounts.
    pub ad_account_ids: Vec<String>,
    /// Any other field of the request (`ad_accounts_info`, `contact`,
    /// `legal_entity_name_in_local_language` …), answered as given.
    pub fields: Map<String, Value>,
}

/// Everything a test can tell the fake: seed Meta's objects, or set a knob.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Control {
    /// A system user's token, acting for a Business Manager.
    AddToken {
        token: String,
        business_id: String,
    },
    AddBusiness {
        id: String,
        name: String,
    },
    AddAdAccount(AccountSeed),
    AddCreationRequest(RequestSeed),
    AddPixel {
        id: String,
        name: String,
        business_id: String,
    },
    /// Replaces the insights rows of one account and day: with no
    /// breakdown, one row of metrics; with a breakdown (`country`,
    /// `age,gender` …), one row per value, each with its breakdown columns.
    AddInsights {
        account_id: String,
        day: String,
        breakdown: Option<String>,
        rows: Vec<Map<String, Value>>,
    },
    /// The account spends: `amount_spent` grows, and so does the day's `spend`.
    AddSpend {
        account_id: String,
        day: String,
        cents: i64,
    },
    /// Every call answers this much later.
    SetLatency {
        ms: u64,
    },
    /// The next `times` calls (every call, if none) to `path` (any path, if
    /// none) never answer.
    Hang {
        path: Option<String>,
        times: Option<u32>,
    },
    /// The next `times` calls (…) answer HTTP `status` with `error` as
    /// Graph's error object, or with a body that is not Graph's when none.
    Fail {
        path: Option<String>,
        times: Option<u32>,
        status: u16,
        error: Option<Value>,
    },
    /// The next `times` answers (every answer, if none) carry these headers
    /// (`X-Business-Use-Case-Usage`, `X-Ad-Account-Usage`, `X-App-Usage` …).
    SendHeaders {
        headers: BTreeMap<String, String>,
        times: Option<u32>,
    },
    /// Forgets every hang, failure and header rule, and the latency.
    ClearFaults,
    /// Sets every call counter back to 0.
    ResetCalls,
}

/// Where and how the fake listens.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    pub listen: SocketAddr,
    pub api_version: String,
    pub latency: Duration,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), api_version: "v23.0".to_owned(), latency: Duration::ZERO }
    }
}

/// A running fake; dropping it stops the server.
pub struct FakeGraph {
    addr: SocketAddr,
    api_version: String,
    world: Arc<Mutex<World>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGraph {
    /// Starts on `127.0.0.1` on a free port.
    pub async fn start() -> std::io::Result<FakeGraph> {
        FakeGraph::start_with(FakeOptions::default()).await
    }

    pub async fn start_with(options: FakeOptions) -> std::io::Result<FakeGraph> {
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let world = Arc::new(Mutex::new(World::new(format!("http://{addr}"), options.api_version.clone(), options.latency)));
        let task = tokio::spawn(server::serve(listener, world.clone()));
        Ok(FakeGraph { addr, api_version: options.api_version, world, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}`, the connector's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies one control, as `POST /__control` does.
    pub fn apply(&self, control: Control) -> Result<(), String> {
        self.world().apply(control)
    }

    /// Applies controls in order, stopping at the first that fails.
    pub fn seed(&self, controls: impl IntoIterator<Item = Control>) -> Result<(), String> {
        let mut world = self.world();
        controls.into_iter().try_for_each(|control| world.apply(control))
    }

    /// Calls received on `path` (after the version, e.g. `act_42/insights`), any method.
    pub fn calls(&self, path: &str) -> u64 {
        self.world().calls(path)
    }

    /// Calls received on every path.
    pub fn total_calls(&self) -> u64 {
        self.world().total_calls()
    }

    /// An ad account as the fake holds it now.
    pub fn ad_account(&self, account_id: &str) -> Option<AccountSeed> {
        self.world().account(account_id)
    }

    /// The businesses an ad account is shared with (its agencies) and their tasks.
    pub fn agencies(&self, account_id: &str) -> BTreeMap<String, Vec<String>> {
        self.world().agencies(account_id)
    }

    /// The ad accounts a pixel is shared with.
    pub fn pixel_accounts(&self, pixel_id: &str) -> Vec<String> {
        self.world().pixel_accounts(pixel_id)
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.task.abort();
    }
}
