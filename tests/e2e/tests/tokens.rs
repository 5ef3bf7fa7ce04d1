//! `tokens` component end to end (API.md 3.9).

use e2e::accounts::{admin, user};
use e2e::app;
use serde_json::json;

#[test]
fn issuing_app_tokens() {
    let app = app().start();
    let admin = admin(&app);
    let bob = user(&app, "bob@example.com");
    assert_eq!(
        app.post("/tokens")
            .json(&json!({"client": "x"}))
            .send()
            .status,
        401
    );
    let r = app
        .post("/tokens")
        .bearer(&bob)
        .json(&json!({"client": "x"}))
        .send();
    r.assert_is(403, "Forbidden\n");
    let cases: [(&[u8], &str); 5] = [
        (b"nope", "Invalid JSON in request body.\n"),
        (b"{\"client\": 1}", "Invalid JSON in request body.\n"),
        (
            b"{\"client\": \"x\", \"export\": \"yes\"}",
            "Invalid JSON in request body.\n",
        ),
        (b"{}", "Missing client name in JSON body\n"),
        (b"{\"client\": \"\"}", "Missing client name in JSON body\n"),
    ];
    for (body, message) in cases {
        let r = app
            .post("/tokens")
            .bearer(&admin)
            .body(body.to_vec())
            .send();
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, message),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let r = app
        .post("/tokens")
        .bearer(&admin)
        .json(&json!({"client": "git-hook", "export": true}))
        .send();
    assert_eq!(r.status, 200);
    let body = r.json();
    let token = body["Token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(body["Expires"], 31_536_000);
    assert_eq!(body["AppName"], "git-hook");
    let creation = body["Creation"].as_str().unwrap();
    assert!(
        creation.len() == 20 && creation.ends_with('Z') && creation.as_bytes()[10] == b'T',
        "{creation}"
    );
    // A system token: refused on user routes, fine where any token is.
    let r = app.get("/teams").bearer(token).send();
    r.assert_is(403, "This action requires a user token\n");
    let r = app
        .post("/tokens")
        .bearer(token)
        .json(&json!({"client": "y"}))
        .send();
    r.assert_is(403, "Forbidden\n");
    assert_eq!(app.delete("/users/tokens").bearer(token).send().status, 200);
}
