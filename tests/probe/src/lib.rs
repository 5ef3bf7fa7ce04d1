//! TEST-ONLY component: lets the end-to-end tests observe what the host gives a
//! component. Routed under a prefix such as `/probe/...`; it dispatches on
//! `spin-path-info` like spin-sdk's router does.
//!
//! | path | does |
//! |---|---|
//! | `/noop` | 200, empty body (benchmarks) |
//! | `/kv/get?key=K[&store=L]` | value of K, 404 when absent |
//! | `/kv/set?key=K[&store=L]` | stores the request body under K |
//! | `/kv/delete?key=K[&store=L]` | deletes K |
//! | `/sql/write?key=K&value=V[&db=L]` | upsert into table `probe_kv` |
//! | `/sql/read?key=K[&db=L]` | value of K, 404 when absent |
//! | `/sql/hold?ms=N&key=K&value=V` | writes inside `BEGIN IMMEDIATE`, holds the lock N ms |
//! | `/sql/twice?sleep_ms=N[&lazy=1][&reopen=1][&db=L]` | on one connection: `SELECT 1` (skipped with `lazy`), N ms pause, `SELECT 2`; with `reopen`, then `SELECT 3` on a new connection. One line per step (`first: ok`, `second: error: Io(..)`, ...); 500 if a step failed |
//! | `/var?name=N` | component variable N |
//! | `/env?name=N` | WASI environment variable N |
//! | `/outbound?url=U[&connect_timeout_ms=..&first_byte_timeout_ms=..&between_bytes_timeout_ms=..]` | GET U: `status=<code>\n<body>`, or 502 `error: <ErrorCode>` |
//! | `/counter` | increments a static counter and returns it (always 1 with fresh instances) |
//! | `/headers/...` | echoes method, URI and the `host` and `spin-*` headers |
//! | `/stdout?msg=M` | prints M on stdout and stderr |
//! | `/trap` | panics |
//! | anything else | 404 with the same echo as `/headers` |
//!
//! Failures answer 500 with `error: <debug of the host error>` so tests can assert the
//! exact error case (for example `AccessDenied`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, sqlite, variables};

/// Lives in linear memory: only a reused instance could ever count past 1.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())
        .build()
}

fn error(e: impl std::fmt::Debug) -> Response {
    text(500, format!("error: {e:?}"))
}

#[http_component]
fn handle(req: Request) -> Response {
    let path = req
        .header("spin-path-info")
        .and_then(|h| h.as_str())
        .unwrap_or_default()
        .to_string();
    let q: HashMap<String, String> = form_urlencoded::parse(req.query().as_bytes())
        .into_owned()
        .collect();
    let arg = |name: &str| q.get(name).cloned().unwrap_or_default();
    let label = |name: &str| {
        q.get(name)
            .cloned()
            .unwrap_or_else(|| "default".to_string())
    };

    match path.as_str() {
        "/noop" => Response::new(200, ()),
        "/kv/get" => match key_value::Store::open(&label("store")) {
            Err(e) => error(e),
            Ok(s) => match s.get(&arg("key")) {
                Ok(Some(v)) => Response::new(200, v),
                Ok(None) => text(404, "missing"),
                Err(e) => error(e),
            },
        },
        "/kv/set" => match key_value::Store::open(&label("store")) {
            Err(e) => error(e),
            Ok(s) => match s.set(&arg("key"), req.body()) {
                Ok(()) => text(200, "ok"),
                Err(e) => error(e),
            },
        },
        "/kv/delete" => match key_value::Store::open(&label("store")) {
            Err(e) => error(e),
            Ok(s) => match s.delete(&arg("key")) {
                Ok(()) => text(200, "ok"),
                Err(e) => error(e),
            },
        },
        "/sql/write" => sql_write(&label("db"), &arg("key"), &arg("value"), None),
        "/sql/hold" => {
            let ms = arg("ms").parse().unwrap_or(0);
            sql_write(&label("db"), &arg("key"), &arg("value"), Some(ms))
        }
        "/sql/read" => sql_read(&label("db"), &arg("key")),
        "/sql/execute" => match sqlite::Connection::open(&label("db")) {
            Err(e) => error(e),
            Ok(conn) => match conn.execute(&arg("sql"), &[]) {
                Ok(result) => text(200, format!("rows: {}", result.rows().count())),
                Err(e) => error(e),
            },
        },
        "/sql/twice" => sql_twice(
            &label("db"),
            arg("sleep_ms").parse().unwrap_or(0),
            arg("lazy") == "1",
            arg("reopen") == "1",
        ),
        "/var" => match variables::get(&arg("name")) {
            Ok(v) => text(200, v),
            Err(e @ variables::Error::Undefined(_)) => text(404, format!("error: {e:?}")),
            Err(e) => error(e),
        },
        "/env" => match std::env::var(arg("name")) {
            Ok(v) => text(200, v),
            Err(_) => text(404, "unset"),
        },
        "/outbound" => outbound(&q),
        "/counter" => {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
            text(200, n.to_string())
        }
        "/stdout" => {
            println!("probe stdout: {}", arg("msg"));
            eprintln!("probe stderr: {}", arg("msg"));
            text(200, "ok")
        }
        "/trap" => panic!("probe asked to trap"),
        p if p == "/headers" || p.starts_with("/headers/") => echo_headers(200, &req),
        // Unknown paths (including the empty path info of an exact route) echo too, so
        // routing tests can see which route matched.
        _ => echo_headers(404, &req),
    }
}

