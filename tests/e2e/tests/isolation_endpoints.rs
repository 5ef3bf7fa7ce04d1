//! Service endpoints (API.md 8.3): only plain `http`/`https` URLs with a host (no user
//! info, query or fragment) may be registered, optionally limited to the hosts of
//! `service_hosts`; calls append percent-encoded segments to the endpoint's path; and
//! text from a service API shown in an error is short and free of control characters.

use e2e::accounts::{admin, team, user};
use e2e::races::path_segments;
use e2e::services::{create_app, create_instance, create_service};
use e2e::{app, parse_form, App, FakeServer, Reply, Resp};
use serde_json::json;

const INVALID: &str = "Invalid endpoint: ";
const HOST_NOT_ALLOWED: &str = "Invalid endpoint: host not allowed\n";

/// A manifest with double-quoted endpoint values (so `#` and `?` reach the API as written).
fn manifest(id: &str, endpoints: &[(&str, &str)]) -> String {
    let mut m = format!("id: {id}\nendpoint:\n");
    for (env, url) in endpoints {
        m.push_str(&format!("  {env}: \"{url}\"\n"));
    }
    m
}

fn post(app: &App, token: &str, body: &str) -> Resp {
    app.post("/services").bearer(token).body(body).send()
}

fn put(app: &App, token: &str, body: &str) -> Resp {
    app.put("/services").bearer(token).body(body).send()
}

/// Asserts a 400 whose body is `Invalid endpoint: <reason>\n` (the reason is not fixed).
#[track_caller]
fn assert_invalid_endpoint(resp: &Resp, what: &str) {
    let text = resp.text();
    assert_eq!(resp.status, 400, "{what}: {text:?}");
    assert!(
        text.starts_with(INVALID) && text.ends_with('\n') && text.len() > INVALID.len() + 1,
        "{what}: {text:?}"
    );
}

#[track_caller]
fn assert_no_service(app: &App, token: &str, id: &str) {
    app.get(&format!("/services/{id}"))
        .bearer(token)
        .send()
        .assert_is(404, "Service not found\n");
}

/// Production endpoints that must be refused: each names an internal target through a
/// query, user info, a fragment, another scheme or no host at all.
fn bad_endpoints(fake: &FakeServer) -> Vec<String> {
    vec![
        format!("{}/internal/secret?", fake.url()),
        format!("{}/openapi.json?", fake.url()),
        "http://127.0.0.1:3000/repository/victim-app?".into(),
        "http://svc.example.com/?a=b".into(),
        "http://user:pw@svc.example.com".into(),
        "https://user@svc.example.com/api".into(),
        "http://svc.example.com/#frag".into(),
        "ftp://svc.example.com".into(),
        "file:///etc/passwd".into(),
        "gopher://svc.example.com:70".into(),
        "/path-only".into(),
        "http://".into(),
    ]
}

