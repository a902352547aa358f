//! SQL storage of subledger, on SQLite (the embedded default) or PostgreSQL.
//!
//! One set of queries serves both backends through sqlx's `Any` driver: the
//! schema uses only types both share (64-bit integers and text), placeholders
//! are `$n` on both, and the few statements that must differ (row locks,
//! transaction start) branch on [`Backend`] here, in one place. Storage stores:
//! it decides nothing; the service layer calls it inside the transactions it
//! chooses.

pub mod accounts;
pub mod ad_insights;
pub mod ad_sandbox;
pub mod ads;
pub mod bills;
pub mod catalog;
mod error;
pub mod ledger;
pub mod notices;
pub mod oplog;
pub mod recharges;
pub mod records;
pub mod roles;
pub mod rows;
pub mod sessions;
pub mod settings;
pub mod signed_requests;
pub mod statements;
pub mod subscriptions;
pub mod subusers;
pub mod tenants;
pub mod timecards;
pub mod wallets;

/// The integration tests' databases, for the unit tests too.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};

pub use error::{Check, RefusedValue, StorageError, UniqueKey};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The two databases subledger runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How often the SQLite WAL is checkpointed in the background.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// Live WAL beyond which the background checkpoint makes it start over.
/// Under continuous reads the WAL may never start over by itself (see
/// `checkpoint_in_background`). Under writes alone it starts over about once
/// a second, well below this, so the forced restart (which holds writers
/// back) stays out of the way of a busy ledger.
const WAL_RESTART_AFTER_BYTES: i64 = 32 * 1024 * 1024;
/// How long a forced restart waits for the readers still in the WAL to
/// finish, holding the write gate meanwhile; then it gives up until the next
/// round.
const WAL_RESTART_WAIT_MS: i64 = 250;
/// The WAL file's size limit: SQLite cuts it back to this when it starts
/// over (`journal_size_limit`), and a commit that leaves it larger wakes the
/// background checkpoint at once instead of at its next round.
const WAL_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// How long an SQLite connection waits for another process's writer.
const BUSY_TIMEOUT_PRAGMA: &str = "PRAGMA busy_timeout = 10000";
/// [`WAL_FILE_BYTES_MAX`] as SQLite's setting.
const JOURNAL_SIZE_LIMIT_PRAGMA: &str = "PRAGMA journal_size_limit = 67108864";

/// Watches the size of the SQLite WAL after each commit.
#[derive(Debug)]
pub(crate) struct WalWatch {
    wal_path: PathBuf,
    /// Wakes the background checkpoint.
    pressure: tokio::sync::Notify,
}

impl WalWatch {
    /// Called after every commit: one `stat`, and a wake-up when the WAL
    /// file has outgrown its limit.
    pub(crate) fn after_commit(&self) {
        if std::fs::metadata(&self.wal_path).is_ok_and(|m| m.len() > WAL_FILE_BYTES_MAX) {
            self.pressure.notify_one();
        }
    }
}

/// Connection limits. Each has a bound; none grows with load.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (and, on PostgreSQL, writes too).
    pub connections_max: u32,
    /// How long a request may wait for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { connections_max: 16, acquire_timeout: Duration::from_secs(10) }
    }
}

/// Handle to the database: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The database file (SQLite only), for the ledger's own connection.
    sqlite_path: Option<PathBuf>,
    /// The WAL's watch (SQLite only).
    wal_watch: Option<Arc<WalWatch>>,
    /// SQLite allows one writer at a time; in this process writers take
    /// turns here, first come first served, rather than racing in SQLite's
    /// busy handler (where a busy ledger could starve everyone else).
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// Reads go here. On PostgreSQL this is also the write pool.
    read: AnyPool,
    /// On SQLite, a single connection: SQLite allows one writer at a time, and
    /// queueing writers in the pool is cheaper and fairer than letting them
    /// spin on the file lock.
    write: AnyPool,
}

/// A write transaction. Dropping it without [`WriteTx::commit`] rolls it back.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    backend: Backend,
    /// Held until the transaction ends (SQLite); dropped after `tx`.
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
    wal_watch: Option<Arc<WalWatch>>,
}

