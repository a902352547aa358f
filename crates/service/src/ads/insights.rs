//! Insights of ad accounts: synced daily rows, and queries over them.
//!
//! The sync job calls [`Services::sync_ad_insights`] for each account: it
//! reads the account's daily insights from the ad platform (as a whole, with
//! `total_postbacks` in a call of its own as Meta requires, and by each
//! synced breakdown) and replaces the stored days of the window with them.
//! `account_insights` and `account_insights_breakdowns` are then answered by
//! [`Services::ad_insights`] and [`Services::ad_insights_breakdowns`] from the
//! stored rows alone (`subledger_domain::insights` computes the answer), so
//! they keep working, as fresh as the last sync, while Meta is slow or down.

use std::collections::HashMap;

use jiff::civil::Date;
use serde_json::{Map, Value};
use subledger_ads::{AdPlatform, InsightsRow, InsightsWindow, PlatformError, Scope};
use subledger_domain::calendar::Day;
use subledger_domain::ids::TenantId;
use subledger_domain::insights::{self, AccountFacts, Breakdown, BreakdownsQuery, DailyMetrics, DailyRow, FieldSet, InsightsQuery, TimeIncrement, TimeRange};
use subledger_storage::StorageError;
use subledger_storage::ad_insights::{self as stored, AccountDetails, DaysRead, InsightsKey};

use crate::tenants::Tenant;
use crate::{Resource, ServiceError, ServiceResult, Services, now_us};

/// The longest window one sync may be asked for: Meta keeps 37 months.
pub const SYNC_DAYS_MAX: i64 = 1_131;

/// A sync reads and writes this many days at a time: what one step holds in
/// memory, and how long it holds the write lock, stay bounded whatever the
/// window (a month of an account's regions is some thousands of rows).
pub const SYNC_STEP_DAYS: u8 = 31;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedInsights {
    pub since: Day,
    pub until: Day,
    /// Upstream calls made.
    pub calls: u32,
    /// Daily rows stored (of the account as a whole and of every breakdown).
    pub rows: u64,
}

/// Why a sync stopped. The windows already written stay written: each
/// (step, breakdown) is replaced in a transaction of its own, so a stored
/// window is always one answer of the platform, whole.
#[derive(Debug, thiserror::Error)]
pub enum InsightsSyncError {
    /// The platform did not answer, refused, or answered what cannot be read
    /// (then `Malformed`, naming the value).
    #[error(transparent)]
    Platform(PlatformError),
    /// The window asked for is invalid, or storing failed.
    #[error(transparent)]
    Service(ServiceError),
}

impl From<PlatformError> for InsightsSyncError {
    fn from(error: PlatformError) -> Self {
        InsightsSyncError::Platform(error)
    }
}

impl From<ServiceError> for InsightsSyncError {
    fn from(error: ServiceError) -> Self {
        InsightsSyncError::Service(error)
    }
}

impl From<StorageError> for InsightsSyncError {
    fn from(error: StorageError) -> Self {
        InsightsSyncError::Service(error.into())
    }
}

/// The tenant's day now: what `date_preset` and the 37-month rule of an
/// insights query count from (`InsightsQuery::parse`).
pub fn insights_today(tenant: &Tenant) -> Day {
    tenant.timezone.day_of(jiff::Timestamp::now())
}

