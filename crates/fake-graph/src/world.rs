//! The fake's state and Graph's answers, without I/O: what Meta holds
//! (businesses, ad accounts, creation requests, pixels, insights), the
//! knobs a test set, and the call counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::{AccountSeed, Control, Relation, RequestSeed};

/// Graph's default page size, and the largest it answers.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 500;

/// `AdAccount.PermittedTasks` in the SDK.
const PERMITTED_TASKS: [&str; 5] = ["ADVERTISE", "ANALYZE", "DRAFT", "MANAGE", "AA_ANALYZE"];

#[derive(Debug, Default)]
struct BusinessState {
    name: String,
    requests: Vec<String>,
}

#[derive(Debug)]
struct AccountState {
    seed: AccountSeed,
    /// Businesses it is shared with, and their tasks.
    agencies: BTreeMap<String, Vec<String>>,
    /// (day, breakdown or "") → rows.
    insights: BTreeMap<(Date, String), Vec<Map<String, Value>>>,
}

#[derive(Debug)]
struct PixelState {
    name: String,
    business_id: String,
    shared_accounts: BTreeSet<String>,
}

/// A knob that applies to some calls.
#[derive(Debug)]
struct Rule<T> {
    path: Option<String>,
    /// Calls left; `None` until cleared.
    times: Option<u32>,
    what: T,
}

/// Takes the first rule that applies to `path`, spending one of its times.
fn take<T: Clone>(rules: &mut Vec<Rule<T>>, path: &str) -> Option<T> {
    let index = rules.iter().position(|rule| rule.path.as_deref().is_none_or(|wanted| wanted == path))?;
    let what = rules[index].what.clone();
    if let Some(times) = rules[index].times.as_mut() {
        *times -= 1;
        if *times == 0 {
            rules.remove(index);
        }
    }
    Some(what)
}

/// What a call meets before it is answered.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    Hang,
    Fail { status: u16, error: Option<Value> },
}

pub(crate) struct Arrival {
    pub latency: Duration,
    pub fault: Option<Fault>,
    pub headers: BTreeMap<String, String>,
}

/// Graph's error object, with the HTTP status it comes with.
#[derive(Debug)]
struct GraphFailure {
    status: u16,
    code: i64,
    subcode: Option<i64>,
    kind: &'static str,
    message: String,
}

type Answer = Result<Value, GraphFailure>;

fn no_object(method: &str, id: &str) -> GraphFailure {
    GraphFailure {
        status: 400,
        code: 100,
        subcode: Some(33),
        kind: "GraphMethodException",
        message: format!("Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
    }
}

fn invalid(message: impl Into<String>) -> GraphFailure {
    GraphFailure { status: 400, code: 100, subcode: None, kind: "OAuthException", message: format!("(#100) {}", message.into()) }
}

fn success() -> Answer {
    Ok(json!({"success": true}))
}

/// The request's parameters, from its query and form body.
pub(crate) struct Params(pub Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, GraphFailure> {
        self.get(name).filter(|value| !value.is_empty()).ok_or_else(|| invalid(format!("The parameter {name} is required")))
    }
}

/// One field of `fields=`: `adaccounts.limit(2){id,name}` → name, limit, subfields.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    limit: Option<usize>,
    sub: Vec<Field>,
}

/// Splits `a,b{c,d},e.limit(3){f}` at the commas outside braces and parentheses.
fn parse_fields(text: &str) -> Vec<Field> {
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (index, c) in text.char_indices().chain([(text.len(), ',')]) {
        match c {
            '{' | '(' => depth += 1,
            '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                let item = text[start..index].trim();
                if !item.is_empty() {
                    fields.push(parse_field(item));
                }
                start = index + 1;
            }
            _ => {}
        }
    }
    fields
}

fn parse_field(item: &str) -> Field {
    let (head, sub) = match item.find('{') {
        Some(open) => (&item[..open], parse_fields(item[open + 1..].trim_end_matches('}'))),
        None => (item, Vec::new()),
    };
    let (name, limit) = match head.split_once(".limit(") {
        Some((name, rest)) => (name, rest.trim_end_matches(')').parse().ok()),
        None => (head, None),
    };
    Field { name: name.to_owned(), limit, sub }
}

