//! The benchmark: serves the real `spin.toml` (release `.wasm` components) and the test
//! probe on the test host, drives it over keep-alive connections with 4 and then 16
//! concurrent clients, and prints per route requests per second, p50/p99 latency, the
//! ratio to the probe's no-op route, answers with another status than expected and
//! component output lines saying "database is locked"; then `GET /apps` again once the
//! database holds 10,000 apps (created through the API), taking turns with the no-op
//! again (the slowdown compares the two ratios to it), how many SQLite statements,
//! SQLite opens and key-value calls one request of each route makes, and the targets
//! with PASS/MISS.
//!
//! ```text
//! cargo run --profile bench-host -p bench      # full run, host optimised (about 12 min)
//! cargo run -p bench -- --smoke                # seconds, debug host; CI runs this
//! cargo run -p bench -- --threads 16           # one client count only
//! cargo run -p bench -- --rounds 1 --calls     # one round; list every host call too
//! cargo run -p bench -- --apps 100             # a smaller scaling run
//! cargo run -p bench -- --only /env --calls    # just the matching routes, no targets
//! cargo run -p bench -- --route "POST /apps"    # that route alone
//! ```
//!
//! Read routes, write routes (each create paired with the delete that cleans up after it)
//! and login are measured. Every client sends valid requests that do not conflict with
//! the others' (unique names from a counter, items taken from shared pools: an app
//! created by `POST /apps` is removed by one `DELETE /apps/:app`, and so on).
//!
//! A missed target is reported, not an error; the exit status is non-zero only when
//! something fails: a route answering another status than its expected one (2xx; 401 for
//! the route without a token), a transport error, a host that does not start. The
//! `.wasm` files must be built first (`tests/run.sh` does; see README.md).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::{accounts, App, RequestBuilder};
use serde_json::json;

/// Client counts every route is measured with (`--threads N` picks one).
const CLIENT_COUNTS: [usize; 2] = [4, 16];
/// Apps the benchmark user can see (one team); the scaling run adds apps of other teams.
const USER_APPS: usize = 10;
/// Users (each with one team) who own the apps seeded for the scaling run.
const OTHER_USERS: usize = 10;
/// Client threads creating those apps.
const SEED_THREADS: usize = 8;
/// Reads: owns `bench-app-*`, sees nothing else.
const USER: &str = "bench@example.com";
/// Writes on apps: owns `w-0` (variables, log, cname, restart, quota), `wu-<client>`
/// (units), `ga-*` (grants) and the apps `POST /apps` creates.
const WRITER: &str = "writer@example.com";
/// Owns the teams granted to `ga-*` (a member of many teams: kept apart from the users
/// who create apps, whose new apps get all their teams).
const GRANTEE: &str = "grantee@example.com";
/// The writes on one app all go to this one (several clients on one row, as users do).
const WRITE_APP: &str = "w-0";
/// `quota_units_per_app` for the run, so apps carry the quota rows creation writes.
const UNITS_PER_APP: &str = "10";
/// Routes the targets are about.
const NOOP: &str = "no-op (probe)";
const SQLITE: &str = "probe: SQLite query";
const APPS: &str = "GET /apps";
const LOGIN: &str = "login";
const LOGIN_ALONE: &str = "login, one client alone";
/// Targets.
const WRITE_P99_MS: f64 = 100.0;
const READ_STATEMENTS: usize = 3;
const LOCKED: &str = "database is locked";
/// Variable names `POST /apps/:app/env` cycles through: a large app's environment
/// (an app holds at most 1,000; each write's check of that limit reads them all).
const ENV_NAMES: usize = 100;

struct Options {
    smoke: bool,
    /// `None`: every count of [`CLIENT_COUNTS`].
    threads: Option<usize>,
    rounds: Option<usize>,
    /// Print every host call of one request of each route, not only the counts.
    calls: bool,
    /// Apps in the database for the scaling run (default 10,000; 100 in smoke mode).
    apps: Option<usize>,
    /// Measure only the routes whose name contains this (and the no-op), then stop: a
    /// quick look at one route while working on it, with no scaling run and no targets.
    /// A route that consumes what another creates needs it chosen too (`/teams` takes
    /// both `POST /teams` and `DELETE /teams/:team`).
    only: Option<String>,
    /// `--route`: [`Options::only`] names one route exactly (`POST /apps` alone, not
    /// every route under it): for profiles and A/B runs of that route.
    exact: bool,
}

/// How long and how big each part of a run is.
struct Scale {
    /// Each route is measured this many times per client count, the routes taking turns,
    /// and its median round (by requests per second) is reported: a burst of other work on
    /// the machine then spoils one round of one route, not the route.
    rounds: usize,
    warmup: Duration,
    window: Duration,
    total_apps: usize,
    /// Apps and teams whose pairs the grant and revoke routes use (a pair is granted
    /// once, then waits for its revoke).
    grant_apps: usize,
    grant_teams: usize,
    /// Users that `POST /teams` and `POST /users/keys` take turns with: a user belongs
    /// to at most 1,000 teams and holds at most 100 keys, fewer than a round creates.
    team_creators: usize,
    key_holders: usize,
}

