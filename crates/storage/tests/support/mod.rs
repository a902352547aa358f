//! Databases for the storage crate's tests: a new SQLite file, or a new
//! PostgreSQL database (created on the server `SUBLEDGER_TEST_POSTGRES_URL`
//! names, dropped afterwards). Tests written for both run through
//! [`on_both_backends!`]: without the variable at build time their PostgreSQL
//! half is compiled as ignored, with the reason, instead of passing unrun.
//!
//! Shared by the integration tests (`mod support;`) and the crate's unit
//! tests (`#[path]`), so it uses nothing of the crate itself.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

pub const POSTGRES_ENV: &str = "SUBLEDGER_TEST_POSTGRES_URL";

/// Declares, for each `async fn name(db: TestDb)`, the tests `sqlite::name`
/// and `postgres::name`; the latter is ignored, saying why, unless
/// `SUBLEDGER_TEST_POSTGRES_URL` was set when the tests were built.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::support::TestDb::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[cfg_attr(not(postgres_tests), ignore = "set SUBLEDGER_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL half")]
                #[tokio::test]
                async fn $name() {
                    super::$name(super::support::TestDb::postgres().await).await
                }
            )*
        }
    };
}

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

    /// A new database on the configured PostgreSQL server. Only tests
    /// compiled with `cfg(postgres_tests)` call it, so the variable is set.
    pub async fn postgres() -> TestDb {
        let server = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| panic!("{POSTGRES_ENV} was set when the tests were built but is not now"));
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("sl_storage_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&server).await.expect("PostgreSQL answers at SUBLEDGER_TEST_POSTGRES_URL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await.expect("drop a stale test database");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create the test database");
        let (base, query) = server.split_once('?').map_or((server.as_str(), None), |(base, query)| (base, Some(query)));
        let (server_part, _) = base.rsplit_once('/').filter(|(head, _)| head.contains("://") && !head.ends_with('/')).unwrap_or((base, ""));
        let url = format!("{server_part}/{name}{}", query.map(|q| format!("?{q}")).unwrap_or_default());
        TestDb { url, _dir: None, postgres: Some((server, name)) }
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
