//! Foundation tests: the test host behaves like `spin up` for the real `spin.toml`.
//!
//! Needs the wasm built first:
//! `cargo build --target wasm32-wasip1 --release --workspace --exclude spin-test-host --exclude e2e --exclude bench`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::{app, probe, refused_url, AppVariable, ExtraComponent, FakeServer, Reply, Resp};

/// Parses the probe's `name: value` echo lines.
fn echoed(resp: &Resp) -> HashMap<String, String> {
    resp.text()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A second instance of the probe wasm under another id and route.
fn probe_as(id: &str, route: &str) -> ExtraComponent {
    let mut c = probe();
    c.id = id.to_string();
    c.routes = vec![route.to_string()];
    c
}

#[test]
fn healthcheck_answers_working_through_the_meta_component() {
    let app = app().start();
    let r = app.get("/healthcheck").send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "WORKING");
}

#[test]
fn unowned_paths_reach_the_meta_fallback_and_unknown_well_known_paths_are_empty_404s() {
    let app = app().start();
    let r = app.get("/no/such/thing").send();
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "404 page not found\n");

    // Handled by the host itself, as Spin does, never by a component.
    let r = app.get("/.well-known/spin/health").send();
    r.assert_is(200, "OK");
    let r = app.get("/.well-known/spin/info").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["name"], "tsuru");
    let r = app.get("/.well-known/spin/nope").send();
    assert_eq!((r.status, r.body.len()), (404, 0));
}

#[test]
fn longest_prefix_wins_and_a_wildcard_route_matches_its_bare_prefix() {
    let app = app()
        .component(probe_as("probe", "/probe/..."))
        .component(probe_as("probe-deep", "/probe/deep/..."))
        .component(probe_as("probe-exact", "/probe/exact"))
        .start();

    let r = app.get("/probe/headers/x").send();
    let h = echoed(&r);
    assert_eq!(r.status, 200);
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-path-info"], "/headers/x");

    let r = app.get("/probe/deep/headers/x").send();
    let h = echoed(&r);
    assert_eq!(r.status, 200);
    assert_eq!(h["spin-matched-route"], "/probe/deep/...");
    assert_eq!(h["spin-component-route"], "/probe/deep");
    assert_eq!(h["spin-path-info"], "/headers/x");

    // `/probe/deep/...` also matches `/probe/deep` itself, with an empty path info.
    let r = app.get("/probe/deep").send();
    let h = echoed(&r);
    assert_eq!(h["spin-matched-route"], "/probe/deep/...");
    assert_eq!(h.get("spin-path-info").map(String::as_str), Some(""));

    // An exact route beats the wildcard around it.
    let r = app.get("/probe/exact").send();
    let h = echoed(&r);
    assert_eq!(h["spin-matched-route"], "/probe/exact");
    assert_eq!(h["spin-component-route"], "/probe/exact");

    // ...but only for that path: below it the wildcard applies again.
    let r = app.get("/probe/exact/headers").send();
    assert_eq!(echoed(&r)["spin-matched-route"], "/probe/...");

    // A path no test route owns still goes to the real manifest's fallback.
    let r = app.get("/probex").send();
    r.assert_is(404, "404 page not found\n");
}

#[test]
fn spin_headers_carry_spins_values() {
    let app = app().with_probe().start();
    let r = app.get("/probe/headers/a/b?x=1&y=%20").send();
    assert_eq!(r.status, 200, "{}", r.text());
    let h = echoed(&r);
    let authority = app.addr().to_string();
    // wasmtime-wasi-http drops `host` (a forbidden header) before the guest sees the
    // request, in Spin too; the authority is in the URI instead.
    assert!(!h.contains_key("host"), "{}", r.text());
    assert_eq!(
        h["spin-full-url"],
        format!("http://{authority}/probe/headers/a/b?x=1&y=%20")
    );
    assert_eq!(h["spin-path-info"], "/headers/a/b");
    assert_eq!(h["spin-matched-route"], "/probe/...");
    assert_eq!(h["spin-raw-component-route"], "/probe/...");
    assert_eq!(h["spin-component-route"], "/probe");
    assert_eq!(h["spin-base-path"], "/");
    let client: SocketAddr = h["spin-client-addr"].parse().expect("client addr");
    assert_eq!(client.ip().to_string(), "127.0.0.1");
    assert_ne!(client.port(), app.addr().port());
    // The component sees the original request target, as Spin passes it.
    assert_eq!(h["path-and-query"], "/probe/headers/a/b?x=1&y=%20");
    assert_eq!(
        h["uri"],
        format!("http://{authority}/probe/headers/a/b?x=1&y=%20")
    );
    assert_eq!(h["method"], "Method::Get");
}

