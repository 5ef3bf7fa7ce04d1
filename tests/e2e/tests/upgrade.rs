//! A database written by the release before schema version 4 (names as keys, no ids)
//! keeps working after the upgrade, with its data, its users' tokens and its apps'
//! tokens; and the new rules hold on it at once (API.md 8.2: an account registered again
//! with an old email gets none of the old tokens).

use e2e::{accounts, get_url, App};
use serde_json::{json, Value};
use std::path::Path;

const SCHEMA_V3: &str = include_str!("../fixtures/schema-v3.sql");

fn sha256_hex(data: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A user token as that release stored it: the email and epoch, no user id.
const ALICE_TOKEN: &str = "a11ce000000000000000000000000000000000000000000000000000000000a1";
/// The app token in `web`'s `TSURU_APP_TOKEN`, bound to the app's serial (2).
const WEB_TOKEN: &str = "c0ffee";

/// Writes the fixture database and the key-value records of its tokens into `spin_dir`.
fn write_release_data(spin_dir: &Path) {
    std::fs::create_dir_all(spin_dir).expect("state dir");
    let db = rusqlite::Connection::open(spin_dir.join("sqlite_db.db")).expect("database");
    db.execute_batch(SCHEMA_V3).expect("the fixture database");
    let kv = rusqlite::Connection::open(spin_dir.join("sqlite_key_value.db")).expect("kv");
    kv.execute_batch(
        "CREATE TABLE IF NOT EXISTS spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, \
         value BLOB NOT NULL, PRIMARY KEY (store, key))",
    )
    .expect("kv table");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let records = [
        (
            ALICE_TOKEN,
            json!({"kind": "user", "email": "alice@example.com", "app": null, "app_serial": null,
                   "epoch": 1, "creation": now, "expires": now + 86_400}),
        ),
        (
            WEB_TOKEN,
            json!({"kind": "app", "email": null, "app": "web", "app_serial": 2,
                   "epoch": 0, "creation": now, "expires": now + 86_400}),
        ),
    ];
    for (token, record) in records {
        kv.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
            rusqlite::params![
                format!("token:{}", sha256_hex(token)),
                record.to_string().into_bytes()
            ],
        )
        .expect("token record");
    }
}

fn start_on_release_data() -> App {
    e2e::app()
        .configure(|config| write_release_data(&config.data_dir))
        .start()
}

