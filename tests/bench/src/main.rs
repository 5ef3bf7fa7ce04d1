//! The benchmark: serves the real `spin.toml` (release `.wasm` components) and the test
//! probe on the test host, drives it over keep-alive connections from a few client
//! threads, and prints requests per second and p50/p99 latency per route, each as a
//! ratio to the probe's no-op route; then the same `GET /apps` once the database holds
//! 10,000 apps, the host calls (key-value, SQLite, variables) one request of each route
//! makes, and the targets with PASS/MISS.
//!
//! ```text
//! cargo run --profile bench-host -p bench      # full run, host optimised (about 90 s)
//! cargo run -p bench -- --smoke                # seconds, debug host; CI runs this
//! ```
//!
//! A missed target is reported, not an error; the exit status is non-zero only when
//! something fails (an unexpected status, a transport error, a host that does not start).
//! The `.wasm` files must be built first (`tests/run.sh` does; see README.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::{accounts, App, RequestBuilder};
use serde_json::json;

/// Apps the benchmark user can see (one team); the scaling run adds apps of other teams.
const USER_APPS: usize = 10;
/// Teams of the other user, who owns the seeded apps.
const OTHER_TEAMS: usize = 10;
const USER: &str = "bench@example.com";
const OTHER: &str = "other@example.com";
/// `quota_units_per_app` for the run, so apps carry the quota rows creation writes.
const UNITS_PER_APP: &str = "10";
/// Routes the targets are about.
const NOOP: &str = "no-op (probe)";
const SQLITE: &str = "probe: SQLite query";
const APPS: &str = "GET /apps";
const LOGIN: &str = "login";
const LOGIN_ALONE: &str = "login, one client alone";

struct Options {
    smoke: bool,
    threads: usize,
}

/// How long and how big each part of a run is.
struct Scale {
    /// Each route is measured this many times, the routes taking turns, and its median
    /// round (by requests per second) is reported: a burst of other work on the machine
    /// then spoils one round of one route, not the route.
    rounds: usize,
    warmup: Duration,
    window: Duration,
    total_apps: usize,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            smoke: false,
            threads: 4,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--threads" => {
                    options.threads = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--threads needs a positive number")?
                }
                "-h" | "--help" => {
                    println!("usage: bench [--smoke] [--threads N]");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }

    fn scale(&self) -> Scale {
        if self.smoke {
            Scale {
                rounds: 1,
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(400),
                total_apps: 100,
            }
        } else {
            Scale {
                rounds: 3,
                warmup: Duration::from_millis(500),
                window: Duration::from_secs(2),
                total_apps: 10_000,
            }
        }
    }
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

/// One measured route: a name, how to build its `i`-th request, and the status every
/// answer must have.
struct Endpoint<'a> {
    name: &'static str,
    request: Box<dyn Fn(usize) -> RequestBuilder + Sync + 'a>,
    status: u16,
}

/// Latencies of the requests that started inside the measuring window.
struct Stats {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

fn run(app: &App, options: &Options) -> Result<(), String> {
    let scale = options.scale();
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
        "{} client threads, one keep-alive connection each; per route {} round(s) of {:.1} s warm-up and {:.1} s measured, median round shown\n",
        options.threads,
        scale.rounds,
        scale.warmup.as_secs_f64(),
        scale.window.as_secs_f64()
    );

    let admin = accounts::admin(app);
    let token = accounts::user(app, USER);
    accounts::team(app, &token, "bench");
    for i in 0..USER_APPS {
        e2e::apps::create_app(app, &token, &user_app(i));
    }
    // What the platform itself costs, for reading the table: the probe reading one
    // key-value entry, and opening SQLite for one indexed query on the app's database;
    // and the apps component answering without touching a store (no token: 401).
    for setup in [
        "/probe/kv/set?key=bench",
        "/probe/sql/write?key=bench&value=1",
    ] {
        let resp = app.post(setup).body("1").send();
        if resp.status != 200 {
            return Err(format!("{setup}: {} {}", resp.status, resp.text()));
        }
    }
    let password = json!({ "password": accounts::PASSWORD });
    let endpoints = [
        Endpoint {
            name: NOOP,
            request: Box::new(|_| app.get("/probe/noop")),
            status: 200,
        },
        Endpoint {
            name: "probe: key-value get",
            request: Box::new(|_| app.get("/probe/kv/get?key=bench")),
            status: 200,
        },
        Endpoint {
            name: SQLITE,
            request: Box::new(|_| app.get("/probe/sql/read?key=bench")),
            status: 200,
        },
        Endpoint {
            name: "GET /healthcheck",
            request: Box::new(|_| app.get("/healthcheck")),
            status: 200,
        },
        Endpoint {
            name: "GET /apps, no token (401)",
            request: Box::new(|_| app.get("/apps")),
            status: 401,
        },
        Endpoint {
            name: APPS,
            request: Box::new(|_| app.get("/apps").bearer(&token)),
            status: 200,
        },
        Endpoint {
            name: "GET /apps/:app",
            request: Box::new(|_| app.get(&format!("/apps/{}", user_app(0))).bearer(&token)),
            status: 200,
        },
        Endpoint {
            name: "POST /apps/:app/env",
            request: Box::new(|i| {
                app.post(&format!("/apps/{}/env", user_app(0)))
                    .bearer(&token)
                    .json(&json!({ "BENCH": i.to_string() }))
            }),
            status: 200,
        },
        Endpoint {
            name: LOGIN,
            request: Box::new(|_| app.post(&format!("/users/{USER}/tokens")).json(&password)),
            status: 200,
        },
    ];

