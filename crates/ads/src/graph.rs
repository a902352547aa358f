//! Meta's Graph API over HTTP: [`GraphApi`] implements [`AdPlatform`].
//!
//! Every trait method is one call with one deadline ([`GraphConfig::call_timeout`]),
//! which covers its pages, attempts and waits. The calls, as Meta's
//! `facebook-business` SDK names them (`{v}` is [`GraphConfig::api_version`]):
//!
//! | method | Graph |
//! | --- | --- |
//! | `creation_requests` | `GET /{v}/{business}/adaccountcreationrequests` (the SDK's `AdAccountCreationRequest` fields, `adaccounts.limit(n){id,account_id,name}` expanded, its further pages from `GET /{v}/{request}/adaccounts`) |
//! | `ad_accounts` | `GET /{v}/{business}/client_ad_accounts` and `/owned_ad_accounts`, fields [`AD_ACCOUNT_FIELDS`], deduplicated |
//! | `ad_account` | `GET /{v}/act_{id}` |
//! | `set_spend_cap` | `POST /{v}/act_{id}` `spend_cap=<dollars>` |
//! | `reset_spend_cap` | `POST /{v}/act_{id}` `spend_cap_action=reset`, then `spend_cap=0.01` |
//! | `businesses` | `GET /{v}/act_{id}/agencies` (`id,name,permitted_tasks`) |
//! | `bind_business` / `unbind_business` | `POST` / `DELETE /{v}/act_{id}/agencies` `business`, `permitted_tasks=["ADVERTISE","ANALYZE"]` |
//! | `pixels` | `GET /{v}/act_{id}/adspixels` (`id,name`) |
//! | `bind_pixel` / `unbind_pixel` | `POST` / `DELETE /{v}/{pixel}/shared_accounts` `account_id`, `business` |
//! | `daily_insights` | `GET /{v}/act_{id}/insights` `time_range`, `time_increment=1`, `fields`, `breakdowns`, `level=account` |
//!
//! Money: Graph reads `spend_cap` and `amount_spent` as strings of cents
//! (the SDK types them `string`; Meta's reference: "in the account's minor
//! unit"), and takes `spend_cap` written in the account's currency (the SDK
//! types it `float`): 12345 cents are written `123.45`. Only currencies of
//! 100 minor units are meant (the reseller's accounts are USD).
//!
//! The token travels as `access_token`, a query parameter on GET and a form
//! field on POST and DELETE; it is never logged and never part of an error.
//!
//! Lists follow `paging.cursors.after` while `paging.next` is there (or
//! `paging.next`'s own parameters when it has no cursor), `limit`
//! [`GraphConfig::page_size`] a page. A list longer than
//! [`GraphConfig::max_pages`] pages, or one whose cursor repeats, fails
//! `Malformed` rather than answer part of it: a sync must not take a cut
//! list for the whole.
//!
//! Retries, the rate-limit headers and pacing: see `call` and `throttle`.

mod call;
mod throttle;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

pub use throttle::{ThrottleStats, USAGE_FRESH_FOR, UsageKey};

use crate::{AD_ACCOUNT_FIELDS, AdAccount, AdPlatform, Business, CreationRequest, INSIGHTS_SYNC_FIELDS, InsightsRow, InsightsWindow, Pixel, PlatformError, PlatformResult, Scope};
use call::{Call, Repeat, Verb};
use throttle::{Throttle, ThrottleConfig};
use wire::{More, Page};

/// The tasks a Business Manager gets on an ad account shared with it
/// (`AdAccount.PermittedTasks`: ADVERTISE, ANALYZE, DRAFT, MANAGE, AA_ANALYZE).
pub const PERMITTED_TASKS: &str = r#"["ADVERTISE","ANALYZE"]"#;

