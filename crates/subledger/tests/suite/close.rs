//! Month closes in chunks (`--close-chunk-accounts`): a close of many
//! accounts bills each exactly once whatever the chunking; a close stopped
//! between chunks (a failed chunk, then a crash) leaves its month closing,
//! takes usage for it exactly (late for the accounts already billed, on the
//! bill for the others) and resumes by itself after a restart; a tenant whose
//! month cannot be billed stays closing while the automatic close closes the
//! others; and another tenant's transfers are served between the chunks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::billing::{at, close, dashed, month_start, per_unit, tariff, tariff_from, usage};
use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    a_chunked_close_bills_each_account_once,
    a_close_stopped_between_chunks_resumes_after_a_crash,
    an_unbillable_tenant_stays_closing_while_the_others_close,
    other_tenants_are_served_between_chunks
);

/// Runs `call` for every item, `parallel` at a time (each on a task of its own).
async fn for_each_concurrently<T, F, Fut>(items: Vec<T>, parallel: usize, call: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let queue = Arc::new(std::sync::Mutex::new(items.into_iter()));
    let call = Arc::new(call);
    let workers: Vec<_> = (0..parallel)
        .map(|_| {
            let (queue, call) = (queue.clone(), call.clone());
            tokio::spawn(async move {
                loop {
                    let Some(item) = queue.lock().unwrap().next() else { break };
                    call(item).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker");
    }
}

/// Creates the accounts, 16 at a time (so their ids do not follow their names).
async fn create_accounts(h: &Harness, token: &str, names: &[String]) {
    let (http, base, token) = (h.http.clone(), h.server.base.clone(), token.to_owned());
    for_each_concurrently(names.to_vec(), 16, move |name| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let response = http.post(format!("{base}/v1/accounts")).bearer_auth(&token).json(&json!({"username": name})).send().await.unwrap();
            assert_eq!(response.status(), 201, "{name}");
        }
    })
    .await;
}

/// Moves `amount` from the tenant to each account, 16 at a time.
async fn fund_accounts(h: &Harness, token: &str, names: &[String], amount: &str) {
    let (http, base, token, amount) = (h.http.clone(), h.server.base.clone(), token.to_owned(), amount.to_owned());
    for_each_concurrently(names.to_vec(), 16, move |name| {
        let (http, base, token, amount) = (http.clone(), base.clone(), token.clone(), amount.clone());
        async move {
            let body = json!({"from": {}, "to": {"username": name}, "amount": amount});
            let response = http.post(format!("{base}/v1/transfers")).bearer_auth(&token).header("Idempotency-Key", format!("fund-{name}")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 201, "{name}");
        }
    })
    .await;
}

async fn postpaid(h: &Harness, token: &str, names: &[String]) {
    let (http, base, token) = (h.http.clone(), h.server.base.clone(), token.to_owned());
    for_each_concurrently(names.to_vec(), 16, move |name| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let response = http.put(format!("{base}/v1/accounts/{name}/billing")).bearer_auth(&token).json(&json!({"mode": "postpaid"})).send().await.unwrap();
            assert_eq!(response.status(), 204, "{name}");
        }
    })
    .await;
}

/// Posts the events in batches of 1,000; every one must be accepted.
async fn usage_all(h: &Harness, token: &str, events: Vec<Value>) {
    for batch in events.chunks(1_000) {
        let answer = usage(h, token, Value::Array(batch.to_vec())).await;
        assert_eq!(answer["accepted"].as_u64(), Some(batch.len() as u64), "{answer}");
    }
}

async fn connect(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.url).await.expect("connect to the test database")
}

async fn id_of(db: &TestDb, table: &str, column: &str, value: &str) -> i64 {
    sql_i64(db, &format!("SELECT id FROM {table} WHERE {column} = '{value}'")).await
}

/// What the month's stored bills are, per username: total, lines
/// (product, quantity in thousandths, cents) and settlements (product,
/// cents, status), with how many distinct instants the bills were written at
/// (one per chunk).
#[derive(Debug, Default, PartialEq, Eq)]
struct Billed {
    totals: BTreeMap<String, i64>,
    lines: BTreeMap<String, Vec<(String, i64, i64)>>,
    settlements: BTreeMap<String, Vec<(String, i64, String)>>,
}

