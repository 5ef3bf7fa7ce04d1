//! `users` component end to end (API.md 3.7, 1.3): registration, login, logout, password
//! change and reset, account removal, SSH keys, and the Gandalf and mailer calls.

use e2e::accounts::{admin, login, register, user, PASSWORD};
use e2e::{app, refused_url, FakeServer, Reply};
use serde_json::json;

#[test]
fn registration_checks_in_order() {
    let app = app().start();
    let cases = [
        (
            b"{not json".to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (b"".to_vec(), 400, "Invalid JSON in request body.\n"),
        (b"[]".to_vec(), 400, "Invalid JSON in request body.\n"),
        // An array is not an object, even one that lines up with the fields.
        (
            br#"["a@b.com", "123456"]"#.to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (
            br#"{"email": "a@b.com", "password": "123456", "keys": [["ssh-rsa K"]]}"#.to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (
            br#"{"email": 5, "password": "123456"}"#.to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (
            br#"{"email": "a@b.com", "password": "123456", "keys": [{"name": "x"}]}"#.to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (
            br#"{"email": "a@b.com", "password": "123456", "keys": [{"content": ""}]}"#.to_vec(),
            400,
            "Invalid JSON in request body.\n",
        ),
        (
            br#"{"email": "not-an-email", "password": "123456"}"#.to_vec(),
            400,
            "Invalid email.\n",
        ),
        (
            br#"{"password": "123456"}"#.to_vec(),
            400,
            "Invalid email.\n",
        ),
        (
            br#"{"email": "a@B.com", "password": "123456"}"#.to_vec(),
            400,
            "Invalid email.\n",
        ),
        (
            br#"{"email": "a@b.com", "password": "12345"}"#.to_vec(),
            400,
            "Password length should be least 6 characters and at most 50 characters.\n",
        ),
        (
            br#"{"email": "a@b.com"}"#.to_vec(),
            400,
            "Password length should be least 6 characters and at most 50 characters.\n",
        ),
    ];
    for (body, status, message) in cases {
        let resp = app.post("/users").body(body.clone()).send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (status, message),
            "body {:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let ok = register(&app, "a@b.com");
    assert_eq!(ok.status, 200);
    assert!(ok.body.is_empty());
    assert_eq!(ok.header("content-length"), Some("0"));
    let again = register(&app, "a@b.com");
    again.assert_is(409, "This email is already registered\n");
}

#[test]
fn first_user_becomes_admin_and_others_do_not() {
    let app = app().start();
    let admin = admin(&app);
    let teams = app.get("/teams").bearer(&admin).send();
    assert_eq!(teams.json(), json!([{"name": "admin"}]));
    let bob = user(&app, "bob@example.com");
    assert_eq!(app.get("/teams").bearer(&bob).send().json(), json!([]));
    // Admin-only route: admin passes, a plain user gets 403 Forbidden.
    let created = app
        .post("/tokens")
        .bearer(&admin)
        .json(&json!({"client": "hook"}))
        .send();
    assert_eq!(created.status, 200);
    let refused = app
        .post("/tokens")
        .bearer(&bob)
        .json(&json!({"client": "hook"}))
        .send();
    refused.assert_is(403, "Forbidden\n");
    // The admin team exists now, so its name is taken.
    let taken = app
        .post("/teams")
        .bearer(&bob)
        .json(&json!({"name": "admin"}))
        .send();
    taken.assert_is(409, "Team already exists\n");
}

#[test]
fn admin_email_decides_the_bootstrap_and_reserves_the_name() {
    let app = app()
        .var("admin_team", "ops")
        .var("admin_email", "boss@example.com")
        .start();
    let first = user(&app, "first@example.com");
    assert_eq!(app.get("/teams").bearer(&first).send().json(), json!([]));
    let reserved = app
        .post("/teams")
        .bearer(&first)
        .json(&json!({"name": "ops"}))
        .send();
    reserved.assert_is(403, "Team name \"ops\" is reserved.\n");
    let boss = user(&app, "boss@example.com");
    assert_eq!(
        app.get("/teams").bearer(&boss).send().json(),
        json!([{"name": "ops"}])
    );
    assert_eq!(
        app.post("/tokens")
            .bearer(&boss)
            .json(&json!({"client": "x"}))
            .send()
            .status,
        200
    );
}

#[test]
fn closed_registration_needs_an_admin_once_a_user_exists() {
    let app = app().var("user_registration", "false").start();
    // The first registration stays open, or no admin could ever exist.
    let admin = admin(&app);
    let body = json!({"email": "new@example.com", "password": PASSWORD});
    let anonymous = app.post("/users").json(&body).send();
    anonymous.assert_is(403, "User registration is disabled.\n");
    let bad = app.post("/users").bearer("nope").json(&body).send();
    bad.assert_is(401, "Invalid token\n");
    let (token, _) = app_token(&app, &admin);
    let as_app = app.post("/users").bearer(&token).json(&body).send();
    assert_eq!(as_app.status, 403);
    assert_eq!(
        app.post("/users").bearer(&admin).json(&body).send().status,
        200
    );
    let plain = login(&app, "new@example.com");
    let by_user = app
        .post("/users")
        .bearer(&plain)
        .json(&json!({"email": "x@example.com", "password": PASSWORD}))
        .send();
    by_user.assert_is(403, "User registration is disabled.\n");
}

#[test]
fn invalid_variable_values_are_reported_by_name() {
    let app = app().var("user_registration", "perhaps").start();
    let resp = register(&app, "a@b.com");
    resp.assert_is(500, "Invalid value for variable \"user_registration\"\n");
}

fn app_token(app: &e2e::App, admin: &str) -> (String, serde_json::Value) {
    let resp = app
        .post("/tokens")
        .bearer(admin)
        .json(&json!({"client": "some-client"}))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    (body["Token"].as_str().expect("Token").to_string(), body)
}

#[test]
fn login_checks_in_order() {
    let app = app().start();
    register(&app, "a@b.com");
    let cases: [(&str, &[u8], u16, &str); 8] = [
        ("a@b.com", b"{\"password\": 123456}", 400, "Invalid JSON\n"),
        ("a@b.com", b"nope", 400, "Invalid JSON\n"),
        (
            "a@b.com",
            b"{}",
            400,
            "You must provide a password to login\n",
        ),
        (
            "not-an-email",
            b"{\"password\": \"123456\"}",
            400,
            "Invalid email.\n",
        ),
        (
            "who@b.com",
            b"{\"password\": \"123456\"}",
            404,
            "User not found\n",
        ),
        (
            "a@b.com",
            b"{\"password\": \"\"}",
            400,
            "Password length should be least 6 characters and at most 50 characters.\n",
        ),
        (
            "a@b.com",
            b"{\"password\": \"1234\"}",
            400,
            "Password length should be least 6 characters and at most 50 characters.\n",
        ),
        (
            "a@b.com",
            b"{\"password\": \"654321\"}",
            401,
            "Authentication failed, wrong password.\n",
        ),
    ];
    for (email, body, status, message) in cases {
        let resp = app
            .post(&format!("/users/{email}/tokens"))
            .body(body.to_vec())
            .send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (status, message),
            "{email} {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let resp = app
        .post("/users/a@b.com/tokens")
        .json(&json!({"password": PASSWORD}))
        .send();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let token = resp.json()["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // Percent-encoded emails are decoded.
    assert_eq!(
        app.post("/users/a%40b.com/tokens")
            .json(&json!({"password": PASSWORD}))
            .send()
            .status,
        200
    );
}

#[test]
fn authorization_header_errors() {
    let app = app().start();
    let token = admin(&app);
    let missing = app.get("/teams").send();
    missing.assert_is(401, "You must provide the Authorization header\n");
    let empty = app.get("/teams").header("Authorization", "  ").send();
    assert_eq!(empty.text(), "You must provide the Authorization header\n");
    for value in [
        token.clone(),
        format!("bearer {token} extra"),
        "bearer unknown".to_string(),
    ] {
        let resp = app.get("/teams").header("Authorization", &value).send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (401, "Invalid token\n"),
            "{value}"
        );
    }
    // The scheme word is ignored, whatever it is.
    assert_eq!(
        app.get("/teams")
            .header("Authorization", &format!("Token {token}"))
            .send()
            .status,
        200
    );
    let (app_token, _) = app_token(&app, &token);
    let as_app = app.get("/teams").bearer(&app_token).send();
    as_app.assert_is(403, "This action requires a user token\n");
}

#[test]
fn logout_revokes_only_the_presented_token() {
    let app = app().start();
    let admin = admin(&app);
    let second = login(&app, "admin@example.com");
    assert_eq!(app.delete("/users/tokens").send().status, 401);
    let out = app.delete("/users/tokens").bearer(&admin).send();
    assert_eq!(out.status, 200);
    assert!(out.body.is_empty());
    assert_eq!(
        app.get("/teams").bearer(&admin).send().text(),
        "Invalid token\n"
    );
    assert_eq!(app.get("/teams").bearer(&second).send().status, 200);
    // Any valid token may log out, app tokens included.
    let (app_token, _) = app_token(&app, &second);
    assert_eq!(
        app.delete("/users/tokens").bearer(&app_token).send().status,
        200
    );
    assert_eq!(
        app.delete("/users/tokens").bearer(&app_token).send().status,
        401
    );
}

#[test]
fn invalid_token_lifetime_is_reported_on_login() {
    let app = app().var("token_expire_days", "0").start();
    assert_eq!(register(&app, "a@b.com").status, 200);
    let login = app
        .post("/users/a@b.com/tokens")
        .json(&json!({"password": PASSWORD}))
        .send();
    login.assert_is(500, "Invalid value for variable \"token_expire_days\"\n");
}

#[test]
fn password_change_keeps_the_caller_and_revokes_the_rest() {
    let app = app().start();
    let token = admin(&app);
    let other_session = login(&app, "admin@example.com");
    let cases: [(&[u8], u16, &str); 6] = [
        (b"nope", 400, "Invalid JSON.\n"),
        (b"{\"old\": 1, \"new\": \"x\"}", 400, "Invalid JSON.\n"),
        (
            b"{\"old\": \"123456\"}",
            400,
            "Both the old and the new passwords are required.\n",
        ),
        (
            b"{\"old\": \"\", \"new\": \"654321\"}",
            400,
            "Both the old and the new passwords are required.\n",
        ),
        (
            b"{\"old\": \"999999\", \"new\": \"654321\"}",
            403,
            "The given password didn't match the user's current password.\n",
        ),
        (
            b"{\"old\": \"123456\", \"new\": \"6543\"}",
            400,
            "Password length should be least 6 characters and at most 50 characters.\n",
        ),
    ];
    for (body, status, message) in cases {
        let resp = app
            .put("/users/password")
            .bearer(&token)
            .body(body.to_vec())
            .send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (status, message),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let changed = app
        .put("/users/password")
        .bearer(&token)
        .json(&json!({"old": PASSWORD, "new": "654321"}))
        .send();
    assert_eq!(changed.status, 200);
    assert_eq!(
        app.get("/teams").bearer(&token).send().status,
        200,
        "the caller stays logged in"
    );
    assert_eq!(
        app.get("/teams").bearer(&other_session).send().text(),
        "Invalid token\n"
    );
    let old = app
        .post("/users/admin@example.com/tokens")
        .json(&json!({"password": PASSWORD}))
        .send();
    assert_eq!(old.status, 401);
    let new = app
        .post("/users/admin@example.com/tokens")
        .json(&json!({"password": "654321"}))
        .send();
    assert_eq!(new.status, 200);
}

#[test]
fn removing_a_user() {
    let app = app().start();
    let admin = admin(&app);
    let bob = user(&app, "bob@example.com");
    e2e::accounts::team(&app, &bob, "backend");
    let last = app.delete("/users").bearer(&bob).send();
    last.assert_is(403, "This user is the last member of the team \"backend\", so it cannot be removed.\n\nPlease remove the team, then remove the user.\n");
    e2e::accounts::add_to_team(&app, &bob, "backend", "admin@example.com");
    let second_bob = login(&app, "bob@example.com");
    assert_eq!(app.delete("/users").bearer(&bob).send().status, 200);
    for token in [&bob, &second_bob] {
        assert_eq!(
            app.get("/teams").bearer(token).send().text(),
            "Invalid token\n"
        );
    }
    let gone = app
        .post("/users/bob@example.com/tokens")
        .json(&json!({"password": PASSWORD}))
        .send();
    assert_eq!(gone.status, 404);
    let team = app.get("/teams/backend").bearer(&admin).send();
    assert_eq!(
        team.json(),
        json!({"name": "backend", "users": ["admin@example.com"]})
    );
    // The email can be registered again, as a new account.
    assert_eq!(register(&app, "bob@example.com").status, 200);
}

#[test]
fn ssh_keys() {
    let app = app().start();
    let admin = admin(&app);
    let bob = user(&app, "bob@example.com");
    let cases: [(&[u8], u16, &str); 4] = [
        (b"nope", 400, "Invalid JSON\n"),
        (b"{\"key\": 3}", 400, "Invalid JSON\n"),
        (b"{}", 400, "Missing key\n"),
        (b"{\"key\": \"\"}", 400, "Missing key\n"),
    ];
    for (body, status, message) in cases {
        for method in ["POST", "DELETE"] {
            let resp = app
                .request(method, "/users/keys")
                .bearer(&bob)
                .body(body.to_vec())
                .send();
            assert_eq!(
                (resp.status, resp.text().as_str()),
                (status, message),
                "{method} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
    let key = json!({"key": "ssh-rsa AAAA bob@laptop"});
    assert_eq!(
        app.post("/users/keys")
            .bearer(&bob)
            .json(&key)
            .send()
            .status,
        200
    );
    let dup = app.post("/users/keys").bearer(&bob).json(&key).send();
    dup.assert_is(409, "User already has this key\n");
    let mine = app.get("/users/bob@example.com/keys").bearer(&bob).send();
    assert_eq!(
        mine.json(),
        json!({"bob@example.com-1": "ssh-rsa AAAA bob@laptop"})
    );
    let other = app.get("/users/admin@example.com/keys").bearer(&bob).send();
    other.assert_is(403, "You do not have access to this user's keys\n");
    assert_eq!(
        app.get("/users/bob@example.com/keys")
            .bearer(&admin)
            .send()
            .json(),
        mine.json()
    );
    let unknown = app.get("/users/who@example.com/keys").bearer(&admin).send();
    unknown.assert_is(404, "User not found\n");
    let missing = app
        .delete("/users/keys")
        .bearer(&bob)
        .json(&json!({"key": "ssh-rsa other"}))
        .send();
    missing.assert_is(404, "User does not have this key\n");
    assert_eq!(
        app.delete("/users/keys")
            .bearer(&bob)
            .json(&key)
            .send()
            .status,
        200
    );
    assert_eq!(
        app.get("/users/bob@example.com/keys")
            .bearer(&bob)
            .send()
            .json(),
        json!({})
    );
    // Key names come from a counter that never goes back.
    assert_eq!(
        app.post("/users/keys")
            .bearer(&bob)
            .json(&key)
            .send()
            .status,
        200
    );
    assert_eq!(
        app.get("/users/bob@example.com/keys")
            .bearer(&bob)
            .send()
            .json(),
        json!({"bob@example.com-2": "ssh-rsa AAAA bob@laptop"})
    );
}

#[test]
fn gandalf_receives_user_and_key_calls() {
    let gandalf = FakeServer::start();
    let app = app().var("gandalf_url", &gandalf.url()).start();
    admin(&app);
    gandalf.clear();
    let reg = app
        .post("/users")
        .json(&json!({"email": "a@b.com", "password": PASSWORD, "keys": [{"content": "ssh-rsa K1", "name": "ignored"}]}))
        .send();
    assert_eq!(reg.status, 200, "{}", reg.text());
    let calls = gandalf.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path()),
        ("POST", "/user")
    );
    assert_eq!(calls[0].header("content-type"), Some("application/json"));
    assert_eq!(
        calls[0].json(),
        json!({"name": "a@b.com", "keys": {"a@b.com-1": "ssh-rsa K1"}})
    );
    let token = login(&app, "a@b.com");
    gandalf.clear();
    assert_eq!(
        app.post("/users/keys")
            .bearer(&token)
            .json(&json!({"key": "ssh-rsa K2"}))
            .send()
            .status,
        200
    );
    assert_eq!(
        app.delete("/users/keys")
            .bearer(&token)
            .json(&json!({"key": "ssh-rsa K1"}))
            .send()
            .status,
        200
    );
    let calls = gandalf.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path()),
        ("POST", "/user/a%40b.com/key")
    );
    assert_eq!(calls[0].json(), json!({"a@b.com-2": "ssh-rsa K2"}));
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path()),
        ("DELETE", "/user/a%40b.com/key/a%40b.com-1")
    );
    gandalf.clear();
    e2e::accounts::team(&app, &token, "solo");
    assert_eq!(app.delete("/teams/solo").bearer(&token).send().status, 200);
    assert_eq!(app.delete("/users").bearer(&token).send().status, 200);
    let calls = gandalf.requests();
    assert_eq!(calls.len(), 1, "no apps, so no revoke call: {calls:?}");
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path()),
        ("DELETE", "/user/a%40b.com")
    );
}

