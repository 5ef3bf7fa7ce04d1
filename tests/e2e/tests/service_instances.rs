//! `service-instances` component end to end (API.md 3.3, 5.1): every call to the fake
//! service API is checked, as are the app's variables around bind and unbind, the
//! rollbacks, and the service steps of app removal and unit changes (API.md 3.1).

use e2e::accounts::{add_to_team, admin, team, user};
use e2e::services::{create_app, create_instance, create_service, manifest};
use e2e::{app, parse_form, App, FakeServer, Recorded, Reply, Resp};
use serde_json::{json, Value};
use std::time::Duration;

fn answer(resp: &Resp) -> (u16, String) {
    (resp.status, resp.text())
}

fn error(status: u16, message: &str) -> (u16, String) {
    (status, format!("{message}\n"))
}

/// `Basic base64("tsuru:s3cret")`, the credentials of the services made by [`World`].
const BASIC: &str = "Basic dHN1cnU6czNjcmV0";

/// An app run with a fake provisioner, the permission-matrix callers, and service
/// `mysql` (owned by alice's team `backend`, with credentials) on a fake service API.
struct World {
    app: App,
    provisioner: FakeServer,
    service: FakeServer,
    admin: String,
    alice: String,
    bob: String,
    carol: String,
}

fn world() -> World {
    let provisioner = FakeServer::start();
    let service = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    let bob = user(&app, "bob@example.com");
    let carol = user(&app, "carol@example.com");
    team(&app, &alice, "backend");
    team(&app, &bob, "frontend");
    let created = app
        .post("/services")
        .bearer(&alice)
        .body(format!(
            "id: mysql\nusername: tsuru\npassword: s3cret\nendpoint:\n  production: {}\n",
            service.url()
        ))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    World {
        app,
        provisioner,
        service,
        admin,
        alice,
        bob,
        carol,
    }
}

impl World {
    fn create(&self, token: &str, body: Value) -> (u16, String) {
        answer(
            &self
                .app
                .post("/services/instances")
                .bearer(token)
                .json(&body)
                .send(),
        )
    }

    fn bind(&self, token: &str, instance: &str, app: &str) -> Resp {
        self.app
            .put(&format!("/services/instances/{instance}/{app}"))
            .bearer(token)
            .send()
    }

    fn unbind(&self, token: &str, instance: &str, app: &str) -> Resp {
        self.app
            .delete(&format!("/services/instances/{instance}/{app}"))
            .bearer(token)
            .send()
    }

    /// `myapp` (alice's) at 10.0.0.10 with units 10.0.0.11 and 10.0.0.12, and `mydb`.
    fn myapp_and_mydb(&self) {
        create_app(
            &self.app,
            &self.alice,
            &self.provisioner,
            "myapp",
            "10.0.0.10",
            &["10.0.0.11", "10.0.0.12"],
        );
        create_instance(&self.app, &self.alice, "mysql", "mydb");
        self.service.clear();
    }

    /// The app's variables as `GET /apps/:app/env` shows them.
    fn env(&self, app: &str) -> Value {
        let resp = self
            .app
            .get(&format!("/apps/{app}/env"))
            .bearer(&self.alice)
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    }

    /// The app's complete, unmasked variables, as the provisioner receives them on restart.
    fn provisioned_env(&self, app: &str) -> Value {
        self.provisioner.clear();
        let resp = self
            .app
            .post(&format!("/apps/{app}/restart"))
            .bearer(&self.alice)
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text());
        self.provisioner
            .requests_to("POST", &format!("/apps/{app}/restart"))[0]
            .json()["env"]
            .clone()
    }

    fn instance_apps(&self, instance: &str) -> Value {
        let resp = self
            .app
            .get(&format!("/services/instances/{instance}"))
            .bearer(&self.alice)
            .send();
        resp.json()["apps"].clone()
    }
}

