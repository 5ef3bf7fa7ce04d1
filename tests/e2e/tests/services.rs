//! `services` component end to end (API.md 3.2) and its permission-matrix rows.

use e2e::accounts::{admin, team, user};
use e2e::services::{create_instance, create_service, manifest};
use e2e::{app, App, FakeServer, Reply, Resp};
use serde_json::json;

/// Status and body of a response, for one-line assertions.
fn answer(resp: &Resp) -> (u16, String) {
    (resp.status, resp.text())
}

fn error(status: u16, message: &str) -> (u16, String) {
    (status, format!("{message}\n"))
}

/// The callers of the permission matrix: `admin` (in team `admin` only), `alice`
/// (team `backend`, which owns what she creates), `bob` (team `frontend`), `carol` (no team).
struct Callers {
    admin: String,
    alice: String,
    bob: String,
    carol: String,
}

fn callers(app: &App) -> Callers {
    let admin = admin(app);
    let alice = user(app, "alice@example.com");
    let bob = user(app, "bob@example.com");
    let carol = user(app, "carol@example.com");
    team(app, &alice, "backend");
    team(app, &bob, "frontend");
    Callers {
        admin,
        alice,
        bob,
        carol,
    }
}

#[test]
fn creating_services_checks_the_manifest() {
    let app = app().start();
    let c = callers(&app);
    let service = FakeServer::start();
    let post = |token: &str, body: &str| {
        answer(
            &app.post("/services")
                .bearer(token)
                .body(body.to_string())
                .send(),
        )
    };

    for body in [
        "id: [unclosed",
        "- a\n- list",
        "id: x\nendpoint: [a, b]",
        "id: x\nrestricted: maybe",
        "id: x\nendpoint: {production: 8080}",
    ] {
        let (status, text) = post(&c.alice, body);
        assert_eq!(status, 400, "{body}");
        assert!(
            text.starts_with("Invalid YAML manifest: ") && text.len() > 25,
            "{body}: {text}"
        );
    }
    assert_eq!(
        post(&c.alice, "endpoint: {production: http://x}"),
        error(400, "You must provide an id in the manifest file.")
    );
    assert_eq!(
        post(&c.alice, &manifest("1sql", "http://x")),
        error(400, "Invalid service id")
    );
    assert_eq!(
        post(&c.alice, &manifest("instances", "http://x")),
        error(400, "Invalid service id")
    );
    assert_eq!(
        post(
            &c.alice,
            "id: mysql\nendpoint:\n  test: http://localhost:8080\n"
        ),
        error(
            400,
            "You must provide a production endpoint in the manifest file."
        )
    );
    assert_eq!(
        post(&c.carol, &manifest("mysql", &service.url())),
        error(
            403,
            "In order to create a service, you should be member of at least one team"
        )
    );

    let created = app
        .post("/services")
        .bearer(&c.alice)
        .body(format!(
            "id: mysql\nusername: tsuru\npassword: s3cret\nendpoint:\n  production: {}\n",
            service.url()
        ))
        .send();
    assert_eq!(answer(&created), (200, "success".to_string()));
    assert_eq!(
        created.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        post(&c.bob, &manifest("mysql", "http://other")),
        error(409, "Service with name mysql already exists.")
    );
    // Users of other teams, admins included, create services of their own.
    assert_eq!(
        post(&c.admin, &manifest("admin-svc", "http://other")),
        (200, "success".to_string())
    );
    assert_eq!(
        post(&c.bob, &manifest("bob.svc_1-x", "http://other")),
        (200, "success".to_string())
    );
    assert!(
        service.requests().is_empty(),
        "creating a service calls no service API"
    );

    // Listed for the owner team only; the credentials never appear.
    let listed = app.get("/services").bearer(&c.alice).send();
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(
        listed.json(),
        json!([{"service": "mysql", "instances": []}])
    );
    assert!(!listed.text().contains("s3cret"));
    assert_eq!(
        app.get("/services").bearer(&c.bob).send().json(),
        json!([{"service": "bob.svc_1-x", "instances": []}])
    );
    assert_eq!(
        app.get("/services").bearer(&c.admin).send().json(),
        json!([{"service": "admin-svc", "instances": []}])
    );
    assert_eq!(
        app.get("/services").bearer(&c.carol).send().json(),
        json!([])
    );
}

#[test]
fn listing_services_shows_all_their_instances() {
    let app = app().start();
    let c = callers(&app);
    let service = FakeServer::start();
    create_service(&app, &c.alice, "redis", &service.url());
    create_service(&app, &c.alice, "mongodb", &service.url());
    create_instance(&app, &c.alice, "mongodb", "other-instance");
    create_instance(&app, &c.alice, "mongodb", "my_nosql");
    create_instance(&app, &c.bob, "mongodb", "bobs-db");
    assert_eq!(
        app.get("/services").bearer(&c.alice).send().json(),
        json!([
            {"service": "mongodb", "instances": ["bobs-db", "my_nosql", "other-instance"]},
            {"service": "redis", "instances": []}
        ])
    );
}