#[test]
fn gandalf_failures_roll_back() {
    let gandalf = FakeServer::start();
    let app = app().var("gandalf_url", &gandalf.url()).start();
    gandalf.on_once("POST", "/user", Reply::text(500, "  boom  \n"));
    let failed = register(&app, "a@b.com");
    failed.assert_is(502, "Failed to create user in the git server: boom\n");
    // Nothing was kept: not the user, and not the admin team the first user would create.
    assert_eq!(
        app.post("/users/a@b.com/tokens")
            .json(&json!({"password": PASSWORD}))
            .send()
            .status,
        404
    );
    let token = user(&app, "a@b.com");
    assert_eq!(
        app.get("/teams").bearer(&token).send().json(),
        json!([{"name": "admin"}])
    );

    gandalf.on_once("POST", "/user/a%40b.com/key", Reply::text(500, "no key"));
    let key = json!({"key": "ssh-rsa K"});
    let add = app.post("/users/keys").bearer(&token).json(&key).send();
    add.assert_is(502, "Failed to add key to git server: no key\n");
    assert_eq!(
        app.get("/users/a@b.com/keys").bearer(&token).send().json(),
        json!({})
    );
    assert_eq!(
        app.post("/users/keys")
            .bearer(&token)
            .json(&key)
            .send()
            .status,
        200
    );
    gandalf.on_once(
        "DELETE",
        "/user/a%40b.com/key/a%40b.com-2",
        Reply::text(500, "stuck"),
    );
    let remove = app.delete("/users/keys").bearer(&token).json(&key).send();
    remove.assert_is(502, "Failed to remove the key from git server: stuck\n");
    assert_eq!(
        app.get("/users/a@b.com/keys").bearer(&token).send().json(),
        json!({"a@b.com-2": "ssh-rsa K"})
    );

    let bob = user(&app, "bob@example.com");
    gandalf.on_once(
        "DELETE",
        "/user/bob%40example.com",
        Reply::text(503, "later"),
    );
    let removal = app.delete("/users").bearer(&bob).send();
    assert_eq!(
        (removal.status, removal.text().as_str()),
        (
            502,
            "Failed to remove the user from the git server: later\n"
        )
    );
    assert_eq!(
        app.get("/teams").bearer(&bob).send().status,
        200,
        "the account is still there"
    );
}

