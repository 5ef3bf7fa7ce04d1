//! Namesake races (API.md 8.1) and the instance name reservation (API.md 3.3), with real
//! concurrent requests: a tenant writes rows under a parent while the parent is removed,
//! then another tenant re-creates the same name and must get a clean object; concurrent
//! creates of one instance name make exactly one service API call.
//!
//! Each race is bounded: a handful of threads, a few requests each, a few rounds.

use e2e::accounts::{admin, team, user};
use e2e::apps::create_app;
use e2e::races::{answers_of, assert_no_server_errors, parallel, race, side, Answers};
use e2e::services::{create_instance, create_service};
use e2e::{app, parse_form, App, FakeServer, Reply};
use serde_json::{json, Value};
use std::time::Duration;

const ROUNDS: usize = 3;
const MALLORY: &str = "mallory@example.com";
const BOB: &str = "bob@example.com";

/// Mallory (team `mteam`, owner of service `msvc` on a fake service API), Bob (team
/// `bteam`) and Eve (team `eteam`), behind an admin registered first so none of them
/// bypasses app access. Apps have quotas so leftover quota items show.
struct Tenants {
    app: App,
    /// The service API of `msvc`; kept alive for the test.
    _service: FakeServer,
    mallory: String,
    bob: String,
    eve: String,
}

fn tenants() -> Tenants {
    let service = FakeServer::start();
    // Every service API call succeeds; a bind returns a variable that must never reach
    // another tenant's app.
    service.fallback(Reply::json(200, &json!({"MALLORY_DSN": "mallory-db"})));
    let app = app()
        .var("quota_apps_per_user", "100")
        .var("quota_units_per_app", "100")
        .start();
    admin(&app);
    let mallory = user(&app, MALLORY);
    team(&app, &mallory, "mteam");
    let bob = user(&app, BOB);
    team(&app, &bob, "bteam");
    let eve = user(&app, "eve@example.com");
    team(&app, &eve, "eteam");
    create_service(&app, &mallory, "msvc", &service.url());
    Tenants {
        app,
        _service: service,
        mallory,
        bob,
        eve,
    }
}

fn ok(resp: &e2e::Resp, what: &str) {
    assert_eq!(resp.status, 200, "{what}: {}", resp.text());
}

fn get_json(app: &App, token: &str, path: &str) -> Value {
    let resp = app.get(path).bearer(token).send();
    assert_eq!(resp.status, 200, "GET {path}: {}", resp.text());
    resp.json()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v[key].as_str().expect("a name").to_string())
        .collect()
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Every instance name in a `GET /services/instances` or `GET /services` answer.
fn listed_instances(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("an array")
        .iter()
        .flat_map(|s| strings(&s["instances"]))
        .collect()
}

