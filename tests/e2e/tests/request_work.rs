//! Per-request work (README.md, "What a request does"), observed through the test host's
//! call log: on a remote database every statement is a network round trip, so a read
//! route makes at most 3 statements in the steady state, a write route at most one
//! transaction besides the reads its checks need, no route pays a statement for the
//! schema check, and none opens SQLite twice or reads a key-value entry or variable
//! twice.

use e2e::{accounts, apps, App, RequestBuilder};
use serde_json::json;

/// The host calls `request` makes.
fn calls(app: &App, request: RequestBuilder) -> Vec<String> {
    app.host().start_call_log();
    let resp = request.send();
    let calls = app.host().take_call_log();
    assert!(
        (200..300).contains(&resp.status),
        "{}: {calls:#?}",
        resp.text()
    );
    calls
}

fn count(calls: &[String], prefix: &str) -> usize {
    calls.iter().filter(|c| c.starts_with(prefix)).count()
}

fn statements(calls: &[String]) -> usize {
    count(calls, "sqlite execute")
}

fn transactions(calls: &[String]) -> usize {
    count(calls, "sqlite execute BEGIN")
}

#[track_caller]
fn assert_minimal(route: &str, calls: &[String]) {
    assert!(count(calls, "sqlite open") <= 1, "{route}: {calls:#?}");
    assert_eq!(
        count(calls, "sqlite execute PRAGMA user_version"),
        0,
        "{route} checks the schema with a statement of its own: {calls:#?}"
    );
    // A write sets up its connection once (no round trip on libSQL, which refuses it in
    // the client); a read never does.
    assert!(
        count(calls, "sqlite execute PRAGMA busy_timeout") <= 1,
        "{route}: {calls:#?}"
    );
    let reads: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("key-value get") || c.starts_with("variable get"))
        .collect();
    for (i, read) in reads.iter().enumerate() {
        assert!(
            !reads[..i].contains(read),
            "{route} repeats {read:?}: {calls:#?}"
        );
    }
}

