//! `GraphApi` against the fake Graph server over real HTTP: every trait
//! method, pagination, retries, deadlines, Meta's errors and rate limits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::civil::Date;
use serde_json::{Map, Value, json};
use subledger_ads::graph::{GraphApi, GraphConfig};
use subledger_ads::{AdPlatform, InsightsWindow, PlatformError, Scope};
use subledger_fake_graph::{AccountSeed, Control, FakeGraph, Relation, RequestSeed};

const TOKEN: &str = "EAAGsecretSystemUserToken0123456789";
const AGENCY: &str = "1001";
const OTHER_BUSINESS: &str = "1002";

fn scope() -> Scope {
    Scope { tenant_id: 7, business_id: AGENCY.to_owned(), access_token: TOKEN.to_owned() }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn account(id: &str, relation: Relation, spend_cap_cents: i64, amount_spent_cents: i64) -> Control {
    Control::AddAdAccount(AccountSeed {
        account_id: id.to_owned(),
        business_id: AGENCY.to_owned(),
        relation,
        name: format!("Account {id}"),
        spend_cap_cents,
        amount_spent_cents,
        ..AccountSeed::default()
    })
}

/// A fake with the agency, its token, five ad accounts (three client, two
/// owned), a creation request that issued three of them, a pixel, and a
/// GraphApi on pages of two.
async fn setup() -> (FakeGraph, GraphApi) {
    let fake = FakeGraph::start().await.unwrap();
    fake.seed([
        Control::AddBusiness { id: AGENCY.to_owned(), name: "Agency".to_owned() },
        Control::AddBusiness { id: OTHER_BUSINESS.to_owned(), name: "Client BM".to_owned() },
        Control::AddToken { token: TOKEN.to_owned(), business_id: AGENCY.to_owned() },
        account("2001", Relation::Client, 150_000, 2_599),
        account("2002", Relation::Client, 0, 0),
        account("2003", Relation::Client, 10_000, 0),
        account("2004", Relation::Owned, 5_000, 100),
        account("2005", Relation::Owned, 0, 0),
        Control::AddCreationRequest(RequestSeed {
            id: "9001".to_owned(),
            business_id: AGENCY.to_owned(),
            status: "APPROVED".to_owned(),
            time_created: "2024-05-01T10:00:00+0000".to_owned(),
            oe_request_id: Some("OE-1".to_owned()),
            ad_account_ids: vec!["2001".to_owned(), "2002".to_owned(), "2003".to_owned()],
            fields: object(json!({"legal_entity_name_in_local_language": "某某科技有限公司", "ad_accounts_info": [{"name": "A", "currency": "USD", "timezone_id": 1}], "vertical": "ECOMMERCE"})),
        }),
        Control::AddCreationRequest(RequestSeed {
            id: "9002".to_owned(),
            business_id: AGENCY.to_owned(),
            status: "PENDING".to_owned(),
            time_created: "2024-05-02T10:00:00+0000".to_owned(),
            ..RequestSeed::default()
        }),
        Control::AddPixel { id: "5001".to_owned(), name: "Shop pixel".to_owned(), business_id: AGENCY.to_owned() },
    ])
    .unwrap();
    let graph = GraphApi::new(config(&fake));
    (fake, graph)
}

fn config(fake: &FakeGraph) -> GraphConfig {
    GraphConfig {
        base_url: fake.base_url(),
        api_version: fake.api_version().to_owned(),
        call_timeout: Duration::from_secs(3),
        attempt_timeout: Duration::from_secs(1),
        max_retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        page_size: 2,
        ..GraphConfig::default()
    }
}

fn day(text: &str) -> Date {
    text.parse().unwrap()
}

#[tokio::test]
async fn creation_requests_and_ad_accounts_are_read_across_pages() {
    let (fake, graph) = setup().await;
    let requests = graph.creation_requests(&scope()).await.unwrap();
    assert_eq!(requests.len(), 2);
    let approved = &requests[0];
    assert_eq!((approved.id.as_str(), approved.oe_request_id.as_str(), approved.status.as_str()), ("9001", "OE-1", "approved"));
    assert_eq!(approved.legal_entity_name, "某某科技有限公司");
    assert_eq!(approved.time_created_us, 1_714_557_600_000_000);
    assert_eq!(approved.time_updated_us, approved.time_created_us);
    // Three issued accounts on pages of two: the expanded edge's second page was followed.
    let issued: Vec<&str> = approved.ad_accounts.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(issued, ["2001", "2002", "2003"]);
    assert_eq!(approved.ad_accounts[0].1, "Account 2001");
    assert_eq!(fake.calls("9001/adaccounts"), 1);
    assert_eq!(approved.fields["vertical"], "ECOMMERCE");
    assert_eq!(approved.fields["ad_accounts_info"][0]["currency"], "USD");
    let pending = &requests[1];
    assert_eq!((pending.oe_request_id.as_str(), pending.status.as_str(), pending.ad_accounts.len()), ("9002", "pending", 0));
    assert_eq!(fake.calls("1001/adaccountcreationrequests"), 1);

    let accounts = graph.ad_accounts(&scope()).await.unwrap();
    let ids: Vec<&str> = accounts.iter().map(|account| account.account_id.as_str()).collect();
    assert_eq!(ids, ["2001", "2002", "2003", "2004", "2005"]);
    // Three client accounts on pages of two, two owned ones on one page.
    assert_eq!(fake.calls("1001/client_ad_accounts"), 2);
    assert_eq!(fake.calls("1001/owned_ad_accounts"), 1);
    let first = &accounts[0];
    assert_eq!((first.spend_cap_cents, first.amount_spent_cents, first.account_status, first.currency.as_str()), (150_000, 2_599, 1, "USD"));
    assert_eq!(first.created_time_us, 1_714_557_600_000_000);
    assert_eq!(first.fields["amount_spent"], "2599");
    assert_eq!(accounts[3].fields["business"]["id"], AGENCY);

    // An owned account shared with its own business shows in both edges; it is listed once.
    graph.bind_business(&scope(), "2004", AGENCY).await.unwrap();
    let accounts = graph.ad_accounts(&scope()).await.unwrap();
    assert_eq!(accounts.iter().filter(|account| account.account_id == "2004").count(), 1);
    assert_eq!(accounts.len(), 5);
}

#[tokio::test]
async fn spend_caps_are_set_and_reset() {
    let (fake, graph) = setup().await;
    let account = graph.ad_account(&scope(), "2001").await.unwrap();
    assert_eq!((account.account_id.as_str(), account.name.as_str(), account.spend_cap_cents), ("2001", "Account 2001", 150_000));

    graph.set_spend_cap(&scope(), "2001", 250_075).await.unwrap();
    assert_eq!(fake.ad_account("2001").unwrap().spend_cap_cents, 250_075);
    assert_eq!(graph.ad_account(&scope(), "act_2001").await.unwrap().spend_cap_cents, 250_075);

    // Meta refuses a cap under what was spent, with its message.
    match graph.set_spend_cap(&scope(), "2001", 1_000).await {
        Err(PlatformError::Refused { code: 100, message, .. }) => assert!(message.contains("spend cap"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(graph.set_spend_cap(&scope(), "2001", -1).await, Err(PlatformError::Refused { code: 100, subcode: None, message: "a spend cap cannot be negative".to_owned() }));

    fake.apply(Control::ResetCalls).unwrap();
    graph.reset_spend_cap(&scope(), "2001").await.unwrap();
    let after = fake.ad_account("2001").unwrap();
    assert_eq!((after.amount_spent_cents, after.spend_cap_cents), (0, 1));
    // The reset, then the cap of $0.01.
    assert_eq!(fake.calls("act_2001"), 2);
}

#[tokio::test]
async fn businesses_and_pixels_are_bound_and_unbound() {
    let (fake, graph) = setup().await;
    assert_eq!(graph.businesses(&scope(), "2001").await.unwrap(), vec![]);
    graph.bind_business(&scope(), "2001", OTHER_BUSINESS).await.unwrap();
    assert_eq!(fake.agencies("2001"), BTreeMap::from([(OTHER_BUSINESS.to_owned(), vec!["ADVERTISE".to_owned(), "ANALYZE".to_owned()])]));
    let businesses = graph.businesses(&scope(), "2001").await.unwrap();
    assert_eq!(businesses.len(), 1);
    assert_eq!((businesses[0].id.as_str(), businesses[0].name.as_str()), (OTHER_BUSINESS, "Client BM"));
    assert_eq!(businesses[0].permitted_tasks, ["ADVERTISE", "ANALYZE"]);
    graph.unbind_business(&scope(), "2001", OTHER_BUSINESS).await.unwrap();
    assert!(fake.agencies("2001").is_empty());
    // Binding a business Meta does not know is refused.
    assert!(matches!(graph.bind_business(&scope(), "2001", "4040").await, Err(PlatformError::Refused { code: 100, .. })));

    assert_eq!(graph.pixels(&scope(), "2002").await.unwrap(), vec![]);
    graph.bind_pixel(&scope(), "2002", "5001").await.unwrap();
    assert_eq!(fake.pixel_accounts("5001"), ["2002"]);
    let pixels = graph.pixels(&scope(), "2002").await.unwrap();
    assert_eq!((pixels[0].id.as_str(), pixels[0].name.as_str()), ("5001", "Shop pixel"));
    graph.unbind_pixel(&scope(), "2002", "5001").await.unwrap();
    assert!(fake.pixel_accounts("5001").is_empty());
    assert_eq!(graph.bind_pixel(&scope(), "2002", "5999").await, Err(PlatformError::NotFound));
}

#[tokio::test]
async fn daily_insights_are_read_per_day_and_per_breakdown() {
    let (fake, graph) = setup().await;
    for (date, cents) in [("2024-05-01", 1_050), ("2024-05-02", 2_000), ("2024-05-03", 99), ("2024-05-09", 500)] {
        fake.apply(Control::AddSpend { account_id: "2001".to_owned(), day: date.to_owned(), cents }).unwrap();
    }
    fake.apply(Control::AddInsights {
        account_id: "2001".to_owned(),
        day: "2024-05-02".to_owned(),
        breakdown: Some("country".to_owned()),
        rows: vec![object(json!({"country": "US", "spend": "15.00", "impressions": "900"})), object(json!({"country": "CA", "spend": "5.00", "impressions": "100"}))],
    })
    .unwrap();
    fake.apply(Control::AddInsights {
        account_id: "2001".to_owned(),
        day: "2024-05-02".to_owned(),
        breakdown: None,
        rows: vec![object(json!({"spend": "20.00", "clicks": "12", "total_postbacks": "3"}))],
    })
    .unwrap();

    let window = InsightsWindow { since: day("2024-05-01"), until: day("2024-05-03"), breakdown: None, total_postbacks: false };
    let rows = graph.daily_insights(&scope(), "2001", &window).await.unwrap();
    let days: Vec<String> = rows.iter().map(|row| row.day.to_string()).collect();
    assert_eq!(days, ["2024-05-01", "2024-05-02", "2024-05-03"]);
    assert_eq!(rows[0].values["spend"], "10.50");
    assert_eq!(rows[1].values["clicks"], "12");
    assert!(!rows[1].values.contains_key("date_start") && !rows[1].values.contains_key("total_postbacks"));
    // Three rows on pages of two.
    assert_eq!(fake.calls("act_2001/insights"), 2);

    let by_country = graph.daily_insights(&scope(), "2001", &InsightsWindow { breakdown: Some("country"), ..window.clone() }).await.unwrap();
    let countries: Vec<(String, &Value)> = by_country.iter().map(|row| (row.day.to_string(), &row.values["country"])).collect();
    assert_eq!(countries, [("2024-05-02".to_owned(), &json!("US")), ("2024-05-02".to_owned(), &json!("CA"))]);
    assert_eq!(by_country[0].values["impressions"], "900");

    let postbacks = graph.daily_insights(&scope(), "2001", &InsightsWindow { total_postbacks: true, ..window }).await.unwrap();
    assert_eq!(postbacks.iter().filter_map(|row| row.values.get("total_postbacks")).collect::<Vec<_>>(), [&json!("3")]);
}

#[tokio::test]
async fn a_server_error_then_success_is_retried() {
    let (fake, graph) = setup().await;
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: Some(1), status: 500, error: None }).unwrap();
    graph.ad_account(&scope(), "2001").await.unwrap();
    assert_eq!(fake.calls("act_2001"), 2);

    // An absolute spend cap is idempotent: retried too.
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: Some(1), status: 503, error: None }).unwrap();
    graph.set_spend_cap(&scope(), "2001", 200_000).await.unwrap();
    assert_eq!(fake.calls("act_2001"), 4);
    assert_eq!(fake.ad_account("2001").unwrap().spend_cap_cents, 200_000);

    // Meta's own transient error is retried even for a reset.
    fake.apply(Control::ResetCalls).unwrap();
    fake.apply(Control::Fail {
        path: Some("act_2001".to_owned()),
        times: Some(1),
        status: 503,
        error: Some(json!({"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": true})),
    })
    .unwrap();
    graph.reset_spend_cap(&scope(), "2001").await.unwrap();
    assert_eq!(fake.calls("act_2001"), 3);
}

