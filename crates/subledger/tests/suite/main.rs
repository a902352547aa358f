//! The black-box suite: the real binary, over HTTP and its CLI, on SQLite and
//! (with `SUBLEDGER_TEST_POSTGRES_URL` set) PostgreSQL.

mod support;

mod access;
mod ads;
mod ads_faults;
mod billing;
mod cli;
mod close;
mod connections;
mod currency;
mod fairness;
mod holds;
mod input;
mod isolation;
mod native;
mod openapi;
mod oplog;
mod overflow;
mod passwords;
mod reliability;
mod seats;
mod sendcloud;
mod telephony;
mod uucall;
