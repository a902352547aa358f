//! Spend writes (cap changes and resets), several in one transaction.
//!
//! Each write reads the account's segment in force, decides, and advances
//! it only if no other write came first. On SQLite, whose every commit waits
//! for the disk and where writers take turns anyway, writes queue for one
//! task per process that applies as many as are waiting in one transaction:
//! one disk wait for the lot. On PostgreSQL each write runs at once in a
//! transaction of its own, so that writes run side by side.

use std::time::Duration;

use subledger_ads::sandbox_model::{AccountProfile, Segment};
use subledger_ads::{PlatformError, PlatformResult};
use subledger_domain::ids::TenantId;
use subledger_storage::ad_sandbox;
use subledger_storage::{Backend, StorageError, Store};
use tokio::sync::{mpsc, oneshot};

use super::{record, segment, unavailable};

/// How often a write is tried again when another one came first.
const ATTEMPTS: u32 = 8;
/// The pause before trying again, times the attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(2);
/// Writes waiting for the SQLite writer at most; callers beyond wait to queue.
const QUEUE_MAX: usize = 1_024;
/// Writes applied in one transaction at most.
const BATCH_MAX: usize = 256;

/// What a write does to the segment in force.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Cap(i64),
    Reset,
}

/// One write: to which account, when, what; and where its outcome goes.
pub(super) struct Write {
    pub tenant: TenantId,
    pub account: AccountProfile,
    pub now_us: i64,
    pub change: Change,
    reply: oneshot::Sender<PlatformResult<()>>,
}

impl Write {
    /// The segment the change makes of `current`, `None` when it changes
    /// nothing, or Meta's refusal.
    fn decide(&self, current: &Segment) -> PlatformResult<Option<Segment>> {
        match self.change {
            Change::Cap(cap_cents) => self.account.set_spend_cap(current, cap_cents, self.now_us),
            Change::Reset => Ok(Some(self.account.reset_spend_cap(current, self.now_us))),
        }
    }
}

/// Where writes go: the SQLite writer's queue, or straight to PostgreSQL.
#[derive(Debug)]
pub(super) struct Writer {
    store: Store,
    queue: std::sync::OnceLock<mpsc::Sender<Write>>,
}

impl Writer {
    pub(super) fn new(store: Store) -> Writer {
        Writer { store, queue: std::sync::OnceLock::new() }
    }

    /// Applies a write and answers its outcome.
    pub(super) async fn apply(&self, tenant: TenantId, account: AccountProfile, now_us: i64, change: Change) -> PlatformResult<()> {
        let (reply, outcome) = oneshot::channel();
        let write = Write { tenant, account, now_us, change, reply };
        match self.store.backend() {
            Backend::Postgres => apply_batch(&self.store, vec![write]).await,
            Backend::Sqlite => {
                // The writer task starts with the first write (inside the
                // runtime) and ends when the last clone of the sandbox goes.
                let queue = self.queue.get_or_init(|| {
                    let (queue, waiting) = mpsc::channel(QUEUE_MAX);
                    tokio::spawn(run(self.store.clone(), waiting));
                    queue
                });
                queue.send(write).await.map_err(|_| PlatformError::Unavailable("the sandbox's writer stopped".to_owned()))?;
            }
        }
        outcome.await.unwrap_or_else(|_| Err(PlatformError::Unavailable("the sandbox's writer stopped".to_owned())))
    }
}

/// The SQLite writer: whatever is waiting, in one transaction.
async fn run(store: Store, mut waiting: mpsc::Receiver<Write>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match waiting.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        apply_batch(&store, batch).await;
    }
}

/// How one write ended in a transaction.
enum Outcome {
    /// Decided: advanced (once the transaction commits), unchanged, or refused.
    Decided(PlatformResult<()>),
    /// Another write came first: read again, decide again.
    Lost,
}

/// Applies writes in one transaction, again for those that lost to another
/// process (or all, after a conflict), and answers each.
async fn apply_batch(store: &Store, mut pending: Vec<Write>) {
    for attempt in 1..=ATTEMPTS {
        match try_batch(store, &pending).await {
            Ok(outcomes) => {
                let mut lost = Vec::new();
                for (write, outcome) in pending.into_iter().zip(outcomes) {
                    match outcome {
                        Outcome::Decided(result) => {
                            let _ = write.reply.send(result);
                        }
                        Outcome::Lost => lost.push(write),
                    }
                }
                pending = lost;
            }
            // A concurrent first write, a serialization conflict or a deadlock.
            Err(error) if error.is_retryable() || matches!(error, StorageError::UniqueViolation { .. }) => {}
            Err(error) => {
                let error = unavailable(error);
                for write in pending {
                    let _ = write.reply.send(Err(error.clone()));
                }
                return;
            }
        }
        if pending.is_empty() {
            return;
        }
        tokio::time::sleep(RETRY_PAUSE * attempt).await;
    }
    for write in pending {
        let _ = write.reply.send(Err(PlatformError::Unavailable("the sandbox is busy: too many writes to one ad account at once".to_owned())));
    }
}

/// One transaction over the writes, in order (a later write to the same
/// account reads what an earlier one wrote). Outcomes hold once it commits.
async fn try_batch(store: &Store, writes: &[Write]) -> Result<Vec<Outcome>, StorageError> {
    let mut tx = store.begin_write().await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        let account_id = write.account.account_id.as_str();
        let current = ad_sandbox::spend_for_write(&mut tx, write.tenant, account_id).await?.map_or_else(|| write.account.first_segment(), segment);
        outcomes.push(match write.decide(&current) {
            Ok(Some(next)) => {
                if ad_sandbox::advance(&mut tx, write.tenant, account_id, current.seq, &record(&next)).await? {
                    Outcome::Decided(Ok(()))
                } else {
                    Outcome::Lost
                }
            }
            decided => Outcome::Decided(decided.map(|_| ())),
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}
