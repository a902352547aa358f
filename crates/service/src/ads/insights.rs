//! TEMPORARY compile scaffold (not committed): the insights helper's file replaces it.
use crate::{Services, ServiceResult, tenants::Tenant};
impl Services {
    pub async fn sync_ad_insights<P: subledger_ads::AdPlatform>(&self, _p: &P, _s: &subledger_ads::Scope, _t: &Tenant, _a: &str, _since: jiff::civil::Date, _until: jiff::civil::Date) -> ServiceResult<()> { Ok(()) }
}