/// Where Graph is and how patiently it is called.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com` (a fake server's address in tests).
    pub base_url: String,
    /// `v23.0`.
    pub api_version: String,
    /// Longest one call may take, retries and waits included.
    pub call_timeout: Duration,
    /// Longest one HTTP attempt may take (answer read included).
    pub attempt_timeout: Duration,
    /// Attempts after the first, at most.
    pub max_retries: u32,
    /// The first retry waits up to this (full jitter), each next one twice as long…
    pub backoff_base: Duration,
    /// … up to this.
    pub backoff_max: Duration,
    /// `limit` of list calls.
    pub page_size: u32,
    /// Pages one list may have before it is refused.
    pub max_pages: u32,
    /// Largest answer read, in bytes.
    pub max_response_bytes: usize,
    /// Idle connections kept per host (concurrent ones are not limited:
    /// calls never wait for each other's connection).
    pub max_idle_connections_per_host: usize,
    /// Usage (percent, from Meta's headers) above which calls on that key are paced.
    pub slowdown_threshold_pct: u32,
    /// The pace at 100 % usage: one call per this interval on a key.
    pub slowdown_max_interval: Duration,
    /// Rate-limit keys (businesses, ad accounts, apps) remembered at most.
    pub max_tracked_keys: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: "https://graph.facebook.com".to_owned(),
            api_version: "v23.0".to_owned(),
            call_timeout: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(10),
            max_retries: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(4),
            page_size: 100,
            max_pages: 200,
            max_response_bytes: 16 << 20,
            max_idle_connections_per_host: 256,
            slowdown_threshold_pct: 75,
            slowdown_max_interval: Duration::from_secs(2),
            max_tracked_keys: 10_000,
        }
    }
}

/// The Graph API connector: one HTTP client (and one connection pool)
/// shared by every tenant and every call; clones share it too.
#[derive(Clone)]
pub struct GraphApi {
    inner: Arc<Inner>,
}

struct Inner {
    config: GraphConfig,
    /// `{base_url}/{api_version}`.
    root: String,
    client: reqwest::Client,
    throttle: Throttle,
}

impl std::fmt::Debug for GraphApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphApi").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl GraphApi {
    pub fn new(config: GraphConfig) -> GraphApi {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(config.max_idle_connections_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(config.attempt_timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("subledger/", env!("CARGO_PKG_VERSION")))
            .build()
            // Fails only when the TLS backend cannot start: nothing could be called then.
            .expect("the HTTP client (rustls) starts");
        let throttle = Throttle::new(ThrottleConfig { threshold_pct: config.slowdown_threshold_pct, max_interval: config.slowdown_max_interval, max_keys: config.max_tracked_keys });
        let root = format!("{}/{}", config.base_url.trim_end_matches('/'), config.api_version);
        GraphApi { inner: Arc::new(Inner { config, root, client, throttle }) }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// What the rate-limit throttle has done so far.
    pub fn throttle_stats(&self) -> ThrottleStats {
        self.inner.throttle.stats()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.config.call_timeout
    }

    /// Every item of a list edge, its pages followed to the end.
    async fn list(&self, scope: &Scope, first: Call<'_>, deadline: Instant) -> PlatformResult<Vec<Value>> {
        self.list_from(scope, first, None, deadline).await
    }

    /// The items of a list edge from `more` on (from its start when `None`).
    async fn list_from(&self, scope: &Scope, first: Call<'_>, mut more: Option<More>, deadline: Instant) -> PlatformResult<Vec<Value>> {
        let base = first.param("limit", self.inner.config.page_size.to_string());
        let mut items = Vec::new();
        let mut last_after: Option<String> = None;
        for _ in 0..self.inner.config.max_pages {
            let mut call = base.clone();
            match more {
                None => {}
                Some(More::After(after)) => {
                    if last_after.as_ref() == Some(&after) {
                        return Err(wire::malformed("Graph repeated a page cursor"));
                    }
                    call = call.param("after", after.clone());
                    last_after = Some(after);
                }
                Some(More::Next(next)) => call.params = next_params(&next)?,
            }
            let page = Page::from_body(self.send(scope, &call, deadline).await?)?;
            items.extend(page.data);
            more = page.more;
            if more.is_none() {
                return Ok(items);
            }
        }
        Err(PlatformError::Malformed(format!("the list did not end within {} pages", self.inner.config.max_pages)))
    }

    /// One write; `{"success": false}` is a refusal.
    async fn write(&self, scope: &Scope, call: Call<'_>, deadline: Instant) -> PlatformResult<()> {
        let answer = self.send(scope, &call, deadline).await?;
        if wire::write_succeeded(&answer) { Ok(()) } else { Err(PlatformError::Refused { code: 0, subcode: None, message: "Graph answered success: false".to_owned() }) }
    }

    async fn accounts_of(&self, scope: &Scope, edge: &str, deadline: Instant) -> PlatformResult<Vec<Value>> {
        let business = node(&scope.business_id)?;
        self.list(scope, Call::new(Verb::Get, format!("{business}/{edge}"), Repeat::Read).param("fields", AD_ACCOUNT_FIELDS.join(",")), deadline).await
    }
}

/// The parameters of a `paging.next` URL, without its `access_token` (ours
/// is added to every call).
fn next_params(next: &str) -> PlatformResult<Vec<(String, String)>> {
    let url = reqwest::Url::parse(next).map_err(|_| wire::malformed("paging.next is not a URL"))?;
    Ok(url.query_pairs().filter(|(name, _)| name != "access_token").map(|(name, value)| (name.into_owned(), value.into_owned())).collect())
}

/// A Graph node id as a path segment: digits only, so that no id can reach
/// another path. Anything else names no object.
fn node(id: &str) -> PlatformResult<&str> {
    if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) { Ok(id) } else { Err(PlatformError::NotFound) }
}

