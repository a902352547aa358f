//! Statements for the telephony dialect: balances, consumption by day, group and month. Being written.
