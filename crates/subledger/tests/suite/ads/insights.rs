//! `account_insights` and `account_insights_breakdowns`: answered from the
//! synced daily rows in Graph's row format; every code of both operations
//! (the query rules are the domain's, `subledger_domain::insights`), on the
//! sandbox and, with exact figures, on Graph.

use serde_json::json;

use super::world::{Platform, World, day, graph};
use super::*;
use crate::on_both_backends;

on_both_backends!(insights_on_the_sandbox, insights_on_graph);

const INSIGHTS: &str = "/api/v1/account_insights";
const BREAKDOWNS: &str = "/api/v1/account_insights_breakdowns";

async fn insights_on_the_sandbox(backend: Backend) {
    let w = World::start(backend, Platform::Sandbox).await;
    codes(&w, &w.account).await;
    // The spec's example: rows with date_start and date_stop, spend as Graph writes it.
    let answer = w
        .agency
        .call(&w.h, "GET", INSIGHTS, "ex", json!({"id": w.account, "time_range": {"since": day(-6), "until": day(0)}, "fields": ["spend", "purchase_roas"], "time_increment": "all_days"}))
        .await;
    let rows = ok(&answer, "ex").as_array().unwrap();
    assert!(rows.len() <= 1, "{}", answer.raw);
    for row in rows {
        assert_eq!((&row["date_start"], &row["date_stop"]), (&json!(day(-6)), &json!(day(0))), "{row}");
        assert!(row["spend"].as_str().unwrap().contains('.'), "{row}");
    }
    let answer = w
        .agency
        .call(
            &w.h,
            "GET",
            BREAKDOWNS,
            "ex",
            json!({"id": w.account, "breakdowns": "country", "time_range": {"since": day(-6), "until": day(0)}, "fields": ["account_id", "spend"], "limit": 200, "sort": "spend_descending"}),
        )
        .await;
    for row in ok(&answer, "ex").as_array().unwrap() {
        assert!(row["country"].is_string() && row["account_id"] == json!(w.account), "{row}");
    }
}

async fn insights_on_graph(backend: Backend) {
    let w = World::start(backend, Platform::Graph).await;
    codes(&w, graph::SPENDING).await;
    let (h, agency, id) = (&w.h, &w.agency, graph::SPENDING);
    let week = json!({"since": day(-6), "until": day(0)});
    // The spec's example: spend and purchase_roas over the week, as one row.
    let answer = agency.call(h, "GET", INSIGHTS, "ex", json!({"id": id, "time_range": week, "fields": ["spend", "purchase_roas"], "time_increment": "all_days"})).await;
    let rows = ok(&answer, "ex").as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", answer.raw);
    assert_eq!((&rows[0]["spend"], &rows[0]["date_start"], &rows[0]["date_stop"]), (&json!("18.00"), &json!(day(-6)), &json!(day(0))));
    let roas = &rows[0]["purchase_roas"][0];
    assert_eq!(roas["action_type"], "purchase");
    let value: f64 = roas["value"].as_str().unwrap().parse().unwrap();
    assert!((value - 123.40 / 18.00).abs() < 1e-5, "{roas}");
    // A row a day, from the query string with time_range as JSON text.
    let range = encode(&week.to_string());
    let answer = send(h, Method::GET, &format!("{INSIGHTS}?access_token={}&id={id}&time_range={range}&fields=spend,impressions&time_increment=1&search_id=q", agency.token()), None).await;
    let days: Vec<(String, String)> = ok(&answer, "q").as_array().unwrap().iter().map(|r| (r["date_start"].as_str().unwrap().to_owned(), r["spend"].as_str().unwrap().to_owned())).collect();
    assert_eq!(days, [(day(-2), "5.66".to_owned()), (day(-1), "12.34".to_owned())]);
    // A date preset when no time_range is given.
    let answer = agency.call(h, "GET", INSIGHTS, "p", json!({"id": id, "date_preset": "yesterday", "fields": ["spend", "clicks"]})).await;
    assert_eq!(ok(&answer, "p"), &json!([{"date_start": day(-1), "date_stop": day(-1), "spend": "12.34", "clicks": "20"}]));
    // By country, sorted and limited.
    let answer = agency.call(h, "GET", BREAKDOWNS, "b", json!({"id": id, "breakdowns": "country", "time_range": week, "fields": ["spend"], "sort": "spend_ascending"})).await;
    let countries: Vec<(&str, &str)> = ok(&answer, "b").as_array().unwrap().iter().map(|r| (r["country"].as_str().unwrap(), r["spend"].as_str().unwrap())).collect();
    assert_eq!(countries, [("DE", "3.00"), ("US", "15.00")]);
    let answer =
        agency.call(h, "GET", BREAKDOWNS, "b", json!({"id": id, "breakdowns": ["country"], "time_range": week, "fields": ["spend", "account_id"], "sort": "spend_descending", "limit": 1})).await;
    assert_eq!(ok(&answer, "b"), &json!([{"country": "US", "spend": "15.00", "account_id": id, "date_start": day(-6), "date_stop": day(0)}]));
    // An account with nothing synced answers no rows.
    let answer = agency.call(h, "GET", INSIGHTS, "e", json!({"id": graph::EMPTY, "time_range": week, "fields": ["spend"]})).await;
    assert_eq!(ok(&answer, "e"), &json!([]));
}