#[test]
fn service_endpoints_must_be_plain_urls() {
    let fake = FakeServer::start();
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let carol = user(&app, "carol@example.com"); // in no team

    for (i, bad) in bad_endpoints(&fake).iter().enumerate() {
        let id = format!("bad{i}");
        let resp = post(&app, &alice, &manifest(&id, &[("production", bad)]));
        assert_invalid_endpoint(&resp, &format!("POST production {bad:?}"));
        assert_no_service(&app, &alice, &id);
        // Every endpoint value is checked, not only `production`.
        let resp = post(
            &app,
            &alice,
            &manifest(&id, &[("production", &fake.url()), ("test", bad)]),
        );
        assert_invalid_endpoint(&resp, &format!("POST test {bad:?}"));
        assert_no_service(&app, &alice, &id);
    }

    // Check 4 (no production endpoint) wins over a bad other endpoint.
    post(
        &app,
        &alice,
        &manifest("noprod", &[("test", "http://svc.example.com/?a=b")]),
    )
    .assert_is(
        400,
        "You must provide a production endpoint in the manifest file.\n",
    );
    // The endpoint check comes right after check 4: before the team check (5) and the
    // duplicate check (6).
    let bad = "http://user:pw@svc.example.com";
    assert_invalid_endpoint(
        &post(&app, &carol, &manifest("teamless", &[("production", bad)])),
        "caller in no team",
    );
    create_service(&app, &alice, "mysql", &fake.url());
    assert_invalid_endpoint(
        &post(&app, &alice, &manifest("mysql", &[("production", bad)])),
        "duplicate id",
    );

    // Values without `://` get `http://` first, so these stay valid.
    for (id, good) in [
        ("hostport", "localhost:8080"),
        ("bare", "someservice.com"),
        ("https", "https://svc.example.com:8443/base/path"),
        ("withpath", "http://svc.example.com/api/v1"),
    ] {
        let resp = post(&app, &alice, &manifest(id, &[("production", good)]));
        resp.assert_is(200, "success");
    }

    // PUT /services refuses the same endpoints and keeps the stored one.
    for bad in bad_endpoints(&fake) {
        let resp = put(&app, &alice, &manifest("mysql", &[("production", &bad)]));
        assert_invalid_endpoint(&resp, &format!("PUT production {bad:?}"));
        let resp = put(
            &app,
            &alice,
            &manifest("mysql", &[("production", &fake.url()), ("test", &bad)]),
        );
        assert_invalid_endpoint(&resp, &format!("PUT test {bad:?}"));
    }
    create_instance(&app, &alice, "mysql", "mydb");
    let calls: Vec<String> = fake.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(calls, vec!["/resources".to_string()]);
    put(
        &app,
        &alice,
        &manifest("mysql", &[("production", "localhost:8080")]),
    )
    .assert_is(200, "");
}

#[test]
fn service_hosts_limits_the_hosts_an_owner_may_register() {
    let fake = FakeServer::start();
    let app = app().var("service_hosts", "*.internal,127.0.0.1").start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");

    for (id, host) in [
        ("evil", "http://evil.example.com"),
        ("evilport", "https://evil.example.com:8443/api"),
        ("local", "localhost:8080"),
        ("suffix", "http://notinternal"),
    ] {
        post(&app, &alice, &manifest(id, &[("production", host)])).assert_is(400, HOST_NOT_ALLOWED);
        assert_no_service(&app, &alice, id);
    }
    for (id, host) in [
        ("db", "http://db.internal:8080"),
        ("mq", "https://mq.internal/api"),
        ("loopback", fake.url().as_str()),
    ] {
        post(&app, &alice, &manifest(id, &[("production", host)])).assert_is(200, "success");
    }
    // Every endpoint value is restricted, not only `production`.
    post(
        &app,
        &alice,
        &manifest(
            "mixed",
            &[
                ("production", "http://db.internal"),
                ("test", "http://evil.example.com"),
            ],
        ),
    )
    .assert_is(400, HOST_NOT_ALLOWED);

    put(
        &app,
        &alice,
        &manifest("db", &[("production", "http://evil.example.com")]),
    )
    .assert_is(400, HOST_NOT_ALLOWED);
    put(
        &app,
        &alice,
        &manifest("db", &[("production", "http://api.internal:9000")]),
    )
    .assert_is(200, "");
}

