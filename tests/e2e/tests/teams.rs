//! `teams` component end to end (API.md 3.8) and its permission-matrix rows.

use e2e::accounts::{add_to_team, admin, team, user};
use e2e::app;
use serde_json::json;

#[test]
fn creating_teams() {
    let app = app().start();
    let token = admin(&app);
    let cases: [(&[u8], u16, &str); 10] = [
        (b"nope", 400, "Invalid JSON in request body.\n"),
        (b"[\"backend\"]", 400, "Invalid JSON in request body.\n"),
        (b"{\"name\": 7}", 400, "Invalid JSON in request body.\n"),
        (b"{}", 400, "Invalid team name\n"),
        (b"{\"name\": \"1team\"}", 400, "Invalid team name\n"),
        (b"{\"name\": \"a\"}", 400, "Invalid team name\n"),
        (b"{\"name\": \"bad!\"}", 400, "Invalid team name\n"),
        (b"{\"name\": \"units\"}", 400, "Invalid team name\n"),
        (b"{\"name\": \"doc\"}", 400, "Invalid team name\n"),
        (b"{\"name\": \"env\"}", 400, "Invalid team name\n"),
    ];
    for (body, status, message) in cases {
        let resp = app.post("/teams").bearer(&token).body(body.to_vec()).send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (status, message),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // The trimmed name is stored.
    assert_eq!(
        app.post("/teams")
            .bearer(&token)
            .json(&json!({"name": "  web team "}))
            .send()
            .status,
        200
    );
    team(&app, &token, "backend");
    let dup = app
        .post("/teams")
        .bearer(&token)
        .json(&json!({"name": "backend"}))
        .send();
    assert_eq!(
        (dup.status, dup.text().as_str()),
        (409, "Team already exists\n")
    );
    let list = app.get("/teams").bearer(&token).send();
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(
        list.json(),
        json!([{"name": "admin"}, {"name": "backend"}, {"name": "web team"}])
    );
    let info = app.get("/teams/web%20team").bearer(&token).send();
    assert_eq!(
        info.json(),
        json!({"name": "web team", "users": ["admin@example.com"]})
    );
}

#[test]
fn team_info_and_membership() {
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    let bob = user(&app, "bob@example.com");
    user(&app, "carol@example.com");
    team(&app, &alice, "backend");

    let unknown = app.get("/teams/nope").bearer(&alice).send();
    assert_eq!(
        (unknown.status, unknown.text().as_str()),
        (404, "Team not found\n")
    );
    let outsider = app.get("/teams/backend").bearer(&bob).send();
    assert_eq!(
        (outsider.status, outsider.text().as_str()),
        (403, "User is not member of this team\n")
    );

    // Adding members.
    let r = app.put("/teams/nope/bob@example.com").bearer(&alice).send();
    assert_eq!((r.status, r.text().as_str()), (404, "Team not found\n"));
    let r = app
        .put("/teams/backend/bob@example.com")
        .bearer(&bob)
        .send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            403,
            "You are not authorized to add new users to the team backend\n"
        )
    );
    let r = app
        .put("/teams/backend/who@example.com")
        .bearer(&alice)
        .send();
    assert_eq!((r.status, r.text().as_str()), (404, "User not found\n"));
    add_to_team(&app, &alice, "backend", "bob@example.com");
    let r = app
        .put("/teams/backend/bob@example.com")
        .bearer(&alice)
        .send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            409,
            "User bob@example.com is already in the team backend.\n"
        )
    );
    let info = app.get("/teams/backend").bearer(&bob).send();
    assert_eq!(
        info.json(),
        json!({"name": "backend", "users": ["alice@example.com", "bob@example.com"]})
    );

    // Removing members.
    let r = app
        .delete("/teams/nope/bob@example.com")
        .bearer(&alice)
        .send();
    assert_eq!((r.status, r.text().as_str()), (404, "Team not found\n"));
    let carol = e2e::accounts::login(&app, "carol@example.com");
    let r = app
        .delete("/teams/backend/bob@example.com")
        .bearer(&carol)
        .send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            403,
            "You are not authorized to remove a member from the team backend\n"
        )
    );
    let r = app
        .delete("/teams/backend/who@example.com")
        .bearer(&alice)
        .send();
    assert_eq!((r.status, r.text().as_str()), (404, "User not found\n"));
    let r = app
        .delete("/teams/backend/carol@example.com")
        .bearer(&alice)
        .send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "User carol@example.com is not in the team backend.\n")
    );
    assert_eq!(
        app.delete("/teams/backend/alice@example.com")
            .bearer(&bob)
            .send()
            .status,
        200
    );
    let r = app
        .delete("/teams/backend/bob@example.com")
        .bearer(&bob)
        .send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "You can not remove this user from this team, because it is the last user within the team, and a team can not be orphaned\n")
    );
    assert_eq!(app.get("/teams").bearer(&alice).send().json(), json!([]));
}

#[test]
fn removing_teams() {
    let app = app().start();
    let admin = admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    // Non-members, the admin included, are told the team does not exist.
    let r = app.delete("/teams/backend").bearer(&admin).send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Team \"backend\" not found.\n")
    );
    let r = app.delete("/teams/nope").bearer(&alice).send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Team \"nope\" not found.\n")
    );
    let r = app.delete("/teams/admin").bearer(&admin).send();
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "The admin team cannot be removed.\n")
    );
    assert_eq!(
        app.delete("/teams/backend").bearer(&alice).send().status,
        200
    );
    assert_eq!(app.get("/teams/backend").bearer(&alice).send().status, 404);
}

#[test]
fn permission_rows() {
    let app = app().start();
    let admin = admin(&app);
    let owner = user(&app, "owner@example.com");
    let other = user(&app, "other@example.com");
    let noteam = user(&app, "noteam@example.com");
    team(&app, &owner, "backend");
    team(&app, &other, "frontend");
    let hook = app
        .post("/tokens")
        .bearer(&admin)
        .json(&json!({"client": "hook"}))
        .send()
        .json();
    let app_token = hook["Token"].as_str().unwrap().to_string();

    // team info: Anon 401, NoTeam 403, Owner Y, Other 403, Admin 403, App 403.
    let info = |token: Option<&str>| {
        let mut r = app.get("/teams/backend");
        if let Some(t) = token {
            r = r.bearer(t);
        }
        r.send().status
    };
    assert_eq!(
        [
            info(None),
            info(Some(&noteam)),
            info(Some(&owner)),
            info(Some(&other)),
            info(Some(&admin)),
            info(Some(&app_token))
        ],
        [401, 403, 200, 403, 403, 403]
    );
    // create team: Anon 401, NoTeam Y, App 403.
    assert_eq!(
        app.post("/teams")
            .json(&json!({"name": "x1"}))
            .send()
            .status,
        401
    );
    assert_eq!(
        app.post("/teams")
            .bearer(&noteam)
            .json(&json!({"name": "x2"}))
            .send()
            .status,
        200
    );
    assert_eq!(
        app.post("/teams")
            .bearer(&app_token)
            .json(&json!({"name": "x3"}))
            .send()
            .status,
        403
    );
    // delete team: NoTeam, Other, Admin all 404.
    for token in [&other, &admin] {
        assert_eq!(
            app.delete("/teams/backend").bearer(token).send().status,
            404
        );
    }
    // list: App 403.
    assert_eq!(app.get("/teams").bearer(&app_token).send().status, 403);
}
