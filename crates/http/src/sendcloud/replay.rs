//! Refuses a signed request seen before within the timestamp window.
//!
//! Kept in memory per process and bounded. A `transferIn` replayed to another
//! process sharing the database is refused too: its signature is its ledger
//! idempotency key, which the database keeps (see `handlers::transfer_in`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use subledger_domain::ids::TenantId;

pub struct ReplayGuard {
    inner: Mutex<Seen>,
    entries_max: usize,
}

#[derive(Default)]
struct Seen {
    expiry_ms_by_request: HashMap<(TenantId, String), i64>,
    /// Insertion order with expiry, to forget old entries cheaply.
    order: VecDeque<(i64, TenantId, String)>,
}

/// What the guard says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    First,
    Replayed,
    /// The guard is full of unexpired requests: refuse rather than forget one.
    Full,
}

impl ReplayGuard {
    pub fn new(entries_max: usize) -> Self {
        ReplayGuard { inner: Mutex::new(Seen::default()), entries_max }
    }

    /// Records `signature` of `tenant` until `expires_at_ms`, unless it is already recorded.
    pub fn check(&self, tenant: TenantId, signature: &str, now_ms: i64, expires_at_ms: i64) -> Verdict {
        let mut seen = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // An entry is kept through its expiry millisecond: the timestamp
        // window accepts a request up to and including that instant.
        while let Some((expiry, _, _)) = seen.order.front() {
            if *expiry >= now_ms {
                break;
            }
            let (_, t, s) = seen.order.pop_front().expect("front exists");
            let key = (t, s);
            if seen.expiry_ms_by_request.get(&key).is_some_and(|e| *e < now_ms) {
                seen.expiry_ms_by_request.remove(&key);
            }
        }
        let key = (tenant, signature.to_ascii_lowercase());
        if seen.expiry_ms_by_request.contains_key(&key) {
            return Verdict::Replayed;
        }
        if seen.expiry_ms_by_request.len() >= self.entries_max {
            return Verdict::Full;
        }
        seen.order.push_back((expires_at_ms, key.0, key.1.clone()));
        seen.expiry_ms_by_request.insert(key, expires_at_ms);
        Verdict::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_stays_bounded() {
        let guard = ReplayGuard::new(2);
        let t = TenantId(1);
        assert_eq!(guard.check(t, "AA", 0, 100), Verdict::First);
        assert_eq!(guard.check(t, "aa", 50, 150), Verdict::Replayed);
        assert_eq!(guard.check(TenantId(2), "aa", 50, 150), Verdict::First);
        assert_eq!(guard.check(t, "bb", 60, 160), Verdict::Full);
        // Still remembered at its expiry instant, forgotten after it.
        assert_eq!(guard.check(t, "aa", 100, 200), Verdict::Replayed);
        assert_eq!(guard.check(t, "bb", 101, 201), Verdict::First);
        assert_eq!(guard.check(t, "aa", 151, 251), Verdict::First);
    }
}