impl Services {
    /// Reads the account's daily insights (plain and each synced breakdown,
    /// plus total_postbacks) for `since..=until` from the platform and
    /// stores them, replacing what was stored for those days. Called by the
    /// sync job, for an account of the tenant; calls run one after another
    /// (the job syncs accounts side by side if it wants more at once).
    pub async fn sync_ad_insights<P: AdPlatform>(&self, platform: &P, scope: &Scope, tenant: &Tenant, account_id: &str, since: Date, until: Date) -> Result<SyncedInsights, InsightsSyncError> {
        let (since, until) = (Day(since), Day(until));
        let window = TimeRange::new(since, until).ok_or_else(|| ServiceError::Invalid { field: "until", reason: format!("{since} is after {until}") })?;
        if window.days() > SYNC_DAYS_MAX {
            return Err(ServiceError::Invalid { field: "until", reason: format!("a sync reads at most {SYNC_DAYS_MAX} days, {since} to {until} is {}", window.days()) }.into());
        }
        let mut synced = SyncedInsights { since, until, calls: 0, rows: 0 };
        for step in window.windows(TimeIncrement::Days(SYNC_STEP_DAYS)) {
            let step = TimeRange::new(step.start, step.stop).expect("a window runs forwards");
            let stepped = self.sync_step(platform, scope, tenant, account_id, step, &mut synced).await;
            // Rows changed: this process's answers are computed again (other processes see the
            // tenant's new sync instant when the sync ends).
            self.ads.answers.forget_tenant(tenant.id);
            stepped?;
        }
        Ok(synced)
    }

    async fn sync_step<P: AdPlatform>(&self, platform: &P, scope: &Scope, tenant: &Tenant, account_id: &str, step: TimeRange, synced: &mut SyncedInsights) -> Result<(), InsightsSyncError> {
        let read = |breakdown: Option<Breakdown>, total_postbacks: bool| {
            let window = InsightsWindow { since: step.since().0, until: step.until().0, breakdown: breakdown.map(Breakdown::key), total_postbacks };
            async move { platform.daily_insights(scope, account_id, &window).await }
        };
        // The account as a whole: its metrics, and total_postbacks asked alone.
        let mut days = daily_rows(&read(None, false).await?, None, step)?;
        let postbacks = read(None, true).await?;
        synced.calls += 2;
        for reported in &postbacks {
            let day = Day(reported.day);
            let total_postbacks = DailyMetrics::from_graph(&reported.values).map_err(malformed)?.total_postbacks;
            match days.iter_mut().find(|row| row.day == day) {
                Some(row) => row.metrics.total_postbacks = total_postbacks,
                None if step.contains(day) => days.push(DailyRow { day, breakdown_values: Vec::new(), metrics: DailyMetrics { total_postbacks, ..DailyMetrics::default() } }),
                None => return Err(outside(day, step)),
            }
        }
        synced.rows += self.store_window(&InsightsKey { tenant: tenant.id, account_id, breakdown: None }, step, &days).await?;
        for breakdown in Breakdown::all() {
            let days = daily_rows(&read(Some(breakdown), false).await?, Some(breakdown), step)?;
            synced.calls += 1;
            synced.rows += self.store_window(&InsightsKey { tenant: tenant.id, account_id, breakdown: Some(breakdown) }, step, &days).await?;
        }
        Ok(())
    }

    /// Replaces the stored days of `key` over `step` with `days`, in one transaction.
    async fn store_window(&self, key: &InsightsKey<'_>, step: TimeRange, days: &[DailyRow]) -> ServiceResult<u64> {
        let mut tx = self.store.begin_write().await?;
        stored::replace_days(&mut tx, key, step.since(), step.until(), days, now_us()).await?;
        tx.commit().await?;
        Ok(days.len() as u64)
    }

    /// The answer of `account_insights`, computed from the stored rows.
    /// An account of another tenant is not found.
    pub async fn ad_insights(&self, tenant: &Tenant, account_id: &str, query: &InsightsQuery) -> ServiceResult<Vec<Map<String, Value>>> {
        // The rows are keyed by account id alone: the account must be the tenant's (else not found, like an unknown one).
        self.ad_account(tenant, account_id).await?;
        let version = self.insights_version(tenant).await?;
        let cached = (tenant.id, format!("{account_id}:{query:?}"));
        if let Some(answer) = self.ads.answers.answer(&cached, version) {
            return Ok(answer);
        }
        let answer = self.compute_ad_insights(tenant, account_id, query).await?;
        self.ads.answers.remember(cached, version, &answer);
        Ok(answer)
    }