#[test]
fn gandalf_down_is_reported() {
    let app = app().var("gandalf_url", &refused_url()).start();
    let resp = register(&app, "a@b.com");
    resp.assert_is(502, "Failed to create user in the git server: Failed to connect to Gandalf server, it's probably down.\n");
}

fn extract_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {text:?}"))
        + marker.len();
    text[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn password_reset_by_mail() {
    let mailer = FakeServer::start();
    let app = app()
        .var("mailer_url", &format!("{}/mail", mailer.url()))
        .start();
    let old_token = user(&app, "a@b.com");
    let bad = app.post("/users/nope/password").send();
    bad.assert_is(400, "Invalid email.\n");
    let unknown = app.post("/users/who@b.com/password").send();
    unknown.assert_is(404, "User not found\n");
    assert!(mailer.requests().is_empty());

    assert_eq!(app.post("/users/a@b.com/password").send().status, 200);
    let mail = &mailer.requests()[0];
    assert_eq!((mail.method.as_str(), mail.path()), ("POST", "/mail"));
    let body = mail.json();
    assert_eq!(body["to"], "a@b.com");
    assert_eq!(body["subject"], "[Tsuru] Password reset process");
    let reset = extract_after(body["body"].as_str().unwrap(), "reset it: ");
    assert_eq!(reset.len(), 64);

    let wrong = app.post("/users/a@b.com/password?token=abc").send();
    wrong.assert_is(403, "Invalid token\n");
    register(&app, "c@b.com");
    let other_user = app
        .post(&format!("/users/c@b.com/password?token={reset}"))
        .send();
    assert_eq!(other_user.status, 403);

    // A mailer failure changes nothing: the old password and tokens still work.
    mailer.on_once("POST", "/mail", Reply::text(500, "smtp down"));
    let failed = app
        .post(&format!("/users/a@b.com/password?token={reset}"))
        .send();
    failed.assert_is(502, "Failed to send e-mail: smtp down\n");
    assert_eq!(app.get("/teams").bearer(&old_token).send().status, 200);

    mailer.clear();
    assert_eq!(
        app.post(&format!("/users/a@b.com/password?token={reset}"))
            .send()
            .status,
        200
    );
    let mail = mailer.requests()[0].json();
    assert_eq!(mail["subject"], "[Tsuru] Password successfuly redefined");
    let new_password = extract_after(mail["body"].as_str().unwrap(), "password is: ");
    assert_eq!(new_password.len(), 12);
    assert_eq!(
        app.get("/teams").bearer(&old_token).send().text(),
        "Invalid token\n"
    );
    let login = app
        .post("/users/a@b.com/tokens")
        .json(&json!({"password": new_password}))
        .send();
    assert_eq!(login.status, 200);
    let reused = app
        .post(&format!("/users/a@b.com/password?token={reset}"))
        .send();
    assert_eq!(reused.status, 403, "a reset token works once");
}

#[test]
fn mailer_failure_on_first_step_leaves_no_token() {
    let mailer = FakeServer::start();
    mailer.fallback(Reply::text(500, "nope"));
    let app = app().var("mailer_url", &mailer.url()).start();
    register(&app, "a@b.com");
    let resp = app.post("/users/a@b.com/password").send();
    resp.assert_is(502, "Failed to send e-mail: nope\n");
    let sent = mailer.requests()[0].json();
    let reset = extract_after(sent["body"].as_str().unwrap(), "reset it: ");
    mailer.fallback(Reply::ok());
    assert_eq!(
        app.post(&format!("/users/a@b.com/password?token={reset}"))
            .send()
            .status,
        403
    );
}

#[test]
fn concurrent_registrations_of_one_email() {
    let app = app().start();
    admin(&app);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| register(&app, "same@example.com").status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![200, 409], "{statuses:?}");
}