impl Options {
    /// Whether `--only` or `--route` picks the route named `name` (the no-op always).
    fn chooses(&self, name: &str) -> bool {
        match &self.only {
            _ if name == NOOP => true,
            Some(only) if self.exact => name == only,
            Some(only) => name.contains(only.as_str()),
            None => true,
        }
    }

    fn parse() -> Result<Self, String> {
        let mut options = Options {
            smoke: false,
            threads: None,
            rounds: None,
            calls: false,
            apps: None,
            only: None,
            exact: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--calls" => options.calls = true,
                "--threads" => options.threads = Some(positive(args.next(), "--threads")?),
                "--rounds" => options.rounds = Some(positive(args.next(), "--rounds")?),
                "--apps" => options.apps = Some(positive(args.next(), "--apps")?),
                "--only" => {
                    options.only = Some(args.next().ok_or("--only needs a route")?);
                    options.exact = false;
                }
                "--route" => {
                    options.only = Some(args.next().ok_or("--route needs a route")?);
                    options.exact = true;
                }
                "-h" | "--help" => {
                    println!(
                        "usage: bench [--smoke] [--threads N] [--rounds N] [--apps N] [--only TEXT | --route NAME] [--calls]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }

    fn client_counts(&self) -> Vec<usize> {
        match self.threads {
            Some(n) => vec![n],
            None => CLIENT_COUNTS.to_vec(),
        }
    }

    fn scale(&self) -> Scale {
        let mut scale = if self.smoke {
            Scale {
                rounds: 1,
                warmup: Duration::ZERO,
                window: Duration::from_millis(40),
                total_apps: 100,
                grant_apps: 6,
                grant_teams: 8,
                team_creators: 1,
                key_holders: 1,
            }
        } else {
            Scale {
                rounds: 3,
                warmup: Duration::from_millis(300),
                window: Duration::from_secs(2),
                total_apps: 10_000,
                grant_apps: 30,
                grant_teams: 60,
                team_creators: 10,
                key_holders: 50,
            }
        };
        if let Some(r) = self.rounds {
            scale.rounds = r;
        }
        if let Some(n) = self.apps {
            scale.total_apps = n;
        }
        scale
    }
}

fn positive(value: Option<String>, name: &str) -> Result<usize, String> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or(format!("{name} needs a positive number"))
}

fn main() {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let app = e2e::app()
        .with_probe()
        .var("quota_units_per_app", UNITS_PER_APP)
        .configure(|c| c.echo_component_output = false)
        .start();
    if let Err(e) = run(&app, &options) {
        eprintln!("bench: FAILED: {e}");
        let output = app.component_output();
        if !output.is_empty() {
            eprintln!("component output:\n{output}");
        }
        std::process::exit(1);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// What the platform itself costs (the probe), for reading the table.
    Reference,
    Read,
    Write,
    /// Writes too, but bound by the password hash (CPU): its own targets.
    Login,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Reference => "ref",
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Login => "login",
        }
    }
}

/// One request to send, and what to do once it succeeded (hand an item to the route that
/// cleans up after it).
struct Job<'a> {
    request: RequestBuilder,
    then: Option<Box<dyn FnOnce() + 'a>>,
}

fn job<'a>(request: RequestBuilder) -> Option<Job<'a>> {
    Some(Job {
        request,
        then: None,
    })
}

fn job_then<'a>(request: RequestBuilder, then: impl FnOnce() + 'a) -> Option<Job<'a>> {
    Some(Job {
        request,
        then: Some(Box::new(then)),
    })
}

/// Items (names) one route leaves for another, each taken by exactly one request.
#[derive(Default)]
struct Pool(Mutex<VecDeque<String>>);

impl Pool {
    fn push(&self, item: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(item);
    }

