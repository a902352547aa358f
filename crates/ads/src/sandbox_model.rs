//! The sandbox ad platform's world, pure: what Meta would answer a tenant
//! at an instant, as a function of a seed, the tenant, the tenant's epoch
//! (when its sandbox was first used), the instant, and the spend segments
//! written so far. No I/O and no clock: callers pass `now_us`, and the
//! service (`subledger_service::ads::sandbox`) stores the epoch, the
//! segments and the bindings.
//!
//! - **Creation requests** appear on a clock: [`WorldConfig::initial_requests`]
//!   exist at the epoch, then one every [`WorldConfig::request_every_us`]
//!   (a seeded jitter of up to half that earlier), up to
//!   [`WorldConfig::requests_max`]. Each follows a seeded review path
//!   ([`review`]), one status per [`WorldConfig::review_step_us`].
//! - **Ad accounts** exist from the instant their request is approved, with
//!   a cap of one cent; a seeded few are disabled later.
//! - **Spend** accrues at a seeded daily rate under the cap ([`spend`]);
//!   insights derive every metric from the day's spend ([`insights`]).
//!
//! The world depends on the exact draws made here: the same seed gives the
//! same world with the same version of this module, not across changes to it.

mod draw;
mod ids;
mod insights;
mod names;
mod review;
mod spend;

use jiff::{Timestamp, ToSpan};
use serde_json::{Map, Value, json};

pub use insights::apportion;
pub use spend::{DAY_US, Segment, Spent, Zone, date_of_day, day_number};

use crate::{AdAccount, Business, CreationRequest, InsightsRow, InsightsWindow, Pixel, PlatformError, PlatformResult, RESET_SPEND_CAP_CENTS, account_status, request_approved};
use draw::{Draw, about, mix};
use insights::Funnel;
use names::Company;
use spend::Spender;

/// The highest spend cap the sandbox accepts, in cents ($10 billion).
pub const SPEND_CAP_CENTS_MAX: i64 = 1_000_000_000_000;
/// The most requests a tenant's sandbox can have (the ids' room).
pub const REQUESTS_LIMIT: u32 = (1 << ids::REQUEST_BITS) - 1;
/// The most pixels a tenant's sandbox can own.
pub const PIXELS_LIMIT: u32 = 16;
/// The highest daily spend rate, in cents ($100 million a day).
pub const DAILY_SPEND_CENTS_LIMIT: i64 = 10_000_000_000;
/// Insights reach back this many months before today, as Graph's do.
pub const INSIGHTS_MONTHS_BACK: i64 = 37;
/// The shortest review step and request interval: one second.
const STEP_US_MIN: i64 = 1_000_000;
/// Ad accounts per request: one to three.
const ACCOUNTS_PER_REQUEST: [u32; 3] = [500, 300, 200];
/// Meta's `disable_reason`s of disabled sandbox accounts: ADS_INTEGRITY_POLICY, RISK_PAYMENT.
const DISABLE_REASONS: [(i64, u32); 2] = [(1, 700), (3, 300)];
/// Graph's code for a bad parameter.
const INVALID_PARAMETER: i64 = 100;
/// Graph's code for a time range that starts more than 37 months back.
const TIME_RANGE_TOO_OLD: i64 = 3018;

/// What shapes every tenant's world. See `docs/ads-sandbox.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldConfig {
    pub seed: u64,
    /// How long a request stays in each review status.
    pub review_step_us: i64,
    /// How often a new creation request appears.
    pub request_every_us: i64,
    /// Requests a tenant's sandbox makes at most (≤ [`REQUESTS_LIMIT`]).
    pub requests_max: u32,
    /// Requests that exist at the epoch already (made before it).
    pub initial_requests: u32,
    /// The range of accounts' average daily spend, in cents.
    pub daily_spend_cents_min: i64,
    pub daily_spend_cents_max: i64,
    /// Accounts disabled some day after their creation, per mille.
    pub disabled_per_mille: u32,
    /// Pixels each tenant's sandbox owns (≤ [`PIXELS_LIMIT`]).
    pub pixels_per_tenant: u32,
}

