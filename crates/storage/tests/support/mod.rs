//! Databases for the storage crate's tests: a new SQLite file always, and a
//! new PostgreSQL database (created on the server `SUBLEDGER_TEST_POSTGRES_URL`
//! names, dropped afterwards) when that variable is set. Without it the
//! PostgreSQL half of a test says SKIP on stderr, once, and passes.
//!
//! Shared by the integration tests (`mod support;`) and the crate's unit
//! tests (`#[path]`), so it uses nothing of the crate itself.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

pub const POSTGRES_ENV: &str = "SUBLEDGER_TEST_POSTGRES_URL";

/// A database of its own for one test, as a URL `Store::open` takes.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The server's URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary folder");
        TestDb { url: format!("sqlite://{}/storage.db", dir.path().display()), _dir: Some(dir), postgres: None }
    }

    /// `None`, after saying so, when no PostgreSQL server is configured.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(server) = std::env::var(POSTGRES_ENV) else {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                // Past the test harness's capture, so that a skip is seen.
                let _ = writeln!(std::io::stderr(), "\nSKIP: the storage tests' PostgreSQL half passes without running: {POSTGRES_ENV} is not set.\n");
            });
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("sl_storage_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("PostgreSQL answers at SUBLEDGER_TEST_POSTGRES_URL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop a stale test database");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create the test database");
        let (base, query) = server.split_once('?').map_or((server.as_str(), None), |(base, query)| (base, Some(query)));
        let (server_part, _) = base.rsplit_once('/').filter(|(head, _)| head.contains("://") && !head.ends_with('/')).unwrap_or((base, ""));
        let url = format!("{server_part}/{name}{}", query.map(|q| format!("?{q}")).unwrap_or_default());
        Some(TestDb { url, _dir: None, postgres: Some((server, name)) })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            // Drop runs outside async: clean up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                    }
                });
            })
            .join();
        }
    }
}
