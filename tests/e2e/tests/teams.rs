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
    dup.assert_is(409, "Team already exists\n");
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
    unknown.assert_is(404, "Team not found\n");
    let outsider = app.get("/teams/backend").bearer(&bob).send();
    outsider.assert_is(403, "User is not member of this team\n");

    // Adding members.
    let r = app.put("/teams/nope/bob@example.com").bearer(&alice).send();
    r.assert_is(404, "Team not found\n");
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
    r.assert_is(404, "User not found\n");
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
    r.assert_is(404, "Team not found\n");
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
    r.assert_is(404, "User not found\n");
    let r = app
        .delete("/teams/backend/carol@example.com")
        .bearer(&alice)
        .send();
    r.assert_is(404, "User carol@example.com is not in the team backend.\n");
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
    r.assert_is(403, "You can not remove this user from this team, because it is the last user within the team, and a team can not be orphaned\n");
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
    r.assert_is(404, "Team \"backend\" not found.\n");
    let r = app.delete("/teams/nope").bearer(&alice).send();
    r.assert_is(404, "Team \"nope\" not found.\n");
    let r = app.delete("/teams/admin").bearer(&admin).send();
    r.assert_is(403, "The admin team cannot be removed.\n");
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

#[test]
fn teams_in_use_cannot_be_removed() {
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    team(&app, &alice, "data");
    e2e::apps::create_app(&app, &alice, "web");
    // `web` went to both of alice's teams; hand it to `backend` alone.
    assert_eq!(
        app.delete("/apps/web/data").bearer(&alice).send().status,
        200
    );
    let r = app.delete("/teams/backend").bearer(&alice).send();
    r.assert_is(403, "This team cannot be removed because it have access to apps.\n\nPlease remove the apps or revoke these accesses, and try again.\n");
    assert_eq!(app.delete("/apps/web").bearer(&alice).send().status, 200);
    e2e::services::create_service(&app, &alice, "mysql", "http://127.0.0.1:9");
    for name in ["backend", "data"] {
        let r = app.delete(&format!("/teams/{name}")).bearer(&alice).send();
        assert_eq!(
            (r.status, r.text().as_str()),
            (403, "This team cannot be removed because it has access to services or service instances.\n"),
            "{name} owns the service"
        );
    }
}

#[test]
fn membership_changes_reach_gandalf_and_roll_back() {
    let gandalf = e2e::FakeServer::start();
    let app = app().var("gandalf_url", &gandalf.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    user(&app, "bob@example.com");
    team(&app, &alice, "backend");
    team(&app, &alice, "ops");
    e2e::apps::create_app(&app, &alice, "web");
    gandalf.clear();

    add_to_team(&app, &alice, "backend", "bob@example.com");
    let calls = gandalf.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path()),
        ("POST", "/repository/grant")
    );
    assert_eq!(
        calls[0].json(),
        json!({"repositories": ["web"], "users": ["bob@example.com"]})
    );

    // Bob reaches `web` through `ops` too, so leaving `backend` revokes nothing.
    add_to_team(&app, &alice, "ops", "bob@example.com");
    gandalf.clear();
    assert_eq!(
        app.delete("/teams/backend/bob@example.com")
            .bearer(&alice)
            .send()
            .status,
        200
    );
    assert!(gandalf.requests().is_empty());
    gandalf.on_once("DELETE", "/repository/revoke", e2e::Reply::text(500, "no"));
    let r = app
        .delete("/teams/ops/bob@example.com")
        .bearer(&alice)
        .send();
    r.assert_is(502, "Failed to revoke access from git repositories: no\n");
    let revoke = &gandalf.requests()[0];
    assert_eq!(
        revoke.json(),
        json!({"repositories": ["web"], "users": ["bob@example.com"]})
    );
    let ops = app.get("/teams/ops").bearer(&alice).send().json();
    assert_eq!(
        ops["users"],
        json!(["alice@example.com", "bob@example.com"]),
        "membership restored"
    );

    gandalf.on_once("POST", "/repository/grant", e2e::Reply::text(500, "down"));
    let r = app
        .put("/teams/backend/bob@example.com")
        .bearer(&alice)
        .send();
    r.assert_is(502, "Failed to grant access to git repositories: down\n");
    let backend = app.get("/teams/backend").bearer(&alice).send().json();
    assert_eq!(
        backend["users"],
        json!(["alice@example.com"]),
        "membership removed again"
    );

    // Removing bob's account revokes his repositories first; a failure stops it.
    let bob = e2e::accounts::login(&app, "bob@example.com");
    gandalf.clear();
    gandalf.on_once(
        "DELETE",
        "/repository/revoke",
        e2e::Reply::text(500, "nope"),
    );
    let r = app.delete("/users").bearer(&bob).send();
    r.assert_is(502, "Failed to revoke acess from git repositories: nope\n");
    assert_eq!(
        gandalf.requests()[0].json(),
        json!({"repositories": ["web"], "users": ["bob@example.com"]})
    );
    assert_eq!(app.delete("/users").bearer(&bob).send().status, 200);
    let paths: Vec<String> = gandalf
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        vec![
            "DELETE /repository/revoke",
            "DELETE /repository/revoke",
            "DELETE /user/bob%40example.com"
        ]
    );
}