#[test]
fn updating_services() {
    let app = app().start();
    let c = callers(&app);
    let old = FakeServer::start();
    let new = FakeServer::start();
    app.post("/services")
        .bearer(&c.alice)
        .body(format!(
            "id: mysql\nusername: tsuru\npassword: s3cret\nendpoint:\n  production: {}\n",
            old.url()
        ))
        .send();
    let put = |token: &str, body: &str| {
        answer(
            &app.put("/services")
                .bearer(token)
                .body(body.to_string())
                .send(),
        )
    };

    let (status, text) = put(&c.alice, "id: [");
    assert!(
        status == 400 && text.starts_with("Invalid YAML manifest: "),
        "{text}"
    );
    assert_eq!(
        put(&c.alice, "endpoint: {production: http://x}"),
        error(400, "You must provide an id in the manifest file.")
    );
    assert_eq!(
        put(&c.alice, &manifest("nope", "http://x")),
        error(404, "Service not found")
    );
    assert_eq!(
        put(&c.bob, &manifest("mysql", "http://x")),
        error(403, "This user does not have access to this service")
    );
    assert_eq!(
        put(&c.admin, &manifest("mysql", "http://x")),
        error(403, "This user does not have access to this service")
    );
    assert_eq!(
        put(&c.carol, &manifest("mysql", "http://x")),
        error(403, "This user does not have access to this service")
    );
    assert_eq!(
        put(&c.alice, "id: mysql\nendpoint: {test: http://t}"),
        error(
            400,
            "You must provide a production endpoint in the manifest file."
        )
    );
    // The endpoint without a scheme gets `http://`; absent credentials are cleared.
    let without_scheme = new.url().trim_start_matches("http://").to_string();
    let updated = app
        .put("/services")
        .bearer(&c.alice)
        .body(manifest("mysql", &without_scheme))
        .send();
    assert_eq!(answer(&updated), (200, String::new()));
    assert_eq!(updated.header("content-length"), Some("0"));

    create_instance(&app, &c.alice, "mysql", "mydb");
    assert!(old.requests().is_empty());
    let calls = new.requests_to("POST", "/resources");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].header("authorization"),
        None,
        "credentials were cleared"
    );

    // Restricted by an update: only granted teams may use it from now on.
    app.put("/services")
        .bearer(&c.alice)
        .body(format!(
            "{}restricted: true\n",
            manifest("mysql", &new.url())
        ))
        .send();
    let denied = app
        .post("/services/instances")
        .bearer(&c.alice)
        .json(&json!({"name": "db2", "service_name": "mysql"}))
        .send();
    assert_eq!(
        answer(&denied),
        error(404, "This user does not have access to this service")
    );
}

#[test]
fn removing_services() {
    let app = app().start();
    let c = callers(&app);
    let service = FakeServer::start();
    create_service(&app, &c.alice, "mysql", &service.url());
    create_instance(&app, &c.alice, "mysql", "mydb");
    let delete = |token: &str, path: &str| answer(&app.delete(path).bearer(token).send());

    assert_eq!(
        delete(&c.alice, "/services/nope"),
        error(404, "Service not found")
    );
    for other in [&c.bob, &c.admin, &c.carol] {
        assert_eq!(
            delete(other, "/services/mysql"),
            error(403, "This user does not have access to this service")
        );
    }
    assert_eq!(
        delete(&c.alice, "/services/mysql"),
        error(403, "This service cannot be removed because it has instances.\nPlease remove these instances before removing the service.")
    );
    assert_eq!(
        app.delete("/services/instances/mydb")
            .bearer(&c.alice)
            .send()
            .status,
        200
    );
    service.clear();
    let removed = app.delete("/services/mysql").bearer(&c.alice).send();
    assert_eq!((removed.status, removed.body.len()), (204, 0));
    assert!(
        service.requests().is_empty(),
        "removing a service calls no service API"
    );
    assert_eq!(
        delete(&c.alice, "/services/mysql"),
        error(404, "Service not found")
    );
    assert_eq!(
        app.get("/services").bearer(&c.alice).send().json(),
        json!([])
    );
    // The id is free again.
    create_service(&app, &c.bob, "mysql", &service.url());
}

