//! Faults between subledger and Meta, black-box: the real server with the
//! Graph implementation calling a fake Graph API (in this test process).
//! A spend cap change whose answer is lost (a hang, a `kill -9` of subledger
//! between the reservation and the post) is settled by reading the cap back;
//! afterwards the tenant's wallet, the account's cap at Meta and in
//! subledger, and `ledger verify` all agree, and the `search_id` replays the
//! settled outcome. Refusals by Meta (its error object, its rate limits)
//! void the reservation at once.

use std::time::Duration;

use serde_json::{Value, json};
use subledger_fake_graph::{AccountSeed, Control, FakeGraph};

use crate::on_both_backends;
use crate::support::{Backend, Harness, TestServer, sql_i64};

const BUSINESS: &str = "5550001112223";
const TOKEN: &str = "EAAB-faults-token";
const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const ACCOUNT: &str = "6000000000000001";

fn seed_account(cap_cents: i64) -> Control {
    Control::AddAdAccount(AccountSeed {
        account_id: ACCOUNT.to_owned(),
        business_id: BUSINESS.to_owned(),
        name: "faults".to_owned(),
        spend_cap_cents: cap_cents,
        created_time: "2026-11-01T08:00:00+0000".to_owned(),
        ..AccountSeed::default()
    })
}

