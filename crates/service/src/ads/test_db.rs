//! What the ads module's tests share: a SQLite database file of their own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A database file of its own, removed afterwards.
pub(crate) struct TempDb {
    dir: PathBuf,
    pub(crate) url: String,
}

impl TempDb {
    pub(crate) fn new(tag: &str) -> TempDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!("subledger-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let url = format!("sqlite://{}/{tag}.db", dir.display());
        TempDb { dir, url }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