#[tokio::test]
async fn a_persistent_server_error_is_unavailable_after_the_retries() {
    let (fake, graph) = setup().await;
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: None, status: 502, error: None }).unwrap();
    assert_eq!(graph.ad_account(&scope(), "2001").await, Err(PlatformError::Unavailable("HTTP 502".to_owned())));
    // The first attempt and the two configured retries.
    assert_eq!(fake.calls("act_2001"), 3);

    // A reset is not repeated on a bare 5xx: Meta may have done it.
    fake.apply(Control::ResetCalls).unwrap();
    let error = graph.reset_spend_cap(&scope(), "2001").await.unwrap_err();
    assert_eq!(error, PlatformError::Unavailable("HTTP 502".to_owned()));
    assert!(error.outcome_unknown());
    assert_eq!(fake.calls("act_2001"), 1);
}

#[tokio::test]
async fn metas_errors_are_refusals_or_not_found() {
    let (fake, graph) = setup().await;
    let error = json!({"message": "(#200) Requires business_management permission to manage the object", "type": "OAuthException", "code": 200, "fbtrace_id": "Abc"});
    fake.apply(Control::Fail { path: Some("act_2001/agencies".to_owned()), times: Some(1), status: 403, error: Some(error) }).unwrap();
    assert_eq!(
        graph.bind_business(&scope(), "2001", OTHER_BUSINESS).await,
        Err(PlatformError::Refused { code: 200, subcode: None, message: "(#200) Requires business_management permission to manage the object".to_owned() })
    );
    assert_eq!(fake.calls("act_2001/agencies"), 1);

    // Code 100, subcode 33: an account Meta does not have, or one another business holds.
    assert_eq!(graph.ad_account(&scope(), "2999").await, Err(PlatformError::NotFound));
    fake.seed([Control::AddToken { token: "other-token".to_owned(), business_id: OTHER_BUSINESS.to_owned() }]).unwrap();
    let other = Scope { tenant_id: 8, business_id: OTHER_BUSINESS.to_owned(), access_token: "other-token".to_owned() };
    assert_eq!(graph.ad_account(&other, "2001").await, Err(PlatformError::NotFound));
    assert_eq!(graph.set_spend_cap(&other, "2001", 1).await, Err(PlatformError::NotFound));
    assert_eq!(graph.ad_accounts(&other).await.unwrap(), vec![]);
    // An id that is no Graph id is not sent at all.
    assert_eq!(graph.ad_account(&scope(), "2001/agencies").await, Err(PlatformError::NotFound));

    // A token Meta does not know.
    let stranger = Scope { access_token: "expired".to_owned(), ..scope() };
    assert!(matches!(graph.ad_account(&stranger, "2001").await, Err(PlatformError::Refused { code: 190, .. })));

    // An answer that is not Graph's.
    fake.apply(Control::Fail { path: Some("act_2002".to_owned()), times: Some(1), status: 200, error: None }).unwrap();
    assert!(matches!(graph.ad_account(&scope(), "2002").await, Err(PlatformError::Malformed(_))));
}

