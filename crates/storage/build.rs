//! Sets `cfg(postgres_tests)` when `SUBLEDGER_TEST_POSTGRES_URL` is set, so
//! that without it the PostgreSQL half of the storage tests is compiled as
//! ignored (`on_both_backends!` in `tests/support/mod.rs`): `cargo test`
//! then counts as passed only the tests that ran.

const POSTGRES_ENV: &str = "SUBLEDGER_TEST_POSTGRES_URL";

fn main() {
    println!("cargo::rerun-if-env-changed={POSTGRES_ENV}");
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    if std::env::var_os(POSTGRES_ENV).is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