/// An ad account's digits (with or without `act_`).
fn account(id: &str) -> PlatformResult<&str> {
    node(wire::account_digits(id))
}

impl AdPlatform for GraphApi {
    async fn creation_requests(&self, scope: &Scope) -> PlatformResult<Vec<CreationRequest>> {
        let deadline = self.deadline();
        let business = node(&scope.business_id)?;
        let fields = format!("{},adaccounts.limit({}){{{}}}", wire::CREATION_REQUEST_FIELDS, self.inner.config.page_size, wire::ISSUED_ACCOUNT_FIELDS);
        let call = Call::new(Verb::Get, format!("{business}/adaccountcreationrequests"), Repeat::Read).param("fields", fields);
        let mut requests = Vec::new();
        for value in self.list(scope, call, deadline).await? {
            let (mut request, more_accounts) = wire::creation_request(value)?;
            if more_accounts.is_some() {
                let request_id = node(&request.id).map_err(|_| wire::malformed("a creation request id is not numeric"))?;
                let edge = Call::new(Verb::Get, format!("{request_id}/adaccounts"), Repeat::Read).param("fields", wire::ISSUED_ACCOUNT_FIELDS);
                for value in self.list_from(scope, edge, more_accounts, deadline).await? {
                    request.ad_accounts.push(wire::issued_account(value)?);
                }
            }
            requests.push(request);
        }
        Ok(requests)
    }

    async fn ad_accounts(&self, scope: &Scope) -> PlatformResult<Vec<AdAccount>> {
        let deadline = self.deadline();
        let (client, owned) = tokio::try_join!(self.accounts_of(scope, "client_ad_accounts", deadline), self.accounts_of(scope, "owned_ad_accounts", deadline))?;
        let mut accounts: Vec<AdAccount> = Vec::with_capacity(client.len() + owned.len());
        let mut seen = std::collections::HashSet::new();
        for value in client.into_iter().chain(owned) {
            let account = wire::ad_account(value)?;
            if seen.insert(account.account_id.clone()) {
                accounts.push(account);
            }
        }
        Ok(accounts)
    }

    async fn ad_account(&self, scope: &Scope, account_id: &str) -> PlatformResult<AdAccount> {
        let id = account(account_id)?;
        let call = Call::new(Verb::Get, format!("act_{id}"), Repeat::Read).param("fields", AD_ACCOUNT_FIELDS.join(",")).on_account(id);
        wire::ad_account(self.send(scope, &call, self.deadline()).await?)
    }

    async fn set_spend_cap(&self, scope: &Scope, account_id: &str, spend_cap_cents: i64) -> PlatformResult<()> {
        let id = account(account_id)?;
        if spend_cap_cents < 0 {
            // Refused here, as Meta would refuse it (invalid parameter), without calling.
            return Err(PlatformError::Refused { code: 100, subcode: None, message: "a spend cap cannot be negative".to_owned() });
        }
        let call = Call::new(Verb::Post, format!("act_{id}"), Repeat::Idempotent).param("spend_cap", wire::dollars(spend_cap_cents)).on_account(id);
        self.write(scope, call, self.deadline()).await
    }