#[test]
fn oversized_and_malformed_bodies_are_client_errors() {
    let app = app().start();
    let token = admin(&app);
    let big = vec![b'x'; 2 * 1024 * 1024];
    for (method, path, auth) in [
        ("POST", "/users", false),
        ("POST", "/users/a@b.com/tokens", false),
        ("PUT", "/users/password", true),
        ("POST", "/users/keys", true),
        ("POST", "/teams", true),
        ("POST", "/tokens", true),
    ] {
        let mut req = app.request(method, path).body(big.clone());
        if auth {
            req = req.bearer(&token);
        }
        let resp = req.send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (413, "Request body too large\n"),
            "{method} {path}"
        );
        for body in [&b""[..], b"{", b"null", b"[1,2]", b"\"text\"", b"{\"email\": [], \"password\": {}, \"name\": 1, \"client\": 2, \"key\": [], \"old\": 1}"] {
            let mut req = app.request(method, path).body(body.to_vec());
            if auth {
                req = req.bearer(&token);
            }
            let resp = req.send();
            assert!((400..500).contains(&resp.status), "{method} {path} {:?}: {} {}", String::from_utf8_lossy(body), resp.status, resp.text());
            assert!(resp.text().ends_with('\n') && resp.text().len() > 1);
        }
    }
}

