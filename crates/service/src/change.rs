//! What every mutating service call takes besides its own fields: the
//! records that must commit with its change, in the same transaction,
//! whichever job performs it (a plain write, a ledger batch, a usage batch,
//! a month close). Built once at the edge (each dialect, the CLI), so that a
//! new kind of record (the operation log) is one more field here and in
//! `subledger_storage::records`, not a change to every method.

use subledger_domain::ids::TenantId;
use subledger_storage::WriteTx;
use subledger_storage::records::ChangeRecords;
use subledger_storage::signed_requests::Sighting;

use crate::error::ServiceResult;

/// The context of one mutating request.
#[derive(Debug, Clone, Default)]
pub struct Change {
    records: ChangeRecords,
}

impl Change {
    /// A change with nothing to record beside it.
    pub fn new() -> Change {
        Change::default()
    }

    /// A change asked for by a signed request (SendCloud): the request is
    /// recorded as seen with the change, so that a replay of it is refused
    /// ([`crate::ServiceError::Replayed`]) and a change that failed can be
    /// sent again.
    pub fn signed(tenant: TenantId, signature: &str, expires_at_ms: i64) -> Change {
        Change { records: ChangeRecords { sightings: vec![Sighting { tenant, signature: signature.to_owned(), expires_at_ms }] } }
    }

    /// The records, for a job that writes them in its own transaction.
    pub(crate) fn records(&self) -> ChangeRecords {
        self.records.clone()
    }

    /// Commits a plain write transaction with the change's records.
    pub(crate) async fn commit(&self, tx: WriteTx) -> ServiceResult<()> {
        Ok(tx.commit_with(&self.records).await?)
    }
}