    async fn compute_ad_insights(&self, tenant: &Tenant, account_id: &str, query: &InsightsQuery) -> ServiceResult<Vec<Map<String, Value>>> {
        let key = InsightsKey { tenant: tenant.id, account_id, breakdown: None };
        // Without lists, the database adds up the days of each window when windows are months or the range.
        let how = match (query.needs_action_lists(), query.increment()) {
            (true, _) => DaysRead::Daily,
            (false, TimeIncrement::AllDays) => DaysRead::SummedOverRange,
            (false, TimeIncrement::Monthly) => DaysRead::SummedPerMonth,
            (false, TimeIncrement::Days(_)) => DaysRead::DailyWithoutLists,
        };
        let days = stored::read_days(&self.store, &key, query.range().since(), query.range().until(), how).await?;
        let details = self.insights_account_details(tenant, account_id, query.fields()).await?;
        Ok(insights::insights_rows(query, &facts(account_id, details.as_ref()), &days)?)
    }

    /// The answer of `account_insights_breakdowns`, computed from the stored
    /// rows. An account of another tenant is not found.
    pub async fn ad_insights_breakdowns(&self, tenant: &Tenant, account_id: &str, query: &BreakdownsQuery) -> ServiceResult<Vec<Map<String, Value>>> {
        self.ad_account(tenant, account_id).await?;
        let version = self.insights_version(tenant).await?;
        let cached = (tenant.id, format!("{account_id}:{query:?}"));
        if let Some(answer) = self.ads.answers.answer(&cached, version) {
            return Ok(answer);
        }
        let answer = self.compute_ad_insights_breakdowns(tenant, account_id, query).await?;
        self.ads.answers.remember(cached, version, &answer);
        Ok(answer)
    }

    async fn compute_ad_insights_breakdowns(&self, tenant: &Tenant, account_id: &str, query: &BreakdownsQuery) -> ServiceResult<Vec<Map<String, Value>>> {
        let key = InsightsKey { tenant: tenant.id, account_id, breakdown: Some(query.breakdown()) };
        let how = if query.needs_action_lists() { DaysRead::Daily } else { DaysRead::SummedOverRange };
        let days = stored::read_days(&self.store, &key, query.range().since(), query.range().until(), how).await?;
        let details = self.insights_account_details(tenant, account_id, query.fields()).await?;
        Ok(insights::breakdown_rows(query, &facts(account_id, details.as_ref()), &days)?)
    }

    /// The account's name and currency, read only when the fields ask for them.
    async fn insights_account_details(&self, tenant: &Tenant, account_id: &str, fields: FieldSet) -> ServiceResult<Option<AccountDetails>> {
        if !fields.needs_account_details() {
            return Ok(None);
        }
        Ok(Some(stored::account_details(&self.store, tenant.id, account_id).await?.ok_or(ServiceError::NotFound(Resource::AdAccount))?))
    }
}

fn facts<'a>(account_id: &'a str, details: Option<&'a AccountDetails>) -> AccountFacts<'a> {
    AccountFacts { account_id, name: details.map(|d| d.name.as_str()), currency: details.map(|d| d.currency.as_str()) }
}

/// The platform's rows of one call as daily rows: each day within the step,
/// each (day, breakdown value) once.
fn daily_rows(reported: &[InsightsRow], breakdown: Option<Breakdown>, step: TimeRange) -> Result<Vec<DailyRow>, InsightsSyncError> {
    let mut rows: Vec<DailyRow> = Vec::with_capacity(reported.len());
    for row in reported {
        let day = Day(row.day);
        if !step.contains(day) {
            return Err(outside(day, step));
        }
        rows.push(DailyRow::from_graph(day, breakdown, &row.values).map_err(malformed)?);
    }
    rows.sort_unstable_by(|a, b| (a.day, &a.breakdown_values).cmp(&(b.day, &b.breakdown_values)));
    if let Some(twice) = rows.windows(2).find(|pair| (pair[0].day, &pair[0].breakdown_values) == (pair[1].day, &pair[1].breakdown_values)) {
        return Err(PlatformError::Malformed(format!("insights of {} {:?} reported twice", twice[0].day, twice[0].breakdown_values)).into());
    }
    Ok(rows)
}

