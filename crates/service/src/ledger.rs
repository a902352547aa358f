//! The ledger's hot path: concurrent transfers are grouped into batches.
//!
//! A transfer is a tiny write, and committing each alone is bounded by the
//! disk's fsync rate and by the row lock on a hot wallet (every `transferIn`
//! of a tenant debits the same parent wallet). So requests queue to one
//! worker per process, which takes everything waiting (up to
//! [`LedgerConfig::batch_max`]) and, in one database transaction:
//!
//! 1. locks every wallet the batch names, in id order;
//! 2. looks up the idempotency keys of the batch (after locking, so a key
//!    committed by another process meanwhile is seen);
//! 3. applies each transfer in memory with the domain's [`Book`];
//! 4. writes all transfers, entries and balances with a few multi-row statements;
//! 5. commits, and only then answers each caller.
//!
//! Several processes may share one PostgreSQL database: the row locks order
//! their batches, and a batch that loses a race on an idempotency key (a unique
//! violation) or a deadlock is run again from the start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::sync::Arc;
use subledger_domain::ids::{TenantId, TransferId, WalletId};
use subledger_domain::ledger::{Book, TransferIntent, TransferKind, TransferRejection};
use subledger_storage::ledger::{self as store_ledger, LedgerWriter, Locking, NewEntry, StoredTransfer};

use subledger_storage::signed_requests::Sighting;
use subledger_storage::{Backend, StorageError, Store};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::billing::{CloseError, CloseJob, CloseReport, run_close_job};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::metrics::LedgerMetrics;
use crate::usage::{UsageJob, UsageReply, run_usage_job};

/// Limits of the batcher.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Most transfers written in one database transaction.
    pub batch_max: usize,
    /// Most transfers waiting for a batch; callers beyond it wait to enqueue.
    pub queue_max: usize,
    /// Times a batch is run again after a transient conflict.
    pub retries_max: u32,
    /// Batches committing at once on PostgreSQL (SQLite has one writer, so
    /// one batch). Batches of different tenants overlap; batches on one hot
    /// wallet queue on its row lock.
    /// 1 by default on both: measured under the benchmark, more batches in
    /// flight made smaller batches queue on the hot wallet and lowered throughput.
    pub batches_in_flight: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { batch_max: 512, queue_max: 16_384, retries_max: 8, batches_in_flight: 1 }
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
}

impl TransferRequest {
    /// What must match for a reused idempotency key to count as a replay.
    fn fingerprint(&self) -> String {
        let i = &self.intent;
        format!("{}:{}>{}:{}:{}", self.kind.as_str(), i.debit, i.credit, i.amount.minor(), i.currency)
    }
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

struct Pending {
    request: TransferRequest,
    reply: oneshot::Sender<ServiceResult<TransferReceipt>>,
}

/// What the worker does: transfers (batched together) and jobs that are
/// batches of their own (usage ingestion).
enum Work {
    Transfer(Pending),
    Usage(UsageJob, UsageReply),
    Close(CloseJob, oneshot::Sender<Result<CloseReport, CloseError>>),
    Sighting(Sighting, oneshot::Sender<ServiceResult<bool>>),
}

/// Handle to the batching worker. Cloning it is cheap; the worker stops once
/// every handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Ledger {
    queue: mpsc::Sender<Work>,
}

impl Ledger {
    /// Starts the worker on a thread of its own, with a runtime of its own:
    /// the batch path is serial, and on the shared runtime it would wait in
    /// line behind request tasks at every step. The returned handle resolves
    /// when the worker has drained its queue and stopped.
    pub fn start(store: Store, config: LedgerConfig, metrics: LedgerMetrics) -> (Ledger, JoinHandle<()>) {
        assert!(config.batch_max > 0 && config.queue_max > 0);
        let (queue, receiver) = mpsc::channel(config.queue_max);
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
        (Ledger { queue }, worker)
    }

