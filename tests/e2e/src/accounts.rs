//! Shortcuts every end-to-end test uses to set up callers: registration, login, teams.
//! They go through the public routes, exactly as a client would.

use crate::{App, Resp};
use serde_json::json;

/// The password every test user gets.
pub const PASSWORD: &str = "123456";

/// `POST /users` with [`PASSWORD`].
pub fn register(app: &App, email: &str) -> Resp {
    app.post("/users")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
}

/// `POST /users/:email/tokens`; panics unless it succeeds. Returns the token.
pub fn login(app: &App, email: &str) -> String {
    let resp = app
        .post(&format!("/users/{email}/tokens"))
        .json(&json!({ "password": PASSWORD }))
        .send();
    assert_eq!(resp.status, 200, "login {email}: {}", resp.text());
    resp.json()["token"]
        .as_str()
        .expect("token in login reply")
        .to_string()
}

/// Registers and logs in; returns the user's token.
pub fn user(app: &App, email: &str) -> String {
    let resp = register(app, email);
    assert_eq!(resp.status, 200, "register {email}: {}", resp.text());
    login(app, email)
}

/// The first user ever registered is the admin (API.md 1.3); returns its token.
pub fn admin(app: &App) -> String {
    user(app, "admin@example.com")
}

/// `POST /teams` as `token`; panics unless it succeeds.
pub fn team(app: &App, token: &str, name: &str) {
    let resp = app
        .post("/teams")
        .bearer(token)
        .json(&json!({ "name": name }))
        .send();
    assert_eq!(resp.status, 200, "create team {name}: {}", resp.text());
}

/// `PUT /teams/:team/:user` as `token`; panics unless it succeeds.
pub fn add_to_team(app: &App, token: &str, team: &str, email: &str) {
    let resp = app
        .put(&format!("/teams/{team}/{email}"))
        .bearer(token)
        .send();
    assert_eq!(resp.status, 200, "add {email} to {team}: {}", resp.text());
}