/// Asserts the common parts of every service API call (API.md 5.1).
fn assert_service_call(call: &Recorded, method: &str, path: &str) {
    assert_eq!((call.method.as_str(), call.path()), (method, path));
    assert_eq!(
        call.header("accept"),
        Some("application/json"),
        "{method} {path}"
    );
    assert_eq!(call.header("authorization"), Some(BASIC), "{method} {path}");
    if method == "POST" {
        assert_eq!(
            call.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }
}

fn bind_form(call: &Recorded) -> Vec<(String, String)> {
    parse_form(&call.text()).into_iter().collect()
}

fn hosts(app_ip: &str, unit_ip: &str) -> Vec<(String, String)> {
    vec![
        ("app-host".into(), app_ip.into()),
        ("unit-host".into(), unit_ip.into()),
    ]
}

#[test]
fn creating_instances() {
    let w = world();
    let body = |name: &str, service: &str| json!({"name": name, "service_name": service});

    assert_eq!(
        answer(
            &w.app
                .post("/services/instances")
                .bearer(&w.alice)
                .body("{")
                .send()
        ),
        error(400, "Invalid JSON in request body.")
    );
    assert_eq!(
        w.create(&w.alice, json!({"name": 7, "service_name": "mysql"})),
        error(400, "Invalid JSON in request body.")
    );
    assert_eq!(
        w.create(&w.alice, body("mydb", "nope")),
        error(404, "Service not found")
    );
    assert_eq!(
        w.create(&w.alice, body("1db", "mysql")),
        error(400, "Invalid service instance name")
    );
    assert_eq!(
        w.create(&w.alice, body("d", "mysql")),
        error(400, "Invalid service instance name")
    );
    // At most 255 bytes (a bound of this API's, not the reference's).
    let longest = format!("d{}", "b".repeat(254));
    assert_eq!(
        w.create(&w.alice, body(&format!("{longest}b"), "mysql")),
        error(400, "Invalid service instance name")
    );
    assert_eq!(
        w.create(&w.carol, body("mydb", "mysql")),
        error(
            403,
            "In order to create a service instance, you should be member of at least one team"
        )
    );
    assert!(w.service.requests().is_empty());

    assert_eq!(
        w.create(&w.alice, body("mydb", "mysql")),
        (200, String::new())
    );
    let calls = w.service.requests();
    assert_eq!(calls.len(), 1);
    assert_service_call(&calls[0], "POST", "/resources");
    assert_eq!(
        bind_form(&calls[0]),
        vec![("name".to_string(), "mydb".to_string())]
    );

    // Any name, across services, is taken once.
    create_service(&w.app, &w.bob, "redis", &w.service.url());
    assert_eq!(
        w.create(&w.bob, body("mydb", "redis")),
        error(409, "Instance name already exists.")
    );

    // Other teams and admins may create instances of an unrestricted service.
    assert_eq!(
        w.create(&w.bob, body("bobs-db", "mysql")),
        (200, String::new())
    );
    assert_eq!(
        w.create(&w.admin, body("admins-db", "mysql")),
        (200, String::new())
    );
    let info = w
        .app
        .get("/services/instances/bobs-db")
        .bearer(&w.bob)
        .send();
    assert_eq!(info.json()["teams"], json!(["frontend"]));
}

#[test]
fn failed_creation_stores_nothing() {
    let w = world();
    w.service.on_once(
        "POST",
        "/resources",
        Reply::text(500, "  no capacity left \n"),
    );
    assert_eq!(
        w.create(&w.alice, json!({"name": "mydb", "service_name": "mysql"})),
        error(502, "Failed to create the instance mydb: no capacity left")
    );
    let listed = w
        .app
        .get("/services/instances")
        .bearer(&w.alice)
        .send()
        .json();
    assert_eq!(listed, json!([{"service": "mysql", "instances": []}]));

    // A service API that is down.
    create_service(&w.app, &w.alice, "down", &e2e::refused_url());
    let (status, text) = w.create(&w.alice, json!({"name": "downdb", "service_name": "down"}));
    assert_eq!(status, 502);
    assert!(
        text.starts_with("Failed to create the instance downdb: ") && text.len() > 40,
        "{text}"
    );
    assert!(!text.contains("Internal"), "{text}");

    // Data made outside the API: a service without a production endpoint.
    w.app
        .sql("DELETE FROM service_endpoints WHERE service_id = (SELECT id FROM services WHERE name = 'mysql')");
    assert_eq!(
        w.create(&w.alice, json!({"name": "mydb", "service_name": "mysql"})),
        error(500, "Unknown endpoint: production")
    );
    // The name is still free once the service works again.
    w.app
        .put("/services")
        .bearer(&w.alice)
        .body(manifest("mysql", &w.service.url()))
        .send();
    assert_eq!(
        w.create(&w.alice, json!({"name": "mydb", "service_name": "mysql"})),
        (200, String::new())
    );
}

#[test]
fn concurrent_creates_of_one_name_make_one_service_call() {
    let w = world();
    // Both requests pass the name check while the service API is still answering.
    w.service.on(
        "POST",
        "/resources",
        Reply::ok().delay(Duration::from_millis(1500)),
    );
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| w.create(&w.alice, json!({"name": "mydb", "service_name": "mysql"})))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let mut statuses = statuses;
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            (200, String::new()),
            error(409, "Instance name already exists.")
        ]
    );
    // The name is reserved before the service API is called (API.md 3.3): the loser
    // never reaches it, so nothing of the winner's is destroyed.
    assert_eq!(w.service.requests_to("POST", "/resources").len(), 1);
    assert!(w
        .service
        .requests_to("DELETE", "/resources/mydb")
        .is_empty());
}