    /// Posts a transfer (or refuses it) and returns once the outcome is durable.
    pub async fn submit(&self, request: TransferRequest) -> ServiceResult<TransferReceipt> {
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX)
        {
            return Err(ServiceError::Invalid { field: "idempotency key", reason: format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} bytes") });
        }
        if request.memo.as_ref().is_some_and(|m| m.chars().count() > MEMO_CHARS_MAX) {
            return Err(ServiceError::Invalid { field: "memo", reason: format!("must be at most {MEMO_CHARS_MAX} characters") });
        }
        let (reply, answer) = oneshot::channel();
        self.queue.send(Work::Transfer(Pending { request, reply })).await.map_err(|_| ServiceError::Unavailable("the ledger is shutting down"))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }

    /// Closes a month on the worker, in a transaction of its own.
    pub(crate) async fn submit_close(&self, job: CloseJob) -> Result<CloseReport, CloseError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Work::Close(job, reply)).await.map_err(|_| CloseError::Service(ServiceError::Unavailable("the ledger is shutting down")))?;
        answer.await.map_err(|_| CloseError::Service(ServiceError::Unavailable("the ledger stopped before answering")))?
    }

    /// Records a signed request (SendCloud's replay guard); `false` when it
    /// was seen before and its record is still live. Sightings queued
    /// together share one transaction.
    pub(crate) async fn submit_sighting(&self, sighting: Sighting) -> ServiceResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Work::Sighting(sighting, reply)).await.map_err(|_| ServiceError::Unavailable("the ledger is shutting down"))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }

    /// Runs a usage batch on the worker, in a transaction of its own.
    pub(crate) async fn submit_usage(&self, job: UsageJob) -> ServiceResult<Vec<(subledger_domain::usage::Outcome, bool)>> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Work::Usage(job, reply)).await.map_err(|_| ServiceError::Unavailable("the ledger is shutting down"))?;
        answer.await.map_err(|_| ServiceError::Unavailable("the ledger stopped before answering"))?
    }
}

async fn run_worker(mut receiver: mpsc::Receiver<Work>, store: Store, config: LedgerConfig, metrics: LedgerMetrics) {
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
            while let Some(work) = receiver.recv().await {
                let refusal = ServiceError::Unavailable("the ledger cannot reach its database");
                let _ = match work {
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
            loop {
                let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
                let mut work: Vec<Work> = Vec::with_capacity(config.batch_max);
                // Returns 0 only once the channel is closed and drained: that is shutdown.
                if receiver.recv_many(&mut work, config.batch_max).await == 0 {
                    break;
                }
                let mut batch = Vec::with_capacity(work.len());
                let mut jobs = Vec::new();
                let mut closes = Vec::new();
                let mut sightings = Vec::new();
                for item in work {
                    match item {
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
                        contained("usage", async move { run_jobs(group, &writer, &config, &metrics).await }).await;
                    }
                    for (job, reply) in closes {
                        let (writer, config) = (writer.clone(), config.clone());
                        contained("month close", async move {
                            let _ = reply.send(run_close(&job, &writer, &config).await);
                        })
                        .await;
                    }
                    drop(permit);
                });
            }
            // Wait for the batches still committing.
            let _ = permits.acquire_many(in_flight.max(1) as u32).await;
        })
        .await;
    tracing::debug!("ledger worker stopped: queue closed and drained");
}

