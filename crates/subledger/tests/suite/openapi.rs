//! `/openapi.json` against the running server: the document is sound OpenAPI
//! 3.1, and every operation and parameter it declares is where the router
//! and the handlers read it, so the document and the code cannot drift apart.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(openapi_document_is_sound, openapi_document_matches_the_router);

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// An operation of the document: method, path template, the operation object.
struct Operation {
    method: &'static str,
    path: String,
    op: Value,
}

impl Operation {
    fn parameters(&self) -> Vec<&Value> {
        self.op["parameters"].as_array().map(|p| p.iter().collect()).unwrap_or_default()
    }

    fn parameters_in(&self, place: &str) -> Vec<&Value> {
        self.parameters().into_iter().filter(|p| p["in"] == place).collect()
    }

    fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    /// The path with a sample value of the right type for each parameter.
    fn sample_path(&self) -> String {
        let mut path = self.path.clone();
        for parameter in self.parameters_in("path") {
            let name = parameter["name"].as_str().unwrap();
            path = path.replace(&format!("{{{name}}}"), &sample(parameter));
        }
        path
    }

    /// The token its security scheme asks for (`None`: it needs none, the login).
    fn token<'a>(&self, tenant: &'a Tenant) -> Option<&'a str> {
        let schemes: Vec<&str> = self.op["security"].as_array().unwrap().iter().flat_map(|s| s.as_object().unwrap().keys()).map(String::as_str).collect();
        Some(match schemes.as_slice() {
            [] => return None,
            ["admin_token"] => ADMIN_TOKEN,
            // A tenant's token or a sub-user's session: the tenant's holds every application.
            ["api_token"] | ["api_token", "session_token"] | ["session_token"] => &tenant.api_token,
            other => panic!("{}: unexpected security {other:?}", self.name()),
        })
    }
}

/// A value a parameter's schema accepts.
fn sample(parameter: &Value) -> String {
    match parameter["schema"]["type"].as_str() {
        Some("integer") => "1".to_owned(),
        Some("boolean") => "true".to_owned(),
        _ => "sample".to_owned(),
    }
}

async fn document(h: &Harness) -> Value {
    let response = h.http.get(h.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.expect("the document is JSON")
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        assert!(item.get("parameters").is_none(), "{path}: parameters are declared per operation here");
        for (method, op) in item.as_object().unwrap() {
            let method = METHODS.into_iter().find(|m| m == method).unwrap_or_else(|| panic!("{path}: {method} is no HTTP method"));
            operations.push(Operation { method, path: path.clone(), op: op.clone() });
        }
    }
    operations
}

/// Every `"$ref"` anywhere in `value`.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref") {
                found.push(reference.as_str().expect("a $ref is a string"));
            }
            object.values().for_each(|v| references(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// The `{name}` segments of a path template.
fn template_parameters(path: &str) -> BTreeSet<String> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(str::to_owned).collect()
}

async fn openapi_document_is_sound(backend: Backend) {
    let h = Harness::start(backend).await;
    let document = document(&h).await;
    assert!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "{}", document["openapi"]);
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());

    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference}: only local references"));
        assert!(document.pointer(pointer).is_some(), "{reference} resolves to nothing");
    }

    let schemes = document["components"]["securitySchemes"].as_object().expect("security schemes");
    let operations = operations(&document);
    assert!(operations.len() >= 29, "{} operations", operations.len());
    for operation in &operations {
        let name = operation.name();
        let responses = operation.op["responses"].as_object().unwrap_or_else(|| panic!("{name}: no responses"));
        assert!(!responses.is_empty(), "{name}: no responses");
        for status in responses.keys() {
            assert!(status == "default" || (status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))), "{name}: response {status}");
        }
        for requirement in operation.op["security"].as_array().unwrap_or_else(|| panic!("{name}: no security")) {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{name}: unknown security scheme {scheme}");
            }
        }

        let mut seen = BTreeSet::new();
        for parameter in operation.parameters() {
            let (place, parameter_name) = (parameter["in"].as_str().unwrap(), parameter["name"].as_str().unwrap());
            assert!(["path", "query", "header", "cookie"].contains(&place), "{name}: {parameter}");
            assert!(seen.insert((place, parameter_name)), "{name}: {parameter_name} declared twice");
            assert!(parameter["schema"].is_object(), "{name}: {parameter_name} has no schema");
        }
        // The template and the path parameters name the same things, all required.
        let declared: BTreeSet<String> = operation.parameters_in("path").iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(declared, template_parameters(&operation.path), "{name}: path parameters");
        for parameter in operation.parameters_in("path") {
            assert_eq!(parameter["required"], true, "{name}: path parameter {} must be required", parameter["name"]);
        }
        // Only reads have query parameters here; `openapi_document_matches_the_router` checks each one.
        if operation.method != "get" {
            assert!(operation.parameters_in("query").is_empty(), "{name}: query parameters on a write");
        }
    }
}