    let mut rounds: Vec<Vec<Stats>> = endpoints.iter().map(|_| Vec::new()).collect();
    let mut login_alone = Vec::new();
    for _ in 0..scale.rounds {
        for (endpoint, stats) in endpoints.iter().zip(&mut rounds) {
            stats.push(measure(app, options.threads, &scale, endpoint)?);
        }
        login_alone.push(measure(app, 1, &scale, find(&endpoints, LOGIN))?);
    }
    let mut results: Vec<(&str, Stats)> = endpoints
        .iter()
        .map(|e| e.name)
        .zip(rounds.into_iter().map(median))
        .collect();
    results.push((LOGIN_ALONE, median(login_alone)));
    let stats = |name: &str| &results.iter().find(|(n, _)| *n == name).expect(name).1;
    print_table(&results, stats(NOOP).per_second());
    let apps_10 = stats(APPS).per_second();
    let apps_ratio = apps_10 / stats(NOOP).per_second();
    let apps_vs_sqlite = apps_10 / stats(SQLITE).per_second();
    let login_p50 = stats(LOGIN).p50;
    let login_alone_p50 = stats(LOGIN_ALONE).p50;

    seed_other_apps(app, &admin, scale.total_apps - USER_APPS)?;
    let mut apps_large = Vec::new();
    for _ in 0..scale.rounds {
        apps_large.push(measure(
            app,
            options.threads,
            &scale,
            find(&endpoints, APPS),
        )?);
    }
    let apps_large = median(apps_large);
    let scaling = apps_10 / apps_large.per_second();
    println!(
        "\nScaling: GET /apps for a user who sees {USER_APPS} apps\n  database with {USER_APPS} apps: {:8.1} req/s  p50 {:6.2} ms\n  database with {} apps: {:8.1} req/s  p50 {:6.2} ms  p99 {:6.2} ms\n  slowdown (req/s at {USER_APPS} / req/s at {}): {:.2}",
        apps_10,
        ms(stats(APPS).p50),
        scale.total_apps,
        apps_large.per_second(),
        ms(apps_large.p50),
        ms(apps_large.p99),
        scale.total_apps,
        scaling,
    );

    print_host_calls(app, &endpoints);

