//! `healers` component end to end (API.md 3.5, 5.4) and its permission-matrix row.

use e2e::accounts::{admin, user};
use e2e::{app, refused_url, FakeServer, Reply, Resp};
use serde_json::json;

fn answer(resp: &Resp) -> (u16, String) {
    (resp.status, resp.text())
}

#[test]
fn listing_and_executing_healers() {
    let healer = FakeServer::start();
    let refused = refused_url();
    let healers = format!(
        " app-heal={0}/heal , ,bs-heal={0}/bs?force=1,gone={refused}/x",
        healer.url()
    );
    let app = app().var("healers", &healers).start();
    let admin = admin(&app);
    let carol = user(&app, "carol@example.com");
    let app_token = app
        .post("/tokens")
        .bearer(&admin)
        .json(&json!({"client": "anything"}))
        .send()
        .json()["Token"]
        .as_str()
        .expect("app token")
        .to_string();

    let expected = json!([
        {"app-heal": format!("{}/heal", healer.url())},
        {"bs-heal": format!("{}/bs?force=1", healer.url())},
        {"gone": format!("{refused}/x")}
    ]);
    // Any token: users with or without teams, and app tokens.
    for token in [&admin, &carol, &app_token] {
        let listed = app.get("/healers").bearer(token).send();
        assert_eq!((listed.status, listed.json()), (200, expected.clone()));
        assert_eq!(listed.header("content-type"), Some("application/json"));
    }

    for token in [&carol, &app_token] {
        let run = app.get("/healers/app-heal").bearer(token).send();
        assert_eq!(answer(&run), (200, String::new()));
        assert_eq!(run.header("content-length"), Some("0"));
    }
    let calls = healer.requests();
    assert_eq!(calls.len(), 2);
    assert!(calls
        .iter()
        .all(|c| c.method == "GET" && c.target == "/heal" && c.body.is_empty()));
    assert!(calls.iter().all(|c| c.header("authorization").is_none()));

    healer.on("GET", "/bs", Reply::status(204));
    assert_eq!(
        app.get("/healers/bs-heal").bearer(&carol).send().status,
        200
    );
    assert_eq!(healer.requests_to("GET", "/bs")[0].target, "/bs?force=1");

    healer.on_once("GET", "/heal", Reply::text(500, "  cannot heal \n"));
    assert_eq!(
        answer(&app.get("/healers/app-heal").bearer(&carol).send()),
        (
            502,
            "Failed to execute healer app-heal: cannot heal\n".to_string()
        )
    );
    healer.on_once(
        "GET",
        "/heal",
        Reply::status(302).header("Location", "/elsewhere"),
    );
    assert_eq!(
        app.get("/healers/app-heal").bearer(&carol).send().status,
        502
    );
    let down = app.get("/healers/gone").bearer(&carol).send();
    assert_eq!(down.status, 502);
    assert!(
        down.text().starts_with("Failed to execute healer gone: ") && down.text().len() > 33,
        "{}",
        down.text()
    );

    assert_eq!(
        answer(&app.get("/healers/nope").bearer(&carol).send()),
        (404, "Healer not found\n".to_string())
    );
    for path in ["/healers", "/healers/app-heal"] {
        let anonymous = app.get(path).send();
        assert_eq!(
            answer(&anonymous),
            (
                401,
                "You must provide the Authorization header\n".to_string()
            )
        );
    }
    assert_eq!(app.post("/healers").bearer(&carol).send().status, 405);
}

#[test]
fn no_healers_configured() {
    let app = app().start();
    let token = user(&app, "alice@example.com");
    assert_eq!(app.get("/healers").bearer(&token).send().json(), json!([]));
    assert_eq!(
        answer(&app.get("/healers/any").bearer(&token).send()),
        (404, "Healer not found\n".to_string())
    );
}

#[test]
fn an_unparseable_healers_variable_is_named() {
    let app = app().var("healers", "no-equals-sign").start();
    let token = user(&app, "alice@example.com");
    let expected = (500, "Invalid value for variable \"healers\"\n".to_string());
    assert_eq!(answer(&app.get("/healers").bearer(&token).send()), expected);
    assert_eq!(
        answer(&app.get("/healers/x").bearer(&token).send()),
        expected
    );
}