fn echo_headers(status: u16, req: &Request) -> Response {
    let mut lines = vec![
        format!("method: {:?}", req.method()),
        format!("uri: {}", req.uri()),
        format!(
            "path-and-query: {}",
            req.path_and_query().unwrap_or_default()
        ),
    ];
    let mut headers: Vec<String> = req
        .headers()
        .filter(|(name, _)| name.starts_with("spin-") || *name == "host")
        .map(|(name, value)| format!("{name}: {}", value.as_str().unwrap_or("<binary>")))
        .collect();
    headers.sort();
    lines.extend(headers);
    text(status, lines.join("\n"))
}

fn sql_write(db: &str, key: &str, value: &str, hold_ms: Option<u64>) -> Response {
    use sqlite::Value::Text;
    let conn = match sqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let run = |sql: &str, params: &[sqlite::Value]| conn.execute(sql, params).map(drop);
    let result = (|| {
        run(
            "CREATE TABLE IF NOT EXISTS probe_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
            &[],
        )?;
        if hold_ms.is_some() {
            run("BEGIN IMMEDIATE", &[])?;
        }
        run(
            "INSERT INTO probe_kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            &[Text(key.to_string()), Text(value.to_string())],
        )?;
        if let Some(ms) = hold_ms {
            // Keep the write lock so a concurrent writer has to wait for it.
            std::thread::sleep(std::time::Duration::from_millis(ms));
            run("COMMIT", &[])?;
        }
        Ok::<_, sqlite::Error>(())
    })();
    match result {
        Ok(()) => text(200, "ok"),
        Err(e) => error(e),
    }
}

fn sql_read(db: &str, key: &str) -> Response {
    let conn = match sqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let result = conn.execute(
        "SELECT v FROM probe_kv WHERE k = ?",
        &[sqlite::Value::Text(key.to_string())],
    );
    match result {
        Ok(r) => match r.rows().next().and_then(|row| row.get::<&str>("v")) {
            Some(v) => text(200, v),
            None => text(404, "missing"),
        },
        // Before the first write the table does not exist yet.
        Err(sqlite::Error::Io(m)) if m.contains("no such table") => text(404, "missing"),
        Err(e) => error(e),
    }
}

/// Two statements on one connection with a pause between them, as a request that holds
/// its connection across a slow outbound call does; `lazy` skips the first statement (the
/// connection is opened, then left unused during the pause); `reopen` runs a third
/// statement on a fresh connection.
fn sql_twice(db: &str, sleep_ms: u64, lazy: bool, reopen: bool) -> Response {
    let conn = match sqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    let select = |conn: &sqlite::Connection, n: i64| match conn
        .execute("SELECT ?", &[sqlite::Value::Integer(n)])
    {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error: {e:?}"),
    };
    let mut lines = Vec::new();
    if lazy {
        lines.push("first: skipped".to_string());
    } else {
        lines.push(format!("first: {}", select(&conn, 1)));
    }
    std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
    lines.push(format!("second: {}", select(&conn, 2)));
    if reopen {
        let third = match sqlite::Connection::open(db) {
            Ok(fresh) => select(&fresh, 3),
            Err(e) => format!("error: {e:?}"),
        };
        lines.push(format!("reopened: {third}"));
    }
    let failed = lines.iter().any(|l| l.contains(": error: "));
    text(if failed { 500 } else { 200 }, lines.join("\n"))
}

/// GET through the raw wasi:http bindings, so the request options (timeouts) can be set.
fn outbound(q: &HashMap<String, String>) -> Response {
    use spin_sdk::wit::wasi::http0_2_0::{outgoing_handler, types};

    let Some(url) = q.get("url") else {
        return text(400, "url missing");
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return text(400, "url needs a scheme");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let scheme = match scheme {
        "http" => types::Scheme::Http,
        "https" => types::Scheme::Https,
        other => types::Scheme::Other(other.to_string()),
    };

    let request = types::OutgoingRequest::new(types::Fields::new());
    let _ = request.set_method(&types::Method::Get);
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));

    let options = types::RequestOptions::new();
    let ms = |name: &str| {
        q.get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1_000_000)
    };
    let _ = options.set_connect_timeout(ms("connect_timeout_ms"));
    let _ = options.set_first_byte_timeout(ms("first_byte_timeout_ms"));
    let _ = options.set_between_bytes_timeout(ms("between_bytes_timeout_ms"));

    let future = match outgoing_handler::handle(request, Some(options)) {
        Ok(f) => f,
        Err(code) => return text(502, format!("error: {code:?}")),
    };
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(code))) => return text(502, format!("error: {code:?}")),
        other => return text(502, format!("error: unexpected {other:?}")),
    };
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume() {
        if let Ok(stream) = incoming.stream() {
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    // Closed at the end of the body, or failed mid-way (e.g. timeout).
                    Err(e) => {
                        let msg = format!("{e:?}");
                        if !msg.contains("Closed") {
                            return text(502, format!("error: body read failed: {msg}"));
                        }
                        break;
                    }
                }
            }
        }
    }
    text(
        200,
        format!("status={status}\n{}", String::from_utf8_lossy(&body)),
    )
}