#[test]
fn a_database_of_the_previous_release_keeps_working() {
    let app = start_on_release_data();
    // The old user token still works, and sees the app as it was.
    let info = app.get("/apps/web").bearer(ALICE_TOKEN).send();
    assert_eq!(info.status, 200, "{}", info.text());
    assert_eq!(
        info.json(),
        json!({"Name": "web", "Framework": "python", "Platform": "python",
               "Repository": "git@localhost:web.git", "State": "ready", "Ip": "10.0.0.10",
               "CName": "www.example.com", "Teams": ["backend"],
               "Units": [{"Name": "web/0", "Ip": "10.0.0.11", "State": "started"}],
               "Ready": true, "Owner": "alice@example.com", "Deploys": 0})
    );
    let env = app.get("/apps/web/env").bearer(ALICE_TOKEN).send().json();
    let shown: Vec<(String, String)> = env
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or("").into(),
                v["value"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(shown[0], ("PORT".into(), "8080".into()));
    assert_eq!(shown.len(), 4);
    // The app's own token still posts to its log, after the entry written before.
    app.post("/apps/web/log")
        .bearer(WEB_TOKEN)
        .json(&json!(["after the upgrade"]))
        .send()
        .assert_is(200, "");
    let log = e2e::apps::log_messages(&app, ALICE_TOKEN, "web", "?lines=10");
    assert_eq!(log, ["started", "after the upgrade"]);
    // Quota, keys and teams came along; the password still logs in.
    assert_eq!(
        app.get("/quota/alice@example.com")
            .bearer(ALICE_TOKEN)
            .send()
            .json(),
        json!({"items": ["web"], "available": 4, "limit": 5})
    );
    assert_eq!(
        app.get("/users/alice@example.com/keys")
            .bearer(ALICE_TOKEN)
            .send()
            .json(),
        json!({"alice@example.com-1": "ssh-rsa AAAA alice@laptop"})
    );
    let fresh = accounts::login(&app, "alice@example.com");
    assert_eq!(
        app.get("/teams").bearer(&fresh).send().json(),
        json!([{"name": "backend"}])
    );
    let admin = accounts::login(&app, "admin@example.com");
    assert_eq!(
        app.get("/apps")
            .bearer(&admin)
            .send()
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A new app gets an id after every serial the old release issued.
    accounts::team(&app, &admin, "ops");
    e2e::apps::create_app(&app, &admin, "api");
    assert_eq!(
        app.get("/apps").bearer(&admin).send().json()[0]["Name"],
        Value::from("api")
    );
    assert!(get_url(&app.url("/healthcheck")).status == 200);
}

#[test]
fn an_old_token_never_works_for_an_account_registered_again() {
    let app = start_on_release_data();
    // Alice leaves her team's app to a teammate, then removes her account.
    let admin = accounts::login(&app, "admin@example.com");
    accounts::add_to_team(&app, ALICE_TOKEN, "backend", "admin@example.com");
    app.delete("/users")
        .bearer(ALICE_TOKEN)
        .send()
        .assert_is(200, "");
    accounts::register(&app, "alice@example.com").assert_is(200, "");
    app.get("/apps")
        .bearer(ALICE_TOKEN)
        .send()
        .assert_is(401, "Invalid token\n");
    let alice = accounts::login(&app, "alice@example.com");
    assert_eq!(app.get("/apps").bearer(&alice).send().json(), json!([]));
    assert_eq!(
        app.get("/users/alice@example.com/keys")
            .bearer(&alice)
            .send()
            .json(),
        json!({})
    );
    assert_eq!(app.get("/apps").bearer(&admin).send().status, 200);
}

/// An account from before schema 6 kept its token index as a key-value list
/// (`user-tokens:<id>`), and migration 6 flags it: its next login moves the list into
/// SQLite, so a later revocation still deletes the records the list named.
#[test]
fn a_token_list_of_before_schema_6_is_moved_at_the_next_login() {
    let app = e2e::app().start();
    accounts::admin(&app);
    let email = "bob@example.com";
    let kept = accounts::user(&app, email);
    let old = accounts::login(&app, email);
    let old_hash = sha256_hex(&old);
    // The state such an account is in: its token listed in key-value, no row, flagged.
    app.sql(&format!(
        "DELETE FROM user_tokens WHERE hash = '{old_hash}'; \
         UPDATE users SET kv_token_list = 1 WHERE email = '{email}';"
    ));
    let kv = rusqlite::Connection::open(app.data_dir().join(".spin/sqlite_key_value.db"))
        .expect("the key-value store");
    let user_id: i64 = rusqlite::Connection::open(app.data_dir().join(".spin/sqlite_db.db"))
        .and_then(|db| {
            db.query_row("SELECT id FROM users WHERE email = ?1", [email], |r| {
                r.get(0)
            })
        })
        .expect("bob's id");
    let list_key = format!("user-tokens:{user_id}");
    kv.execute(
        "INSERT OR REPLACE INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
        rusqlite::params![list_key, json!([old_hash]).to_string().into_bytes()],
    )
    .expect("the old list");
    let listed = || -> i64 {
        kv.query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE key = ?1",
            [&list_key],
            |r| r.get(0),
        )
        .expect("read the store")
    };

    accounts::login(&app, email);
    assert_eq!(listed(), 0, "the list is moved at the login");
    let changed = app
        .put("/users/password")
        .bearer(&kept)
        .json(&json!({"old": accounts::PASSWORD, "new": "654321"}))
        .send();
    assert_eq!(changed.status, 200, "{}", changed.text());
    let old_record: i64 = kv
        .query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE key = ?1",
            [format!("token:{old_hash}")],
            |r| r.get(0),
        )
        .expect("read the store");
    assert_eq!(
        old_record, 0,
        "the listed token's record is deleted by the revocation"
    );
    assert_eq!(app.get("/teams").bearer(&old).send().status, 401);
    assert_eq!(app.get("/teams").bearer(&kept).send().status, 200);
}