    fn pop(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

/// Builds the next request of the client with this index.
type NextJob<'a> = dyn Fn(usize) -> Option<Job<'a>> + Sync + 'a;

/// One measured route: a name, how to build a client's next request (`None`: nothing
/// left to do for this client, which stops), and the status every answer must have.
struct Endpoint<'a> {
    name: &'static str,
    kind: Kind,
    status: u16,
    next: Box<NextJob<'a>>,
}

impl<'a> Endpoint<'a> {
    fn new(
        name: &'static str,
        kind: Kind,
        status: u16,
        next: impl Fn(usize) -> Option<Job<'a>> + Sync + 'a,
    ) -> Self {
        Self {
            name,
            kind,
            status,
            next: Box::new(next),
        }
    }
}

/// One measuring window of one route.
struct Round {
    /// Latencies of the requests sent inside the window.
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// Answers (warm-up included) with another status than expected, and the first one.
    unexpected: usize,
    first_unexpected: Option<String>,
    /// Component output lines saying "database is locked" during the window.
    locked: usize,
}

impl Round {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// The median round of a route at one client count, with the failures of all rounds.
struct Summary {
    median: Round,
    unexpected: usize,
    first_unexpected: Option<String>,
    locked: usize,
}

fn summarize_rounds(mut rounds: Vec<Round>) -> Summary {
    let unexpected = rounds.iter().map(|r| r.unexpected).sum();
    let locked = rounds.iter().map(|r| r.locked).sum();
    let first_unexpected = rounds.iter().find_map(|r| r.first_unexpected.clone());
    rounds.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let median = rounds.swap_remove(rounds.len() / 2);
    Summary {
        median,
        unexpected,
        first_unexpected,
        locked,
    }
}

/// Results of one client count: (route, kind, summary), in endpoint order.
struct Measured {
    clients: usize,
    routes: Vec<(&'static str, Kind, Summary)>,
}

impl Measured {
    fn get(&self, name: &str) -> &Summary {
        &self
            .routes
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect(name)
            .2
    }
}

fn run(app: &App, options: &Options) -> Result<(), String> {
    let scale = options.scale();
    let counts = options.client_counts();
    let max_clients = counts.iter().copied().max().unwrap_or(1);
    println!("tsuru on the Spin test host: benchmark{}", {
        if options.smoke {
            " (smoke mode: short windows, small database; numbers are not meaningful)"
        } else {
            ""
        }
    });
    println!(
        "host build: {}; {} CPU(s); load average at start: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "optimised"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into()),
    );
    println!(
        "{} client threads, one keep-alive connection each; per route and client count {} round(s) of {:.2} s warm-up and {:.2} s measured, median round shown\n",
        counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        scale.rounds,
        scale.warmup.as_secs_f64(),
        scale.window.as_secs_f64()
    );

    // Callers and their data (see the constants).
    let admin = accounts::admin(app);
    let token = accounts::user(app, USER);
    accounts::team(app, &token, "bench");
    for i in 0..USER_APPS {
        e2e::apps::create_app(app, &token, &user_app(i));
    }
    let writer = accounts::user(app, WRITER);
    accounts::team(app, &writer, "writers");
    e2e::apps::create_app(app, &writer, WRITE_APP);
    for t in 0..max_clients {
        // One app per client for units: adds and removals on an app of one's own never
        // race for the same unit. Its unit quota is lifted so adds never run out.
        e2e::apps::create_app(app, &writer, &units_app(t));
        let resp = app
            .put(&format!("/quota/{}", units_app(t)))
            .bearer(&admin)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("quota=1000000")
            .send();
        expect_ok(&resp, "lift the unit quota")?;
    }
    for a in 0..scale.grant_apps {
        e2e::apps::create_app(app, &writer, &format!("ga-{a}"));
    }
    let grantee = accounts::user(app, GRANTEE);
    for k in 0..scale.grant_teams {
        accounts::team(app, &grantee, &format!("gt-{k}"));
    }
    let team_creators: Vec<String> = (0..scale.team_creators)
        .map(|i| accounts::user(app, &format!("teams-{i}@example.com")))
        .collect();
    let key_holders: Vec<String> = (0..scale.key_holders)
        .map(|i| accounts::user(app, &format!("keys-{i}@example.com")))
        .collect();
    // What the platform itself costs, for reading the table: the probe reading one
    // key-value entry, and opening SQLite for one indexed query on the app's database;
    // and the apps component answering without touching a store (no token: 401).
    for setup in [
        "/probe/kv/set?key=bench",
        "/probe/sql/write?key=bench&value=1",
    ] {
        expect_ok(&app.post(setup).body("1").send(), setup)?;
    }

    // Items the paired routes hand each other.
    let ids = AtomicUsize::new(0);
    let next_id = || ids.fetch_add(1, Ordering::Relaxed);
    let created_apps = Pool::default();
    let env_names = Pool::default();
    let free_grants = Pool::default();
    let granted = Pool::default();
    // Pairs interleaved so that concurrent grants mostly hit different apps.
    for k in 0..scale.grant_teams {
        for a in 0..scale.grant_apps {
            free_grants.push(format!("ga-{a}/gt-{k}"));
        }
    }
    let added_units: Vec<Pool> = (0..max_clients).map(|_| Pool::default()).collect();
    let created_teams = Pool::default();
    let keys = Pool::default();
    let password = json!({ "password": accounts::PASSWORD });

    let (created_apps, env_names, free_grants, granted) =
        (&created_apps, &env_names, &free_grants, &granted);
    let (added_units, created_teams, keys) = (&added_units, &created_teams, &keys);
    let (token, writer, admin, password) = (&token, &writer, &admin, &password);
    let (team_creators, key_holders) = (&team_creators, &key_holders);

    let next_id = &next_id;
    use Kind::{Login, Read, Reference, Write};
    let endpoints = [
        Endpoint::new(NOOP, Reference, 200, |_| job(app.get("/probe/noop"))),
        Endpoint::new("probe: key-value get", Reference, 200, |_| {
            job(app.get("/probe/kv/get?key=bench"))
        }),
        Endpoint::new(SQLITE, Reference, 200, |_| {
            job(app.get("/probe/sql/read?key=bench"))
        }),
        Endpoint::new("GET /healthcheck", Read, 200, |_| {
            job(app.get("/healthcheck"))
        }),
        Endpoint::new("GET /apps, no token (401)", Read, 401, |_| {
            job(app.get("/apps"))
        }),
        Endpoint::new(APPS, Read, 200, |_| job(app.get("/apps").bearer(token))),
        Endpoint::new("GET /apps/:app", Read, 200, |_| {
            job(app.get(&format!("/apps/{}", user_app(0))).bearer(token))
        }),
        Endpoint::new("GET /apps/:app/env", Read, 200, |_| {
            job(app.get(&format!("/apps/{}/env", user_app(0))).bearer(token))
        }),
        Endpoint::new("GET /apps/:app/log", Read, 200, |_| {
            job(app
                .get(&format!("/apps/{}/log?lines=10", user_app(0)))
                .bearer(token))
        }),
        Endpoint::new("GET /teams", Read, 200, |_| {
            job(app.get("/teams").bearer(token))
        }),
        Endpoint::new("GET /platforms", Read, 200, |_| {
            job(app.get("/platforms").bearer(token))
        }),
        Endpoint::new("GET /quota/:owner", Read, 200, |_| {
            job(app.get(&format!("/quota/{USER}")).bearer(token))
        }),
        Endpoint::new("POST /apps", Write, 200, |_| {
            let name = format!("bn-{}", next_id());
            let request = app
                .post("/apps")
                .bearer(writer)
                .json(&json!({"name": name, "platform": "python"}));
            job_then(request, move || created_apps.push(name))
        }),
        Endpoint::new("DELETE /apps/:app", Write, 200, |_| {
            let name = created_apps.pop()?;
            job(app.delete(&format!("/apps/{name}")).bearer(writer))
        }),
        Endpoint::new("POST /apps/:app/env", Write, 200, |_| {
            // Names from a set that fits an app's variables: once it is used up, writes
            // replace values, as configuration changes do.
            let n = next_id();
            let name = format!("BENCH_{}", n % ENV_NAMES);
            let request = app
                .post(&format!("/apps/{WRITE_APP}/env"))
                .bearer(writer)
                .json(&json!({ &name: n.to_string() }));
            job_then(request, move || env_names.push(name))
        }),
        Endpoint::new("DELETE /apps/:app/env", Write, 200, |_| {
            let name = env_names.pop()?;
            job(app
                .delete(&format!("/apps/{WRITE_APP}/env?name={name}"))
                .bearer(writer))
        }),
        Endpoint::new("PUT /apps/:app/:team", Write, 200, |_| {
            let pair = free_grants.pop()?;
            let request = app.put(&format!("/apps/{pair}")).bearer(writer);
            job_then(request, move || granted.push(pair))
        }),
        Endpoint::new("DELETE /apps/:app/:team", Write, 200, |_| {
            let pair = granted.pop()?;
            let request = app.delete(&format!("/apps/{pair}")).bearer(writer);
            job_then(request, move || free_grants.push(pair))
        }),
        Endpoint::new("POST /apps/:app/log", Write, 200, |_| {
            job(app
                .post(&format!("/apps/{WRITE_APP}/log?source=bench"))
                .bearer(writer)
                .json(&json!([format!("bench line {}", next_id())])))
        }),
        Endpoint::new("POST /apps/:app/cname", Write, 200, |_| {
            job(app
                .post(&format!("/apps/{WRITE_APP}/cname"))
                .bearer(writer)
                .json(&json!({ "cname": format!("c{}.bench.example.com", next_id()) })))
        }),
        Endpoint::new("DELETE /apps/:app/cname", Write, 200, |_| {
            job(app
                .delete(&format!("/apps/{WRITE_APP}/cname"))
                .bearer(writer))
        }),
        Endpoint::new("PUT /apps/:app/units", Write, 200, |c| {
            let name = units_app(c);
            let request = app
                .put(&format!("/apps/{name}/units"))
                .bearer(writer)
                .body("1");
            job_then(request, move || added_units[c].push(name))
        }),
        Endpoint::new("DELETE /apps/:app/units", Write, 200, |c| {
            let name = added_units[c].pop()?;
            job(app
                .delete(&format!("/apps/{name}/units"))
                .bearer(writer)
                .body("1"))
        }),
        Endpoint::new("POST /apps/:app/restart", Write, 200, |_| {
            job(app
                .post(&format!("/apps/{WRITE_APP}/restart"))
                .bearer(writer))
        }),
        Endpoint::new("POST /teams", Write, 200, |_| {
            let n = next_id();
            let request = app
                .post("/teams")
                .bearer(item_owner(team_creators, n))
                .json(&json!({ "name": format!("bt-{n}") }));
            job_then(request, move || created_teams.push(n.to_string()))
        }),
        Endpoint::new("DELETE /teams/:team", Write, 200, |_| {
            let n: usize = created_teams.pop()?.parse().ok()?;
            job(app
                .delete(&format!("/teams/bt-{n}"))
                .bearer(item_owner(team_creators, n)))
        }),
        Endpoint::new("POST /users/keys", Write, 200, |_| {
            let n = next_id();
            let request = app
                .post("/users/keys")
                .bearer(item_owner(key_holders, n))
                .json(&json!({ "key": bench_key(n) }));
            job_then(request, move || keys.push(n.to_string()))
        }),
        Endpoint::new("DELETE /users/keys", Write, 200, |_| {
            let n: usize = keys.pop()?.parse().ok()?;
            job(app
                .delete("/users/keys")
                .bearer(item_owner(key_holders, n))
                .json(&json!({ "key": bench_key(n) })))
        }),
        Endpoint::new("POST /tokens", Write, 200, |_| {
            job(app
                .post("/tokens")
                .bearer(admin)
                .json(&json!({ "client": format!("bench-client-{}", next_id()) })))
        }),
        Endpoint::new("PUT /quota/:owner", Write, 200, |_| {
            job(app
                .put(&format!("/quota/{WRITE_APP}"))
                .bearer(admin)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("quota={}", 10 + next_id() % 90)))
        }),
        Endpoint::new(LOGIN, Login, 200, |_| {
            job(app.post(&format!("/users/{USER}/tokens")).json(password))
        }),
    ];