impl Tenants {
    /// Bob creates `name` after Mallory's app of that name is gone, and everything he gets
    /// must be his own: his teams only, only the private TSURU_* variables, no binding,
    /// only the initial unit, only his quota items and no entry of Mallory's log.
    /// `mallory_instances` are instances Mallory owns that must not list Bob's app.
    /// Bob deletes the app afterwards so the next round can reuse the name.
    fn recreate_and_check(&self, name: &str, mallory_instances: &[String]) {
        let app = &self.app;
        create_app(app, &self.bob, name);

        let info = get_json(app, &self.bob, &format!("/apps/{name}"));
        assert_eq!(info["Teams"], json!(["bteam"]), "teams of the new {name}");
        assert_eq!(info["Owner"], BOB);
        assert_eq!(
            names(&info["Units"], "Name"),
            vec![format!("{name}/0")],
            "units of the new {name}"
        );

        let env = get_json(app, &self.bob, &format!("/apps/{name}/env"));
        assert_eq!(
            names(&env, "name"),
            vec!["TSURU_APPNAME", "TSURU_APP_TOKEN", "TSURU_HOST"],
            "variables of the new {name}: {env}"
        );
        assert!(
            env.as_array()
                .unwrap()
                .iter()
                .all(|v| v["public"] == json!(false)),
            "{env}"
        );

        let app_quota = get_json(app, &self.bob, &format!("/quota/{name}"));
        assert_eq!(
            app_quota["items"],
            json!([format!("{name}-0")]),
            "unit quota of the new {name}"
        );
        let bob_quota = get_json(app, &self.bob, &format!("/quota/{BOB}"));
        assert_eq!(bob_quota["items"], json!([name]), "Bob's app quota");
        let mallory_quota = get_json(app, &self.mallory, &format!("/quota/{MALLORY}"));
        assert!(
            !strings(&mallory_quota["items"]).contains(&name.to_string()),
            "Mallory's quota still holds {name}: {mallory_quota}"
        );

        let log = e2e::apps::log_messages(app, &self.bob, name, "?lines=0");
        assert!(
            !log.iter()
                .any(|m| m.contains("MALLORY") || m.contains("mallory")),
            "the new {name} shows Mallory's log entries: {log:?}"
        );

        for (who, token) in [("Mallory", &self.mallory), ("Eve", &self.eve)] {
            let resp = app.get(&format!("/apps/{name}")).bearer(token).send();
            resp.assert_is(403, "User does not have access to this app\n");
            let list = get_json(app, token, "/apps");
            assert!(
                !names(&list, "Name").contains(&name.to_string()),
                "{who} lists Bob's {name}: {list}"
            );
        }

        for instance in mallory_instances {
            let info = get_json(
                app,
                &self.mallory,
                &format!("/services/instances/{instance}"),
            );
            assert_eq!(
                info["apps"],
                json!([]),
                "Mallory's instance {instance} is bound to Bob's {name}"
            );
        }

        ok(
            &app.delete(&format!("/apps/{name}"))
                .bearer(&self.bob)
                .send(),
            "Bob deletes his app",
        );
    }

    fn delete_app(&self, name: &str) -> e2e::RequestBuilder {
        self.app
            .delete(&format!("/apps/{name}"))
            .bearer(&self.mallory)
    }
}

#[track_caller]
fn assert_deleted(answers: &[Answers]) {
    assert_eq!(
        answers_of(answers, "delete").statuses(),
        vec![200],
        "Mallory deletes her own app"
    );
}

#[test]
fn grants_racing_an_app_delete_never_reach_the_next_app_of_that_name() {
    let t = tenants();
    // Eve owns the teams Mallory grants, so Eve would read Bob's app through a leftover.
    const WRITERS: usize = 4;
    const EACH: usize = 3;
    for k in 0..WRITERS * EACH {
        team(&t.app, &t.eve, &format!("evil{k}"));
    }
    for _ in 0..ROUNDS {
        create_app(&t.app, &t.mallory, "x");
        let mut sides: Vec<_> = (0..WRITERS)
            .map(|w| {
                side(
                    format!("grants {w}"),
                    (0..EACH).map(|j| {
                        t.app
                            .put(&format!("/apps/x/evil{}", w * EACH + j))
                            .bearer(&t.mallory)
                    }),
                )
            })
            .collect();
        sides.push(side("delete", [t.delete_app("x")]));
        let answers = race(sides);
        assert_no_server_errors(&answers);
        assert_deleted(&answers);
        t.recreate_and_check("x", &[]);
    }
}

#[test]
fn env_writes_racing_an_app_delete_never_reach_the_next_app_of_that_name() {
    let t = tenants();
    const WRITERS: usize = 4;
    const EACH: usize = 4;
    for _ in 0..ROUNDS {
        create_app(&t.app, &t.mallory, "x");
        let mut sides: Vec<_> = (0..WRITERS)
            .map(|w| {
                side(
                    format!("env {w}"),
                    (0..EACH).map(|j| {
                        t.app.post("/apps/x/env").bearer(&t.mallory).json(&json!({
                            "LD_PRELOAD": format!("/tmp/mallory-{w}-{j}.so"),
                            format!("MALLORY_{w}_{j}"): "1",
                        }))
                    }),
                )
            })
            .collect();
        sides.push(side("delete", [t.delete_app("x")]));
        let answers = race(sides);
        assert_no_server_errors(&answers);
        assert_deleted(&answers);
        t.recreate_and_check("x", &[]);
    }
}