#[test]
fn read_routes_make_three_statements_and_write_routes_one_transaction() {
    let app = e2e::app().start();
    let admin = accounts::admin(&app);
    let token = accounts::user(&app, "u@example.com");
    accounts::team(&app, &token, "backend");
    for name in ["web", "worker", "cron"] {
        apps::create_app(&app, &token, name);
    }
    accounts::team(&app, &token, "ops");
    let login = || {
        app.post("/users/u@example.com/tokens")
            .json(&json!({ "password": accounts::PASSWORD }))
    };
    // A few earlier logins: a login must not read every token the user holds.
    for _ in 0..3 {
        calls(&app, login());
    }

    // The health check's one statement is the schema version itself: a plain
    // `PRAGMA user_version` reads the file header, not the whole schema.
    let health = calls(&app, app.get("/healthcheck"));
    assert_eq!(
        health,
        ["sqlite open default", "sqlite execute PRAGMA user_version"],
        "GET /healthcheck"
    );

    let reads = [
        ("GET /apps", app.get("/apps").bearer(&token), 2),
        ("GET /apps as admin", app.get("/apps").bearer(&admin), 2),
        ("GET /apps/:app", app.get("/apps/web").bearer(&token), 2),
        (
            "GET /apps/:app/env",
            app.get("/apps/web/env").bearer(&token),
            3,
        ),
        (
            "GET /apps/:app/log",
            app.get("/apps/web/log?lines=10").bearer(&token),
            3,
        ),
        ("GET /teams", app.get("/teams").bearer(&token), 2),
        (
            "GET /teams/:team",
            app.get("/teams/backend").bearer(&token),
            3,
        ),
        ("GET /platforms", app.get("/platforms").bearer(&token), 3),
        (
            "GET /quota/:owner",
            app.get("/quota/u@example.com").bearer(&token),
            2,
        ),
        ("GET /quota/:app", app.get("/quota/web").bearer(&token), 3),
        ("GET /services", app.get("/services").bearer(&token), 3),
        (
            "GET /services/instances",
            app.get("/services/instances").bearer(&token),
            3,
        ),
        (
            "GET /users/:email/keys",
            app.get("/users/u@example.com/keys").bearer(&token),
            2,
        ),
        ("GET /deploys", app.get("/deploys").bearer(&admin), 2),
    ];
    for (route, request, expected) in reads {
        let calls = calls(&app, request);
        assert_minimal(route, &calls);
        assert_eq!(statements(&calls), expected, "{route}: {calls:#?}");
        assert!(expected <= 3, "{route}");
        assert_eq!(transactions(&calls), 0, "{route}: {calls:#?}");
        assert_eq!(
            count(&calls, "sqlite execute PRAGMA"),
            0,
            "{route}: {calls:#?}"
        );
    }

    let writes = [
        (
            "POST /apps",
            app.post("/apps")
                .bearer(&token)
                .json(&json!({"name": "api", "platform": "python"})),
        ),
        (
            "POST /apps/:app/env",
            app.post("/apps/web/env")
                .bearer(&token)
                .json(&json!({"PORT": "8080"})),
        ),
        (
            "DELETE /apps/:app/env",
            app.delete("/apps/web/env?name=PORT").bearer(&token),
        ),
        (
            "POST /apps/:app/log",
            app.post("/apps/web/log")
                .bearer(&token)
                .json(&json!(["a line"])),
        ),
        (
            "POST /apps/:app/cname",
            app.post("/apps/web/cname")
                .bearer(&token)
                .json(&json!({"cname": "web.example.com"})),
        ),
        (
            "PUT /apps/:app/:team",
            app.put("/apps/web/ops").bearer(&token),
        ),
        (
            "DELETE /apps/:app/:team",
            app.delete("/apps/web/ops").bearer(&token),
        ),
        (
            "POST /teams",
            app.post("/teams")
                .bearer(&token)
                .json(&json!({"name": "qa"})),
        ),
        (
            "DELETE /teams/:team",
            app.delete("/teams/qa").bearer(&token),
        ),
        (
            "PUT /quota/:owner",
            app.put("/quota/u@example.com")
                .bearer(&admin)
                .body("quota=10"),
        ),
        ("login", login()),
    ];
    // Routes whose write finds its target and checks the caller's access itself: the
    // write lock is taken by the write, with no read before it (the transaction's first
    // statement writes, or the route's one write is a statement of its own).
    let checked_by_the_write = [
        "POST /apps",
        "POST /apps/:app/env",
        "DELETE /apps/:app/env",
        "POST /apps/:app/log",
        "POST /apps/:app/cname",
        "PUT /apps/:app/:team",
        "DELETE /teams/:team",
        "PUT /quota/:owner",
    ];
    for (route, request) in writes {
        let calls = calls(&app, request);
        assert_minimal(route, &calls);
        assert_eq!(count(&calls, "sqlite open"), 1, "{route}: {calls:#?}");
        assert!(transactions(&calls) <= 1, "{route}: {calls:#?}");
        if checked_by_the_write.contains(&route) {
            match calls
                .iter()
                .position(|c| c.starts_with("sqlite execute BEGIN"))
            {
                Some(begin) => {
                    assert_eq!(calls[begin], "sqlite execute BEGIN", "{route}: {calls:#?}");
                    let first = calls.get(begin + 1).map(String::as_str).unwrap_or("");
                    assert!(
                        ["INSERT", "UPDATE", "DELETE"]
                            .iter()
                            .any(|write| first.starts_with(&format!("sqlite execute {write}"))),
                        "{route} reads under the write lock: {calls:#?}"
                    );
                }
                None => assert_eq!(commits(&calls), 1, "{route}: {calls:#?}"),
            }
        }
        if route == "POST /apps" {
            // The write's foreign key checks the platform; only a refusal reads it.
            let platform_reads = calls.iter().filter(|c| c.contains("FROM platforms"));
            assert_eq!(platform_reads.count(), 0, "{route}: {calls:#?}");
            assert_eq!(statements(&calls), 5, "{route}: {calls:#?}");
        }
        if route == "login" {
            // The token's index row is written in the login's transaction, its record
            // after it, then the row is read again: no token record is read and one is
            // written. An account made after the index moved to SQLite has no
            // key-value list to look up.
            assert_eq!(
                count(&calls, "key-value get token:"),
                0,
                "{route}: {calls:#?}"
            );
            assert_eq!(
                count(&calls, "key-value get user-tokens:"),
                0,
                "{route}: {calls:#?}"
            );
            assert_eq!(count(&calls, "key-value set"), 1, "{route}: {calls:#?}");
            assert_eq!(transactions(&calls), 1, "{route}: {calls:#?}");
            assert_eq!(
                statements_in_transaction(route, &calls),
                3,
                "{route}: {calls:#?}"
            );
            let set = calls
                .iter()
                .position(|c| c.starts_with("key-value set token:"));
            let commit = calls.iter().position(|c| c == "sqlite execute COMMIT");
            assert!(
                commit < set,
                "{route} writes the record before the row: {calls:#?}"
            );
            assert_eq!(
                calls.last().map(String::as_str),
                Some("sqlite execute SELECT 1 FROM user_tokens WHERE hash = ?"),
                "{route}: {calls:#?}"
            );
        } else {
            assert_eq!(count(&calls, "key-value get"), 1, "{route}: {calls:#?}");
        }
    }
}