/// The error `code` of a native API answer, if it is one.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Option<String>) {
    let (status, body) = status_and_json(request.send().await.unwrap()).await;
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

async fn openapi_document_matches_the_router(backend: Backend) {
    let h = Harness::start(backend).await;
    let tenant = h.create_tenant("Documented").await;
    let document = document(&h).await;
    let invalid_query = Some("invalid_query".to_owned());
    for operation in operations(&document) {
        let name = operation.name();
        let method: reqwest::Method = operation.method.to_uppercase().parse().unwrap();
        let path = operation.sample_path();
        let request = |query: &str| {
            let url = if query.is_empty() { h.url(&path) } else { h.url(&format!("{path}?{query}")) };
            h.http.request(method.clone(), url)
        };

        // The router has the route, and its handler asks for the documented credentials.
        let (status, code) = answer(request("")).await;
        let Some(token) = operation.token(&tenant) else {
            // The login takes no token: without a body it is refused before it acts.
            assert_eq!((status, code.as_deref()), (415, Some("unsupported_media_type")), "{name} without a body");
            continue;
        };
        assert_eq!((status, code.as_deref()), (401, Some("unauthenticated")), "{name} ({path}) without credentials");
        assert!(operation.op["responses"]["401"].is_object(), "{name}: 401 is not documented");

        // A documented header is one the handler asks for (before the body, so nothing runs).
        for parameter in operation.parameters_in("header") {
            let header = parameter["name"].as_str().unwrap();
            assert_eq!(parameter["required"], true, "{name}: {header}");
            let expected = format!("{}_required", header.to_ascii_lowercase().replace('-', "_"));
            let (status, code) = answer(request("").bearer_auth(token)).await;
            assert_eq!((status, code), (400, Some(expected)), "{name} without {header}");
        }

        // Every documented query parameter is one the handler reads (it refuses
        // unknown ones), and only the required ones are required. Reads only:
        // writes declare no query parameters (`openapi_document_is_sound`).
        if operation.method != "get" {
            continue;
        }
        let query = operation.parameters_in("query");
        let all: Vec<String> = query.iter().map(|p| format!("{}={}", p["name"].as_str().unwrap(), sample(p))).collect();
        let (status, code) = answer(request(&all.join("&")).bearer_auth(token)).await;
        assert_ne!(code, invalid_query, "{name}?{}: {status}", all.join("&"));
        let (status, code) = answer(request("undocumented=1").bearer_auth(token)).await;
        if query.is_empty() {
            assert_ne!(code, invalid_query, "{name} reads a query it does not document ({status})");
        } else {
            assert_eq!((status, code.clone()), (400, invalid_query.clone()), "{name} takes an undocumented query parameter");
        }
        for (i, parameter) in query.iter().enumerate() {
            let others: Vec<&str> = all.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.as_str()).collect();
            let (status, code) = answer(request(&others.join("&")).bearer_auth(token)).await;
            let missing_refused = (status, code) == (400, invalid_query.clone());
            assert_eq!(missing_refused, parameter["required"] == true, "{name} without {}: {status}", parameter["name"]);
        }
    }
    // Nothing above wrote: every write was refused before its handler acted.
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM transfers").await, 0);
    assert_eq!(sql_i64(&h.db, "SELECT COUNT(*) FROM tenants").await, 1);
}