#[test]
fn binds_racing_an_app_delete_never_reach_the_next_app_of_that_name() {
    let t = tenants();
    let instances: Vec<String> = (0..4).map(|k| format!("mi{k}")).collect();
    for i in &instances {
        create_instance(&t.app, &t.mallory, "msvc", i);
    }
    for _ in 0..ROUNDS {
        create_app(&t.app, &t.mallory, "x");
        let mut sides: Vec<_> = instances
            .iter()
            .map(|i| {
                side(
                    format!("bind {i}"),
                    [t.app
                        .put(&format!("/services/instances/{i}/x"))
                        .bearer(&t.mallory)],
                )
            })
            .collect();
        sides.push(side("delete", [t.delete_app("x")]));
        let answers = race(sides);
        assert_no_server_errors(&answers);
        assert_deleted(&answers);
        t.recreate_and_check("x", &instances);
    }
    // No binding survived: every instance can be removed.
    for i in &instances {
        let resp = t
            .app
            .delete(&format!("/services/instances/{i}"))
            .bearer(&t.mallory)
            .send();
        resp.assert_is(200, "service instance successfuly removed");
    }
}

#[test]
fn unit_adds_racing_an_app_delete_never_reach_the_next_app_of_that_name() {
    let t = tenants();
    const WRITERS: usize = 4;
    const EACH: usize = 3;
    for _ in 0..ROUNDS {
        create_app(&t.app, &t.mallory, "x");
        let mut sides: Vec<_> = (0..WRITERS)
            .map(|w| {
                side(
                    format!("units {w}"),
                    (0..EACH).map(|_| t.app.put("/apps/x/units").bearer(&t.mallory).body("2")),
                )
            })
            .collect();
        sides.push(side("delete", [t.delete_app("x")]));
        let answers = race(sides);
        assert_no_server_errors(&answers);
        assert_deleted(&answers);
        t.recreate_and_check("x", &[]);
    }
}

#[test]
fn binds_racing_an_instance_removal_never_reach_the_next_instance_of_that_name() {
    let t = tenants();
    let apps: Vec<String> = (0..4).map(|k| format!("y{k}")).collect();
    for a in &apps {
        create_app(&t.app, &t.mallory, a);
    }
    let instance = "ri";
    for round in 0..ROUNDS {
        create_instance(&t.app, &t.mallory, "msvc", instance);
        let mut sides: Vec<_> = apps
            .iter()
            .map(|a| {
                side(
                    format!("bind {a}"),
                    [t.app
                        .put(&format!("/services/instances/{instance}/{a}"))
                        .bearer(&t.mallory)],
                )
            })
            .collect();
        sides.push(side(
            "remove",
            (0..2).map(|_| {
                t.app
                    .delete(&format!("/services/instances/{instance}"))
                    .bearer(&t.mallory)
            }),
        ));
        let answers = race(sides);
        assert_no_server_errors(&answers);

        // When a bind won, the instance is still there: Mallory unbinds and removes it.
        let still = t
            .app
            .get(&format!("/services/instances/{instance}"))
            .bearer(&t.mallory)
            .send();
        if still.status == 200 {
            for a in strings(&still.json()["apps"]) {
                ok(
                    &t.app
                        .delete(&format!("/services/instances/{instance}/{a}"))
                        .bearer(&t.mallory)
                        .send(),
                    "Mallory unbinds after the race",
                );
            }
            t.app
                .delete(&format!("/services/instances/{instance}"))
                .bearer(&t.mallory)
                .send()
                .assert_is(200, "service instance successfuly removed");
        } else {
            still.assert_is(404, "Service instance not found\n");
        }

        // Nothing of the removed instance stays on Mallory's apps.
        for a in &apps {
            let env = get_json(&t.app, &t.mallory, &format!("/apps/{a}/env"));
            assert_eq!(
                names(&env, "name"),
                vec!["TSURU_APPNAME", "TSURU_APP_TOKEN", "TSURU_HOST"],
                "round {round}: {a} keeps variables of the removed instance: {env}"
            );
        }

        // Bob re-creates the name: his instance has his teams and no app.
        create_instance(&t.app, &t.bob, "msvc", instance);
        let info = get_json(&t.app, &t.bob, &format!("/services/instances/{instance}"));
        assert_eq!(info["teams"], json!(["bteam"]), "round {round}: {info}");
        assert_eq!(info["apps"], json!([]), "round {round}: {info}");
        t.app
            .get(&format!("/services/instances/{instance}"))
            .bearer(&t.mallory)
            .send()
            .assert_is(403, "User does not have access to this service instance\n");
        // No hidden binding keeps Bob's instance: he can remove it.
        t.app
            .delete(&format!("/services/instances/{instance}"))
            .bearer(&t.bob)
            .send()
            .assert_is(200, "service instance successfuly removed");
    }
}