#[test]
fn restricted_services_give_instances_to_the_granted_teams() {
    let w = world();
    let alice_ops = user(&w.app, "ops@example.com");
    team(&w.app, &alice_ops, "ops");
    add_to_team(&w.app, &alice_ops, "ops", "alice@example.com");
    w.app
        .put("/services")
        .bearer(&w.alice)
        .body(format!(
            "{}username: tsuru\npassword: s3cret\nrestricted: true\n",
            manifest("mysql", &w.service.url())
        ))
        .send();
    let body = json!({"name": "mydb", "service_name": "mysql"});
    assert_eq!(
        w.create(&w.alice, body.clone()),
        error(404, "This user does not have access to this service")
    );
    assert_eq!(
        w.app
            .put("/services/mysql/ops")
            .bearer(&w.alice)
            .send()
            .status,
        200
    );
    assert_eq!(w.create(&w.alice, body), (200, String::new()));
    let info = w
        .app
        .get("/services/instances/mydb")
        .bearer(&w.alice)
        .send()
        .json();
    assert_eq!(info["teams"], json!(["ops"]));
    // Listed only for teams that may use the service.
    assert_eq!(
        w.app
            .get("/services/instances")
            .bearer(&w.alice)
            .send()
            .json(),
        json!([{"service": "mysql", "instances": ["mydb"]}])
    );
    assert_eq!(
        w.app
            .get("/services/instances")
            .bearer(&w.bob)
            .send()
            .json(),
        json!([])
    );
}

#[test]
fn listing_and_reading_instances() {
    let w = world();
    create_service(&w.app, &w.bob, "redis", &w.service.url());
    create_instance(&w.app, &w.alice, "mysql", "mydb");
    create_instance(&w.app, &w.alice, "mysql", "another");
    create_instance(&w.app, &w.bob, "mysql", "bobs-db");
    create_instance(&w.app, &w.bob, "redis", "redis-globo");

    let listed = w.app.get("/services/instances").bearer(&w.alice).send();
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(
        listed.json(),
        json!([{"service": "mysql", "instances": ["another", "mydb"]}, {"service": "redis", "instances": []}])
    );
    assert_eq!(
        w.app
            .get("/services/instances")
            .bearer(&w.bob)
            .send()
            .json(),
        json!([{"service": "mysql", "instances": ["bobs-db"]}, {"service": "redis", "instances": ["redis-globo"]}])
    );
    assert_eq!(
        w.app
            .get("/services/instances")
            .bearer(&w.carol)
            .send()
            .json(),
        json!([{"service": "mysql", "instances": []}, {"service": "redis", "instances": []}])
    );

    let get = |token: &str, name: &str| {
        answer(
            &w.app
                .get(&format!("/services/instances/{name}"))
                .bearer(token)
                .send(),
        )
    };
    assert_eq!(
        get(&w.alice, "nope"),
        error(404, "Service instance not found")
    );
    for other in [&w.bob, &w.admin, &w.carol] {
        assert_eq!(
            get(other, "mydb"),
            error(403, "User does not have access to this service instance")
        );
    }
    w.service.on(
        "GET",
        "/resources/mydb",
        Reply::json(200, &json!([{"label": "Address", "value": "10.0.0.1"}])),
    );
    w.service.clear();
    let info = w
        .app
        .get("/services/instances/mydb")
        .bearer(&w.alice)
        .send();
    assert_eq!(
        info.json(),
        json!({"name": "mydb", "servicename": "mysql", "teams": ["backend"], "apps": [], "info": {"Address": "10.0.0.1"}})
    );
    assert_service_call(&w.service.requests()[0], "GET", "/resources/mydb");
    w.service
        .on("GET", "/resources/another", Reply::text(404, "what?"));
    assert_eq!(
        w.app
            .get("/services/instances/another")
            .bearer(&w.alice)
            .send()
            .json()["info"],
        json!({})
    );
}