#[test]
fn key_value_and_sqlite_state_persist_across_requests_and_restarts() {
    let mut app = app().with_probe().start();

    assert_eq!(app.get("/probe/kv/get?key=k1").send().status, 404);
    let r = app.post("/probe/kv/set?key=k1").body("value one").send();
    r.assert_is(200, "ok");
    assert_eq!(app.get("/probe/kv/get?key=k1").send().text(), "value one");

    assert_eq!(app.get("/probe/sql/read?key=s1").send().status, 404);
    let r = app.post("/probe/sql/write?key=s1&value=row%20one").send();
    r.assert_is(200, "ok");
    assert_eq!(app.get("/probe/sql/read?key=s1").send().text(), "row one");

    let spin_dir = app.data_dir().join(".spin");
    assert!(spin_dir.join("sqlite_key_value.db").is_file());
    assert!(spin_dir.join("sqlite_db.db").is_file());

    let port = app.addr().port();
    app.restart();
    assert_eq!(app.addr().port(), port, "restart keeps the address");

    let r = app.get("/probe/kv/get?key=k1").send();
    r.assert_is(200, "value one");
    let r = app.get("/probe/sql/read?key=s1").send();
    r.assert_is(200, "row one");

    // Deleting works and is persisted too.
    assert_eq!(app.post("/probe/kv/delete?key=k1").send().status, 200);
    app.restart();
    assert_eq!(app.get("/probe/kv/get?key=k1").send().status, 404);
}

#[test]
fn stores_and_databases_not_declared_by_the_component_are_refused() {
    let bare = ExtraComponent::new("bare-probe", probe().source).route("/bare/...");
    let app = app().with_probe().component(bare).start();

    let r = app.get("/bare/kv/get?key=x").send();
    r.assert_is(500, "error: Error::AccessDenied");
    let r = app.post("/bare/sql/write?key=x&value=y").send();
    r.assert_is(500, "error: Error::AccessDenied");

    // A label the component did not declare is refused even though it was asked by name.
    let r = app.get("/probe/kv/get?key=x&store=other").send();
    r.assert_is(500, "error: Error::AccessDenied");
    let r = app.get("/probe/sql/read?key=x&db=other").send();
    r.assert_is(500, "error: Error::AccessDenied");
}

#[test]
fn declaring_a_store_that_does_not_exist_stops_startup_as_spin_does() {
    let kv = app()
        .component(probe().key_value_store("other"))
        .try_start()
        .err()
        .expect("startup must fail");
    assert!(
        format!("{kv:#}").contains("unknown key_value_stores label \"other\""),
        "{kv:#}"
    );
    let db = app()
        .component(probe().sqlite_database("other"))
        .try_start()
        .err()
        .expect("startup must fail");
    assert!(
        format!("{db:#}").contains("uses database 'other'"),
        "{db:#}"
    );
}

fn greeting_probe() -> e2e::AppBuilder {
    app()
        .declare_var("probe_greeting", AppVariable::with_default("hello"))
        .component(probe().variable("greeting", "{{ probe_greeting }}, {{ admin_team }}!"))
}

#[test]
fn variables_resolve_defaults_and_explicit_overrides() {
    // Defaults: the test variable's and the real manifest's `admin_team`.
    let app = greeting_probe().start();
    let r = app.get("/probe/var?name=greeting").send();
    r.assert_is(200, "hello, admin!");

    // Only names the component declares are visible.
    let r = app.get("/probe/var?name=admin_team").send();
    assert_eq!(r.status, 404);
    assert!(
        r.text().starts_with("error: Error::Undefined("),
        "{}",
        r.text()
    );
    let r = app.get("/probe/var?name=Not-Valid").send();
    assert_eq!(r.status, 500);
    assert!(
        r.text().starts_with("error: Error::InvalidName("),
        "{}",
        r.text()
    );

    let app = greeting_probe()
        .var("probe_greeting", "hi")
        .var("admin_team", "ops")
        .start();
    let r = app.get("/probe/var?name=greeting").send();
    r.assert_is(200, "hi, ops!");
}

#[test]
fn a_required_variable_without_value_stops_startup() {
    let err = app()
        .declare_var("probe_secret", AppVariable::required())
        .with_probe()
        .try_start()
        .err()
        .expect("startup must fail");
    assert!(format!("{err:#}").contains("probe_secret"), "{err:#}");

    let app = app()
        .declare_var("probe_secret", AppVariable::required())
        .var("probe_secret", "s3cret")
        .component(probe().variable("secret", "{{ probe_secret }}"))
        .start();
    assert_eq!(app.get("/probe/var?name=secret").send().text(), "s3cret");
}

