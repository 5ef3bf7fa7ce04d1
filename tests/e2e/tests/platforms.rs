//! `platforms` component end to end (API.md 3.6) and its permission-matrix rows.

use e2e::accounts::{admin, team, user};
use e2e::app;
use e2e::apps::{app_token, create_app, expect, try_create_app};
use serde_json::json;

#[test]
fn listing_adding_and_removing_platforms() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let token = app_token(&app, &admin, "x");
    let list = |token: &str| app.get("/platforms").bearer(token).send();
    let seeded = json!([{"Name": "go"}, {"Name": "java"}, {"Name": "nodejs"}, {"Name": "php"},
                        {"Name": "python"}, {"Name": "ruby20"}, {"Name": "static"}]);
    let listed = list(&alice);
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(listed.json(), seeded);
    expect(
        &app.get("/platforms").send(),
        401,
        "You must provide the Authorization header\n",
    );
    expect(&list(&token), 403, "This action requires a user token\n");

    let add = |token: &str, body: &str| app.post("/platforms").bearer(token).body(body).send();
    expect(
        &app.post("/platforms").body(r#"{"name": "elixir"}"#).send(),
        401,
        "You must provide the Authorization header\n",
    );
    expect(&add(&alice, r#"{"name": "elixir"}"#), 403, "Forbidden\n");
    expect(&add(&token, r#"{"name": "elixir"}"#), 403, "Forbidden\n");
    for (body, message) in [
        ("nope", "Invalid JSON in request body.\n"),
        (r#"{"name": 5}"#, "Invalid JSON in request body.\n"),
        ("{}", "Invalid platform name\n"),
        (r#"{"name": "Elixir"}"#, "Invalid platform name\n"),
        (r#"{"name": "1x"}"#, "Invalid platform name\n"),
    ] {
        expect(&add(&admin, body), 400, message);
    }
    expect(&add(&admin, r#"{"name": "elixir-1.2"}"#), 200, "");
    expect(
        &add(&admin, r#"{"name": "elixir-1.2"}"#),
        409,
        "Platform already exists\n",
    );
    assert_eq!(list(&alice).json()[0], json!({"Name": "elixir-1.2"}));

    let created = app
        .post("/apps")
        .bearer(&alice)
        .json(&json!({"name": "web", "platform": "elixir-1.2"}))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    let remove = |token: &str, name: &str| {
        app.delete(&format!("/platforms/{name}"))
            .bearer(token)
            .send()
    };
    expect(&remove(&alice, "elixir-1.2"), 403, "Forbidden\n");
    expect(&remove(&admin, "nope"), 404, "Platform not found\n");
    expect(
        &remove(&admin, "elixir-1.2"),
        409,
        "This platform is in use by at least one app and cannot be removed.\n",
    );
    expect(
        &app.delete("/apps/web").bearer(&alice).send(),
        200,
        "success",
    );
    expect(&remove(&admin, "elixir-1.2"), 200, "");
    assert_eq!(list(&alice).json(), seeded);
    let created = app
        .post("/apps")
        .bearer(&alice)
        .json(&json!({"name": "web", "platform": "elixir-1.2"}))
        .send();
    expect(&created, 400, "Invalid platform\n");
    create_app(&app, &alice, "web");
}

#[test]
fn seeded_platforms_follow_the_variable() {
    let app = app().var("platforms", " rust, go,,").start();
    let admin = admin(&app);
    assert_eq!(
        app.get("/platforms").bearer(&admin).send().json(),
        json!([{"Name": "go"}, {"Name": "rust"}])
    );
    let app = e2e::app().var("platforms", "").start();
    let admin = e2e::accounts::admin(&app);
    team(&app, &admin, "backend");
    assert_eq!(
        app.get("/platforms").bearer(&admin).send().json(),
        json!([])
    );
    expect(
        &try_create_app(&app, &admin, "web"),
        400,
        "Invalid platform\n",
    );
}
