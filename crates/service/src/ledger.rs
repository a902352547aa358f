//! The ledger's hot path: concurrent transfers are grouped into batches.
//!
//! A transfer is a tiny write, and committing each alone is bounded by the
//! disk's fsync rate and by the row lock on a hot wallet (every `transferIn`
//! of a tenant debits the same parent wallet). So everything that moves money
//! queues to one worker per process ([`Ledger::start`]): transfers and hold
//! steps, batched together; usage batches and month closes, a transaction
//! each; and the replay guard's sightings, many per transaction. The worker
//! has an OS thread and a current-thread runtime of its own, so the serial
//! batch path never waits behind request tasks. Several processes may share
//! one database: a batch that loses a race to another process runs again.
//!
//! # A batch of transfers, step by step
//!
//! 1. **Queue.** [`Ledger::submit`] (or `submit_hold`, `submit_hold_step`)
//!    checks the idempotency key (1 to [`IDEMPOTENCY_KEY_BYTES_MAX`] bytes)
//!    and the memo (at most [`MEMO_CHARS_MAX`] characters), puts the request
//!    on the bounded queue ([`LedgerConfig::queue_rows_max`] rows; when it is
//!    full the caller gets [`ServiceError::Busy`] at once) and awaits a
//!    oneshot reply.
//! 2. **Drain.** The worker takes what is waiting (`take_drain`: at most
//!    [`LedgerConfig::drain_rows_max`] rows and [`LedgerConfig::batch_max`]
//!    transfers, at least one item) and sorts it by kind; the transfers and
//!    hold steps form one batch. One batch is in flight at a time by default
//!    ([`LedgerConfig::batches_in_flight`]), and always one on SQLite.
//! 3. **Read** (`commit_batch`, then storage's `begin_batch`): the wallets the
//!    batch names, the earlier outcomes of its keys, the holds it names, and
//!    fresh ids.
//!    - SQLite, on the ledger thread's own connection: the write gate, then
//!      `BEGIN IMMEDIATE`, then point reads with cached statements; fresh ids
//!      continue from the largest, which the write lock makes safe.
//!    - PostgreSQL, first attempt ([`Locking::Optimistic`]): no transaction;
//!      one statement reads the wallets and the keys and draws ids from the
//!      `transfer_ids` sequence (holds, if any, in a second). Later attempts
//!      ([`Locking::Pessimistic`]): `BEGIN`, and the wallets locked
//!      `FOR UPDATE` in id order, so concurrent batches never deadlock.
//! 4. **Decide** (`BatchJournal`), each request in arrival order: a wallet of
//!    another tenant is `NotFound`; a key with an earlier outcome (stored, or
//!    earlier in this batch) replays it when the fingerprint
//!    (`kind:debit>credit:amount:currency`) matches and is
//!    `IdempotencyKeyReused` otherwise; anything else goes through the
//!    domain's `Journal` over a `Book`: posted (two entries) or refused with a
//!    `TransferRejection`. Replays of posted transfers read their stored
//!    balances (`balances_after`, one more call).
//! 5. **Write and commit** (storage's `finish_batch`): the transfers (posted
//!    ones, and refused ones that carry a key, so that the key replays), their
//!    entries, the holds opened or resolved, each touched wallet's balance,
//!    `entry_seq` and reservation, and the records of every request that
//!    wrote something. A wallet is written only if it is still as read.
//!    SQLite: a cached statement per row, then `COMMIT`. PostgreSQL: one
//!    statement with data-modifying CTEs, in which `subledger_expect_rows`
//!    raises 40001 if a wallet moved meanwhile; optimistically that statement
//!    is its own transaction (a batch with records opens one), pessimistically
//!    `COMMIT` follows. A batch with nothing to write only commits.
//! 6. **Retry or isolate** (`commit_isolating`). A conflict (40001, 40P01, a
//!    busy SQLite file, or a unique violation: a key another process committed
//!    after the lookup) runs the batch again, up to
//!    [`LedgerConfig::retries_max`] times, 2 ms × attempt apart, with locks
//!    from the second attempt; the rerun finds the key and replays it. Any
//!    other failure (a value the database refuses) commits the batch in
//!    halves, recursively, so that the request at fault fails alone and every
//!    other one gets the outcome it would have had on its own. Contention
//!    that outlasts the retries fails its part with a transient error, and
//!    nothing of that part was written.
//! 7. **Answer.** Each caller gets its receipt only after the commit; a
//!    caller that went away gets nothing, and its transfer stands.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use std::sync::Arc;
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{PostedEntries, TransferIntent, TransferKind, TransferRejection};
use subledger_domain::money::PositiveAmount;
use subledger_domain::posting::{HoldRefusal, HoldState, Journal, Posting, fingerprint, hold_post_fingerprint};
use subledger_storage::ledger::{self as store_ledger, BatchKeys, LedgerWriter, LedgerWrites, Locking, StoredHold, StoredTransfer};

use subledger_storage::records::ChangeRecords;
use subledger_storage::signed_requests::Sighting;
use subledger_storage::{Backend, StorageError, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::billing::{CloseError, CloseJob, CloseStep, run_close_job};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::metrics::LedgerMetrics;
use crate::usage::{UsageJob, UsageReply, run_usage_jobs};

/// Limits of the batcher.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Most transfers written in one database transaction.
    pub batch_max: usize,
    /// Most rows of work waiting for the worker (a transfer or a sighting is
    /// one row, a usage batch one per event, a month close one). Beyond it a
    /// caller is answered busy at once: waiting would only hold it until its
    /// deadline, after which its work might still commit.
    pub queue_rows_max: usize,
    /// Most rows of work one drain of the queue takes: a queue of large usage
    /// batches cannot hold transfers behind it for more than one drain.
    pub drain_rows_max: usize,
    /// Times a batch is run again after a transient conflict.
    pub retries_max: u32,
    /// Batches committing at once on PostgreSQL (SQLite has one writer, so
    /// one batch). Batches of different tenants overlap; batches on one hot
    /// wallet queue on its row lock.
    /// 1 by default on both: measured under the benchmark, more batches in
    /// flight made smaller batches queue on the hot wallet and lowered throughput.
    pub batches_in_flight: usize,
    /// Most accounts one chunk of a month close bills, in one transaction on
    /// the worker: the longest other work waits behind a close is one chunk.
    pub close_chunk_accounts: usize,
}