/// The statements `calls` runs under the write lock: from its `BEGIN` to its `COMMIT`.
fn statements_in_transaction(route: &str, calls: &[String]) -> usize {
    let begin = calls
        .iter()
        .position(|c| c.starts_with("sqlite execute BEGIN"))
        .unwrap_or_else(|| panic!("{route} has no transaction: {calls:#?}"));
    let commit = calls
        .iter()
        .position(|c| c == "sqlite execute COMMIT")
        .unwrap_or_else(|| panic!("{route} does not commit: {calls:#?}"));
    statements(&calls[begin + 1..commit])
}

#[test]
fn adding_many_units_holds_the_write_lock_for_as_few_statements_as_adding_one() {
    let app = e2e::app().start();
    let admin = accounts::admin(&app);
    let token = accounts::user(&app, "u@example.com");
    accounts::team(&app, &token, "backend");
    apps::create_app(&app, &token, "web");
    // With a unit quota, every unit also reserves an item against it.
    let quota = app
        .put("/quota/web")
        .bearer(&admin)
        .body("quota=500")
        .send();
    assert_eq!(quota.status, 200, "{}", quota.text());
    let add = |count: &str| {
        let calls = calls(&app, app.put("/apps/web/units").bearer(&token).body(count));
        assert_minimal("PUT /apps/:app/units", &calls);
        assert_eq!(transactions(&calls), 1, "{calls:#?}");
        statements_in_transaction("PUT /apps/:app/units", &calls)
    };
    let one = add("1");
    let hundred = add("100");
    assert_eq!(one, hundred, "adding 100 units vs 1");
    // The app's row with its quota, the unit counter, the items, the units, the audit.
    assert_eq!(one, 5);
    let quota = app.get("/quota/web").bearer(&admin).send();
    assert_eq!(quota.status, 200, "{}", quota.text());
    assert_eq!(quota.json()["items"].as_array().map(Vec::len), Some(102));
    let web = app.get("/apps/web").bearer(&token).send().json();
    assert_eq!(web["Units"].as_array().map(Vec::len), Some(102));

    // Removing: one transaction per unit, the audit event in the last one.
    for count in [1, 2] {
        let calls = calls(
            &app,
            app.delete("/apps/web/units")
                .bearer(&token)
                .body(count.to_string()),
        );
        assert_minimal("DELETE /apps/:app/units", &calls);
        assert_eq!(transactions(&calls), count, "{calls:#?}");
        let last_commit = calls
            .iter()
            .rposition(|c| c == "sqlite execute COMMIT")
            .unwrap_or(0);
        assert!(
            calls[last_commit..]
                .iter()
                .all(|c| !c.starts_with("sqlite execute INSERT")),
            "a write after the last commit: {calls:#?}"
        );
    }
    let events: Vec<String> = audit_events(&app)
        .into_iter()
        .filter(|(action, _)| action == "remove-units")
        .map(|(_, extra)| extra)
        .collect();
    assert_eq!(
        events,
        [
            r#"{"units":["web/101"]}"#,
            r#"{"units":["web/100","web/99"]}"#
        ]
    );
}

