//! Insights of ad accounts: synced daily rows, and queries over them.