/// Accounts per chunk of a month close by default (see `bench/README.md`, Fairness).
pub const CLOSE_CHUNK_ACCOUNTS_DEFAULT: usize = 500;
/// Most accounts per chunk: a chunk's reads and writes are held in memory.
pub const CLOSE_CHUNK_ACCOUNTS_MAX: usize = 100_000;

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { batch_max: 512, queue_rows_max: 65_536, drain_rows_max: 8_192, retries_max: 8, batches_in_flight: 1, close_chunk_accounts: CLOSE_CHUNK_ACCOUNTS_DEFAULT }
    }
}

/// Longest accepted idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
/// Longest memo kept with a transfer, in characters.
pub const MEMO_CHARS_MAX: usize = 500;

/// A transfer to post, with its wallets already resolved.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub tenant: TenantId,
    /// Replaying a key returns the first outcome and moves nothing.
    pub idempotency_key: Option<String>,
    pub kind: TransferKind,
    pub intent: TransferIntent,
    pub memo: Option<String>,
    /// What commits with it (see [`crate::Change`]).
    pub records: ChangeRecords,
}

/// The balances right after a posted transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostedBalances {
    pub debit_balance_after_minor: i64,
    pub credit_balance_after_minor: i64,
}

/// The answer to a transfer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReceipt {
    pub transfer_id: TransferId,
    pub kind: TransferKind,
    pub debit: WalletId,
    pub credit: WalletId,
    pub amount_minor: i64,
    pub created_at_us: i64,
    /// True when this is the stored outcome of an earlier request with the same key.
    pub replayed: bool,
    pub outcome: Result<PostedBalances, TransferRejection>,
}

impl TransferReceipt {
    /// The receipt when posted, the rejection as an error otherwise.
    pub fn posted(self) -> ServiceResult<(TransferReceipt, PostedBalances)> {
        match self.outcome {
            Ok(balances) => Ok((self, balances)),
            Err(reason) => Err(ServiceError::Rejected(reason)),
        }
    }
}

/// A pending transfer to open: `intent`'s amount is reserved on its debit
/// wallet until it is posted, voided, or `timeout_at_us` passes.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    pub tenant: TenantId,
    /// Replaying a key answers the hold as it stands and reserves nothing more.
    pub idempotency_key: Option<String>,
    pub kind: TransferKind,
    pub intent: TransferIntent,
    pub memo: Option<String>,
    pub timeout_at_us: i64,
    pub records: ChangeRecords,
}

/// A step of a hold that exists: its wallets come from a read made before
/// the batch (a hold's wallets never change), so the batch can lock them.
#[derive(Debug, Clone)]
pub struct HoldStep {
    pub tenant: TenantId,
    pub hold: TransferId,
    pub debit: WalletId,
    pub credit: WalletId,
    pub action: HoldAction,
    pub records: ChangeRecords,
}

#[derive(Debug, Clone)]
pub enum HoldAction {
    /// Post it for `amount` (all it reserved when `None`), as a transfer of
    /// its own whose idempotency key replays the posting.
    Post { amount: Option<PositiveAmount>, memo: Option<String>, idempotency_key: Option<String> },
    /// Void it (its owner); voiding a voided or expired hold changes nothing.
    Void,
    /// Void it if it is still pending past its timeout (the expiry sweep).
    Expire,
}

/// What the worker batches together: transfers and the steps of holds, all
/// through one journal per batch.
#[derive(Debug, Clone)]
enum LedgerRequest {
    Transfer(TransferRequest),
    OpenHold(HoldRequest),
    Hold(HoldStep),
}

/// The answer to a hold request: the hold as it stands after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldReceipt {
    pub hold: StoredHold,
    /// True when the request changed nothing: an earlier request's hold found
    /// by its key, a posting replayed, or a void of a hold already void.
    pub replayed: bool,
    /// For a posting, the transfer that moved the money.
    pub posted: Option<TransferReceipt>,
}

#[derive(Debug)]
enum LedgerAnswer {
    Transfer(TransferReceipt),
    Hold(HoldReceipt),
}

impl LedgerAnswer {
    /// An earlier request's outcome, answered again: nothing was written.
    fn replayed(&self) -> bool {
        match self {
            LedgerAnswer::Transfer(receipt) => receipt.replayed,
            LedgerAnswer::Hold(receipt) => receipt.replayed,
        }
    }

    /// The reason of a refusal that was stored (under an idempotency key).
    fn refusal(&self) -> Option<&'static str> {
        match self {
            LedgerAnswer::Transfer(receipt) => receipt.outcome.as_ref().err().map(|rejection| rejection.as_str()),
            LedgerAnswer::Hold(receipt) => match receipt.hold.hold.state {
                subledger_domain::posting::HoldState::Rejected(rejection) => Some(rejection.as_str()),
                _ => None,
            },
        }
    }
}

impl LedgerRequest {
    fn records(&self) -> &ChangeRecords {
        match self {
            LedgerRequest::Transfer(r) => &r.records,
            LedgerRequest::OpenHold(r) => &r.records,
            LedgerRequest::Hold(step) => &step.records,
        }
    }
}

struct Pending {
    request: LedgerRequest,
    reply: oneshot::Sender<ServiceResult<LedgerAnswer>>,
}

/// What the worker does: transfers (batched together) and jobs that are
/// batches of their own (usage ingestion).
enum Work {
    Transfer(Pending),
    Usage(UsageJob, UsageReply),
    /// One chunk of a month close.
    Close(CloseJob, oneshot::Sender<Result<CloseStep, CloseError>>),
    Sighting(Sighting, oneshot::Sender<ServiceResult<bool>>),
}

impl Work {
    /// What the work weighs in the queue and in a drain.
    fn rows(&self) -> usize {
        match self {
            Work::Usage(job, _) => job.events.len().max(1),
            Work::Transfer(_) | Work::Close(..) | Work::Sighting(..) => 1,
        }
    }
}

/// Work in the queue, holding its rows of the queue's room until it is done.
struct Queued {
    work: Work,
    _room: OwnedSemaphorePermit,
}

/// Handle to the batching worker. Cloning it is cheap; the worker stops once
/// every handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<Queued>,
    /// One permit per row of work the queue may hold.
    room: Arc<Semaphore>,
    queue_rows_max: usize,
}