impl WorldConfig {
    /// What is out of bounds, if anything.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.review_step_us < STEP_US_MIN || self.request_every_us < STEP_US_MIN {
            problems.push("the review step and the request interval must be at least one second".to_owned());
        }
        if self.requests_max > REQUESTS_LIMIT {
            problems.push(format!("requests_max must be at most {REQUESTS_LIMIT}"));
        }
        if self.initial_requests > self.requests_max {
            problems.push("initial_requests must be at most requests_max".to_owned());
        }
        if !(0..=DAILY_SPEND_CENTS_LIMIT).contains(&self.daily_spend_cents_min) || !(self.daily_spend_cents_min..=DAILY_SPEND_CENTS_LIMIT).contains(&self.daily_spend_cents_max) {
            problems.push(format!("the daily spend range must be 0 ≤ min ≤ max ≤ {DAILY_SPEND_CENTS_LIMIT} cents"));
        }
        if self.disabled_per_mille > 1_000 {
            problems.push("disabled_per_mille must be at most 1000".to_owned());
        }
        if self.pixels_per_tenant > PIXELS_LIMIT {
            problems.push(format!("pixels_per_tenant must be at most {PIXELS_LIMIT}"));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }

    /// The same, each setting brought within its bounds.
    pub fn bounded(self) -> WorldConfig {
        let requests_max = self.requests_max.min(REQUESTS_LIMIT);
        let daily_spend_cents_min = self.daily_spend_cents_min.clamp(0, DAILY_SPEND_CENTS_LIMIT);
        WorldConfig {
            seed: self.seed,
            review_step_us: self.review_step_us.max(STEP_US_MIN),
            request_every_us: self.request_every_us.max(STEP_US_MIN),
            requests_max,
            initial_requests: self.initial_requests.min(requests_max),
            daily_spend_cents_min,
            daily_spend_cents_max: self.daily_spend_cents_max.clamp(daily_spend_cents_min, DAILY_SPEND_CENTS_LIMIT),
            disabled_per_mille: self.disabled_per_mille.min(1_000),
            pixels_per_tenant: self.pixels_per_tenant.min(PIXELS_LIMIT),
        }
    }
}

fn invalid(detail: impl std::fmt::Display) -> PlatformError {
    PlatformError::Refused { code: INVALID_PARAMETER, subcode: None, message: format!("Invalid parameter: {detail}") }
}