#[test]
fn own_account_routes_need_a_user_token() {
    let app = app().start();
    let admin = admin(&app);
    let (app_token, _) = app_token(&app, &admin);
    let routes: [(&str, &str, serde_json::Value); 5] = [
        (
            "PUT",
            "/users/password",
            json!({"old": PASSWORD, "new": "654321"}),
        ),
        ("DELETE", "/users", json!({})),
        ("POST", "/users/keys", json!({"key": "ssh-rsa K"})),
        ("DELETE", "/users/keys", json!({"key": "ssh-rsa K"})),
        ("GET", "/users/admin@example.com/keys", json!({})),
    ];
    for (method, path, body) in routes {
        let anonymous = app.request(method, path).json(&body).send();
        assert_eq!(
            (anonymous.status, anonymous.text().as_str()),
            (401, "You must provide the Authorization header\n"),
            "{method} {path}"
        );
        let as_app = app
            .request(method, path)
            .bearer(&app_token)
            .json(&body)
            .send();
        assert_eq!(
            (as_app.status, as_app.text().as_str()),
            (403, "This action requires a user token\n"),
            "{method} {path}"
        );
    }
    // Logout takes any token but needs one.
    let r = app.delete("/users/tokens").send();
    r.assert_is(401, "You must provide the Authorization header\n");
    // A user in no team manages their own account.
    let loner = user(&app, "loner@example.com");
    let key = json!({"key": "ssh-rsa L"});
    assert_eq!(
        app.post("/users/keys")
            .bearer(&loner)
            .json(&key)
            .send()
            .status,
        200
    );
    assert_eq!(
        app.get("/users/loner@example.com/keys")
            .bearer(&loner)
            .send()
            .status,
        200
    );
    assert_eq!(app.delete("/users").bearer(&loner).send().status, 200);
}

