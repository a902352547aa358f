//! Meta's Graph API over HTTP (SCAFFOLD: the connector helper replaces this file).

use std::time::Duration;

use crate::{AdAccount, AdPlatform, Business, CreationRequest, InsightsRow, InsightsWindow, Pixel, PlatformError, PlatformResult, Scope};

/// Where Graph is and how patiently it is called.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com` (a fake server's address in tests).
    pub base_url: String,
    /// `v23.0`.
    pub api_version: String,
    /// Longest one call may take, retries and waits included.
    pub call_timeout: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig { base_url: "https://graph.facebook.com".to_owned(), api_version: "v23.0".to_owned(), call_timeout: Duration::from_secs(20) }
    }
}

/// The Graph API connector: one HTTP client shared by every tenant.
#[derive(Debug, Clone)]
pub struct GraphApi {
    config: GraphConfig,
}

impl GraphApi {
    pub fn new(config: GraphConfig) -> GraphApi {
        GraphApi { config }
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }
}

fn scaffold<T>() -> PlatformResult<T> {
    Err(PlatformError::Unavailable("scaffold".to_owned()))
}

impl AdPlatform for GraphApi {
    async fn creation_requests(&self, _scope: &Scope) -> PlatformResult<Vec<CreationRequest>> {
        scaffold()
    }
    async fn ad_accounts(&self, _scope: &Scope) -> PlatformResult<Vec<AdAccount>> {
        scaffold()
    }
    async fn ad_account(&self, _scope: &Scope, _account_id: &str) -> PlatformResult<AdAccount> {
        scaffold()
    }
    async fn set_spend_cap(&self, _scope: &Scope, _account_id: &str, _spend_cap_cents: i64) -> PlatformResult<()> {
        scaffold()
    }
    async fn reset_spend_cap(&self, _scope: &Scope, _account_id: &str) -> PlatformResult<()> {
        scaffold()
    }
    async fn businesses(&self, _scope: &Scope, _account_id: &str) -> PlatformResult<Vec<Business>> {
        scaffold()
    }
    async fn bind_business(&self, _scope: &Scope, _account_id: &str, _business_id: &str) -> PlatformResult<()> {
        scaffold()
    }
    async fn unbind_business(&self, _scope: &Scope, _account_id: &str, _business_id: &str) -> PlatformResult<()> {
        scaffold()
    }
    async fn pixels(&self, _scope: &Scope, _account_id: &str) -> PlatformResult<Vec<Pixel>> {
        scaffold()
    }
    async fn bind_pixel(&self, _scope: &Scope, _account_id: &str, _pixel_id: &str) -> PlatformResult<()> {
        scaffold()
    }
    async fn unbind_pixel(&self, _scope: &Scope, _account_id: &str, _pixel_id: &str) -> PlatformResult<()> {
        scaffold()
    }
    async fn daily_insights(&self, _scope: &Scope, _account_id: &str, _window: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> {
        scaffold()
    }
}