    if options.only.is_some() {
        let chosen: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| options.chooses(e.name))
            .collect();
        if chosen.iter().all(|e| e.name == NOOP) {
            let only = options.only.as_deref().unwrap_or_default();
            return Err(format!("no route matches {only:?}"));
        }
        for &clients in &counts {
            // Rounds go over every chosen route in turn, as in the full run, so a route
            // that hands items to another (grant and revoke) refills its pool each round.
            let mut per_route: Vec<Vec<Round>> = chosen.iter().map(|_| Vec::new()).collect();
            for _ in 0..scale.rounds {
                for (endpoint, rounds) in chosen.iter().zip(per_route.iter_mut()) {
                    rounds.push(measure(app, clients, &scale, endpoint)?);
                }
            }
            let routes = chosen
                .iter()
                .zip(per_route)
                .map(|(e, r)| (e.name, e.kind, summarize_rounds(r)))
                .collect();
            print_table(&Measured { clients, routes });
        }
        let chosen: Vec<Endpoint> = endpoints
            .into_iter()
            .filter(|e| options.chooses(e.name))
            .collect();
        host_calls(app, &chosen, options.calls);
        return Ok(());
    }
    let login = find(&endpoints, LOGIN);
    let mut rounds: Vec<Vec<Vec<Round>>> = counts
        .iter()
        .map(|_| endpoints.iter().map(|_| Vec::new()).collect())
        .collect();
    let mut login_alone = Vec::new();
    for _ in 0..scale.rounds {
        for (clients, per_endpoint) in counts.iter().zip(&mut rounds) {
            for (endpoint, stats) in endpoints.iter().zip(per_endpoint.iter_mut()) {
                stats.push(measure(app, *clients, &scale, endpoint)?);
            }
        }
        login_alone.push(measure(app, 1, &scale, login)?);
    }
    let measured: Vec<Measured> = counts
        .iter()
        .zip(rounds)
        .map(|(&clients, per_endpoint)| Measured {
            clients,
            routes: endpoints
                .iter()
                .zip(per_endpoint)
                .map(|(e, r)| (e.name, e.kind, summarize_rounds(r)))
                .collect(),
        })
        .collect();
    let login_alone = summarize_rounds(login_alone);
    for m in &measured {
        print_table(m);
    }
    println!(
        "\n{LOGIN_ALONE}: {:.1} req/s  p50 {:.2} ms  p99 {:.2} ms",
        login_alone.median.per_second(),
        ms(login_alone.median.p50),
        ms(login_alone.median.p99)
    );
    println!(
        "non-2xx: answers with another status than the route's (401 for the no-token route), warm-up included, all rounds; locked: component output lines saying \"{LOCKED}\"."
    );
    let failures: Vec<String> = measured
        .iter()
        .flat_map(|m| {
            m.routes.iter().filter_map(move |(name, _, s)| {
                s.first_unexpected.as_ref().map(|first| {
                    format!(
                        "{name} ({} clients): {} unexpected answer(s), first: {first}",
                        m.clients, s.unexpected
                    )
                })
            })
        })
        .chain(
            login_alone
                .first_unexpected
                .iter()
                .map(|first| format!("{LOGIN_ALONE}: first unexpected answer: {first}")),
        )
        .collect();
    if !failures.is_empty() {
        return Err(format!(
            "routes answered with unexpected statuses:\n  {}",
            failures.join("\n  ")
        ));
    }

