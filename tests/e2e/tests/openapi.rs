//! The OpenAPI document against the manifest and the running components: every
//! documented operation is routed by `spin.toml` to the component its tag names, and is
//! answered by a route of that component (not the router's 404/405).

use e2e::accounts::admin;
use e2e::{app, spin_toml};
use spin_test_host::manifest::Manifest;
use spin_test_host::routing::Router;

/// The documented operations: (method, path with `{param}`, component tag).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let tag = op["tags"][0]
                .as_str()
                .expect("every operation has its component as tag");
            ops.push((method.to_uppercase(), path.clone(), tag.to_string()));
        }
    }
    ops
}

/// A concrete path for a templated one: every `{param}` becomes `x`.
fn sample(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_documented_operation_is_routed_to_its_component_and_answered() {
    let app = app().start();
    let token = admin(&app);
    let doc = app.get("/openapi.json").send().json();
    let ops = operations(&doc);
    assert_eq!(
        ops.len(),
        71,
        "API.md sections 2 and 9 list 61 and 10 operations"
    );

    let manifest = Manifest::load(&spin_toml()).expect("spin.toml");
    let router = Router::build(
        manifest
            .http_triggers
            .iter()
            .map(|t| (t.route.as_str(), t.component.as_str())),
    )
    .expect("routes");
    for (method, path, component) in &ops {
        let concrete = sample(path);
        let routed = router.route(&concrete).expect("spin.toml routes it");
        assert_eq!(&routed.component, component, "{method} {path}");
        // The component has a route for it: the answer is never the router's own 404 or 405.
        let resp = app.request(method, &concrete).bearer(&token).send();
        let unrouted =
            (resp.status == 404 && resp.text() == "404 page not found\n") || resp.status == 405;
        assert!(
            !unrouted,
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        let documented = &doc["paths"][path][method.to_lowercase()]["responses"];
        assert!(
            documented.get(resp.status.to_string()).is_some(),
            "{method} {path} answered {} which is not documented: {}",
            resp.status,
            resp.text()
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_bearer_security() {
    let app = app().start();
    let doc = app.get("/openapi.json").send().json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "tsuru API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Routes without authentication say so; the others require the bearer token.
    let login = &doc["paths"]["/users/{email}/tokens"]["post"];
    assert_eq!(login["security"], serde_json::json!([]));
    assert_eq!(
        doc["paths"]["/apps"]["get"]["security"],
        serde_json::json!([{"bearer": []}])
    );
}