/// The object with only the fields asked for (`id` always), or `default`'s when none were.
fn select(object: &Map<String, Value>, fields: &[Field], default: &[&str]) -> Map<String, Value> {
    let names: Vec<&str> = if fields.is_empty() { default.to_vec() } else { fields.iter().map(|field| field.name.as_str()).collect() };
    object.iter().filter(|(name, _)| *name == "id" || names.contains(&name.as_str())).map(|(name, value)| (name.clone(), value.clone())).collect()
}

/// Cursors are opaque to clients: the offset, in hex, behind a prefix.
fn cursor(offset: usize) -> String {
    format!("Y3Vyc29y{:x}", offset)
}

fn offset_of(cursor: &str) -> Option<usize> {
    usize::from_str_radix(cursor.strip_prefix("Y3Vyc29y")?, 16).ok()
}

fn cents_from_dollars(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction_cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(fraction_cents)
}

fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

pub struct World {
    base_url: String,
    version: String,
    latency: Duration,
    tokens: HashMap<String, String>,
    businesses: BTreeMap<String, BusinessState>,
    accounts: BTreeMap<String, AccountState>,
    requests: BTreeMap<String, RequestSeed>,
    pixels: BTreeMap<String, PixelState>,
    faults: Vec<Rule<Fault>>,
    header_rules: Vec<Rule<BTreeMap<String, String>>>,
    calls: HashMap<String, u64>,
    total_calls: u64,
}

impl World {
    pub(crate) fn new(base_url: String, version: String, latency: Duration) -> World {
        World {
            base_url,
            version,
            latency,
            tokens: HashMap::new(),
            businesses: BTreeMap::new(),
            accounts: BTreeMap::new(),
            requests: BTreeMap::new(),
            pixels: BTreeMap::new(),
            faults: Vec::new(),
            header_rules: Vec::new(),
            calls: HashMap::new(),
            total_calls: 0,
        }
    }

