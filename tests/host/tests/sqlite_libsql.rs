//! `HostConfig::sqlite_idle_timeout` and `HostConfig::sqlite_libsql_client`: the host
//! behaves like Spin on a remote libSQL database, whose server drops a connection's stream
//! after some idle time, and whose client refuses some statements.
//!
//! Runs the test probe (`cargo build --target wasm32-wasip1 --release -p probe` first) from
//! a manifest of its own, so these tests do not depend on the product's components.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use spin_test_host::{
    libsql_client_refuses, HostConfig, RunningHost, STREAM_EXPIRED_MESSAGE,
    UNSUPPORTED_STATEMENT_MESSAGE,
};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// A data directory (and manifest) removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "spin-test-host-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serves the probe at `/probe/...` with the given idle timeout.
fn start(name: &str, idle_timeout: Option<Duration>) -> (RunningHost, Scratch) {
    start_with(name, |config| config.sqlite_idle_timeout = idle_timeout)
}

/// Serves the probe at `/probe/...`, configured by `configure`.
fn start_with(name: &str, configure: impl FnOnce(&mut HostConfig)) -> (RunningHost, Scratch) {
    let probe = target_dir().join("wasm32-wasip1/release/probe.wasm");
    assert!(
        probe.exists(),
        "{} is missing: build it first with `cargo build --target wasm32-wasip1 --release -p probe`",
        probe.display()
    );
    let scratch = Scratch::new(name);
    let manifest = scratch.0.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"spin_manifest_version = 2

[application]
name = "sqlite-idle-timeout"

[[trigger.http]]
route = "/probe/..."
component = "probe"

[component.probe]
source = '{}'
key_value_stores = ["default"]
sqlite_databases = ["default"]
"#,
            probe.display()
        ),
    )
    .expect("write the manifest");
    let mut config = HostConfig::new(manifest, scratch.0.join(".spin"));
    config.use_process_env = false;
    config.echo_component_output = false;
    config.cache_dir = Some(target_dir().join("spin-test-host-cache"));
    configure(&mut config);
    let host = RunningHost::start(config).expect("start the host");
    (host, scratch)
}

/// `GET path` on a connection of its own: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).expect("chunk");
            reader.read_line(&mut line).expect("chunk end");
        }
    } else {
        reader.read_to_end(&mut body).expect("body");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The probe's `Debug` of `sqlite::Error::Io(STREAM_EXPIRED_MESSAGE)`.
fn expired_error() -> String {
    format!("error: Error::Io({STREAM_EXPIRED_MESSAGE:?})")
}

#[test]
fn the_message_is_what_spin_on_libsql_reports() {
    // Spin 4.0.2 (crates/sqlite-libsql) turns the libsql 0.5 client's error into
    // `Io(e.to_string())`; sqld answers an expired stream with this JSON body.
    assert_eq!(
        STREAM_EXPIRED_MESSAGE,
        r#"Hrana: `api error: `{"message":"The stream has expired due to inactivity","code":"STREAM_EXPIRED"}``"#
    );
}

#[test]
fn an_idle_connection_expires_and_a_fresh_one_works() {
    let (host, _scratch) = start("expiry", Some(Duration::from_millis(300)));

    // Statements in quick succession on one connection are fine.
    let (status, body) = get(host.addr(), "/probe/sql/twice?sleep_ms=0");
    assert_eq!((status, body.as_str()), (200, "first: ok\nsecond: ok"));

    // Idle past the limit after a statement: the connection is dead; a new one works.
    host.start_call_log();
    let (status, body) = get(host.addr(), "/probe/sql/twice?sleep_ms=700&reopen=1");
    let calls = host.take_call_log();
    assert_eq!(
        (status, body),
        (
            500,
            format!("first: ok\nsecond: {}\nreopened: ok", expired_error())
        )
    );
    let expired: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("sqlite stream expired"))
        .collect();
    assert_eq!(expired.len(), 1, "{calls:#?}");
    assert!(expired[0].contains("(limit 300 ms)"), "{calls:#?}");
    // The refused statement is listed too, right before the expiry.
    let at = calls.iter().position(|c| c == expired[0]).unwrap();
    assert_eq!(calls[at - 1], "sqlite execute SELECT ?");

    // A connection that ran nothing yet does not expire, however long it waits.
    let (status, body) = get(host.addr(), "/probe/sql/twice?sleep_ms=700&lazy=1");
    assert_eq!((status, body.as_str()), (200, "first: skipped\nsecond: ok"));
}

