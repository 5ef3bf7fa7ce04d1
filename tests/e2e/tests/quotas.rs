//! `quotas` component end to end (API.md 3.4), its permission-matrix rows, and quota
//! enforcement on app creation and unit changes.

use e2e::accounts::{admin, team, user};
use e2e::app;
use e2e::apps::{app_token, create_app, expect, try_create_app};
use serde_json::json;

const NO_ACCESS: &str = "You do not have access to this quota\n";

#[test]
fn reading_quotas() {
    let app = app().var("quota_apps_per_user", "3").start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    let carol = user(&app, "carol@example.com");
    create_app(&app, &alice, "web");
    create_app(&app, &bob, "front");
    let web_token = app_token(&app, &admin, "web");
    let front_token = app_token(&app, &admin, "front");
    let system_token = app_token(&app, &admin, "nope");
    let read = |token: &str, owner: &str| app.get(&format!("/quota/{owner}")).bearer(token).send();

    let alice_quota = json!({"items": ["web"], "available": 2, "limit": 3});
    for token in [&alice, &admin] {
        let resp = read(token, "alice@example.com");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.json(), alice_quota);
    }
    for token in [&bob, &carol, &web_token] {
        expect(&read(token, "alice@example.com"), 403, NO_ACCESS);
    }
    assert_eq!(
        read(&carol, "carol@example.com").json(),
        json!({"items": [], "available": 3, "limit": 3})
    );
    expect(
        &app.get("/quota/web").send(),
        401,
        "You must provide the Authorization header\n",
    );

    // An app without a quota row is unlimited; its items are its units.
    let unlimited = json!({"items": ["web-0"], "available": -1, "limit": -1});
    for token in [&alice, &admin, &web_token] {
        assert_eq!(read(token, "web").json(), unlimited);
    }
    for token in [&bob, &carol, &front_token, &system_token] {
        expect(&read(token, "web"), 403, NO_ACCESS);
    }

    // Unknown owners: 403 for whoever may not read them, else 404.
    expect(&read(&alice, "nope@example.com"), 403, NO_ACCESS);
    expect(&read(&alice, "nope"), 403, NO_ACCESS);
    expect(&read(&admin, "nope@example.com"), 404, "Quota not found\n");
    expect(&read(&admin, "nope"), 404, "Quota not found\n");
    expect(&read(&system_token, "nope"), 404, "Quota not found\n");
}

#[test]
fn setting_quotas_and_their_enforcement() {
    let app = app().start();
    let (admin, alice) = e2e::apps::alice_with_web(&app);
    let token = app_token(&app, &admin, "web");
    let read = |owner: &str| {
        app.get(&format!("/quota/{owner}"))
            .bearer(&admin)
            .send()
            .json()
    };
    let set = |target: &str, body: &str| app.put(target).bearer(&admin).body(body).send();
    let alice_path = "/quota/alice@example.com";

    assert_eq!(
        read("alice@example.com"),
        json!({"items": ["web"], "available": -1, "limit": -1})
    );
    expect(
        &app.put(alice_path).body("quota=1").send(),
        401,
        "You must provide the Authorization header\n",
    );
    expect(
        &app.put(alice_path).bearer(&alice).body("quota=1").send(),
        403,
        "Forbidden\n",
    );
    expect(
        &app.put(alice_path).bearer(&token).body("quota=1").send(),
        403,
        "Forbidden\n",
    );
    for body in [
        "",
        "quota=",
        "quota=abc",
        "quota=-1",
        "quota=1.5",
        "quota=4294967296",
        "limit=1",
    ] {
        expect(&set(alice_path, body), 400, "invalid parameter\n");
    }
    expect(
        &set("/quota/nope@example.com", "quota=1"),
        404,
        "Quota not found\n",
    );
    expect(&set("/quota/nope", "quota=1"), 404, "Quota not found\n");

    let changed = set(alice_path, "quota=1");
    expect(&changed, 200, "Quota changed sucessfully.");
    assert_eq!(
        changed.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        read("alice@example.com"),
        json!({"items": ["web"], "available": 0, "limit": 1})
    );
    expect(
        &try_create_app(&app, &alice, "api"),
        403,
        "Quota exceeded\n",
    );
    // Duplicate names are detected before quotas.
    expect(
        &try_create_app(&app, &alice, "web"),
        409,
        "Tsuru failed to create the app \"web\": there is already an app with this name.\n",
    );
    // The query parameter counts when the body has none; the body wins otherwise.
    expect(
        &set(&format!("{alice_path}?quota=2"), ""),
        200,
        "Quota changed sucessfully.",
    );
    create_app(&app, &alice, "api");
    assert_eq!(
        read("alice@example.com"),
        json!({"items": ["api", "web"], "available": 0, "limit": 2})
    );
    expect(
        &set(&format!("{alice_path}?quota=abc"), "quota=5"),
        200,
        "Quota changed sucessfully.",
    );
    expect(
        &app.delete("/apps/web").bearer(&alice).send(),
        200,
        "success",
    );
    assert_eq!(
        read("alice@example.com"),
        json!({"items": ["api"], "available": 4, "limit": 5})
    );

    // An app's quota: units made before it count, and release when removed.
    let units = |verb: &str, body: &str| {
        app.request(verb, "/apps/api/units")
            .bearer(&alice)
            .body(body)
            .send()
    };
    expect(&units("PUT", "2"), 200, "");
    expect(
        &set("/quota/api", "quota=2"),
        200,
        "Quota changed sucessfully.",
    );
    assert_eq!(
        read("api"),
        json!({"items": ["api-0", "api-1", "api-2"], "available": 0, "limit": 2})
    );
    expect(
        &units("PUT", "1"),
        403,
        "Quota exceeded. Available: 0. Requested: 1.\n",
    );
    expect(&units("DELETE", "1"), 200, "");
    assert_eq!(
        read("api"),
        json!({"items": ["api-0", "api-1"], "available": 0, "limit": 2})
    );
    expect(
        &set("/quota/api", "quota=4"),
        200,
        "Quota changed sucessfully.",
    );
    expect(
        &units("PUT", "3"),
        403,
        "Quota exceeded. Available: 2. Requested: 3.\n",
    );
    expect(&units("PUT", "2"), 200, "");
    assert_eq!(
        read("api"),
        json!({"items": ["api-0", "api-1", "api-3", "api-4"], "available": 0, "limit": 4})
    );
    // Deleting the app deletes its quota.
    expect(
        &app.delete("/apps/api").bearer(&alice).send(),
        200,
        "success",
    );
    expect(
        &app.get("/quota/api").bearer(&admin).send(),
        404,
        "Quota not found\n",
    );
}