#[test]
fn instance_status() {
    let w = world();
    create_instance(&w.app, &w.alice, "mysql", "mydb");
    let path = "/services/instances/mydb/status";
    let status = |token: &str| answer(&w.app.get(path).bearer(token).send());
    assert_eq!(
        answer(
            &w.app
                .get("/services/instances/nope/status")
                .bearer(&w.alice)
                .send()
        ),
        error(404, "Service instance not found")
    );
    for other in [&w.bob, &w.admin, &w.carol] {
        assert_eq!(
            status(other),
            error(403, "User does not have access to this service instance")
        );
    }
    let cases = [(202, "pending"), (204, "up"), (500, "down")];
    for (code, word) in cases {
        w.service
            .on_once("GET", "/resources/mydb/status", Reply::status(code));
        let resp = w.app.get(path).bearer(&w.alice).send();
        assert_eq!(
            answer(&resp),
            (200, format!("Service instance \"mydb\" is {word}"))
        );
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    w.service.on_once(
        "GET",
        "/resources/mydb/status",
        Reply::text(200, "fine, really"),
    );
    assert_eq!(
        status(&w.alice),
        error(502, "Could not retrieve status of service instance, error: Failed to get status of instance mydb: fine, really")
    );
    w.service.on_once(
        "GET",
        "/resources/mydb/status",
        Reply::text(503, "maintenance"),
    );
    assert_eq!(
        status(&w.alice),
        error(502, "Could not retrieve status of service instance, error: Failed to get status of instance mydb: maintenance")
    );
    w.service
        .on_once("GET", "/resources/mydb/status", Reply::hang_up());
    let (code, text) = status(&w.alice);
    assert_eq!(code, 502);
    assert!(text.starts_with("Could not retrieve status of service instance, error: Failed to get status of instance mydb: "), "{text}");
    for call in w.service.requests_to("GET", "/resources/mydb/status") {
        assert_service_call(&call, "GET", "/resources/mydb/status");
    }
}

#[test]
fn a_service_api_that_never_answers_times_out_after_30_seconds() {
    let w = world();
    create_instance(&w.app, &w.alice, "mysql", "mydb");
    w.service.on_once(
        "GET",
        "/resources/mydb/status",
        Reply::status(204).delay(Duration::from_secs(32)),
    );
    let started = std::time::Instant::now();
    let (code, text) = answer(
        &w.app
            .get("/services/instances/mydb/status")
            .bearer(&w.alice)
            .send(),
    );
    let waited = started.elapsed();
    assert_eq!(code, 502, "{text}");
    assert!(text.starts_with("Could not retrieve status of service instance, error: Failed to get status of instance mydb: "), "{text}");
    assert!(
        waited >= Duration::from_secs(29) && waited < Duration::from_secs(32),
        "{waited:?}"
    );
}

#[test]
fn removing_instances() {
    let w = world();
    w.myapp_and_mydb();
    create_instance(&w.app, &w.alice, "mysql", "other");
    let remove = |token: &str, name: &str| {
        answer(
            &w.app
                .delete(&format!("/services/instances/{name}"))
                .bearer(token)
                .send(),
        )
    };
    assert_eq!(
        remove(&w.alice, "nope"),
        error(404, "Service instance not found")
    );
    for other in [&w.bob, &w.admin, &w.carol] {
        assert_eq!(
            remove(other, "mydb"),
            error(403, "User does not have access to this service instance")
        );
    }
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);
    assert_eq!(
        remove(&w.alice, "mydb"),
        error(
            409,
            "This service instance is bound to at least one app. Unbind them before removing it"
        )
    );
    w.service.clear();
    let removed = w
        .app
        .delete("/services/instances/other")
        .bearer(&w.alice)
        .send();
    assert_eq!(
        answer(&removed),
        (200, "service instance successfuly removed".to_string())
    );
    assert_eq!(
        removed.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_service_call(&w.service.requests()[0], "DELETE", "/resources/other");
    assert_eq!(
        remove(&w.alice, "other"),
        error(404, "Service instance not found")
    );

    // A failed destroy is ignored.
    assert_eq!(w.unbind(&w.alice, "mydb", "myapp").status, 200);
    w.service
        .on_once("DELETE", "/resources/mydb", Reply::text(500, "cannot"));
    assert_eq!(
        remove(&w.alice, "mydb"),
        (200, "service instance successfuly removed".to_string())
    );
    assert_eq!(
        w.app
            .get("/services/instances")
            .bearer(&w.alice)
            .send()
            .json(),
        json!([{"service": "mysql", "instances": []}])
    );
}

#[test]
fn binding_and_unbinding_an_app() {
    let w = world();
    w.myapp_and_mydb();
    let before = w.provisioned_env("myapp");
    w.service.on(
        "POST",
        "/resources/mydb",
        Reply::json(
            201,
            &json!({"DATABASE_HOST": "10.0.0.1", "DATABASE_USER": "root", "TSURU_APPNAME": "evil"}),
        ),
    );

    let bound = w.bind(&w.alice, "mydb", "myapp");
    assert_eq!(bound.status, 200, "{}", bound.text());
    assert_eq!(bound.header("content-type"), Some("application/json"));
    assert_eq!(
        bound.json(),
        json!({"DATABASE_HOST": "10.0.0.1", "DATABASE_USER": "root"})
    );
    let calls = w.service.requests();
    assert_eq!(calls.len(), 2, "one bind per unit");
    for (call, unit_ip) in calls.iter().zip(["10.0.0.11", "10.0.0.12"]) {
        assert_service_call(call, "POST", "/resources/mydb");
        assert_eq!(bind_form(call), hosts("10.0.0.10", unit_ip));
    }

    // Private, so masked; the reserved variable was not overwritten.
    let env = w.env("myapp");
    let masked =
        |name: &str| json!({"name": name, "value": "*** (private variable)", "public": false});
    for name in ["DATABASE_HOST", "DATABASE_USER", "TSURU_SERVICES"] {
        assert!(
            env.as_array().expect("env list").contains(&masked(name)),
            "{name} in {env}"
        );
    }
    let full = w.provisioned_env("myapp");
    assert_eq!(full["TSURU_APPNAME"], "myapp");
    assert_eq!(full["DATABASE_HOST"], "10.0.0.1");
    let services: Value =
        serde_json::from_str(full["TSURU_SERVICES"].as_str().expect("TSURU_SERVICES"))
            .expect("JSON");
    assert_eq!(
        services,
        json!({"mysql": [{"instance_name": "mydb", "envs": {"DATABASE_HOST": "10.0.0.1", "DATABASE_USER": "root"}}]})
    );
    assert_eq!(w.instance_apps("mydb"), json!(["myapp"]));
    assert_eq!(
        answer(&w.bind(&w.alice, "mydb", "myapp")),
        error(409, "This app is already bound to this service instance.")
    );

    // Unbind: every unit, then the variables go.
    w.service.clear();
    let unbound = w.unbind(&w.alice, "mydb", "myapp");
    assert_eq!(answer(&unbound), (200, String::new()));
    let calls = w.service.requests();
    assert_eq!(calls.len(), 2, "one unbind per unit");
    assert_service_call(&calls[0], "DELETE", "/resources/mydb/hostname/10.0.0.11");
    assert_service_call(&calls[1], "DELETE", "/resources/mydb/hostname/10.0.0.12");
    assert_eq!(w.provisioned_env("myapp"), before);
    assert_eq!(w.instance_apps("mydb"), json!([]));
    assert_eq!(
        answer(&w.unbind(&w.alice, "mydb", "myapp")),
        error(412, "This app is not bound to this service instance.")
    );
}

#[test]
fn bind_and_unbind_checks() {
    let w = world();
    w.myapp_and_mydb();
    create_app(
        &w.app,
        &w.bob,
        &w.provisioner,
        "bobapp",
        "10.0.1.10",
        &["10.0.1.11"],
    );
    let both = |token: &str, instance: &str, app: &str| {
        let bind = answer(&w.bind(token, instance, app));
        let unbind = answer(&w.unbind(token, instance, app));
        assert_eq!(
            bind, unbind,
            "bind and unbind check alike: {instance} {app}"
        );
        bind
    };
    assert_eq!(
        both(&w.alice, "nope", "myapp"),
        error(404, "Service instance not found")
    );
    for other in [&w.bob, &w.admin, &w.carol] {
        assert_eq!(
            both(other, "mydb", "myapp"),
            error(403, "User does not have access to this service instance")
        );
    }
    assert_eq!(
        both(&w.alice, "mydb", "nope"),
        error(404, "App nope not found.")
    );
    assert_eq!(
        both(&w.alice, "mydb", "bobapp"),
        error(403, "This user does not have access to this app")
    );

    // An admin in the instance's team passes the app check (API.md 6, 7.1).
    add_to_team(&w.app, &w.alice, "backend", "admin@example.com");
    assert_eq!(w.bind(&w.admin, "mydb", "bobapp").status, 200);
    assert_eq!(w.unbind(&w.admin, "mydb", "bobapp").status, 200);

    // States the API cannot make: an app without units, a service without endpoint.
    w.app
        .sql("DELETE FROM units WHERE app_id = (SELECT id FROM apps WHERE name = 'bobapp')");
    assert_eq!(
        answer(&w.bind(&w.admin, "mydb", "bobapp")),
        error(412, "This app does not have an IP yet.")
    );
    w.app
        .sql("DELETE FROM service_endpoints WHERE service_id = (SELECT id FROM services WHERE name = 'mysql')");
    assert_eq!(
        answer(&w.bind(&w.alice, "mydb", "myapp")),
        error(500, "Unknown endpoint: production")
    );
    assert_eq!(
        answer(&w.unbind(&w.alice, "mydb", "myapp")),
        error(412, "This app is not bound to this service instance.")
    );
    for path in [
        "/services/instances/mydb",
        "/services/instances/mydb/status",
    ] {
        assert_eq!(
            answer(&w.app.get(path).bearer(&w.alice).send()),
            error(500, "Unknown endpoint: production")
        );
    }
    assert_eq!(
        w.service.requests_to("POST", "/resources/mydb").len(),
        1,
        "only the admin's bind reached the service"
    );
}

#[test]
fn failed_binds_leave_no_trace() {
    let w = world();
    w.myapp_and_mydb();
    let before = w.provisioned_env("myapp");
    let ok = Reply::json(200, &json!({"DATABASE_HOST": "10.0.0.1"}));
    let cases: Vec<(Reply, (u16, String))> = vec![
        (
            Reply::status(412),
            error(
                412,
                "You cannot bind any app to this service instance because it is not ready yet.",
            ),
        ),
        (
            Reply::text(500, " database exploded\n"),
            error(
                502,
                "Failed to bind instance mydb to the unit 10.0.0.12: database exploded",
            ),
        ),
        (
            Reply::text(200, "{not json"),
            error(
                502,
                "Failed to bind instance mydb to the unit 10.0.0.12: invalid response",
            ),
        ),
        (
            Reply::json(200, &json!({"PORT": 3306})),
            error(
                502,
                "Failed to bind instance mydb to the unit 10.0.0.12: invalid response",
            ),
        ),
        (Reply::hang_up(), error(502, "mydb api is down.")),
    ];
    for (second_unit_reply, expected) in cases {
        w.service.clear();
        // The first unit binds, the second fails: the first is unbound again.
        w.service.on_once("POST", "/resources/mydb", ok.clone());
        w.service
            .on_once("POST", "/resources/mydb", second_unit_reply);
        assert_eq!(answer(&w.bind(&w.alice, "mydb", "myapp")), expected);
        let calls = w.service.requests();
        let summary: Vec<(String, String)> = calls
            .iter()
            .map(|c| (c.method.clone(), c.path().to_string()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("POST".to_string(), "/resources/mydb".to_string()),
                ("POST".to_string(), "/resources/mydb".to_string()),
                (
                    "DELETE".to_string(),
                    "/resources/mydb/hostname/10.0.0.11".to_string()
                ),
            ],
            "{expected:?}"
        );
        assert_eq!(w.instance_apps("mydb"), json!([]));
        assert_eq!(w.provisioned_env("myapp"), before);
    }
    // A failure on the first unit unbinds nothing.
    w.service.clear();
    w.service
        .on_once("POST", "/resources/mydb", Reply::text(500, "nope"));
    assert_eq!(
        answer(&w.bind(&w.alice, "mydb", "myapp")),
        error(
            502,
            "Failed to bind instance mydb to the unit 10.0.0.11: nope"
        )
    );
    assert_eq!(w.service.requests().len(), 1);
    // And the instance still binds afterwards.
    w.service.on("POST", "/resources/mydb", ok);
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);
    // The failures were logged, the service's credentials never.
    let logs = w.app.component_output();
    assert!(logs.contains("mydb"), "failures are reported on stderr");
    assert!(
        !logs.contains("s3cret") && !logs.contains(&BASIC[6..]),
        "credentials in the logs"
    );
}