#[test]
fn of_two_racing_password_changes_from_one_old_password_exactly_one_wins() {
    let app = app().start();
    admin(&app);
    let tokens = [
        user(&app, "bob@example.com"),
        login(&app, "bob@example.com"),
    ];
    let change = |token: &str, new: &str| {
        app.put("/users/password")
            .bearer(token)
            .json(&json!({"old": PASSWORD, "new": new}))
    };
    // Both check the old password (slow hashing) before either writes.
    let answers = e2e::races::race(vec![
        e2e::races::side("to 111111", [change(&tokens[0], "111111")]),
        e2e::races::side("to 222222", [change(&tokens[1], "222222")]),
    ]);
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.statuses()[0]).collect();
    let winner = if statuses[0] == 200 {
        "111111"
    } else {
        "222222"
    };
    statuses.sort();
    assert_eq!(statuses, [200, 403], "{answers:#?}");
    let loser = answers
        .iter()
        .find(|a| a.statuses()[0] == 403)
        .expect("a loser");
    loser.responses[0].assert_is(
        403,
        "The given password didn't match the user's current password.\n",
    );
    for (password, status) in [(winner, 200), (PASSWORD, 401)] {
        let resp = app
            .post("/users/bob@example.com/tokens")
            .json(&json!({ "password": password }))
            .send();
        assert_eq!(
            resp.status,
            status,
            "login with {password}: {}",
            resp.text()
        );
    }
}