#[test]
fn grants_racing_a_team_removal_never_reach_the_next_team_of_that_name() {
    let t = tenants();
    let apps: Vec<String> = (0..4).map(|k| format!("z{k}")).collect();
    for a in &apps {
        create_app(&t.app, &t.mallory, a);
    }
    for round in 0..ROUNDS {
        team(&t.app, &t.eve, "tg");
        let mut sides: Vec<_> = apps
            .iter()
            .map(|a| {
                side(
                    format!("grant {a}"),
                    [
                        t.app.put(&format!("/apps/{a}/tg")).bearer(&t.mallory),
                        t.app.delete(&format!("/apps/{a}/tg")).bearer(&t.mallory),
                        t.app.put(&format!("/apps/{a}/tg")).bearer(&t.mallory),
                    ],
                )
            })
            .collect();
        sides.push(side(
            "remove team",
            (0..2).map(|_| t.app.delete("/teams/tg").bearer(&t.eve)),
        ));
        let answers = race(sides);
        assert_no_server_errors(&answers);

        // When a grant won, the team is still there: Mallory revokes it, Eve removes it.
        if t.app.get("/teams/tg").bearer(&t.eve).send().status == 200 {
            for a in &apps {
                let info = get_json(&t.app, &t.mallory, &format!("/apps/{a}"));
                if strings(&info["Teams"]).contains(&"tg".to_string()) {
                    ok(
                        &t.app
                            .delete(&format!("/apps/{a}/tg"))
                            .bearer(&t.mallory)
                            .send(),
                        "Mallory revokes after the race",
                    );
                }
            }
            ok(
                &t.app.delete("/teams/tg").bearer(&t.eve).send(),
                "Eve removes her team after the race",
            );
        }
        for a in &apps {
            let info = get_json(&t.app, &t.mallory, &format!("/apps/{a}"));
            assert_eq!(info["Teams"], json!(["mteam"]), "round {round}: {a}");
        }

        // Bob makes a team of that name: it reaches none of Mallory's apps.
        team(&t.app, &t.bob, "tg");
        let list = get_json(&t.app, &t.bob, "/apps");
        assert_eq!(list, json!([]), "round {round}: Bob sees Mallory's apps");
        for a in &apps {
            t.app
                .get(&format!("/apps/{a}"))
                .bearer(&t.bob)
                .send()
                .assert_is(403, "User does not have access to this app\n");
        }
        ok(
            &t.app.delete("/teams/tg").bearer(&t.bob).send(),
            "Bob removes his team (no hidden app grant holds it)",
        );
    }
}