fn malformed(error: insights::GraphValueError) -> InsightsSyncError {
    PlatformError::Malformed(error.to_string()).into()
}

fn outside(day: Day, step: TimeRange) -> InsightsSyncError {
    PlatformError::Malformed(format!("insights of {day} answered for {} to {}", step.since(), step.until())).into()
}

#[cfg(test)]
mod tests {
    //! The sync's plumbing, against a platform made here that serves fixed
    //! rows: what reaches storage, and what the queries answer from it. The
    //! real platforms are tested end to end elsewhere.

    use std::sync::Mutex;

    use prometheus_client::registry::Registry;
    use serde_json::json;
    use subledger_ads::{AdAccount, Business, CreationRequest, Pixel, PlatformResult};
    use subledger_domain::account::TenantName;
    use subledger_domain::calendar::TenantTimeZone;
    use subledger_domain::insights::{BreakdownsParams, InsightsParams, parse_day};
    use subledger_domain::oplog::Actor;
    use subledger_storage::{Store, StoreOptions};

    use super::*;
    use crate::{Change, ServiceConfig};

    type Serve = dyn Fn(&InsightsWindow) -> PlatformResult<Vec<InsightsRow>> + Send + Sync;

    /// Serves `daily_insights` with `serve`, and records every window asked.
    struct FixedPlatform {
        serve: Box<Serve>,
        asked: Mutex<Vec<InsightsWindow>>,
    }

    impl FixedPlatform {
        fn new(serve: impl Fn(&InsightsWindow) -> PlatformResult<Vec<InsightsRow>> + Send + Sync + 'static) -> FixedPlatform {
            FixedPlatform { serve: Box::new(serve), asked: Mutex::new(Vec::new()) }
        }
    }

    fn unused<T>() -> PlatformResult<T> {
        Err(PlatformError::Unavailable("not served by the insights test platform".to_owned()))
    }