#[test]
fn outbound_http_goes_only_to_allowed_hosts() {
    let fake = FakeServer::start();
    fake.on("GET", "/hello", Reply::text(200, "hi from fake"));
    let exact = format!("http://127.0.0.1:{}", fake.addr().port());
    let app = app()
        .declare_var("probe_api", AppVariable::with_default("http://127.0.0.1:1"))
        .var("probe_api", &fake.url())
        .component(probe_as("allowed", "/allowed/...").allowed_outbound_host(exact))
        .component(
            probe_as("any-port", "/any-port/...").allowed_outbound_host("http://127.0.0.1:*"),
        )
        .component(probe_as("templated", "/templated/...").allowed_outbound_host("{{ probe_api }}"))
        .component(
            probe_as("other-host", "/other-host/...")
                .allowed_outbound_host(format!("http://localhost:{}", fake.addr().port())),
        )
        .component(probe_as("none", "/none/..."))
        .start();
    let target = format!("{}/hello", fake.url());

    for prefix in ["/allowed", "/any-port", "/templated"] {
        let r = app.get(&format!("{prefix}/outbound?url={target}")).send();
        assert_eq!(r.status, 200, "{prefix}: {}", r.text());
        assert_eq!(r.text(), "status=200\nhi from fake", "{prefix}");
    }
    let seen = fake.requests_to("GET", "/hello");
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].header("host"),
        Some(fake.addr().to_string().as_str())
    );

    // Refused before any connection is made, with the error code Spin uses.
    for prefix in ["/none", "/other-host"] {
        let r = app.get(&format!("{prefix}/outbound?url={target}")).send();
        assert_eq!(
            (r.status, r.text().as_str()),
            (502, "error: ErrorCode::HttpRequestDenied"),
            "{prefix}"
        );
    }
    // A different port is not covered by an exact entry.
    let r = app
        .get(&format!("/allowed/outbound?url={}/hello", refused_url()))
        .send();
    r.assert_is(502, "error: ErrorCode::HttpRequestDenied");
    assert_eq!(
        fake.requests().len(),
        3,
        "denied requests never reach the server"
    );
}

#[test]
fn self_requests_need_a_self_entry_and_reach_this_host() {
    let app = app()
        .component(probe_as("selfish", "/selfish/...").allowed_outbound_host("http://self"))
        .component(probe_as("probe", "/probe/..."))
        .start();
    // `self.alt` (or a relative URL) means "this app", wherever it listens.
    let r = app
        .get("/selfish/outbound?url=http://self.alt/probe/counter")
        .send();
    r.assert_is(200, "status=200\n1");
    let r = app
        .get("/probe/outbound?url=http://self.alt/probe/counter")
        .send();
    r.assert_is(502, "error: ErrorCode::HttpRequestDenied");
}

#[test]
fn outbound_transport_failures_and_timeouts_surface_as_wasi_http_errors() {
    let fake = FakeServer::start();
    fake.on(
        "GET",
        "/slow",
        Reply::text(200, "late").delay(Duration::from_secs(3)),
    );
    let app = app()
        .component(probe().allowed_outbound_host("http://127.0.0.1:*"))
        .start();

    let r = app
        .get(&format!("/probe/outbound?url={}/x", refused_url()))
        .send();
    r.assert_is(502, "error: ErrorCode::ConnectionRefused");

    let started = Instant::now();
    let r = app
        .get(&format!(
            "/probe/outbound?url={}/slow&first_byte_timeout_ms=300",
            fake.url()
        ))
        .send();
    let took = started.elapsed();
    r.assert_is(502, "error: ErrorCode::ConnectionReadTimeout");
    assert!(
        took < Duration::from_millis(2500),
        "timeout not honoured: {took:?}"
    );

    // Without a timeout the slow reply arrives.
    let r = app
        .get(&format!("/probe/outbound?url={}/slow", fake.url()))
        .send();
    assert_eq!(r.text(), "status=200\nlate");
}

#[test]
fn every_request_gets_a_fresh_instance() {
    let app = app().with_probe().start();
    for _ in 0..5 {
        let r = app.get("/probe/counter").send();
        r.assert_is(200, "1");
    }
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = app.addr();
            std::thread::spawn(move || {
                e2e::RequestBuilder::to_addr("GET", url, "/probe/counter")
                    .send()
                    .text()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "1");
    }
}

