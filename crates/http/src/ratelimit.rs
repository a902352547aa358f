//! Rate limits: token buckets (GCRA, the `governor` crate) per tenant, per
//! sub-user session, and on logins per client address and per username.
//!
//! Every dialect that authenticates a caller asks [`RateLimits::check_caller`]
//! once per request, after authentication (so only real credentials make
//! keys): the tenant's bucket, which all its callers share, and, for a
//! sub-user, that sub-user's own bucket (all its sessions share it). A login
//! asks [`RateLimits::check_login_address`] and
//! [`RateLimits::check_login_username`] before the password is checked, so
//! guessing costs no argon2 hash beyond the limit. Refusals carry the wait
//! until a token is back, which dialects send as `Retry-After` (429).
//!
//! Memory is bounded: each limiter keeps one small state per key, forgets
//! keys whose bucket is full again (`retain_recent`) every
//! [`SWEEP_EVERY_CHECKS`] checks, and holds at most [`KEYS_MAX`] keys; past
//! that, new requests are refused for a second until a sweep makes room
//! (keys are authenticated identities or login attempts, so only a flood
//! fills it, and it then fails closed).

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use subledger_domain::ids::{AccountId, TenantId};
use subledger_service::tenants::Tenant;
use subledger_service::{Caller, ServiceError};

/// A bucket: `per_second` tokens come back each second, up to `burst`.
/// Rates below one a second are given per minute ([`Rate::per_minute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time for one token to come back.
    pub period: Duration,
    pub burst: NonZeroU32,
}

impl Rate {
    /// `None` for a rate of 0 (no limit).
    pub fn per_second(per_second: u32, burst: u32) -> Option<Rate> {
        NonZeroU32::new(per_second).map(|n| Rate { period: Duration::from_secs(1) / n.get(), burst: NonZeroU32::new(burst).unwrap_or(n) })
    }

    pub fn per_minute(per_minute: u32, burst: u32) -> Option<Rate> {
        NonZeroU32::new(per_minute).map(|n| Rate { period: Duration::from_secs(60) / n.get(), burst: NonZeroU32::new(burst).unwrap_or(n) })
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.period.max(Duration::from_nanos(1))).expect("a period above zero").allow_burst(self.burst)
    }
}

/// The limits; `None` switches one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests of one tenant, all its callers together.
    pub tenant: Option<Rate>,
    /// Requests of one sub-user, all its sessions together.
    pub session: Option<Rate>,
    /// Login attempts from one client address.
    pub login_per_address: Option<Rate>,
    /// Login attempts at one username of one tenant.
    pub login_per_username: Option<Rate>,
}

/// Defaults: far above what the suite and the benchmarks send (the native
/// benchmarks stay under 5,000 requests a second per tenant), far below what
/// a runaway script would.
pub const TENANT_PER_SECOND_DEFAULT: u32 = 10_000;
pub const TENANT_BURST_DEFAULT: u32 = 20_000;
pub const SESSION_PER_SECOND_DEFAULT: u32 = 50;
pub const SESSION_BURST_DEFAULT: u32 = 100;
pub const LOGIN_PER_ADDRESS_PER_MINUTE_DEFAULT: u32 = 60;
pub const LOGIN_PER_USERNAME_PER_MINUTE_DEFAULT: u32 = 10;

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            tenant: Rate::per_second(TENANT_PER_SECOND_DEFAULT, TENANT_BURST_DEFAULT),
            session: Rate::per_second(SESSION_PER_SECOND_DEFAULT, SESSION_BURST_DEFAULT),
            login_per_address: Rate::per_minute(LOGIN_PER_ADDRESS_PER_MINUTE_DEFAULT, LOGIN_PER_ADDRESS_PER_MINUTE_DEFAULT),
            login_per_username: Rate::per_minute(LOGIN_PER_USERNAME_PER_MINUTE_DEFAULT, LOGIN_PER_USERNAME_PER_MINUTE_DEFAULT),
        }
    }
}

/// Most keys one limiter holds.
pub const KEYS_MAX: usize = 100_000;
/// How often (in checks of one limiter) it forgets keys whose bucket is full.
pub const SWEEP_EVERY_CHECKS: u64 = 1_024;