impl Ledger {
    /// Starts the worker on a thread of its own, with a runtime of its own:
    /// the batch path is serial, and on the shared runtime it would wait in
    /// line behind request tasks at every step. The returned handle resolves
    /// when the worker has drained its queue and stopped.
    pub fn start(store: Store, config: LedgerConfig, metrics: LedgerMetrics) -> (Ledger, JoinHandle<()>) {
        assert!(config.batch_max > 0 && config.queue_rows_max > 0 && config.drain_rows_max > 0 && config.close_chunk_accounts > 0);
        // Every queued item holds at least one row: the channel never fills
        // before the room does.
        let (queue, receiver) = mpsc::channel(config.queue_rows_max);
        let (room, queue_rows_max) = (Arc::new(Semaphore::new(config.queue_rows_max)), config.queue_rows_max);
        let (stopped, on_stop) = oneshot::channel();
        std::thread::Builder::new()
            .name("ledger".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("the ledger runtime starts");
                runtime.block_on(run_worker(receiver, store, config, metrics));
                let _ = stopped.send(());
            })
            .expect("the ledger thread starts");
        let worker = tokio::spawn(async move {
            let _ = on_stop.await;
        });
        (Ledger { queue, room, queue_rows_max }, worker)
    }

    /// Puts work on the queue, or answers busy at once when the queue has no
    /// room for its rows.
    fn enqueue(&self, work: Work) -> ServiceResult<()> {
        // A job larger than the whole queue waits for an empty one.
        let rows = u32::try_from(work.rows().min(self.queue_rows_max)).unwrap_or(u32::MAX);
        let room = match self.room.clone().try_acquire_many_owned(rows) {
            Ok(room) => room,
            Err(TryAcquireError::NoPermits) => return Err(ServiceError::Busy("the ledger's queue is full")),
            Err(TryAcquireError::Closed) => return Err(ServiceError::Unavailable("the ledger is shutting down")),
        };
        self.queue.try_send(Queued { work, _room: room }).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => ServiceError::Busy("the ledger's queue is full"),
            mpsc::error::TrySendError::Closed(_) => ServiceError::Unavailable("the ledger is shutting down"),
        })
    }

    /// Posts a transfer (or refuses it) and returns once the outcome is durable.
    pub async fn submit(&self, request: TransferRequest) -> ServiceResult<TransferReceipt> {
        check_request_text(request.idempotency_key.as_deref(), request.memo.as_deref())?;
        match self.run(LedgerRequest::Transfer(request)).await? {
            LedgerAnswer::Transfer(receipt) => Ok(receipt),
            LedgerAnswer::Hold(_) => unreachable!("a transfer is answered with a transfer"),
        }
    }

    /// Opens a hold (or refuses it: the receipt's hold is then `Rejected`)
    /// and returns once it is durable.
    pub async fn submit_hold(&self, request: HoldRequest) -> ServiceResult<HoldReceipt> {
        check_request_text(request.idempotency_key.as_deref(), request.memo.as_deref())?;
        self.run_hold(LedgerRequest::OpenHold(request)).await
    }

    /// Posts, voids or expires a hold, and returns once that is durable.
    pub async fn submit_hold_step(&self, step: HoldStep) -> ServiceResult<HoldReceipt> {
        if let HoldAction::Post { memo, idempotency_key, .. } = &step.action {
            check_request_text(idempotency_key.as_deref(), memo.as_deref())?;
        }
        self.run_hold(LedgerRequest::Hold(step)).await
    }

    async fn run_hold(&self, request: LedgerRequest) -> ServiceResult<HoldReceipt> {
        match self.run(request).await? {
            LedgerAnswer::Hold(receipt) => Ok(receipt),
            LedgerAnswer::Transfer(_) => unreachable!("a hold is answered with a hold"),
        }
    }

    async fn run(&self, request: LedgerRequest) -> ServiceResult<LedgerAnswer> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Work::Transfer(Pending { request, reply }))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }

    /// Runs the next chunk of a month close on the worker, in a transaction
    /// of its own. A close waits for room in a full queue rather than being
    /// answered busy: it runs in the background, chunk after chunk, and a
    /// refusal between two chunks would only leave its month closing longer.
    pub(crate) async fn submit_close(&self, job: CloseJob) -> Result<CloseStep, CloseError> {
        let (reply, answer) = oneshot::channel();
        let room = self.room.clone().acquire_owned().await.map_err(|_| CloseError::Service(ServiceError::Unavailable("the ledger is shutting down")))?;
        self.queue.send(Queued { work: Work::Close(job, reply), _room: room }).await.map_err(|_| CloseError::Service(ServiceError::Unavailable("the ledger is shutting down")))?;
        answer.await.map_err(|_| CloseError::Service(ServiceError::Unavailable("the ledger stopped before answering")))?
    }

    /// Records a signed request (SendCloud's replay guard); `false` when it
    /// was seen before and its record is still live. Sightings queued
    /// together share one transaction.
    pub(crate) async fn submit_sighting(&self, sighting: Sighting) -> ServiceResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Work::Sighting(sighting, reply))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }

    /// Runs a usage batch on the worker, in a transaction of its own.
    pub(crate) async fn submit_usage(&self, job: UsageJob) -> ServiceResult<Vec<(subledger_domain::usage::Outcome, bool)>> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Work::Usage(job, reply))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }
}

