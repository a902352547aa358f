//! The pure domain of subledger: money, identifiers, account fields, ledger
//! rules and calendars. No I/O lives here; everything is unit- and
//! property-tested. Raw input from the wire is parsed into these types at the
//! edge, so the layers above never see an unchecked value.

pub mod access;
pub mod account;
pub mod ads;
pub mod billing;
pub mod calendar;
pub mod catalog;
pub mod decimal;
pub mod ids;
pub mod insights;
pub mod ledger;
pub mod money;
pub mod oplog;
pub mod paging;
pub mod posting;
pub mod rating;
pub mod seats;
pub mod text;
pub mod timecards;
pub mod usage;