/// The rows `query` returns with the tenant as `$1` and the month as `$2`.
async fn of_month<T>(conn: &mut sqlx::AnyConnection, query: &str, tenant_id: i64, month: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    sqlx::query_as(query).bind(tenant_id).bind(month).fetch_all(conn).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Rows keyed by their first column, grouped in order.
fn grouped<V>(rows: impl IntoIterator<Item = (String, V)>) -> BTreeMap<String, Vec<V>> {
    let mut groups: BTreeMap<String, Vec<V>> = BTreeMap::new();
    for (key, value) in rows {
        groups.entry(key).or_default().push(value);
    }
    groups
}

async fn billed(db: &TestDb, tenant: &Tenant, month: &str) -> (Billed, i64) {
    let mut conn = connect(db).await;
    let tenant_id = id_of(db, "tenants", "public_id", &tenant.tenant_id).await;
    let of = |table: &str, alias: &str, columns: &str, order: &str| {
        format!("SELECT a.username, {columns} FROM {table} {alias} JOIN accounts a ON a.id = {alias}.account_id WHERE {alias}.tenant_id = $1 AND {alias}.month = $2 ORDER BY a.username{order}")
    };
    let totals: Vec<(String, i64)> = of_month(&mut conn, &of("bills", "b", "b.total_cents", ""), tenant_id, month).await;
    let lines: Vec<(String, String, i64, i64)> = of_month(&mut conn, &of("bill_lines", "l", "l.product_code, l.quantity_milli, l.money_cents", ", l.line_no"), tenant_id, month).await;
    let settlements: Vec<(String, String, i64, String)> = of_month(&mut conn, &of("settlements", "s", "s.product_code, s.amount_cents, s.status", ", s.product_code"), tenant_id, month).await;
    let billed = Billed {
        totals: totals.into_iter().collect(),
        lines: grouped(lines.into_iter().map(|(user, product, quantity, cents)| (user, (product, quantity, cents)))),
        settlements: grouped(settlements.into_iter().map(|(user, product, cents, status)| (user, (product, cents, status)))),
    };
    let (instants,): (i64,) = of_month(&mut conn, "SELECT COUNT(DISTINCT created_at_us) FROM bills WHERE tenant_id = $1 AND month = $2", tenant_id, month).await[0];
    (billed, instants)
}

/// A trigger that refuses the bill of one account: a chunk that fails as
/// storage, with the chunks before it committed.
async fn refuse_bill_of(db: &TestDb, account_id: i64) {
    let statement = match db.backend {
        Backend::Sqlite => format!("CREATE TRIGGER refused_bill BEFORE INSERT ON bills WHEN NEW.account_id = {account_id} BEGIN SELECT RAISE(ABORT, 'refused bill'); END;"),
        Backend::Postgres => format!(
            "CREATE FUNCTION refused_bill() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.account_id = {account_id} THEN RAISE EXCEPTION 'refused bill'; END IF; RETURN NEW; END; $$;
             CREATE TRIGGER refused_bill BEFORE INSERT ON bills FOR EACH ROW EXECUTE FUNCTION refused_bill();"
        ),
    };
    sql(db, &statement).await;
}

/// The progress of a month's close under way: (last account billed, chunks, bills), if any.
async fn closing(db: &TestDb, month: &str) -> Option<(i64, i64, i64)> {
    let mut conn = connect(db).await;
    sqlx::query_as("SELECT last_account_id, chunks, bills FROM month_closings WHERE month = $1").bind(month).fetch_optional(&mut conn).await.unwrap()
}

/// Waits up to 20 s for `condition` over the database.
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited 20 s for {what}");
}

