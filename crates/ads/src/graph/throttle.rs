//! Meta's rate-limit headers, and slowing down before Meta refuses.
//!
//! Every Graph answer may carry how much of a limit is used:
//! `X-Business-Use-Case-Usage` per Business Manager (`{"<business id>":
//! [{"type", "call_count", "total_cputime", "total_time",
//! "estimated_time_to_regain_access"}]}`, percentages, the time in minutes),
//! `X-Ad-Account-Usage` for the ad account called (`{"acc_id_util_pct",
//! "reset_time_duration"}`, the time in seconds) and `X-App-Usage` for the
//! app behind the token (`{"call_count", "total_cputime", "total_time"}`).
//!
//! [`Throttle`] keeps, per key (a business, an ad account, a tenant's app),
//! the highest percentage last reported and until when access is blocked.
//! Before a call, [`Throttle::admit`] looks at the keys the call touches:
//! - blocked: wait until access comes back if that fits the call's deadline,
//!   else refuse at once with `RateLimited` (no call is made);
//! - above the threshold (75 % by default): calls on that key are paced, one
//!   per interval, the interval growing linearly from 0 at the threshold to
//!   the maximum at 100 %; a call whose turn comes after its deadline is
//!   refused the same way.
//!
//! A percentage older than [`USAGE_FRESH_FOR`] is forgotten (Meta's windows
//! roll over an hour; a fresh answer would have said otherwise). The map
//! holds at most `max_keys` keys: past that, stale keys go first, then the
//! least recently reported.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use crate::PlatformError;

/// How long a reported percentage is believed without a newer one.
pub const USAGE_FRESH_FOR: Duration = Duration::from_secs(300);

/// How many businesses an ad account's answers are remembered to count against.
const LINKED_BUSINESSES_MAX: usize = 4;

/// What a usage figure is counted for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UsageKey {
    /// A Business Manager (`X-Business-Use-Case-Usage`).
    Business(String),
    /// An ad account, digits only (`X-Ad-Account-Usage`).
    AdAccount(String),
    /// The app behind a tenant's token (`X-App-Usage`); apps are told apart
    /// by tenant since the token does not name its app.
    App(i64),
}

/// How hard to slow down.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Usage (percent) above which calls are paced.
    pub threshold_pct: u32,
    /// The pace at 100 %: one call per this interval on a key.
    pub max_interval: Duration,
    /// Keys tracked at most.
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
struct Usage {
    pct: u32,
    blocked_until: Option<Instant>,
    /// The earliest instant the next paced call on this key may start.
    next_slot: Instant,
    reported_at: Instant,
    /// For an ad account: the businesses whose use case limits its calls counted against.
    linked: Vec<String>,
}

impl Usage {
    fn new(now: Instant) -> Usage {
        Usage { pct: 0, blocked_until: None, next_slot: now, reported_at: now, linked: Vec::new() }
    }

    fn is_stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.reported_at) > USAGE_FRESH_FOR && self.blocked_until.is_none_or(|until| until <= now)
    }
}

/// What the throttle did, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleStats {
    /// Calls that waited for their turn or for access to come back.
    pub delayed_calls: u64,
    /// Calls refused without calling Meta, because waiting would pass their deadline.
    pub refused_calls: u64,
    /// Keys tracked now.
    pub tracked_keys: u64,
}

pub struct Throttle {
    config: ThrottleConfig,
    usage: Mutex<HashMap<UsageKey, Usage>>,
    delayed_calls: AtomicU64,
    refused_calls: AtomicU64,
}

/// The usage one answer reported.
#[derive(Debug, Default, PartialEq)]
pub struct Reported {
    /// (business id, percent, blocked for).
    pub businesses: Vec<(String, u32, Option<Duration>)>,
    pub ad_account: Option<(u32, Option<Duration>)>,
    pub app: Option<u32>,
}

