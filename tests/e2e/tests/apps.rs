//! `apps` component end to end (API.md 3.1), its permission-matrix rows, and what
//! Gandalf and the provisioner receive (API.md 5.2, 5.3).

use e2e::accounts::{add_to_team, admin, team, user};
use e2e::apps::{app_token, create_app, expect, try_create_app};
use e2e::{app, App, FakeServer, Recorded, Reply, Resp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NO_ACCESS: &str = "User does not have access to this app\n";

/// A provisioner reply for `name/0` with these addresses.
fn provisioned(name: &str, ip: &str, unit_ip: &str, state: &str) -> Reply {
    Reply::json(
        200,
        &json!({"ip": ip, "units": [{"name": format!("{name}/0"), "ip": unit_ip, "state": state}]}),
    )
}

fn info(app: &App, token: &str, name: &str) -> Value {
    let resp = app.get(&format!("/apps/{name}")).bearer(token).send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|v| v["Name"].as_str().or(v["name"].as_str()).expect("name"))
        .collect()
}

/// The `(method, path)` of every recorded request.
fn calls(requests: &[Recorded]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect()
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_string(), path.to_string())
}

#[test]
fn creating_listing_and_reading_apps() {
    let app = app().var("git_host", "git.example.com").start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let carol = user(&app, "carol@example.com");

    let bad_bodies: [(&str, &str); 9] = [
        ("nope", "Invalid JSON in request body.\n"),
        ("[]", "Invalid JSON in request body.\n"),
        (r#"{"name": 5, "platform": "python"}"#, "Invalid JSON in request body.\n"),
        (r#"{"name": "x"}"#, "Invalid platform\n"),
        (r#"{"name": "x", "platform": ""}"#, "Invalid platform\n"),
        (r#"{"name": "x", "platform": "cobol"}"#, "Invalid platform\n"),
        (r#"{"name": "x", "platform": "", "framework": "python"}"#, "Invalid platform\n"),
        (
            r#"{"name": "My_App", "platform": "python"}"#,
            "Invalid app name, your app should have at most 63 characters, containing only lower case letters, numbers or dashes, starting with a letter.\n",
        ),
        (
            r#"{"platform": "python"}"#,
            "Invalid app name, your app should have at most 63 characters, containing only lower case letters, numbers or dashes, starting with a letter.\n",
        ),
    ];
    for (body, message) in bad_bodies {
        expect(
            &app.post("/apps").bearer(&alice).body(body).send(),
            400,
            message,
        );
    }
    expect(
        &try_create_app(&app, &carol, "web"),
        400,
        "In order to create an app, you should be member of at least one team\n",
    );

    let created = app
        .post("/apps")
        .bearer(&alice)
        .json(&json!({"name": "web", "framework": "go"}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    assert_eq!(created.header("content-type"), Some("application/json"));
    assert_eq!(
        created.json(),
        json!({"status": "success", "repository_url": "git@git.example.com:web.git"})
    );
    expect(
        &try_create_app(&app, &alice, "web"),
        409,
        "Tsuru failed to create the app \"web\": there is already an app with this name.\n",
    );
    assert_eq!(
        info(&app, &alice, "web"),
        json!({"Name": "web", "Framework": "go", "Platform": "go",
               "Repository": "git@git.example.com:web.git", "State": "ready", "Ip": "", "CName": "",
               "Teams": ["backend"], "Units": [{"Name": "web/0", "Ip": "", "State": "started"}],
               "Ready": true, "Owner": "alice@example.com", "Deploys": 0})
    );
    expect(
        &app.get("/apps/nope").bearer(&alice).send(),
        404,
        "App nope not found.\n",
    );
    expect(&app.get("/apps/web").bearer(&bob).send(), 403, NO_ACCESS);

    create_app(&app, &alice, "api");
    create_app(&app, &bob, "front");
    let list = |token: &str| app.get("/apps").bearer(token).send().json();
    assert_eq!(names(&list(&alice)), ["api", "web"]);
    assert_eq!(names(&list(&bob)), ["front"]);
    assert_eq!(list(&carol), json!([]));
    assert_eq!(names(&list(&admin)), ["api", "front", "web"]);
    assert_eq!(list(&admin)[2]["Units"][0]["Name"], "web/0");
}

/// Every user route of an app, as (method, path, body), each answered 200 by its owner.
fn user_routes() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("GET", "/apps/web".into(), ""),
        ("GET", "/apps/web/restart".into(), ""),
        ("POST", "/apps/web/restart".into(), ""),
        ("GET", "/apps/web/env".into(), ""),
        ("POST", "/apps/web/env".into(), r#"{"A": "1"}"#),
        ("DELETE", "/apps/web/env?name=A".into(), ""),
        ("PUT", "/apps/web/units".into(), "1"),
        ("DELETE", "/apps/web/units".into(), "1"),
        (
            "POST",
            "/apps/web/cname".into(),
            r#"{"cname": "web.example.com"}"#,
        ),
        ("DELETE", "/apps/web/cname".into(), ""),
        ("GET", "/apps/web/log?lines=10".into(), ""),
        ("PUT", "/swap?app1=web&app2=web2".into(), ""),
        ("PUT", "/apps/web/ops".into(), ""),
        ("DELETE", "/apps/web/ops".into(), ""),
        ("DELETE", "/apps/web".into(), ""),
    ]
}

fn send(app: &App, token: Option<&str>, method: &str, path: &str, body: &str) -> Resp {
    let mut req = app.request(method, path).body(body);
    if let Some(token) = token {
        req = req.bearer(token);
    }
    req.send()
}

#[test]
fn permission_matrix() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let carol = user(&app, "carol@example.com");
    create_app(&app, &alice, "web");
    create_app(&app, &alice, "web2");
    create_app(&app, &bob, "other");
    // Made after the apps, so it is not on them: the grant route adds it.
    team(&app, &alice, "ops");
    let web_token = app_token(&app, &admin, "web");
    let other_token = app_token(&app, &admin, "other");

    let header = "You must provide the Authorization header\n";
    let user_only = "This action requires a user token\n";
    let denied: [(Option<&str>, u16, &str); 5] = [
        (None, 401, header),
        (Some(&carol), 403, NO_ACCESS),
        (Some(&bob), 403, NO_ACCESS),
        (Some(&web_token), 403, user_only),
        (Some(&other_token), 403, user_only),
    ];
    for (method, path, body) in user_routes() {
        for (token, status, message) in &denied {
            let resp = send(&app, *token, method, &path, body);
            assert_eq!(
                (resp.status, resp.text().as_str()),
                (*status, *message),
                "{method} {path}"
            );
        }
    }
    // Owner and admin (not on the app's teams) are both allowed; the last route is
    // DELETE /apps/web, so the owner deletes web2 instead.
    let routes = user_routes();
    let (last, rest) = routes.split_last().expect("routes");
    for (method, path, body) in rest {
        for token in [&alice, &admin] {
            let resp = send(&app, Some(token), method, path, body);
            let what = format!(
                "{method} {path} as {}",
                if token == &alice { "owner" } else { "admin" }
            );
            assert_eq!(resp.status, 200, "{what}: {}", resp.text());
            if path.ends_with("/ops") && token == &alice {
                // Undo so the admin meets the same state.
                let undo = if *method == "PUT" { "DELETE" } else { "PUT" };
                assert_eq!(send(&app, Some(&alice), undo, path, "").status, 200);
            }
        }
    }
    assert_eq!(
        send(&app, Some(&alice), "DELETE", "/apps/web2", "").status,
        200
    );
    assert_eq!(
        send(&app, Some(&admin), last.0, &last.1, last.2).status,
        200
    );
    create_app(&app, &alice, "web");
    let web_token = app_token(&app, &admin, "web");

    // App-token routes: append log (token of that app only) and available (any token).
    let log = |token: Option<&str>| send(&app, token, "POST", "/apps/web/log", r#"["x"]"#);
    let available = |token: Option<&str>| send(&app, token, "GET", "/apps/web/available", "");
    for route in [&log as &dyn Fn(Option<&str>) -> Resp, &available] {
        expect(&route(None), 401, header);
        expect(&route(Some(&carol)), 403, NO_ACCESS);
        expect(&route(Some(&bob)), 403, NO_ACCESS);
        for token in [&alice, &admin, &web_token] {
            expect(&route(Some(token)), 200, "");
        }
    }
    expect(&log(Some(&other_token)), 401, "Invalid token\n");
    expect(&available(Some(&other_token)), 200, "");
    let system_token = app_token(&app, &admin, "git-hook");
    expect(&available(Some(&system_token)), 200, "");
    expect(&log(Some(&system_token)), 401, "Invalid token\n");

    // Creating: anonymous 401, teamless 400 (above), app tokens 403.
    expect(&try_create_app(&app, &web_token, "new"), 403, user_only);
    expect(&send(&app, None, "POST", "/apps", "{}"), 401, header);
    expect(&send(&app, None, "GET", "/apps", ""), 401, header);
    expect(
        &send(&app, Some(&web_token), "GET", "/apps", ""),
        403,
        user_only,
    );
}

#[test]
fn creation_and_removal_reach_gandalf_and_the_provisioner() {
    let gandalf = FakeServer::start();
    let provisioner = FakeServer::start();
    let app = app()
        .var("gandalf_url", &gandalf.url())
        .var("provisioner_url", &format!("{}/", provisioner.url()))
        .var("provisioner_token", "s3cret")
        .start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    user(&app, "bob@example.com");
    add_to_team(&app, &alice, "backend", "bob@example.com");
    gandalf.clear();

    provisioner.on_once(
        "POST",
        "/apps",
        provisioned("web", "10.0.0.10", "10.0.0.11", "started"),
    );
    create_app(&app, &alice, "web");
    let git = gandalf.requests();
    assert_eq!(calls(&git), [call("POST", "/repository")]);
    assert_eq!(git[0].header("content-type"), Some("application/json"));
    assert_eq!(
        git[0].json(),
        json!({"name": "web", "users": ["alice@example.com", "bob@example.com"], "ispublic": false})
    );
    let prov = provisioner.requests();
    assert_eq!(calls(&prov), [call("POST", "/apps")]);
    assert_eq!(prov[0].header("authorization"), Some("bearer s3cret"));
    assert_eq!(prov[0].header("content-type"), Some("application/json"));
    assert_eq!(prov[0].header("accept"), Some("application/json"));
    let body = prov[0].json();
    assert_eq!(body["name"], "web");
    assert_eq!(body["platform"], "python");
    assert_eq!(body["units"], json!(["web/0"]));
    let env = body["env"].as_object().expect("env object");
    assert_eq!(env.len(), 3);
    assert_eq!(env["TSURU_APPNAME"], "web");
    assert_eq!(env["TSURU_HOST"], app.url(""));
    let token = env["TSURU_APP_TOKEN"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 64);

    let web = info(&app, &alice, "web");
    assert_eq!(web["State"], "ready");
    assert_eq!(web["Ip"], "10.0.0.10");
    assert_eq!(
        web["Units"],
        json!([{"Name": "web/0", "Ip": "10.0.0.11", "State": "started"}])
    );
    // The app's own token works on its app-token routes; its variables stay masked.
    expect(
        &app.get("/apps/web/available").bearer(&token).send(),
        200,
        "",
    );
    expect(
        &app.post("/apps/web/log")
            .bearer(&token)
            .body(r#"["up"]"#)
            .send(),
        200,
        "",
    );
    let env = app.get("/apps/web/env").bearer(&alice).send().json();
    assert_eq!(
        env,
        json!([
            {"name": "TSURU_APPNAME", "value": "*** (private variable)", "public": false},
            {"name": "TSURU_APP_TOKEN", "value": "*** (private variable)", "public": false},
            {"name": "TSURU_HOST", "value": "*** (private variable)", "public": false}
        ])
    );

    gandalf.clear();
    provisioner.clear();
    let removed = app.delete("/apps/web").bearer(&alice).send();
    expect(&removed, 200, "success");
    assert_eq!(
        removed.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        calls(&provisioner.requests()),
        [call("DELETE", "/apps/web")]
    );
    assert_eq!(
        calls(&gandalf.requests()),
        [call("DELETE", "/repository/web")]
    );
    expect(
        &app.get("/apps/web").bearer(&alice).send(),
        404,
        "App web not found.\n",
    );
    expect(
        &app.get("/apps/web/available").bearer(&token).send(),
        401,
        "Invalid token\n",
    );

    // A re-created app gets a new token; the old one stays dead.
    provisioner.on_once("POST", "/apps", provisioned("web", "", "", "started"));
    create_app(&app, &alice, "web");
    expect(
        &app.get("/apps/web/available").bearer(&token).send(),
        401,
        "Invalid token\n",
    );

    // Removal goes on when the provisioner and Gandalf fail.
    provisioner.on_once("DELETE", "/apps/web", Reply::text(500, "gone wrong"));
    gandalf.on_once("DELETE", "/repository/web", Reply::hang_up());
    expect(
        &app.delete("/apps/web").bearer(&alice).send(),
        200,
        "success",
    );
    expect(
        &app.get("/apps/web").bearer(&alice).send(),
        404,
        "App web not found.\n",
    );
}

/// Asserts that app `web` left nothing behind after a failed creation.
fn assert_rolled_back(app: &App, admin: &str, alice: &str) {
    expect(
        &app.get("/apps/web").bearer(alice).send(),
        404,
        "App web not found.\n",
    );
    let quota = app
        .get("/quota/alice@example.com")
        .bearer(alice)
        .send()
        .json();
    assert_eq!(quota, json!({"items": [], "available": 5, "limit": 5}));
    expect(
        &app.get("/quota/web").bearer(admin).send(),
        404,
        "Quota not found\n",
    );
}

#[test]
fn failed_creation_is_undone_in_reverse() {
    let gandalf = FakeServer::start();
    let provisioner = FakeServer::start();
    let app = app()
        .var("gandalf_url", &gandalf.url())
        .var("provisioner_url", &provisioner.url())
        .var("quota_apps_per_user", "5")
        .var("quota_units_per_app", "3")
        .start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");

    // Gandalf fails: nothing is provisioned and there is no repository to remove.
    for (reply, reason) in [
        (
            Reply::text(500, " repository exists \n"),
            "repository exists",
        ),
        (
            Reply::hang_up(),
            "Failed to connect to Gandalf server, it's probably down.",
        ),
    ] {
        gandalf.clear();
        provisioner.clear();
        gandalf.on_once("POST", "/repository", reply);
        expect(
            &try_create_app(&app, &alice, "web"),
            502,
            &format!("Tsuru failed to create the app \"web\": {reason}\n"),
        );
        assert_eq!(calls(&gandalf.requests()), [call("POST", "/repository")]);
        assert!(provisioner.requests().is_empty());
        assert_rolled_back(&app, &admin, &alice);
    }

    // The provisioner fails: the repository is removed again and the token is dead.
    let invalid = Reply::json(200, &json!({"ip": "10.0.0.1", "units": []}));
    for (reply, reason) in [
        (Reply::text(500, "no capacity"), Some("no capacity")),
        (invalid, Some("invalid provisioner response")),
        (Reply::hang_up(), None),
    ] {
        gandalf.clear();
        provisioner.clear();
        provisioner.on_once("POST", "/apps", reply);
        let resp = try_create_app(&app, &alice, "web");
        assert_eq!(resp.status, 502);
        let prefix = "Tsuru failed to create the app \"web\": ";
        match reason {
            Some(reason) => assert_eq!(resp.text(), format!("{prefix}{reason}\n")),
            None => {
                assert!(resp.text().starts_with(prefix) && resp.text().len() > prefix.len() + 1)
            }
        }
        assert_eq!(
            calls(&gandalf.requests()),
            [
                call("POST", "/repository"),
                call("DELETE", "/repository/web")
            ]
        );
        let token = provisioner.requests()[0].json()["env"]["TSURU_APP_TOKEN"]
            .as_str()
            .expect("token")
            .to_string();
        expect(
            &app.get("/apps/web/available").bearer(&token).send(),
            401,
            "Invalid token\n",
        );
        assert_rolled_back(&app, &admin, &alice);
    }

    // Then it works, and a new token is valid.
    provisioner.clear();
    provisioner.on_once("POST", "/apps", provisioned("web", "", "", "started"));
    create_app(&app, &alice, "web");
    let token = provisioner.requests()[0].json()["env"]["TSURU_APP_TOKEN"]
        .as_str()
        .expect("token")
        .to_string();
    expect(
        &app.get("/apps/web/available").bearer(&token).send(),
        200,
        "",
    );
    let quota = app
        .get("/quota/alice@example.com")
        .bearer(&alice)
        .send()
        .json();
    assert_eq!(quota, json!({"items": ["web"], "available": 4, "limit": 5}));
    let quota = app.get("/quota/web").bearer(&alice).send().json();
    assert_eq!(
        quota,
        json!({"items": ["web-0"], "available": 2, "limit": 3})
    );
}

#[test]
fn concurrent_creations_of_one_name_make_one_app() {
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| try_create_app(&app, &alice, "same")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").status)
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(
        names(&app.get("/apps").bearer(&alice).send().json()),
        ["same"]
    );
}

/// A host with a provisioner, and alice's app `web` provisioned on it. Returns the
/// provisioner, the host and alice's token.
fn web_on_a_provisioner() -> (FakeServer, App, String) {
    let provisioner = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    provisioner.on_once("POST", "/apps", provisioned("web", "", "", "started"));
    create_app(&app, &alice, "web");
    (provisioner, app, alice)
}

/// Sets `count` variables `V<i>` of about `size` bytes each on `web`; returns them.
fn set_large_environment(
    app: &App,
    token: &str,
    count: usize,
    size: usize,
) -> serde_json::Map<String, Value> {
    let variables: serde_json::Map<String, Value> = (0..count)
        .map(|i| (format!("V{i}"), json!(format!("{i}:{}", "x".repeat(size)))))
        .collect();
    expect(
        &app.post("/apps/web/env")
            .bearer(token)
            .json(&json!(variables))
            .send(),
        200,
        "",
    );
    variables
}

/// Outbound request bodies go out whole, however large: the provisioner gets an app's
/// whole environment, here close to its 1 MiB limit. (A body used to be written before
/// its request was sent; past a few KiB that write waited forever.)
#[test]
fn a_restart_sends_the_whole_environment_however_large() {
    let (provisioner, app, alice) = web_on_a_provisioner();
    let variables = set_large_environment(&app, &alice, 900, 1000);
    provisioner.clear();
    let resp = app
        .post("/apps/web/restart")
        .bearer(&alice)
        .timeout(Duration::from_secs(20))
        .send();
    expect(&resp, 200, "\n ---> Restarting your app\n");
    let prov = provisioner.requests();
    assert_eq!(calls(&prov), [call("POST", "/apps/web/restart")]);
    assert!(prov[0].body.len() > 900_000, "{} bytes", prov[0].body.len());
    let env = prov[0].json()["env"].clone();
    for (name, value) in &variables {
        assert_eq!(&env[name], value, "{name}");
    }
}

/// A provisioner that takes the request but never reads its body stalls the sender once
/// the socket buffers are full (here about 5.6 MB of JSON, each control character of the
/// environment escaped as `\u0001`, more than loopback's 4 MiB send buffer); the call's
/// 30 s timeout still ends it, and the app stays usable.
#[test]
fn a_provisioner_that_never_reads_the_body_is_a_timeout() {
    let (provisioner, app, alice) = web_on_a_provisioner();
    for part in 0..10 {
        let variables: serde_json::Map<String, Value> = (0..95)
            .map(|i| (format!("V{part}_{i}"), json!("\u{1}".repeat(990))))
            .collect();
        expect(
            &app.post("/apps/web/env")
                .bearer(&alice)
                .json(&json!(variables))
                .send(),
            200,
            "",
        );
    }
    provisioner.on_once(
        "POST",
        "/apps/web/restart",
        Reply::never_reading(Duration::from_secs(60)),
    );
    let started = Instant::now();
    let resp = app
        .post("/apps/web/restart")
        .bearer(&alice)
        .timeout(Duration::from_secs(50))
        .send();
    expect(&resp, 502, "Failed to restart the app \"web\": timeout\n");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(29) && took < Duration::from_secs(40),
        "{took:?}"
    );
    // The next restart goes through.
    let resp = app.post("/apps/web/restart").bearer(&alice).send();
    expect(&resp, 200, "\n ---> Restarting your app\n");
}

#[test]
fn restart() {
    let (provisioner, app, alice) = web_on_a_provisioner();
    expect(
        &app.post("/apps/web/env")
            .bearer(&alice)
            .body(r#"{"PORT": "8080"}"#)
            .send(),
        200,
        "",
    );
    provisioner.clear();
    for method in ["GET", "POST"] {
        let resp = app
            .request(method, "/apps/web/restart")
            .bearer(&alice)
            .send();
        expect(&resp, 200, "\n ---> Restarting your app\n");
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let prov = provisioner.requests();
    assert_eq!(
        calls(&prov),
        [
            call("POST", "/apps/web/restart"),
            call("POST", "/apps/web/restart")
        ]
    );
    let env = &prov[0].json()["env"];
    assert_eq!(env["PORT"], "8080");
    assert_eq!(env["TSURU_APPNAME"], "web");
    provisioner.on_once("POST", "/apps/web/restart", Reply::text(500, "down"));
    expect(
        &app.post("/apps/web/restart").bearer(&alice).send(),
        502,
        "Failed to restart the app \"web\": down\n",
    );
    expect(
        &app.post("/apps/nope/restart").bearer(&alice).send(),
        404,
        "App nope not found.\n",
    );
    let messages = e2e::apps::log_messages(&app, &alice, "web", "?lines=0&source=tsuru");
    assert_eq!(
        messages,
        [
            "setting env PORT with value 8080",
            "Restarting app",
            "Restarting app"
        ]
    );
}

#[test]
fn environment_variables() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    let get = |target: &str, body: &str| app.get(target).bearer(&alice).body(body).send();
    let set = |body: &str| app.post("/apps/web/env").bearer(&alice).body(body).send();
    let unset = |target: &str, body: &str| app.delete(target).bearer(&alice).body(body).send();
    let shown = |resp: Resp| -> Vec<(String, String, bool)> {
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_string(),
                    v["value"].as_str().unwrap().to_string(),
                    v["public"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let var = |name: &str, value: &str, public: bool| (name.to_string(), value.to_string(), public);
    let masked = "*** (private variable)";

    let object = "You must provide the environment variables in a JSON object\n";
    for body in ["", "[]", "nope", r#"{"A": 1}"#, r#"{"A": null}"#] {
        expect(&set(body), 400, object);
    }
    expect(
        &set(r#"{"OK": "1", "BAD-NAME": "x"}"#),
        400,
        "Invalid environment variable name: BAD-NAME\n",
    );
    expect(
        &set(r#"{"1A": "x"}"#),
        400,
        "Invalid environment variable name: 1A\n",
    );
    expect(&set("{}"), 200, "");
    expect(
        &set(
            r#"{"DATABASE_HOST": "localhost", "PORT": "8080", "TSURU_APPNAME": "evil", "TSURU_APP_TOKEN": "x", "TSURU_SERVICES": "{}"}"#,
        ),
        200,
        "",
    );
    expect(&set(r#"{"PORT": "9090"}"#), 200, "");
    assert_eq!(
        shown(get("/apps/web/env", "")),
        [
            var("DATABASE_HOST", "localhost", true),
            var("PORT", "9090", true),
            var("TSURU_APPNAME", masked, false),
            var("TSURU_APP_TOKEN", masked, false),
            var("TSURU_HOST", masked, false),
        ]
    );
    assert_eq!(
        shown(get("/apps/web/env?name=PORT&name=NOPE", "")),
        [var("PORT", "9090", true)]
    );
    assert_eq!(
        shown(get("/apps/web/env", r#"["DATABASE_HOST", "TSURU_HOST"]"#)),
        [
            var("DATABASE_HOST", "localhost", true),
            var("TSURU_HOST", masked, false)
        ]
    );
    // The query wins over the body.
    assert_eq!(
        shown(get("/apps/web/env?name=PORT", r#"["DATABASE_HOST"]"#)),
        [var("PORT", "9090", true)]
    );
    let list = "You must provide the list of environment variables, in JSON format\n";
    expect(&get("/apps/web/env", "{}"), 400, list);
    expect(&get("/apps/web/env", "[1]"), 400, list);
    expect(&get("/apps/nope/env", "{}"), 404, "App nope not found.\n");

    for (target, body) in [
        ("/apps/web/env", ""),
        ("/apps/web/env", "nope"),
        ("/apps/web/env", r#"{"a": "b"}"#),
    ] {
        expect(&unset(target, body), 400, list);
    }
    expect(
        &unset("/apps/web/env?name=PORT&name=TSURU_APPNAME&name=NOPE", ""),
        200,
        "",
    );
    expect(
        &unset("/apps/web/env", r#"["DATABASE_HOST", "TSURU_HOST"]"#),
        200,
        "",
    );
    assert_eq!(
        shown(get("/apps/web/env", "")),
        [
            var("TSURU_APPNAME", masked, false),
            var("TSURU_APP_TOKEN", masked, false),
            var("TSURU_HOST", masked, false)
        ]
    );

    let messages = e2e::apps::log_messages(&app, &alice, "web", "?lines=0&source=tsuru");
    assert_eq!(
        messages,
        [
            "setting env DATABASE_HOST with value localhost",
            "setting env PORT with value 8080",
            "setting env PORT with value 9090"
        ]
    );
}

#[test]
fn swapping_exchanges_addresses_and_cnames() {
    let provisioner = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    for (name, ip) in [("a1", "10.0.0.1"), ("a2", "10.0.0.2")] {
        provisioner.on_once("POST", "/apps", provisioned(name, ip, "", "started"));
        create_app(&app, &alice, name);
        let cname = json!({"cname": format!("{name}.example.com")});
        expect(
            &app.post(&format!("/apps/{name}/cname"))
                .bearer(&alice)
                .json(&cname)
                .send(),
            200,
            "",
        );
    }
    provisioner.on_once("POST", "/apps", provisioned("b", "", "", "started"));
    create_app(&app, &bob, "b");
    let swap = |token: &str, query: &str| app.put(&format!("/swap{query}")).bearer(token).send();
    expect(&swap(&alice, ""), 404, "App  not found.\n");
    expect(
        &swap(&alice, "?app1=nope&app2=a1"),
        404,
        "App nope not found.\n",
    );
    expect(&swap(&alice, "?app1=a1"), 404, "App  not found.\n");
    expect(
        &swap(&alice, "?app1=a1&app2=nope"),
        404,
        "App nope not found.\n",
    );
    expect(&swap(&alice, "?app1=b&app2=a1"), 403, NO_ACCESS);
    expect(&swap(&alice, "?app1=a1&app2=b"), 403, NO_ACCESS);
    expect(
        &swap(&alice, "?app1=a1&app2=a1"),
        400,
        "An app cannot be swapped with itself.\n",
    );

    provisioner.clear();
    provisioner.on_once("POST", "/swap", Reply::text(500, "busy"));
    expect(
        &swap(&alice, "?app1=a1&app2=a2"),
        502,
        "Failed to swap the apps a1 and a2: busy\n",
    );
    assert_eq!(info(&app, &alice, "a1")["Ip"], "10.0.0.1");

    expect(&swap(&alice, "?app1=a1&app2=a2"), 200, "");
    let prov = provisioner.requests();
    assert_eq!(calls(&prov), [call("POST", "/swap"), call("POST", "/swap")]);
    assert_eq!(prov[1].json(), json!({"app1": "a1", "app2": "a2"}));
    let (a1, a2) = (info(&app, &alice, "a1"), info(&app, &alice, "a2"));
    assert_eq!(
        (&a1["Ip"], &a1["CName"]),
        (&json!("10.0.0.2"), &json!("a2.example.com"))
    );
    assert_eq!(
        (&a2["Ip"], &a2["CName"]),
        (&json!("10.0.0.1"), &json!("a1.example.com"))
    );
}

#[test]
fn adding_and_removing_units() {
    let provisioner = FakeServer::start();
    let app = app()
        .var("provisioner_url", &provisioner.url())
        .var("quota_units_per_app", "4")
        .start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    provisioner.on_once(
        "POST",
        "/apps",
        provisioned("web", "10.0.0.1", "10.0.1.0", "started"),
    );
    create_app(&app, &alice, "web");
    let add = |body: &str| app.put("/apps/web/units").bearer(&alice).body(body).send();
    let remove = |body: &str| {
        app.delete("/apps/web/units")
            .bearer(&alice)
            .body(body)
            .send()
    };
    let units_reply = |units: &[(&str, &str)]| {
        let units: Vec<Value> = units
            .iter()
            .map(|(name, state)| json!({"name": name, "ip": format!("ip-{name}"), "state": state}))
            .collect();
        Reply::json(200, &json!({"units": units}))
    };
    let quota = || app.get("/quota/web").bearer(&alice).send().json();
    let unit_names = || -> Vec<String> {
        info(&app, &alice, "web")["Units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                format!(
                    "{} {}",
                    u["Name"].as_str().unwrap(),
                    u["State"].as_str().unwrap()
                )
            })
            .collect()
    };

    let not_positive = "Invalid number of units: the number must be an integer greater than 0.\n";
    for (body, message) in [
        ("", "You must provide the number of units.\n"),
        (" \n", "You must provide the number of units.\n"),
        ("abc", not_positive),
        ("0", not_positive),
        ("-1", not_positive),
        ("+1", not_positive),
        ("1.5", not_positive),
        ("4294967296", not_positive),
        (
            "101",
            "Invalid number of units: at most 100 units can be added at once.\n",
        ),
    ] {
        expect(&add(body), 400, message);
    }
    expect(
        &app.put("/apps/nope/units").bearer(&alice).body("1").send(),
        404,
        "App nope not found.\n",
    );

    provisioner.clear();
    provisioner.on_once(
        "POST",
        "/apps/web/units",
        units_reply(&[("web/2", "started"), ("web/1", "building")]),
    );
    expect(&add(" 2\n"), 200, "");
    let prov = provisioner.requests();
    assert_eq!(calls(&prov), [call("POST", "/apps/web/units")]);
    let body = prov[0].json();
    assert_eq!(body["units"], json!(["web/1", "web/2"]));
    assert_eq!(body["env"]["TSURU_APPNAME"], "web");
    assert_eq!(
        quota(),
        json!({"items": ["web-0", "web-1", "web-2"], "available": 1, "limit": 4})
    );
    expect(
        &add("2"),
        403,
        "Quota exceeded. Available: 1. Requested: 2.\n",
    );

    // Failures release the reserved item; the unit numbers stay used.
    provisioner.on_once("POST", "/apps/web/units", Reply::text(500, "full"));
    expect(
        &add("1"),
        502,
        "Failed to add units to the app \"web\": full\n",
    );
    provisioner.on_once(
        "POST",
        "/apps/web/units",
        units_reply(&[("web/3", "started"), ("web/9", "started")]),
    );
    expect(
        &add("1"),
        502,
        "Failed to add units to the app \"web\": invalid provisioner response\n",
    );
    assert_eq!(quota()["items"], json!(["web-0", "web-1", "web-2"]));
    provisioner.on_once("POST", "/apps/web/units", units_reply(&[("web/5", "down")]));
    expect(&add("1"), 200, "");
    assert_eq!(
        unit_names(),
        [
            "web/0 started",
            "web/1 building",
            "web/2 started",
            "web/5 down"
        ]
    );
    assert_eq!(info(&app, &alice, "web")["Units"][3]["Ip"], "ip-web/5");

    expect(&remove(""), 400, "You must provide the number of units.\n");
    expect(&remove("x"), 400, not_positive);
    expect(&remove("4"), 400, "Cannot remove all units from an app.\n");
    expect(
        &remove("5"),
        400,
        "Cannot remove 5 units from this app, it has only 4 units.\n",
    );
    provisioner.clear();
    expect(&remove("2"), 200, "");
    assert_eq!(
        calls(&provisioner.requests()),
        [
            call("DELETE", "/apps/web/units/5"),
            call("DELETE", "/apps/web/units/1")
        ]
    );
    assert_eq!(unit_names(), ["web/0 started", "web/2 started"]);
    assert_eq!(quota()["items"], json!(["web-0", "web-2"]));

    provisioner.on_once("DELETE", "/apps/web/units/2", Reply::text(500, "stuck"));
    expect(
        &remove("1"),
        502,
        "Failed to remove the unit web/2: stuck\n",
    );
    // Only destroying a whole app accepts a 404.
    provisioner.on_once(
        "DELETE",
        "/apps/web/units/2",
        Reply::text(404, "no such unit"),
    );
    expect(
        &remove("1"),
        502,
        "Failed to remove the unit web/2: no such unit\n",
    );
    assert_eq!(unit_names(), ["web/0 started", "web/2 started"]);
    expect(&remove("1"), 200, "");
    assert_eq!(unit_names(), ["web/0 started"]);
    assert_eq!(
        quota(),
        json!({"items": ["web-0"], "available": 3, "limit": 4})
    );
}

#[test]
fn granting_and_revoking_teams() {
    let gandalf = FakeServer::start();
    let app = app().var("gandalf_url", &gandalf.url()).start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    // Teams made after the app are not on it.
    team(&app, &alice, "solo");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "ops");
    add_to_team(&app, &bob, "ops", "alice@example.com");
    let grant = |team: &str| app.put(&format!("/apps/web/{team}")).bearer(&alice).send();
    let revoke = |team: &str| {
        app.delete(&format!("/apps/web/{team}"))
            .bearer(&alice)
            .send()
    };
    let teams = || info(&app, &alice, "web")["Teams"].clone();
    let orphan = "You can not revoke the access from this team, because it is the unique team with access to the app, and an app can not be orphaned\n";

    expect(&grant("nope"), 404, "Team not found\n");
    expect(
        &grant("backend"),
        409,
        "This team already has access to this app\n",
    );
    expect(&revoke("nope"), 404, "Team not found\n");
    expect(&revoke("backend"), 403, orphan);
    expect(&revoke("ops"), 403, orphan);

    gandalf.clear();
    gandalf.on_once("POST", "/repository/grant", Reply::text(500, "denied"));
    expect(
        &grant("ops"),
        502,
        "Failed to grant access in the git server: denied.\n",
    );
    assert_eq!(teams(), json!(["backend"]));
    expect(&grant("ops"), 200, "");
    let git = gandalf.requests();
    assert_eq!(
        calls(&git),
        [
            call("POST", "/repository/grant"),
            call("POST", "/repository/grant")
        ]
    );
    assert_eq!(
        git[1].json(),
        json!({"repositories": ["web"], "users": ["alice@example.com", "bob@example.com"]})
    );
    assert_eq!(teams(), json!(["backend", "ops"]));
    expect(
        &revoke("solo"),
        404,
        "This team does not have access to this app\n",
    );

    // Only members who keep no other team on the app lose the repository.
    gandalf.clear();
    gandalf.on_once("DELETE", "/repository/revoke", Reply::hang_up());
    expect(
        &revoke("ops"),
        502,
        "Failed to revoke access in the git server: Failed to connect to Gandalf server, it's probably down.\n",
    );
    assert_eq!(teams(), json!(["backend", "ops"]));
    expect(&revoke("ops"), 200, "");
    let git = gandalf.requests();
    assert_eq!(
        calls(&git),
        [
            call("DELETE", "/repository/revoke"),
            call("DELETE", "/repository/revoke")
        ]
    );
    assert_eq!(
        git[1].json(),
        json!({"repositories": ["web"], "users": ["bob@example.com"]})
    );
    assert_eq!(teams(), json!(["backend"]));

    // No member to revoke: no call.
    expect(&grant("solo"), 200, "");
    gandalf.clear();
    expect(&revoke("solo"), 200, "");
    assert!(gandalf.requests().is_empty());
}

#[test]
fn cnames() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    create_app(&app, &alice, "api");
    let set = |name: &str, body: &str| {
        app.post(&format!("/apps/{name}/cname"))
            .bearer(&alice)
            .body(body)
            .send()
    };
    let cname = || info(&app, &alice, "web")["CName"].clone();

    expect(&set("nope", "nope"), 400, "Invalid JSON in request body.\n");
    expect(&set("nope", "[]"), 400, "Invalid JSON in request body.\n");
    expect(
        &set("web", r#"{"cname": 5}"#),
        400,
        "Invalid JSON in request body.\n",
    );
    expect(&set("nope", "{}"), 400, "You must provide the cname.\n");
    expect(
        &set("nope", r#"{"cname": "x.com"}"#),
        404,
        "App nope not found.\n",
    );
    let too_long = format!(r#"{{"cname": "{}"}}"#, "a".repeat(254));
    for body in [
        r#"{"cname": "-bad.com"}"#,
        r#"{"cname": "a b.com"}"#,
        r#"{"cname": "x"}"#,
        &too_long,
    ] {
        expect(&set("web", body), 400, "Invalid cname\n");
    }
    expect(&set("web", r#"{"cname": "www.example.com"}"#), 200, "");
    assert_eq!(cname(), "www.example.com");
    expect(&set("web", r#"{"cname": "www.example.com"}"#), 200, "");
    expect(
        &set("api", r#"{"cname": "www.example.com"}"#),
        409,
        "The cname \"www.example.com\" is already in use.\n",
    );
    expect(&set("web", r#"{"cname": ""}"#), 200, "");
    assert_eq!(cname(), "");
    expect(&set("api", r#"{"cname": "www.example.com"}"#), 200, "");
    expect(
        &app.delete("/apps/api/cname").bearer(&alice).send(),
        200,
        "",
    );
    assert_eq!(info(&app, &alice, "api")["CName"], "");
    expect(
        &app.delete("/apps/nope/cname").bearer(&alice).send(),
        404,
        "App nope not found.\n",
    );
}

#[test]
fn logs() {
    let app = app().start();
    let (admin, alice) = e2e::apps::alice_with_web(&app);
    let token = app_token(&app, &admin, "web");
    let read = |query: &str| {
        app.get(&format!("/apps/web/log{query}"))
            .bearer(&alice)
            .send()
    };
    let append = |query: &str, body: &str| {
        app.post(&format!("/apps/web/log{query}"))
            .bearer(&token)
            .body(body)
            .send()
    };

    expect(&read(""), 400, "Parameter \"lines\" is mandatory.\n");
    for query in ["?lines=", "?lines=abc", "?lines=-1", "?lines=1.5"] {
        expect(
            &read(query),
            400,
            "Parameter \"lines\" must be an integer.\n",
        );
    }
    expect(
        &app.get("/apps/nope/log?lines=1").bearer(&alice).send(),
        404,
        "App nope not found.\n",
    );
    expect(
        &app.post("/apps/nope/log").bearer(&alice).body("[]").send(),
        404,
        "App nope not found.\n",
    );
    let array = "You must provide the log messages as a JSON array of strings.\n";
    for body in ["", "nope", "[1]", r#"{"a": "b"}"#] {
        expect(&append("", body), 400, array);
    }
    expect(
        &append("", r#"["line 1\nline 2", "", "line 3\n"]"#),
        200,
        "",
    );
    expect(&append("?source=web", r#"["w"]"#), 200, "");

    let entries = read("?lines=2").json();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["Message"], "line 3");
    assert_eq!(entries[0]["Source"], "app");
    assert_eq!(entries[0]["AppName"], "web");
    assert_eq!(entries[1]["Message"], "w");
    assert_eq!(entries[1]["Source"], "web");
    let date = entries[1]["Date"].as_str().unwrap();
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "{date}"
    );
    let messages = |query: &str| -> Vec<String> {
        read(query)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        messages("?lines=0&source=app"),
        ["line 1", "line 2", "line 3"]
    );
    assert_eq!(
        messages("?lines=99999999999999999999999"),
        ["line 1", "line 2", "line 3", "w"]
    );

    // A re-created app of the same name never sees the old entries (dates have
    // second precision, so the new app is made in a later second).
    expect(
        &app.delete("/apps/web").bearer(&alice).send(),
        200,
        "success",
    );
    std::thread::sleep(Duration::from_millis(1100));
    create_app(&app, &alice, "web");
    assert!(messages("?lines=0").is_empty());
}

#[test]
fn availability_needs_a_started_or_unreachable_unit() {
    let provisioner = FakeServer::start();
    let app = app().var("provisioner_url", &provisioner.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    for (name, state, status) in [
        ("a", "building", 412),
        ("b", "unreachable", 200),
        ("c", "exploded", 412),
    ] {
        provisioner.on_once("POST", "/apps", provisioned(name, "", "", state));
        create_app(&app, &alice, name);
        let resp = app
            .get(&format!("/apps/{name}/available"))
            .bearer(&alice)
            .send();
        let body = if status == 200 {
            ""
        } else {
            "App must be available to receive pushs.\n"
        };
        expect(&resp, status, body);
    }
    // A state the API does not know counts as `down`.
    assert_eq!(info(&app, &alice, "c")["Units"][0]["State"], "down");
    expect(
        &app.get("/apps/nope/available").bearer(&alice).send(),
        404,
        "App nope not found.\n",
    );
}

/// A call whose body cannot go out, because its server is gone, says why: the
/// transport failure, not the body's stream.
#[test]
fn a_refused_call_with_a_body_gives_the_transport_reason() {
    let (provisioner, app, alice) = web_on_a_provisioner();
    set_large_environment(&app, &alice, 100, 500);
    drop(provisioner);
    let resp = app.post("/apps/web/restart").bearer(&alice).send();
    expect(
        &resp,
        502,
        "Failed to restart the app \"web\": connection refused\n",
    );
}

/// The write checks the platform by its foreign key; a refusal still names an unknown
/// platform first (API.md check 3), before the name's form, a taken name and the quota.
#[test]
fn an_unknown_platform_is_refused_before_the_name_and_the_quota() {
    let app = app().var("quota_apps_per_user", "1").start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let create = |token: &str, name: &str, platform: &str| {
        app.post("/apps")
            .bearer(token)
            .json(&json!({"name": name, "platform": platform}))
            .send()
    };
    create_app(&app, &alice, "web");
    let invalid = "Invalid platform\n";
    // A bad name, a taken name, a full quota: each with an unknown platform.
    expect(&create(&alice, "My_App", "cobol"), 400, invalid);
    expect(&create(&alice, "web", "cobol"), 400, invalid);
    expect(&create(&alice, "other", "cobol"), 400, invalid);
    // With a known platform, those refusals are the ones the checks name.
    expect(
        &try_create_app(&app, &alice, "other"),
        403,
        "Quota exceeded\n",
    );
    expect(
        &try_create_app(&app, &bob, "web"),
        409,
        "Tsuru failed to create the app \"web\": there is already an app with this name.\n",
    );
    // Refused by the foreign key itself: nothing of it stays, the name and quota are free.
    expect(&create(&bob, "api", "cobol"), 400, invalid);
    create_app(&app, &bob, "api");
}