/// The key-value token records that name `email` (the store has no route; an operator
/// would look at its file).
fn token_records_of(app: &e2e::App, email: &str) -> i64 {
    rusqlite::Connection::open(app.data_dir().join(".spin/sqlite_key_value.db"))
        .and_then(|kv| {
            kv.query_row(
                "SELECT COUNT(*) FROM spin_key_value WHERE key LIKE 'token:%' \
                 AND CAST(value AS TEXT) LIKE ?",
                [format!("%\"email\":\"{email}\"%")],
                |row| row.get(0),
            )
        })
        .expect("read the key-value store")
}

/// Concurrent logins of one account each index their token, so a password change,
/// a password reset or the account's removal deletes every token record it revokes:
/// none is left in the key-value store, working for no one and deleted by nothing.
#[test]
fn tokens_of_concurrent_logins_are_all_deleted_when_revoked() {
    let mailer = FakeServer::start();
    mailer.fallback(Reply::text(200, ""));
    let app = app().var("mailer_url", &mailer.url()).start();
    admin(&app);
    let email = "bob@example.com";
    let kept = user(&app, email);
    let logins = |password: &str| {
        let answers = e2e::races::parallel(12, |_| {
            app.post(&format!("/users/{email}/tokens"))
                .json(&json!({ "password": password }))
        });
        for resp in &answers {
            assert_eq!(resp.status, 200, "login: {}", resp.text());
        }
        answers
    };
    // Enough rounds that, with the index a key-value list each login rewrote, two
    // logins would rewrite it at once and one token drop out of it.
    for _ in 0..2 {
        logins(PASSWORD);
    }
    assert_eq!(token_records_of(&app, email), 1 + 2 * 12);

    // A password change keeps only the presented token.
    let changed = app
        .put("/users/password")
        .bearer(&kept)
        .json(&json!({"old": PASSWORD, "new": "654321"}))
        .send();
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(token_records_of(&app, email), 1);

    // A password reset keeps none.
    logins("654321");
    let reset = app.post(&format!("/users/{email}/password")).send();
    assert_eq!(reset.status, 200, "{}", reset.text());
    let mail = |i: usize| {
        mailer.requests()[i].json()["body"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let token = extract_after(&mail(0), "reset it: ");
    let done = app
        .post(&format!("/users/{email}/password?token={token}"))
        .send();
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(token_records_of(&app, email), 0);

    // Nor does the account's removal.
    let new_password = extract_after(&mail(1), "password is: ");
    let after_reset: Vec<String> = logins(&new_password)
        .iter()
        .map(|resp| resp.json()["token"].as_str().expect("a token").to_string())
        .collect();
    assert_eq!(token_records_of(&app, email), 12);
    let removed = app.delete("/users").bearer(&after_reset[0]).send();
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(token_records_of(&app, email), 0);
}