    // Scaling: the same listing once the database holds `total_apps` apps of other teams.
    let before = count_apps(app, admin)?;
    let seeded = scale.total_apps.saturating_sub(before);
    let seeding = seed_other_apps(app, seeded)?;
    let after = count_apps(app, admin)?;
    println!(
        "\nScaling: GET /apps for a user who sees {USER_APPS} apps\n  seeded {seeded} apps of {OTHER_USERS} other users through POST /apps from {SEED_THREADS} clients in {:.1} s ({:.0} apps/s); the database holds {after} apps (before: {before})",
        seeding.as_secs_f64(),
        seeded as f64 / seeding.as_secs_f64().max(1e-9),
    );
    // The listing takes turns with the no-op, as in the rounds above, and the slowdown
    // compares its ratios to the no-op: the machine's own drift between the two
    // measurements (minutes apart) is not the database's growth.
    let (apps, noop) = (find(&endpoints, APPS), find(&endpoints, NOOP));
    let mut scaling = Vec::new();
    for m in &measured {
        let (mut large, mut noop_after) = (Vec::new(), Vec::new());
        for _ in 0..scale.rounds {
            noop_after.push(measure(app, m.clients, &scale, noop)?);
            large.push(measure(app, m.clients, &scale, apps)?);
        }
        let (large, noop_after) = (summarize_rounds(large), summarize_rounds(noop_after));
        if let Some(first) = large
            .first_unexpected
            .iter()
            .chain(&noop_after.first_unexpected)
            .next()
        {
            return Err(format!("{APPS} at {after} apps: {first}"));
        }
        let small = &m.get(APPS).median;
        let ratio_before = small.per_second() / m.get(NOOP).median.per_second();
        let ratio_after = large.median.per_second() / noop_after.median.per_second();
        let slowdown = ratio_before / ratio_after;
        println!(
            "  {} clients: {before} apps {:8.1} req/s  p50 {:6.2} ms  {ratio_before:.2}x | {after} apps {:8.1} req/s  p50 {:6.2} ms  p99 {:6.2} ms  {ratio_after:.2}x | slowdown {slowdown:.2} (of the ratios to the no-op; of the rates: {:.2})",
            m.clients,
            small.per_second(),
            ms(small.p50),
            large.median.per_second(),
            ms(large.median.p50),
            ms(large.median.p99),
            small.per_second() / large.median.per_second(),
        );
        scaling.push((m.clients, slowdown));
    }