/// One keyed limiter with its bounds.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate) -> Keyed<K> {
        Keyed { limiter: DefaultKeyedRateLimiter::keyed(rate.quota()), checks: AtomicU64::new(0) }
    }

    /// `Ok`, or the wait until the key may go again.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_CHECKS == SWEEP_EVERY_CHECKS - 1 || self.limiter.len() >= KEYS_MAX {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
            if self.limiter.len() >= KEYS_MAX {
                return Err(Duration::from_secs(1));
            }
        }
        self.limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }
}

/// The limiters of one server process (each process counts on its own: with
/// N processes behind a balancer a tenant gets up to N times the rate).
pub struct RateLimits {
    tenant: Option<Keyed<TenantId>>,
    session: Option<Keyed<AccountId>>,
    login_address: Option<Keyed<IpAddr>>,
    login_username: Option<Keyed<(TenantId, String)>>,
}

/// A refusal as the service error every dialect maps (429, `Retry-After` in whole seconds).
fn refused(wait: Duration) -> ServiceError {
    ServiceError::RateLimited { retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> RateLimits {
        RateLimits {
            tenant: config.tenant.map(Keyed::new),
            session: config.session.map(Keyed::new),
            login_address: config.login_per_address.map(Keyed::new),
            login_username: config.login_per_username.map(Keyed::new),
        }
    }

    /// One request of an authenticated caller: the tenant's bucket, then the sub-user's.
    pub fn check_caller(&self, tenant: &Tenant, caller: &Caller) -> Result<(), ServiceError> {
        if let Some(limiter) = &self.tenant {
            limiter.check(&tenant.id).map_err(refused)?;
        }
        if let (Some(limiter), Some(account)) = (&self.session, caller.sub_user()) {
            limiter.check(&account).map_err(refused)?;
        }
        Ok(())
    }

    /// One login attempt from `address`, asked before anything is looked up.
    pub fn check_login_address(&self, address: Option<IpAddr>) -> Result<(), ServiceError> {
        match (&self.login_address, address) {
            (Some(limiter), Some(address)) => limiter.check(&address).map_err(refused),
            _ => Ok(()),
        }
    }

    /// One login attempt at `username` of `tenant`, asked before the password is checked.
    pub fn check_login_username(&self, tenant: TenantId, username: &str) -> Result<(), ServiceError> {
        match &self.login_username {
            // Names longer than any username are cut: they all fail anyway, and keys stay small.
            Some(limiter) => limiter.check(&(tenant, username.chars().take(64).collect())).map_err(refused),
            None => Ok(()),
        }
    }

    /// Keys held, over all limiters (tests, metrics).
    pub fn keys(&self) -> usize {
        self.tenant.as_ref().map_or(0, Keyed::len)
            + self.session.as_ref().map_or(0, Keyed::len)
            + self.login_address.as_ref().map_or(0, Keyed::len)
            + self.login_username.as_ref().map_or(0, Keyed::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_how_long_to_wait() {
        let limiter = Keyed::<u8>::new(Rate::per_minute(1, 2).unwrap());
        assert!(limiter.check(&1).is_ok() && limiter.check(&1).is_ok());
        let wait = limiter.check(&1).expect_err("the third within a minute");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(limiter.check(&2).is_ok(), "each key has its own bucket");
        match refused(wait) {
            ServiceError::RateLimited { retry_after_s } => assert!((51..=60).contains(&retry_after_s)),
            other => panic!("{other:?}"),
        }
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let limiter = Keyed::<u64>::new(Rate::per_second(1_000_000, 1).unwrap());
        for key in 0..SWEEP_EVERY_CHECKS - 1 {
            limiter.check(&key).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        limiter.check(&u64::MAX).unwrap();
        assert!(limiter.len() < 10, "a sweep forgot the refilled keys: {}", limiter.len());
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        assert_eq!(Rate::per_second(0, 5), None);
        assert_eq!(Rate::per_second(10, 0).map(|r| r.burst.get()), Some(10), "burst 0 means one second's worth");
        let limits = RateLimits::new(&RateLimitConfig { tenant: None, session: None, login_per_address: None, login_per_username: None });
        for _ in 0..100 {
            limits.check_login_address(Some(IpAddr::from([127, 0, 0, 1]))).unwrap();
            limits.check_login_username(TenantId(1), "amy").unwrap();
        }
        assert_eq!(limits.keys(), 0);
    }
}