#[test]
fn a_registration_or_a_manifest_holds_the_write_lock_for_as_few_statements_with_many_entries() {
    let app = e2e::app().start();
    let admin = accounts::admin(&app);
    let register = |email: &str, keys: Vec<String>| {
        let keys: Vec<_> = keys.iter().map(|k| json!({ "content": k })).collect();
        let request = app.post("/users").json(&json!({
            "email": email,
            "password": accounts::PASSWORD,
            "keys": keys,
        }));
        statements_in_transaction("POST /users", &calls(&app, request))
    };
    let one = register("one@example.com", vec!["ssh-rsa ONE".into()]);
    // The most keys a user may hold, each sent twice: kept once each, in order.
    let keys: Vec<String> = (0..100).map(|n| format!("ssh-rsa K{n} \"q\"")).collect();
    let twice = keys.iter().chain(&keys).cloned().collect();
    assert_eq!(register("many@example.com", twice), one);
    let stored = app
        .get("/users/many@example.com/keys")
        .bearer(&admin)
        .send()
        .json();
    let stored = stored.as_object().expect("keys object");
    assert_eq!(stored.len(), 100);
    assert_eq!(stored["many@example.com-1"], keys[0].as_str());
    assert_eq!(stored["many@example.com-100"], keys[99].as_str());

    let create_service = |id: &str, endpoints: usize| {
        let mut manifest = format!("id: {id}\nendpoint:\n  production: http://127.0.0.1:9/\n");
        for n in 1..endpoints {
            manifest.push_str(&format!("  env{n}: http://127.0.0.1:9/{n}\n"));
        }
        let request = app.post("/services").bearer(&admin).body(manifest);
        statements_in_transaction("POST /services", &calls(&app, request))
    };
    assert_eq!(create_service("many", 300), create_service("one", 1));
}

/// The commits `calls` makes: its `COMMIT`s, and every write run outside a transaction
/// (SQLite commits it on its own). Each is one wait for the write lock, and one sync.
fn commits(calls: &[String]) -> usize {
    let mut in_transaction = false;
    let mut commits = 0;
    for call in calls {
        let Some(sql) = call.strip_prefix("sqlite execute ") else {
            continue;
        };
        let first = sql.split_whitespace().next().unwrap_or_default();
        match first {
            "BEGIN" => in_transaction = true,
            "COMMIT" => {
                in_transaction = false;
                commits += 1;
            }
            "ROLLBACK" => in_transaction = false,
            "INSERT" | "UPDATE" | "DELETE" | "REPLACE" if !in_transaction => commits += 1,
            _ => {}
        }
    }
    commits
}

