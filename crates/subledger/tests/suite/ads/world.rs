//! The worlds the ad dialect's tests run in: a server, two agencies (the
//! second one to try tenant isolation), and their ad data synced from one
//! of the two platforms: the built-in sandbox, or Meta's Graph API played by
//! the fake Graph server over loopback (the connector's real HTTP code runs).

use serde_json::{Map, Value, json};
use subledger_fake_graph::{AccountSeed, Control, FakeGraph, RequestSeed};

use super::*;

/// Which platform serves the agencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Sandbox,
    Graph,
}

/// The key that seals Meta tokens in the Graph worlds.
const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Longest a Graph call may take in the Graph worlds (hang tests wait for it).
pub const GRAPH_TIMEOUT_MS: u64 = 1_500;

/// What the Graph worlds seed at Meta.
pub mod graph {
    pub const BUSINESS: &str = "7000000000000001";
    pub const OTHER_BUSINESS: &str = "7000000000000002";
    /// A Business Manager accounts can be shared with.
    pub const PARTNER: &str = "7000000000000099";
    pub const TOKEN: &str = "graph-token-agency";
    pub const OTHER_TOKEN: &str = "graph-token-other";
    /// Active, no cap yet: status 4 (empty).
    pub const EMPTY: &str = "5000000000000001";
    /// Active, $500 cap, $120 spent: status 1 (normal).
    pub const SPENDING: &str = "5000000000000002";
    /// Disabled at Meta with $80 of cap unspent: status 7.
    pub const DISABLED: &str = "5000000000000003";
    /// Closed at Meta: status 2.
    pub const CLOSED: &str = "5000000000000004";
    pub const OTHER_ACCOUNT: &str = "5000000000000009";
    /// Meta's ids and the form ids (oe_request_id) of the requests.
    pub const APPROVED: (&str, &str) = ("6000000000000001", "OE-1001");
    pub const PENDING: (&str, &str) = ("6000000000000002", "OE-1002");
    pub const DISAPPROVED: (&str, &str) = ("6000000000000003", "OE-1003");
    pub const OTHER_REQUEST: (&str, &str) = ("6000000000000009", "OE-2001");
    pub const PIXEL: &str = "8000000000000001";
    pub const OTHER_PIXEL: &str = "8000000000000009";
    pub const COMPANY: &str = "深圳市示例科技有限公司";
    pub const DISABLED_COMPANY: &str = "广州市停用贸易有限公司";
}

/// A running world.
pub struct World {
    pub h: Harness,
    pub agency: Agency,
    pub other: Agency,
    /// The fake Graph server, in the Graph worlds.
    pub fake: Option<FakeGraph>,
    /// The agency's ad accounts as `account_list` gives them after the first sync.
    pub accounts: Vec<Value>,
    /// An account of the agency that can be topped up (status 1 or 4).
    pub account: String,
    /// (form id, Meta's id) of an approved request of the agency that issued `account`.
    pub request: (String, String),
    /// An account and a request (form id) of the other agency.
    pub other_account: String,
    pub other_request: String,
}

/// USD deposited for each agency before the first sync (Meta's caps are funded from it).
pub const DEPOSIT_USD: &str = "10000.00";

impl World {
    pub async fn start(backend: Backend, platform: Platform) -> World {
        Self::start_with(backend, platform, &[]).await
    }

    pub async fn start_with(backend: Backend, platform: Platform, extra: &[&str]) -> World {
        let fake = match platform {
            Platform::Sandbox => None,
            Platform::Graph => Some(seeded_fake().await),
        };
        let timeout = GRAPH_TIMEOUT_MS.to_string();
        let mut args = vec!["--ads-sync-seconds", "0", "--ads-token-key", TOKEN_KEY, "--ads-graph-timeout-ms", &timeout];
        let url = fake.as_ref().map(FakeGraph::base_url);
        if let Some(url) = &url {
            args.extend(["--ads-graph-url", url]);
        }
        args.extend(extra);
        let h = Harness::start_with(backend, &args).await;
        let agency = Agency::create(&h, "Agency Alpha").await;
        let other = Agency::create(&h, "Agency Beta").await;
        for (who, business, token) in [(&agency, graph::BUSINESS, graph::TOKEN), (&other, graph::OTHER_BUSINESS, graph::OTHER_TOKEN)] {
            h.deposit_usd(&who.tenant, DEPOSIT_USD).await;
            if platform == Platform::Graph {
                let (status, body) = put_json(&h, "/v1/ads/connection", who.token(), &json!({"platform": "graph", "business_id": business, "access_token": token})).await;
                assert_eq!(status, 204, "{body}");
            }
            who.sync(&h).await;
        }
        let accounts = agency.accounts(&h).await;
        let other_accounts = other.accounts(&h).await;
        let (account, request, other_request) = match platform {
            Platform::Graph => (graph::EMPTY.to_owned(), (graph::APPROVED.1.to_owned(), graph::APPROVED.0.to_owned()), graph::OTHER_REQUEST.1.to_owned()),
            Platform::Sandbox => {
                let account = accounts.iter().find(|a| [1, 4].contains(&a["status"].as_i64().unwrap())).expect("a sandbox account that can be topped up");
                let form_id = account["request_id"].as_str().unwrap().to_owned();
                let detail = agency.call(&h, "GET", "/api/v1/get_request_detail", "w", json!({"id": form_id})).await;
                let aac_id = ok(&detail, "w")["ad_account_creation_request_id"]["id"].as_str().unwrap().to_owned();
                let other_form = other_accounts[0]["request_id"].as_str().unwrap().to_owned();
                (account["id"].as_str().unwrap().to_owned(), (form_id, aac_id), other_form)
            }
        };
        let other_account = other_accounts[0]["id"].as_str().unwrap().to_owned();
        World { h, agency, other, fake, accounts, account, request, other_account, other_request }
    }

