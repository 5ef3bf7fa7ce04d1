//! The clients of 2014 end to end (issue 12): the exact requests of `tsuru` 0.8.9.1,
//! `tsuru-admin` 0.2.1, `crane` 0.5.1 and the git server's post-receive hook, replayed
//! with their bodies and content types byte for byte, and the routes of API.md section 9
//! they call: deploys (9.1), run and start (9.2), service plans (9.3), log removal (9.4)
//! and schemas (9.5), plus the app object's `Ready`, `Owner` and `Deploys` and the JSON
//! `null` filter of `GET /apps/:app/env` (3.1).
//!
//! The Go clients set no `Content-Type` on these requests (`http.NewRequest` with a bare
//! reader); the hook is `curl -H "Authorization: bearer $TSURU_TOKEN" -d
//! "version=origin/master&commit=$COMMIT" -s -N $url`, so a form content type.

use e2e::accounts::{add_to_team, admin, team, user};
use e2e::apps::{alice_with_web, app_token, create_app, expect, log_messages};
use e2e::races::parallel;
use e2e::{app, App, FakeServer, Reply, RequestBuilder, Resp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NO_ACCESS: &str = "User does not have access to this app\n";
const NO_HEADER: &str = "You must provide the Authorization header\n";
const ERROR_TYPE: &str = "text/plain; charset=utf-8";
/// The commit the hook reports (`$newrev` of the push).
const SHA: &str = "5b1e6f3c9a0d4e7b8c2f1a6d3e9b0c4f7a2d8e1b";
/// What `tsuru` 0.8.9.1 (Go 1.1 `net/http`) says it is.
const GO_CLIENT: &str = "Go 1.1 package http";

/// A request as the 2014 Go clients send it: their user agent and a bearer token, no
/// content type.
fn go_client(app: &App, method: &str, path: &str, token: &str) -> RequestBuilder {
    app.request(method, path)
        .header("User-Agent", GO_CLIENT)
        .bearer(token)
}

/// The post-receive hook's request: `curl -H "Authorization: bearer <token>" -d <body>`.
fn hook(app: &App, path: &str, token: &str, body: &str) -> RequestBuilder {
    app.post(path)
        .header("User-Agent", "curl/7.35.0")
        .header("Accept", "*/*")
        .bearer(token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
}

/// The form body of the 2014 hook for `SHA`.
fn hook_body() -> String {
    format!("version=origin/master&commit={SHA}")
}

/// Asserts an error answer of API.md 1.5: status, exact message, plain text.
#[track_caller]
fn error_is(resp: &Resp, status: u16, message: &str) {
    expect(resp, status, message);
    assert_eq!(resp.header("content-type"), Some(ERROR_TYPE));
}

/// Asserts a `502` whose message starts with `prefix` and carries a reason.
#[track_caller]
fn bad_gateway(resp: &Resp, prefix: &str) {
    let text = resp.text();
    assert_eq!(resp.status, 502, "{text}");
    assert!(
        text.starts_with(prefix) && text.len() > prefix.len() + 1 && text.ends_with('\n'),
        "{text:?} should be {prefix:?} followed by a reason"
    );
    assert_eq!(resp.header("content-type"), Some(ERROR_TYPE));
}

#[track_caller]
fn assert_text_plain(content_type: Option<&str>) {
    assert!(
        content_type.is_some_and(|t| t.starts_with("text/plain")),
        "content type {content_type:?}"
    );
}

/// The lines of a streamed output (a trailing newline ends the last line).
fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn info(app: &App, token: &str, name: &str) -> Value {
    let resp = app.get(&format!("/apps/{name}")).bearer(token).send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// `GET /deploys<query>` as the admin.
fn deploys(app: &App, admin: &str, query: &str) -> Value {
    let resp = go_client(app, "GET", &format!("/deploys{query}"), admin).send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()
}

/// `(App, Commit)` of a deploy record.
fn rec(app: &str, commit: &str) -> (String, String) {
    (app.to_string(), commit.to_string())
}

/// The `(App, Commit)` of each deploy record, in the order listed; checks every
/// record's shape (API.md 9.1).
fn deploy_list(app: &App, admin: &str, query: &str) -> Vec<(String, String)> {
    deploys(app, admin, query)
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|record| {
            assert_deploy_record(record);
            (
                record["App"].as_str().unwrap().to_string(),
                record["Commit"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_deploy_record(record: &Value) {
    let object = record.as_object().expect("a deploy record is an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["App", "Commit", "Duration", "Timestamp"], "{record}");
    assert!(record["App"].is_string() && record["Commit"].is_string());
    let duration = record["Duration"].as_f64().expect("Duration in seconds");
    assert!(duration >= 0.0, "{record}");
    assert_rfc3339_utc(record["Timestamp"].as_str().expect("Timestamp"));
}

/// RFC 3339 in UTC with a `Z` suffix (API.md 1.6), fractions of a second allowed.
#[track_caller]
fn assert_rfc3339_utc(ts: &str) {
    let b = ts.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    assert!(
        b.len() >= 20
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && ts.ends_with('Z'),
        "{ts:?} is not an RFC 3339 UTC timestamp"
    );
}

fn deploy_count(app: &App, token: &str, name: &str) -> Value {
    info(app, token, name)["Deploys"].clone()
}

/// An app on a fake provisioner: admin, alice (team `backend`) owning `web` with one
/// unit and the variable `DATABASE_HOST`, bob in team `frontend`, and the git hook's
/// system token.
struct Provisioned {
    provisioner: FakeServer,
    app: App,
    admin: String,
    alice: String,
    bob: String,
    hook_token: String,
    /// The complete variable map of `web`, values unmasked (API.md 5.3 `env`).
    web_env: Value,
}

/// The `env` the provisioner received when it provisioned app `name` (API.md 5.3).
fn provisioned_env(provisioner: &FakeServer, name: &str) -> Value {
    provisioner
        .requests_to("POST", "/apps")
        .iter()
        .rev()
        .map(|r| r.json())
        .find(|body| body["name"] == name)
        .map(|body| body["env"].clone())
        .expect("the provision request of the app")
}

impl Provisioned {
    fn start() -> Self {
        let provisioner = FakeServer::start();
        let app = app()
            .var("provisioner_url", &provisioner.url())
            .var("provisioner_token", "s3cret")
            .start();
        let admin = admin(&app);
        let alice = user(&app, "alice@example.com");
        team(&app, &alice, "backend");
        let bob = user(&app, "bob@example.com");
        team(&app, &bob, "frontend");
        e2e::services::create_app(
            &app,
            &alice,
            &provisioner,
            "web",
            "10.0.0.10",
            &["10.0.0.11"],
        );
        let set = app
            .post("/apps/web/env")
            .bearer(&alice)
            .json(&json!({"DATABASE_HOST": "db.internal"}))
            .send();
        assert_eq!(set.status, 200, "{}", set.text());
        let hook_token = app_token(&app, &admin, "git-hook");
        let mut web_env = provisioned_env(&provisioner, "web");
        assert_eq!(web_env["TSURU_APPNAME"], "web");
        web_env
            .as_object_mut()
            .expect("env object")
            .insert("DATABASE_HOST".into(), json!("db.internal"));
        Self {
            provisioner,
            app,
            admin,
            alice,
            bob,
            hook_token,
            web_env,
        }
    }

    /// The one request the provisioner received on `POST path` since the last clear;
    /// checks the protocol headers of API.md 5.3.
    fn only_request(&self, path: &str) -> Value {
        let received = self.provisioner.requests();
        assert_eq!(
            received
                .iter()
                .map(|r| (r.method.as_str(), r.target.as_str()))
                .collect::<Vec<_>>(),
            [("POST", path)]
        );
        let r = &received[0];
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("accept"), Some("application/json"));
        assert_eq!(r.header("authorization"), Some("bearer s3cret"));
        r.json()
    }
}

// ---------------------------------------------------------------------------------------
// tsuru env-get, app-list, app-info (API.md 3.1)

#[test]
fn env_get_with_a_json_null_body_lists_every_variable() {
    let app = app().start();
    let (_, alice) = alice_with_web(&app);
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let set = app
        .post("/apps/web/env")
        .bearer(&alice)
        .json(&json!({"PORT": "8080", "DATABASE_HOST": "localhost"}))
        .send();
    assert_eq!(set.status, 200, "{}", set.text());
    let private = "*** (private variable)";
    let all = json!([
        {"name": "DATABASE_HOST", "value": "localhost", "public": true},
        {"name": "PORT", "value": "8080", "public": true},
        {"name": "TSURU_APPNAME", "value": private, "public": false},
        {"name": "TSURU_APP_TOKEN", "value": private, "public": false},
        {"name": "TSURU_HOST", "value": private, "public": false}
    ]);

    // `tsuru env-get -a web`: json.NewEncoder(&buf).Encode(nil []string) gives `null\n`.
    let listed = go_client(&app, "GET", "/apps/web/env", &alice)
        .body("null\n")
        .send();
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(listed.json(), all);
    // The same without the newline, and with no body at all.
    let bare = go_client(&app, "GET", "/apps/web/env", &alice)
        .body("null")
        .send();
    assert_eq!((bare.status, bare.json()), (200, all.clone()));
    let empty = go_client(&app, "GET", "/apps/web/env", &alice).send();
    assert_eq!((empty.status, empty.json()), (200, all));
    // The query wins over the body.
    let one = go_client(&app, "GET", "/apps/web/env?name=PORT", &alice)
        .body("null\n")
        .send();
    assert_eq!(
        (one.status, one.json()),
        (
            200,
            json!([{"name": "PORT", "value": "8080", "public": true}])
        )
    );
    // The checks still come first.
    error_is(
        &go_client(&app, "GET", "/apps/web/env", &bob)
            .body("null\n")
            .send(),
        403,
        NO_ACCESS,
    );
    error_is(
        &go_client(&app, "GET", "/apps/nope/env", &alice)
            .body("null\n")
            .send(),
        404,
        "App nope not found.\n",
    );
}

#[test]
fn app_list_and_info_show_ready_owner_and_deploys() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    add_to_team(&app, &alice, "backend", "bob@example.com");
    create_app(&app, &alice, "web");
    create_app(&app, &admin, "tools");

    let web = json!({"Name": "web", "Framework": "python", "Platform": "python",
        "Repository": "git@localhost:web.git", "State": "ready", "Ip": "", "CName": "",
        "Teams": ["backend"], "Units": [{"Name": "web/0", "Ip": "", "State": "started"}],
        "Ready": true, "Owner": "alice@example.com", "Deploys": 0});
    // `tsuru app-list` as another member of the team: the creator stays the owner.
    let listed = go_client(&app, "GET", "/apps", &bob).send();
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json(), json!([web.clone()]));
    // `tsuru app-info -a web`.
    let shown = go_client(&app, "GET", "/apps/web", &bob).send();
    assert_eq!((shown.status, shown.json()), (200, web));
    let tools = info(&app, &admin, "tools");
    assert_eq!(
        (&tools["Ready"], &tools["Owner"], &tools["Deploys"]),
        (&json!(true), &json!("admin@example.com"), &json!(0))
    );

    // One successful deploy (record-only provisioner) counts.
    let mut deploy = hook(&app, "/apps/web/deploy", &alice, "version=v1&commit=abc").open();
    assert_eq!(deploy.status, 200);
    assert_eq!(lines(&deploy.finish()).last(), Some(&"OK"));
    assert_eq!(info(&app, &bob, "web")["Deploys"], 1);
    let listed = go_client(&app, "GET", "/apps", &admin).send().json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tools", "web"]);
    assert_eq!(listed[0]["Deploys"], 0);
    assert_eq!(listed[1]["Deploys"], 1);
    assert_eq!(listed[1]["Ready"], true);
    assert_eq!(listed[1]["Owner"], "alice@example.com");
}

#[test]
fn an_app_is_not_ready_while_it_is_being_created() {
    let provisioner = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    provisioner.on_once(
        "POST",
        "/apps",
        Reply::json(
            200,
            &json!({"ip": "10.0.0.10", "units": [{"name": "web/0", "ip": "10.0.0.11", "state": "started"}]}),
        )
        .delay(Duration::from_secs(4)),
    );
    let creation = {
        let request = RequestBuilder::to_addr("POST", app.addr(), "/apps")
            .bearer(&alice)
            .json(&json!({"name": "web", "platform": "python"}));
        std::thread::spawn(move || request.send())
    };

    // While the provisioner works, the app exists as `pending`, not ready.
    let started = Instant::now();
    let pending = loop {
        let resp = app.get("/apps/web").bearer(&alice).send();
        if resp.status == 200 {
            break resp.json();
        }
        assert_eq!(resp.status, 404, "{}", resp.text());
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the app never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(pending["State"], "pending");
    assert_eq!(pending["Ready"], false);
    assert_eq!(pending["Owner"], "alice@example.com");
    assert_eq!(pending["Deploys"], 0);
    let listed = app.get("/apps").bearer(&alice).send().json();
    assert_eq!(listed[0]["Ready"], false);

    let created = creation.join().expect("creation thread");
    assert_eq!(created.status, 200, "{}", created.text());
    let ready = info(&app, &alice, "web");
    assert_eq!(
        (&ready["State"], &ready["Ready"]),
        (&json!("ready"), &json!(true))
    );
}

// ---------------------------------------------------------------------------------------
// tsuru service-info: GET /services/S, then GET /services/S/plans (API.md 9.3)

/// Creates service `mysql` (owner team `backend` of alice, credentials `tsuru:s3cret`)
/// on `service`, plus a `restricted` line when asked.
fn mysql(app: &App, alice: &str, service: &FakeServer, restricted: bool) {
    let manifest = format!(
        "id: mysql\nusername: tsuru\npassword: s3cret\nendpoint:\n  production: {}\n{}",
        service.url(),
        if restricted { "restricted: true\n" } else { "" }
    );
    let resp = app.post("/services").bearer(alice).body(manifest).send();
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn service_plans_come_from_the_service_api() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let carol = user(&app, "carol@example.com");
    let service = FakeServer::start();
    mysql(&app, &alice, &service, false);
    service.on(
        "GET",
        "/resources/plans",
        Reply::json(
            200,
            &json!([
                {"name": "small", "description": "1 CPU, 512 MB"},
                {"name": "large", "description": "8 CPUs, 16 GB"},
                {"name": "medium", "description": "2 CPUs, 2 GB"}
            ]),
        ),
    );
    let plans = json!([
        {"name": "large", "description": "8 CPUs, 16 GB"},
        {"name": "medium", "description": "2 CPUs, 2 GB"},
        {"name": "small", "description": "1 CPU, 512 MB"}
    ]);

    // Any user may use an unrestricted service: its owners, other teams, teamless
    // users, admins.
    for token in [&alice, &bob, &carol, &admin] {
        let shown = go_client(&app, "GET", "/services/mysql", token).send();
        assert_eq!(shown.status, 200, "{}", shown.text());
        let resp = go_client(&app, "GET", "/services/mysql/plans", token).send();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.json(), plans);
    }
    let calls = service.requests_to("*", "/resources/plans");
    assert_eq!(calls.len(), 4);
    for call in &calls {
        assert_eq!(call.method, "GET");
        assert_eq!(call.target, "/resources/plans");
        assert_eq!(call.header("accept"), Some("application/json"));
        assert_eq!(call.header("authorization"), Some("Basic dHN1cnU6czNjcmV0"));
    }

    // A service API that does not know plans (404) has none.
    service.on(
        "GET",
        "/resources/plans",
        Reply::text(404, "404 page not found"),
    );
    let none = go_client(&app, "GET", "/services/mysql/plans", &bob).send();
    assert_eq!(none.status, 200, "{}", none.text());
    assert_eq!(none.header("content-type"), Some("application/json"));
    assert_eq!(none.body, b"[]");
    service.on("GET", "/resources/plans", Reply::json(200, &json!([])));
    let empty = go_client(&app, "GET", "/services/mysql/plans", &bob).send();
    assert_eq!((empty.status, empty.text().as_str()), (200, "[]"));
}

#[test]
fn service_plans_that_cannot_be_read_are_a_bad_gateway() {
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let service = FakeServer::start();
    mysql(&app, &alice, &service, false);
    let plans = || go_client(&app, "GET", "/services/mysql/plans", &alice).send();

    // Another status: the reason is its body, trimmed (API.md 1.5).
    service.on("GET", "/resources/plans", Reply::text(500, " boom \n"));
    error_is(&plans(), 502, "Failed to get plans of mysql: boom\n");
    service.on("GET", "/resources/plans", Reply::text(503, "try later"));
    error_is(&plans(), 502, "Failed to get plans of mysql: try later\n");

    // A 2xx reply that is not a JSON array of objects with a string `name`.
    for bad in [
        Reply::json(200, &json!({"plans": []})),
        Reply::json(200, &json!([{"description": "no name"}])),
        Reply::json(200, &json!([{"name": 5, "description": "x"}])),
        Reply::json(200, &json!(["small"])),
        Reply::text(200, "small, large"),
    ] {
        service.on("GET", "/resources/plans", bad);
        bad_gateway(&plans(), "Failed to get plans of mysql: ");
    }

    // Transport failures.
    service.on("GET", "/resources/plans", Reply::hang_up());
    bad_gateway(&plans(), "Failed to get plans of mysql: ");
    let refused = e2e::refused_url();
    let resp = app
        .put("/services")
        .bearer(&alice)
        .body(e2e::services::manifest("mysql", &refused))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    bad_gateway(&plans(), "Failed to get plans of mysql: ");
}

#[test]
fn service_plans_check_who_may_use_the_service() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let carol = user(&app, "carol@example.com");
    let service = FakeServer::start();
    service.on(
        "GET",
        "/resources/plans",
        Reply::json(200, &json!([{"name": "small", "description": "tiny"}])),
    );
    mysql(&app, &alice, &service, true);
    let plans = |token: &str, service: &str| {
        go_client(&app, "GET", &format!("/services/{service}/plans"), token).send()
    };

    error_is(&plans(&alice, "nope"), 404, "Service not found\n");
    expect(&app.get("/services/mysql/plans").send(), 401, NO_HEADER);
    // Restricted: only granted teams, owners and admins included (API.md 1.8).
    for token in [&alice, &bob, &carol, &admin] {
        error_is(
            &plans(token, "mysql"),
            403,
            "This user does not have access to this service\n",
        );
    }
    assert!(
        service.requests().is_empty(),
        "refused callers reach no service API"
    );
    let granted = app.put("/services/mysql/frontend").bearer(&alice).send();
    assert_eq!(granted.status, 200, "{}", granted.text());
    let resp = plans(&bob, "mysql");
    assert_eq!(
        (resp.status, resp.json()),
        (200, json!([{"name": "small", "description": "tiny"}]))
    );
    error_is(
        &plans(&alice, "mysql"),
        403,
        "This user does not have access to this service\n",
    );
    assert_eq!(service.requests_to("GET", "/resources/plans").len(), 1);
}

// ---------------------------------------------------------------------------------------
// tsuru start (API.md 9.2)

#[test]
fn start_with_the_record_only_provisioner_answers_empty_text() {
    let app = app().start();
    let (admin, alice) = alice_with_web(&app);
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let web_token = app_token(&app, &admin, "web");

    let started = go_client(&app, "GET", "/apps/web/start", &alice).send();
    assert_eq!(
        (started.status, started.text().as_str()),
        (200, ""),
        "{:?}",
        started.headers
    );
    assert_text_plain(started.header("content-type"));
    // Admins reach every app.
    let by_admin = go_client(&app, "GET", "/apps/web/start", &admin).send();
    assert_eq!((by_admin.status, by_admin.text().as_str()), (200, ""));

    // The checks of restart.
    error_is(
        &go_client(&app, "GET", "/apps/nope/start", &alice).send(),
        404,
        "App nope not found.\n",
    );
    error_is(
        &go_client(&app, "GET", "/apps/web/start", &bob).send(),
        403,
        NO_ACCESS,
    );
    error_is(
        &go_client(&app, "GET", "/apps/web/start", &web_token).send(),
        403,
        "This action requires a user token\n",
    );
    expect(&app.get("/apps/web/start").send(), 401, NO_HEADER);
}

#[test]
fn start_through_a_provisioner() {
    let p = Provisioned::start();
    let app = &p.app;
    p.provisioner.clear();
    p.provisioner.on(
        "POST",
        "/apps/web/start",
        Reply::text(200, "web/0 started\n"),
    );

    let started = go_client(app, "GET", "/apps/web/start", &p.alice).send();
    assert_eq!(
        (started.status, started.text().as_str()),
        (200, "web/0 started\n")
    );
    assert_text_plain(started.header("content-type"));
    assert_eq!(p.only_request("/apps/web/start"), json!({"env": p.web_env}));

    // A failing provisioner: its body is the reason (API.md 1.5).
    p.provisioner
        .on("POST", "/apps/web/start", Reply::text(500, "no capacity\n"));
    error_is(
        &go_client(app, "GET", "/apps/web/start", &p.alice).send(),
        502,
        "Failed to start the app web: no capacity\n",
    );
    p.provisioner
        .on("POST", "/apps/web/start", Reply::hang_up());
    bad_gateway(
        &go_client(app, "GET", "/apps/web/start", &p.alice).send(),
        "Failed to start the app web: ",
    );

    // Refused callers reach no provisioner.
    p.provisioner.clear();
    error_is(
        &go_client(app, "GET", "/apps/web/start", &p.bob).send(),
        403,
        NO_ACCESS,
    );
    assert!(p.provisioner.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// tsuru run (API.md 9.2)

#[test]
fn run_needs_a_provisioner() {
    let app = app().start();
    let (_, alice) = alice_with_web(&app);
    // `tsuru run -a web ls`.
    let resp = go_client(&app, "POST", "/apps/web/run?once=false", &alice)
        .body("ls")
        .send();
    error_is(
        &resp,
        501,
        "Running commands needs a provisioner (provisioner_url is not set)\n",
    );
}

#[test]
fn run_streams_the_provisioner_output() {
    let p = Provisioned::start();
    let app = &p.app;
    p.provisioner.clear();
    let delay = Duration::from_millis(600);
    p.provisioner.on(
        "POST",
        "/apps/web/run",
        Reply::chunked(200, &["total 2\n", "Procfile\n", "app.py\n"]).chunk_delay(delay),
    );

    // `tsuru run -a web ls`: the body is the command line, no content type.
    let mut run = go_client(app, "POST", "/apps/web/run?once=false", &p.alice)
        .body("ls")
        .open();
    let status = run.status;
    assert_eq!(status, 200, "{}", run.finish());
    assert!(run.is_chunked(), "{:?}", run.headers);
    assert_text_plain(run.header("content-type"));
    assert!(run.read_until("total 2\n"), "{:?}", run.text());
    let first = Instant::now();
    let output = run.finish();
    assert!(
        first.elapsed() >= delay,
        "the first line arrived only {:?} before the end: the output was not streamed",
        first.elapsed()
    );
    assert_eq!(output, "total 2\nProcfile\napp.py\n");
    assert_eq!(
        p.only_request("/apps/web/run"),
        json!({"command": "ls", "once": false, "env": p.web_env})
    );

    // `once=true` runs in one unit; anything else means every unit.
    p.provisioner
        .on("POST", "/apps/web/run", Reply::chunked(200, &["ok\n"]));
    for (query, command, once) in [
        ("?once=true", "ls -la /home/application", true),
        ("?once=false", "cat Procfile", false),
        ("", "env", false),
        ("?once=1", "ls", false),
        ("?once=yes", "ls", false),
    ] {
        p.provisioner.clear();
        let resp = go_client(app, "POST", &format!("/apps/web/run{query}"), &p.alice)
            .body(command)
            .send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "ok\n"),
            "{query}"
        );
        let sent = p.only_request("/apps/web/run");
        assert_eq!(sent["command"], command, "{query}");
        assert_eq!(sent["once"], once, "{query}");
    }

    // Checks, in order; none reaches the provisioner.
    p.provisioner.clear();
    error_is(
        &go_client(app, "POST", "/apps/web/run?once=false", &p.alice).send(),
        400,
        "You must provide the command to run\n",
    );
    error_is(
        &go_client(app, "POST", "/apps/web/run?once=false", &p.alice)
            .body("")
            .send(),
        400,
        "You must provide the command to run\n",
    );
    error_is(
        &go_client(app, "POST", "/apps/nope/run?once=false", &p.alice)
            .body("ls")
            .send(),
        404,
        "App nope not found.\n",
    );
    error_is(
        &go_client(app, "POST", "/apps/web/run?once=false", &p.bob)
            .body("ls")
            .send(),
        403,
        NO_ACCESS,
    );
    expect(
        &app.post("/apps/web/run?once=false").body("ls").send(),
        401,
        NO_HEADER,
    );
    assert!(p.provisioner.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// tsuru-admin log-remove [-a X] (API.md 9.4)

#[test]
fn admins_remove_logs_of_one_app_or_of_all() {
    let app = app().start();
    let (admin, alice) = alice_with_web(&app);
    create_app(&app, &alice, "api");
    let web_token = app_token(&app, &admin, "web");
    let append = |name: &str, lines: Value| {
        let resp = app
            .post(&format!("/apps/{name}/log?source=test"))
            .bearer(&alice)
            .json(&lines)
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text());
    };
    append("web", json!(["w1", "w2"]));
    append("api", json!(["a1"]));
    let logged = |name: &str| log_messages(&app, &alice, name, "?lines=0&source=test");
    assert_eq!(logged("web"), ["w1", "w2"]);
    assert_eq!(logged("api"), ["a1"]);

    // Admins only: users and app tokens are refused, and nothing is removed.
    for token in [&alice, &web_token] {
        for path in ["/logs", "/logs?app=web"] {
            error_is(
                &go_client(&app, "DELETE", path, token).send(),
                403,
                "Forbidden\n",
            );
        }
    }
    expect(&app.delete("/logs").send(), 401, NO_HEADER);
    error_is(
        &go_client(&app, "DELETE", "/logs?app=nope", &admin).send(),
        404,
        "App not found\n",
    );
    assert_eq!(logged("web"), ["w1", "w2"]);
    assert_eq!(logged("api"), ["a1"]);

    // `tsuru-admin log-remove -a web`: that app's entries only.
    let removed = go_client(&app, "DELETE", "/logs?app=web", &admin).send();
    expect(&removed, 200, "");
    assert!(log_messages(&app, &alice, "web", "?lines=0").is_empty());
    assert_eq!(logged("api"), ["a1"]);

    // New entries are kept as usual.
    append("web", json!(["after"]));
    assert_eq!(logged("web"), ["after"]);

    // `tsuru-admin log-remove`: every app's entries.
    let removed = go_client(&app, "DELETE", "/logs", &admin).send();
    expect(&removed, 200, "");
    assert!(log_messages(&app, &alice, "web", "?lines=0").is_empty());
    assert!(log_messages(&app, &alice, "api", "?lines=0").is_empty());
}

// ---------------------------------------------------------------------------------------
// The git server's post-receive hook and POST /apps/:app/deploy (API.md 9.1)

#[test]
fn the_git_hook_deploys_with_the_record_only_provisioner() {
    let app = app().start();
    let (admin, alice) = alice_with_web(&app);
    let hook_token = app_token(&app, &admin, "git-hook");
    assert_eq!(deploys(&app, &admin, ""), json!([]));

    let mut deploy = hook(
        &app,
        "/apps/web/repository/clone",
        &hook_token,
        &hook_body(),
    )
    .open();
    let status = deploy.status;
    assert_eq!(status, 200, "{}", deploy.finish());
    assert!(deploy.is_chunked(), "{:?}", deploy.headers);
    assert_text_plain(deploy.header("content-type"));
    let output = deploy.finish();
    let out = lines(&output);
    assert!(
        out.contains(&"deploy of origin/master recorded"),
        "{output:?}"
    );
    // What the hook checks: `tail -1 | grep -q "^OK$"`.
    assert_eq!(out.last(), Some(&"OK"), "{output:?}");
    assert_eq!(deploy_list(&app, &admin, ""), [rec("web", SHA)]);
    assert_eq!(deploy_count(&app, &alice, "web"), 1);

    // The same through POST /apps/:app/deploy with the user's token.
    let mut deploy = hook(&app, "/apps/web/deploy", &alice, "version=v2&commit=abc123").open();
    assert_eq!(deploy.status, 200);
    let output = deploy.finish();
    let out = lines(&output);
    assert!(out.contains(&"deploy of v2 recorded"), "{output:?}");
    assert_eq!(out.last(), Some(&"OK"), "{output:?}");
    assert_eq!(
        deploy_list(&app, &admin, ""),
        [rec("web", "abc123"), rec("web", SHA)]
    );
    assert_eq!(deploy_count(&app, &alice, "web"), 2);
}

/// What one app's deploys may store (not in API.md: with the record-only provisioner a
/// deploy costs no outside call): `version` and `commit` of at most 255 bytes, and the
/// newest 1,000 records; the `Deploys` count still counts them all.
#[test]
fn deploy_fields_are_bounded_and_an_app_keeps_its_newest_thousand_records() {
    let app = app().start();
    let (admin, alice) = alice_with_web(&app);
    let longest = "v".repeat(255);
    let too_long = "v".repeat(256);
    for (body, field) in [
        (format!("version={too_long}"), "version"),
        (format!("version=v1&commit={too_long}"), "commit"),
    ] {
        error_is(
            &hook(&app, "/apps/web/deploy", &alice, &body).send(),
            400,
            &format!("Parameter {field} too long: it may be at most 255 bytes.\n"),
        );
    }
    assert_eq!(deploy_count(&app, &alice, "web"), 0);
    let body = format!("version={longest}&commit=old-0");
    let deployed = hook(&app, "/apps/web/deploy", &alice, &body).send();
    assert!(deployed.text().ends_with("\nOK\n"), "{}", deployed.text());

    for i in 1..3 {
        let body = format!("version=v&commit=old-{i}");
        assert!(hook(&app, "/apps/web/deploy", &alice, &body)
            .send()
            .text()
            .ends_with("\nOK\n"));
    }
    for batch in 0..125 {
        let answers = parallel(8, |i| {
            let body = format!("version=v&commit=new-{}", batch * 8 + i);
            hook(&app, "/apps/web/deploy", &alice, &body)
        });
        for resp in &answers {
            assert!(resp.text().ends_with("\nOK\n"), "{}", resp.text());
        }
    }
    assert_eq!(deploy_count(&app, &alice, "web"), 1003);
    let kept = deploy_list(&app, &admin, "?app=web");
    assert_eq!(kept.len(), 1000);
    assert!(
        kept.iter().all(|(_, commit)| commit.starts_with("new-")),
        "the oldest three went first"
    );
}

#[test]
fn deploy_checks_and_who_may_list_deploys() {
    let app = app().start();
    let (admin, alice) = alice_with_web(&app);
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let hook_token = app_token(&app, &admin, "git-hook");

    for path in ["/apps/web/repository/clone", "/apps/web/deploy"] {
        for body in ["commit=abc123", "version=&commit=abc123", ""] {
            error_is(
                &hook(&app, path, &hook_token, body).send(),
                400,
                "Missing parameter version\n",
            );
            error_is(
                &hook(&app, path, &alice, body).send(),
                400,
                "Missing parameter version\n",
            );
        }
        // The app is checked first, then access, then the form.
        let other = path.replace("/web/", "/nope/");
        error_is(
            &hook(&app, &other, &hook_token, &hook_body()).send(),
            404,
            "App nope not found.\n",
        );
        error_is(
            &hook(&app, &other, &alice, "commit=abc123").send(),
            404,
            "App nope not found.\n",
        );
        error_is(&hook(&app, path, &bob, &hook_body()).send(), 403, NO_ACCESS);
        error_is(
            &hook(&app, path, &bob, "commit=abc123").send(),
            403,
            NO_ACCESS,
        );
        expect(
            &app.post(path)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(hook_body())
                .send(),
            401,
            NO_HEADER,
        );
    }
    assert_eq!(deploys(&app, &admin, ""), json!([]));
    assert_eq!(deploy_count(&app, &alice, "web"), 0);

    // GET /deploys is for admins.
    for token in [&alice, &bob, &hook_token] {
        error_is(
            &go_client(&app, "GET", "/deploys", token).send(),
            403,
            "Forbidden\n",
        );
    }
    expect(&app.get("/deploys").send(), 401, NO_HEADER);
}

#[test]
fn a_deploy_through_a_provisioner_streams_its_output_and_is_recorded() {
    let p = Provisioned::start();
    let app = &p.app;
    assert_eq!(deploys(app, &p.admin, ""), json!([]));
    p.provisioner.clear();
    let delay = Duration::from_millis(600);
    p.provisioner.on(
        "POST",
        "/apps/web/deploy",
        Reply::chunked(
            200,
            &[
                "---> Cloning origin/master\n",
                "---> Installing requirements\n",
                "---> Restarting units\n",
            ],
        )
        .chunk_delay(delay),
    );

    let mut deploy = hook(
        app,
        "/apps/web/repository/clone",
        &p.hook_token,
        &hook_body(),
    )
    .open();
    let status = deploy.status;
    assert_eq!(status, 200, "{}", deploy.finish());
    assert!(deploy.is_chunked(), "{:?}", deploy.headers);
    assert_text_plain(deploy.header("content-type"));
    assert!(
        deploy.read_until("---> Cloning origin/master\n"),
        "{:?}",
        deploy.text()
    );
    let first = Instant::now();
    let output = deploy.finish();
    assert!(
        first.elapsed() >= delay,
        "the first line arrived only {:?} before the end: the output was not streamed",
        first.elapsed()
    );
    assert!(
        output.contains(
            "---> Cloning origin/master\n---> Installing requirements\n---> Restarting units\n"
        ),
        "{output:?}"
    );
    assert_eq!(lines(&output).last(), Some(&"OK"), "{output:?}");
    assert_eq!(
        p.only_request("/apps/web/deploy"),
        json!({"version": "origin/master", "commit": SHA, "env": p.web_env})
    );

    let records = deploys(app, &p.admin, "");
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records}");
    assert_deploy_record(&records[0]);
    assert_eq!(records[0]["App"], "web");
    assert_eq!(records[0]["Commit"], SHA);
    let duration = records[0]["Duration"].as_f64().unwrap();
    assert!(
        duration >= 1.0,
        "the provisioner streamed for 1.2 s, Duration is {duration}"
    );
    assert_eq!(deploy_count(app, &p.alice, "web"), 1);

    // A user deploys without a commit: sent and recorded as "". Output without a final
    // newline still ends with the line `OK`.
    p.provisioner.clear();
    p.provisioner.on(
        "POST",
        "/apps/web/deploy",
        Reply::chunked(200, &["built", " v2"]),
    );
    let mut deploy = hook(app, "/apps/web/deploy", &p.alice, "version=v2").open();
    assert_eq!(deploy.status, 200);
    let output = deploy.finish();
    assert!(output.contains("built v2"), "{output:?}");
    assert_eq!(lines(&output).last(), Some(&"OK"), "{output:?}");
    assert_eq!(
        p.only_request("/apps/web/deploy"),
        json!({"version": "v2", "commit": "", "env": p.web_env})
    );

    // A second app, deployed last: newest first, `?app=` filters.
    e2e::services::create_app(
        app,
        &p.alice,
        &p.provisioner,
        "api",
        "10.0.0.20",
        &["10.0.0.21"],
    );
    let api_env = provisioned_env(&p.provisioner, "api");
    p.provisioner.clear();
    p.provisioner.on(
        "POST",
        "/apps/api/deploy",
        Reply::chunked(200, &["api built\n"]),
    );
    let mut deploy = hook(
        app,
        "/apps/api/repository/clone",
        &p.hook_token,
        "version=origin/master&commit=fedcba",
    )
    .open();
    assert_eq!(deploy.status, 200);
    assert_eq!(lines(&deploy.finish()).last(), Some(&"OK"));
    assert_eq!(
        p.only_request("/apps/api/deploy"),
        json!({"version": "origin/master", "commit": "fedcba", "env": api_env})
    );

    let web = |c: &str| rec("web", c);
    let api = |c: &str| rec("api", c);
    assert_eq!(
        deploy_list(app, &p.admin, ""),
        [api("fedcba"), web(""), web(SHA)]
    );
    assert_eq!(deploy_list(app, &p.admin, "?app=web"), [web(""), web(SHA)]);
    assert_eq!(deploy_list(app, &p.admin, "?app=api"), [api("fedcba")]);
    assert_eq!(deploy_count(app, &p.alice, "web"), 2);
    assert_eq!(deploy_count(app, &p.alice, "api"), 1);
    let listed = go_client(app, "GET", "/apps", &p.alice).send().json();
    assert_eq!(
        (&listed[0]["Name"], &listed[0]["Deploys"]),
        (&json!("api"), &json!(1))
    );
    assert_eq!(
        (&listed[1]["Name"], &listed[1]["Deploys"]),
        (&json!("web"), &json!(2))
    );
    // An app without deploys filters to an empty list.
    e2e::services::create_app(app, &p.alice, &p.provisioner, "idle", "", &[""]);
    assert_eq!(deploys(app, &p.admin, "?app=idle"), json!([]));
}

#[test]
fn a_deploy_that_fails_records_nothing() {
    let p = Provisioned::start();
    let app = &p.app;
    // One good deploy first, so "unchanged" is not "empty".
    p.provisioner
        .on("POST", "/apps/web/deploy", Reply::chunked(200, &["fine\n"]));
    let mut deploy = hook(
        app,
        "/apps/web/repository/clone",
        &p.hook_token,
        &hook_body(),
    )
    .open();
    assert_eq!(lines(&deploy.finish()).last(), Some(&"OK"));
    let before = deploys(app, &p.admin, "");
    assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
    assert_eq!(deploy_count(app, &p.alice, "web"), 1);

    let failures = [
        // Some output, then the provisioner's connection drops without the final chunk.
        (
            "midway",
            Reply::chunked(200, &["---> step 1\n", "---> step 2\n"])
                .chunk_delay(Duration::from_millis(300))
                .cut_off(),
            None,
        ),
        // Another status: its body, trimmed, is the reason (API.md 1.5).
        (
            "status 500",
            Reply::text(500, " disk full \n"),
            Some("ERROR: disk full"),
        ),
        ("hang-up", Reply::hang_up(), None),
    ];
    for (case, reply, last_line) in failures {
        p.provisioner.on("POST", "/apps/web/deploy", reply);
        for (path, token) in [
            ("/apps/web/repository/clone", &p.hook_token),
            ("/apps/web/deploy", &p.alice),
        ] {
            let mut deploy = hook(app, path, token, "version=origin/master&commit=0badc0de").open();
            // The stream has started: 200 whatever the outcome; the last line tells it.
            let status = deploy.status;
            assert_eq!(status, 200, "{case} {path}: {}", deploy.finish());
            assert!(deploy.is_chunked(), "{case}: {:?}", deploy.headers);
            assert_text_plain(deploy.header("content-type"));
            let output = deploy.finish();
            let out = lines(&output);
            let last = out.last().copied().unwrap_or_default();
            match last_line {
                Some(line) => assert_eq!(last, line, "{case} {path}: {output:?}"),
                None => assert!(
                    last.starts_with("ERROR: ") && last.len() > "ERROR: ".len(),
                    "{case} {path}: {output:?}"
                ),
            }
            assert!(!out.contains(&"OK"), "{case} {path}: {output:?}");
            if case == "midway" {
                assert!(
                    output.contains("---> step 1\n---> step 2\n"),
                    "the output before the failure is streamed: {output:?}"
                );
            }
            assert_eq!(deploys(app, &p.admin, ""), before, "{case} {path}");
            assert_eq!(deploy_count(app, &p.alice, "web"), 1, "{case} {path}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Schemas (API.md 9.5)

#[test]
fn schemas_are_draft_4_documents_for_any_user() {
    let app = app().start();
    let admin = admin(&app);
    let carol = user(&app, "carol@example.com");
    for path in ["/schema/app", "/schema/service", "/schema/services"] {
        for token in [&carol, &admin] {
            let resp = go_client(&app, "GET", path, token).send();
            assert_eq!(resp.status, 200, "{path}: {}", resp.text());
            assert_eq!(
                resp.header("content-type"),
                Some("application/json"),
                "{path}"
            );
            let doc = resp.json();
            let schema = doc["$schema"].as_str().unwrap_or_default();
            assert!(
                schema.contains("json-schema.org/draft-04/schema"),
                "{path}: $schema is {schema:?}"
            );
        }
        expect(&app.get(path).send(), 401, NO_HEADER);
    }
}
