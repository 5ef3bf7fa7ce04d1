//! Bounded cost of hostile input (API.md 8.4, 8.6, 8.7, 8.8): YAML manifests without
//! anchors, aliases or tags and at most 64 KiB; password-reset and login throttling;
//! outbound replies read up to 1 MiB; log entries kept per app up to `log_retention`, of
//! at most 16 KiB each; what one user or app may store (variables, keys, teams).

use e2e::accounts::{admin, register, team, user, PASSWORD};
use e2e::races::{basic_auth, parallel, seconds_in};
use e2e::services::create_service;
use e2e::{app, App, FakeServer, Reply, Resp};
use serde_json::json;
use std::time::{Duration, Instant};

const NO_REFERENCES: &str = "Invalid YAML manifest: anchors, aliases and tags are not allowed\n";
const TOO_LARGE: &str = "Request body too large\n";
const MANIFEST_LIMIT: usize = 64 * 1024;

fn alice(app: &App) -> String {
    admin(app);
    let alice = user(app, "alice@example.com");
    team(app, &alice, "backend");
    alice
}

/// A billion-laughs manifest of about `size` bytes: each level is a list of aliases of
/// the level before, so expanding it would take far more memory than any host has.
fn yaml_bomb(size: usize) -> String {
    let mut doc = String::from(
        "id: bomb\nendpoint:\n  production: http://svc.example.com\nl0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut level = 1;
    loop {
        let aliases = vec![format!("*l{}", level - 1); 10].join(",");
        let line = format!("l{level}: &l{level} [{aliases}]\n");
        if doc.len() + line.len() > size {
            break;
        }
        doc.push_str(&line);
        level += 1;
    }
    doc
}

/// Sends `req`, failing (instead of waiting a minute) when it takes more than 10 s.
fn timed(req: e2e::RequestBuilder) -> (Resp, Duration) {
    let started = Instant::now();
    let resp = req
        .timeout(Duration::from_secs(10))
        .try_send()
        .unwrap_or_else(|e| panic!("no answer within 10 s: {e}"));
    (resp, started.elapsed())
}

#[test]
fn a_yaml_bomb_is_refused_in_well_under_a_second() {
    let app = app().start();
    let alice = alice(&app);
    let bomb = yaml_bomb(60 * 1024);
    assert!(bomb.len() > 50 * 1024 && bomb.len() <= MANIFEST_LIMIT);

    let (resp, took) = timed(app.post("/services").bearer(&alice).body(bomb.clone()));
    resp.assert_is(400, NO_REFERENCES);
    assert!(took < Duration::from_secs(1), "the bomb took {took:?}");
    let (resp, took) = timed(app.put("/services").bearer(&alice).body(bomb.clone()));
    resp.assert_is(400, NO_REFERENCES);
    assert!(took < Duration::from_secs(1), "the bomb took {took:?}");

    // A few at once do not take the host down.
    let answers = parallel(4, |_| {
        app.post("/services")
            .bearer(&alice)
            .body(bomb.clone())
            .timeout(Duration::from_secs(10))
    });
    for resp in &answers {
        resp.assert_is(400, NO_REFERENCES);
    }
    app.get("/healthcheck").send().assert_is(200, "WORKING");
    app.get("/services/bomb")
        .bearer(&alice)
        .send()
        .assert_is(404, "Service not found\n");

    // The 80 KB bomb of the report is over the manifest limit.
    let big = yaml_bomb(80 * 1000);
    assert!(big.len() > MANIFEST_LIMIT);
    let (resp, took) = timed(app.post("/services").bearer(&alice).body(big));
    resp.assert_is(413, TOO_LARGE);
    assert!(took < Duration::from_secs(1), "the big bomb took {took:?}");
}

#[test]
fn manifests_may_not_use_anchors_aliases_or_tags() {
    let app = app().start();
    let alice = alice(&app);
    let endpoint = "endpoint:\n  production: http://svc.example.com\n";
    for (what, body) in [
        ("a core tag", format!("id: !!str tagged\n{endpoint}")),
        ("a local tag", format!("id: !custom tagged\n{endpoint}")),
        (
            "a tagged mapping",
            "id: tagged\nendpoint: !!map\n  production: http://svc.example.com\n".to_string(),
        ),
        ("a lone anchor", format!("id: &name anchored\n{endpoint}")),
        (
            "an anchor and an alias",
            "id: aliased\nendpoint:\n  production: &url http://svc.example.com\n  test: *url\n"
                .to_string(),
        ),
        (
            "a merge key",
            "base: &base {production: http://svc.example.com}\nid: merged\nendpoint:\n  <<: *base\n"
                .to_string(),
        ),
    ] {
        let resp = app.post("/services").bearer(&alice).body(body.clone()).send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (400, NO_REFERENCES),
            "POST with {what}"
        );
        let resp = app.put("/services").bearer(&alice).body(body).send();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (400, NO_REFERENCES),
            "PUT with {what}"
        );
    }
    let list = app.get("/services").bearer(&alice).send();
    list.assert_is(200, "[]");
}