/// The limits of an idempotency key and a memo, for every money request.
fn check_request_text(idempotency_key: Option<&str>, memo: Option<&str>) -> ServiceResult<()> {
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX)
    {
        return Err(ServiceError::Invalid { field: "idempotency key", reason: format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes") });
    }
    if memo.is_some_and(|m| m.chars().count() > MEMO_CHARS_MAX) {
        return Err(ServiceError::Invalid { field: "memo", reason: format!("must be at most {MEMO_CHARS_MAX} characters") });
    }
    Ok(())
}

async fn run_worker(mut receiver: mpsc::Receiver<Queued>, store: Store, config: LedgerConfig, metrics: LedgerMetrics) {
    // SQLite has a single writer: a second batch would only sleep in its busy handler.
    let in_flight = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => config.batches_in_flight,
    };
    // Opened here: on SQLite it is a connection that lives on this thread.
    let writer = match LedgerWriter::open(&store) {
        Ok(writer) => writer,
        Err(error) => {
            tracing::error!(%error, "the ledger cannot open its database connection; refusing transfers");
            while let Some(queued) = receiver.recv().await {
                let refusal = ServiceError::Unavailable("the ledger cannot reach its database");
                let _ = match queued.work {
                    Work::Transfer(pending) => pending.reply.send(Err(refusal)).map_err(|_| ()),
                    Work::Usage(_, reply) => reply.send(Err(refusal)).map_err(|_| ()),
                    Work::Close(_, reply) => reply.send(Err(CloseError::Service(refusal))).map_err(|_| ()),
                    Work::Sighting(_, reply) => reply.send(Err(refusal)).map_err(|_| ()),
                };
            }
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let tasks = tokio::task::LocalSet::new();
    tasks
        .run_until(async {
            // Taken from the channel but not yet drained, in arrival order.
            let mut waiting: VecDeque<Queued> = VecDeque::new();
            loop {
                let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
                let mut arrived = Vec::with_capacity(config.drain_rows_max);
                if waiting.is_empty() {
                    // Returns 0 only once the channel is closed and drained: that is shutdown.
                    if receiver.recv_many(&mut arrived, config.drain_rows_max).await == 0 {
                        break;
                    }
                } else {
                    while arrived.len() < config.drain_rows_max
                        && let Ok(queued) = receiver.try_recv()
                    {
                        arrived.push(queued);
                    }
                }
                waiting.extend(arrived);
                let drain = take_drain(&mut waiting, &config);
                let mut batch = Vec::with_capacity(drain.len());
                let mut jobs = Vec::new();
                let mut closes = Vec::new();
                let mut sightings = Vec::new();
                // Each item's room in the queue is given back once its drain is done.
                let mut rooms = Vec::with_capacity(drain.len());
                for Queued { work, _room } in drain {
                    rooms.push(_room);
                    match work {
                        Work::Transfer(pending) => batch.push(pending),
                        Work::Usage(job, reply) => jobs.push((job, reply)),
                        Work::Close(job, reply) => closes.push((job, reply)),
                        Work::Sighting(sighting, reply) => sightings.push((sighting, reply)),
                    }
                }
                let (writer, config, metrics) = (writer.clone(), config.clone(), metrics.clone());
                tokio::task::spawn_local(async move {
                    // Each piece of work runs as a task of its own: should one
                    // panic, only its own callers lose their answer (they are
                    // told the ledger is unavailable), and its transaction
                    // rolls back as it unwinds.
                    if !batch.is_empty() {
                        let (writer, config, metrics) = (writer.clone(), config.clone(), metrics.clone());
                        contained("transfers", async move { run_batch(batch, &writer, &config, &metrics).await }).await;
                    }
                    if !sightings.is_empty() {
                        let (writer, config, metrics) = (writer.clone(), config.clone(), metrics.clone());
                        contained("sightings", async move { record_sightings(sightings, &writer, &config, &metrics).await }).await;
                    }
                    for group in usage_groups(jobs) {
                        let (writer, config, metrics) = (writer.clone(), config.clone(), metrics.clone());
                        contained("usage", async move { run_usage(group, &writer, &config, &metrics).await }).await;
                    }
                    for (job, reply) in closes {
                        let (writer, config, metrics) = (writer.clone(), config.clone(), metrics.clone());
                        contained("month close", async move { run_close(job, reply, &writer, &config, &metrics).await }).await;
                    }
                    drop(rooms);
                    drop(permit);
                });
            }
            // Wait for the batches still committing.
            let _ = permits.acquire_many(in_flight.max(1) as u32).await;
        })
        .await;
    tracing::debug!("ledger worker stopped: queue closed and drained");
}

/// The next drain: work from the front of the queue, in order, up to
/// [`LedgerConfig::drain_rows_max`] rows (at least one item, however large)
/// and [`LedgerConfig::batch_max`] transfers.
fn take_drain(waiting: &mut VecDeque<Queued>, config: &LedgerConfig) -> Vec<Queued> {
    let (mut rows, mut transfers) = (0, 0);
    let mut drain = Vec::new();
    while let Some(next) = waiting.front() {
        let is_transfer = matches!(next.work, Work::Transfer(_));
        if !drain.is_empty() && (rows + next.work.rows() > config.drain_rows_max || (is_transfer && transfers == config.batch_max)) {
            break;
        }
        rows += next.work.rows();
        transfers += usize::from(is_transfer);
        drain.push(waiting.pop_front().expect("front exists"));
    }
    drain
}

/// Most events in one usage transaction when queued jobs are merged.
pub const USAGE_MERGE_EVENTS_MAX: usize = 8_000;

/// Runs `work` as a task of its own on the worker's thread, so that a panic
/// in it is contained: logged, with its callers' replies dropped.
async fn contained(what: &'static str, work: impl Future<Output = ()> + 'static) {
    if let Err(error) = tokio::task::spawn_local(work).await {
        tracing::error!(%error, what, "ledger work panicked; its callers were told the ledger is unavailable, and nothing of it was written");
    }
}

/// Groups consecutive queued usage jobs of one tenant, up to
/// [`USAGE_MERGE_EVENTS_MAX`] events a group: each group runs as one transaction.
fn usage_groups(jobs: Vec<(UsageJob, UsageReply)>) -> Vec<Vec<(UsageJob, UsageReply)>> {
    let mut groups: Vec<Vec<(UsageJob, UsageReply)>> = Vec::new();
    for (job, reply) in jobs {
        match groups.last_mut() {
            Some(group) if group[0].0.tenant == job.tenant && group.iter().map(|(j, _)| j.events.len()).sum::<usize>() + job.events.len() <= USAGE_MERGE_EVENTS_MAX => group.push((job, reply)),
            _ => groups.push(vec![(job, reply)]),
        }
    }
    groups
}

/// Runs one group of queued usage jobs (see [`usage_groups`]) as one
/// transaction (`run_usage_jobs`); if it fails, the group is split so that
/// one job's failure is not another's.
async fn run_usage(group: Vec<(UsageJob, UsageReply)>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    let (jobs, replies): (Vec<UsageJob>, Vec<UsageReply>) = group.into_iter().unzip();
    let answers = commit_isolating(&jobs, config, metrics, |part, _| async move {
        let started = Instant::now();
        let outcomes = run_usage_jobs(writer, part).await;
        if outcomes.is_ok() {
            metrics.usage_batch_seconds.observe(started.elapsed().as_secs_f64());
        }
        outcomes
    })
    .await;
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer.map_err(ServiceError::from));
    }
}

/// Runs the next chunk of a month close, in a transaction of its own, again
/// after a conflict (another process closing the same month makes this one
/// find where that one left off).
async fn run_close(job: CloseJob, reply: oneshot::Sender<Result<CloseStep, CloseError>>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    let jobs = [job];
    let accounts_max = config.close_chunk_accounts;
    let answer = commit_isolating(&jobs, config, metrics, |part, _| async move { run_close_job(writer, &part[0], accounts_max).await.map(|step| vec![step]) }).await;
    let _ = reply.send(answer.into_iter().next().expect("one answer per job"));
}