#[test]
fn instance_creates_racing_a_team_removal_never_reach_the_next_team_of_that_name() {
    let t = tenants();
    const WRITERS: usize = 4;
    const EACH: usize = 2;
    for round in 0..ROUNDS {
        team(&t.app, &t.eve, "tc");
        let made: Vec<String> = (0..WRITERS * EACH)
            .map(|k| format!("c{round}-{k}"))
            .collect();
        let mut sides: Vec<_> = (0..WRITERS)
            .map(|w| {
                side(
                    format!("creates {w}"),
                    made[w * EACH..(w + 1) * EACH].iter().map(|name| {
                        t.app
                            .post("/services/instances")
                            .bearer(&t.eve)
                            .json(&json!({"name": name, "service_name": "msvc"}))
                    }),
                )
            })
            .collect();
        sides.push(side(
            "remove team",
            (0..2).map(|_| t.app.delete("/teams/tc").bearer(&t.eve)),
        ));
        let answers = race(sides);
        assert_no_server_errors(&answers);

        // When a create won, the team is still there: Eve removes the instances that list
        // it, then the team.
        if t.app.get("/teams/tc").bearer(&t.eve).send().status == 200 {
            for name in &made {
                let resp = t
                    .app
                    .get(&format!("/services/instances/{name}"))
                    .bearer(&t.eve)
                    .send();
                if resp.status == 200 && strings(&resp.json()["teams"]).contains(&"tc".into()) {
                    t.app
                        .delete(&format!("/services/instances/{name}"))
                        .bearer(&t.eve)
                        .send()
                        .assert_is(200, "service instance successfuly removed");
                }
            }
            ok(
                &t.app.delete("/teams/tc").bearer(&t.eve).send(),
                "Eve removes her team after the race",
            );
        }
        // Eve's remaining instances list only teams that exist.
        for name in &made {
            let resp = t
                .app
                .get(&format!("/services/instances/{name}"))
                .bearer(&t.eve)
                .send();
            if resp.status == 200 {
                assert_eq!(
                    resp.json()["teams"],
                    json!(["eteam"]),
                    "round {round}: {name}"
                );
            } else {
                resp.assert_is(404, "Service instance not found\n");
            }
        }

        // Bob makes a team of that name: it reaches none of Eve's instances.
        team(&t.app, &t.bob, "tc");
        let listed = listed_instances(&get_json(&t.app, &t.bob, "/services/instances"));
        assert!(
            made.iter().all(|m| !listed.contains(m)),
            "round {round}: Bob lists Eve's instances: {listed:?}"
        );
        for name in &made {
            let status = t
                .app
                .get(&format!("/services/instances/{name}"))
                .bearer(&t.bob)
                .send()
                .status;
            assert!(
                status == 403 || status == 404,
                "round {round}: Bob reads Eve's instance {name}: {status}"
            );
        }
        ok(
            &t.app.delete("/teams/tc").bearer(&t.bob).send(),
            "Bob removes his team (no hidden instance grant holds it)",
        );
    }
}

// ---------------------------------------------------------------------------------------
// Instance name reservation (API.md 3.3).

/// Alice (team `backend`, owner of `mysql` on a fake service API, app `web`) and Bob
/// (team `frontend`).
struct Shop {
    app: App,
    service: FakeServer,
    alice: String,
    bob: String,
}

fn shop() -> Shop {
    let service = FakeServer::start();
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    team(&app, &alice, "backend");
    let bob = user(&app, BOB);
    team(&app, &bob, "frontend");
    create_service(&app, &alice, "mysql", &service.url());
    create_app(&app, &alice, "web");
    Shop {
        app,
        service,
        alice,
        bob,
    }
}

impl Shop {
    fn create(&self, token: &str, name: &str) -> e2e::RequestBuilder {
        self.app
            .post("/services/instances")
            .bearer(token)
            .json(&json!({"name": name, "service_name": "mysql"}))
    }

    /// Every instance name that any listing route shows to `token`.
    fn listed(&self, token: &str) -> Vec<String> {
        let mut all = listed_instances(&get_json(&self.app, token, "/services/instances"));
        all.extend(listed_instances(&get_json(&self.app, token, "/services")));
        let info = self.app.get("/services/mysql").bearer(token).send();
        if info.status == 200 {
            all.extend(names(&info.json(), "Name"));
        }
        all
    }
}

