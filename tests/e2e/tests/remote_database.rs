//! A remote database that drops idle connections (issue 13: Spin on libSQL keeps one
//! server stream per connection and sqld expires it after 10 s idle). The test host
//! expires connections idle longer than a few hundred milliseconds here, and the outside
//! systems answer after longer than that: no request may rely on a connection staying
//! usable across an outbound call, and a creation that fails leaves no row behind. The
//! host also refuses what libSQL's client refuses (temporary objects, `PRAGMA` settings).

use e2e::apps::log_messages;
use e2e::{accounts, FakeServer, Reply};
use serde_json::json;
use std::time::Duration;

const IDLE: Duration = Duration::from_millis(300);
const SLOW: Duration = Duration::from_millis(700);

fn unit(name: &str) -> serde_json::Value {
    json!({"name": name, "ip": "10.0.0.2", "state": "started"})
}

#[test]
fn slow_outside_systems_do_not_break_the_database_work_around_them() {
    let provisioner = FakeServer::start();
    let gandalf = FakeServer::start();
    gandalf.fallback(Reply::ok().delay(SLOW));
    let app = e2e::app()
        .remote_libsql(IDLE)
        .var("provisioner_url", &provisioner.url())
        .var("gandalf_url", &gandalf.url())
        .start();
    let admin = accounts::admin(&app);
    accounts::team(&app, &admin, "backend");
    provisioner.on_once(
        "POST",
        "/apps",
        Reply::json(200, &json!({"ip": "10.0.0.1", "units": [unit("web/0")]})).delay(SLOW),
    );
    let created = app
        .post("/apps")
        .bearer(&admin)
        .json(&json!({"name": "web", "platform": "python"}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    let info = app.get("/apps/web").bearer(&admin).send().json();
    assert_eq!(info["State"], "ready");
    assert_eq!(info["Ip"], "10.0.0.1");
    // A grant waits on Gandalf between its transaction and its undo.
    accounts::team(&app, &admin, "ops");
    app.put("/apps/web/ops")
        .bearer(&admin)
        .send()
        .assert_is(200, "");
    provisioner.on_once(
        "POST",
        "/apps/web/units",
        Reply::json(200, &json!({"units": [unit("web/1")]})).delay(SLOW),
    );
    app.put("/apps/web/units")
        .bearer(&admin)
        .body("1")
        .send()
        .assert_is(200, "");
    provisioner.on_once("POST", "/apps/web/restart", Reply::ok().delay(SLOW));
    let restarted = app.post("/apps/web/restart").bearer(&admin).send();
    assert_eq!(restarted.status, 200, "{}", restarted.text());
    assert_eq!(
        log_messages(&app, &admin, "web", "?lines=0&source=tsuru"),
        ["Restarting app"]
    );
    // No statement ran on a connection the database had dropped.
    let output = app.component_output();
    assert!(!output.contains("STREAM_EXPIRED"), "{output}");
    assert!(!output.contains("internal error"), "{output}");
}

#[test]
fn a_creation_that_fails_after_a_slow_call_leaves_the_name_free() {
    let provisioner = FakeServer::start();
    let app = e2e::app()
        .remote_libsql(IDLE)
        .var("provisioner_url", &provisioner.url())
        .start();
    let admin = accounts::admin(&app);
    accounts::team(&app, &admin, "backend");
    provisioner.on_once("POST", "/apps", Reply::text(500, "no capacity").delay(SLOW));
    let failed = app
        .post("/apps")
        .bearer(&admin)
        .json(&json!({"name": "web", "platform": "python"}))
        .send();
    failed.assert_is(502, "Tsuru failed to create the app \"web\": no capacity\n");
    assert_eq!(app.get("/apps").bearer(&admin).send().json(), json!([]));
    provisioner.on_once(
        "POST",
        "/apps",
        Reply::json(200, &json!({"ip": "", "units": [unit("web/0")]})),
    );
    let created = app
        .post("/apps")
        .bearer(&admin)
        .json(&json!({"name": "web", "platform": "python"}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
}

#[test]
fn a_log_stream_outlives_the_idle_limit() {
    let app = e2e::app().remote_libsql(IDLE).start();
    let admin = accounts::admin(&app);
    accounts::team(&app, &admin, "backend");
    e2e::apps::create_app(&app, &admin, "web");
    let mut stream = app
        .get("/apps/web/log?lines=10&follow=1")
        .bearer(&admin)
        .open();
    assert_eq!(stream.status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    app.post("/apps/web/log")
        .bearer(&admin)
        .json(&json!(["late line"]))
        .send()
        .assert_is(200, "");
    assert!(stream.read_until("late line"), "{}", stream.text());
}

#[test]
fn without_temporary_objects_an_app_is_created_whole_in_one_transaction() {
    let app = e2e::app()
        .remote_libsql(IDLE)
        .var("quota_units_per_app", "4")
        .start();
    let admin = accounts::admin(&app);
    accounts::team(&app, &admin, "backend");
    app.host().start_call_log();
    e2e::apps::create_app(&app, &admin, "web");
    let calls = app.host().take_call_log();
    let statements: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.strip_prefix("sqlite execute "))
        .collect();
    let begin = statements.iter().position(|s| *s == "BEGIN IMMEDIATE");
    let commits = statements.iter().filter(|s| **s == "COMMIT").count();
    assert!(begin.is_some() && commits == 1, "{statements:#?}");
    assert!(
        statements[..begin.unwrap_or(0)]
            .iter()
            .any(|s| s.starts_with("CREATE TEMP VIEW")),
        "the procedure is tried first: {statements:#?}"
    );
    let info = app.get("/apps/web").bearer(&admin).send().json();
    assert_eq!(info["State"], "ready");
    assert_eq!(info["Teams"], json!(["admin", "backend"]));
    assert_eq!(info["Units"].as_array().map(Vec::len), Some(1));
    let env = app.get("/apps/web/env").bearer(&admin).send();
    assert_eq!(env.status, 200);
    for name in ["TSURU_APPNAME", "TSURU_HOST", "TSURU_APP_TOKEN"] {
        assert!(env.text().contains(name), "{name}: {}", env.text());
    }
    let quota = app.get("/quota/web").bearer(&admin).send();
    assert_eq!(quota.status, 200, "{}", quota.text());
    assert!(quota.text().contains("web-0"), "{}", quota.text());
    // The same name again is refused, and a second app works the same way.
    let again = app
        .post("/apps")
        .bearer(&admin)
        .json(&json!({"name": "web", "platform": "python"}))
        .send();
    assert_eq!(again.status, 409, "{}", again.text());
    e2e::apps::create_app(&app, &admin, "api");
}