fn server_args(fake: &FakeGraph) -> Vec<String> {
    [
        "--ads-graph-url",
        &fake.base_url(),
        "--ads-graph-version",
        fake.api_version(),
        "--ads-token-key",
        TOKEN_KEY,
        "--ads-graph-timeout-ms",
        "1500",
        "--ads-recovery-after-seconds",
        "1",
        "--ads-hold-timeout-seconds",
        "60",
        "--ads-sync-seconds",
        "0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

struct Setup {
    harness: Harness,
    fake: FakeGraph,
    token: String,
    tenant_public_id: String,
}

async fn setup(backend: Backend) -> Setup {
    let fake = FakeGraph::start().await.expect("the fake Graph API");
    fake.seed([Control::AddBusiness { id: BUSINESS.to_owned(), name: "Agency".to_owned() }, Control::AddToken { token: TOKEN.to_owned(), business_id: BUSINESS.to_owned() }, seed_account(10_000)])
        .unwrap();
    let args = server_args(&fake);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let harness = Harness::start_with(backend, &args).await;
    let tenant = harness.create_tenant("Faults Agency").await;
    let response = harness
        .http
        .post(harness.url(&format!("/v1/tenants/{}/deposits", tenant.tenant_id)))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .header("Idempotency-Key", "usd-deposit")
        .json(&json!({"amount": "1000.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response =
        harness.http.put(harness.url("/v1/ads/connection")).bearer_auth(&tenant.api_token).json(&json!({"platform": "graph", "business_id": BUSINESS, "access_token": TOKEN})).send().await.unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap_or_default());
    let (status, report) = harness.post_json("/v1/ads/sync", &tenant.api_token, &json!({})).await;
    assert_eq!((status, report["accounts"].clone()), (200, json!(1)), "{report}");
    Setup { harness, fake, token: tenant.api_token, tenant_public_id: tenant.tenant_id }
}

impl Setup {
    async fn change_cap(&self, base: &str, cap_cents: i64, search_id: &str) -> Value {
        let body = json!({"id": ACCOUNT, "access_token": self.token, "amount_usd": cap_cents, "req_header": {"search_id": search_id}});
        self.harness.http.post(format!("{base}/api/v1/change_spend_cap")).json(&body).timeout(Duration::from_secs(30)).send().await.expect("a reply").json().await.expect("JSON")
    }

    async fn usd_cents(&self) -> i64 {
        let query = format!(
            "SELECT balance_minor FROM wallets WHERE purpose = 'primary' AND currency = 'USD' AND account_id IS NULL AND ad_account_id IS NULL
               AND tenant_id = (SELECT id FROM tenants WHERE public_id = '{}')",
            self.tenant_public_id
        );
        sql_i64(&self.harness.db, &query).await
    }

    async fn pending_holds(&self) -> i64 {
        sql_i64(&self.harness.db, "SELECT COUNT(*) FROM holds WHERE state = 'pending'").await
    }

    async fn unsettled_writes(&self) -> i64 {
        sql_i64(&self.harness.db, "SELECT COUNT(*) FROM ad_writes WHERE state <> 'done'").await
    }

    async fn our_cap(&self) -> i64 {
        sql_i64(&self.harness.db, &format!("SELECT spend_cap_cents FROM ad_accounts WHERE id = '{ACCOUNT}'")).await
    }

    /// Waits until the recovery job settled every write (it runs every 5 s).
    async fn settled(&self) {
        for _ in 0..100 {
            if self.unsettled_writes().await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the recovery job did not settle the lost write");
    }
}

fn code(reply: &Value) -> i64 {
    reply["resp_header"]["code"].as_i64().unwrap_or_else(|| panic!("an envelope: {reply}"))
}

async fn a_lost_answer_is_settled_by_reading_the_cap_back(backend: Backend) {
    let setup = setup(backend).await;
    let base = setup.harness.server.base.clone();
    let start = setup.usd_cents().await;
    let funded = setup.our_cap().await;
    assert_eq!(funded, 10_000, "the first sync funded the cap Meta had");

    // Not applied: Meta never answers and never applied it.
    setup.fake.apply(Control::Hang { path: Some(format!("act_{ACCOUNT}")), times: Some(1) }).unwrap();
    assert_eq!(code(&setup.change_cap(&base, 30_000, "lost-1").await), 1011);
    assert_eq!(setup.pending_holds().await, 1, "the reservation waits for the read-back");
    setup.settled().await;
    assert_eq!(setup.usd_cents().await, start, "voided: nothing moved");
    assert_eq!(setup.our_cap().await, 10_000);
    let replay = setup.change_cap(&base, 30_000, "lost-1").await;
    assert_eq!(code(&replay), 1011, "the replay says it was not applied: {replay}");

    // Applied: the answer is lost but Meta did set the cap.
    setup.fake.apply(Control::Hang { path: Some(format!("act_{ACCOUNT}")), times: Some(1) }).unwrap();
    assert_eq!(code(&setup.change_cap(&base, 40_000, "lost-2").await), 1011);
    setup.fake.apply(seed_account(40_000)).unwrap();
    setup.settled().await;
    assert_eq!(setup.usd_cents().await, start - 30_000, "posted once: funded the difference of caps");
    assert_eq!(setup.our_cap().await, 40_000);
    assert_eq!(code(&setup.change_cap(&base, 40_000, "lost-2").await), 1, "the replay answers the settled success");
    assert_eq!(setup.usd_cents().await, start - 30_000, "the replay moved nothing");
    assert_eq!(setup.pending_holds().await, 0);
    setup.harness.assert_ledger_sound().await;
}

async fn kill_9_between_reserve_and_post_loses_and_doubles_nothing(backend: Backend) {
    let mut setup = setup(backend).await;
    let start = setup.usd_cents().await;
    for (round, applied) in [(1, false), (2, true)] {
        let cap = 10_000 + round * 20_000;
        let before = setup.usd_cents().await;
        let funded = setup.our_cap().await;
        setup.fake.apply(Control::Hang { path: Some(format!("act_{ACCOUNT}")), times: Some(1) }).unwrap();
        let base = setup.harness.server.base.clone();
        let (http, token) = (setup.harness.http.clone(), setup.token.clone());
        let search_id = format!("kill-{round}");
        let in_flight = tokio::spawn(async move {
            let body = json!({"id": ACCOUNT, "access_token": token, "amount_usd": cap, "req_header": {"search_id": search_id}});
            http.post(format!("{base}/api/v1/change_spend_cap")).json(&body).send().await
        });
        // The reservation is made and Meta is being asked: kill the server there.
        for _ in 0..100 {
            if setup.pending_holds().await == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(setup.pending_holds().await, 1, "the hold was reserved before the call");
        setup.harness.server.kill_hard().await;
        assert!(in_flight.await.unwrap().is_err(), "the client saw the connection die");
        if applied {
            setup.fake.apply(seed_account(cap)).unwrap();
        }
        let args = server_args(&setup.fake);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        setup.harness.server = TestServer::start(&setup.harness.db, &args).await;
        setup.settled().await;
        let expected = if applied { before - (cap - funded) } else { before };
        assert_eq!(setup.usd_cents().await, expected, "round {round}: nothing doubled, nothing lost");
        assert_eq!(setup.our_cap().await, setup.fake.ad_account(ACCOUNT).unwrap().spend_cap_cents, "round {round}: subledger's cap is Meta's");
        assert_eq!(setup.pending_holds().await, 0);
        let replay = setup.change_cap(&setup.harness.server.base.clone(), cap, &format!("kill-{round}")).await;
        assert_eq!(code(&replay), if applied { 1 } else { 1011 }, "{replay}");
        setup.harness.assert_ledger_sound().await;
    }
    assert_eq!(setup.usd_cents().await, start - 40_000);
}

async fn meta_refusals_void_the_reservation_at_once(backend: Backend) {
    let setup = setup(backend).await;
    let base = setup.harness.server.base.clone();
    let start = setup.usd_cents().await;
    // Meta's error object: 1006 with Meta's message.
    let error = json!({"message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 1_885_183, "fbtrace_id": "Afake"});
    setup.fake.apply(Control::Fail { path: Some(format!("act_{ACCOUNT}")), times: Some(1), status: 400, error: Some(error) }).unwrap();
    let reply = setup.change_cap(&base, 20_000, "meta-refused").await;
    assert_eq!(code(&reply), 1006, "{reply}");
    assert!(reply["resp_header"]["message"].as_str().unwrap().contains("Invalid parameter"), "{reply}");
    assert_eq!((setup.usd_cents().await, setup.pending_holds().await, setup.unsettled_writes().await), (start, 0, 0));
    // 5xx until the retries run out: the outcome is unknown, then read back (not applied).
    setup.fake.apply(Control::Fail { path: Some(format!("act_{ACCOUNT}")), times: Some(4), status: 503, error: None }).unwrap();
    assert_eq!(code(&setup.change_cap(&base, 20_000, "five-hundreds").await), 1011);
    setup.settled().await;
    assert_eq!(setup.usd_cents().await, start);
    // A blocked rate limit: refused without calling Meta.
    let usage = json!({BUSINESS: [{"type": "ads_management", "call_count": 100, "total_cputime": 100, "total_time": 100, "estimated_time_to_regain_access": 30}]});
    let headers = [("x-business-use-case-usage".to_owned(), usage.to_string())].into_iter().collect();
    setup.fake.apply(Control::SendHeaders { headers, times: Some(1) }).unwrap();
    let (status, body) = setup.harness.get_json(&format!("/api/v1/account_info?id={ACCOUNT}&access_token={}&fields=spend_cap", setup.token), &setup.token).await;
    assert_eq!(status, 200, "{body}");
    let calls_before = setup.fake.total_calls();
    let reply = setup.change_cap(&base, 20_000, "rate-limited").await;
    assert_eq!(code(&reply), 1011, "{reply}");
    assert_eq!(setup.fake.total_calls(), calls_before, "blocked: Meta was not called");
    assert_eq!((setup.usd_cents().await, setup.pending_holds().await), (start, 0));
    setup.harness.assert_ledger_sound().await;
}

on_both_backends!(a_lost_answer_is_settled_by_reading_the_cap_back, kill_9_between_reserve_and_post_loses_and_doubles_nothing, meta_refusals_void_the_reservation_at_once);