/// Runs a close, again after transient conflicts (another process closing
/// the same month makes this one find it closed).
async fn run_close(job: &CloseJob, writer: &LedgerWriter, config: &LedgerConfig) -> Result<CloseReport, CloseError> {
    let mut attempt = 0;
    loop {
        match run_close_job(writer, job).await {
            Ok(report) => return Ok(report),
            Err(CloseError::Service(ServiceError::Storage(error))) if attempt < config.retries_max && is_retryable(&error) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
            }
            Err(CloseError::Service(error @ ServiceError::Storage(_))) => {
                tracing::error!(%error, month = %job.month, "month close failed; nothing of it was written");
                return Err(CloseError::Service(error));
            }
            // Amounts past their limits: the tenant's to fix (a tariff), not the server's.
            Err(refusal) => {
                tracing::warn!(?refusal, month = %job.month, "month close refused; nothing of it was written");
                return Err(refusal);
            }
        }
    }
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
/// transaction. A batch costs mostly per distinct account it touches (its
/// wallets, rollups, quota rows and one charge each), so jobs over the same
/// accounts share that cost. The merged events run in arrival order, exactly
/// as the jobs would one after the other (an id repeated in a later job is
/// its duplicate). If the merged transaction fails, each job runs again on
/// its own, so one job's failure is not another's.
async fn run_jobs(group: Vec<(UsageJob, UsageReply)>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    if group.len() == 1 {
        let (job, reply) = group.into_iter().next().expect("one job");
        let _ = reply.send(run_job(&job, writer, config, metrics).await);
        return;
    }
    let sizes: Vec<usize> = group.iter().map(|(job, _)| job.events.len()).collect();
    let (tenant, revenue) = (group[0].0.tenant, group[0].0.revenue);
    let (jobs, replies): (Vec<UsageJob>, Vec<UsageReply>) = group.into_iter().unzip();
    let mut merged = UsageJob { tenant, revenue, events: Vec::with_capacity(sizes.iter().sum()), raw: Vec::with_capacity(sizes.iter().sum()) };
    for job in jobs {
        merged.events.extend(job.events);
        merged.raw.extend(job.raw);
    }
    match run_job(&merged, writer, config, metrics).await {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                let _ = reply.send(Ok(outcomes.by_ref().take(size).collect()));
            }
        }
        Err(_) => {
            // Split the events back into their jobs and run each alone.
            let (mut events, mut raw) = (merged.events.into_iter(), merged.raw.into_iter());
            for (reply, size) in replies.into_iter().zip(sizes) {
                let job = UsageJob { tenant, revenue, events: events.by_ref().take(size).collect(), raw: raw.by_ref().take(size).collect() };
                let _ = reply.send(run_job(&job, writer, config, metrics).await);
            }
        }
    }
}