#[test]
fn a_write_request_commits_once_when_no_outside_system_comes_between() {
    let app = e2e::app().start();
    let admin = accounts::admin(&app);
    let token = accounts::user(&app, "u@example.com");
    accounts::user(&app, "v@example.com");
    let leaving = accounts::user(&app, "x@example.com");
    accounts::team(&app, &token, "backend");
    for name in ["web", "worker"] {
        apps::create_app(&app, &token, name);
    }
    e2e::services::create_service(&app, &admin, "db", "http://127.0.0.1:9/");
    let manifest = e2e::services::manifest("db", "http://127.0.0.1:9/v2");
    let writes = [
        (
            "POST /platforms",
            app.post("/platforms")
                .bearer(&admin)
                .json(&json!({"name": "ruby"})),
        ),
        (
            "DELETE /platforms/:platform",
            app.delete("/platforms/ruby").bearer(&admin),
        ),
        (
            "PUT /teams/:team/:user",
            app.put("/teams/backend/v@example.com").bearer(&token),
        ),
        (
            "DELETE /teams/:team/:user",
            app.delete("/teams/backend/v@example.com").bearer(&token),
        ),
        (
            "POST /tokens",
            app.post("/tokens")
                .bearer(&admin)
                .json(&json!({"client": "web", "export": true})),
        ),
        (
            "POST /users",
            app.post("/users")
                .json(&json!({"email": "w@example.com", "password": accounts::PASSWORD})),
        ),
        (
            "POST /users/keys",
            app.post("/users/keys")
                .bearer(&token)
                .json(&json!({"key": "ssh-rsa K"})),
        ),
        (
            "DELETE /users/keys",
            app.delete("/users/keys")
                .bearer(&token)
                .json(&json!({"key": "ssh-rsa K"})),
        ),
        (
            "PUT /swap",
            app.put("/swap?app1=web&app2=worker").bearer(&token),
        ),
        (
            "POST /apps/:app/restart",
            app.post("/apps/web/restart").bearer(&token),
        ),
        (
            "PUT /apps/:app/units",
            app.put("/apps/web/units").bearer(&token).body("1"),
        ),
        (
            "DELETE /apps/:app/units",
            app.delete("/apps/web/units").bearer(&token).body("1"),
        ),
        (
            "POST /apps",
            app.post("/apps")
                .bearer(&token)
                .json(&json!({"name": "api", "platform": "python"})),
        ),
        (
            "POST /apps/:app/cname",
            app.post("/apps/web/cname")
                .bearer(&token)
                .json(&json!({"cname": "web.example.com"})),
        ),
        (
            "DELETE /apps/:app/cname",
            app.delete("/apps/web/cname").bearer(&token),
        ),
        (
            "PUT /services",
            app.put("/services").bearer(&admin).body(manifest),
        ),
        (
            "PUT /services/:service/doc",
            app.put("/services/db/doc").bearer(&admin).body("the docs"),
        ),
        (
            "PUT /services/:service/:team",
            app.put("/services/db/backend").bearer(&admin),
        ),
        (
            "DELETE /services/:service/:team",
            app.delete("/services/db/backend").bearer(&admin),
        ),
        (
            "DELETE /services/:service",
            app.delete("/services/db").bearer(&admin),
        ),
        (
            "PUT /users/password",
            app.put("/users/password")
                .bearer(&token)
                .json(&json!({"old": accounts::PASSWORD, "new": "654321"})),
        ),
        (
            "DELETE /apps/:app",
            app.delete("/apps/worker").bearer(&token),
        ),
        ("DELETE /users", app.delete("/users").bearer(&leaving)),
    ];
    let mut failures = Vec::new();
    for (route, request) in writes {
        let calls = calls(&app, request);
        if commits(&calls) != 1 {
            failures.push(format!("{route}: {} commits: {calls:#?}", commits(&calls)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Each of those routes still recorded its event, once.
    let recorded: Vec<String> = audit_events(&app).into_iter().map(|(a, _)| a).collect();
    for action in [
        "create-platform",
        "remove-platform",
        "add-user-to-team",
        "remove-user-from-team",
        "create-token",
        "add-key",
        "remove-key",
        "swap",
        "add-units",
        "remove-units",
        "set-cname",
        "unset-cname",
        "change-password",
        "remove-user",
    ] {
        let times = recorded.iter().filter(|a| *a == action).count();
        assert_eq!(times, 1, "{action} in {recorded:?}");
    }
    // api's creation, after the set-up's two.
    let creations = recorded.iter().filter(|a| *a == "create-app").count();
    assert_eq!(creations, 3, "{recorded:?}");
    // w@example.com's registration, after the set-up's four.
    let registrations = recorded.iter().filter(|a| *a == "create-user").count();
    assert_eq!(registrations, 5, "{recorded:?}");
}

/// Every audit event's action and extra, oldest first (the audit trail has no route).
fn audit_events(app: &App) -> Vec<(String, String)> {
    rusqlite::Connection::open(app.data_dir().join(".spin/sqlite_db.db"))
        .and_then(|db| {
            let mut query = db.prepare("SELECT action, extra FROM audit_events ORDER BY id")?;
            let rows = query.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
        .expect("read the audit events")
}