#[test]
fn service_info_shows_the_callers_instances_with_live_info() {
    let app = app().start();
    let c = callers(&app);
    let service = FakeServer::start();
    create_service(&app, &c.alice, "mongodb", &service.url());
    create_instance(&app, &c.alice, "mongodb", "my-mongo");
    create_instance(&app, &c.alice, "mongodb", "broken-info");
    create_instance(&app, &c.bob, "mongodb", "bobs-mongo");
    service.on(
        "GET",
        "/resources/my-mongo",
        Reply::json(200, &json!([{"label": "Address", "value": "10.0.0.1"}])),
    );
    service.on("GET", "/resources/broken-info", Reply::text(200, "garbage"));
    service.on("GET", "/resources/bobs-mongo", Reply::text(500, "oops"));

    assert_eq!(
        answer(&app.get("/services/nope").bearer(&c.alice).send()),
        error(404, "Service not found")
    );
    let info = app.get("/services/mongodb").bearer(&c.alice).send();
    assert_eq!(info.status, 200);
    assert_eq!(
        info.json(),
        json!([
            {"Name": "broken-info", "Teams": ["backend"], "Apps": [], "ServiceName": "mongodb", "Info": {}},
            {"Name": "my-mongo", "Teams": ["backend"], "Apps": [], "ServiceName": "mongodb", "Info": {"Address": "10.0.0.1"}}
        ])
    );
    assert_eq!(
        app.get("/services/mongodb").bearer(&c.bob).send().json(),
        json!([{"Name": "bobs-mongo", "Teams": ["frontend"], "Apps": [], "ServiceName": "mongodb", "Info": {}}])
    );
    // Unrestricted: anyone with a user token may look, seeing only their instances.
    assert_eq!(
        app.get("/services/mongodb").bearer(&c.carol).send().json(),
        json!([])
    );
    assert_eq!(
        app.get("/services/mongodb").bearer(&c.admin).send().json(),
        json!([])
    );
    let info_calls = service.requests_to("GET", "/resources/my-mongo");
    assert_eq!(info_calls[0].header("accept"), Some("application/json"));

    // A service that cannot be reached gives `null` info.
    let refused = e2e::refused_url();
    app.put("/services")
        .bearer(&c.alice)
        .body(manifest("mongodb", &refused))
        .send();
    let info = app.get("/services/mongodb").bearer(&c.bob).send();
    assert_eq!(info.json()[0]["Info"], json!(null));
}

#[test]
fn restricted_services_are_usable_by_granted_teams_only() {
    let app = app().start();
    let c = callers(&app);
    let service = FakeServer::start();
    app.post("/services")
        .bearer(&c.alice)
        .body(format!(
            "{}restricted: true\n",
            manifest("mysql", &service.url())
        ))
        .send();
    let denied = error(403, "This user does not have access to this service");
    for token in [&c.alice, &c.bob, &c.admin, &c.carol] {
        assert_eq!(
            answer(&app.get("/services/mysql").bearer(token).send()),
            denied
        );
        assert_eq!(
            answer(&app.get("/services/mysql/doc").bearer(token).send()),
            denied
        );
    }
    assert_eq!(
        app.put("/services/mysql/frontend")
            .bearer(&c.alice)
            .send()
            .status,
        200
    );
    assert_eq!(
        answer(&app.get("/services/mysql/doc").bearer(&c.bob).send()),
        (200, String::new())
    );
    assert_eq!(
        app.get("/services/mysql").bearer(&c.bob).send().json(),
        json!([])
    );
    assert_eq!(
        answer(&app.get("/services/mysql").bearer(&c.alice).send()),
        denied
    );
}

