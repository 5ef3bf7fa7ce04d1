//! `meta` component and the routing conventions every component shares (API.md 1.2, 3.10).

use e2e::accounts::admin;
use e2e::app;

#[test]
fn healthcheck_and_its_alias() {
    let app = app().start();
    for path in ["/healthcheck", "/healthcheck/"] {
        let r = app.get(path).send();
        assert_eq!((r.status, r.text().as_str()), (200, "WORKING"), "{path}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let head = app.head("/healthcheck").send();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = app.post("/healthcheck").send();
    post.assert_is(405, "Method Not Allowed\n");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn openapi_document_is_served() {
    let app = app().start();
    let r = app.get("/openapi.json").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["info"]["title"], "tsuru API");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(app.request("DELETE", "/openapi.json").send().status, 405);
}

#[test]
fn unknown_paths_and_methods() {
    let app = app().start();
    let token = admin(&app);
    for path in ["/", "/nothing/here", "/deploy", "/schema", "/schema/nope"] {
        let r = app.get(path).send();
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
    }
    // Trailing slashes and empty segments match nothing inside a component.
    for path in ["/teams/", "/teams//x"] {
        let r = app.get(path).bearer(&token).send();
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "404 page not found\n"),
            "{path}"
        );
    }
    // Routing (404/405) comes before authentication.
    let r = app.request("PATCH", "/teams").send();
    r.assert_is(405, "Method Not Allowed\n");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = app.post("/users/tokens").send();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE"));
    // HEAD answers what GET would, without a body.
    let get = app.get("/teams").bearer(&token).send();
    let head = app.head("/teams").bearer(&token).send();
    assert_eq!(
        (head.status, head.header("content-type")),
        (get.status, get.header("content-type"))
    );
    assert!(head.body.is_empty());
}