#[tokio::test]
async fn a_hanging_call_times_out_within_the_deadline() {
    let (fake, graph) = setup().await;
    fake.apply(Control::Hang { path: Some("act_2001".to_owned()), times: None }).unwrap();
    let graph = GraphApi::new(GraphConfig { call_timeout: Duration::from_millis(1200), attempt_timeout: Duration::from_millis(500), ..graph.config().clone() });
    let start = Instant::now();
    assert_eq!(graph.ad_account(&scope(), "2001").await, Err(PlatformError::Timeout));
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1000), "gave up early: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200) + Duration::from_secs(1), "the deadline was passed: {elapsed:?}");
    // A read is tried again after an attempt times out.
    assert!(fake.calls("act_2001") >= 2);
}

#[tokio::test]
async fn a_write_that_timed_out_is_not_repeated() {
    let (fake, graph) = setup().await;
    fake.apply(Control::Hang { path: Some("act_2001".to_owned()), times: Some(1) }).unwrap();
    let start = Instant::now();
    let error = graph.set_spend_cap(&scope(), "2001", 300_000).await.unwrap_err();
    assert_eq!(error, PlatformError::Timeout);
    assert!(error.outcome_unknown());
    assert!(start.elapsed() < Duration::from_secs(3), "one attempt of 1 s, not the whole deadline");
    assert_eq!(fake.calls("act_2001"), 1);

    fake.apply(Control::ResetCalls).unwrap();
    fake.apply(Control::Hang { path: Some("act_2001".to_owned()), times: Some(1) }).unwrap();
    assert_eq!(graph.reset_spend_cap(&scope(), "2001").await, Err(PlatformError::Timeout));
    assert_eq!(fake.calls("act_2001"), 1);
    assert_eq!(fake.ad_account("2001").unwrap().amount_spent_cents, 2_599, "the hung reset was not applied, and not sent again");
}