    pub(crate) fn apply(&mut self, control: Control) -> Result<(), String> {
        match control {
            Control::AddToken { token, business_id } => {
                self.business(&business_id)?;
                self.tokens.insert(token, business_id);
            }
            Control::AddBusiness { id, name } => {
                self.businesses.entry(id).or_default().name = name;
            }
            Control::AddAdAccount(seed) => {
                self.business(&seed.business_id)?;
                if seed.account_id.is_empty() || !seed.account_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("ad account id {:?} is not digits", seed.account_id));
                }
                let insights = self.accounts.remove(&seed.account_id).map(|old| old.insights).unwrap_or_default();
                self.accounts.insert(seed.account_id.clone(), AccountState { seed, agencies: BTreeMap::new(), insights });
            }
            Control::AddCreationRequest(seed) => {
                if let Some(missing) = seed.ad_account_ids.iter().find(|id| !self.accounts.contains_key(*id)) {
                    return Err(format!("creation request {} issues unknown ad account {missing}", seed.id));
                }
                let business = self.businesses.get_mut(&seed.business_id).ok_or_else(|| format!("no business {}", seed.business_id))?;
                if !business.requests.contains(&seed.id) {
                    business.requests.push(seed.id.clone());
                }
                self.requests.insert(seed.id.clone(), seed);
            }
            Control::AddPixel { id, name, business_id } => {
                self.business(&business_id)?;
                self.pixels.insert(id, PixelState { name, business_id, shared_accounts: BTreeSet::new() });
            }
            Control::AddInsights { account_id, day, breakdown, rows } => {
                let day: Date = day.parse().map_err(|_| format!("day {day:?} is not YYYY-MM-DD"))?;
                self.account_mut(&account_id)?.insights.insert((day, breakdown.unwrap_or_default()), rows);
            }
            Control::AddSpend { account_id, day, cents } => {
                let day: Date = day.parse().map_err(|_| format!("day {day:?} is not YYYY-MM-DD"))?;
                let account = self.account_mut(&account_id)?;
                account.seed.amount_spent_cents += cents;
                let rows = account.insights.entry((day, String::new())).or_insert_with(|| vec![Map::new()]);
                if rows.is_empty() {
                    rows.push(Map::new());
                }
                let spent = rows[0].get("spend").and_then(Value::as_str).and_then(cents_from_dollars).unwrap_or(0);
                rows[0].insert("spend".to_owned(), Value::String(dollars(spent + cents)));
            }
            Control::SetLatency { ms } => self.latency = Duration::from_millis(ms),
            Control::Hang { path, times } => self.faults.push(Rule { path, times, what: Fault::Hang }),
            Control::Fail { path, times, status, error } => self.faults.push(Rule { path, times, what: Fault::Fail { status, error } }),
            Control::SendHeaders { headers, times } => self.header_rules.push(Rule { path: None, times, what: headers }),
            Control::ClearFaults => {
                self.faults.clear();
                self.header_rules.clear();
                self.latency = Duration::ZERO;
            }
            Control::ResetCalls => {
                self.calls.clear();
                self.total_calls = 0;
            }
        }
        Ok(())
    }

    fn business(&self, id: &str) -> Result<&BusinessState, String> {
        self.businesses.get(id).ok_or_else(|| format!("no business {id}"))
    }

    fn account_mut(&mut self, id: &str) -> Result<&mut AccountState, String> {
        self.accounts.get_mut(id).ok_or_else(|| format!("no ad account {id}"))
    }

    pub(crate) fn calls(&self, path: &str) -> u64 {
        self.calls.get(path.trim_start_matches('/')).copied().unwrap_or(0)
    }

    pub(crate) fn total_calls(&self) -> u64 {
        self.total_calls
    }

    pub(crate) fn account(&self, id: &str) -> Option<AccountSeed> {
        self.accounts.get(id).map(|account| account.seed.clone())
    }

    pub(crate) fn agencies(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        self.accounts.get(id).map(|account| account.agencies.clone()).unwrap_or_default()
    }

    pub(crate) fn pixel_accounts(&self, id: &str) -> Vec<String> {
        self.pixels.get(id).map(|pixel| pixel.shared_accounts.iter().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn calls_json(&self) -> Value {
        json!({"total": self.total_calls, "paths": self.calls})
    }

    /// The path after `/{version}/`, or the whole path when the version is not ours.
    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix('/')?.strip_prefix(self.version.as_str())?.strip_prefix('/')
    }

    /// Counts a call and picks what it meets.
    pub(crate) fn arrive(&mut self, path: &str) -> Arrival {
        let key = self.relative(path).unwrap_or(path).to_owned();
        self.total_calls += 1;
        let fault = take(&mut self.faults, &key);
        let headers = take(&mut self.header_rules, &key).unwrap_or_default();
        *self.calls.entry(key).or_default() += 1;
        Arrival { latency: self.latency, fault, headers }
    }

    /// Graph's answer to a call: HTTP status and JSON body.
    pub(crate) fn answer(&mut self, method: &str, path: &str, params: &Params) -> (u16, Value) {
        match self.route(method, path, params) {
            Ok(body) => (200, body),
            Err(failure) => {
                let mut error = json!({"message": failure.message, "type": failure.kind, "code": failure.code, "fbtrace_id": format!("AFake{:08x}", self.total_calls)});
                if let Some(subcode) = failure.subcode {
                    error["error_subcode"] = json!(subcode);
                }
                (failure.status, json!({"error": error}))
            }
        }
    }

    fn route(&mut self, method: &str, path: &str, params: &Params) -> Answer {
        let relative = self.relative(path).ok_or_else(|| invalid(format!("Unknown path components: {path}")))?.to_owned();
        let business_id = match params.get("access_token") {
            None | Some("") => return Err(GraphFailure { status: 400, code: 104, subcode: None, kind: "OAuthException", message: "An access token is required to request this resource.".to_owned() }),
            Some(token) => self.tokens.get(token).cloned().ok_or_else(|| GraphFailure {
                status: 400,
                code: 190,
                subcode: None,
                kind: "OAuthException",
                message: "Invalid OAuth access token - Cannot parse access token".to_owned(),
            })?,
        };
        let segments: Vec<&str> = relative.split('/').collect();
        let fields = parse_fields(params.get("fields").unwrap_or(""));
        match (method, segments.as_slice()) {
            (_, [node, rest @ ..]) if node.starts_with("act_") => {
                let id = node.trim_start_matches("act_");
                if !self.sees_account(&business_id, id) {
                    return Err(no_object(method, node));
                }
                match (method, rest) {
                    ("GET", []) => Ok(Value::Object(select(&self.account_json(id), &fields, &["account_id"]))),
                    ("POST", []) => self.update_account(id, params),
                    ("GET", ["agencies"]) => {
                        let agencies = self.accounts[id]
                            .agencies
                            .iter()
                            .map(|(business, tasks)| json!({"id": business, "name": self.businesses.get(business).map(|b| b.name.as_str()).unwrap_or(""), "permitted_tasks": tasks}));
                        let items = agencies.map(|agency| Value::Object(select(agency.as_object().expect("an object"), &fields, &["name"]))).collect();
                        self.page(&relative, params, items)
                    }
                    ("POST", ["agencies"]) => self.share_account(id, params),
                    ("DELETE", ["agencies"]) => {
                        let business = params.required("business")?.to_owned();
                        self.accounts.get_mut(id).expect("seen above").agencies.remove(&business);
                        success()
                    }
                    ("GET", ["adspixels"]) => {
                        let pixels = self.pixels.iter().filter(|(_, pixel)| pixel.shared_accounts.contains(id)).map(|(pixel_id, pixel)| json!({"id": pixel_id, "name": pixel.name}));
                        let items = pixels.map(|pixel| Value::Object(select(pixel.as_object().expect("an object"), &fields, &[]))).collect();
                        self.page(&relative, params, items)
                    }
                    ("GET", ["insights"]) => self.insights(id, &relative, params, &fields),
                    _ => Err(no_object(method, &relative)),
                }
            }
            ("GET", [business, edge @ ("client_ad_accounts" | "owned_ad_accounts")]) => {
                if *business != business_id {
                    return Err(no_object(method, business));
                }
                // Client accounts: those seeded as clients, and those shared with the business (it is their agency).
                let owned = *edge == "owned_ad_accounts";
                let accounts = self.accounts.values().filter(|account| {
                    let seeded = account.seed.business_id == business_id && (account.seed.relation == Relation::Owned) == owned;
                    seeded || (!owned && account.agencies.contains_key(&business_id))
                });
                let items = accounts.map(|account| Value::Object(select(&self.account_json(&account.seed.account_id), &fields, &["account_id"]))).collect();
                self.page(&relative, params, items)
            }
            ("GET", [business, "adaccountcreationrequests"]) => {
                if *business != business_id {
                    return Err(no_object(method, business));
                }
                let ids = self.businesses.get(*business).map(|b| b.requests.clone()).unwrap_or_default();
                let items = ids.iter().map(|id| Value::Object(self.request_json(id, &fields))).collect();
                self.page(&relative, params, items)
            }
            ("GET", [request, "adaccounts"]) => {
                let seed = self.requests.get(*request).filter(|seed| seed.business_id == business_id).ok_or_else(|| no_object(method, request))?;
                let items = self.issued_accounts(seed, &fields);
                self.page(&relative, params, items)
            }
            (_, [pixel_id, "shared_accounts"]) => {
                let pixel = self.pixels.get(*pixel_id).filter(|pixel| pixel.business_id == business_id).ok_or_else(|| no_object(method, pixel_id))?;
                if method == "GET" {
                    let items = pixel.shared_accounts.iter().map(|id| Value::Object(select(&self.account_json(id), &fields, &["account_id"]))).collect();
                    return self.page(&relative, params, items);
                }
                let account_id = params.required("account_id")?.trim_start_matches("act_").to_owned();
                if params.required("business")? != pixel.business_id {
                    return Err(invalid("Param business must be the business that owns the pixel"));
                }
                if !self.sees_account(&business_id, &account_id) {
                    return Err(no_object(method, &format!("act_{account_id}")));
                }
                let shared = &mut self.pixels.get_mut(*pixel_id).expect("seen above").shared_accounts;
                match method {
                    "POST" => shared.insert(account_id),
                    "DELETE" => shared.remove(&account_id),
                    _ => return Err(no_object(method, &relative)),
                };
                success()
            }
            (_, [node, ..]) => Err(no_object(method, node)),
            _ => Err(no_object(method, &relative)),
        }
    }

    /// A business sees the ad accounts seeded under it and those shared with it.
    fn sees_account(&self, business_id: &str, account_id: &str) -> bool {
        self.accounts.get(account_id).is_some_and(|account| account.seed.business_id == business_id || account.agencies.contains_key(business_id))
    }

    fn account_json(&self, id: &str) -> Map<String, Value> {
        let seed = &self.accounts[id].seed;
        let mut object = json!({
            "id": format!("act_{}", seed.account_id),
            "account_id": seed.account_id,
            "name": seed.name,
            "account_status": seed.account_status,
            "disable_reason": seed.disable_reason,
            "currency": seed.currency,
            "spend_cap": seed.spend_cap_cents.to_string(),
            "amount_spent": seed.amount_spent_cents.to_string(),
            "balance": seed.balance_cents.to_string(),
            "created_time": seed.created_time,
            "timezone_id": seed.timezone_id,
            "timezone_name": seed.timezone_name,
        });
        if seed.relation == Relation::Owned {
            let name = self.businesses.get(&seed.business_id).map(|b| b.name.as_str()).unwrap_or("");
            object["business"] = json!({"id": seed.business_id, "name": name});
            object["owner"] = json!(seed.business_id);
        }
        match object {
            Value::Object(map) => map,
            _ => unreachable!("json! of an object"),
        }
    }

    fn request_json(&self, id: &str, fields: &[Field]) -> Map<String, Value> {
        let seed = &self.requests[id];
        let mut object = seed.fields.clone();
        object.insert("id".to_owned(), json!(seed.id));
        object.insert("status".to_owned(), json!(seed.status));
        object.insert("time_created".to_owned(), json!(seed.time_created));
        if let Some(oe) = &seed.oe_request_id {
            object.insert("oe_request_id".to_owned(), json!(oe));
        }
        let mut selected = select(&object, fields, &[]);
        if let Some(edge) = fields.iter().find(|field| field.name == "adaccounts") {
            let items = self.issued_accounts(seed, &edge.sub);
            let limit = edge.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
            let next_path = format!("{}/adaccounts", seed.id);
            let sub_fields = edge.sub.iter().map(|field| field.name.as_str()).collect::<Vec<_>>().join(",");
            let params = Params(vec![("fields".to_owned(), sub_fields), ("limit".to_owned(), limit.to_string())]);
            selected.insert("adaccounts".to_owned(), paged(&self.base_url, &self.version, &next_path, &params, items, 0, limit));
        }
        selected
    }

    fn issued_accounts(&self, seed: &RequestSeed, fields: &[Field]) -> Vec<Value> {
        seed.ad_account_ids.iter().filter(|id| self.accounts.contains_key(*id)).map(|id| Value::Object(select(&self.account_json(id), fields, &["account_id"]))).collect()
    }

    /// `POST act_{id}`: `spend_cap_action=reset` (spend back to 0, cap to
    /// $0.01), then `spend_cap` in dollars (0 removes the cap; a cap under
    /// what is spent is refused).
    fn update_account(&mut self, id: &str, params: &Params) -> Answer {
        let reset = match params.get("spend_cap_action") {
            None => false,
            Some("reset") => true,
            Some(other) => return Err(invalid(format!("Param spend_cap_action must be one of {{reset, delete}}, got {other}"))),
        };
        let cap = match params.get("spend_cap") {
            None => None,
            Some(text) => Some(cents_from_dollars(text).ok_or_else(|| invalid("Param spend_cap must be a number with at most two decimals"))?),
        };
        let seed = &mut self.accounts.get_mut(id).expect("seen by the caller").seed;
        let spent = if reset { 0 } else { seed.amount_spent_cents };
        if let Some(cap) = cap
            && cap != 0
            && cap < spent
        {
            return Err(GraphFailure {
                status: 400,
                code: 100,
                subcode: Some(1_885_272),
                kind: "OAuthException",
                message: "(#100) The spend cap must be higher than the amount already spent".to_owned(),
            });
        }
        if reset {
            seed.amount_spent_cents = 0;
            seed.spend_cap_cents = 1;
        }
        if let Some(cap) = cap {
            seed.spend_cap_cents = cap;
        }
        success()
    }

    /// `POST act_{id}/agencies`: shares the account with a known business.
    fn share_account(&mut self, id: &str, params: &Params) -> Answer {
        let business = params.required("business")?.to_owned();
        if !self.businesses.contains_key(&business) {
            return Err(invalid("Param business must be a valid business id"));
        }
        let tasks: Vec<String> = serde_json::from_str(params.required("permitted_tasks")?).map_err(|_| invalid("Param permitted_tasks must be a JSON array of strings"))?;
        if let Some(unknown) = tasks.iter().find(|task| !PERMITTED_TASKS.contains(&task.as_str())) {
            return Err(invalid(format!("Param permitted_tasks[] has an unknown task {unknown}")));
        }
        self.accounts.get_mut(id).expect("seen by the caller").agencies.insert(business, tasks);
        success()
    }

    fn insights(&self, id: &str, relative: &str, params: &Params, fields: &[Field]) -> Answer {
        let range: Value = serde_json::from_str(params.required("time_range")?).map_err(|_| invalid("Param time_range must be a JSON object"))?;
        let day = |name: &str| range.get(name).and_then(Value::as_str).and_then(|day| day.parse::<Date>().ok()).ok_or_else(|| invalid(format!("Param time_range[{name}] must be a date")));
        let (since, until) = (day("since")?, day("until")?);
        if since > until {
            return Err(invalid("time_range since is after until"));
        }
        if params.get("time_increment").is_some_and(|increment| increment != "1") {
            return Err(invalid("this fake answers time_increment=1 only"));
        }
        if fields.iter().any(|field| field.name == "total_postbacks") && fields.len() > 1 {
            return Err(invalid("total_postbacks cannot be requested with other fields"));
        }
        let breakdown = params.get("breakdowns").unwrap_or("").to_owned();
        let columns: Vec<&str> = breakdown.split(',').filter(|column| !column.is_empty()).collect();
        let account = &self.accounts[id];
        let mut items = Vec::new();
        for ((day, _), rows) in account.insights.range((since, breakdown.clone())..).take_while(|((day, _), _)| *day <= until).filter(|((_, key), _)| *key == breakdown) {
            for row in rows {
                let mut out: Map<String, Value> =
                    row.iter().filter(|(name, _)| columns.contains(&name.as_str()) || fields.iter().any(|field| field.name == **name)).map(|(name, value)| (name.clone(), value.clone())).collect();
                out.insert("account_id".to_owned(), json!(account.seed.account_id));
                out.insert("date_start".to_owned(), json!(day.to_string()));
                out.insert("date_stop".to_owned(), json!(day.to_string()));
                items.push(Value::Object(out));
            }
        }
        self.page(relative, params, items)
    }

    /// One page of `items` as Graph answers a list: `data`, and `paging`
    /// with cursors and, when more follow, `next`.
    fn page(&self, relative: &str, params: &Params, items: Vec<Value>) -> Answer {
        let limit = match params.get("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => text.parse::<usize>().map_err(|_| invalid("Param limit must be an integer"))?.clamp(1, MAX_LIMIT),
        };
        let offset = match params.get("after") {
            None => 0,
            Some(after) => offset_of(after).ok_or_else(|| invalid("Param after is not a valid cursor"))?,
        };
        Ok(paged(&self.base_url, &self.version, relative, params, items, offset, limit))
    }
}