    let calls = host_calls(app, &endpoints, options.calls);

    println!("\nTargets");
    for m in &measured {
        let ratio = m.get(APPS).median.per_second() / m.get(NOOP).median.per_second();
        let vs_sqlite = m.get(APPS).median.per_second() / m.get(SQLITE).median.per_second();
        target(
            &format!(
                "authenticated GET /apps >= 0.60x the no-op route ({} clients)",
                m.clients
            ),
            format!("{ratio:.2}x (and {vs_sqlite:.2}x the probe's SQLite open and one query, the ceiling of a route that reads the database)"),
            ratio >= 0.6,
        );
    }
    for (clients, slowdown) in &scaling {
        target(
            &format!(
                "GET /apps slowdown at {} apps <= 1.20 ({clients} clients)",
                scale.total_apps
            ),
            format!("{slowdown:.2}"),
            *slowdown <= 1.2,
        );
    }
    if let Some(m) = measured.first() {
        let p50 = m.get(LOGIN).median.p50;
        target(
            &format!("login p50 <= 150 ms ({} clients)", m.clients),
            format!("{:.1} ms", ms(p50)),
            p50 <= Duration::from_millis(150),
        );
    }
    target(
        "login p50 <= 150 ms (one client alone)",
        format!("{:.1} ms", ms(login_alone.median.p50)),
        login_alone.median.p50 <= Duration::from_millis(150),
    );
    for m in measured.iter().rev() {
        let writes: Vec<(&str, f64)> = m
            .routes
            .iter()
            .filter(|(_, kind, _)| *kind == Write)
            .map(|(name, _, s)| (*name, ms(s.median.p99)))
            .collect();
        let over: Vec<String> = writes
            .iter()
            .filter(|(_, p99)| *p99 > WRITE_P99_MS)
            .map(|(name, p99)| format!("{name} {p99:.1} ms"))
            .collect();
        let worst = writes.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        target(
            &format!(
                "every write route p99 <= {WRITE_P99_MS:.0} ms ({} clients; login, bound by the password hash, excluded)",
                m.clients
            ),
            match (over.is_empty(), worst) {
                (true, Some((name, p99))) => format!("worst {name} {p99:.1} ms"),
                (true, None) => "no write route".to_string(),
                (false, _) => format!("over: {}", over.join(", ")),
            },
            over.is_empty(),
        );
    }
    let locked = count_locked(app);
    target(
        &format!("no \"{LOCKED}\" in component output (whole run)"),
        format!("{locked} line(s)"),
        locked == 0,
    );
    let reads: Vec<(&str, usize)> = endpoints
        .iter()
        .zip(&calls)
        .filter(|(e, _)| e.kind == Read)
        .filter_map(|(e, c)| c.as_ref().map(|c| (e.name, c.statements)))
        .collect();
    let over: Vec<String> = reads
        .iter()
        .filter(|(_, n)| *n > READ_STATEMENTS)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    target(
        &format!("every read route <= {READ_STATEMENTS} SQLite statements"),
        if over.is_empty() {
            format!(
                "most {}",
                reads.iter().map(|(_, n)| *n).max().unwrap_or_default()
            )
        } else {
            format!("over: {}", over.join(", "))
        },
        over.is_empty(),
    );
    Ok(())
}

/// The endpoint named `name` (one of the constants above).
fn find<'e, 'a>(endpoints: &'e [Endpoint<'a>], name: &str) -> &'e Endpoint<'a> {
    endpoints.iter().find(|e| e.name == name).expect(name)
}