#[tokio::test]
async fn a_write_that_could_not_connect_is_repeated_then_unavailable() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let graph = GraphApi::new(GraphConfig { base_url: format!("http://127.0.0.1:{port}"), max_retries: 2, backoff_base: Duration::from_millis(5), ..GraphConfig::default() });
    let error = graph.reset_spend_cap(&scope(), "2001").await.unwrap_err();
    assert!(matches!(&error, PlatformError::Unavailable(why) if why.contains("could not connect")), "{error:?}");
}

fn usage_header(name: &str, value: Value) -> Control {
    Control::SendHeaders { headers: BTreeMap::from([(name.to_owned(), value.to_string())]), times: Some(1) }
}

#[tokio::test]
async fn usage_at_95_percent_makes_the_next_call_wait() {
    let (fake, graph) = setup().await;
    let graph = GraphApi::new(GraphConfig { slowdown_max_interval: Duration::from_millis(500), ..graph.config().clone() });
    let usage = json!({AGENCY: [{"type": "ads_management", "call_count": 95, "total_cputime": 20, "total_time": 30, "estimated_time_to_regain_access": 0}]});
    fake.apply(usage_header("X-Business-Use-Case-Usage", usage)).unwrap();
    graph.ad_account(&scope(), "2001").await.unwrap();
    assert_eq!(graph.throttle_stats().delayed_calls, 0);
    let start = Instant::now();
    graph.ad_account(&scope(), "2002").await.unwrap();
    // 95 % is 80 % of the way from 75 % to 100 %: 400 ms after the call that reported it.
    assert_eq!(graph.throttle_stats().delayed_calls, 1);
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
    // Calls under another business are not slowed.
    fake.seed([Control::AddToken { token: "other-token".to_owned(), business_id: OTHER_BUSINESS.to_owned() }]).unwrap();
    let other = Scope { tenant_id: 8, business_id: OTHER_BUSINESS.to_owned(), access_token: "other-token".to_owned() };
    graph.ad_accounts(&other).await.unwrap();
    assert_eq!(graph.throttle_stats().delayed_calls, 1);
}

