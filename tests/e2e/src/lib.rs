//! Harness for end-to-end tests.
//!
//! - [`app`] starts the repository's real `spin.toml` on [`spin_test_host`], on
//!   `127.0.0.1:0`, with a fresh temporary data directory, optional variable
//!   overrides and test-only components (see [`probe`]).
//! - [`App::get`] and friends are a small blocking HTTP/1.1 client written on
//!   `std::net::TcpStream` (Content-Length, chunked and read-to-close bodies);
//!   [`App::connect`] gives a keep-alive [`Conn`] for many requests.
//! - [`FakeServer`] is a recording HTTP server with scripted replies, standing in for
//!   Gandalf, a provisioner, service APIs, healers or a mailer.
//!
//! Wasm files must be built before the tests run; the harness never runs cargo (a
//! nested cargo would wait forever on the target-directory lock held by `cargo test`).

pub mod accounts;
pub mod apps;
pub mod races;
pub mod services;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use spin_test_host::{
    AppVariable, ExtraComponent, HostConfig, RunningHost, STREAM_EXPIRED_MESSAGE,
};

/// Command that builds every wasm the tests need (the host and the tests themselves are
/// native crates, hence the exclusions).
pub const BUILD_WASM: &str = "cargo build --target wasm32-wasip1 --release --workspace --exclude spin-test-host --exclude e2e --exclude bench";
/// Command that builds the probe alone.
pub const BUILD_PROBE: &str = "cargo build --target wasm32-wasip1 --release -p probe";

/// Root of the repository (where `spin.toml` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The repository's real manifest.
pub fn spin_toml() -> PathBuf {
    repo_root().join("spin.toml")
}

/// The cargo target directory (`$CARGO_TARGET_DIR` or `<repo>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// `target/wasm32-wasip1/release/<name>.wasm`, or a panic naming the build command.
pub fn wasm(name: &str, build_command: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build it before running the tests with `{build_command}` \
         (tests never run cargo themselves)",
        path.display()
    );
    path
}

/// The test-only probe component, routed at `/probe/...` with the default key-value
/// store and SQLite database.
pub fn probe() -> ExtraComponent {
    ExtraComponent::new("probe", wasm("probe", BUILD_PROBE))
        .route("/probe/...")
        .key_value_store("default")
        .sqlite_database("default")
}

/// A directory under the system temp dir, removed on drop (kept when
/// `E2E_KEEP_DATA` is set, to inspect a failure).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("E2E_KEEP_DATA").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!("e2e: kept data dir {}", self.0.display());
        }
    }
}

/// Starts describing an app on the real `spin.toml`; finish with [`AppBuilder::start`].
pub fn app() -> AppBuilder {
    let data = TempDir::new("e2e-spin");
    let mut config = HostConfig::new(spin_toml(), data.path().join(".spin"));
    // Tests must not depend on the developer's shell: SPIN_VARIABLE_* is ignored
    // unless a test opts in with `use_process_env`.
    config.use_process_env = false;
    config.echo_component_output = std::env::var_os("E2E_QUIET").is_none();
    AppBuilder { config, data }
}

pub struct AppBuilder {
    config: HostConfig,
    data: TempDir,
}

impl AppBuilder {
    /// Overrides an application variable (wins over `SPIN_VARIABLE_*` and defaults).
    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.config.variables.insert(name.into(), value.into());
        self
    }

    /// Declares a test-only application variable.
    pub fn declare_var(mut self, name: &str, decl: AppVariable) -> Self {
        self.config.extra_variables.insert(name.into(), decl);
        self
    }

    /// Adds a test-only component.
    pub fn component(mut self, c: ExtraComponent) -> Self {
        self.config.extra_components.push(c);
        self
    }

    /// Adds the [`probe`] component at `/probe/...`.
    pub fn with_probe(self) -> Self {
        self.component(probe())
    }

    /// Consults `SPIN_VARIABLE_*` in the process environment, as `spin up` does.
    pub fn use_process_env(mut self) -> Self {
        self.config.use_process_env = true;
        self
    }

    /// Behaves like Spin on a remote libSQL database: a SQLite connection idle longer than
    /// `idle` since its last statement (sqld: 10 s) fails every later statement with
    /// `STREAM_EXPIRED` (see [`HostConfig::sqlite_idle_timeout`]), and the statements
    /// libSQL's client refuses fail too (see [`HostConfig::sqlite_libsql_client`]).
    pub fn remote_libsql(mut self, idle: Duration) -> Self {
        self.config.sqlite_idle_timeout = Some(idle);
        self.config.sqlite_libsql_client = true;
        self
    }

    /// Gives access to everything else in the host configuration.
    pub fn configure(mut self, f: impl FnOnce(&mut HostConfig)) -> Self {
        f(&mut self.config);
        self
    }

    pub fn try_start(self) -> anyhow::Result<App> {
        let host = RunningHost::start(self.config)?;
        Ok(App {
            host: Some(host),
            data: self.data,
        })
    }

    /// Starts the host; panics with the reason if it cannot start.
    pub fn start(self) -> App {
        match self.try_start() {
            Ok(app) => app,
            Err(e) => panic!("cannot start the test host: {e:#}"),
        }
    }
}