    async fn reset_spend_cap(&self, scope: &Scope, account_id: &str) -> PlatformResult<()> {
        let id = account(account_id)?;
        let deadline = self.deadline();
        let reset = Call::new(Verb::Post, format!("act_{id}"), Repeat::Once).param("spend_cap_action", "reset").on_account(id);
        self.write(scope, reset, deadline).await?;
        let cap = Call::new(Verb::Post, format!("act_{id}"), Repeat::Idempotent).param("spend_cap", wire::dollars(crate::RESET_SPEND_CAP_CENTS)).on_account(id);
        self.write(scope, cap, deadline).await.map_err(|error| {
            if error.outcome_unknown() {
                error
            } else {
                // The reset was done: whatever else failed, the account changed and must be read back.
                PlatformError::Unavailable(format!("the spend was reset but the cap of 0.01 was not set: {error}"))
            }
        })
    }

    async fn businesses(&self, scope: &Scope, account_id: &str) -> PlatformResult<Vec<Business>> {
        let id = account(account_id)?;
        let call = Call::new(Verb::Get, format!("act_{id}/agencies"), Repeat::Read).param("fields", "id,name,permitted_tasks").on_account(id);
        self.list(scope, call, self.deadline()).await?.into_iter().map(wire::business).collect()
    }

    async fn bind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> PlatformResult<()> {
        let id = account(account_id)?;
        let call = Call::new(Verb::Post, format!("act_{id}/agencies"), Repeat::Idempotent).param("business", node(business_id)?).param("permitted_tasks", PERMITTED_TASKS).on_account(id);
        self.write(scope, call, self.deadline()).await
    }

    async fn unbind_business(&self, scope: &Scope, account_id: &str, business_id: &str) -> PlatformResult<()> {
        let id = account(account_id)?;
        let call = Call::new(Verb::Delete, format!("act_{id}/agencies"), Repeat::Idempotent).param("business", node(business_id)?).on_account(id);
        self.write(scope, call, self.deadline()).await
    }

    async fn pixels(&self, scope: &Scope, account_id: &str) -> PlatformResult<Vec<Pixel>> {
        let id = account(account_id)?;
        let call = Call::new(Verb::Get, format!("act_{id}/adspixels"), Repeat::Read).param("fields", "id,name").on_account(id);
        self.list(scope, call, self.deadline()).await?.into_iter().map(wire::pixel).collect()
    }

    async fn bind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> PlatformResult<()> {
        let call = pixel_share(Verb::Post, scope, account_id, pixel_id)?;
        self.write(scope, call, self.deadline()).await
    }

    async fn unbind_pixel(&self, scope: &Scope, account_id: &str, pixel_id: &str) -> PlatformResult<()> {
        let call = pixel_share(Verb::Delete, scope, account_id, pixel_id)?;
        self.write(scope, call, self.deadline()).await
    }

    async fn daily_insights(&self, scope: &Scope, account_id: &str, window: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> {
        let id = account(account_id)?;
        let fields = if window.total_postbacks { "total_postbacks".to_owned() } else { INSIGHTS_SYNC_FIELDS.join(",") };
        let mut call = Call::new(Verb::Get, format!("act_{id}/insights"), Repeat::Read)
            .param("time_range", json!({"since": window.since.to_string(), "until": window.until.to_string()}).to_string())
            .param("time_increment", "1")
            .param("fields", fields)
            .param("level", "account")
            .on_account(id);
        if let Some(breakdown) = window.breakdown {
            call = call.param("breakdowns", breakdown);
        }
        self.list(scope, call, self.deadline()).await?.into_iter().map(wire::insights_row).collect()
    }
}

/// `{pixel}/shared_accounts` with `account_id` and the scope's `business`.
fn pixel_share<'a>(verb: Verb, scope: &Scope, account_id: &'a str, pixel_id: &str) -> PlatformResult<Call<'a>> {
    let id = account(account_id)?;
    Ok(Call::new(verb, format!("{}/shared_accounts", node(pixel_id)?), Repeat::Idempotent).param("account_id", id).param("business", node(&scope.business_id)?).on_account(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_only() {
        assert_eq!(account("act_123"), Ok("123"));
        assert_eq!(account("123"), Ok("123"));
        assert_eq!(account("act_1/../2"), Err(PlatformError::NotFound));
        assert_eq!(node(""), Err(PlatformError::NotFound));
    }

    #[test]
    fn next_urls_lose_their_token() {
        let params = next_params("https://graph.facebook.com/v23.0/1/owned_ad_accounts?access_token=SECRET&limit=2&offset=4").unwrap();
        assert_eq!(params, vec![("limit".to_owned(), "2".to_owned()), ("offset".to_owned(), "4".to_owned())]);
    }
}