/// Variables a binding sets count toward the app's limits (1,000 variables, 1 MiB): a
/// bind that would take the app past them is refused and undone like any failed bind.
#[test]
fn a_bind_past_the_variable_limits_is_refused_and_undone() {
    let w = world();
    w.myapp_and_mydb();
    let before = w.provisioned_env("myapp");
    let too_many: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("VAR_{i}"), json!("x")))
        .collect();
    // TSURU_SERVICES repeats the bound values, so 600 KB of them is 1.2 MB in all.
    let too_large = json!({"BLOB": "y".repeat(600 * 1024)});
    for reply in [Value::Object(too_many), too_large] {
        w.service.clear();
        w.service
            .on("POST", "/resources/mydb", Reply::json(200, &reply));
        assert_eq!(
            answer(&w.bind(&w.alice, "mydb", "myapp")),
            error(
                400,
                "Too many environment variables: an app may hold at most 1000, \
                 of at most 1048576 bytes of names and values in all."
            )
        );
        let unbound: Vec<String> = w
            .service
            .requests()
            .iter()
            .filter(|c| c.method == "DELETE")
            .map(|c| c.path().to_string())
            .collect();
        assert_eq!(
            unbound,
            [
                "/resources/mydb/hostname/10.0.0.11",
                "/resources/mydb/hostname/10.0.0.12"
            ]
        );
        assert_eq!(w.instance_apps("mydb"), json!([]));
        assert_eq!(w.provisioned_env("myapp"), before);
    }
    // Within the limits the same instance binds.
    w.service.clear();
    w.service.on(
        "POST",
        "/resources/mydb",
        Reply::json(200, &json!({"DATABASE_HOST": "10.0.0.1"})),
    );
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);
    assert_eq!(w.provisioned_env("myapp")["DATABASE_HOST"], "10.0.0.1");
}

