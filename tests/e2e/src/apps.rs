//! Shortcuts for tests of apps, platforms and quotas: creating apps, issuing app
//! tokens, and asserting an exact answer.

use crate::{App, Resp};
use serde_json::json;

/// `POST /apps` with platform `python`.
pub fn try_create_app(app: &App, token: &str, name: &str) -> Resp {
    app.post("/apps")
        .bearer(token)
        .json(&json!({"name": name, "platform": "python"}))
        .send()
}

/// [`try_create_app`]; panics unless it succeeds.
pub fn create_app(app: &App, token: &str, name: &str) {
    let resp = try_create_app(app, token, name);
    assert_eq!(resp.status, 200, "create app {name}: {}", resp.text());
}

/// `POST /tokens` as the admin `admin_token`: an app token for `client`.
pub fn app_token(app: &App, admin_token: &str, client: &str) -> String {
    let resp = app
        .post("/tokens")
        .bearer(admin_token)
        .json(&json!({ "client": client }))
        .send();
    assert_eq!(resp.status, 200, "app token for {client}: {}", resp.text());
    resp.json()["Token"].as_str().expect("Token").to_string()
}

/// Asserts the status and the exact body text of `resp`.
#[track_caller]
pub fn expect(resp: &Resp, status: u16, body: &str) {
    resp.assert_is(status, body);
}

/// The messages of `GET /apps/:app/log<query>` as `token`, oldest first.
pub fn log_messages(app: &App, token: &str, name: &str, query: &str) -> Vec<String> {
    let resp = app
        .get(&format!("/apps/{name}/log{query}"))
        .bearer(token)
        .send();
    assert_eq!(resp.status, 200, "log of {name}: {}", resp.text());
    resp.json()
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|e| e["Message"].as_str().expect("Message").to_string())
        .collect()
}

/// The setup most app tests share: the admin, then alice in team `backend` owning the app
/// `web`. Returns the admin's token and alice's.
pub fn alice_with_web(app: &App) -> (String, String) {
    let admin = crate::accounts::admin(app);
    let alice = crate::accounts::user(app, "alice@example.com");
    crate::accounts::team(app, &alice, "backend");
    create_app(app, &alice, "web");
    (admin, alice)
}