fn user_app(i: usize) -> String {
    format!("bench-app-{i}")
}

/// The user item `n` (a team, a key) belongs to, by its number: its creation and its
/// removal go to the same one.
fn item_owner(users: &[String], n: usize) -> &str {
    &users[n % users.len()]
}

/// The SSH key numbered `n`.
fn bench_key(n: usize) -> String {
    format!("ssh-ed25519 AAAAbench{n} bench@laptop")
}

fn units_app(client: usize) -> String {
    format!("wu-{client}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn expect_ok(resp: &e2e::Resp, what: &str) -> Result<(), String> {
    if resp.status == 200 {
        Ok(())
    } else {
        Err(format!("{what}: {} {}", resp.status, resp.text()))
    }
}

/// Component output lines so far that say "database is locked".
fn count_locked(app: &App) -> usize {
    app.component_output()
        .lines()
        .filter(|l| l.contains(LOCKED))
        .count()
}

/// Sends `endpoint`'s requests from `clients` keep-alive connections: a warm-up, then the
/// measuring window, in which every client makes at least one request (so a slow route
/// still gets measured). A client stops early when its route has nothing left to do.
/// Answers with another status than expected are counted, not fatal here.
fn measure(app: &App, clients: usize, scale: &Scale, endpoint: &Endpoint) -> Result<Round, String> {
    eprintln!("measuring {} with {clients} client(s)", endpoint.name);
    let locked_before = count_locked(app);
    let stop = AtomicBool::new(false);
    let from = Instant::now() + scale.warmup;
    let until = from + scale.window;
    type ClientResult = (Vec<Duration>, usize, Option<String>);
    let per_client: Vec<Result<ClientResult, String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|index| {
                let stop = &stop;
                s.spawn(move || {
                    let mut conn = app.connect();
                    let mut latencies = Vec::new();
                    let (mut unexpected, mut first) = (0, None);
                    loop {
                        let start = Instant::now();
                        if stop.load(Ordering::Relaxed) || (start >= until && !latencies.is_empty())
                        {
                            break;
                        }
                        let Some(job) = (endpoint.next)(index) else {
                            break;
                        };
                        let resp = conn.send(job.request);
                        let took = start.elapsed();
                        if resp.status == endpoint.status {
                            if let Some(then) = job.then {
                                then();
                            }
                        } else {
                            unexpected += 1;
                            first.get_or_insert_with(|| {
                                format!("{} {}", resp.status, resp.text().trim_end())
                            });
                        }
                        if start >= from {
                            latencies.push(took);
                        }
                    }
                    (latencies, unexpected, first)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join().map_err(|_| {
                    stop.store(true, Ordering::Relaxed);
                    format!(
                        "{}: a client thread panicked (transport error?)",
                        endpoint.name
                    )
                })
            })
            .collect()
    });
    let elapsed = Instant::now().saturating_duration_since(from);
    let mut latencies = Vec::new();
    let (mut unexpected, mut first_unexpected) = (0, None);
    for result in per_client {
        let (l, u, f) = result?;
        latencies.extend(l);
        unexpected += u;
        first_unexpected = first_unexpected.or(f);
    }
    if latencies.is_empty() {
        return Err(format!(
            "{}: no request in the measuring window (its items ran out during the warm-up)",
            endpoint.name
        ));
    }
    latencies.sort_unstable();
    Ok(Round {
        requests: latencies.len(),
        elapsed,
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        unexpected,
        first_unexpected,
        locked: count_locked(app) - locked_before,
    })
}

/// Nearest-rank percentile of sorted, non-empty `values`.
fn percentile(values: &[Duration], p: usize) -> Duration {
    let rank = (values.len() * p).div_ceil(100).max(1);
    values[rank - 1]
}

fn print_table(m: &Measured) {
    let noop = m.get(NOOP).median.per_second();
    println!("\n{} clients", m.clients);
    println!(
        "{:<27} {:<5} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6}",
        "route", "kind", "requests", "req/s", "p50 ms", "p99 ms", "vs no-op", "non-2xx", "locked"
    );
    for (name, kind, s) in &m.routes {
        let r = &s.median;
        println!(
            "{:<27} {:<5} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>7.2}x {:>7} {:>6}",
            name,
            kind.label(),
            r.requests,
            r.per_second(),
            ms(r.p50),
            ms(r.p99),
            r.per_second() / noop,
            s.unexpected,
            s.locked,
        );
    }
}