/// Two binds at once, each within the limits alone but not together: the check runs
/// after the variables are written, in the transaction that writes them, so exactly one
/// binding stays.
#[test]
fn concurrent_binds_never_pass_the_variable_limits_together() {
    let w = world();
    w.myapp_and_mydb();
    create_instance(&w.app, &w.alice, "mysql", "otherdb");
    // Room for one binding's five variables and `TSURU_SERVICES`, not for two.
    let held = w.env("myapp").as_array().unwrap().len();
    let fill: serde_json::Map<String, Value> = (0..1000 - held - 8)
        .map(|i| (format!("FILL_{i}"), json!("x")))
        .collect();
    let filled = w
        .app
        .post("/apps/myapp/env")
        .bearer(&w.alice)
        .json(&Value::Object(fill))
        .send();
    assert_eq!(filled.status, 200, "{}", filled.text());
    for instance in ["mydb", "otherdb"] {
        let reply: serde_json::Map<String, Value> = (0..5)
            .map(|i| (format!("{}_{i}", instance.to_uppercase()), json!("h")))
            .collect();
        w.service.on(
            "POST",
            &format!("/resources/{instance}"),
            Reply::json(200, &Value::Object(reply)),
        );
    }
    let answers = e2e::races::parallel(2, |i| {
        let instance = ["mydb", "otherdb"][i];
        w.app
            .put(&format!("/services/instances/{instance}/myapp"))
            .bearer(&w.alice)
    });
    let mut outcomes: Vec<(u16, String)> = answers.iter().map(answer).collect();
    outcomes.sort();
    assert_eq!(outcomes[0].0, 200, "{outcomes:?}");
    assert_eq!(
        outcomes[1],
        error(
            400,
            "Too many environment variables: an app may hold at most 1000, \
             of at most 1048576 bytes of names and values in all."
        )
    );
    let bound: Vec<&str> = ["mydb", "otherdb"]
        .into_iter()
        .filter(|i| w.instance_apps(i) == json!(["myapp"]))
        .collect();
    assert_eq!(bound.len(), 1, "exactly one binding stays");
    let env = w.provisioned_env("myapp");
    let prefix = format!("{}_", bound[0].to_uppercase());
    let env_names: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert_eq!(
        env_names.iter().filter(|n| n.starts_with(&prefix)).count(),
        5
    );
    assert!(env_names.len() <= 1000, "{} variables", env_names.len());
}