/// An instant as Graph writes it: `2024-05-01T12:00:00+0000`.
pub fn graph_time(at_us: i64) -> String {
    Timestamp::from_microsecond(at_us).unwrap_or(Timestamp::UNIX_EPOCH).strftime("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// Whether a Business Manager id can exist: digits only, as Meta's.
pub fn business_id_valid(business_id: &str) -> bool {
    (1..=20).contains(&business_id.len()) && business_id.bytes().all(|b| b.is_ascii_digit())
}

/// A Business Manager as an ad account's `agencies` edge shows it: the
/// agency's own manages the account, any other advertises and analyses.
pub fn business(business_id: &str, agency_business_id: &str) -> Business {
    let tasks: &[&str] = if business_id == agency_business_id { &["MANAGE", "ADVERTISE", "ANALYZE"] } else { &["ADVERTISE", "ANALYZE"] };
    Business { id: business_id.to_owned(), name: format!("Business {business_id}"), permitted_tasks: tasks.iter().map(|t| (*t).to_owned()).collect() }
}

/// One tenant's world.
#[derive(Debug, Clone, Copy)]
pub struct World<'c> {
    config: &'c WorldConfig,
    tenant_id: i64,
    epoch_us: i64,
}

/// Everything drawn about one creation request.
struct Plan {
    index: u32,
    created_us: i64,
    path: &'static [&'static str],
    company: Company,
    /// The ad accounts requested: name and time zone.
    accounts: Vec<(String, Zone)>,
    page_ids: Vec<String>,
    app_ids: Vec<String>,
    disapproval: (&'static str, &'static str),
    change: (&'static str, &'static str, &'static str),
}

impl Plan {
    /// The index of the request's status in its path at `now_us` (≥ its creation).
    fn step_at(&self, review_step_us: i64, now_us: i64) -> usize {
        (((now_us - self.created_us) / review_step_us).max(0) as usize).min(self.path.len() - 1)
    }

    /// When it is approved (if its path leads there).
    fn approved_at_us(&self, review_step_us: i64) -> Option<i64> {
        self.path.iter().position(|s| request_approved(s)).map(|step| self.created_us + step as i64 * review_step_us)
    }
}

impl<'c> World<'c> {
    /// The world of a tenant whose sandbox started at `epoch_us`; `None` for
    /// a tenant id the sandbox's ids have no room for (2^30 and above).
    pub fn new(config: &'c WorldConfig, tenant_id: i64, epoch_us: i64) -> Option<World<'c>> {
        ids::tenant_fits(tenant_id).then_some(World { config, tenant_id, epoch_us })
    }

    fn seed(&self) -> u64 {
        self.config.seed
    }

    /// When request `n` was made: on its slot of the clock, up to half an
    /// interval earlier. The first `initial_requests` are made before the epoch.
    fn created_us(&self, n: u32) -> i64 {
        let every = self.config.request_every_us;
        let jitter = Draw::new(self.seed(), &[about::REQUEST, self.tenant_id as u64, u64::from(n), 0]).below((every / 2).max(1) as u64) as i64;
        self.epoch_us + (i64::from(n) - i64::from(self.config.initial_requests) + 1) * every - jitter
    }

    /// How many requests exist at `now_us`.
    pub fn request_count(&self, now_us: i64) -> u32 {
        let intervals = (now_us - self.epoch_us).div_euclid(self.config.request_every_us);
        // Every request up to this one is due; the next may be (jitter).
        let due = intervals + i64::from(self.config.initial_requests);
        let max = i64::from(self.config.requests_max);
        let count = if (0..max).contains(&due) && self.created_us(due as u32) <= now_us { due + 1 } else { due };
        count.clamp(0, max) as u32
    }

    fn plan(&self, n: u32) -> Plan {
        let mut draw = Draw::new(self.seed(), &[about::REQUEST, self.tenant_id as u64, u64::from(n), 1]);
        let weights: Vec<u32> = review::REVIEW_PATHS.iter().map(|p| p.per_mille).collect();
        let path = review::REVIEW_PATHS[draw.weighted(&weights)].statuses;
        let company = Company::draw(&mut draw);
        let count = draw.weighted(&ACCOUNTS_PER_REQUEST) as u32 + 1;
        let accounts = (0..count).map(|slot| (company.account_name(slot), Zone::draw(&mut draw))).collect();
        let page_ids = (0..draw.between(1, 2)).map(|_| ids::plain_id(draw.next_u64())).collect();
        let app_ids = if company.promotes_app { vec![ids::plain_id(draw.next_u64())] } else { Vec::new() };
        let disapproval = *draw.pick(&names::DISAPPROVAL_REASONS);
        let change = *draw.pick(&names::CHANGE_REASONS);
        Plan { index: n, created_us: self.created_us(n), path, company, accounts, page_ids, app_ids, disapproval, change }
    }

    /// Every creation request at `now_us`, oldest first, as the agency
    /// `business_id` reads them.
    pub fn creation_requests(&self, business_id: &str, now_us: i64) -> Vec<CreationRequest> {
        (0..self.request_count(now_us)).map(|n| self.creation_request(&self.plan(n), business_id, now_us)).collect()
    }

    fn creation_request(&self, plan: &Plan, business_id: &str, now_us: i64) -> CreationRequest {
        let step_us = self.config.review_step_us;
        let step = plan.step_at(step_us, now_us);
        let status = plan.path[step];
        let id = ids::request_id(self.seed(), self.tenant_id, plan.index);
        let approved = request_approved(status);
        let ad_accounts: Vec<(String, String)> = if approved {
            plan.accounts.iter().enumerate().map(|(slot, (name, _))| (ids::account_id(self.seed(), self.tenant_id, plan.index, slot as u32), name.clone())).collect()
        } else {
            Vec::new()
        };
        let company = &plan.company;
        let mut fields = Map::new();
        let mut put = |key: &str, value: Value| {
            fields.insert(key.to_owned(), value);
        };
        put("id", id.clone().into());
        put("status", status.into());
        put("time_created", graph_time(plan.created_us).into());
        put("ad_accounts_currency", "USD".into());
        put("ad_accounts_info", plan.accounts.iter().map(|(name, zone)| json!({ "name": name, "timezone_id": zone.timezone_id(), "currency": "USD" })).collect());
        put("chinese_legal_entity_name", company.legal_name.clone().into());
        put("legal_entity_name_in_local_language", company.legal_name.clone().into());
        put("english_legal_entity_name", company.english_name.clone().into());
        put("address_in_chinese", company.address.clone().into());
        put("address_in_local_language", company.address.clone().into());
        put("address_in_english", company.address_in_english.clone());
        put("official_website_url", company.website.clone().into());
        put("business_registration_id", company.registration_id.clone().into());
        put("vertical", company.vertical.into());
        put("subvertical", company.subvertical.into());
        put("vertical_v2", company.vertical.into());
        put("subvertical_v2", company.subvertical.into());
        put("contact", company.contact.clone());
        put("promotable_page_ids", plan.page_ids.clone().into());
        put("promotable_urls", vec![company.website.clone()].into());
        put("promotable_app_ids", plan.app_ids.clone().into());
        put("business", json!({ "id": business_id, "name": format!("Business {business_id}") }));
        if review::disapproved_before(plan.path, step) {
            put("disapproval_reasons", json!([{ "reason": plan.disapproval.0, "note": plan.disapproval.1 }]));
        }
        if review::change_requested_before(plan.path, step) {
            put("request_change_reasons", json!([{ "field": plan.change.0, "reason": plan.change.1, "note": plan.change.2 }]));
        }
        if plan.path[..=step].contains(&"appeal_under_review") {
            put("appeal_reason", "We have corrected the information and ask for the request to be reviewed again.".into());
        }
        if approved {
            put("adaccounts", json!({ "data": ad_accounts.iter().map(|(account_id, name)| json!({ "id": format!("act_{account_id}"), "account_id": account_id, "name": name })).collect::<Vec<_>>() }));
        }
        CreationRequest {
            id,
            oe_request_id: ids::oe_request_id(self.seed(), self.tenant_id, plan.index),
            status: status.to_owned(),
            time_created_us: plan.created_us,
            time_updated_us: plan.created_us + step as i64 * step_us,
            legal_entity_name: company.legal_name.clone(),
            ad_accounts,
            fields,
        }
    }

    /// The ad account `account_id` at `now_us`, if it exists then and is this tenant's.
    pub fn account(&self, account_id: &str, now_us: i64) -> Option<AccountProfile> {
        let (tenant_id, n, slot) = ids::parse_account_id(self.seed(), account_id)?;
        if tenant_id != self.tenant_id || n >= self.request_count(now_us) {
            return None;
        }
        let plan = self.plan(n);
        let approved_at_us = plan.approved_at_us(self.config.review_step_us).filter(|at| *at <= now_us)?;
        ((slot as usize) < plan.accounts.len()).then(|| self.profile(&plan, slot, approved_at_us))
    }

    /// Every ad account at `now_us`, by request and then as requested.
    pub fn accounts(&self, now_us: i64) -> Vec<AccountProfile> {
        let mut accounts = Vec::new();
        for n in 0..self.request_count(now_us) {
            let plan = self.plan(n);
            if let Some(approved_at_us) = plan.approved_at_us(self.config.review_step_us).filter(|at| *at <= now_us) {
                accounts.extend((0..plan.accounts.len() as u32).map(|slot| self.profile(&plan, slot, approved_at_us)));
            }
        }
        accounts
    }

    fn profile(&self, plan: &Plan, slot: u32, created_us: i64) -> AccountProfile {
        let account_id = ids::account_id(self.seed(), self.tenant_id, plan.index, slot);
        let key = mix((self.tenant_id as u64) << 22 | u64::from(plan.index) << 2 | u64::from(slot));
        let mut draw = Draw::new(self.seed(), &[about::ACCOUNT, key]);
        let base_cents_per_day = draw.between(self.config.daily_spend_cents_min, self.config.daily_spend_cents_max);
        let disabled = draw.chance(self.config.disabled_per_mille).then(|| {
            let after_us = draw.between(DAY_US, 45 * DAY_US);
            let reasons: Vec<u32> = DISABLE_REASONS.iter().map(|(_, w)| *w).collect();
            (created_us + after_us, DISABLE_REASONS[draw.weighted(&reasons)].0)
        });
        let funnel = Funnel::draw(self.seed(), key, &mut draw);
        let (name, zone) = plan.accounts[slot as usize].clone();
        AccountProfile {
            request_id: ids::request_id(self.seed(), self.tenant_id, plan.index),
            account_id,
            name,
            legal_entity_name: plan.company.legal_name.clone(),
            disabled,
            spender: Spender::new(self.seed(), key, zone, created_us, disabled.map(|(at, _)| at), base_cents_per_day),
            funnel,
            seed: self.seed(),
            key,
        }
    }

    /// The pixels the tenant's sandbox owns.
    pub fn pixels(&self) -> Vec<Pixel> {
        let offset = Draw::new(self.seed(), &[about::PIXEL, self.tenant_id as u64]).below(names::PIXEL_NAMES.len() as u64) as usize;
        (0..self.config.pixels_per_tenant)
            .map(|index| {
                let name = names::PIXEL_NAMES[(offset + index as usize) % names::PIXEL_NAMES.len()];
                let name = if (index as usize) < names::PIXEL_NAMES.len() { name.to_owned() } else { format!("{name} 2") };
                Pixel { id: ids::pixel_id(self.seed(), self.tenant_id, index), name }
            })
            .collect()
    }

    /// One of the tenant's pixels, by id.
    pub fn pixel(&self, pixel_id: &str) -> Option<Pixel> {
        let (tenant_id, index) = ids::parse_pixel_id(self.seed(), pixel_id)?;
        (tenant_id == self.tenant_id && index < self.config.pixels_per_tenant).then(|| self.pixels().swap_remove(index as usize))
    }
}

/// One ad account: everything drawn about it.
#[derive(Debug, Clone)]
pub struct AccountProfile {
    pub account_id: String,
    pub name: String,
    /// Meta's id of the creation request that issued it.
    pub request_id: String,
    pub legal_entity_name: String,
    /// When it was disabled (in the future, possibly) and Meta's `disable_reason`.
    pub disabled: Option<(i64, i64)>,
    spender: Spender,
    funnel: Funnel,
    seed: u64,
    key: u64,
}

impl AccountProfile {
    /// When its request was approved.
    pub fn created_us(&self) -> i64 {
        self.spender.created_us
    }

    pub fn zone(&self) -> Zone {
        self.spender.zone
    }

    /// Its average daily spend rate, in cents.
    pub fn daily_spend_cents(&self) -> i64 {
        self.spender.base_cents_per_day
    }

    /// Its first segment, before any write: one cent of cap from its creation.
    pub fn first_segment(&self) -> Segment {
        self.spender.first_segment()
    }

    /// Meta's `account_status` and `disable_reason` at `now_us`.
    pub fn status_at(&self, now_us: i64) -> (i64, i64) {
        match self.disabled {
            Some((at_us, reason)) if at_us <= now_us => (account_status::DISABLED, reason),
            _ => (account_status::ACTIVE, 0),
        }
    }

    /// What it has spent at `at_us` in `segment` (the segment in force then).
    pub fn spent_at(&self, segment: &Segment, at_us: i64) -> Spent {
        let accrual = self.spender.accrual(self.zone().local_day(at_us.max(segment.at_us)));
        self.spender.spent_at(&accrual, segment, at_us)
    }

    /// The account as Graph's `GET /act_{id}` reads it at `now_us`, in `segment`.
    pub fn ad_account(&self, segment: &Segment, agency_business_id: &str, now_us: i64) -> AdAccount {
        let spent = self.spent_at(segment, now_us);
        let (status, disable_reason) = self.status_at(now_us);
        let zone = self.zone();
        let fields = json!({
            "id": format!("act_{}", self.account_id),
            "account_id": self.account_id,
            "name": self.name,
            "account_status": status,
            "disable_reason": disable_reason,
            "currency": "USD",
            "spend_cap": segment.cap_cents.to_string(),
            "amount_spent": spent.amount_spent_cents.to_string(),
            "balance": "0",
            "created_time": graph_time(self.created_us()),
            "timezone_id": zone.timezone_id(),
            "timezone_name": zone.name(),
            "business": { "id": agency_business_id, "name": format!("Business {agency_business_id}") },
            "owner": agency_business_id,
        });
        AdAccount {
            account_id: self.account_id.clone(),
            name: self.name.clone(),
            account_status: status,
            disable_reason,
            currency: "USD".to_owned(),
            spend_cap_cents: segment.cap_cents,
            amount_spent_cents: spent.amount_spent_cents,
            created_time_us: self.created_us(),
            timezone_id: zone.timezone_id(),
            fields: match fields {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }

    /// The segment a cap of `cap_cents` set at `now_us` starts, or `None`
    /// when the cap is the one in force. Refused, as Meta refuses, for a cap
    /// not above 0 (the sandbox never has "no cap") or past
    /// [`SPEND_CAP_CENTS_MAX`], for a disabled account, and for a cap below
    /// what was spent already. A write never goes back in time: it applies
    /// at `now_us` or at the segment's instant, whichever is later.
    pub fn set_spend_cap(&self, segment: &Segment, cap_cents: i64, now_us: i64) -> PlatformResult<Option<Segment>> {
        if !(1..=SPEND_CAP_CENTS_MAX).contains(&cap_cents) {
            return Err(invalid(format_args!("spend_cap must be between 0.01 and {}", insights::dollars(SPEND_CAP_CENTS_MAX))));
        }
        if self.status_at(now_us).0 != account_status::ACTIVE {
            return Err(invalid(format_args!("the ad account act_{} is disabled and its spend cap cannot be changed", self.account_id)));
        }
        let at_us = now_us.max(segment.at_us);
        let spent = self.spent_at(segment, at_us);
        if cap_cents < spent.amount_spent_cents {
            return Err(invalid(format_args!(
                "the spend cap ({} USD) cannot be lower than the amount already spent ({} USD)",
                insights::dollars(cap_cents),
                insights::dollars(spent.amount_spent_cents)
            )));
        }
        Ok((cap_cents != segment.cap_cents).then(|| self.next_segment(segment, at_us, cap_cents, spent.amount_spent_cents, spent.lifetime_spent_cents)))
    }

    /// The segment a reset at `now_us` starts: nothing spent, a cap of one cent.
    pub fn reset_spend_cap(&self, segment: &Segment, now_us: i64) -> Segment {
        let at_us = now_us.max(segment.at_us);
        let spent = self.spent_at(segment, at_us);
        self.next_segment(segment, at_us, RESET_SPEND_CAP_CENTS, 0, spent.lifetime_spent_cents)
    }

    fn next_segment(&self, segment: &Segment, at_us: i64, cap_cents: i64, amount_spent_cents: i64, lifetime_spent_cents: i64) -> Segment {
        Segment { seq: segment.seq + 1, at_us, local_day: self.zone().local_day(at_us), cap_cents, amount_spent_cents, lifetime_spent_cents }
    }

    /// The local days a window covers for this account at `now_us` (none
    /// before its creation or after today), or `None` when it covers none.
    pub fn insights_days(&self, window: &InsightsWindow, now_us: i64) -> Option<(i64, i64)> {
        let first = day_number(window.since).max(self.zone().local_day(self.created_us()));
        let last = day_number(window.until).min(self.zone().local_day(now_us));
        (first <= last).then_some((first, last))
    }

    /// Daily insights over `window` (days of the account's time zone) at
    /// `now_us`. `history` holds segments in order, at least the last one in
    /// force at the start of the window's first day and every later one that
    /// was last of its day; an empty history is the first segment alone.
    /// One row per day with spend (and per breakdown value with anything),
    /// as Graph leaves out the days without delivery.
    pub fn daily_insights(&self, history: &[Segment], window: &InsightsWindow, now_us: i64) -> PlatformResult<Vec<InsightsRow>> {
        if window.since > window.until {
            return Err(invalid("time_range's since must not be after its until"));
        }
        if let Some(breakdown) = window.breakdown.filter(|b| !insights::known_breakdown(b)) {
            return Err(invalid(format_args!("breakdowns {breakdown:?} is not supported")));
        }
        let zone = self.zone();
        let today = zone.local_day(now_us);
        let earliest = date_of_day(today).and_then(|d| d.checked_sub(INSIGHTS_MONTHS_BACK.months()).ok()).map_or(i64::MIN, day_number);
        if day_number(window.since) < earliest {
            return Err(PlatformError::Refused {
                code: TIME_RANGE_TOO_OLD,
                subcode: None,
                message: format!("The start date of the time range cannot be beyond {INSIGHTS_MONTHS_BACK} months from the current date"),
            });
        }
        let Some((first, last)) = self.insights_days(window, now_us) else { return Ok(Vec::new()) };
        let accrual = self.spender.accrual(last);
        let first_segment = self.first_segment();
        let mut segments = history.iter().peekable();
        let mut current = first_segment;
        // Lifetime spend at instants in increasing order.
        let mut lifetime_at = |at_us: i64| {
            while let Some(next) = segments.next_if(|s| s.at_us <= at_us) {
                current = *next;
            }
            self.spender.spent_at(&accrual, &current, at_us).lifetime_spent_cents
        };
        let mut rows = Vec::new();
        let mut before = lifetime_at(zone.day_start_us(first));
        for day in first..=last {
            let after = lifetime_at(zone.day_start_us(day + 1).min(now_us));
            let spend_cents = after - before;
            before = after;
            if spend_cents <= 0 {
                continue;
            }
            let Some(date) = date_of_day(day) else { continue };
            let total = self.funnel.day(day, spend_cents);
            let dated = |mut values: Map<String, Value>| {
                values.insert("date_start".into(), date.to_string().into());
                values.insert("date_stop".into(), date.to_string().into());
                InsightsRow { day: date, values }
            };
            match window.breakdown {
                None => rows.push(dated(insights::row_values(&total, window.total_postbacks))),
                Some(breakdown) => {
                    for split in insights::split(self.seed, self.key, breakdown, day, &total) {
                        let mut values = insights::row_values(&split.metrics, window.total_postbacks);
                        for (column, value) in split.columns {
                            values.insert(column.into(), value.into());
                        }
                        rows.push(dated(values));
                    }
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests;