#[test]
fn without_a_timeout_connections_never_expire() {
    let (host, _scratch) = start("no-expiry", None);
    let (status, body) = get(host.addr(), "/probe/sql/twice?sleep_ms=700");
    assert_eq!((status, body.as_str()), (200, "first: ok\nsecond: ok"));
}

#[test]
fn expiry_rolls_back_and_releases_the_write_lock_on_time() {
    let (host, _scratch) = start("rollback", Some(Duration::from_millis(200)));
    let addr = host.addr();
    let (status, body) = get(addr, "/probe/sql/write?key=before&value=1");
    assert_eq!((status, body.as_str()), (200, "ok"));

    // A request takes the write lock, then stays idle for 2 s before its COMMIT.
    let started = Instant::now();
    let holder = std::thread::spawn(move || {
        let answer = get(addr, "/probe/sql/hold?ms=2000&key=held&value=1");
        (answer, started.elapsed())
    });
    // Well after the expiry (200 ms), another writer gets the lock at once: the server
    // dropped the idle stream and its transaction on its own clock, not at the holder's
    // next statement.
    std::thread::sleep(Duration::from_millis(800));
    let (status, body) = get(addr, "/probe/sql/write?key=other&value=2");
    let other_done = started.elapsed();
    assert_eq!((status, body.as_str()), (200, "ok"));
    let ((status, body), holder_done) = holder.join().expect("holder thread");
    assert!(
        other_done < holder_done,
        "the second writer waited for the idle holder ({other_done:?} vs {holder_done:?})"
    );
    // The holder's COMMIT is refused and its write is gone.
    assert_eq!((status, body), (500, expired_error()));
    assert_eq!(get(addr, "/probe/sql/read?key=held").0, 404);
    assert_eq!(
        get(addr, "/probe/sql/read?key=other"),
        (200, "2".to_string())
    );
}

#[test]
fn the_libsql_client_refuses_what_its_classifier_does_not_know() {
    for refused in [
        "CREATE TEMP VIEW v AS SELECT 1",
        "create temporary table t (x)",
        "CREATE TEMP TRIGGER IF NOT EXISTS t INSTEAD OF INSERT ON v BEGIN SELECT 1; END",
        "PRAGMA busy_timeout = 0",
        "PRAGMA journal_mode = WAL",
        "PRAGMA main.synchronous=NORMAL;",
        "PRAGMA optimize",
    ] {
        assert!(libsql_client_refuses(refused), "{refused}");
    }
    for allowed in [
        "CREATE TABLE t (x)",
        "CREATE VIEW v AS SELECT 1",
        "SELECT 'CREATE TEMP VIEW'",
        "PRAGMA user_version = 3",
        "PRAGMA user_version",
        "PRAGMA busy_timeout",
        "PRAGMA foreign_keys = ON",
        "INSERT INTO t VALUES (1)",
    ] {
        assert!(!libsql_client_refuses(allowed), "{allowed}");
    }
}

#[test]
fn refused_statements_fail_as_on_libsql_and_run_nothing() {
    let execute = |host: &RunningHost, sql: &str| {
        let query: String = url_encode(sql);
        get(host.addr(), &format!("/probe/sql/execute?sql={query}"))
    };
    let (libsql, _scratch) = start_with("libsql-client", |c| c.sqlite_libsql_client = true);
    let refused = execute(&libsql, "CREATE TEMP VIEW v AS SELECT 1");
    assert_eq!(
        refused,
        (
            500,
            format!("error: Error::Io({UNSUPPORTED_STATEMENT_MESSAGE:?})")
        )
    );
    assert_eq!(UNSUPPORTED_STATEMENT_MESSAGE, "unsupported statement");
    assert_eq!(execute(&libsql, "SELECT * FROM v").0, 500);
    assert_eq!(
        execute(&libsql, "CREATE VIEW w AS SELECT 1"),
        (200, "rows: 0".into())
    );
    assert_eq!(execute(&libsql, "SELECT * FROM w"), (200, "rows: 1".into()));
    let (local, _scratch) = start("local-client", None);
    assert_eq!(
        execute(&local, "CREATE TEMP VIEW v AS SELECT 1"),
        (200, "rows: 0".into())
    );
}

/// `s` as a query-string value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