/// A running app with its own data directory.
pub struct App {
    host: Option<RunningHost>,
    data: TempDir,
}

impl App {
    pub fn host(&self) -> &RunningHost {
        self.host.as_ref().expect("host is running")
    }

    pub fn addr(&self) -> SocketAddr {
        self.host().addr()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.host().base_url())
    }

    /// The directory holding `.spin/` of this app.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Runs SQL on the app's `default` database, as an operator with direct access
    /// would: for states the API itself cannot create (e.g. a service without a
    /// production endpoint). Panics on an SQL error.
    pub fn sql(&self, sql: &str) {
        let path = self.data.path().join(".spin/sqlite_db.db");
        let conn = rusqlite::Connection::open(&path).expect("open the app database");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Everything components printed so far.
    pub fn component_output(&self) -> String {
        self.host().component_output()
    }

    /// Stops the host and starts it again on the same address and data directory.
    pub fn restart(&mut self) {
        let host = self.host.take().expect("host is running");
        self.host = Some(host.restart().expect("restart the host"));
    }

    /// Opens a keep-alive connection to the app.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.addr()).expect("connect to the app")
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder {
        RequestBuilder::to_addr(method, self.addr(), path)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request("GET", path)
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request("HEAD", path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request("POST", path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request("PUT", path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request("DELETE", path)
    }
}

/// One HTTP/1.1 request, sent on its own connection.
pub struct RequestBuilder {
    method: String,
    addr: SocketAddr,
    host: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

impl RequestBuilder {
    /// A request whose target (`/path?query`) is sent exactly as given.
    pub fn to_addr(method: &str, addr: SocketAddr, target: &str) -> Self {
        Self {
            method: method.to_string(),
            addr,
            host: addr.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// A request to an absolute `http://host:port/path` URL.
    pub fn to_url(method: &str, url: &str) -> Self {
        let rest = url.strip_prefix("http://").expect("only http:// URLs");
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = authority
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("cannot resolve {authority}"));
        let mut b = Self::to_addr(method, addr, target);
        b.host = authority.to_string();
        b
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sends the request; panics on a transport failure (tests want the reason).
    pub fn send(self) -> Resp {
        let what = format!("{} {} on {}", self.method, self.target, self.addr);
        self.try_send()
            .unwrap_or_else(|e| panic!("{what} failed: {e}"))
    }

    pub fn try_send(self) -> std::io::Result<Resp> {
        let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        let mut conn = Conn::from_stream(stream, self.timeout)?;
        conn.exchange(self, true)
    }

    /// Sends the request and reads only the status line and headers: the body is then
    /// read as it arrives with [`Streamed`] (deploy and run output, followed logs).
    /// Panics on a transport failure.
    pub fn open(self) -> Streamed {
        let what = format!("{} {} on {}", self.method, self.target, self.addr);
        self.try_open()
            .unwrap_or_else(|e| panic!("{what} failed: {e}"))
    }

    pub fn try_open(self) -> std::io::Result<Streamed> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        stream.write_all(&self.encode(true))?;
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let (start, headers) = read_head(&mut reader)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let status: u16 = start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data(format!("bad status line {start:?}")))?;
        let no_body = self.method == "HEAD" || status == 204 || status == 304 || status < 200;
        let framing = if no_body {
            Framing::Done
        } else if find(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(len) = find(&headers, "content-length") {
            let n = len
                .parse()
                .map_err(|_| bad_data(format!("bad content-length {len:?}")))?;
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Ok(Streamed {
            status,
            headers,
            reader,
            framing,
            received: Vec::new(),
            complete: no_body,
        })
    }

    /// The request bytes; `close` adds `Connection: close`.
    fn encode(&self, close: bool) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.target, self.host
        );
        let mut has_length = false;
        for (k, v) in &self.headers {
            has_length |= k.eq_ignore_ascii_case("content-length");
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = self.body.as_deref().unwrap_or_default();
        if !has_length
            && (!body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

/// A persistent (keep-alive) HTTP/1.1 connection, for tests and benchmarks that send
/// many requests: `let mut c = app.connect(); c.send(app.get("/x"))`.
pub struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let timeout = Duration::from_secs(60);
        Self::from_stream(TcpStream::connect_timeout(&addr, timeout)?, timeout)
    }

    fn from_stream(stream: TcpStream, timeout: Duration) -> std::io::Result<Self> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// Sends `req` on this connection (its address is ignored) and reads the reply.
    pub fn send(&mut self, req: RequestBuilder) -> Resp {
        let what = format!("{} {}", req.method, req.target);
        self.exchange(req, false)
            .unwrap_or_else(|e| panic!("{what} failed: {e}"))
    }

    fn exchange(&mut self, req: RequestBuilder, close: bool) -> std::io::Result<Resp> {
        // A server may answer before it has read the whole body (one too large) and close
        // the connection; as HTTP clients do, the answer it sent is read all the same.
        let sent = self
            .writer
            .write_all(&req.encode(close))
            .and_then(|()| self.writer.flush());
        let head = match sent {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                read_head(&mut self.reader).map_err(|_| e)?
            }
            other => {
                other?;
                read_head(&mut self.reader)?
            }
        };
        let (status, headers) = head.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let status: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_data(format!("bad status line {status:?}")))?;
        let no_body = req.method == "HEAD" || status == 204 || status == 304 || status < 200;
        let body = if no_body {
            Vec::new()
        } else {
            read_body(&mut self.reader, &headers, close)?
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

fn bad_data(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// A start line and its headers (names lower-cased).
type Head = (String, Vec<(String, String)>);

/// Reads a start line and headers; `None` on a clean EOF before anything.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad_data("eof inside headers".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| bad_data(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some((start.trim_end().to_string(), headers)))
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a body framed by Content-Length or chunked encoding; otherwise (for a
/// response) up to the end of the connection.
fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    until_close: bool,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if find(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = size.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16)
                .map_err(|_| bad_data(format!("bad chunk size {size:?}")))?;
            if n == 0 {
                // Skip trailers up to the blank line.
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = find(headers, "content-length") {
        let n: usize = len
            .parse()
            .map_err(|_| bad_data(format!("bad content-length {len:?}")))?;
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if until_close {
        r.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    /// Header names lower-cased, in received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Asserts the status and the exact body text (messages end with one newline).
    #[track_caller]
    pub fn assert_is(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.text().as_str()), (status, body));
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How the rest of a [`Streamed`] body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Chunked,
    Length(usize),
    UntilClose,
    Done,
}

/// A response whose body is read piece by piece as the server sends it, from
/// [`RequestBuilder::open`]: `let mut s = app.post("/x").open(); s.read_until("step 1")`.
pub struct Streamed {
    pub status: u16,
    /// Header names lower-cased, in received order.
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    /// Body bytes received so far (chunk framing removed).
    pub received: Vec<u8>,
    /// The body ended as its framing says (terminating chunk, full length, or EOF for a
    /// body delimited by the end of the connection).
    pub complete: bool,
}

impl Streamed {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Whether the body is sent with `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.framing == Framing::Chunked
    }

    /// The body received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Reads the next piece of the body (one chunk of a chunked body), appends it to
    /// [`Streamed::received`] and returns it; `Ok(None)` once the body has ended.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.complete {
            return Ok(None);
        }
        let piece = match self.framing {
            Framing::Done => Vec::new(),
            Framing::Chunked => {
                let mut size = String::new();
                if self.reader.read_line(&mut size)? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed inside a chunked body",
                    ));
                }
                let size = size.trim().split(';').next().unwrap_or("");
                let n = usize::from_str_radix(size, 16)
                    .map_err(|_| bad_data(format!("bad chunk size {size:?}")))?;
                if n == 0 {
                    loop {
                        let mut line = String::new();
                        if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    Vec::new()
                } else {
                    let mut data = vec![0; n];
                    std::io::Read::read_exact(&mut self.reader, &mut data)?;
                    let mut crlf = [0u8; 2];
                    std::io::Read::read_exact(&mut self.reader, &mut crlf)?;
                    data
                }
            }
            Framing::Length(n) => {
                let mut data = vec![0; n];
                std::io::Read::read_exact(&mut self.reader, &mut data)?;
                data
            }
            Framing::UntilClose => {
                let data = self.reader.fill_buf()?.to_vec();
                self.reader.consume(data.len());
                data
            }
        };
        let ended = match self.framing {
            Framing::Chunked | Framing::UntilClose => piece.is_empty(),
            Framing::Length(_) | Framing::Done => true,
        };
        self.received.extend_from_slice(&piece);
        if ended {
            self.complete = true;
            if piece.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(piece))
    }

    /// Reads until the body received so far contains `needle` (true) or the body ends
    /// without it (false). Panics on a transport failure or a read timeout.
    pub fn read_until(&mut self, needle: &str) -> bool {
        loop {
            if self.text().contains(needle) {
                return true;
            }
            match self.next_chunk() {
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(e) => panic!("reading the body (so far {:?}): {e}", self.text()),
            }
        }
    }

    /// Reads the rest of the body; returns the whole body as text. Panics on a transport
    /// failure (a chunked body must end with its terminating chunk).
    pub fn finish(&mut self) -> String {
        loop {
            match self.next_chunk() {
                Ok(Some(_)) => {}
                Ok(None) => return self.text(),
                Err(e) => panic!("reading the body (so far {:?}): {e}", self.text()),
            }
        }
    }
}

/// Sends `GET url` to any http:// URL.
pub fn get_url(url: &str) -> Resp {
    RequestBuilder::to_url("GET", url).send()
}

/// A URL on 127.0.0.1 where nothing listens (connections are refused).
pub fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// One request received by a [`FakeServer`].
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {:?}", self.text()))
    }
}

/// What a [`FakeServer`] answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before sending anything (tests timeouts and slow services).
    pub delay: Duration,
    /// Close the connection without answering (a crashed service).
    pub hang_up: bool,
    /// Send the body as these chunks with `Transfer-Encoding: chunked` instead of `body`
    /// (a provisioner streaming its output); see [`Reply::chunked`].
    pub chunks: Option<Vec<Vec<u8>>>,
    /// Pause between two chunks (not before the first: that is `delay`).
    pub chunk_delay: Duration,
    /// After the chunks, close the connection without the terminating zero-size chunk
    /// (a streaming peer that fails midway); see [`Reply::cut_off`].
    pub cut_off: bool,
    /// Read only the request's head, then wait `delay` and close without reading the
    /// body or answering (a peer that stalls the sender); see [`Reply::never_reading`].
    pub reads_no_body: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            hang_up: false,
            chunks: None,
            chunk_delay: Duration::ZERO,
            cut_off: false,
            reads_no_body: false,
        }
    }

    pub fn ok() -> Self {
        Self::status(200)
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::status(status)
            .header("Content-Type", "text/plain")
            .body(body)
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::status(status)
            .header("Content-Type", "application/json")
            .body(value.to_string())
    }

    /// Reads the head of the request and nothing more for `d`, then closes: its body
    /// stays in the socket buffers, and a large one stops the sender. Recorded with an
    /// empty body.
    pub fn never_reading(d: Duration) -> Self {
        Self {
            reads_no_body: true,
            delay: d,
            ..Self::status(0)
        }
    }

    /// Closes the connection instead of answering.
    pub fn hang_up() -> Self {
        Self {
            hang_up: true,
            ..Self::status(0)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// A streamed `text/plain` reply: `Transfer-Encoding: chunked`, each item of `chunks`
    /// written and flushed as one chunk (empty items are skipped: a zero-size chunk would
    /// end the body). Add [`Reply::chunk_delay`] to space them out and [`Reply::cut_off`]
    /// to drop the connection before the end.
    pub fn chunked(status: u16, chunks: &[&str]) -> Self {
        let mut reply = Self::status(status).header("Content-Type", "text/plain");
        reply.chunks = Some(chunks.iter().map(|c| c.as_bytes().to_vec()).collect());
        reply
    }

    /// Pause `d` between two chunks of a [`Reply::chunked`] reply.
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }

    /// Sends the chunks of a [`Reply::chunked`] reply, then closes the connection
    /// without the terminating chunk: the body never ends properly.
    pub fn cut_off(mut self) -> Self {
        self.cut_off = true;
        self
    }
}

#[derive(Default)]
struct FakeState {
    requests: Vec<Recorded>,
    /// (method or "*", path or target) -> replies used once, before `always`.
    once: HashMap<(String, String), VecDeque<Reply>>,
    always: HashMap<(String, String), Reply>,
    fallback: Option<Reply>,
}

impl FakeState {
    fn reply_for(&mut self, method: &str, target: &str) -> Reply {
        let path = target.split('?').next().unwrap_or("").to_string();
        let keys = [
            (method.to_string(), target.to_string()),
            (method.to_string(), path.clone()),
            ("*".to_string(), target.to_string()),
            ("*".to_string(), path),
        ];
        for k in &keys {
            if let Some(r) = self.once.get_mut(k).and_then(VecDeque::pop_front) {
                return r;
            }
        }
        for k in &keys {
            if let Some(r) = self.always.get(k) {
                return r.clone();
            }
        }
        self.fallback.clone().unwrap_or_else(Reply::ok)
    }
}

/// A recording HTTP server on 127.0.0.1:0. Unscripted requests get `200` with an
/// empty body. Stops when dropped.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<(Mutex<FakeState>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().expect("fake server addr");
        let state: Arc<(Mutex<FakeState>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve_fake_connection(conn, st));
            }
        });
        Self { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Always answers `method` (or `"*"`) on `path` (with or without query) with `reply`.
    pub fn on(&self, method: &str, path: &str, reply: Reply) {
        self.lock()
            .always
            .insert((method.to_string(), path.to_string()), reply);
    }

    /// Answers the next matching request with `reply` (queued before `on` replies).
    pub fn on_once(&self, method: &str, path: &str, reply: Reply) {
        self.lock()
            .once
            .entry((method.to_string(), path.to_string()))
            .or_default()
            .push_back(reply);
    }

    /// Reply for requests nothing else matches (default: `200`, empty).
    pub fn fallback(&self, reply: Reply) {
        self.lock().fallback = Some(reply);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests with this method (or `"*"`) and path (query ignored).
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| (method == "*" || r.method == method) && r.path() == path)
            .collect()
    }

    /// Forgets recorded requests (scripts stay).
    pub fn clear(&self) {
        self.lock().requests.clear();
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        while g.requests.len() < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve_fake_connection(conn: TcpStream, state: Arc<(Mutex<FakeState>, Condvar)>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    // Keep-alive: serve requests until the client closes.
    while let Ok(Some((start, headers))) = read_head(&mut reader) {
        let mut parts = start.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (m, cv) = &*state;
        let reply = m
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reply_for(&method, &target);
        let body = if reply.reads_no_body {
            Vec::new()
        } else {
            match read_body(&mut reader, &headers, false) {
                Ok(body) => body,
                Err(_) => return,
            }
        };
        let close = find(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        {
            let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
            g.requests.push(Recorded {
                method: method.clone(),
                target: target.clone(),
                headers,
                body,
            });
            cv.notify_all();
        }
        std::thread::sleep(reply.delay);
        if reply.hang_up || reply.reads_no_body {
            return;
        }
        if reply.chunks.is_some() {
            if !write_chunked_reply(&mut writer, &reply, &method) || close || reply.cut_off {
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            continue;
        }
        let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        let mut has_length = false;
        for (k, v) in &reply.headers {
            has_length |= k.eq_ignore_ascii_case("content-length");
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has_length {
            out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let sent = writer
            .write_all(out.as_bytes())
            .and_then(|_| writer.write_all(if method == "HEAD" { &[] } else { &reply.body }))
            .and_then(|_| writer.flush());
        if sent.is_err() || close {
            return;
        }
    }
}

/// Writes a [`Reply::chunked`] reply, flushing each chunk; false when the peer went away.
fn write_chunked_reply(writer: &mut TcpStream, reply: &Reply, method: &str) -> bool {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    let mut has_encoding = false;
    for (k, v) in &reply.headers {
        has_encoding |= k.eq_ignore_ascii_case("transfer-encoding");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_encoding {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    head.push_str("\r\n");
    if writer
        .write_all(head.as_bytes())
        .and_then(|_| writer.flush())
        .is_err()
    {
        return false;
    }
    if method == "HEAD" {
        return true;
    }
    let chunks = reply.chunks.as_deref().unwrap_or_default();
    for (i, chunk) in chunks.iter().filter(|c| !c.is_empty()).enumerate() {
        if i > 0 {
            std::thread::sleep(reply.chunk_delay);
        }
        let mut bytes = format!("{:x}\r\n", chunk.len()).into_bytes();
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
        if writer
            .write_all(&bytes)
            .and_then(|_| writer.flush())
            .is_err()
        {
            return false;
        }
    }
    if reply.cut_off {
        return true;
    }
    writer
        .write_all(b"0\r\n\r\n")
        .and_then(|_| writer.flush())
        .is_ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Parses `a=b&c=d` form bodies (values percent-decoded, `+` as space); handy for
/// asserting what the product sent to service APIs.
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}