#[test]
fn concurrent_creates_of_one_instance_name_make_exactly_one_service_call() {
    let s = shop();
    // A slow create keeps the winner in flight while the others arrive.
    s.service.on(
        "POST",
        "/resources",
        Reply::ok().delay(Duration::from_millis(300)),
    );
    for round in 0..ROUNDS {
        let name = format!("dup{round}");
        s.service.clear();
        let answers = parallel(6, |i| {
            s.create(if i % 2 == 0 { &s.alice } else { &s.bob }, &name)
        });
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        statuses.sort();
        assert_eq!(
            statuses,
            vec![200, 409, 409, 409, 409, 409],
            "round {round}: {answers:?}"
        );
        for r in answers.iter().filter(|r| r.status == 409) {
            r.assert_is(409, "Instance name already exists.\n");
        }
        let creates: Vec<_> = s
            .service
            .requests_to("POST", "/resources")
            .into_iter()
            .filter(|r| parse_form(&r.text()).get("name") == Some(&name))
            .collect();
        assert_eq!(creates.len(), 1, "round {round}: service API creates");
        let destroys: Vec<_> = s
            .service
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && r.path().starts_with("/resources/"))
            .map(|r| r.target)
            .collect();
        assert_eq!(destroys, Vec::<String>::new(), "round {round}: destroys");

        // The winner's instance exists and works.
        let winner = answers.iter().position(|r| r.status == 200).unwrap();
        let (token, team) = if winner % 2 == 0 {
            (&s.alice, "backend")
        } else {
            (&s.bob, "frontend")
        };
        let info = get_json(&s.app, token, &format!("/services/instances/{name}"));
        assert_eq!(info["teams"], json!([team]), "round {round}");
        s.service.on_once(
            "GET",
            &format!("/resources/{name}/status"),
            Reply::status(204),
        );
        s.app
            .get(&format!("/services/instances/{name}/status"))
            .bearer(token)
            .send()
            .assert_is(200, &format!("Service instance \"{name}\" is up"));
    }
}

#[test]
fn a_pending_instance_is_listed_nowhere_and_cannot_be_bound() {
    let s = shop();
    s.service.on_once(
        "POST",
        "/resources",
        Reply::ok().delay(Duration::from_secs(6)),
    );
    std::thread::scope(|scope| {
        let creating = scope.spawn(|| s.create(&s.alice, "slow").send());
        let seen = s.service.wait_for(1, Duration::from_secs(20));
        assert_eq!(seen.len(), 1, "the create reached the service API");

        assert!(
            !s.listed(&s.alice).contains(&"slow".to_string()),
            "a pending instance is listed"
        );
        let bind = s
            .app
            .put("/services/instances/slow/web")
            .bearer(&s.alice)
            .send();
        assert_eq!(
            bind.status,
            404,
            "bind to a pending instance: {}",
            bind.text()
        );
        s.create(&s.bob, "slow")
            .send()
            .assert_is(409, "Instance name already exists.\n");
        assert!(
            !creating.is_finished(),
            "the checks must run while the create is in flight"
        );

        let created = creating.join().unwrap();
        assert_eq!(created.status, 200, "{}", created.text());
    });
    assert_eq!(s.service.requests_to("POST", "/resources").len(), 1);
    assert!(s.listed(&s.alice).contains(&"slow".to_string()));
    let bind = s
        .app
        .put("/services/instances/slow/web")
        .bearer(&s.alice)
        .send();
    assert_eq!(bind.status, 200, "{}", bind.text());
}

#[test]
fn a_failed_create_frees_the_name() {
    let s = shop();
    s.service
        .on_once("POST", "/resources", Reply::text(500, "boom"));
    s.create(&s.alice, "gone")
        .send()
        .assert_is(502, "Failed to create the instance gone: boom\n");
    assert!(!s.listed(&s.alice).contains(&"gone".to_string()));
    s.app
        .get("/services/instances/gone")
        .bearer(&s.alice)
        .send()
        .assert_is(404, "Service instance not found\n");
    // Another tenant may take the name now.
    let again = s.create(&s.bob, "gone").send();
    assert_eq!(again.status, 200, "{}", again.text());
    let info = get_json(&s.app, &s.bob, "/services/instances/gone");
    assert_eq!(info["teams"], json!(["frontend"]));
    assert_eq!(s.service.requests_to("POST", "/resources").len(), 2);
}
