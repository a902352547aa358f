//! TEMPORARY compile scaffold (not committed): the sandbox helper's file replaces it.
use subledger_ads::*;
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig { pub seed: u64, pub review_step_seconds: u64, pub request_every_seconds: u64 }
#[derive(Clone)]
pub struct Sandbox;
impl Sandbox { pub fn new(_store: subledger_storage::Store, _c: SandboxConfig) -> Sandbox { Sandbox } }
fn s<T>() -> PlatformResult<T> { Err(PlatformError::NotFound) }
impl AdPlatform for Sandbox {
    async fn creation_requests(&self, _: &Scope) -> PlatformResult<Vec<CreationRequest>> { s() }
    async fn ad_accounts(&self, _: &Scope) -> PlatformResult<Vec<AdAccount>> { s() }
    async fn ad_account(&self, _: &Scope, _: &str) -> PlatformResult<AdAccount> { s() }
    async fn set_spend_cap(&self, _: &Scope, _: &str, _: i64) -> PlatformResult<()> { s() }
    async fn reset_spend_cap(&self, _: &Scope, _: &str) -> PlatformResult<()> { s() }
    async fn businesses(&self, _: &Scope, _: &str) -> PlatformResult<Vec<Business>> { s() }
    async fn bind_business(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> { s() }
    async fn unbind_business(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> { s() }
    async fn pixels(&self, _: &Scope, _: &str) -> PlatformResult<Vec<Pixel>> { s() }
    async fn bind_pixel(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> { s() }
    async fn unbind_pixel(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> { s() }
    async fn daily_insights(&self, _: &Scope, _: &str, _: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> { s() }
}