    impl AdPlatform for FixedPlatform {
        async fn creation_requests(&self, _: &Scope) -> PlatformResult<Vec<CreationRequest>> {
            unused()
        }
        async fn ad_accounts(&self, _: &Scope) -> PlatformResult<Vec<AdAccount>> {
            unused()
        }
        async fn ad_account(&self, _: &Scope, _: &str) -> PlatformResult<AdAccount> {
            unused()
        }
        async fn set_spend_cap(&self, _: &Scope, _: &str, _: i64) -> PlatformResult<()> {
            unused()
        }
        async fn reset_spend_cap(&self, _: &Scope, _: &str) -> PlatformResult<()> {
            unused()
        }
        async fn businesses(&self, _: &Scope, _: &str) -> PlatformResult<Vec<Business>> {
            unused()
        }
        async fn bind_business(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> {
            unused()
        }
        async fn unbind_business(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> {
            unused()
        }
        async fn pixels(&self, _: &Scope, _: &str) -> PlatformResult<Vec<Pixel>> {
            unused()
        }
        async fn bind_pixel(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> {
            unused()
        }
        async fn unbind_pixel(&self, _: &Scope, _: &str, _: &str) -> PlatformResult<()> {
            unused()
        }
        async fn daily_insights(&self, _: &Scope, account_id: &str, window: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> {
            assert_eq!(account_id, ACCOUNT);
            self.asked.lock().unwrap().push(window.clone());
            (self.serve)(window)
        }
    }

    const ACCOUNT: &str = "1001";

    fn day(text: &str) -> Day {
        parse_day(text).unwrap()
    }

    fn date(text: &str) -> Date {
        day(text).0
    }

    fn days(window: &InsightsWindow) -> impl Iterator<Item = Date> {
        std::iter::successors(Some(window.since), |d| d.tomorrow().ok()).take_while(|d| *d <= window.until)
    }

    fn graph_row(on: Date, values: Value) -> InsightsRow {
        InsightsRow { day: on, values: values.as_object().unwrap().clone() }
    }

    /// Every day: $N.25 spent on the Nth of the month, 3 postbacks; by
    /// country US (three quarters of it) and DE; by age and gender one row;
    /// one row for each other breakdown.
    fn steady(window: &InsightsWindow) -> PlatformResult<Vec<InsightsRow>> {
        let rows = days(window).flat_map(|on| {
            let cents = i64::from(on.day()) * 100 + 25;
            let values = |cents: i64| json!({"spend": format!("{}.{:02}", cents / 100, cents % 100), "impressions": "1000", "clicks": "10", "reach": "800", "date_start": on.to_string(), "date_stop": on.to_string()});
            let mut rows = Vec::new();
            match (window.breakdown, window.total_postbacks) {
                (None, true) => rows.push(graph_row(on, json!({"total_postbacks": "3"}))),
                (None, false) => {
                    let mut all = values(cents);
                    all["actions"] = json!([{"action_type": "link_click", "value": "4"}]);
                    rows.push(graph_row(on, all));
                }
                (Some("country"), _) => {
                    for (country, share) in [("US", cents * 3 / 4), ("DE", cents - cents * 3 / 4)] {
                        let mut row = values(share);
                        row["country"] = json!(country);
                        rows.push(graph_row(on, row));
                    }
                }
                (Some("age,gender"), _) => {
                    let mut row = values(cents);
                    row["age"] = json!("25-34");
                    row["gender"] = json!("female");
                    rows.push(graph_row(on, row));
                }
                (Some(other), _) => {
                    let mut row = values(cents);
                    row[other] = json!("all");
                    rows.push(graph_row(on, row));
                }
            }
            rows
        });
        Ok(rows.collect())
    }

    struct Setup {
        services: Services,
        tenant: Tenant,
        scope: Scope,
        _db: crate::ads::test_db::TempDb,
    }

    /// A tenant with the ad account `ACCOUNT` synced (its name and currency; its rows come from each test's sync).
    async fn setup() -> Setup {
        let db = crate::ads::test_db::TempDb::new("insights");
        let store = Store::open(&db.url, &StoreOptions::default()).await.unwrap();
        let (services, _worker) = Services::start(store, ServiceConfig::default(), &mut Registry::default());
        let created = services.create_tenant(TenantName::parse("agency").unwrap(), TenantTimeZone::parse("UTC").unwrap(), &Change::by(Actor::Cli)).await.unwrap();
        let account = subledger_storage::ads::SyncedAdAccount {
            tenant: created.tenant.id,
            id: ACCOUNT,
            name: "Spring Sale",
            request_id: None,
            company_name: "",
            meta_status: 1,
            disable_reason: 0,
            currency: "USD",
            created_time_us: 0,
            fields: "{}",
            synced_at_us: 0,
        };
        let mut tx = services.store.begin_write().await.unwrap();
        subledger_storage::ads::upsert_account(&mut tx, &account).await.unwrap();
        tx.commit().await.unwrap();
        let scope = Scope { tenant_id: created.tenant.id.0, business_id: "bm".to_owned(), access_token: String::new() };
        Setup { services, tenant: created.tenant, scope, _db: db }
    }

    fn insights_query(params: Value) -> InsightsQuery {
        InsightsQuery::parse(&InsightsParams::of(&params), day("2024-06-30")).unwrap()
    }

    fn breakdowns_query(params: Value) -> BreakdownsQuery {
        BreakdownsQuery::parse(&BreakdownsParams::of(&params), day("2024-06-30")).unwrap()
    }

    #[test]
    fn the_domain_knows_the_breakdowns_the_connector_syncs() {
        assert_eq!(insights::SYNCED_BREAKDOWNS, subledger_ads::SYNCED_BREAKDOWNS);
    }

    #[tokio::test]
    async fn a_sync_stores_every_breakdown_and_queries_answer_from_it() {
        let s = setup().await;
        let platform = FixedPlatform::new(steady);
        // 52 days: a step of 31 days, then one of 21; 8 rows a day (the account, 2 countries, 5 other breakdowns).
        let synced = s.services.sync_ad_insights(&platform, &s.scope, &s.tenant, ACCOUNT, date("2024-04-20"), date("2024-06-10")).await.unwrap();
        assert_eq!(synced, SyncedInsights { since: day("2024-04-20"), until: day("2024-06-10"), calls: 16, rows: 52 * 8 });
        let asked = platform.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 16);
        assert_eq!((asked[0].since.to_string(), asked[0].until.to_string(), asked[0].breakdown, asked[0].total_postbacks), ("2024-04-20".to_owned(), "2024-05-20".to_owned(), None, false));
        assert!(asked[1].total_postbacks && asked[1].breakdown.is_none());
        let breakdowns: Vec<&str> = asked[2..8].iter().map(|w| w.breakdown.unwrap()).collect();
        assert_eq!(breakdowns, subledger_ads::SYNCED_BREAKDOWNS);
        assert_eq!((asked[8].since.to_string(), asked[8].until.to_string()), ("2024-05-21".to_owned(), "2024-06-10".to_owned()));

        // May as a whole: 31 days of $N.25, N = 1..=31; 3 postbacks a day; 4 link clicks a day.
        let may = json!({"since": "2024-05-01", "until": "2024-05-31"});
        let rows = s.services.ad_insights(&s.tenant, ACCOUNT, &insights_query(json!({"fields": ["spend", "impressions", "actions", "account_id"], "time_range": may}))).await.unwrap();
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"date_start": "2024-05-01", "date_stop": "2024-05-31", "account_id": ACCOUNT, "spend": "503.75", "impressions": "31000", "actions": [{"action_type": "link_click", "value": "124"}]})
        );
        let rows = s.services.ad_insights(&s.tenant, ACCOUNT, &insights_query(json!({"fields": ["total_postbacks"], "time_range": may}))).await.unwrap();
        assert_eq!(rows[0]["total_postbacks"], json!("93"));
        let rows = s
            .services
            .ad_insights(&s.tenant, ACCOUNT, &insights_query(json!({"fields": ["spend"], "time_range": {"since": "2024-04-01", "until": "2024-06-30"}, "time_increment": "monthly"})))
            .await
            .unwrap();
        let months: Vec<String> = rows.iter().map(|r| format!("{} {}", r["date_start"].as_str().unwrap(), r["spend"].as_str().unwrap())).collect();
        // April from the 20th (20..=30), May, June to the 10th (1..=10).
        assert_eq!(months, ["2024-04-01 277.75", "2024-05-01 503.75", "2024-06-01 57.50"]);