#[test]
fn service_calls_append_encoded_segments_to_the_endpoint_path() {
    let provisioner = FakeServer::start();
    let service = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    create_service(&app, &alice, "pathsvc", &format!("{}/api", service.url()));
    create_service(&app, &alice, "slashsvc", &format!("{}/v2/", service.url()));
    // A provisioner may report any text as a unit address.
    let odd_ip = "10.0.0.1/x?y#z";
    create_app(&app, &alice, &provisioner, "myapp", "10.0.0.10", &[odd_ip]);

    create_instance(&app, &alice, "pathsvc", "mydb");
    create_instance(&app, &alice, "slashsvc", "other");
    service.on_once("GET", "/api/resources/mydb/status", Reply::status(204));
    app.get("/services/instances/mydb/status")
        .bearer(&alice)
        .send()
        .assert_is(200, "Service instance \"mydb\" is up");
    let bind = app
        .put("/services/instances/mydb/myapp")
        .bearer(&alice)
        .send();
    assert_eq!(bind.status, 200, "{}", bind.text());
    let unbind = app
        .delete("/services/instances/mydb/myapp")
        .bearer(&alice)
        .send();
    assert_eq!(unbind.status, 200, "{}", unbind.text());
    app.delete("/services/instances/mydb")
        .bearer(&alice)
        .send()
        .assert_is(200, "service instance successfuly removed");

    let calls: Vec<(String, String)> = service
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" || !r.path().ends_with("/mydb"))
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    let call = |m: &str, t: &str| (m.to_string(), t.to_string());
    assert_eq!(calls[0], call("POST", "/api/resources"));
    assert_eq!(calls[1], call("POST", "/v2/resources"));
    assert_eq!(calls[2], call("GET", "/api/resources/mydb/status"));
    assert_eq!(calls[3], call("POST", "/api/resources/mydb"));
    assert_eq!(calls[4].0, "DELETE");
    assert!(
        !calls[4].1.contains('?') && !calls[4].1.contains('#'),
        "the unit address leaks into the query: {:?}",
        calls[4].1
    );
    assert_eq!(
        path_segments(&calls[4].1),
        vec!["api", "resources", "mydb", "hostname", odd_ip],
        "{:?}",
        calls[4].1
    );
    assert_eq!(calls[5], call("DELETE", "/api/resources/mydb"));
    assert_eq!(calls.len(), 6, "{calls:?}");

    let bind_call = &service.requests_to("POST", "/api/resources/mydb")[0];
    assert_eq!(
        parse_form(&bind_call.text())
            .get("unit-host")
            .map(String::as_str),
        Some(odd_ip)
    );
}

/// 2 KB of noise from a failing service API: line breaks, tabs and ANSI escapes.
fn noisy_reply() -> String {
    let mut body = String::from("upstream failure:");
    let mut i = 0;
    while body.len() < 2048 {
        body.push_str(&format!(
            "\r\n\tline {i} \x1b[31mred\x1b[0m secret-{i}\x07\x7f"
        ));
        i += 1;
    }
    body
}

/// Asserts `resp` is `502 <prefix><reason>\n` with a reason of at most 300 characters,
/// no control character, taken from `reply` (control characters removed).
#[track_caller]
fn assert_sanitized(resp: &Resp, prefix: &str, reply: &str) {
    let text = resp.text();
    assert_eq!(resp.status, 502, "{text:?}");
    let reason = text
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{text:?} is not {prefix:?} + reason"));
    assert!(!reason.is_empty(), "{text:?}");
    assert!(
        reason.chars().count() <= 300,
        "{} characters of the reply shown: {reason:?}",
        reason.chars().count()
    );
    assert!(
        !reason.chars().any(char::is_control),
        "control characters shown: {reason:?}"
    );
    let clean: String = reply.chars().filter(|c| !c.is_control()).collect();
    assert!(
        clean.contains(reason.trim()),
        "the reason is not taken from the reply: {reason:?}"
    );
}

#[test]
fn service_text_in_errors_is_short_and_has_no_control_characters() {
    let service = FakeServer::start();
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    create_service(&app, &alice, "mysql", &service.url());
    let reply = noisy_reply();

    service.on_once("POST", "/resources", Reply::text(500, &reply));
    let resp = app
        .post("/services/instances")
        .bearer(&alice)
        .json(&json!({"name": "noisy", "service_name": "mysql"}))
        .send();
    assert_sanitized(&resp, "Failed to create the instance noisy: ", &reply);

    create_instance(&app, &alice, "mysql", "noisy");
    service.on_once("GET", "/resources/noisy/status", Reply::text(418, &reply));
    let resp = app
        .get("/services/instances/noisy/status")
        .bearer(&alice)
        .send();
    assert_sanitized(
        &resp,
        "Could not retrieve status of service instance, error: Failed to get status of instance noisy: ",
        &reply,
    );
}
