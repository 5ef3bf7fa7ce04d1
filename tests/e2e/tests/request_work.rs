//! Per-request work (README.md, "Performance and footprint"): a request opens SQLite at
//! most once, checks the schema version once, and reads no key-value entry or variable
//! twice. Observed through the test host's call log.

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

#[track_caller]
fn assert_minimal(route: &str, calls: &[String]) {
    assert!(count(calls, "sqlite open") <= 1, "{route}: {calls:#?}");
    assert!(
        count(calls, "sqlite execute PRAGMA user_version") <= 1,
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
fn routes_open_sqlite_once_and_read_nothing_twice() {
    let app = e2e::app().start();
    let admin = accounts::admin(&app);
    let token = accounts::user(&app, "u@example.com");
    accounts::team(&app, &token, "backend");
    for name in ["web", "worker", "cron"] {
        apps::create_app(&app, &token, name);
    }
    let login = || {
        app.post("/users/u@example.com/tokens")
            .json(&json!({ "password": accounts::PASSWORD }))
    };
    // A few earlier logins: a login must not read every token the user holds.
    for _ in 0..3 {
        calls(&app, login());
    }

    let healthcheck = calls(&app, app.get("/healthcheck"));
    assert_eq!(
        healthcheck,
        [
            "sqlite open default",
            "sqlite execute PRAGMA user_version",
            "sqlite execute SELECT 1"
        ]
    );

    for (route, request) in [
        ("GET /apps", app.get("/apps").bearer(&token)),
        ("GET /apps as admin", app.get("/apps").bearer(&admin)),
        ("GET /apps/:app", app.get("/apps/web").bearer(&token)),
        (
            "POST /apps/:app/env",
            app.post("/apps/web/env")
                .bearer(&token)
                .json(&json!({"PORT": "8080"})),
        ),
        ("login", login()),
    ] {
        let calls = calls(&app, request);
        assert_eq!(count(&calls, "sqlite open"), 1, "{route}: {calls:#?}");
        assert_minimal(route, &calls);
        if route == "login" {
            // The newest token at the index front is live: one read, not one per token.
            assert_eq!(
                count(&calls, "key-value get token:"),
                1,
                "{route}: {calls:#?}"
            );
        } else {
            assert_eq!(count(&calls, "key-value get"), 1, "{route}: {calls:#?}");
        }
    }
}