#[test]
fn ampersands_stars_and_bangs_inside_strings_are_plain_text() {
    let service = FakeServer::start();
    let app = app().start();
    let alice = alice(&app);
    // Plain and quoted scalars that merely contain the YAML indicator characters.
    let body = format!(
        "id: special\nusername: \"&user\"\npassword: p&ss*w!rd\nendpoint:\n  production: {}\n  test: 'http://svc-test.example.com/a&b*c!d'\n",
        service.url()
    );
    app.post("/services")
        .bearer(&alice)
        .body(body)
        .send()
        .assert_is(200, "success");
    let resp = app
        .post("/services/instances")
        .bearer(&alice)
        .json(&json!({"name": "mine", "service_name": "special"}))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let create = &service.requests_to("POST", "/resources")[0];
    assert_eq!(
        create.header("authorization"),
        Some(basic_auth("&user", "p&ss*w!rd").as_str())
    );

    // The documentation is plain text, not YAML: anything goes.
    app.put("/services/special/doc")
        .bearer(&alice)
        .body("&anchor *alias !!tag")
        .send()
        .assert_is(200, "");
}

/// A manifest of exactly `size` bytes (padded with a comment).
fn manifest_of_size(id: &str, size: usize) -> String {
    let head = format!("id: {id}\nendpoint:\n  production: http://svc.example.com\n# ");
    let pad = size - head.len() - 1;
    format!("{head}{}\n", "x".repeat(pad))
}

#[test]
fn manifests_are_at_most_64_kib() {
    let app = app().start();
    let alice = alice(&app);
    let at_limit = manifest_of_size("limit", MANIFEST_LIMIT);
    assert_eq!(at_limit.len(), MANIFEST_LIMIT);
    app.post("/services")
        .bearer(&alice)
        .body(at_limit)
        .send()
        .assert_is(200, "success");

    let over = manifest_of_size("over", MANIFEST_LIMIT + 1);
    app.post("/services")
        .bearer(&alice)
        .body(over)
        .send()
        .assert_is(413, TOO_LARGE);
    app.get("/services/over")
        .bearer(&alice)
        .send()
        .assert_is(404, "Service not found\n");
    let over = manifest_of_size("limit", MANIFEST_LIMIT + 1);
    app.put("/services")
        .bearer(&alice)
        .body(over)
        .send()
        .assert_is(413, TOO_LARGE);
}

// ---------------------------------------------------------------------------------------
// Password resets (API.md 8.7).

const RESET_WAIT: &str = "A password reset was requested recently. Try again in ";

/// Asserts a 429 with the reset message and `<n>` in 1..=60.
#[track_caller]
fn assert_reset_refused(resp: &Resp) {
    let text = resp.text();
    assert_eq!(resp.status, 429, "{text:?}");
    let n = seconds_in(&text, RESET_WAIT).unwrap_or_else(|| panic!("{text:?}"));
    assert!((1..=60).contains(&n), "{text:?}");
}

#[test]
fn a_reset_flood_sends_one_mail() {
    let mailer = FakeServer::start();
    let app = app()
        .var("mailer_url", &format!("{}/mail", mailer.url()))
        .start();
    admin(&app);
    assert_eq!(register(&app, "dana@example.com").status, 200);
    assert_eq!(register(&app, "erin@example.com").status, 200);

    let answers = parallel(100, |_| app.post("/users/dana@example.com/password"));
    let sent: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_reset_refused(r);
    }
    let mails = mailer.requests();
    assert_eq!(mails.len(), 1, "mails sent");
    assert_eq!(mails[0].json()["to"], "dana@example.com");

    // Still inside the window; another email is not affected.
    assert_reset_refused(&app.post("/users/dana@example.com/password").send());
    assert_eq!(mailer.requests().len(), 1);
    assert_eq!(
        app.post("/users/erin@example.com/password").send().status,
        200
    );
    assert_eq!(mailer.requests().len(), 2);
}