/// 1,200 accounts in chunks of 500 (three chunks, ids interleaved with
/// another tenant's), against bills, lines and settlements computed here
/// from the usage sent: a bill per account with usage, the postpaid ones
/// settled (outstanding where unfunded), prepaid ones not (charged exactly
/// in real time), the report summing every chunk.
async fn a_chunked_close_bills_each_account_once(backend: Backend) {
    let h = Harness::start_with(backend, &["--close-chunk-accounts", "500"]).await;
    let tenant = h.create_tenant("Chunked Close").await;
    let other = h.create_tenant("Other Tenant").await;
    let token = tenant.api_token.as_str();
    h.deposit(&tenant, "100000.00").await;
    let names: Vec<String> = (0..1_200).map(|i| format!("c{i:05}")).collect();
    create_accounts(&h, token, &names[..700]).await;
    create_accounts(&h, &other.api_token, &["o0001".to_owned(), "o0002".to_owned()]).await;
    create_accounts(&h, token, &names[700..]).await;
    let is_postpaid = |i: usize| i.is_multiple_of(3);
    let is_funded = |i: usize| !i.is_multiple_of(9);
    let uses = |i: usize| i % 11 != 5;
    let sms_quantity = |i: usize| (i % 7) as i64 + 1;
    let uses_mms = |i: usize| i.is_multiple_of(4);
    postpaid(&h, token, &names.iter().enumerate().filter(|(i, _)| is_postpaid(*i)).map(|(_, n)| n.clone()).collect::<Vec<_>>()).await;
    fund_accounts(&h, token, &names.iter().enumerate().filter(|(i, _)| is_funded(*i)).map(|(_, n)| n.clone()).collect::<Vec<_>>(), "10.00").await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    tariff(&h, token, "mms", per_unit("0.10", "1")).await;
    let m1 = month_start(1);
    let mut events = Vec::new();
    for (i, name) in names.iter().enumerate().filter(|(i, _)| uses(*i)) {
        events.push(json!({"id": format!("{name}-sms"), "account": name, "product": "sms", "quantity": sms_quantity(i), "occurred_at": at(m1, 3, 10)}));
        if uses_mms(i) {
            events.push(json!({"id": format!("{name}-mms"), "account": name, "product": "mms", "quantity": 2, "occurred_at": at(m1, 4, 10)}));
        }
    }
    usage_all(&h, token, events).await;

    // What the close must write, from the usage sent.
    let mut expected = Billed::default();
    let (mut settled, mut outstanding) = (0, 0);
    for (i, name) in names.iter().enumerate().filter(|(i, _)| uses(*i)) {
        let mut lines = vec![("sms".to_owned(), sms_quantity(i) * 1_000, sms_quantity(i) * 5)];
        if uses_mms(i) {
            lines.push(("mms".to_owned(), 2_000, 20));
        }
        expected.totals.insert(name.clone(), lines.iter().map(|(_, _, cents)| cents).sum());
        if is_postpaid(i) {
            let status = if is_funded(i) { "posted" } else { "outstanding" };
            let mut settlements: Vec<_> = lines.iter().map(|(product, _, cents)| (product.clone(), *cents, status.to_owned())).collect();
            settlements.sort();
            let sum: i64 = settlements.iter().map(|(_, cents, _)| cents).sum();
            if is_funded(i) {
                settled += sum
            } else {
                outstanding += sum
            }
            expected.settlements.insert(name.clone(), settlements);
        }
        expected.lines.insert(name.clone(), lines);
    }
    let bills = expected.totals.len();
    let billed_cents: i64 = expected.totals.values().sum();

    let month = dashed(m1);
    let report = close(&h, token, &month).await;
    let closed = &report["months"][0];
    assert_eq!(closed["currencies"].as_array().map(Vec::len), Some(1), "only yuan was billed: {report}");
    let cny = &closed["currencies"][0];
    assert_eq!(cny["currency"], "CNY", "{report}");
    let yuan = |cents: i64| format!("{}.{:02}", cents / 100, cents % 100);
    assert_eq!(
        (closed["already_closed"].as_bool(), closed["bills"].as_u64(), cny["billed"].as_str(), cny["settled"].as_str(), cny["outstanding"].as_str()),
        (Some(false), Some(bills as u64), Some(yuan(billed_cents).as_str()), Some(yuan(settled).as_str()), Some(yuan(outstanding).as_str())),
        "the report sums every chunk: {report}"
    );
    let (stored, instants) = billed(&h.db, &tenant, &month).await;
    assert_eq!(stored, expected);
    assert_eq!(instants, 3, "1,200 accounts in chunks of 500 are written by three transactions");
    assert_eq!(sql_i64(&h.db, &format!("SELECT accounts FROM month_closes WHERE month = '{month}'")).await, bills as i64);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM month_closings").await, 0, "the last chunk forgets the progress");
    let posted = expected.settlements.values().flatten().filter(|(_, _, status)| status == "posted").count() as i64;
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM transfers WHERE memo LIKE 'settlement %'").await, posted, "one transfer per posted settlement");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM bills WHERE account_id IN (SELECT id FROM accounts WHERE username LIKE 'o%')").await, 0);

    let again = close(&h, token, &month).await;
    assert_eq!(again["months"][0]["already_closed"], true, "{again}");
    h.assert_ledger_sound().await;
}

