//! The SQLite WAL stays bounded while readers never stop: a reader that began
//! before the last commit keeps the WAL from starting over, and with reads
//! overlapping one another that moment never comes by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{Connection, Executor};
use subledger_storage::{Store, StoreOptions, settings};

/// Writes of 100 KiB each: 100 MiB in all, far past the WAL's bound.
const WRITES: usize = 1_000;
const VALUE_BYTES: usize = 100 * 1024;
/// What the WAL file may reach: its cut-back size (`journal_size_limit`,
/// 64 MiB), plus what writers append before the checkpoint gets its turn.
const WAL_FILE_BYTES_MAX: u64 = 72 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_overlapping_reads() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}/wal.db", dir.path().display());
    let wal = dir.path().join("wal.db-wal");
    let store = Store::open(&url, &StoreOptions::default()).await.expect("the store opens");

    // Two readers, each holding a read transaction for 60 ms, staggered so
    // that one is always open.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for offset_ms in [0, 30] {
        let (url, stop) = (url.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(offset_ms)).await;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("a reader connects");
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                conn.execute("BEGIN").await.expect("begin");
                let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_settings").fetch_one(&mut conn).await.expect("read");
                tokio::time::sleep(Duration::from_millis(60)).await;
                conn.execute("COMMIT").await.expect("commit");
                reads += 1;
            }
            reads
        }));
    }

    let watcher = {
        let (wal, stop) = (wal.clone(), stop.clone());
        tokio::spawn(async move {
            let mut largest = 0;
            while !stop.load(Ordering::Relaxed) {
                largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            largest
        })
    };

    let value = "x".repeat(VALUE_BYTES);
    for i in 0..WRITES {
        let mut tx = store.begin_write().await.expect("a write transaction");
        settings::put(&mut tx, &format!("soak-{i}"), &value).await.expect("a write");
        tx.commit().await.expect("commit");
    }
    // Writes are done. Within a few checkpoint rounds the WAL is fully copied
    // with no reader left in it, so the next write starts it over: the WAL
    // then holds that write's few frames, not the 100 MiB before it.
    let mut started_over = false;
    for attempt in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut tx = store.begin_write().await.expect("a write transaction");
        settings::put(&mut tx, "probe", &attempt.to_string()).await.expect("a write");
        tx.commit().await.expect("commit");
        let mut probe = sqlx::SqliteConnection::connect(&url).await.expect("a probe connects");
        let (_, wal_frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut probe).await.expect("checkpoint");
        if wal_frames < 100 {
            started_over = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let largest = watcher.await.expect("the watcher");
    for reader in readers {
        assert!(reader.await.expect("a reader") > 10, "the readers kept reading");
    }
    assert!(largest <= WAL_FILE_BYTES_MAX, "the WAL reached {} MiB with readers always active", largest / (1024 * 1024));
    assert!(started_over, "the WAL starts over once it is copied, though readers never stop");
    store.close().await;
}