#[test]
fn concurrent_creations_never_exceed_the_app_quota() {
    let app = app().var("quota_apps_per_user", "3").start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    create_app(&app, &alice, "first");
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|i| {
                let (app, alice) = (&app, &alice);
                s.spawn(move || try_create_app(app, alice, &format!("app{i}")))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let resp = h.join().expect("thread");
                (resp.status, resp.text())
            })
            .collect()
    });
    let succeeded = results.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(succeeded, 2, "{results:?}");
    for (status, text) in results.iter().filter(|(status, _)| *status != 200) {
        assert_eq!((*status, text.as_str()), (403, "Quota exceeded\n"));
    }
    let quota = app
        .get("/quota/alice@example.com")
        .bearer(&alice)
        .send()
        .json();
    assert_eq!(quota["available"], 0);
    assert_eq!(quota["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.get("/apps")
            .bearer(&alice)
            .send()
            .json()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn unit_quota_of_new_apps() {
    let app = app().var("quota_units_per_app", "0").start();
    let admin = admin(&app);
    expect(
        &try_create_app(&app, &admin, "web"),
        403,
        "Tsuru failed to create the app \"web\": app creation is disallowed\n",
    );
    assert_eq!(app.get("/apps").bearer(&admin).send().json(), json!([]));

    let app = e2e::app().var("quota_units_per_app", "lots").start();
    let admin = e2e::accounts::admin(&app);
    expect(
        &try_create_app(&app, &admin, "web"),
        500,
        "Invalid value for variable \"quota_units_per_app\"\n",
    );
}

/// Alice and Bob, each in a team of their own, with a quota of one app each; Alice owns
/// `web`.
fn alice_with_web_and_bob() -> (e2e::App, String, String) {
    let app = app().var("quota_apps_per_user", "1").start();
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "frontend");
    create_app(&app, &alice, "web");
    (app, alice, bob)
}

/// A creation whose request died leaves its app `pending`; after the 10-minute lease
/// (API.md 8.9) a new creation of the name takes it over, and the abandoned reservation
/// does not count against the owner's quota. A fresh reservation still holds the name.
#[test]
fn an_abandoned_creation_is_taken_over_within_the_owners_quota() {
    let (app, alice, bob) = alice_with_web_and_bob();
    // As a creation that died before the provisioner answered leaves it.
    app.sql("UPDATE apps SET state = 'pending' WHERE name = 'web'");
    expect(
        &try_create_app(&app, &bob, "web"),
        409,
        "Tsuru failed to create the app \"web\": there is already an app with this name.\n",
    );
    app.sql("UPDATE apps SET created_unix = created_unix - 601 WHERE name = 'web'");
    create_app(&app, &alice, "web");
    let web = app.get("/apps/web").bearer(&alice).send();
    assert_eq!(web.status, 200, "{}", web.text());
    assert_eq!(web.json()["State"], "ready");
    assert_eq!(
        app.get("/quota/alice@example.com")
            .bearer(&alice)
            .send()
            .json(),
        json!({"items": ["web"], "available": 0, "limit": 1})
    );
}

/// Taking over another owner's abandoned creation needs room in the quota of the one who
/// takes it over: refused, the abandoned reservation stays as it was; with room, the name
/// changes hands and leaves the first owner's quota.
#[test]
fn an_abandoned_creation_is_taken_over_only_with_room_in_the_quota() {
    let (app, alice, bob) = alice_with_web_and_bob();
    create_app(&app, &bob, "api");
    app.sql(
        "UPDATE apps SET state = 'pending', created_unix = created_unix - 601 WHERE name = 'web'",
    );
    expect(&try_create_app(&app, &bob, "web"), 403, "Quota exceeded\n");
    let web = app.get("/apps/web").bearer(&alice).send();
    assert_eq!(web.status, 200, "{}", web.text());
    assert_eq!(web.json()["State"], "pending");

    let removed = app.delete("/apps/api").bearer(&bob).send();
    assert_eq!(removed.status, 200, "{}", removed.text());
    create_app(&app, &bob, "web");
    let quota = |email: &str, token: &str| {
        app.get(&format!("/quota/{email}"))
            .bearer(token)
            .send()
            .json()
    };
    assert_eq!(
        quota("alice@example.com", &alice),
        json!({"items": [], "available": 1, "limit": 1})
    );
    assert_eq!(
        quota("bob@example.com", &bob),
        json!({"items": ["web"], "available": 0, "limit": 1})
    );
}
