//! What every mutating service call takes besides its own fields: who asks
//! for the change, and the records that must commit with it, in the same
//! transaction, whichever job performs it (a plain write, a ledger batch, a
//! usage batch, a month close). Built once at the edge (each dialect, the
//! CLI, the automatic close).
//!
//! Each mutating method names its operation (`records` / `commit` take an
//! [`Operation`]), so every committed change has exactly one entry in the
//! operation log, written with it; a change that rolls back leaves none.

use subledger_domain::ids::TenantId;
use subledger_domain::oplog::{Actor, Operation, Outcome};
use subledger_storage::WriteTx;
use subledger_storage::records::{ChangeRecords, OperationRecord};
use subledger_storage::signed_requests::Sighting;

use crate::error::ServiceResult;

/// The context of one mutating request.
#[derive(Debug, Clone)]
pub struct Change {
    actor: Actor,
    sightings: Vec<Sighting>,
}

impl Change {
    /// A change asked for by `actor`.
    pub fn by(actor: Actor) -> Change {
        Change { actor, sightings: Vec::new() }
    }

    /// A change asked for by a signed request of the tenant (SendCloud): the
    /// request is recorded as seen with the change, so that a replay of it is
    /// refused ([`crate::ServiceError::Replayed`]) and a change that failed
    /// can be sent again.
    pub fn signed(tenant: TenantId, signature: &str, expires_at_ms: i64) -> Change {
        Change { actor: Actor::Tenant, sightings: vec![Sighting { tenant, signature: signature.to_owned(), expires_at_ms }] }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The records of this change doing `operation` in `tenant`, for a job
    /// that writes them in its own transaction.
    pub(crate) fn records(&self, tenant: TenantId, operation: Operation) -> ChangeRecords {
        ChangeRecords { sightings: self.sightings.clone(), operations: vec![OperationRecord { tenant, actor: self.actor.clone(), operation, outcome: Outcome::Done }], ad_money: Vec::new() }
    }

    /// Commits a plain write transaction with the change's records.
    pub(crate) async fn commit(&self, tx: WriteTx, tenant: TenantId, operation: Operation) -> ServiceResult<()> {
        Ok(tx.commit_with(&self.records(tenant, operation)).await?)
    }

    /// Commits a plain write transaction whose change was refused but still
    /// stored something (a failed login counted towards a lock): the entry
    /// says refused, with `reason`.
    pub(crate) async fn commit_refused(&self, tx: WriteTx, tenant: TenantId, operation: Operation, reason: &str) -> ServiceResult<()> {
        Ok(tx.commit_with(&self.records(tenant, operation).refused(reason)).await?)
    }
}