impl WriteTx {
    /// Writes the records that go with this transaction's change (see
    /// [`records`]), then commits. A refused record rolls everything back.
    pub async fn commit_with(mut self, records: &records::ChangeRecords) -> Result<()> {
        if !records.is_empty() {
            records::write(&mut self.tx, records, now_us()).await?;
        }
        self.commit().await
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        if let Some(watch) = &self.wal_watch {
            watch.after_commit();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await.map_err(StorageError::from)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// The wall clock in milliseconds since the epoch: when a record written
/// with a change is checked against expiry (signed requests).
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros() as i64)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

impl Store {
    /// Opens the database at `url` (creating a SQLite file and its folder as
    /// needed) and brings its schema up to date.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| StorageError::Config(format!("unsupported database URL {url:?}: use sqlite:PATH or postgres://…")))?;
        let store = match backend {
            Backend::Sqlite => Self::open_sqlite(url, options).await?,
            Backend::Postgres => Self::open_postgres(url, options).await?,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<Store> {
        let url = sqlite_url_with_create(url);
        if let Some(folder) = sqlite_folder(&url) {
            std::fs::create_dir_all(&folder).map_err(|e| StorageError::Config(format!("cannot create {}: {e}", folder.display())))?;
        }
        let connect = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(1)
                // No ping before every use: a dead connection fails its
                // first statement instead, and callers retry transient errors.
                .test_before_acquire(false)
                .acquire_timeout(options.acquire_timeout)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL lets readers run beside the writer; synchronous=FULL
                        // fsyncs the WAL at every commit, so an acknowledged
                        // transfer survives power loss.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            BUSY_TIMEOUT_PRAGMA,
                            "PRAGMA cache_size = -16000",
                            // Statement journals (multi-row writes under
                            // constraints) stay in memory, not in temp files.
                            "PRAGMA temp_store = MEMORY",
                            // Checkpoints run in the background (see
                            // `checkpoint_in_background`), not inside
                            // whichever commit happens to cross a threshold.
                            "PRAGMA wal_autocheckpoint = 0",
                            // A WAL that grew under load is cut back to 64 MiB
                            // when it starts over.
                            JOURNAL_SIZE_LIMIT_PRAGMA,
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
        };
        let write = pool(1).connect_with(connect.clone()).await?;
        let read = pool(options.connections_max.max(2)).connect_with(connect).await?;
        let sqlite_path = sqlite_file(&url).map(PathBuf::from);
        let page_bytes: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&read).await?;
        let wal_watch = sqlite_path.as_ref().map(|path| {
            let mut wal_path = path.clone().into_os_string();
            wal_path.push("-wal");
            Arc::new(WalWatch { wal_path: wal_path.into(), pressure: tokio::sync::Notify::new() })
        });
        let store = Store { backend: Backend::Sqlite, sqlite_path, wal_watch, write_gate: Arc::default(), read, write };
        store.checkpoint_in_background(page_bytes);
        Ok(store)
    }

    /// Copies the WAL back into the database file every so often, on a
    /// connection of its own, and keeps the WAL bounded.
    ///
    /// PASSIVE never blocks the writer or readers: it copies what it can, and
    /// the next writer starts the WAL over once all of it is copied and no
    /// reader still reads from it. Under continuous reads that moment may
    /// never come: a reader that began before the last commit keeps its place
    /// in the WAL, and with 16 busy read connections one nearly always does
    /// (a 5-minute soak grew the WAL to 3.5 GB). So when the live WAL passes
    /// [`WAL_RESTART_AFTER_BYTES`], the checkpoint takes the write gate (no
    /// writer of this process can append meanwhile) and runs RESTART, which
    /// copies everything and waits up to [`WAL_RESTART_WAIT_MS`] for the
    /// readers still in the WAL (new readers read the database file alone, so
    /// they do not hold it up); the next writer then starts the WAL over from
    /// its beginning, cutting the file back to [`WAL_FILE_BYTES_MAX`]. RESTART
    /// rather than TRUNCATE: an emptied file would be grown again block by
    /// block, and zeroing new blocks is what made commits slow when the WAL
    /// grew (`bench/README.md`). Stops when the pools close.
    fn checkpoint_in_background(&self, page_bytes: i64) {
        let (pool, gate, watch) = (self.read.clone(), self.write_gate.clone(), self.wal_watch.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !pool.is_closed() {
                // A commit that left the WAL file over its limit wakes it
                // early, and goes straight to the restart: copying first
                // without the gate would let writers append meanwhile.
                let pressed = match &watch {
                    Some(watch) => tokio::select! {
                        _ = tick.tick() => false,
                        () = watch.pressure.notified() => true,
                    },
                    None => {
                        tick.tick().await;
                        false
                    }
                };
                let restart = pressed
                    || match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&pool).await {
                        Ok((_, wal_frames, _)) => wal_frames.saturating_mul(page_bytes) > WAL_RESTART_AFTER_BYTES,
                        Err(error) => {
                            if !pool.is_closed() {
                                tracing::warn!(%error, "background WAL checkpoint failed; will retry");
                            }
                            false
                        }
                    };
                if restart {
                    let _writers_wait = gate.lock().await;
                    match restart_wal(&pool).await {
                        Ok(true) => tracing::debug!(pressed, "WAL made to start over"),
                        Ok(false) => tracing::debug!(pressed, "WAL restart waited for readers in vain; next round"),
                        Err(error) if !pool.is_closed() => tracing::warn!(%error, "restarting the WAL failed; will retry"),
                        Err(_) => {}
                    }
                }
            }
        });
    }

    async fn open_postgres(url: &str, options: &StoreOptions) -> Result<Store> {
        let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new().max_connections(options.connections_max).test_before_acquire(false).acquire_timeout(options.acquire_timeout).connect_with(connect).await?;
        Ok(Store { backend: Backend::Postgres, sqlite_path: None, wal_watch: None, write_gate: Arc::default(), read: pool.clone(), write: pool })
    }

    async fn migrate(&self) -> Result<()> {
        // PostgreSQL's migrator takes an advisory lock, so several servers
        // starting together migrate once.
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&self.write).await.map_err(|e| StorageError::Migration(e.to_string()))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that reads before it writes could
    /// otherwise fail to upgrade its lock when another process wrote meanwhile.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let (tx, gate) = match self.backend {
            Backend::Sqlite => {
                let gate = self.write_gate.clone().lock_owned().await;
                (self.write.begin_with("BEGIN IMMEDIATE").await?, Some(gate))
            }
            Backend::Postgres => (self.write.begin().await?, None),
        };
        Ok(WriteTx { tx, backend: self.backend, _gate: gate, wal_watch: self.wal_watch.clone() })
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.write
    }

    pub(crate) fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    pub(crate) fn wal_watch(&self) -> Option<Arc<WalWatch>> {
        self.wal_watch.clone()
    }

    pub(crate) fn write_gate(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.write_gate.clone()
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A RESTART checkpoint that waits at most [`WAL_RESTART_WAIT_MS`] for
/// readers (SQLite's busy handler is what waits). Returns whether the WAL
/// was fully copied with no reader left in it, so the next writer starts it
/// over.
async fn restart_wal(pool: &AnyPool) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    conn.execute(format!("PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}").as_str()).await?;
    let outcome = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)").fetch_one(&mut *conn).await;
    conn.execute(BUSY_TIMEOUT_PRAGMA).await?;
    let (busy, _, _) = outcome?;
    Ok(busy == 0)
}

/// `sqlite:PATH` opens read-write but does not create; subledger creates its file.
fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The file of a `sqlite:` URL (`None` for in-memory databases).
fn sqlite_file(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

fn sqlite_folder(url: &str) -> Option<PathBuf> {
    Path::new(sqlite_file(url)?).parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_their_file_and_folder() {
        assert_eq!(sqlite_url_with_create("sqlite://data/subledger.db"), "sqlite://data/subledger.db?mode=rwc");
        assert_eq!(sqlite_url_with_create("sqlite:x.db?cache=shared"), "sqlite:x.db?cache=shared&mode=rwc");
        assert_eq!(sqlite_folder("sqlite://data/subledger.db?mode=rwc"), Some("data".into()));
        assert_eq!(sqlite_folder("sqlite:///tmp/a/b.db"), Some("/tmp/a".into()));
        assert_eq!(sqlite_folder("sqlite:b.db"), None);
        assert_eq!(Backend::of_url("mysql://x"), None);
    }
}