    println!("\nTargets");
    target(
        "authenticated GET /apps >= 0.60x the no-op route",
        format!("{apps_ratio:.2}x"),
        apps_ratio >= 0.6,
    );
    println!(
        "        (for scale: GET /apps runs at {apps_vs_sqlite:.2}x the probe's SQLite open and one query, the ceiling of a route that reads the database)"
    );
    target(
        &format!("GET /apps slowdown at {} apps <= 1.20", scale.total_apps),
        format!("{scaling:.2}"),
        scaling <= 1.2,
    );
    target(
        &format!("login p50 <= 150 ms ({} clients)", options.threads),
        format!("{:.1} ms", ms(login_p50)),
        login_p50 <= Duration::from_millis(150),
    );
    target(
        "login p50 <= 150 ms (one client alone)",
        format!("{:.1} ms", ms(login_alone_p50)),
        login_alone_p50 <= Duration::from_millis(150),
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends `endpoint`'s requests from `threads` keep-alive connections: a warm-up, then
/// the measuring window. Any answer with another status than expected fails the run.
fn measure(app: &App, threads: usize, scale: &Scale, endpoint: &Endpoint) -> Result<Stats, String> {
    eprintln!("measuring {} with {threads} client(s)", endpoint.name);
    let failed = AtomicBool::new(false);
    let from = Instant::now() + scale.warmup;
    let until = from + scale.window;
    let per_thread: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..threads)
            .map(|t| {
                let failed = &failed;
                s.spawn(move || {
                    let mut conn = app.connect();
                    let mut latencies = Vec::new();
                    let mut i = t;
                    loop {
                        let sent = Instant::now();
                        if sent >= until || failed.load(Ordering::Relaxed) {
                            return Ok(latencies);
                        }
                        let resp = conn.send((endpoint.request)(i));
                        let took = sent.elapsed();
                        if resp.status != endpoint.status {
                            failed.store(true, Ordering::Relaxed);
                            return Err(format!(
                                "{}: answered {} {}",
                                endpoint.name,
                                resp.status,
                                resp.text()
                            ));
                        }
                        if sent >= from {
                            latencies.push(took);
                        }
                        i += threads;
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err(format!("{}: a client thread panicked", endpoint.name)))
            })
            .collect()
    });
    let elapsed = Instant::now().saturating_duration_since(from);
    let mut latencies = Vec::new();
    for result in per_thread {
        latencies.extend(result?);
    }
    if latencies.is_empty() {
        return Err(format!("{}: no request completed", endpoint.name));
    }
    latencies.sort_unstable();
    Ok(Stats {
        requests: latencies.len(),
        elapsed,
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
    })
}

/// The round with the median requests per second (of a non-empty list).
fn median(mut rounds: Vec<Stats>) -> Stats {
    rounds.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    rounds.swap_remove(rounds.len() / 2)
}

/// Nearest-rank percentile of sorted, non-empty `values`.
fn percentile(values: &[Duration], p: usize) -> Duration {
    let rank = (values.len() * p).div_ceil(100).max(1);
    values[rank - 1]
}

fn print_table(results: &[(&str, Stats)], noop: f64) {
    println!(
        "{:<26} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "route", "requests", "req/s", "p50 ms", "p99 ms", "vs no-op"
    );
    for (name, stats) in results {
        println!(
            "{:<26} {:>9} {:>10.1} {:>9.2} {:>9.2} {:>8.2}x",
            name,
            stats.requests,
            stats.per_second(),
            ms(stats.p50),
            ms(stats.p99),
            stats.per_second() / noop
        );
    }
}

fn target(what: &str, measured: String, met: bool) {
    println!(
        "  {:<4}  {what}: {measured}",
        if met { "PASS" } else { "MISS" }
    );
}

/// Seeds `count` apps of other teams straight into SQLite, with the rows `POST /apps`
/// writes (built-in provisioner, `quota_units_per_app` set, no user quota): the app, its
/// serial, its teams, unit 0, the three private variables and the app's unit quota. Then
/// checks through the API that a seeded app reads exactly like a created one.
fn seed_other_apps(app: &App, admin: &str, count: usize) -> Result<(), String> {
    let token = accounts::user(app, OTHER);
    for t in 0..OTHER_TEAMS {
        accounts::team(app, &token, &format!("others-{t}"));
    }
    let host = app.url("");
    app.sql(&format!(
        "BEGIN;
         CREATE TEMP TABLE seed AS
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
           SELECT printf('other-%05d', i) AS name,
                  (SELECT COALESCE(MAX(id), 0) FROM app_serials) + i AS serial,
                  'others-' || (i % {OTHER_TEAMS}) AS team
           FROM n;
         INSERT INTO app_serials (id) SELECT serial FROM seed;
         INSERT INTO apps (name, serial, platform, ip, cname, owner, state, next_unit, created_at)
           SELECT name, serial, 'python', '', '', '{OTHER}', 'ready', 1,
                  strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM seed;
         INSERT INTO app_teams (app, team) SELECT name, team FROM seed;
         INSERT INTO units (app, number, name, ip, state, quota_item)
           SELECT name, 0, name || '/0', '', 'started', name || '-0' FROM seed;
         INSERT INTO env_vars (app, name, value, public, instance)
           SELECT name, 'TSURU_APPNAME', name, 0, NULL FROM seed;
         INSERT INTO env_vars (app, name, value, public, instance)
           SELECT name, 'TSURU_HOST', '{host}', 0, NULL FROM seed;
         INSERT INTO env_vars (app, name, value, public, instance)
           SELECT name, 'TSURU_APP_TOKEN', lower(hex(randomblob(32))), 0, NULL FROM seed;
         INSERT INTO quotas (owner, \"limit\") SELECT name, {UNITS_PER_APP} FROM seed;
         INSERT INTO quota_items (owner, item) SELECT name, name || '-0' FROM seed;
         DROP TABLE seed;
         COMMIT;"
    ));
    // The last user app was never changed by the benchmark: the reference.
    let created = user_app(USER_APPS - 1);
    let seeded = "other-00001";
    for path in ["/apps/{}", "/apps/{}/env", "/quota/{}"] {
        let read = |name: &str, team: &str| {
            let resp = app.get(&path.replace("{}", name)).bearer(admin).send();
            (
                resp.status,
                resp.text().replace(name, "<app>").replace(team, "<team>"),
            )
        };
        let (want, got) = (read(&created, "bench"), read(seeded, "others-1"));
        if want != got {
            return Err(format!(
                "seeded app {seeded} differs from created app {created} on {path}:\n  created {want:?}\n  seeded  {got:?}"
            ));
        }
    }
    Ok(())
}

/// Lists the store and variable calls one request of each route makes (after the
/// measurements, so login shows the token index as a busy user's would be).
fn print_host_calls(app: &App, endpoints: &[Endpoint]) {
    println!("\nHost calls made by one request of each route");
    for endpoint in endpoints {
        let mut conn = app.connect();
        app.host().start_call_log();
        let status = conn.send((endpoint.request)(0)).status;
        let calls = app.host().take_call_log();
        println!("  {} ({status}): {} calls", endpoint.name, calls.len());
        for call in summarize(&calls) {
            println!("    {call}");
        }
    }
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
