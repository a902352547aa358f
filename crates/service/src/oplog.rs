//! Reading the operation log. Entries are written only with their change
//! (see [`crate::Change`]); here they are read back, newest first, and
//! described in the tenant's language.

use subledger_domain::oplog::{Actor, OperationKind, Outcome};
use subledger_domain::paging::Page;
pub use subledger_storage::oplog::OperationFilter;
use subledger_storage::oplog::{self as store_oplog, StoredOperation};

pub use subledger_storage::oplog::OPERATIONS_PAGE_MAX;

use crate::Services;
use crate::error::ServiceResult;
use crate::tenants::Tenant;

/// One entry, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationView {
    pub id: i64,
    pub at_us: i64,
    pub actor: Actor,
    pub kind: OperationKind,
    pub subject: String,
    pub detail: String,
    pub outcome: Outcome,
    /// The entry in the tenant's language (UUCall `opdescribe`).
    pub description: String,
}

impl OperationView {
    fn of(tenant: &Tenant, stored: StoredOperation) -> OperationView {
        let description = stored.operation.describe(&stored.actor, &stored.outcome, tenant.language);
        OperationView {
            id: stored.id,
            at_us: stored.at_us,
            actor: stored.actor,
            kind: stored.operation.kind,
            subject: stored.operation.subject,
            detail: stored.operation.detail,
            outcome: stored.outcome,
            description,
        }
    }
}

impl Services {
    /// A page of the tenant's operation log, newest first (at most
    /// [`OPERATIONS_PAGE_MAX`] entries).
    pub async fn operations(&self, tenant: &Tenant, filter: &OperationFilter<'_>, page: Page) -> ServiceResult<Vec<OperationView>> {
        let stored = store_oplog::list(&self.store, tenant.id, filter, page.offset, page.limit.min(OPERATIONS_PAGE_MAX)).await?;
        Ok(stored.into_iter().map(|entry| OperationView::of(tenant, entry)).collect())
    }
}