#[test]
fn a_trapping_component_gets_an_empty_500_and_the_host_keeps_serving() {
    let app = app().with_probe().start();
    let r = app.get("/probe/trap").send();
    assert_eq!((r.status, r.body.len()), (500, 0));
    assert_eq!(app.get("/probe/counter").send().text(), "1");
    assert!(app.component_output().contains("probe asked to trap"));
}

#[test]
fn component_output_and_environment() {
    let app = app().component(probe().env("PROBE_COLOUR", "teal")).start();
    assert_eq!(app.get("/probe/stdout?msg=hello%20logs").send().status, 200);
    let out = app.component_output();
    assert!(out.contains("probe stdout: hello logs"), "{out}");
    assert!(out.contains("probe stderr: hello logs"), "{out}");
    assert_eq!(
        app.get("/probe/env?name=PROBE_COLOUR").send().text(),
        "teal"
    );
    assert_eq!(app.get("/probe/env?name=HOME").send().status, 404);
}

#[test]
fn concurrent_sqlite_writers_contend_on_the_database_lock() {
    let app = app().with_probe().start();
    // Create the table first so both writers only contend on the write lock.
    assert_eq!(
        app.post("/probe/sql/write?key=warm&value=1").send().status,
        200
    );

    let addr = app.addr();
    let holder = std::thread::spawn(move || {
        e2e::RequestBuilder::to_addr("POST", addr, "/probe/sql/hold?ms=800&key=a&value=1").send()
    });
    std::thread::sleep(Duration::from_millis(250));
    let started = Instant::now();
    let r = app.post("/probe/sql/write?key=b&value=2").send();
    let waited = started.elapsed();
    let held = holder.join().unwrap();
    held.assert_is(200, "ok");
    // The second writer had its own connection and waited for the lock (rusqlite's
    // busy timeout) instead of failing or writing at once.
    r.assert_is(200, "ok");
    assert!(
        waited >= Duration::from_millis(300),
        "no contention seen: {waited:?}"
    );
    assert_eq!(app.get("/probe/sql/read?key=a").send().text(), "1");
    assert_eq!(app.get("/probe/sql/read?key=b").send().text(), "2");
}

#[test]
fn a_missing_wasm_file_names_the_build_command() {
    let err = app()
        .component(ExtraComponent::new("ghost", "/nonexistent/ghost.wasm").route("/ghost/..."))
        .try_start()
        .err()
        .expect("startup must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("/nonexistent/ghost.wasm"), "{msg}");
    assert!(
        msg.contains("cargo build --target wasm32-wasip1 --release -p ghost"),
        "{msg}"
    );
}

#[test]
fn keep_alive_connections_serve_several_requests() {
    let app = app().with_probe().start();
    let mut conn = app.connect();
    for _ in 0..3 {
        let r = conn.send(app.get("/probe/counter"));
        r.assert_is(200, "1");
        let r = conn.send(app.post("/probe/kv/set?key=ka").body("x"));
        r.assert_is(200, "ok");
    }
}

#[test]
fn the_fake_server_records_requests_and_follows_its_script() {
    let fake = FakeServer::start();
    fake.on(
        "POST",
        "/repository",
        Reply::json(201, &serde_json::json!({"ok": true})),
    );
    fake.on_once("POST", "/repository", Reply::text(500, "first call fails"));
    fake.on("*", "/down", Reply::hang_up());

    let send = |method: &str, path: &str, body: &str| {
        e2e::RequestBuilder::to_url(method, &format!("{}{path}", fake.url()))
            .header("X-Test", "yes")
            .body(body)
            .send()
    };
    let first = send("POST", "/repository?x=1", "{\"name\":\"a\"}");
    first.assert_is(500, "first call fails");
    let second = send("POST", "/repository", "{\"name\":\"b\"}");
    assert_eq!(second.status, 201);
    assert_eq!(second.json()["ok"], true);
    let other = send("GET", "/anything", "");
    assert_eq!((other.status, other.body.len()), (200, 0));
    assert!(
        e2e::RequestBuilder::to_url("GET", &format!("{}/down", fake.url()))
            .try_send()
            .is_err()
    );

    let seen = fake.wait_for(4, Duration::from_secs(5));
    assert_eq!(seen.len(), 4);
    let repo = fake.requests_to("POST", "/repository");
    assert_eq!(repo.len(), 2);
    assert_eq!(repo[0].target, "/repository?x=1");
    assert_eq!(repo[0].header("x-test"), Some("yes"));
    assert_eq!(repo[1].json()["name"], "b");
    fake.clear();
    assert!(fake.requests().is_empty());
}