impl Reported {
    /// Reads the three headers; a header that does not parse is ignored
    /// (it only ever slows us down).
    pub fn from_headers(headers: &HeaderMap) -> Reported {
        let json = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).and_then(|text| serde_json::from_str::<Value>(text).ok());
        let mut reported = Reported::default();
        if let Some(Value::Object(businesses)) = json("x-business-use-case-usage") {
            for (business_id, entries) in businesses {
                let Value::Array(entries) = entries else { continue };
                let pct = entries.iter().map(|entry| max_pct(entry, &["call_count", "total_cputime", "total_time"])).max().unwrap_or(0);
                let regain_minutes = entries.iter().filter_map(|entry| number(entry, "estimated_time_to_regain_access")).fold(0.0, f64::max);
                reported.businesses.push((business_id, pct, blocked_for(regain_minutes * 60.0)));
            }
        }
        if let Some(account) = json("x-ad-account-usage") {
            let pct = max_pct(&account, &["acc_id_util_pct"]);
            // `reset_time_duration` is always there; it blocks only once the limit is reached.
            let blocked = if pct >= 100 { blocked_for(number(&account, "reset_time_duration").unwrap_or(0.0)) } else { None };
            reported.ad_account = Some((pct, blocked));
        }
        if let Some(app) = json("x-app-usage") {
            reported.app = Some(max_pct(&app, &["call_count", "total_cputime", "total_time"]));
        }
        reported
    }

    /// The longest block reported: how long Meta asked to wait.
    pub fn longest_block(&self) -> Option<Duration> {
        self.businesses.iter().filter_map(|(_, _, blocked)| *blocked).chain(self.ad_account.and_then(|(_, blocked)| blocked)).max()
    }
}