/// 30 accounts in chunks of 10. The second chunk fails (a bill the database
/// refuses): the first stays committed and the month closing. Usage for the
/// month then arrives for an account already billed (late: the next close
/// bills it) and for one not yet billed (on this month's bill). The server
/// is killed, and at restart the automatic close resumes after the first
/// chunk: every account billed once, nothing settled twice.
async fn a_close_stopped_between_chunks_resumes_after_a_crash(backend: Backend) {
    let mut h = Harness::start_with(backend, &["--close-chunk-accounts", "10"]).await;
    let tenant = h.create_tenant("Resumed Close").await;
    let token = tenant.api_token.as_str();
    h.deposit(&tenant, "10000.00").await;
    let names: Vec<String> = (0..30).map(|i| format!("r{i:03}")).collect();
    // One at a time: ids in the names' order, so the chunks are known.
    for name in &names {
        create_accounts(&h, token, std::slice::from_ref(name)).await;
    }
    fund_accounts(&h, token, &names, "10.00").await;
    postpaid(&h, token, &names.iter().step_by(2).cloned().collect::<Vec<_>>()).await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    let m1 = month_start(1);
    let month = dashed(m1);
    usage_all(&h, token, names.iter().enumerate().map(|(i, n)| json!({"id": format!("{n}-a"), "account": n, "product": "sms", "quantity": i + 1, "occurred_at": at(m1, 5, 5)})).collect()).await;

    refuse_bill_of(&h.db, id_of(&h.db, "accounts", "username", "r015").await).await;
    let (status, body) = h.post_json("/v1/bills/close", token, &json!({"month": month})).await;
    assert_eq!(status, 500, "{body}");
    let first_chunk_end = id_of(&h.db, "accounts", "username", "r009").await;
    assert_eq!(closing(&h.db, &month).await, Some((first_chunk_end, 1, 10)), "the first chunk stands, the month is closing");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM month_closes").await, 0);
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM bills WHERE month = '{month}'")).await, 10);
    assert!(h.server.log().await.contains("stays closing"), "the stop is logged with how far the month got");
    let (_, bills) = h.get_json(&format!("/v1/bills?from={month}&username=r003"), token).await;
    assert_eq!(bills["items"][0]["total"], "0.20", "an account's bill is final once its chunk commits: {bills}");

    // Usage of the closing month: late for r003 (billed), on the bill for r025.
    usage_all(
        &h,
        token,
        vec![
            json!({"id": "r003-b", "account": "r003", "product": "sms", "quantity": 5, "occurred_at": at(m1, 20, 5)}),
            json!({"id": "r025-b", "account": "r025", "product": "sms", "quantity": 5, "occurred_at": at(m1, 20, 5)}),
        ],
    )
    .await;
    let late = |name: &str| format!("SELECT late FROM usage_monthly WHERE month = '{month}' AND account_id = (SELECT id FROM accounts WHERE username = '{name}')");
    assert_eq!((sql_i64(&h.db, &late("r003")).await, sql_i64(&h.db, &late("r025")).await), (1, 0));

    h.server.kill_hard().await;
    sql(
        &h.db,
        match backend {
            Backend::Sqlite => "DROP TRIGGER refused_bill",
            Backend::Postgres => "DROP TRIGGER refused_bill ON bills; DROP FUNCTION refused_bill()",
        },
    )
    .await;
    h.server = TestServer::start(&h.db, &["--auto-close-after-hours", "1", "--close-chunk-accounts", "10"]).await;
    eventually("the month to close by itself", async || sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE month = '{month}'")).await == 1).await;

    let (stored, instants) = billed(&h.db, &tenant, &month).await;
    let quantity = |i: usize| i as i64 + 1 + if names[i] == "r025" { 5 } else { 0 };
    let expected_totals: BTreeMap<String, i64> = names.iter().enumerate().map(|(i, n)| (n.clone(), quantity(i) * 5)).collect();
    assert_eq!(stored.totals, expected_totals, "each account billed once: r003 without its late usage, r025 with");
    assert_eq!(instants, 3, "three chunks");
    let expected_settlements: BTreeMap<String, Vec<(String, i64, String)>> =
        names.iter().enumerate().step_by(2).map(|(i, n)| (n.clone(), vec![("sms".to_owned(), quantity(i) * 5, "posted".to_owned())])).collect();
    assert_eq!(stored.settlements, expected_settlements, "the postpaid accounts settled once each");
    assert_eq!(sql_i64(&h.db, "SELECT accounts FROM month_closes").await, 30, "the month's count spans the crash");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM month_closings").await, 0);
    assert_eq!(sql_i64(&h.db, &late("r003")).await, 1, "r003's late usage waits for the next close");

    // The next close bills r003's late usage: it shows on this month's bill so far.
    let current = dashed(month_start(0));
    let (_, so_far) = h.get_json(&format!("/v1/bills?from={current}&username=r003&month_to_date=true"), token).await;
    let line = &so_far["items"][0]["lines"][0];
    assert_eq!(
        (line["kind"].as_str(), line["for_month"].as_str(), line["quantity"].as_str(), line["money"].as_str(), line["previous_quantity"].as_str()),
        (Some("supplement"), Some(month.as_str()), Some("5"), Some("0.25"), Some("4")),
        "{so_far}"
    );
    h.assert_ledger_sound().await;
}

/// The automatic close with two tenants, in chunks of two accounts: one
/// tenant's month cannot be billed from its second chunk on (an account's
/// month priced past the limit); it stays closing after its first chunk,
/// with the error logged, while the other tenant's month closes. Once a
/// tariff prices the month again, the next automatic close resumes it.
async fn an_unbillable_tenant_stays_closing_while_the_others_close(backend: Backend) {
    let mut h = Harness::start_with(backend, &["--close-chunk-accounts", "2"]).await;
    let stuck = h.create_tenant("Stuck Tenant").await;
    let fine = h.create_tenant("Fine Tenant").await;
    let m1 = month_start(1);
    let month = dashed(m1);
    let graduated = |price: &str| json!({"model": "graduated", "tiers": [{"min": "0", "max": null, "unit": "1", "price": price}]});
    for (tenant, prefix, count) in [(&stuck, "x", 5), (&fine, "y", 3)] {
        let token = tenant.api_token.as_str();
        h.deposit(tenant, "10000.00").await;
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:04}")).collect();
        for name in &names {
            create_accounts(&h, token, std::slice::from_ref(name)).await;
        }
        fund_accounts(&h, token, &names, "100.00").await;
        tariff(&h, token, "sms", per_unit("0.05", "1")).await;
        tariff(&h, token, "email", graduated("0.0001")).await;
        usage_all(&h, token, names.iter().map(|n| json!({"id": format!("{n}-sms"), "account": n, "product": "sms", "quantity": 2, "occurred_at": at(m1, 2, 2)})).collect()).await;
    }
    let stuck_token = stuck.api_token.as_str();
    usage_all(&h, stuck_token, vec![json!({"id": "x0003-email", "account": "x0003", "product": "email", "quantity": 200000, "occurred_at": at(m1, 3, 12)})]).await;
    // From the 20th the largest price there is: at the month's end x0003's e-mail is past the limit.
    tariff_from(&h, stuck_token, "email", graduated("1000000"), &at(m1, 20, 0)).await;

    h.server.kill_hard().await;
    h.server = TestServer::start(&h.db, &["--auto-close-after-hours", "1", "--close-chunk-accounts", "2"]).await;
    let fine_id = id_of(&h.db, "tenants", "public_id", &fine.tenant_id).await;
    eventually("the fine tenant's month to close", async || sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE tenant_id = {fine_id}")).await == 1).await;
    eventually("the stuck tenant's failure to be logged", async || h.server.log().await.contains("automatic month close failed for this tenant")).await;
    let log = h.server.log().await;
    let failure = log.lines().find(|l| l.contains("automatic month close failed for this tenant")).unwrap();
    assert!(failure.contains(&stuck.tenant_id) && failure.contains("x0003") && failure.contains("cannot be billed") && failure.contains("stays closing"), "{failure}");
    let first_chunk_end = id_of(&h.db, "accounts", "username", "x0001").await;
    assert_eq!(closing(&h.db, &month).await, Some((first_chunk_end, 1, 2)), "the stuck month is closing after its first chunk");
    let stuck_id = id_of(&h.db, "tenants", "public_id", &stuck.tenant_id).await;
    assert_eq!(sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE tenant_id = {stuck_id}")).await, 0);
    assert_eq!(billed(&h.db, &fine, &month).await.0.totals.len(), 3);

    // A later version, still within the month, prices it again; the next automatic close resumes.
    tariff_from(&h, stuck_token, "email", graduated("0.0002"), &at(m1, 25, 0)).await;
    h.server.kill_hard().await;
    h.server = TestServer::start(&h.db, &["--auto-close-after-hours", "1", "--close-chunk-accounts", "2"]).await;
    eventually("the stuck tenant's month to close", async || sql_i64(&h.db, &format!("SELECT COUNT(*) FROM month_closes WHERE tenant_id = {stuck_id}")).await == 1).await;
    let (stored, instants) = billed(&h.db, &stuck, &month).await;
    let expected: BTreeMap<String, i64> = (0..5).map(|i| (format!("x{i:04}"), if i == 3 { 10 + 4_000 } else { 10 })).collect();
    assert_eq!(stored.totals, expected);
    assert_eq!(instants, 3, "five accounts in chunks of two");
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM month_closings").await, 0);
    h.assert_ledger_sound().await;
}

/// While a tenant's 300-account month closes in chunks of 10, another
/// tenant's transfers keep coming; some of them commit between the close's
/// chunks (between the instants of two chunks' bills).
async fn other_tenants_are_served_between_chunks(backend: Backend) {
    let h = Harness::start_with(backend, &["--close-chunk-accounts", "10"]).await;
    let closing_tenant = h.create_tenant("Closing Tenant").await;
    let busy = h.create_tenant("Busy Tenant").await;
    let token = closing_tenant.api_token.as_str();
    h.deposit(&closing_tenant, "10000.00").await;
    h.deposit(&busy, "10000.00").await;
    let names: Vec<String> = (0..300).map(|i| format!("b{i:04}")).collect();
    create_accounts(&h, token, &names).await;
    fund_accounts(&h, token, &names, "1.00").await;
    create_accounts(&h, &busy.api_token, &["busy0001".to_owned()]).await;
    tariff(&h, token, "sms", per_unit("0.05", "1")).await;
    let m1 = month_start(1);
    usage_all(&h, token, names.iter().map(|n| json!({"id": n, "account": n, "product": "sms", "quantity": 1, "occurred_at": at(m1, 2, 2)})).collect()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..8)
        .map(|sender| {
            let (http, base, token, stop) = (h.http.clone(), h.server.base.clone(), busy.api_token.clone(), stop.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"from": {}, "to": {"username": "busy0001"}, "amount": "0.01"});
                    let response = http.post(format!("{base}/v1/transfers")).bearer_auth(&token).header("Idempotency-Key", format!("busy-{sender}-{sent}")).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 201);
                    sent += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    close(&h, token, &dashed(m1)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }

    let mut conn = connect(&h.db).await;
    let closing_id = id_of(&h.db, "tenants", "public_id", &closing_tenant.tenant_id).await;
    let busy_id = id_of(&h.db, "tenants", "public_id", &busy.tenant_id).await;
    let chunks: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT created_at_us FROM bills WHERE tenant_id = $1 AND month = $2 ORDER BY 1").bind(closing_id).bind(dashed(m1)).fetch_all(&mut conn).await.unwrap();
    assert_eq!(chunks.len(), 30, "300 accounts in chunks of 10");
    let transfers: Vec<i64> = sqlx::query_scalar("SELECT created_at_us FROM transfers WHERE tenant_id = $1 AND created_at_us > $2 AND created_at_us < $3")
        .bind(busy_id)
        .bind(chunks[0])
        .bind(chunks[29])
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let gaps_served = chunks.windows(2).filter(|gap| transfers.iter().any(|t| (gap[0]..gap[1]).contains(t))).count();
    assert!(gaps_served >= 10, "the other tenant's transfers commit between the chunks: {} of 29 gaps, {} transfers", gaps_served, transfers.len());
}
