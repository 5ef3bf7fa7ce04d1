//! Every component's route table (`components/<name>/src/lib.rs`) against the OpenAPI
//! document it serves: each route is documented under its component's tag with its auth
//! level, and each documented operation is in a table. The live counterpart, that
//! `spin.toml` sends each documented path to that component, is `openapi.rs`.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use tsuru_core::runtime::router::{Route, TokenUse};

/// Every component's table, by `spin.toml` component id.
const TABLES: &[(&str, &[Route])] = &[
    ("meta", meta::ROUTES),
    ("users", users::ROUTES),
    ("teams", teams::ROUTES),
    ("tokens", tokens::ROUTES),
    ("apps", apps::ROUTES),
    ("platforms", platforms::ROUTES),
    ("quotas", quotas::ROUTES),
    ("services", services::ROUTES),
    ("service-instances", service_instances::ROUTES),
    ("healers", healers::ROUTES),
];

fn document() -> Value {
    let path = e2e::repo_root().join("components/tsuru-core/src/meta/openapi.json");
    let text = std::fs::read_to_string(&path).expect("read the OpenAPI document");
    serde_json::from_str(&text).expect("the OpenAPI document is JSON")
}

/// `/apps/:app/env` as OpenAPI writes it: `/apps/{app}/env`.
fn openapi_path(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_is_documented_with_its_component_and_auth() {
    let doc = document();
    for (component, table) in TABLES {
        for route in *table {
            let path = openapi_path(route.path);
            let op = &doc["paths"][&path][route.method.to_lowercase()];
            assert!(op.is_object(), "{} {path} is not documented", route.method);
            assert_eq!(op["tags"], json!([component]), "{} {path}", route.method);
            let security = match route.access.token {
                TokenUse::None => json!([]),
                TokenUse::Optional => json!([{"bearer": []}, {}]),
                TokenUse::Required => json!([{"bearer": []}]),
            };
            assert_eq!(op["security"], security, "{} {path}", route.method);
            let statuses = op["responses"].as_object().expect("responses");
            if route.access.token != TokenUse::None {
                assert!(statuses.contains_key("401"), "{} {path}", route.method);
            }
        }
    }
}

#[test]
fn every_documented_operation_is_in_a_route_table() {
    let routed: BTreeSet<(String, String)> = TABLES
        .iter()
        .flat_map(|(_, table)| table.iter())
        .map(|r| (r.method.to_lowercase(), openapi_path(r.path)))
        .collect();
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(documented, routed);
}