/// Every code of both operations, for an account of the agency.
async fn codes(w: &World, id: &str) {
    let (h, agency) = (&w.h, &w.agency);
    let week = json!({"since": day(-6), "until": day(0)});
    let base = json!({"id": id, "time_range": week, "fields": ["spend"]});
    let with = |changes: Value| {
        let mut params = base.clone();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                params.as_object_mut().unwrap().remove(name);
            } else {
                params[name] = value.clone();
            }
        }
        params
    };
    let breakdown_base = |changes: Value| {
        let mut params = with(changes.clone());
        if !changes.as_object().unwrap().contains_key("breakdowns") {
            params["breakdowns"] = json!("country");
        }
        params
    };
    let both: [(Value, i64); 15] = [
        (json!({"id": null}), 1002),
        (json!({"id": ""}), 1002),
        (json!({"id": "404"}), 1003),
        (json!({"id": w.other_account}), 1003),
        (json!({"fields": null}), 1009),
        (json!({"fields": []}), 1009),
        (json!({"fields": ["spend", "no_such_metric"]}), 1010),
        (json!({"fields": 7}), 1010),
        (json!({"time_range": null}), 1015),
        (json!({"time_range": {"since": day(0), "until": day(-1)}}), 1015),
        (json!({"time_range": {"since": "2024-13-01", "until": day(0)}}), 1015),
        (json!({"time_range": "soon"}), 1015),
        (json!({"time_range": null, "date_preset": "last_century"}), 1015),
        (json!({"time_range": {"since": day(-38 * 31), "until": day(0)}}), 1016),
        (json!({"fields": ["total_postbacks", "spend"]}), 1017),
    ];
    for (changes, code) in &both {
        let answer = agency.call(h, "GET", INSIGHTS, "i", with(changes.clone())).await;
        refused(&answer, *code, "i");
        let answer = agency.call(h, "GET", BREAKDOWNS, "b", breakdown_base(changes.clone())).await;
        refused(&answer, *code, "b");
    }
    let insights_only: [(Value, i64); 5] = [
        (json!({"time_increment": "weekly"}), 1024),
        (json!({"time_increment": 0}), 1024),
        (json!({"time_increment": 91}), 1024),
        (json!({"time_increment": 1, "time_range": {"since": day(-100), "until": day(0)}}), 1025),
        (json!({"time_increment": "1", "time_range": {"since": day(-91), "until": day(0)}}), 1025),
    ];
    for (changes, code) in insights_only {
        refused(&agency.call(h, "GET", INSIGHTS, "i", with(changes)).await, code, "i");
    }
    let breakdowns_only: [(Value, i64); 7] = [
        (json!({"breakdowns": null}), 1018),
        (json!({"breakdowns": "planet"}), 1018),
        (json!({"sort": "planet_ascending"}), 1019),
        (json!({"sort": "spend_sideways"}), 1019),
        (json!({"limit": 201}), 1026),
        (json!({"limit": 0}), 1026),
        (json!({"limit": "many"}), 1026),
    ];
    for (changes, code) in breakdowns_only {
        let mut params = breakdown_base(changes.clone());
        if changes.get("breakdowns").is_some_and(Value::is_null) {
            params.as_object_mut().unwrap().remove("breakdowns");
        }
        refused(&agency.call(h, "GET", BREAKDOWNS, "b", params).await, code, "b");
    }
    // Valid limits and increments answer.
    ok(&agency.call(h, "GET", BREAKDOWNS, "b", breakdown_base(json!({"limit": 200}))).await, "b");
    for increment in [json!(1), json!("monthly"), json!("all_days"), json!(90)] {
        ok(&agency.call(h, "GET", INSIGHTS, "i", with(json!({"time_increment": increment}))).await, "i");
    }
}