fn number(entry: &Value, field: &str) -> Option<f64> {
    match entry.get(field)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn max_pct(entry: &Value, fields: &[&str]) -> u32 {
    // Percentages past 1000 say nothing more than "blocked"; the cap keeps the cast exact.
    fields.iter().filter_map(|field| number(entry, field)).fold(0.0, f64::max).clamp(0.0, 1000.0).ceil() as u32
}

fn blocked_for(seconds: f64) -> Option<Duration> {
    // A day bounds what one header can make us wait.
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle { config, usage: Mutex::new(HashMap::new()), delayed_calls: AtomicU64::new(0), refused_calls: AtomicU64::new(0) }
    }

    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats { delayed_calls: self.delayed_calls.load(Ordering::Relaxed), refused_calls: self.refused_calls.load(Ordering::Relaxed), tracked_keys: self.lock().len() as u64 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UsageKey, Usage>> {
        // The map holds figures only: one left half-updated by a panic is still usable.
        self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The keys a call counts against: the tenant's app, its business, and
    /// for a call on an ad account, the account and the businesses its
    /// answers reported.
    pub fn keys(&self, tenant_id: i64, business_id: &str, account_id: Option<&str>) -> Vec<UsageKey> {
        let mut keys = vec![UsageKey::App(tenant_id), UsageKey::Business(business_id.to_owned())];
        if let Some(account_id) = account_id {
            let account = UsageKey::AdAccount(account_id.to_owned());
            if let Some(usage) = self.lock().get(&account) {
                keys.extend(usage.linked.iter().filter(|linked| linked.as_str() != business_id).map(|linked| UsageKey::Business(linked.clone())));
            }
            keys.push(account);
        }
        keys
    }

    /// Waits for the call's turn on every key it touches, or refuses it
    /// (`RateLimited`) when the turn comes after `deadline`.
    pub async fn admit(&self, keys: &[UsageKey], deadline: Instant) -> Result<(), PlatformError> {
        let start = {
            let now = Instant::now();
            let mut usage = self.lock();
            let mut start = now;
            for key in keys {
                let Some(entry) = usage.get(key) else { continue };
                if let Some(until) = entry.blocked_until {
                    start = start.max(until);
                }
                if self.interval(entry, now).is_some() {
                    start = start.max(entry.next_slot);
                }
            }
            if start > deadline {
                self.refused_calls.fetch_add(1, Ordering::Relaxed);
                let wait = start.saturating_duration_since(now);
                return Err(PlatformError::RateLimited { retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) });
            }
            // Take the turn on every paced key: the next call on it goes one interval later.
            for key in keys {
                if let Some(entry) = usage.get_mut(key)
                    && let Some(interval) = self.interval(entry, now)
                {
                    entry.next_slot = start + interval;
                }
            }
            start
        };
        if start > Instant::now() {
            self.delayed_calls.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(wait_ms = start.saturating_duration_since(Instant::now()).as_millis() as u64, "graph call paced by rate-limit usage");
            tokio::time::sleep_until(start).await;
        }
        Ok(())
    }

    /// The pace on a key, if its fresh usage is above the threshold.
    fn interval(&self, usage: &Usage, now: Instant) -> Option<Duration> {
        if usage.is_stale(now) || usage.pct <= self.config.threshold_pct {
            return None;
        }
        let span = 100u32.saturating_sub(self.config.threshold_pct).max(1);
        let over = (usage.pct - self.config.threshold_pct).min(span);
        Some(self.config.max_interval.mul_f64(f64::from(over) / f64::from(span)))
    }

    /// Records what an answer to a call reported.
    pub fn record(&self, tenant_id: i64, account_id: Option<&str>, reported: &Reported) {
        if reported == &Reported::default() {
            return;
        }
        let now = Instant::now();
        let mut usage = self.lock();
        for (business_id, pct, blocked) in &reported.businesses {
            self.report(self.entry(&mut usage, UsageKey::Business(business_id.clone()), now), now, *pct, *blocked);
        }
        if let Some(account_id) = account_id
            && (reported.ad_account.is_some() || !reported.businesses.is_empty())
        {
            let entry = self.entry(&mut usage, UsageKey::AdAccount(account_id.to_owned()), now);
            if let Some((pct, blocked)) = reported.ad_account {
                self.report(entry, now, pct, blocked);
            }
            for (business_id, _, _) in &reported.businesses {
                if !entry.linked.contains(business_id) {
                    if entry.linked.len() == LINKED_BUSINESSES_MAX {
                        entry.linked.remove(0);
                    }
                    entry.linked.push(business_id.clone());
                }
            }
        }
        if let Some(pct) = reported.app {
            self.report(self.entry(&mut usage, UsageKey::App(tenant_id), now), now, pct, None);
        }
    }

    /// Sets a key's usage. Above the threshold, the call that brought the
    /// figure counts as the key's last turn: the next one waits an interval.
    fn report(&self, entry: &mut Usage, now: Instant, pct: u32, blocked: Option<Duration>) {
        entry.pct = pct;
        entry.reported_at = now;
        entry.blocked_until = blocked.map(|blocked| now + blocked);
        if let Some(interval) = self.interval(entry, now) {
            entry.next_slot = entry.next_slot.max(now + interval);
        }
    }

    fn entry<'m>(&self, usage: &'m mut HashMap<UsageKey, Usage>, key: UsageKey, now: Instant) -> &'m mut Usage {
        self.make_room(usage, &key, now);
        usage.entry(key).or_insert_with(|| Usage::new(now))
    }

    /// Keeps the map under `max_keys` before `key` goes in.
    fn make_room(&self, usage: &mut HashMap<UsageKey, Usage>, key: &UsageKey, now: Instant) {
        if usage.len() < self.config.max_keys || usage.contains_key(key) {
            return;
        }
        usage.retain(|_, entry| !entry.is_stale(now));
        while usage.len() >= self.config.max_keys {
            let Some(oldest) = usage.iter().min_by_key(|(_, entry)| entry.reported_at).map(|(key, _)| key.clone()) else { break };
            usage.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn throttle(max_keys: usize) -> Throttle {
        Throttle::new(ThrottleConfig { threshold_pct: 75, max_interval: Duration::from_millis(400), max_keys })
    }

    #[test]
    fn the_three_headers_are_read() {
        let reported = Reported::from_headers(&headers(&[
            (
                "x-business-use-case-usage",
                r#"{"111":[{"type":"ads_management","call_count":28,"total_cputime":96,"total_time":25,"estimated_time_to_regain_access":0},{"type":"ads_insights","call_count":101,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":2}]}"#,
            ),
            ("x-ad-account-usage", r#"{"acc_id_util_pct":9.67,"reset_time_duration":120,"ads_api_access_tier":"standard_access"}"#),
            ("x-app-usage", r#"{"call_count":5,"total_cputime":1,"total_time":80}"#),
        ]));
        assert_eq!(reported.businesses, vec![("111".to_owned(), 101, Some(Duration::from_secs(120)))]);
        // Under 100 % the reset time does not block.
        assert_eq!(reported.ad_account, Some((10, None)));
        assert_eq!(reported.app, Some(80));
        assert_eq!(reported.longest_block(), Some(Duration::from_secs(120)));
        assert_eq!(Reported::from_headers(&headers(&[("x-app-usage", "not json")])), Reported::default());
    }

    #[tokio::test(start_paused = true)]
    async fn usage_above_the_threshold_paces_calls() {
        let throttle = throttle(100);
        let keys = throttle.keys(1, "111", None);
        throttle.record(1, None, &Reported { businesses: vec![("111".to_owned(), 95, None)], ..Reported::default() });
        let deadline = Instant::now() + Duration::from_secs(10);
        let start = Instant::now();
        throttle.admit(&keys, deadline).await.unwrap();
        throttle.admit(&keys, deadline).await.unwrap();
        throttle.admit(&keys, deadline).await.unwrap();
        // 95 % is 80 % of the way from 75 % to 100 %: one call per 320 ms,
        // counted from the call that reported it.
        assert_eq!(start.elapsed(), Duration::from_millis(960));
        assert_eq!(throttle.stats().delayed_calls, 3);
        // Another business is not slowed.
        throttle.admit(&throttle.keys(1, "222", None), deadline).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(960));
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_longer_than_the_deadline_refuses_without_waiting() {
        let throttle = throttle(100);
        throttle.record(1, Some("42"), &Reported { ad_account: Some((100, Some(Duration::from_secs(90)))), businesses: vec![("333".to_owned(), 10, None)], ..Reported::default() });
        let keys = throttle.keys(1, "111", Some("42"));
        assert!(keys.contains(&UsageKey::Business("333".to_owned())), "the account's answers linked it to business 333");
        let start = Instant::now();
        let refused = throttle.admit(&keys, start + Duration::from_secs(20)).await;
        assert_eq!(refused, Err(PlatformError::RateLimited { retry_after_s: 90 }));
        assert_eq!(start.elapsed(), Duration::ZERO);
        // A deadline past the block waits it out.
        throttle.admit(&keys, start + Duration::from_secs(100)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(90));
        assert_eq!(throttle.stats(), ThrottleStats { delayed_calls: 1, refused_calls: 1, tracked_keys: 2 });
    }

    #[tokio::test(start_paused = true)]
    async fn stale_usage_is_forgotten_and_the_map_stays_bounded() {
        let throttle = throttle(3);
        for business in 0..10 {
            throttle.record(1, None, &Reported { businesses: vec![(business.to_string(), 99, None)], ..Reported::default() });
        }
        assert_eq!(throttle.stats().tracked_keys, 3);
        tokio::time::advance(USAGE_FRESH_FOR + Duration::from_secs(1)).await;
        let start = Instant::now();
        for _ in 0..3 {
            throttle.admit(&throttle.keys(1, "9", None), start + Duration::from_secs(5)).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