fn target(what: &str, measured: String, met: bool) {
    println!(
        "  {:<4}  {what}: {measured}",
        if met { "PASS" } else { "MISS" }
    );
}

/// Apps in the database, as the admin lists them.
fn count_apps(app: &App, admin: &str) -> Result<usize, String> {
    let resp = app.get("/apps").bearer(admin).send();
    expect_ok(&resp, "GET /apps as the admin")?;
    resp.json()
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| "GET /apps as the admin: not a JSON array".to_string())
}

/// Creates `count` apps through `POST /apps` from [`SEED_THREADS`] clients, spread over
/// [`OTHER_USERS`] users with one team each (an app gets its creator's teams), so the
/// benchmark user sees none of them. Returns how long it took.
fn seed_other_apps(app: &App, count: usize) -> Result<Duration, String> {
    let tokens: Vec<String> = (0..OTHER_USERS)
        .map(|u| {
            let token = accounts::user(app, &format!("other-{u}@example.com"));
            accounts::team(app, &token, &format!("others-{u}"));
            token
        })
        .collect();
    eprintln!("seeding {count} apps");
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let started = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..SEED_THREADS)
            .map(|_| {
                let (next, failed, tokens) = (&next, &failed, &tokens);
                s.spawn(move || {
                    let mut conn = app.connect();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count || failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let name = format!("other-{n:05}");
                        let resp = conn.send(
                            app.post("/apps")
                                .bearer(&tokens[n % OTHER_USERS])
                                .json(&json!({"name": name, "platform": "python"})),
                        );
                        if resp.status != 200 {
                            failed.store(true, Ordering::Relaxed);
                            return Err(format!(
                                "seeding: POST /apps {name}: {} {}",
                                resp.status,
                                resp.text()
                            ));
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("seeding: a client thread panicked".to_string()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    Ok(started.elapsed())
}

/// What one request of a route asked of the host.
struct Calls {
    sqlite_opens: usize,
    statements: usize,
    key_value: usize,
    variables: usize,
}

/// Sends one request of each route (after the measurements, so login shows the token
/// index as a busy user's would be) and prints how many SQLite opens and statements,
/// key-value calls and variable reads it made; with `list`, every call too. `None` for a
/// route with nothing left to do.
fn host_calls(app: &App, endpoints: &[Endpoint], list: bool) -> Vec<Option<Calls>> {
    println!("\nHost calls made by one request of each route");
    println!(
        "{:<27} {:<5} {:>6} {:>12} {:>10} {:>9} {:>9}",
        "route", "kind", "status", "sqlite opens", "statements", "key-value", "variables"
    );
    let mut listings = Vec::new();
    let mut all = Vec::new();
    for endpoint in endpoints {
        let Some(job) = (endpoint.next)(0) else {
            println!("{:<27} (nothing left to do)", endpoint.name);
            all.push(None);
            continue;
        };
        let mut conn = app.connect();
        app.host().start_call_log();
        let status = conn.send(job.request).status;
        let calls = app.host().take_call_log();
        if status == endpoint.status {
            if let Some(then) = job.then {
                then();
            }
        }
        let count = |prefix: &str| calls.iter().filter(|c| c.starts_with(prefix)).count();
        let c = Calls {
            sqlite_opens: count("sqlite open "),
            statements: count("sqlite execute "),
            key_value: count("key-value "),
            variables: count("variable get "),
        };
        println!(
            "{:<27} {:<5} {:>6} {:>12} {:>10} {:>9} {:>9}",
            endpoint.name,
            endpoint.kind.label(),
            status,
            c.sqlite_opens,
            c.statements,
            c.key_value,
            c.variables
        );
        if list {
            listings.push((endpoint.name, status, summarize(&calls)));
        }
        all.push(Some(c));
    }
    for (name, status, calls) in listings {
        println!("\n  {name} ({status}): {} calls", calls.len());
        for call in calls {
            println!("    {call}");
        }
    }
    all
}

/// Shortens calls for reading (token hashes, long statements) and folds runs of the
/// same call into one line with a count.
fn summarize(calls: &[String]) -> Vec<String> {
    let short: Vec<String> = calls
        .iter()
        .map(|c| {
            let c = match c.find("token:") {
                Some(i) => format!("{}token:<hash>", &c[..i]),
                None => c.clone(),
            };
            if c.chars().count() > 110 {
                format!("{}...", c.chars().take(107).collect::<String>())
            } else {
                c
            }
        })
        .collect();
    let mut lines: Vec<(String, usize)> = Vec::new();
    for call in short {
        match lines.last_mut() {
            Some((last, n)) if *last == call => *n += 1,
            _ => lines.push((call, 1)),
        }
    }
    lines
        .into_iter()
        .map(|(call, n)| {
            if n == 1 {
                call
            } else {
                format!("{call}  (x{n})")
            }
        })
        .collect()
}