fn paged(base_url: &str, version: &str, relative: &str, params: &Params, items: Vec<Value>, offset: usize, limit: usize) -> Value {
    let total = items.len();
    let data: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let end = offset + data.len();
    let mut body = json!({"data": data});
    if end > offset {
        body["paging"] = json!({"cursors": {"before": cursor(offset), "after": cursor(end)}});
        if end < total {
            // Like Meta's, the next URL repeats every parameter, the token included.
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in params.0.iter().filter(|(name, _)| name != "after") {
                query.append_pair(name, value);
            }
            query.append_pair("after", &cursor(end));
            body["paging"]["next"] = json!(format!("{base_url}/{version}/{relative}?{}", query.finish()));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_parsed_with_their_expansions() {
        let fields = parse_fields("id,status,adaccounts.limit(2){id,account_id,name},time_created");
        assert_eq!(fields.iter().map(|field| field.name.as_str()).collect::<Vec<_>>(), ["id", "status", "adaccounts", "time_created"]);
        assert_eq!(fields[2].limit, Some(2));
        assert_eq!(fields[2].sub.len(), 3);
        assert!(parse_fields("").is_empty());
    }

    #[test]
    fn dollars_become_cents() {
        assert_eq!(cents_from_dollars("123.45"), Some(12_345));
        assert_eq!(cents_from_dollars("0.01"), Some(1));
        assert_eq!(cents_from_dollars("7"), Some(700));
        assert_eq!(cents_from_dollars("7.5"), Some(750));
        assert_eq!(cents_from_dollars("7.555"), None);
        assert_eq!(cents_from_dollars("-1"), None);
        assert_eq!(cursor(300), "Y3Vyc29y12c");
        assert_eq!(offset_of(&cursor(300)), Some(300));
    }

    #[test]
    fn rules_are_spent() {
        let mut rules = vec![Rule { path: Some("a".to_owned()), times: Some(2), what: 1 }, Rule { path: None, times: None, what: 2 }];
        assert_eq!(take(&mut rules, "b"), Some(2));
        assert_eq!(take(&mut rules, "a"), Some(1));
        assert_eq!(take(&mut rules, "a"), Some(1));
        assert_eq!(take(&mut rules, "a"), Some(2));
        assert_eq!(rules.len(), 1);
    }
}