#[tokio::test]
async fn a_blocked_business_fails_rate_limited_without_calling() {
    let (fake, graph) = setup().await;
    let usage = json!({AGENCY: [{"type": "ads_management", "call_count": 100, "total_cputime": 40, "total_time": 40, "estimated_time_to_regain_access": 30}]});
    fake.apply(usage_header("X-Business-Use-Case-Usage", usage)).unwrap();
    graph.ad_account(&scope(), "2001").await.unwrap();
    let calls = fake.total_calls();
    let start = Instant::now();
    assert_eq!(graph.set_spend_cap(&scope(), "2002", 100).await, Err(PlatformError::RateLimited { retry_after_s: 1800 }));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(fake.total_calls(), calls, "nothing was sent");
    assert_eq!(graph.throttle_stats().refused_calls, 1);
}

#[tokio::test]
async fn metas_rate_limit_errors_wait_as_told() {
    let (fake, graph) = setup().await;
    // No header: backed off, then tried again.
    let limited = json!({"message": "(#17) User request limit reached", "type": "OAuthException", "code": 17, "error_subcode": 2_446_079, "is_transient": true});
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: Some(1), status: 400, error: Some(limited.clone()) }).unwrap();
    graph.set_spend_cap(&scope(), "2001", 160_000).await.unwrap();
    assert_eq!(fake.calls("act_2001"), 2);

    // The ad account's header says 10 minutes: more than the deadline.
    fake.apply(Control::ResetCalls).unwrap();
    fake.apply(Control::Fail {
        path: Some("act_2001".to_owned()),
        times: Some(1),
        status: 400,
        error: Some(json!({"message": "(#80004) There have been too many calls to this ad-account.", "type": "OAuthException", "code": 80_004})),
    })
    .unwrap();
    fake.apply(usage_header("X-Ad-Account-Usage", json!({"acc_id_util_pct": 100, "reset_time_duration": 600, "ads_api_access_tier": "standard_access"}))).unwrap();
    assert_eq!(graph.set_spend_cap(&scope(), "2001", 170_000).await, Err(PlatformError::RateLimited { retry_after_s: 600 }));
    assert_eq!(fake.calls("act_2001"), 1);
    // The block holds for the account: the next call is refused without calling; other accounts go on.
    assert!(matches!(graph.ad_account(&scope(), "2001").await, Err(PlatformError::RateLimited { .. })));
    assert_eq!(fake.calls("act_2001"), 1);
    graph.ad_account(&scope(), "2002").await.unwrap();
}