#[test]
fn failed_unbind_changes_nothing() {
    let w = world();
    w.myapp_and_mydb();
    w.service.on(
        "POST",
        "/resources/mydb",
        Reply::json(200, &json!({"DATABASE_HOST": "10.0.0.1"})),
    );
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);
    let bound_env = w.provisioned_env("myapp");
    w.service.clear();
    w.service.on_once(
        "DELETE",
        "/resources/mydb/hostname/10.0.0.12",
        Reply::text(500, "busy\n"),
    );
    assert_eq!(
        answer(&w.unbind(&w.alice, "mydb", "myapp")),
        error(
            502,
            "Failed to unbind (\"/resources/mydb/hostname/10.0.0.12\"): busy"
        )
    );
    // The unit already unbound is bound again.
    let calls = w.service.requests();
    assert_eq!(calls.len(), 3);
    assert_service_call(&calls[0], "DELETE", "/resources/mydb/hostname/10.0.0.11");
    assert_service_call(&calls[1], "DELETE", "/resources/mydb/hostname/10.0.0.12");
    assert_service_call(&calls[2], "POST", "/resources/mydb");
    assert_eq!(bind_form(&calls[2]), hosts("10.0.0.10", "10.0.0.11"));
    assert_eq!(w.provisioned_env("myapp"), bound_env);
    assert_eq!(w.instance_apps("mydb"), json!(["myapp"]));

    w.service.on_once(
        "DELETE",
        "/resources/mydb/hostname/10.0.0.11",
        Reply::hang_up(),
    );
    let (status, text) = answer(&w.unbind(&w.alice, "mydb", "myapp"));
    assert_eq!(status, 502);
    assert!(
        text.starts_with("Failed to unbind (\"/resources/mydb/hostname/10.0.0.11\"): "),
        "{text}"
    );
    assert_eq!(w.instance_apps("mydb"), json!(["myapp"]));
}