/// Runs a usage job, again after transient conflicts.
async fn run_job(job: &UsageJob, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) -> ServiceResult<Vec<(subledger_domain::usage::Outcome, bool)>> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match run_usage_job(writer, job).await {
            Ok(outcomes) => {
                metrics.usage_batch_seconds.observe(started.elapsed().as_secs_f64());
                return Ok(outcomes);
            }
            Err(error) if attempt < config.retries_max && is_retryable(&error) => {
                attempt += 1;
                metrics.batches_retried.inc();
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
            }
            Err(error) => {
                tracing::error!(%error, events = job.events.len(), "usage batch failed; nothing of it was written");
                return Err(ServiceError::from(error));
            }
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
async fn commit_isolating<'a, T, A, F, Fut>(items: &'a [T], config: &LedgerConfig, metrics: &LedgerMetrics, commit: F) -> Vec<Result<A, StorageError>>
where
    F: Fn(&'a [T], u32) -> Fut,
    Fut: Future<Output = Result<Vec<A>, StorageError>>,
{
    let mut answers: Vec<Option<Result<A, StorageError>>> = (0..items.len()).map(|_| None).collect();
    let mut ranges = std::collections::VecDeque::new();
    ranges.push_back(0..items.len());
    while let Some(range) = ranges.pop_front() {
        let mut attempt = 0;
        let outcome = loop {
            match commit(&items[range.clone()], attempt).await {
                Err(error) if attempt < config.retries_max && is_retryable(&error) => {
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
            Err(error) if range.len() > 1 && !error.is_retryable() => {
                metrics.batches_split.inc();
                tracing::warn!(%error, items = range.len(), "ledger work failed; committing its halves apart to isolate the item at fault");
                let middle = range.start + range.len() / 2;
                ranges.push_front(middle..range.end);
                ranges.push_front(range.start..middle);
            }
            Err(error) => {
                metrics.batches_failed.inc();
                tracing::error!(%error, items = range.len(), "ledger work failed; nothing of it was written");
                if range.len() == 1 {
                    // The item at fault keeps its error as classified (a
                    // value the database refused is the caller's to fix).
                    answers[range.start] = Some(Err(error));
                    continue;
                }
                let message = error.to_string();
                let transient = error.is_retryable();
                for slot in &mut answers[range] {
                    *slot = Some(Err(if transient { StorageError::Transient(message.clone()) } else { StorageError::Failed(message.clone()) }));
                }
            }
        }
    }
    answers.into_iter().map(|answer| answer.expect("every range is answered")).collect()
}

/// Commits one batch of transfers and answers every caller.
async fn run_batch(batch: Vec<Pending>, writer: &LedgerWriter, config: &LedgerConfig, metrics: &LedgerMetrics) {
    metrics.batch_transfers.observe(batch.len() as f64);
    let requests: Vec<&TransferRequest> = batch.iter().map(|p| &p.request).collect();
    let started = Instant::now();
    let answers = commit_isolating(&requests, config, metrics, |part, attempt| {
        // First optimistically; a batch that lost a race runs again with row locks.
        let locking = if attempt == 0 { Locking::Optimistic } else { Locking::Pessimistic };
        commit_batch(writer, part, locking)
    })
    .await;
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (pending, answer) in batch.into_iter().zip(answers) {
        let answer = answer.map_err(ServiceError::from).and_then(|answer| answer);
        if let Ok(receipt) = &answer {
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

/// A unique violation means another process committed one of our idempotency
/// keys after we looked: running the batch again finds it and replays it.
fn is_retryable(error: &StorageError) -> bool {
    error.is_retryable() || matches!(error, StorageError::UniqueViolation { .. })
}

/// One database transaction for the whole batch. Returns one answer per
/// request, in order; an `Err` here means nothing was written.
async fn commit_batch(writer: &LedgerWriter, requests: &[&TransferRequest], locking: Locking) -> Result<Vec<ServiceResult<TransferReceipt>>, StorageError> {
    let wallet_ids: Vec<WalletId> = requests.iter().flat_map(|r| [r.intent.debit, r.intent.credit]).collect();
    let keys: Vec<(TenantId, &str)> = requests.iter().filter_map(|r| r.idempotency_key.as_deref().map(|k| (r.tenant, k))).collect();
    let (mut tx, reads) = store_ledger::begin_batch(writer, &wallet_ids, &keys, requests.len(), locking).await?;
    let seqs_as_read: HashMap<WalletId, i64> = reads.wallets.iter().map(|(_, w)| (w.id, w.entry_seq)).collect();
    let mut fresh_ids = reads.transfer_ids.into_iter();
    let owners: HashMap<WalletId, TenantId> = reads.wallets.iter().map(|(tenant, w)| (w.id, *tenant)).collect();
    let mut book = Book::new(reads.wallets.into_iter().map(|(_, w)| w));

    // Earlier outcomes of the idempotency keys in this batch.
    let earlier: HashMap<(TenantId, String), StoredTransfer> = reads.earlier.into_iter().map(|t| ((t.tenant_id, t.idempotency_key.clone().expect("looked up by key")), t)).collect();
    let posted_earlier: Vec<(WalletId, i64)> = earlier.values().filter_map(|t| t.entry_seqs.map(|(debit_seq, credit_seq)| [(t.debit, debit_seq), (t.credit, credit_seq)])).flatten().collect();
    let mut balances_after: HashMap<(TransferId, WalletId), i64> = HashMap::new();
    if !posted_earlier.is_empty() {
        for (transfer, wallet, balance) in store_ledger::balances_after(&mut tx, &posted_earlier).await? {
            balances_after.insert((transfer, wallet), balance);
        }
    }
    let now_us = subledger_domain::calendar::to_unix_micros(jiff::Timestamp::now());
    let mut new_transfers: Vec<StoredTransfer> = Vec::with_capacity(requests.len());
    let mut new_entries: Vec<NewEntry> = Vec::with_capacity(requests.len() * 2);
    let mut answers: Vec<ServiceResult<TransferReceipt>> = Vec::with_capacity(requests.len());
    // Receipts of keys first used in this very batch, for duplicates within it.
    let mut fresh: HashMap<(TenantId, String), (String, TransferReceipt)> = HashMap::new();

    for request in requests {
        let intent = &request.intent;
        let owned = |wallet: WalletId| owners.get(&wallet) == Some(&request.tenant);
        if !owned(intent.debit) || !owned(intent.credit) {
            // The service resolves wallets within the caller's tenant; this
            // guards tenant isolation should that ever go wrong.
            answers.push(Err(ServiceError::NotFound(Resource::Wallet)));
            continue;
        }
        let fingerprint = request.fingerprint();
        if let Some(key) = &request.idempotency_key {
            let slot = (request.tenant, key.clone());
            if let Some(stored) = earlier.get(&slot) {
                answers.push(if stored.fingerprint == fingerprint { Ok(replay_of(stored, &balances_after)) } else { Err(ServiceError::IdempotencyKeyReused) });
                continue;
            }
            if let Some((first_fingerprint, receipt)) = fresh.get(&slot) {
                answers.push(if *first_fingerprint == fingerprint { Ok(TransferReceipt { replayed: true, ..receipt.clone() }) } else { Err(ServiceError::IdempotencyKeyReused) });
                continue;
            }
        }

        let transfer_id = fresh_ids.next().expect("one fresh id per request");
        let mut entry_seqs = None;
        let outcome = book.apply(intent).map(|posted| {
            entry_seqs = Some((posted.debit.seq, posted.credit.seq));
            for line in [posted.debit, posted.credit] {
                new_entries.push(NewEntry {
                    wallet: line.wallet,
                    seq: line.seq,
                    tenant_id: request.tenant,
                    transfer_id,
                    amount_minor: line.amount_minor,
                    balance_after_minor: line.balance_after_minor,
                    created_at_us: now_us,
                });
            }
            PostedBalances { debit_balance_after_minor: posted.debit.balance_after_minor, credit_balance_after_minor: posted.credit.balance_after_minor }
        });
        let receipt =
            TransferReceipt { transfer_id, kind: request.kind, debit: intent.debit, credit: intent.credit, amount_minor: intent.amount.minor(), created_at_us: now_us, replayed: false, outcome };
        // Rejections are kept only when a key must be able to replay them.
        if receipt.outcome.is_ok() || request.idempotency_key.is_some() {
            new_transfers.push(StoredTransfer {
                id: transfer_id,
                tenant_id: request.tenant,
                idempotency_key: request.idempotency_key.clone(),
                fingerprint: fingerprint.clone(),
                outcome: receipt.outcome.map(|_| ()),
                kind: request.kind,
                debit: intent.debit,
                credit: intent.credit,
                amount_minor: intent.amount.minor(),
                currency: intent.currency,
                memo: request.memo.clone(),
                created_at_us: now_us,
                entry_seqs,
            });
        }
        if let Some(key) = &request.idempotency_key {
            fresh.insert((request.tenant, key.clone()), (fingerprint, receipt.clone()));
        }
        answers.push(Ok(receipt));
    }

    let mut touched: Vec<WalletId> = new_entries.iter().map(|e| e.wallet).collect();
    touched.sort_unstable();
    touched.dedup();
    let states: Vec<_> = touched.iter().map(|id| (book.wallet(*id).expect("entries only name locked wallets"), seqs_as_read[id])).collect();
    debug_assert!(book.wallets().all(|w| w.balance_minor >= w.floor_minor.unwrap_or(i64::MIN)), "a batch left a wallet below its floor");
    store_ledger::finish_batch(tx, &new_transfers, &new_entries, &states).await?;
    Ok(answers)
}

fn replay_of(stored: &StoredTransfer, balances_after: &HashMap<(TransferId, WalletId), i64>) -> TransferReceipt {
    let outcome = stored.outcome.map(|()| PostedBalances {
        debit_balance_after_minor: balances_after.get(&(stored.id, stored.debit)).copied().unwrap_or_default(),
        credit_balance_after_minor: balances_after.get(&(stored.id, stored.credit)).copied().unwrap_or_default(),
    });
    TransferReceipt {
        transfer_id: stored.id,
        kind: stored.kind,
        debit: stored.debit,
        credit: stored.credit,
        amount_minor: stored.amount_minor,
        created_at_us: stored.created_at_us,
        replayed: true,
        outcome,
    }
}