        let query = breakdowns_query(json!({"fields": ["spend"], "time_range": may, "breakdowns": "country", "sort": "spend_descending", "limit": 1}));
        let rows = s.services.ad_insights_breakdowns(&s.tenant, ACCOUNT, &query).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["country"], json!("US"));
        let query = breakdowns_query(json!({"fields": ["clicks"], "time_range": may, "breakdowns": "gender,age"}));
        let rows = s.services.ad_insights_breakdowns(&s.tenant, ACCOUNT, &query).await.unwrap();
        assert_eq!(Value::Object(rows[0].clone()), json!({"age": "25-34", "gender": "female", "clicks": "310", "date_start": "2024-05-01", "date_stop": "2024-05-31"}));

        // The name and currency come from the synced account; an account that is not the tenant's is not found.
        let named = insights_query(json!({"fields": ["account_name", "account_currency"], "time_range": may}));
        let rows = s.services.ad_insights(&s.tenant, ACCOUNT, &named).await.unwrap();
        assert_eq!((rows[0]["account_name"].clone(), rows[0]["account_currency"].clone()), (json!("Spring Sale"), json!("USD")));
        assert!(matches!(s.services.ad_insights(&s.tenant, "999", &named).await, Err(ServiceError::NotFound(Resource::AdAccount))));
    }

    #[tokio::test]
    async fn a_later_sync_replaces_the_days_it_reads() {
        let s = setup().await;
        s.services.sync_ad_insights(&FixedPlatform::new(steady), &s.scope, &s.tenant, ACCOUNT, date("2024-05-01"), date("2024-05-10")).await.unwrap();
        let daily = insights_query(json!({"fields": ["spend"], "time_range": {"since": "2024-05-01", "until": "2024-05-10"}, "time_increment": 1}));
        assert_eq!(s.services.ad_insights(&s.tenant, ACCOUNT, &daily).await.unwrap().len(), 10, "read (and remembered) before the next sync");
        // Meta now reports only the 5th (restated), and nothing by breakdown.
        let restated = FixedPlatform::new(|window| {
            Ok(match (window.breakdown, window.total_postbacks) {
                (None, false) => vec![graph_row(Date::constant(2024, 5, 5), json!({"spend": "1.00"}))],
                _ => Vec::new(),
            })
        });
        let synced = s.services.sync_ad_insights(&restated, &s.scope, &s.tenant, ACCOUNT, date("2024-05-04"), date("2024-05-06")).await.unwrap();
        assert_eq!(synced.rows, 1);
        let rows =
            s.services.ad_insights(&s.tenant, ACCOUNT, &insights_query(json!({"fields": ["spend"], "time_range": {"since": "2024-05-01", "until": "2024-05-10"}, "time_increment": 1}))).await.unwrap();
        let seen: Vec<String> = rows.iter().map(|r| format!("{} {}", r["date_start"].as_str().unwrap(), r["spend"].as_str().unwrap())).collect();
        assert_eq!(seen, ["2024-05-01 1.25", "2024-05-02 2.25", "2024-05-03 3.25", "2024-05-05 1.00", "2024-05-07 7.25", "2024-05-08 8.25", "2024-05-09 9.25", "2024-05-10 10.25"]);
        let by_country = breakdowns_query(json!({"fields": ["spend"], "time_range": {"since": "2024-05-04", "until": "2024-05-06"}, "breakdowns": "country"}));
        assert!(s.services.ad_insights_breakdowns(&s.tenant, ACCOUNT, &by_country).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn what_the_platform_cannot_answer_stops_the_sync() {
        let s = setup().await;
        let sync = |platform: FixedPlatform| {
            let s = &s;
            async move { s.services.sync_ad_insights(&platform, &s.scope, &s.tenant, ACCOUNT, date("2024-05-01"), date("2024-05-03")).await }
        };
        assert!(matches!(sync(FixedPlatform::new(|_| Err(PlatformError::Timeout))).await, Err(InsightsSyncError::Platform(PlatformError::Timeout))));
        let one = |values: Value| move |_: &InsightsWindow| Ok(vec![graph_row(Date::constant(2024, 5, 1), values.clone())]);
        for bad in [json!({"spend": "abc"}), json!({"spend": "-1"}), json!({"actions": "x"})] {
            let error = sync(FixedPlatform::new(one(bad.clone()))).await.unwrap_err();
            assert!(matches!(&error, InsightsSyncError::Platform(PlatformError::Malformed(_))), "{bad}: {error:?}");
        }
        // A day outside the window asked, a day reported twice, a breakdown row without its column.
        let outside = FixedPlatform::new(|_| Ok(vec![graph_row(Date::constant(2024, 4, 30), json!({"spend": "1"}))]));
        assert!(matches!(sync(outside).await, Err(InsightsSyncError::Platform(PlatformError::Malformed(_)))));
        let twice = FixedPlatform::new(|_| Ok(vec![graph_row(Date::constant(2024, 5, 1), json!({"spend": "1"})), graph_row(Date::constant(2024, 5, 1), json!({"spend": "2"}))]));
        assert!(matches!(sync(twice).await, Err(InsightsSyncError::Platform(PlatformError::Malformed(_)))));
        let no_column = FixedPlatform::new(|w| Ok(if w.breakdown.is_some() { vec![graph_row(Date::constant(2024, 5, 1), json!({"spend": "1"}))] } else { Vec::new() }));
        assert!(matches!(sync(no_column).await, Err(InsightsSyncError::Platform(PlatformError::Malformed(_)))));
        // Windows that cannot be synced.
        let platform = FixedPlatform::new(steady);
        let backwards = s.services.sync_ad_insights(&platform, &s.scope, &s.tenant, ACCOUNT, date("2024-05-02"), date("2024-05-01")).await;
        assert!(matches!(backwards, Err(InsightsSyncError::Service(ServiceError::Invalid { .. }))));
        let too_long = s.services.sync_ad_insights(&platform, &s.scope, &s.tenant, ACCOUNT, date("2020-01-01"), date("2024-05-01")).await;
        assert!(matches!(too_long, Err(InsightsSyncError::Service(ServiceError::Invalid { .. }))));
        assert!(platform.asked.lock().unwrap().is_empty());
    }
}

/// Most insights answers kept; when full, the cache starts over.
pub const INSIGHTS_ANSWERS_MAX: usize = 10_000;
/// How long a process trusts the last sync instant it read of a tenant;
/// its own syncs drop it at once, another process's show within this.
const SYNC_VERSION_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Insights answers computed since the tenant's last sync: the stored rows
/// change only when a sync writes them, so an answer stays right until the
/// tenant's next sync (its `synced_at_us`, the version) — dashboards ask the
/// same questions again and again. Bounded; per process.
/// An answer's rows, and the tenant's sync instant they were computed at.
type Answer = (i64, Vec<Map<String, Value>>);

#[derive(Default)]
pub(crate) struct InsightsAnswers {
    answers: std::sync::Mutex<HashMap<(TenantId, String), Answer>>,
    versions: std::sync::Mutex<HashMap<TenantId, (std::time::Instant, i64)>>,
}

impl InsightsAnswers {
    fn answer(&self, key: &(TenantId, String), version: i64) -> Option<Vec<Map<String, Value>>> {
        let answers = self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        answers.get(key).filter(|(at, _)| *at == version).map(|(_, answer)| answer.clone())
    }

    fn remember(&self, key: (TenantId, String), version: i64, answer: &[Map<String, Value>]) {
        let mut answers = self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if answers.len() >= INSIGHTS_ANSWERS_MAX {
            answers.clear();
        }
        answers.insert(key, (version, answer.to_vec()));
    }

    /// The tenant's rows changed: its answers are computed again.
    pub(crate) fn forget_tenant(&self, tenant: TenantId) {
        self.answers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|(owner, _), _| *owner != tenant);
    }

    /// This process synced the tenant: its answers are read again.
    pub(crate) fn forget_version(&self, tenant: TenantId) {
        self.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&tenant);
    }
}

impl Services {
    /// The instant of the tenant's last sync, read at most once a second.
    async fn insights_version(&self, tenant: &Tenant) -> ServiceResult<i64> {
        let cached = self.ads.answers.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&tenant.id).copied();
        if let Some((read_at, version)) = cached
            && read_at.elapsed() < SYNC_VERSION_TTL
        {
            return Ok(version);
        }
        let version = subledger_storage::ads::connection(&self.store, tenant.id).await?.and_then(|c| c.synced_at_us).unwrap_or(0);
        self.ads.answers.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(tenant.id, (std::time::Instant::now(), version));
        Ok(version)
    }
}
