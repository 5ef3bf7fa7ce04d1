//! Shortcuts for tests of services, service instances and bindings: manifests, and apps
//! whose units have known addresses (through a fake provisioner).

use crate::{App, FakeServer, Reply};
use serde_json::json;

/// A minimal service manifest (API.md 3.2) with its production endpoint.
pub fn manifest(id: &str, endpoint: &str) -> String {
    format!("id: {id}\nendpoint:\n  production: {endpoint}\n")
}

/// `POST /services` with [`manifest`]; panics unless it succeeds.
pub fn create_service(app: &App, token: &str, id: &str, endpoint: &str) {
    let resp = app
        .post("/services")
        .bearer(token)
        .body(manifest(id, endpoint))
        .send();
    assert_eq!(resp.status, 200, "create service {id}: {}", resp.text());
}

/// `POST /services/instances`; panics unless it succeeds.
pub fn create_instance(app: &App, token: &str, service: &str, name: &str) {
    let resp = app
        .post("/services/instances")
        .bearer(token)
        .json(&json!({"name": name, "service_name": service}))
        .send();
    assert_eq!(resp.status, 200, "create instance {name}: {}", resp.text());
}

/// Creates app `name` (platform `python`) with one unit per address in `unit_ips`, the
/// app itself at `app_ip`. The app must run with `provisioner_url` = `provisioner.url()`.
pub fn create_app(
    app: &App,
    token: &str,
    provisioner: &FakeServer,
    name: &str,
    app_ip: &str,
    unit_ips: &[&str],
) {
    let unit =
        |n: usize| json!({"name": format!("{name}/{n}"), "ip": unit_ips[n], "state": "started"});
    provisioner.on_once(
        "POST",
        "/apps",
        Reply::json(200, &json!({"ip": app_ip, "units": [unit(0)]})),
    );
    let resp = app
        .post("/apps")
        .bearer(token)
        .json(&json!({"name": name, "platform": "python"}))
        .send();
    assert_eq!(resp.status, 200, "create app {name}: {}", resp.text());
    if unit_ips.len() > 1 {
        let more: Vec<_> = (1..unit_ips.len()).map(unit).collect();
        provisioner.on_once(
            "POST",
            &format!("/apps/{name}/units"),
            Reply::json(200, &json!({"units": more})),
        );
        let resp = app
            .put(&format!("/apps/{name}/units"))
            .bearer(token)
            .body((unit_ips.len() - 1).to_string())
            .send();
        assert_eq!(resp.status, 200, "add units to {name}: {}", resp.text());
    }
}
