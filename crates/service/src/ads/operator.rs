//! What the operator (the tenant's own credentials, the CLI) sets for the ad
//! dialect: which platform serves the tenant, the blacklist of opening
//! companies, violation accounts, and the switch that pauses unbinding
//! Business Managers.

use subledger_domain::ads::BlacklistLevel;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_storage::ads as store_ads;

use super::{AD_ID_CHARS_MAX, token_context};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Longest company name or reason accepted.
pub const AD_TEXT_CHARS_MAX: usize = 200;

/// Which platform serves a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdConnectionInput {
    /// The built-in sandbox.
    Sandbox,
    /// Meta's Graph API with the agency's Business Manager and system-user token.
    Graph { business_id: String, access_token: String },
}

/// A blacklist entry: level 0 takes the company off the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistInput {
    pub company_name: String,
    pub level: BlacklistLevel,
    pub reason: String,
}

fn check_text(field: &'static str, text: &str, max: usize) -> ServiceResult<()> {
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(ServiceError::Invalid { field, reason: format!("must be 1 to {max} characters") });
    }
    Ok(())
}

impl Services {
    /// Sets which platform serves the tenant; a Graph token is sealed with
    /// the server's key, never stored as given.
    pub async fn set_ad_connection(&self, tenant: &Tenant, input: &AdConnectionInput, change: &Change) -> ServiceResult<()> {
        let (platform, business_id, sealed) = match input {
            AdConnectionInput::Sandbox => ("sandbox", super::sandbox_business_id(tenant), None),
            AdConnectionInput::Graph { business_id, access_token } => {
                if business_id.is_empty() || business_id.len() > AD_ID_CHARS_MAX || !business_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ServiceError::Invalid { field: "business_id", reason: "must be a Business Manager id (digits)".to_owned() });
                }
                check_text("access_token", access_token, 1_024)?;
                let key = self.ads.config.token_key.as_ref().ok_or(ServiceError::Unavailable("the server has no --ads-token-key: Meta tokens cannot be stored"))?;
                ("graph", business_id.clone(), Some(key.seal(access_token, &token_context(tenant))))
            }
        };
        let mut tx = self.store.begin_write().await?;
        store_ads::set_connection(&mut tx, tenant.id, platform, &business_id, sealed.as_deref(), now_us()).await?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::AdConnection, platform).with_detail(business_id)).await
    }

    /// Puts a company on the blacklist (its penalty starts now), or takes it off (level 0).
    pub async fn set_ad_blacklist(&self, tenant: &Tenant, input: &BlacklistInput, change: &Change) -> ServiceResult<()> {
        check_text("company_name", &input.company_name, AD_TEXT_CHARS_MAX)?;
        if input.reason.chars().count() > AD_TEXT_CHARS_MAX {
            return Err(ServiceError::Invalid { field: "reason", reason: format!("at most {AD_TEXT_CHARS_MAX} characters") });
        }
        self.ad_connection(tenant).await?;
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        if input.level == BlacklistLevel::None {
            store_ads::clear_blacklist(&mut tx, tenant.id, &input.company_name).await?;
        } else {
            let today = tenant.timezone.day_of(subledger_domain::calendar::from_unix_micros(now));
            let end_of_day = subledger_domain::calendar::to_unix_micros(tenant.timezone.start_of_day(today.next()));
            let until = input.level.until_us(now, end_of_day);
            store_ads::set_blacklist(&mut tx, tenant.id, &input.company_name, input.level.code(), now, until, &input.reason).await?;
        }
        let operation = Operation::new(OperationKind::AdBlacklist, input.company_name.clone()).with_detail(format!("level {}", input.level.code()));
        change.commit(tx, tenant.id, operation).await
    }

    /// Marks an ad account as a violation account (it can no longer be topped up), or clears the mark.
    pub async fn set_ad_violation(&self, tenant: &Tenant, id: &str, violation: bool, reason: &str, change: &Change) -> ServiceResult<()> {
        if reason.chars().count() > AD_TEXT_CHARS_MAX {
            return Err(ServiceError::Invalid { field: "reason", reason: format!("at most {AD_TEXT_CHARS_MAX} characters") });
        }
        let mut tx = self.store.begin_write().await?;
        if !store_ads::set_violation(&mut tx, tenant.id, id, violation, reason).await? {
            return Err(ServiceError::NotFound(Resource::AdAccount));
        }
        let operation = Operation::new(OperationKind::AdViolation, id).with_detail(if violation { format!("violation: {reason}") } else { "cleared".to_owned() });
        change.commit(tx, tenant.id, operation).await
    }

    /// Pauses (or resumes) unbinding Business Managers for the tenant (1022).
    pub async fn set_ad_unbind_paused(&self, tenant: &Tenant, paused: bool, change: &Change) -> ServiceResult<()> {
        self.ad_connection(tenant).await?;
        let mut tx = self.store.begin_write().await?;
        store_ads::set_unbind_business_paused(&mut tx, tenant.id, paused, now_us()).await?;
        let operation = Operation::new(OperationKind::AdSettings, "unbind_business_paused").with_detail(paused.to_string());
        change.commit(tx, tenant.id, operation).await
    }
}