#[test]
fn two_instances_share_tsuru_services() {
    let w = world();
    w.myapp_and_mydb();
    create_service(&w.app, &w.alice, "redis", &w.service.url());
    create_instance(&w.app, &w.alice, "redis", "cache");
    w.service.on(
        "POST",
        "/resources/mydb",
        Reply::json(200, &json!({"DATABASE_HOST": "db", "SHARED": "from-mysql"})),
    );
    w.service.on("POST", "/resources/cache", Reply::status(200));
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);
    let cache = w.bind(&w.alice, "cache", "myapp");
    assert_eq!((cache.status, cache.json()), (200, json!({})));
    let services = |w: &World| -> Value {
        let env = w.provisioned_env("myapp");
        env.get("TSURU_SERVICES").map_or(Value::Null, |v| {
            serde_json::from_str(v.as_str().unwrap_or("")).expect("JSON")
        })
    };
    assert_eq!(
        services(&w),
        json!({
            "mysql": [{"instance_name": "mydb", "envs": {"DATABASE_HOST": "db", "SHARED": "from-mysql"}}],
            "redis": [{"instance_name": "cache", "envs": {}}]
        })
    );
    assert_eq!(w.unbind(&w.alice, "mydb", "myapp").status, 200);
    assert_eq!(
        services(&w),
        json!({"redis": [{"instance_name": "cache", "envs": {}}]})
    );
    assert_eq!(w.unbind(&w.alice, "cache", "myapp").status, 200);
    assert_eq!(services(&w), Value::Null);
}

#[test]
fn app_removal_and_unit_changes_reach_bound_services() {
    let w = world();
    w.myapp_and_mydb();
    w.service.on(
        "POST",
        "/resources/mydb",
        Reply::json(200, &json!({"DATABASE_HOST": "db"})),
    );
    assert_eq!(w.bind(&w.alice, "mydb", "myapp").status, 200);

    // New units are bound to the instance.
    w.service.clear();
    w.provisioner.on_once(
        "POST",
        "/apps/myapp/units",
        Reply::json(
            200,
            &json!({"units": [{"name": "myapp/2", "ip": "10.0.0.13", "state": "started"}]}),
        ),
    );
    assert_eq!(
        w.app
            .put("/apps/myapp/units")
            .bearer(&w.alice)
            .body("1")
            .send()
            .status,
        200
    );
    let calls = w.service.requests();
    assert_eq!(calls.len(), 1);
    assert_service_call(&calls[0], "POST", "/resources/mydb");
    assert_eq!(bind_form(&calls[0]), hosts("10.0.0.10", "10.0.0.13"));

    // A removed unit is unbound.
    w.service.clear();
    assert_eq!(
        w.app
            .delete("/apps/myapp/units")
            .bearer(&w.alice)
            .body("1")
            .send()
            .status,
        200
    );
    let calls = w.service.requests();
    assert_eq!(calls.len(), 1);
    assert_service_call(&calls[0], "DELETE", "/resources/mydb/hostname/10.0.0.13");

    // Removing the app unbinds every unit, even when the service fails.
    w.service.clear();
    w.service.on_once(
        "DELETE",
        "/resources/mydb/hostname/10.0.0.11",
        Reply::text(500, "ignored"),
    );
    let removed = w.app.delete("/apps/myapp").bearer(&w.alice).send();
    assert_eq!(answer(&removed), (200, "success".to_string()));
    let calls = w.service.requests();
    assert_eq!(calls.len(), 2);
    assert_service_call(&calls[0], "DELETE", "/resources/mydb/hostname/10.0.0.11");
    assert_service_call(&calls[1], "DELETE", "/resources/mydb/hostname/10.0.0.12");
    assert_eq!(w.instance_apps("mydb"), json!([]));
    assert_eq!(
        answer(
            &w.app
                .delete("/services/instances/mydb")
                .bearer(&w.alice)
                .send()
        )
        .0,
        200
    );
}

#[test]
fn app_tokens_and_anonymous_callers_are_refused() {
    let w = world();
    w.myapp_and_mydb();
    let app_token = w
        .app
        .post("/tokens")
        .bearer(&w.admin)
        .json(&json!({"client": "myapp"}))
        .send()
        .json()["Token"]
        .as_str()
        .expect("app token")
        .to_string();
    let routes: [(&str, &str); 7] = [
        ("GET", "/services/instances"),
        ("POST", "/services/instances"),
        ("GET", "/services/instances/mydb"),
        ("DELETE", "/services/instances/mydb"),
        ("GET", "/services/instances/mydb/status"),
        ("PUT", "/services/instances/mydb/myapp"),
        ("DELETE", "/services/instances/mydb/myapp"),
    ];
    for (method, path) in routes {
        let anonymous = w.app.request(method, path).send();
        assert_eq!(
            answer(&anonymous),
            error(401, "You must provide the Authorization header"),
            "{method} {path}"
        );
        let by_app = w.app.request(method, path).bearer(&app_token).send();
        assert_eq!(
            answer(&by_app),
            error(403, "This action requires a user token"),
            "{method} {path}"
        );
    }
    assert!(w.service.requests().is_empty());
}