/// How the worker tells the failures of its work apart.
trait WorkFailure: std::fmt::Display + Sized {
    /// A conflict that running the same work again may resolve: a
    /// serialization failure or deadlock, a busy SQLite file, or a unique
    /// violation (another process committed one of the batch's idempotency
    /// keys after it looked: running it again finds the key and replays it).
    fn is_conflict(&self) -> bool;
    /// A failure that is no item's fault (contention that outlasted the
    /// retries, an unreachable database): splitting the work would isolate
    /// nothing and only multiply the load.
    fn is_systemic(&self) -> bool;
    /// The work was refused for what it asked (an amount past its limits), not
    /// failed by the server: logged as a warning.
    fn is_refusal(&self) -> bool {
        false
    }
    /// The failure as told to every item of a part that failed as a whole.
    fn shared(&self) -> Self;
}

impl WorkFailure for StorageError {
    fn is_conflict(&self) -> bool {
        self.is_retryable() || matches!(self, StorageError::UniqueViolation { .. })
    }

    fn is_systemic(&self) -> bool {
        self.is_retryable()
    }

    fn shared(&self) -> Self {
        if self.is_retryable() { StorageError::Transient(self.to_string()) } else { StorageError::Failed(self.to_string()) }
    }
}

impl WorkFailure for CloseError {
    fn is_conflict(&self) -> bool {
        matches!(self, CloseError::Service(ServiceError::Storage(error)) if error.is_conflict())
    }

    fn is_systemic(&self) -> bool {
        matches!(self, CloseError::Service(ServiceError::Storage(error)) if error.is_systemic())
    }

    /// Amounts past their limits: the tenant's to fix (a tariff), not the server's.
    fn is_refusal(&self) -> bool {
        !matches!(self, CloseError::Service(ServiceError::Storage(_)))
    }

    fn shared(&self) -> Self {
        match self {
            CloseError::Service(ServiceError::Storage(error)) => CloseError::Service(ServiceError::Storage(error.shared())),
            other => CloseError::Service(ServiceError::Storage(StorageError::Failed(other.to_string()))),
        }
    }
}