    pub fn fake(&self) -> &FakeGraph {
        self.fake.as_ref().expect("a Graph world")
    }

    /// The agency's account as `account_list` gives it now.
    pub async fn listed(&self, id: &str) -> Value {
        self.agency.accounts(&self.h).await.into_iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("account {id} listed"))
    }

    /// The agency's USD wallet: (balance, reserved), in cents.
    pub async fn usd_cents(&self) -> (i64, i64) {
        let (status, body) = self.h.get_json("/v1/wallets", self.agency.token()).await;
        assert_eq!(status, 200, "{body}");
        let wallet = body["items"].as_array().unwrap().iter().find(|w| w["purpose"] == "primary" && w["currency"] == "USD").unwrap_or_else(|| panic!("a USD wallet: {body}"));
        (wallet["balance_minor"].as_i64().unwrap(), wallet["reserved_minor"].as_i64().unwrap())
    }
}

impl Agency {
    /// `POST /v1/ads/sync`; asserts it reported no error and returns the report.
    pub async fn sync(&self, h: &Harness) -> Value {
        let (status, body) = h.post_json("/v1/ads/sync", self.token(), &json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"], json!([]), "{body}");
        body
    }

    /// Every ad account of the agency (one page of 500).
    pub async fn accounts(&self, h: &Harness) -> Vec<Value> {
        let answer = self.call(h, "GET", "/lb/api/v1/account_list", "list", json!({"page_size": 500})).await;
        ok(&answer, "list")["list"].as_array().unwrap().clone()
    }
}

impl Harness {
    pub async fn deposit_usd(&self, tenant: &Tenant, amount: &str) {
        let response = self
            .http
            .post(self.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id)))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", format!("usd-{}-{amount}-{}", tenant.tenant_id, jiff::Timestamp::now().as_microsecond()))
            .json(&json!({"amount": amount, "currency": "USD"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    }
}

pub async fn put_json(h: &Harness, path: &str, token: &str, body: &Value) -> (u16, Value) {
    status_and_json(h.http.put(h.url(path)).bearer_auth(token).json(body).send().await.unwrap()).await
}

/// Today in the agencies' zone (the default, Asia/Shanghai), shifted by `days`.
pub fn day(days: i64) -> String {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap()).date();
    today.checked_add(jiff::Span::new().days(days)).unwrap().to_string()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// Meta as the Graph worlds see it: two agencies' Business Managers, their
/// ad accounts, creation requests, pixels, and a few days of insights.
async fn seeded_fake() -> FakeGraph {
    use graph::*;
    let fake = FakeGraph::start().await.expect("the fake Graph server starts");
    let account = |id: &str, business: &str, name: &str, status: i64, cap: i64, spent: i64| {
        Control::AddAdAccount(AccountSeed {
            account_id: id.to_owned(),
            business_id: business.to_owned(),
            name: name.to_owned(),
            account_status: status,
            disable_reason: if status == 2 { 1 } else { 0 },
            spend_cap_cents: cap,
            amount_spent_cents: spent,
            created_time: "2024-05-10T10:00:00+0000".to_owned(),
            ..AccountSeed::default()
        })
    };
    let request = |(id, oe): (&str, &str), business: &str, status: &str, company: &str, accounts: &[&str], extra: Value| {
        let mut fields = object(json!({
            "legal_entity_name_in_local_language": company,
            "address_in_local_language": "广东省深圳市南山区科技园1号",
            "ad_accounts_info": accounts.iter().enumerate().map(|(i, _)| json!({"name": format!("Alpha-{:02}", i + 1), "timezone_id": 1, "currency": "USD"})).collect::<Vec<_>>(),
            "contact": {"name": "王芳", "email": "fang.wang@example.com"},
            "official_website_url": "https://www.example.com",
            "promotable_page_ids": ["3000000000000001"],
            "promotable_urls": ["https://www.example.com/shop"],
            "business_registration_id": "91440300MA5EXAMPLE",
            "vertical": "ECOMMERCE",
            "subvertical": "APPAREL_AND_ACCESSORIES",
            "address_in_english": {"city": "Shenzhen", "zip": "518000"},
        }));
        fields.extend(object(extra));
        Control::AddCreationRequest(RequestSeed {
            id: id.to_owned(),
            business_id: business.to_owned(),
            status: status.to_owned(),
            time_created: "2024-05-01T08:00:00+0000".to_owned(),
            oe_request_id: Some(oe.to_owned()),
            ad_account_ids: accounts.iter().map(|a| (*a).to_owned()).collect(),
            fields,
        })
    };
    let mut controls = vec![
        Control::AddBusiness { id: BUSINESS.to_owned(), name: "Agency Alpha BM".to_owned() },
        Control::AddBusiness { id: OTHER_BUSINESS.to_owned(), name: "Agency Beta BM".to_owned() },
        Control::AddBusiness { id: PARTNER.to_owned(), name: "Partner BM".to_owned() },
        Control::AddToken { token: TOKEN.to_owned(), business_id: BUSINESS.to_owned() },
        Control::AddToken { token: OTHER_TOKEN.to_owned(), business_id: OTHER_BUSINESS.to_owned() },
        account(EMPTY, BUSINESS, "Alpha-01", 1, 0, 0),
        account(SPENDING, BUSINESS, "Alpha-02", 1, 50_000, 12_000),
        account(DISABLED, BUSINESS, "Gamma-01", 2, 10_000, 2_000),
        account(CLOSED, BUSINESS, "Gamma-02", 101, 0, 0),
        account(OTHER_ACCOUNT, OTHER_BUSINESS, "Beta-01", 1, 0, 0),
        request(APPROVED, BUSINESS, "APPROVED", COMPANY, &[EMPTY, SPENDING], json!({})),
        request(PENDING, BUSINESS, "PENDING", COMPANY, &[], json!({})),
        request(DISAPPROVED, BUSINESS, "DISAPPROVED", "某某公司", &[], json!({"disapproval_reasons": [{"reason": "Website unreachable", "note": "404"}, {"reason": "Page unpublished", "note": ""}]})),
        request(("6000000000000004", "OE-1004"), BUSINESS, "APPROVED", DISABLED_COMPANY, &[DISABLED, CLOSED], json!({})),
        request(OTHER_REQUEST, OTHER_BUSINESS, "APPROVED", "北京市另一家公司", &[OTHER_ACCOUNT], json!({})),
        Control::AddPixel { id: PIXEL.to_owned(), name: "Alpha Pixel".to_owned(), business_id: BUSINESS.to_owned() },
        Control::AddPixel { id: OTHER_PIXEL.to_owned(), name: "Beta Pixel".to_owned(), business_id: OTHER_BUSINESS.to_owned() },
    ];
    // Two days of spend on SPENDING: $12.34 and $5.66, by country too.
    for (days_ago, spend, us, de) in [(-1, "12.34", "10.00", "2.34"), (-2, "5.66", "5.00", "0.66")] {
        let on = day(days_ago);
        let metrics = |spend: &str, impressions: &str| json!({"spend": spend, "impressions": impressions, "clicks": "20", "reach": "800", "actions": [{"action_type": "purchase", "value": "2"}], "action_values": [{"action_type": "purchase", "value": "61.70"}]});
        controls.push(Control::AddInsights { account_id: SPENDING.to_owned(), day: on.clone(), breakdown: None, rows: vec![object(metrics(spend, "1000"))] });
        let by_country = [("US", us, "700"), ("DE", de, "300")]
            .iter()
            .map(|(country, spend, impressions)| {
                let mut row = object(metrics(spend, impressions));
                row.insert("country".to_owned(), json!(country));
                row
            })
            .collect();
        controls.push(Control::AddInsights { account_id: SPENDING.to_owned(), day: on, breakdown: Some("country".to_owned()), rows: by_country });
    }
    fake.seed(controls).expect("the fake accepts the seed");
    fake
}