#[tokio::test]
async fn the_token_never_shows_in_errors() {
    let (fake, graph) = setup().await;
    let echo = json!({"message": format!("Invalid token {TOKEN}"), "type": "OAuthException", "code": 190});
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: Some(1), status: 400, error: Some(echo) }).unwrap();
    let mut errors = vec![graph.ad_account(&scope(), "2001").await.unwrap_err()];
    fake.apply(Control::Fail { path: Some("act_2001".to_owned()), times: None, status: 500, error: None }).unwrap();
    errors.push(graph.ad_account(&scope(), "2001").await.unwrap_err());
    fake.apply(Control::ClearFaults).unwrap();
    fake.apply(Control::Hang { path: Some("act_2001".to_owned()), times: Some(1) }).unwrap();
    errors.push(graph.set_spend_cap(&scope(), "2001", 1).await.unwrap_err());
    errors.push(graph.ad_account(&scope(), "2999").await.unwrap_err());
    // Pages whose `next` carries the token, cut short by the page limit.
    let short = GraphApi::new(GraphConfig { max_pages: 1, ..graph.config().clone() });
    errors.push(short.ad_accounts(&scope()).await.unwrap_err());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = GraphApi::new(GraphConfig { base_url: format!("http://127.0.0.1:{port}"), max_retries: 0, ..GraphConfig::default() });
    errors.push(nowhere.ad_account(&scope(), "2001").await.unwrap_err());
    assert!(matches!(errors[0], PlatformError::Refused { code: 190, .. }));
    assert!(matches!(errors[4], PlatformError::Malformed(_)));
    for error in &errors {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains(TOKEN), "{text}");
        }
    }
    assert!(!format!("{:?} {:?}", scope(), graph).contains(TOKEN));
}

#[tokio::test]
async fn concurrent_calls_are_not_serialized() {
    let (fake, graph) = setup().await;
    fake.apply(Control::SetLatency { ms: 200 }).unwrap();
    let start = Instant::now();
    let calls = (0..32).map(|n| {
        let graph = graph.clone();
        tokio::spawn(async move { graph.ad_account(&scope(), ["2001", "2002", "2003", "2004"][n % 4]).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    let elapsed = start.elapsed();
    // One after another they would take 6.4 s.
    assert!(elapsed < Duration::from_millis(1600), "{elapsed:?}");
    assert_eq!(fake.total_calls(), 32);
}