/// Commits `items` with `commit` and returns one answer per item, in order.
/// A commit that conflicts runs again (`commit` is told the attempt, so the
/// ledger can lock on the second). A commit that fails for a reason other
/// than contention is split in halves, and each half is committed on its
/// own, recursively: the item at fault (a value the database refuses, say)
/// fails alone, and every other item commits as if it had come on its own.
/// The halves run in order, so the outcomes are those of the items one after
/// the other. Contention that outlasts the retries, or an unreachable
/// database, is no item's fault: every item of that part gets the error, and
/// splitting would only multiply the load.
async fn commit_isolating<'a, T, A, E, F, Fut>(items: &'a [T], config: &LedgerConfig, metrics: &LedgerMetrics, commit: F) -> Vec<Result<A, E>>
where
    E: WorkFailure,
    F: Fn(&'a [T], u32) -> Fut,
    Fut: Future<Output = Result<Vec<A>, E>>,
{
    let mut answers: Vec<Option<Result<A, E>>> = (0..items.len()).map(|_| None).collect();
    let mut ranges = std::collections::VecDeque::new();
    ranges.push_back(0..items.len());
    while let Some(range) = ranges.pop_front() {
        let mut attempt = 0;
        let outcome = loop {
            match commit(&items[range.clone()], attempt).await {
                Err(error) if attempt < config.retries_max && error.is_conflict() => {
                    attempt += 1;
                    metrics.batches_retried.inc();
                    tracing::debug!(%error, attempt, "ledger work conflicted; running it again");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(committed) => {
                debug_assert_eq!(committed.len(), range.len(), "one answer per item");
                for (slot, answer) in answers[range].iter_mut().zip(committed) {
                    *slot = Some(Ok(answer));
                }
            }
            Err(error) if range.len() > 1 && !error.is_systemic() => {
                metrics.batches_split.inc();
                tracing::warn!(%error, items = range.len(), "ledger work failed; committing its halves apart to isolate the item at fault");
                let middle = range.start + range.len() / 2;
                ranges.push_front(middle..range.end);
                ranges.push_front(range.start..middle);
            }
            Err(error) => {
                if error.is_refusal() {
                    tracing::warn!(%error, items = range.len(), "ledger work refused; nothing of it was written");
                } else {
                    metrics.batches_failed.inc();
                    tracing::error!(%error, items = range.len(), "ledger work failed; nothing of it was written");
                }
                for slot in &mut answers[range.start + 1..range.end] {
                    *slot = Some(Err(error.shared()));
                }
                // The first (often the only) item keeps the error as
                // classified: a value the database refused is the caller's to fix.
                answers[range.start] = Some(Err(error));
            }
        }
    }
    answers.into_iter().map(|answer| answer.expect("every range is answered")).collect()
}

/// Commits one batch of transfers and answers every caller.
async fn run_batch(batch: Vec<Pending>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    metrics.batch_transfers.observe(batch.len() as f64);
    let requests: Vec<&LedgerRequest> = batch.iter().map(|p| &p.request).collect();
    let started = Instant::now();
    let answers = commit_isolating(&requests, config, metrics, |part, attempt| {
        // First optimistically; a batch that lost a race runs again with row locks.
        let locking = if attempt == 0 { Locking::Optimistic } else { Locking::Pessimistic };
        commit_batch(writer, part, locking, metrics)
    })
    .await;
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (pending, answer) in batch.into_iter().zip(answers) {
        let answer = answer.map_err(ServiceError::from).and_then(|answer| answer);
        if let Ok(LedgerAnswer::Hold(receipt)) = &answer
            && !receipt.replayed
        {
            match receipt.hold.hold.state {
                HoldState::Pending => metrics.holds_opened.inc(),
                HoldState::Posted { .. } => metrics.holds_posted.inc(),
                HoldState::Voided => metrics.holds_voided.inc(),
                // Counted as committed (`commit_batch`): a post that finds its hold past
                // its timeout expires it too, and is answered with an error.
                HoldState::Expired => 0,
                HoldState::Rejected(_) => metrics.transfers_rejected.inc(),
            };
        }
        if let Ok(LedgerAnswer::Transfer(receipt) | LedgerAnswer::Hold(HoldReceipt { posted: Some(receipt), .. })) = &answer {
            match (&receipt.outcome, receipt.replayed) {
                (_, true) => metrics.transfers_replayed.inc(),
                (Ok(_), false) => metrics.transfers_posted.inc(),
                (Err(_), false) => metrics.transfers_rejected.inc(),
            };
        }
        // A caller that went away (client disconnected) gets nothing; its transfer stands.
        let _ = pending.reply.send(answer);
    }
}

/// Records the queued sightings of signed requests, in one transaction.
async fn record_sightings(queued: Vec<(Sighting, oneshot::Sender<ServiceResult<bool>>)>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    let (sightings, replies): (Vec<Sighting>, Vec<_>) = queued.into_iter().unzip();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let answers = commit_isolating(&sightings, config, metrics, |part, _| store_ledger::record_sightings(writer, part, now_ms)).await;
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer.map_err(ServiceError::from));
    }
}

/// One database transaction for the whole batch. Returns one answer per
/// request, in order; an `Err` here means nothing was written.
async fn commit_batch(writer: &LedgerWriter, requests: &[&LedgerRequest], locking: Locking, metrics: &LedgerMetrics) -> Result<Vec<ServiceResult<LedgerAnswer>>, StorageError> {
    let mut wallet_ids: Vec<WalletId> = Vec::with_capacity(requests.len() * 2);
    let (mut transfer_keys, mut hold_keys, mut hold_ids) = (Vec::new(), Vec::new(), Vec::new());
    for request in requests {
        match request {
            LedgerRequest::Transfer(r) => {
                wallet_ids.extend([r.intent.debit, r.intent.credit]);
                transfer_keys.extend(r.idempotency_key.as_deref().map(|k| (r.tenant, k)));
            }
            LedgerRequest::OpenHold(r) => {
                wallet_ids.extend([r.intent.debit, r.intent.credit]);
                hold_keys.extend(r.idempotency_key.as_deref().map(|k| (r.tenant, k)));
            }
            LedgerRequest::Hold(step) => {
                wallet_ids.extend([step.debit, step.credit]);
                hold_ids.push((step.tenant, step.hold));
                if let HoldAction::Post { idempotency_key: Some(key), .. } = &step.action {
                    transfer_keys.push((step.tenant, key.as_str()));
                }
            }
        }
    }
    let keys = BatchKeys { wallets: &wallet_ids, transfer_keys: &transfer_keys, hold_keys: &hold_keys, hold_ids: &hold_ids, ids_needed: requests.len() };
    let (mut tx, reads) = store_ledger::begin_batch(writer, &keys, locking).await?;
    let owners: HashMap<WalletId, TenantId> = reads.wallets.iter().map(|(tenant, w)| (w.id, *tenant)).collect();

    // Earlier outcomes of the idempotency keys in this batch.
    let earlier: HashMap<(TenantId, String), StoredTransfer> = reads.earlier.into_iter().map(|t| ((t.tenant_id, t.idempotency_key.clone().expect("looked up by key")), t)).collect();
    let earlier_holds: HashMap<(TenantId, String), StoredHold> = reads.earlier_holds.into_iter().map(|h| ((h.hold.tenant, h.idempotency_key.clone().expect("looked up by key")), h)).collect();
    let posted_earlier: Vec<(WalletId, i64)> = earlier.values().filter_map(|t| t.entry_seqs.map(|(debit_seq, credit_seq)| [(t.debit, debit_seq), (t.credit, credit_seq)])).flatten().collect();
    let mut balances_after: HashMap<(TransferId, WalletId), i64> = HashMap::new();
    if !posted_earlier.is_empty() {
        for (transfer, wallet, balance) in store_ledger::balances_after(&mut tx, &posted_earlier).await? {
            balances_after.insert((transfer, wallet), balance);
        }
    }
    let mut batch = BatchJournal {
        journal: Journal::new(reads.wallets.into_iter().map(|(_, w)| w), reads.transfer_ids, crate::now_us()),
        owners,
        earlier,
        earlier_holds,
        balances_after,
        holds: reads.holds.into_iter().map(|h| ((h.hold.tenant, h.hold.id), h)).collect(),
        fresh: HashMap::new(),
        fresh_holds: HashMap::new(),
    };
    let mut answers: Vec<ServiceResult<LedgerAnswer>> = Vec::with_capacity(requests.len());
    let mut records = ChangeRecords::default();
    for request in requests {
        let answer = match request {
            LedgerRequest::Transfer(r) => batch.transfer(r)?.map(LedgerAnswer::Transfer),
            LedgerRequest::OpenHold(r) => batch.open_hold(r)?.map(LedgerAnswer::Hold),
            LedgerRequest::Hold(step) => batch.hold_step(step)?.map(LedgerAnswer::Hold),
        };
        // A request's records commit with what it wrote; a replay or a
        // refusal that wrote nothing leaves none.
        // A refusal stored under a key is recorded as refused.
        match &answer {
            Ok(answer) if !answer.replayed() => records.extend(match answer.refusal() {
                Some(reason) => request.records().clone().refused(reason),
                None => request.records().clone(),
            }),
            _ => {}
        }
        answers.push(answer);
    }
    let writes = LedgerWrites::with_records(batch.journal.finish(), records);
    let expired = writes.holds_resolved.iter().filter(|(_, state, _)| *state == HoldState::Expired).count();
    store_ledger::finish_batch(tx, &writes).await?;
    metrics.holds_expired.inc_by(expired as u64);
    Ok(answers)
}

/// A batch's journal with what it read: each request is decided against the
/// wallets and holds as the requests before it left them.
struct BatchJournal {
    journal: Journal,
    owners: HashMap<WalletId, TenantId>,
    earlier: HashMap<(TenantId, String), StoredTransfer>,
    earlier_holds: HashMap<(TenantId, String), StoredHold>,
    balances_after: HashMap<(TransferId, WalletId), i64>,
    /// The holds named by the batch, as its steps so far left them.
    holds: HashMap<(TenantId, TransferId), StoredHold>,
    /// Receipts of transfer keys first used in this very batch, for duplicates within it.
    fresh: HashMap<(TenantId, String), (String, TransferReceipt)>,
    /// Holds opened in this batch under a key, for duplicates within it.
    fresh_holds: HashMap<(TenantId, String), TransferId>,
}

/// A request's answer, or a failure of the whole batch (storage's).
type Decided<T> = Result<ServiceResult<T>, StorageError>;

impl BatchJournal {
    /// Both wallets are the tenant's. The service resolves wallets within the
    /// caller's tenant; this guards tenant isolation should that ever go wrong.
    fn owns(&self, tenant: TenantId, intent: &TransferIntent) -> bool {
        self.owners.get(&intent.debit) == Some(&tenant) && self.owners.get(&intent.credit) == Some(&tenant)
    }

    fn transfer(&mut self, request: &TransferRequest) -> Decided<TransferReceipt> {
        if !self.owns(request.tenant, &request.intent) {
            return Ok(Err(ServiceError::NotFound(Resource::Wallet)));
        }
        let fingerprint = fingerprint(request.kind, &request.intent);
        if let Some(replay) = self.replayed_transfer(request.tenant, request.idempotency_key.as_deref(), &fingerprint)? {
            return Ok(replay);
        }
        let posting = Posting { tenant: request.tenant, kind: request.kind, intent: request.intent, memo: request.memo.clone(), idempotency_key: request.idempotency_key.clone() };
        let (transfer_id, outcome) = self.journal.post(posting).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let receipt = self.receipt(transfer_id, request.kind, &request.intent, outcome.map(|posted| balances_of(&posted)));
        self.remember(request.tenant, request.idempotency_key.as_deref(), fingerprint, &receipt);
        Ok(Ok(receipt))
    }

    /// The first outcome of a transfer key used before (stored, or earlier in
    /// this batch), or its refusal when the request differs; `None` for a new key.
    fn replayed_transfer(&self, tenant: TenantId, key: Option<&str>, fingerprint: &str) -> Result<Option<ServiceResult<TransferReceipt>>, StorageError> {
        let Some(key) = key else { return Ok(None) };
        let slot = (tenant, key.to_owned());
        if let Some(stored) = self.earlier.get(&slot) {
            return Ok(Some(if stored.fingerprint == fingerprint { Ok(replay_of(stored, &self.balances_after)?) } else { Err(ServiceError::IdempotencyKeyReused) }));
        }
        if let Some((first_fingerprint, receipt)) = self.fresh.get(&slot) {
            return Ok(Some(if first_fingerprint == fingerprint { Ok(TransferReceipt { replayed: true, ..receipt.clone() }) } else { Err(ServiceError::IdempotencyKeyReused) }));
        }
        Ok(None)
    }

    fn remember(&mut self, tenant: TenantId, key: Option<&str>, fingerprint: String, receipt: &TransferReceipt) {
        if let Some(key) = key {
            self.fresh.insert((tenant, key.to_owned()), (fingerprint, receipt.clone()));
        }
    }

    fn receipt(&self, transfer_id: TransferId, kind: TransferKind, intent: &TransferIntent, outcome: Result<PostedBalances, TransferRejection>) -> TransferReceipt {
        TransferReceipt { transfer_id, kind, debit: intent.debit, credit: intent.credit, amount_minor: intent.amount.minor(), created_at_us: self.journal.now_us(), replayed: false, outcome }
    }

    fn open_hold(&mut self, request: &HoldRequest) -> Decided<HoldReceipt> {
        if !self.owns(request.tenant, &request.intent) {
            return Ok(Err(ServiceError::NotFound(Resource::Wallet)));
        }
        let fingerprint = fingerprint(request.kind, &request.intent);
        if let Some(key) = &request.idempotency_key {
            let slot = (request.tenant, key.clone());
            let earlier = match self.fresh_holds.get(&slot) {
                Some(id) => self.holds.get(&(request.tenant, *id)),
                None => self.earlier_holds.get(&slot),
            };
            if let Some(earlier) = earlier {
                // The hold as this batch has it (a step earlier in the batch may have moved it).
                let current = self.holds.get(&(request.tenant, earlier.hold.id)).unwrap_or(earlier);
                return Ok(if earlier.fingerprint == fingerprint { Ok(HoldReceipt { hold: current.clone(), replayed: true, posted: None }) } else { Err(ServiceError::IdempotencyKeyReused) });
            }
        }
        let posting = Posting { tenant: request.tenant, kind: request.kind, intent: request.intent, memo: request.memo.clone(), idempotency_key: request.idempotency_key.clone() };
        let (id, outcome) = self.journal.reserve(posting, request.timeout_at_us).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let hold = StoredHold {
            hold: subledger_domain::posting::Hold {
                id,
                tenant: request.tenant,
                kind: request.kind,
                intent: request.intent,
                timeout_at_us: request.timeout_at_us,
                state: outcome.map_or_else(HoldState::Rejected, |()| HoldState::Pending),
            },
            fingerprint,
            memo: request.memo.clone(),
            idempotency_key: request.idempotency_key.clone(),
            created_at_us: self.journal.now_us(),
            resolved_at_us: None,
        };
        if let Some(key) = &request.idempotency_key {
            self.fresh_holds.insert((request.tenant, key.clone()), id);
        }
        // Steps later in this batch cannot name it: its id is not known outside yet.
        self.holds.insert((request.tenant, id), hold.clone());
        Ok(Ok(HoldReceipt { hold, replayed: false, posted: None }))
    }

    fn hold_step(&mut self, step: &HoldStep) -> Decided<HoldReceipt> {
        let Some(stored) = self.holds.get(&(step.tenant, step.hold)).cloned() else {
            return Ok(Err(ServiceError::NotFound(Resource::Hold)));
        };
        if !self.owns(step.tenant, &stored.hold.intent) {
            return Ok(Err(ServiceError::NotFound(Resource::Hold)));
        }
        if stored.hold.state == HoldState::Pending {
            // Read in another statement than its wallet (optimistic batches):
            // a hold opened or resolved in between makes them disagree, and
            // the batch runs again under locks.
            let reserved = self.journal.book().wallet(stored.hold.intent.debit).map_or(0, |w| w.reserved_minor);
            if reserved < stored.hold.intent.amount.minor() {
                return Err(StorageError::Transient(format!("hold {} was read before its wallet's reservation", stored.hold.id)));
            }
        }
        let now_us = self.journal.now_us();
        let overdue = stored.hold.state == HoldState::Pending && stored.hold.timeout_at_us <= now_us;
        match &step.action {
            HoldAction::Post { amount, memo, idempotency_key } => {
                let amount = amount.unwrap_or(stored.hold.intent.amount);
                let intent = TransferIntent { amount, ..stored.hold.intent };
                let fingerprint = hold_post_fingerprint(stored.hold.id, stored.hold.kind, &intent);
                if let Some(replay) = self.replayed_transfer(step.tenant, idempotency_key.as_deref(), &fingerprint)? {
                    return Ok(replay.map(|receipt| HoldReceipt { hold: stored, replayed: true, posted: Some(receipt) }));
                }
                if overdue {
                    // Past its timeout a hold is void, whether or not the sweep came by.
                    let expired = self.resolve(&stored, |journal, hold| journal.void_hold(hold, true))?;
                    return Ok(Err(ServiceError::HoldNotPending(expired.hold.state.as_str())));
                }
                let (transfer_id, outcome) = self.journal.post_hold(&stored.hold, Some(amount), memo.clone(), idempotency_key.clone()).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                match outcome {
                    Ok(posted) => {
                        let receipt = self.receipt(transfer_id, stored.hold.kind, &intent, Ok(balances_of(&posted)));
                        self.remember(step.tenant, idempotency_key.as_deref(), fingerprint, &receipt);
                        let hold = self.after(&stored, HoldState::Posted { transfer: transfer_id, amount_minor: amount.minor() });
                        Ok(Ok(HoldReceipt { hold, replayed: false, posted: Some(receipt) }))
                    }
                    Err(HoldRefusal::NotPending) => Ok(Err(ServiceError::HoldNotPending(stored.hold.state.as_str()))),
                    Err(HoldRefusal::MoreThanReserved) => {
                        Ok(Err(ServiceError::Invalid { field: "amount", reason: format!("a hold posts at most the {} it reserved", stored.hold.intent.amount.minor()) }))
                    }
                    Err(HoldRefusal::Rejected(reason)) => {
                        let receipt = self.receipt(transfer_id, stored.hold.kind, &intent, Err(reason));
                        self.remember(step.tenant, idempotency_key.as_deref(), fingerprint, &receipt);
                        Ok(Err(ServiceError::Rejected(reason)))
                    }
                }
            }
            HoldAction::Void | HoldAction::Expire => match stored.hold.state {
                HoldState::Pending if matches!(step.action, HoldAction::Void) || overdue => {
                    let resolved = self.resolve(&stored, |journal, hold| journal.void_hold(hold, overdue))?;
                    Ok(Ok(HoldReceipt { hold: resolved, replayed: false, posted: None }))
                }
                // Not yet due: the sweep read it early (clocks of two processes).
                HoldState::Pending => Ok(Ok(HoldReceipt { hold: stored, replayed: true, posted: None })),
                HoldState::Voided | HoldState::Expired => Ok(Ok(HoldReceipt { hold: stored, replayed: true, posted: None })),
                HoldState::Posted { .. } | HoldState::Rejected(_) if matches!(step.action, HoldAction::Expire) => Ok(Ok(HoldReceipt { hold: stored, replayed: true, posted: None })),
                HoldState::Posted { .. } | HoldState::Rejected(_) => Ok(Err(ServiceError::HoldNotPending(stored.hold.state.as_str()))),
            },
        }
    }

    /// Voids or expires a pending hold through `change`, and returns it as it now stands.
    fn resolve(&mut self, stored: &StoredHold, change: impl FnOnce(&mut Journal, &subledger_domain::posting::Hold) -> Result<(), HoldRefusal>) -> Result<StoredHold, StorageError> {
        change(&mut self.journal, &stored.hold).map_err(|refusal| StorageError::Corrupt(format!("hold {} read as pending: {refusal}", stored.hold.id)))?;
        let overdue = stored.hold.timeout_at_us <= self.journal.now_us();
        Ok(self.after(stored, if overdue { HoldState::Expired } else { HoldState::Voided }))
    }

    /// The hold in its new state, remembered for the rest of the batch.
    fn after(&mut self, stored: &StoredHold, state: HoldState) -> StoredHold {
        let mut hold = stored.clone();
        hold.hold.state = state;
        hold.resolved_at_us = Some(self.journal.now_us());
        self.holds.insert((hold.hold.tenant, hold.hold.id), hold.clone());
        hold
    }
}

fn balances_of(posted: &PostedEntries) -> PostedBalances {
    PostedBalances { debit_balance_after_minor: posted.debit.balance_after_minor, credit_balance_after_minor: posted.credit.balance_after_minor }
}

/// The receipt of a stored transfer, answered again to a replay of its key.
/// A posted transfer's balances come from its entries (`balances_after`
/// found them all, or failed as corrupt).
fn replay_of(stored: &StoredTransfer, balances_after: &HashMap<(TransferId, WalletId), i64>) -> Result<TransferReceipt, StorageError> {
    let balance_after = |wallet: WalletId| balances_after.get(&(stored.id, wallet)).copied().ok_or_else(|| StorageError::Corrupt(format!("transfer {} has no entry on wallet {wallet}", stored.id)));
    let outcome = match stored.outcome {
        Ok(()) => Ok(PostedBalances { debit_balance_after_minor: balance_after(stored.debit)?, credit_balance_after_minor: balance_after(stored.credit)? }),
        Err(reason) => Err(reason),
    };
    Ok(TransferReceipt {
        transfer_id: stored.id,
        kind: stored.kind,
        debit: stored.debit,
        credit: stored.credit,
        amount_minor: stored.amount_minor,
        created_at_us: stored.created_at_us,
        replayed: true,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use subledger_domain::rating::Quantity;
    use subledger_domain::usage::EventInput;

    use super::*;

    fn queued(work: Work, room: &Arc<Semaphore>) -> Queued {
        Queued { work, _room: room.clone().try_acquire_owned().expect("room") }
    }

    fn sighting() -> Work {
        Work::Sighting(Sighting { tenant: TenantId(1), signature: "s".into(), expires_at_ms: 0 }, oneshot::channel().0)
    }

    fn usage(events: usize) -> Work {
        let event = EventInput {
            event_id: "e".into(),
            at_us: 0,
            category: subledger_domain::catalog::BillCategory::Sms,
            account: Err(subledger_domain::usage::UsageRejection::UnknownAccount),
            product: "sms".into(),
            currency: subledger_domain::money::Currency::Cny,
            quantity: Quantity::ZERO,
            day: String::new(),
            month: String::new(),
            attr: String::new(),
            country: None,
            model: None,
        };
        Work::Usage(
            UsageJob { tenant: TenantId(1), revenue: [(subledger_domain::money::Currency::Cny, WalletId(1))].into(), events: vec![event; events], raw: Vec::new(), records: ChangeRecords::default() },
            oneshot::channel().0,
        )
    }

    fn kinds(drain: &[Queued]) -> Vec<usize> {
        drain.iter().map(|q| q.work.rows()).collect()
    }

    #[test]
    fn a_drain_is_budgeted_in_rows_and_transfers() {
        let room = Arc::new(Semaphore::new(100));
        let config = LedgerConfig { drain_rows_max: 1_000, batch_max: 2, ..LedgerConfig::default() };
        let mut waiting: VecDeque<Queued> = [usage(600), sighting(), usage(600), sighting()].into_iter().map(|w| queued(w, &room)).collect();
        // 600 + 1 fit; the next 600 would pass the budget and waits.
        assert_eq!(kinds(&take_drain(&mut waiting, &config)), [600, 1]);
        assert_eq!(kinds(&take_drain(&mut waiting, &config)), [600, 1]);
        assert!(waiting.is_empty());
        // One item larger than the whole budget still runs, alone.
        let mut waiting: VecDeque<Queued> = [usage(5_000), sighting()].into_iter().map(|w| queued(w, &room)).collect();
        assert_eq!(kinds(&take_drain(&mut waiting, &config)), [5_000]);
        assert_eq!(kinds(&take_drain(&mut waiting, &config)), [1]);
    }
}