#[test]
fn service_documentation() {
    let app = app().start();
    let c = callers(&app);
    create_service(&app, &c.alice, "mysql", "http://mysql.example.com");
    let doc = "# MySQL\n\nUse `DATABASE_HOST`. ünïcode\n";

    assert_eq!(
        answer(&app.get("/services/nope/doc").bearer(&c.alice).send()),
        error(404, "Service not found")
    );
    assert_eq!(
        answer(
            &app.put("/services/nope/doc")
                .bearer(&c.alice)
                .body(doc)
                .send()
        ),
        error(404, "Service not found")
    );
    for other in [&c.bob, &c.admin, &c.carol] {
        let resp = app
            .put("/services/mysql/doc")
            .bearer(other)
            .body(doc)
            .send();
        assert_eq!(
            answer(&resp),
            error(403, "This user does not have access to this service")
        );
    }
    let bad = app
        .put("/services/mysql/doc")
        .bearer(&c.alice)
        .body(vec![0xff, 0xfe, b'x'])
        .send();
    assert_eq!(
        answer(&bad),
        error(400, "The documentation must be UTF-8 text")
    );
    // The literal `doc` wins over `:team`: this stores documentation, it grants nothing.
    let stored = app
        .put("/services/mysql/doc")
        .bearer(&c.alice)
        .body(doc)
        .send();
    assert_eq!(answer(&stored), (200, String::new()));
    for reader in [&c.alice, &c.bob, &c.admin, &c.carol] {
        let read = app.get("/services/mysql/doc").bearer(reader).send();
        assert_eq!(answer(&read), (200, doc.to_string()));
        assert_eq!(
            read.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    // DELETE has no `doc` literal: `doc` is a team name there, and no such team exists.
    assert_eq!(
        answer(&app.delete("/services/mysql/doc").bearer(&c.alice).send()),
        error(404, "Team not found")
    );
}

#[test]
fn granting_and_revoking_service_access() {
    let app = app().start();
    let c = callers(&app);
    create_service(&app, &c.alice, "mysql", "http://mysql.example.com");
    team(&app, &c.carol, "qa");
    let grant = |token: &str, path: &str| answer(&app.put(path).bearer(token).send());
    let revoke = |token: &str, path: &str| answer(&app.delete(path).bearer(token).send());
    let no_access = error(403, "This user does not have access to this service");

    assert_eq!(
        grant(&c.alice, "/services/nope/frontend"),
        error(404, "Service not found")
    );
    assert_eq!(grant(&c.bob, "/services/mysql/frontend"), no_access);
    assert_eq!(grant(&c.carol, "/services/mysql/frontend"), no_access);
    assert_eq!(
        grant(&c.alice, "/services/mysql/nope"),
        error(404, "Team not found")
    );
    assert_eq!(
        grant(&c.alice, "/services/mysql/frontend"),
        (200, String::new())
    );
    assert_eq!(
        grant(&c.alice, "/services/mysql/frontend"),
        error(409, "This team already has access to this service")
    );
    // Members of a granted team and admins may grant too (API.md 7.2).
    assert_eq!(grant(&c.bob, "/services/mysql/qa"), (200, String::new()));
    assert_eq!(
        grant(&c.admin, "/services/mysql/admin"),
        (200, String::new())
    );

    assert_eq!(
        revoke(&c.alice, "/services/nope/qa"),
        error(404, "Service not found")
    );
    let outsider = user(&app, "dave@example.com");
    team(&app, &outsider, "outsiders");
    assert_eq!(revoke(&outsider, "/services/mysql/qa"), no_access);
    assert_eq!(
        revoke(&c.alice, "/services/mysql/nope"),
        error(404, "Team not found")
    );
    assert_eq!(
        revoke(&c.alice, "/services/mysql/backend"),
        error(404, "This team does not have access to this service")
    );
    assert_eq!(revoke(&c.bob, "/services/mysql/qa"), (200, String::new()));
    assert_eq!(
        revoke(&c.admin, "/services/mysql/admin"),
        (200, String::new())
    );
    assert_eq!(
        revoke(&c.alice, "/services/mysql/admin"),
        error(404, "This team does not have access to this service")
    );

    // Only reachable with data made outside the API: a service whose sole team is granted.
    app.sql("DELETE FROM service_owner_teams WHERE service_id = (SELECT id FROM services WHERE name = 'mysql')");
    assert_eq!(
        revoke(&c.bob, "/services/mysql/frontend"),
        error(403, "You can not revoke the access from this team, because it is the unique team with access to this service, and a service can not be orphaned")
    );
}

#[test]
fn app_tokens_and_anonymous_callers_are_refused() {
    let app = app().start();
    let c = callers(&app);
    create_service(&app, &c.alice, "mysql", "http://mysql.example.com");
    let app_token = app
        .post("/tokens")
        .bearer(&c.admin)
        .json(&json!({"client": "hook"}))
        .send()
        .json()["Token"]
        .as_str()
        .expect("app token")
        .to_string();
    let routes: [(&str, &str); 9] = [
        ("GET", "/services"),
        ("POST", "/services"),
        ("PUT", "/services"),
        ("GET", "/services/mysql"),
        ("DELETE", "/services/mysql"),
        ("GET", "/services/mysql/doc"),
        ("PUT", "/services/mysql/doc"),
        ("PUT", "/services/mysql/backend"),
        ("DELETE", "/services/mysql/backend"),
    ];
    for (method, path) in routes {
        let anonymous = app.request(method, path).send();
        assert_eq!(
            answer(&anonymous),
            error(401, "You must provide the Authorization header"),
            "{method} {path}"
        );
        let by_app = app.request(method, path).bearer(&app_token).send();
        assert_eq!(
            answer(&by_app),
            error(403, "This action requires a user token"),
            "{method} {path}"
        );
    }
    assert_eq!(
        answer(&app.post("/services/x").bearer(&c.alice).send()).0,
        405
    );
}