fn reset_token(mail: &e2e::Recorded) -> String {
    let body = mail.json()["body"].as_str().unwrap().to_string();
    let start = body.find("reset it: ").expect("token in the mail") + "reset it: ".len();
    body[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_failed_reset_mail_does_not_start_the_window() {
    let mailer = FakeServer::start();
    let app = app()
        .var("mailer_url", &format!("{}/mail", mailer.url()))
        .start();
    admin(&app);
    assert_eq!(register(&app, "erin@example.com").status, 200);

    mailer.on_once("POST", "/mail", Reply::text(500, "smtp down"));
    app.post("/users/erin@example.com/password")
        .send()
        .assert_is(502, "Failed to send e-mail: smtp down\n");
    let resp = app.post("/users/erin@example.com/password").send();
    assert_eq!(
        resp.status,
        200,
        "not refused after a failed mail: {}",
        resp.text()
    );
    let token = reset_token(&mailer.requests()[1]);
    assert_reset_refused(&app.post("/users/erin@example.com/password").send());

    // The second step is not limited by the window.
    let resp = app
        .post(&format!("/users/erin@example.com/password?token={token}"))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(mailer.requests().len(), 3);
    assert_eq!(
        mailer.requests()[2].json()["subject"],
        "[Tsuru] Password successfuly redefined"
    );
    // Nor does it start a new one: the first step's window still runs.
    assert_reset_refused(&app.post("/users/erin@example.com/password").send());
    assert_eq!(mailer.requests().len(), 3);
}

// ---------------------------------------------------------------------------------------
// Login throttling (API.md 8.6).

const LOGIN_WAIT: &str = "Too many failed login attempts. Try again in ";
const WRONG: &str = "Authentication failed, wrong password.\n";

fn login(app: &App, email: &str, password: &str) -> Resp {
    app.post(&format!("/users/{email}/tokens"))
        .json(&json!({ "password": password }))
        .send()
}

/// Asserts a 429 with the login message and `<n>` in `range`.
#[track_caller]
fn assert_login_refused(resp: &Resp, range: std::ops::RangeInclusive<u64>) {
    let text = resp.text();
    assert_eq!(resp.status, 429, "{text:?}");
    let n = seconds_in(&text, LOGIN_WAIT).unwrap_or_else(|| panic!("{text:?}"));
    assert!(range.contains(&n), "{text:?} not in {range:?}");
}

#[test]
fn five_failed_logins_block_the_email_until_the_delay_passes() {
    let app = app().start();
    admin(&app);
    let email = "frank@example.com";
    assert_eq!(register(&app, email).status, 200);
    assert_eq!(register(&app, "gina@example.com").status, 200);

    for _ in 0..5 {
        login(&app, email, "wrong-password").assert_is(401, WRONG);
    }
    // Even the right password is refused now, without being checked.
    login(&app, email, PASSWORD).assert_is(
        429,
        "Too many failed login attempts. Try again in 1 seconds.\n",
    );
    // The block is per email.
    assert_eq!(login(&app, "gina@example.com", PASSWORD).status, 200);

    std::thread::sleep(Duration::from_millis(1300));
    let ok = login(&app, email, PASSWORD);
    assert_eq!(ok.status, 200, "after the delay: {}", ok.text());

    // The success reset the count: five more failures before the next block.
    for _ in 0..5 {
        login(&app, email, "wrong-password").assert_is(401, WRONG);
    }
    assert_login_refused(&login(&app, email, "wrong-password"), 1..=1);
}

#[test]
fn the_delay_doubles_and_refused_attempts_are_cheap_and_do_not_extend_it() {
    let app = app().start();
    admin(&app);
    let email = "hank@example.com";
    assert_eq!(register(&app, email).status, 200);

    for _ in 0..5 {
        login(&app, email, "wrong-password").assert_is(401, WRONG);
    }
    assert_login_refused(&login(&app, email, PASSWORD), 1..=1);
    std::thread::sleep(Duration::from_millis(1300));
    // A sixth failure doubles the delay to 2 s.
    login(&app, email, "wrong-password").assert_is(401, WRONG);
    assert_login_refused(&login(&app, email, PASSWORD), 1..=2);
    std::thread::sleep(Duration::from_millis(2300));
    // A seventh: 4 s.
    login(&app, email, "wrong-password").assert_is(401, WRONG);
    let blocked_at = Instant::now();

    // 40 wrong passwords at once are all refused (none is hashed, none counts).
    let answers = parallel(40, |_| {
        app.post(&format!("/users/{email}/tokens"))
            .json(&json!({ "password": "wrong-password" }))
    });
    for resp in &answers {
        assert_login_refused(resp, 1..=4);
    }
    app.get("/healthcheck").send().assert_is(200, "WORKING");

    // The refused attempts did not extend the 4 s delay.
    let wait = Duration::from_millis(4300).saturating_sub(blocked_at.elapsed());
    std::thread::sleep(wait);
    let ok = login(&app, email, PASSWORD);
    assert_eq!(ok.status, 200, "after the delay: {}", ok.text());
}

// ---------------------------------------------------------------------------------------
// Bounds on stored and received data (API.md 8.4, 8.8).

#[test]
fn an_oversized_service_reply_is_a_transport_failure() {
    let service = FakeServer::start();
    let app = app().start();
    let alice = alice(&app);
    create_service(&app, &alice, "mysql", &service.url());
    e2e::services::create_instance(&app, &alice, "mysql", "big");

    service.on(
        "GET",
        "/resources/big/status",
        Reply::status(200).body(vec![b'x'; 2 * 1024 * 1024]),
    );
    let resp = app
        .get("/services/instances/big/status")
        .bearer(&alice)
        .send();
    let text = resp.text();
    let head: String = text.chars().take(300).collect();
    assert_eq!(resp.status, 502, "{head}");
    assert!(
        text.starts_with(
            "Could not retrieve status of service instance, error: Failed to get status of instance big: "
        ),
        "{head}"
    );
    assert!(text.contains("reply too large"), "{head}");
    assert!(text.len() < 1024, "{} bytes", text.len());
    app.get("/healthcheck").send().assert_is(200, "WORKING");
}

#[test]
fn only_the_newest_log_retention_entries_are_kept() {
    let app = app().var("log_retention", "100").start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    e2e::apps::create_app(&app, &alice, "api");
    let lines: Vec<String> = (1..=150).map(|i| format!("line-{i:03}")).collect();
    for batch in lines.chunks(50) {
        let resp = app
            .post("/apps/web/log")
            .bearer(&alice)
            .json(&json!(batch))
            .send();
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let resp = app
        .post("/apps/api/log")
        .bearer(&alice)
        .json(&json!(["api-1", "api-2"]))
        .send();
    assert_eq!(resp.status, 200);

    let kept = e2e::apps::log_messages(&app, &alice, "web", "?lines=0");
    assert_eq!(kept, lines[50..].to_vec(), "the newest 100 entries");
    // Retention is per app: the other app keeps its own entries.
    let api = e2e::apps::log_messages(&app, &alice, "api", "?lines=0");
    assert!(
        api.ends_with(&["api-1".to_string(), "api-2".to_string()]),
        "{api:?}"
    );
}

/// `[[...]]` nested `depth` levels deep.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The components' stack is 256 KiB (`.cargo/config.toml`): JSON nested as deep as
/// serde_json allows still parses and deeper JSON is a client error, YAML deeper than
/// 64 levels is refused at once, and none of it traps.
#[test]
fn deeply_nested_input_is_a_client_error_not_a_crash() {
    let app = app().start();
    let alice = alice(&app);
    // JSON: an unknown field as deep as serde_json goes (127 levels with the object).
    let deepest = format!(r#"{{"name": "deep", "extra": {}}}"#, nested_arrays(126));
    let created = app.post("/teams").bearer(&alice).body(deepest).send();
    assert_eq!(created.status, 200, "{}", created.text());
    let too_deep = format!(
        r#"{{"name": "deeper", "extra": {}}}"#,
        nested_arrays(100_000)
    );
    app.post("/teams")
        .bearer(&alice)
        .body(too_deep)
        .send()
        .assert_is(400, "Invalid JSON in request body.\n");
    // YAML: a manifest may nest 64 levels (the top-level mapping is the first); deeper is
    // refused by the scan, before libyaml's cost (which grows with the square of the
    // depth: seconds at 30,000 levels, within the 64 KiB cap) can grow.
    let manifest = |id: &str, levels: usize| {
        format!(
            "id: {id}\nendpoint:\n  production: http://svc.example.com\nextra: {}\n",
            nested_arrays(levels)
        )
    };
    let created = app
        .post("/services")
        .bearer(&alice)
        .body(manifest("deep", 63))
        .send();
    assert_eq!(created.status, 200, "{}", created.text());
    let (resp, took) = timed(
        app.post("/services")
            .bearer(&alice)
            .body(manifest("deeper", 30_000)),
    );
    resp.assert_is(400, "Invalid YAML manifest: nested deeper than 64 levels\n");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // The components still serve.
    assert_eq!(app.get("/teams").bearer(&alice).send().status, 200);
}

const TOO_MANY_VARIABLES: &str = "Too many environment variables: an app may hold at most 1000, of at most 1048576 bytes of names and values in all.\n";

/// `count` variables named `<prefix><i>` as a JSON object.
fn variables(prefix: &str, count: usize, value: &str) -> serde_json::Value {
    (0..count)
        .map(|i| (format!("{prefix}{i}"), json!(value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// An app holds at most 1,000 variables and 1 MiB of names and values, checked in the
/// write itself: concurrent writes near the limit never pass it together.
#[test]
fn an_app_holds_a_bounded_environment_even_under_concurrent_writes() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    let count = || {
        let listed = app.get("/apps/web/env").bearer(&alice).send();
        assert_eq!(listed.status, 200, "{}", listed.text());
        listed.json().as_array().unwrap().len()
    };
    let private = count();
    // Eight writers of 150 new names each, where at most 1,000 fit in all.
    let answers = parallel(8, |w| {
        app.post("/apps/web/env")
            .bearer(&alice)
            .json(&variables(&format!("W{w}_"), 150, "x"))
    });
    let accepted = answers.iter().filter(|r| r.status == 200).count();
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_is(400, TOO_MANY_VARIABLES);
    }
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(accepted, (1000 - private) / 150, "{statuses:?}");
    assert_eq!(count(), private + 150 * accepted);
    // Fill to the limit exactly; one more is refused and writes nothing.
    let room = 1000 - count();
    let set = |body: serde_json::Value| app.post("/apps/web/env").bearer(&alice).json(&body).send();
    assert_eq!(set(variables("FILL_", room, "x")).status, 200);
    set(variables("MORE_", 1, "x")).assert_is(400, TOO_MANY_VARIABLES);
    assert_eq!(count(), 1000);
    // Replacing variables at the limit is fine; removing some makes room again.
    assert_eq!(set(variables("FILL_", room, "y")).status, 200);
    let removed = app
        .delete("/apps/web/env?name=FILL_0")
        .bearer(&alice)
        .send();
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(set(variables("MORE_", 1, "x")).status, 200);
    // More than the limit in one request is refused before anything is written.
    let bob = user(&app, "bob@example.com");
    team(&app, &bob, "bobs");
    e2e::apps::create_app(&app, &bob, "big");
    let big = |body: serde_json::Value| app.post("/apps/big/env").bearer(&bob).json(&body).send();
    big(variables("V", 1001, "x")).assert_is(400, TOO_MANY_VARIABLES);
    let half = "x".repeat(600 * 1024);
    assert_eq!(big(variables("A", 1, &half)).status, 200);
    big(variables("B", 1, &half)).assert_is(400, TOO_MANY_VARIABLES);
}

const TOO_MANY_KEYS: &str = "Too many keys: a user may hold at most 100 keys.\n";
const KEY_TOO_LONG: &str = "Key too long: a key may be at most 16384 bytes.\n";

fn add_key(app: &App, token: &str, key: &str) -> Resp {
    app.post("/users/keys")
        .bearer(token)
        .json(&json!({ "key": key }))
        .send()
}

fn key_count(app: &App, token: &str, email: &str) -> usize {
    let listed = app
        .get(&format!("/users/{email}/keys"))
        .bearer(token)
        .send();
    assert_eq!(listed.status, 200, "{}", listed.text());
    listed.json().as_object().unwrap().len()
}

/// A user holds at most 100 keys of at most 16 KiB each, checked in the key's insert:
/// concurrent adds near the limit never pass it together, and a refused key never
/// reaches the git server.
#[test]
fn a_user_holds_a_bounded_set_of_keys_even_under_concurrent_adds() {
    let gandalf = FakeServer::start();
    let app = app().var("gandalf_url", &gandalf.url()).start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    for batch in 0..19 {
        for r in parallel(5, |i| {
            app.post("/users/keys")
                .bearer(&alice)
                .json(&json!({ "key": format!("ssh-ed25519 K{} a@laptop", batch * 5 + i) }))
        }) {
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    assert_eq!(key_count(&app, &alice, "alice@example.com"), 95);
    // Eight adds where five fit.
    gandalf.clear();
    let answers = parallel(8, |i| {
        app.post("/users/keys")
            .bearer(&alice)
            .json(&json!({ "key": format!("ssh-ed25519 RACE{i} a@laptop") }))
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_is(400, TOO_MANY_KEYS);
    }
    assert_eq!(key_count(&app, &alice, "alice@example.com"), 100);
    // An add refused at the store takes its key back from the git server, which ends
    // with the five stored.
    let sent = gandalf.requests();
    let added = sent.iter().filter(|r| r.method == "POST").count();
    let taken_back = sent.iter().filter(|r| r.method == "DELETE").count();
    assert_eq!(added - taken_back, 5, "{sent:?}");
    // At the limit the key is refused before the git server hears of it; the
    // duplicate check still comes first.
    gandalf.clear();
    add_key(&app, &alice, "ssh-ed25519 ONE_MORE a@laptop").assert_is(400, TOO_MANY_KEYS);
    add_key(&app, &alice, "ssh-ed25519 K0 a@laptop").assert_is(409, "User already has this key\n");
    assert!(gandalf
        .requests_to("POST", "/user/alice%40example.com/key")
        .is_empty());
    // Removing one makes room again.
    let removed = app
        .delete("/users/keys")
        .bearer(&alice)
        .json(&json!({ "key": "ssh-ed25519 K0 a@laptop" }))
        .send();
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(
        add_key(&app, &alice, "ssh-ed25519 ONE_MORE a@laptop").status,
        200
    );
    assert_eq!(key_count(&app, &alice, "alice@example.com"), 100);

    // A key's length: 16 KiB is fine, one byte more is refused, and nothing is stored.
    let bob = user(&app, "bob@example.com");
    let longest = format!("ssh-rsa {}", "A".repeat(16 * 1024 - 8));
    gandalf.clear();
    add_key(&app, &bob, &format!("{longest}A")).assert_is(400, KEY_TOO_LONG);
    assert!(gandalf.requests().is_empty());
    assert_eq!(key_count(&app, &bob, "bob@example.com"), 0);
    assert_eq!(add_key(&app, &bob, &longest).status, 200);

    // Registration holds to the same bounds; a key listed twice counts once.
    let register = |email: &str, keys: Vec<String>| {
        let keys: Vec<_> = keys.iter().map(|k| json!({ "content": k })).collect();
        app.post("/users")
            .json(&json!({"email": email, "password": PASSWORD, "keys": keys}))
            .send()
    };
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("ssh-ed25519 R{i}"))
            .collect::<Vec<_>>()
    };
    register("c@example.com", many(101)).assert_is(400, TOO_MANY_KEYS);
    register("c@example.com", vec![format!("{longest}A")]).assert_is(400, KEY_TOO_LONG);
    let mut twice = many(100);
    twice.extend(many(100));
    let accepted = register("c@example.com", twice);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let carol = e2e::accounts::login(&app, "c@example.com");
    assert_eq!(key_count(&app, &carol, "c@example.com"), 100);
    add_key(&app, &carol, "ssh-ed25519 MORE").assert_is(400, TOO_MANY_KEYS);
}

const TOO_MANY_TEAMS: &str = "Too many teams: a user may belong to at most 1000 teams.\n";

fn team_count(app: &App, token: &str) -> usize {
    let listed = app.get("/teams").bearer(token).send();
    assert_eq!(listed.status, 200, "{}", listed.text());
    listed.json().as_array().unwrap().len()
}

/// A user belongs to at most 1,000 teams, whether they create them or another tenant
/// adds them: the count is checked in the membership's insert, so concurrent adds near
/// the limit never pass it together, and a refused creation leaves no team behind.
#[test]
fn a_user_belongs_to_a_bounded_number_of_teams_even_when_others_add_them() {
    let app = app().start();
    admin(&app);
    let alice = user(&app, "alice@example.com");
    let mallory = user(&app, "mallory@example.com");
    for batch in 0..124 {
        for r in parallel(8, |i| {
            app.post("/teams")
                .bearer(&alice)
                .json(&json!({ "name": format!("a{}", batch * 8 + i) }))
        }) {
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    for i in 0..16 {
        team(&app, &mallory, &format!("m{i}"));
    }
    assert_eq!(team_count(&app, &alice), 992);
    // Sixteen teams add alice at once, where eight fit.
    let answers = parallel(16, |i| {
        app.put(&format!("/teams/m{i}/alice@example.com"))
            .bearer(&mallory)
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        8,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_is(
            400,
            "Too many teams: user alice@example.com already belongs to 1000 teams, the most a user may.\n",
        );
    }
    assert_eq!(team_count(&app, &alice), 1000);
    // Alice can create no team; the refused one does not exist, so mallory can take
    // its name.
    let created = app
        .post("/teams")
        .bearer(&alice)
        .json(&json!({ "name": "one-more" }))
        .send();
    created.assert_is(400, TOO_MANY_TEAMS);
    team(&app, &mallory, "one-more");
    // A name taken answers 409 first, as it always has.
    app.post("/teams")
        .bearer(&alice)
        .json(&json!({ "name": "m0" }))
        .send()
        .assert_is(409, "Team already exists\n");
    // Leaving a team makes room again.
    let joined: Vec<usize> = (0..16).filter(|i| answers[*i].status == 200).collect();
    let left = app
        .delete(&format!("/teams/m{}/alice@example.com", joined[0]))
        .bearer(&alice)
        .send();
    assert_eq!(left.status, 200, "{}", left.text());
    team(&app, &alice, "one-more-after-all");
    assert_eq!(team_count(&app, &alice), 1000);
    // Mallory's own count is unaffected by alice's.
    assert_eq!(team_count(&app, &mallory), 17);
    // A team's name is at most 255 bytes.
    let longest = format!("t{}", "x".repeat(254));
    team(&app, &mallory, &longest);
    app.post("/teams")
        .bearer(&mallory)
        .json(&json!({ "name": format!("{longest}x") }))
        .send()
        .assert_is(400, "Invalid team name\n");
}

/// A log entry is at most 16 KiB: a longer message is kept whole, as consecutive entries
/// cut at character boundaries, so `log_retention` bounds the bytes an app's log holds.
#[test]
fn a_long_log_message_is_kept_as_entries_of_at_most_16_kib() {
    let app = app().start();
    let (_, alice) = e2e::apps::alice_with_web(&app);
    // 40,002 bytes of two-byte characters after one ASCII byte: no cut at 16 KiB falls
    // on a boundary by chance.
    let long = format!("x{}", "é".repeat(20_000) + "z");
    let resp = app
        .post("/apps/web/log?source=test")
        .bearer(&alice)
        .json(&json!(["before", long, "", "after"]))
        .send();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let tail = e2e::apps::log_messages(&app, &alice, "web", "?lines=0&source=test");
    let sizes: Vec<usize> = tail.iter().map(|m| m.len()).collect();
    // The empty line is no entry (API.md 3.1).
    assert_eq!(tail.len(), 1 + 3 + 1, "{sizes:?}");
    assert_eq!(tail[0], "before");
    assert!(tail[1..4].iter().all(|m| m.len() <= 16 * 1024));
    assert_eq!(tail[1..4].concat(), long);
    assert_eq!(tail[4], "after");
}

const TOO_MANY_SERVICES: &str = "Too many services: a user may register at most 100 services.\n";

/// The services alice may use listed by `GET /services`, by id.
fn service_ids(app: &App, token: &str) -> Vec<String> {
    let listed = app.get("/services").bearer(token).send();
    assert_eq!(listed.status, 200, "{}", listed.text());
    listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap().to_string())
        .collect()
}

/// A user registers at most 100 services (each holds a manifest of up to 64 KiB and a
/// document of up to 1 MiB): the count is checked in the insert, so concurrent
/// registrations near the limit never pass it together; removing one makes room, and
/// another user's count is their own, even in the same team.
#[test]
fn a_user_registers_a_bounded_number_of_services_even_concurrently() {
    let app = app().start();
    let alice = alice(&app);
    let bob = user(&app, "bob@example.com");
    e2e::accounts::add_to_team(&app, &alice, "backend", "bob@example.com");
    for batch in 0..12 {
        for r in parallel(8, |i| {
            app.post("/services")
                .bearer(&alice)
                .body(e2e::services::manifest(
                    &format!("s{}", batch * 8 + i),
                    "http://svc.example.com",
                ))
        }) {
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    // Sixteen at once, where four fit.
    let answers = parallel(16, |i| {
        app.post("/services")
            .bearer(&alice)
            .body(e2e::services::manifest(
                &format!("r{i}"),
                "http://svc.example.com",
            ))
    });
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    for refused in answers.iter().filter(|r| r.status != 200) {
        refused.assert_is(400, TOO_MANY_SERVICES);
    }
    assert_eq!(service_ids(&app, &alice).len(), 100);
    // A refused registration leaves nothing behind: bob may take its name.
    let refused: Vec<usize> = (0..16).filter(|i| answers[*i].status != 200).collect();
    let name = format!("r{}", refused[0]);
    app.post("/services")
        .bearer(&alice)
        .body(e2e::services::manifest(
            "one-more",
            "http://svc.example.com",
        ))
        .send()
        .assert_is(400, TOO_MANY_SERVICES);
    create_service(&app, &bob, &name, "http://svc.example.com");
    // A name taken still answers 409 first.
    app.post("/services")
        .bearer(&alice)
        .body(e2e::services::manifest("s0", "http://svc.example.com"))
        .send()
        .assert_is(409, "Service with name s0 already exists.\n");
    // Removing one of hers makes room again.
    let removed = app.delete("/services/s0").bearer(&alice).send();
    assert_eq!(removed.status, 204, "{}", removed.text());
    create_service(&app, &alice, "one-more", "http://svc.example.com");
    app.post("/services")
        .bearer(&alice)
        .body(e2e::services::manifest(
            "two-more",
            "http://svc.example.com",
        ))
        .send()
        .assert_is(400, TOO_MANY_SERVICES);
    // Bob's registration counted for bob; both see all 101 through their team.
    assert_eq!(service_ids(&app, &bob).len(), 101);
}

/// A user holds at most 1,000 login tokens: the 1,001st login ends the oldest token
/// (401), and every later one still works. Logins run one at a time, as a login loop
/// would.
#[test]
fn a_login_past_a_thousand_live_tokens_ends_the_oldest() {
    let app = app().start();
    admin(&app);
    let first = user(&app, "alice@example.com");
    let second = e2e::accounts::login(&app, "alice@example.com");
    for _ in 0..998 {
        e2e::accounts::login(&app, "alice@example.com");
    }
    let teams = |token: &str| app.get("/teams").bearer(token).send();
    assert_eq!(teams(&first).status, 200, "1,000 tokens: all live");
    let newest = e2e::accounts::login(&app, "alice@example.com");
    teams(&first).assert_is(401, "Invalid token\n");
    assert_eq!(teams(&second).status, 200);
    assert_eq!(teams(&newest).status, 200);
}

/// How many audit events have `action`, and the highest event id (the trail has no route).
fn audit_trail(app: &App, action: &str) -> (i64, i64) {
    rusqlite::Connection::open(app.data_dir().join(".spin/sqlite_db.db"))
        .and_then(|db| {
            db.query_row(
                "SELECT (SELECT COUNT(*) FROM audit_events WHERE action = ?), \
                 (SELECT COALESCE(MAX(id), 0) FROM audit_events)",
                [action],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .expect("read the audit events")
}

#[test]
fn with_audit_retention_days_set_events_past_it_are_pruned_and_others_kept() {
    for (retention, old_kept) in [("30", 0), ("", 1_500)] {
        let app = app().var("audit_retention_days", retention).start();
        let alice = alice(&app);
        // 1,500 events from 2020, then one from now with an id just below 2,000, where
        // the event of the request that reaches it looks for events past retention.
        app.sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) \
             INSERT INTO audit_events (date, actor, action, target) \
             SELECT '2020-01-01T00:00:00Z', 'old@example.com', 'old', 'x' FROM n; \
             INSERT INTO audit_events (id, date, actor, action, target) \
             VALUES (1995, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), 'r@example.com', 'recent', 'x');",
        );
        let mut teams = 0;
        while audit_trail(&app, "old").1 < 2_000 {
            teams += 1;
            team(&app, &alice, &format!("t{teams}"));
        }
        assert!(teams <= 5, "one event per team creation: {teams}");
        assert_eq!(
            audit_trail(&app, "old").0,
            old_kept,
            "retention {retention:?}"
        );
        assert_eq!(audit_trail(&app, "recent").0, 1);
        assert_eq!(audit_trail(&app, "create-team").0, teams + 1);
    }
}
