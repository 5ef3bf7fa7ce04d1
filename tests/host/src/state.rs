//! Per-request store state and the Spin host interfaces: key-value, SQLite and
//! variables (`fermyon:spin@2.0.0`), with the permissions the manifest grants.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::AllowedHosts;
use crate::variables::{ComponentVariables, GetError};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "fermyon:spin/test-host",
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": super::KvStore,
            "fermyon:spin/sqlite.connection": super::SqliteConnection,
        },
    });
}

use bindings::fermyon::spin::{key_value as kv, sqlite, variables};

/// Spin's limit on stores (and SQLite connections) open at once in one instance.
const MAX_OPEN_HANDLES: usize = 256;

/// The only label Spin defines without a runtime configuration file, for both
/// key-value stores and SQLite databases.
pub const DEFAULT_LABEL: &str = "default";

/// What Spin 4.0.2's libSQL backend answers (as `sqlite::Error::Io`) to every statement on a
/// connection whose server stream sqld expired: the libsql 0.5 client's error text
/// (`Hrana: `api error: `<body>``) around sqld's JSON error body.
pub const STREAM_EXPIRED_MESSAGE: &str = "Hrana: `api error: `{\"message\":\"The stream has expired due to inactivity\",\"code\":\"STREAM_EXPIRED\"}``";

/// What Spin 4.0.2's libSQL backend answers (as `sqlite::Error::Io`) to a statement its
/// client (libsql 0.5) will not send ([`libsql_client_refuses`]), without a round trip.
pub const UNSUPPORTED_STATEMENT_MESSAGE: &str = "unsupported statement";

/// Whether the libsql 0.5 client refuses `statement` before sending it (its statement
/// classifier, which `sqld` shares): temporary tables, views and triggers (they would be
/// bound to one server connection), and `PRAGMA`s other than the ones it knows, settings
/// among them only when read.
pub fn libsql_client_refuses(statement: &str) -> bool {
    /// Allowed with or without a value.
    const ANY_FORM: &[&str] = &[
        "TABLE_LIST",
        "INDEX_LIST",
        "TABLE_INFO",
        "TABLE_XINFO",
        "INDEX_INFO",
        "INDEX_XINFO",
        "PRAGMA_LIST",
        "COMPILE_OPTIONS",
        "DATABASE_LIST",
        "FUNCTION_LIST",
        "MODULE_LIST",
        "ENCODING",
        "DEFER_FOREIGN_KEYS",
        "FOREIGN_KEYS",
        "FOREIGN_KEY_LIST",
        "FOREIGN_KEY_CHECK",
        "COLLATION_LIST",
        "DATA_VERSION",
        "FREELIST_COUNT",
        "INTEGRITY_CHECK",
        "LEGACY_FILE_FORMAT",
        "PAGE_COUNT",
        "QUICK_CHECK",
        "STATS",
        "USER_VERSION",
    ];
    /// Allowed only when read, with no value.
    const SETTINGS: &[&str] = &[
        "ANALYSIS_LIMIT",
        "APPLICATION_ID",
        "AUTO_VACUUM",
        "AUTOMATIC_INDEX",
        "BUSY_TIMEOUT",
        "CACHE_SIZE",
        "CACHE_SPILL",
        "CELL_SIZE_CHECK",
        "CHECKPOINT_FULLFSYNC",
        "FULLFSYNC",
        "HARD_HEAP_LIMIT",
        "JOURNAL_MODE",
        "JOURNAL_SIZE_LIMIT",
        "LEGACY_ALTER_TABLE",
        "LOCKING_MODE",
        "MAX_PAGE_COUNT",
        "MMAP_SIZE",
        "PAGE_SIZE",
        "QUERY_ONLY",
        "READ_UNCOMMITTED",
        "RECURSIVE_TRIGGERS",
        "REVERSE_UNORDERED_SELECTS",
        "SCHEMA_VERSION",
        "SECURE_DELETE",
        "SOFT_HEAP_LIMIT",
        "SYNCHRONOUS",
        "TEMP_STORE",
        "THREADS",
        "TRUSTED_SCHEMA",
        "WAL_AUTOCHECKPOINT",
    ];
    let upper = statement.trim().trim_end_matches(';').to_ascii_uppercase();
    if let Some(rest) = upper.strip_prefix("CREATE") {
        return rest.trim_start().starts_with("TEMP");
    }
    let Some(rest) = upper.strip_prefix("PRAGMA") else {
        return false;
    };
    let rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let name = rest[..end].rsplit('.').next().unwrap_or_default();
    let with_value = !rest[end..].trim().is_empty();
    if ANY_FORM.contains(&name) {
        false
    } else {
        with_value || !SETTINGS.contains(&name)
    }
}

/// State shared by every instance of every component of one running host.
pub struct AppShared {
    kv_path: PathBuf,
    sqlite_path: PathBuf,
    /// Spin keeps a single connection to the key-value database, opened on first use.
    kv_conn: tokio::sync::OnceCell<Arc<Mutex<rusqlite::Connection>>>,
    pub logs: Arc<Mutex<Vec<u8>>>,
    pub echo_logs: bool,
    /// Store and variable calls of every instance, listed while a benchmark or a test
    /// asks for them (`None`: not listing).
    pub call_log: Mutex<Option<Vec<String>>>,
    /// See [`crate::HostConfig::sqlite_idle_timeout`].
    sqlite_idle_timeout: Option<Duration>,
    /// See [`crate::HostConfig::sqlite_libsql_client`].
    sqlite_libsql_client: bool,
}

impl AppShared {
    pub fn new(
        data_dir: &Path,
        echo_logs: bool,
        sqlite_idle_timeout: Option<Duration>,
        sqlite_libsql_client: bool,
    ) -> Self {
        Self {
            kv_path: data_dir.join("sqlite_key_value.db"),
            sqlite_path: data_dir.join("sqlite_db.db"),
            kv_conn: tokio::sync::OnceCell::new(),
            logs: Arc::default(),
            echo_logs,
            call_log: Mutex::new(None),
            sqlite_idle_timeout,
            sqlite_libsql_client,
        }
    }

    /// Adds a call to the call log when one is being kept; `describe` runs only then.
    fn log_call(&self, describe: impl FnOnce() -> String) {
        if let Some(calls) = lock(&self.call_log).as_mut() {
            calls.push(describe());
        }
    }

    async fn kv_connection(&self) -> Result<Arc<Mutex<rusqlite::Connection>>, String> {
        let path = self.kv_path.clone();
        self.kv_conn
            .get_or_try_init(|| async move {
                blocking(move || {
                    let conn = rusqlite::Connection::open(&path)?;
                    // Same table as Spin's SQLite-backed store, so a `.spin` directory
                    // written by one can be read by the other.
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS spin_key_value (
                            store TEXT NOT NULL,
                            key   TEXT NOT NULL,
                            value BLOB NOT NULL,
                            PRIMARY KEY (store, key)
                        )",
                        [],
                    )?;
                    Ok(Arc::new(Mutex::new(conn)))
                })
                .await
            })
            .await
            .cloned()
    }
}

/// What one component may do, fixed when the host starts.
pub struct ComponentGrants {
    pub key_value_stores: HashSet<String>,
    pub sqlite_databases: HashSet<String>,
    pub variables: ComponentVariables,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub environment: Vec<(String, String)>,
}

/// An open key-value store handle.
pub struct KvStore {
    label: String,
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// An open SQLite connection handle. Like Spin's in-process SQLite, every `open` gets
/// its own rusqlite connection (with rusqlite's defaults), made on first use.
pub struct SqliteConnection {
    path: PathBuf,
    slot: Arc<Mutex<ConnectionSlot>>,
}

/// The state behind one SQLite connection handle.
#[derive(Default)]
struct ConnectionSlot {
    conn: Option<rusqlite::Connection>,
    /// Statements run so far (whatever their outcome).
    statements: u64,
    /// When the last statement finished; `None` before the first one.
    last_done: Option<Instant>,
    /// With an idle timeout: the simulated server stream expired, for good.
    expired: bool,
}

impl ConnectionSlot {
    /// Whether the connection is (or has just become) unusable after `limit` idle;
    /// expiring it closes the rusqlite connection, which rolls back an open transaction
    /// and releases its locks, as sqld does when it drops a stream.
    fn check_expiry(&mut self, limit: Duration) -> Option<Duration> {
        let idle = self.last_done?.elapsed();
        if self.expired || idle > limit {
            self.expired = true;
            self.conn = None;
            Some(idle)
        } else {
            None
        }
    }
}

/// What one `execute` came to.
enum Executed {
    /// The statement ran (or failed in SQLite); the connection's statement count after it.
    Ran(Result<sqlite::QueryResult, String>, u64),
    /// The connection had been idle this long, over the limit: nothing ran.
    Expired(Duration),
}

/// Expires an idle connection when its time is up, even if the component never uses it
/// again: a remote server drops the stream (and any transaction it holds) on its own
/// clock. `statements` is the count when the last statement finished; a later statement
/// hands the watch over to its own watcher. The watch holds no strong reference, so a
/// handle the component drops closes its connection at once, as before.
fn watch_idle(slot: Weak<Mutex<ConnectionSlot>>, limit: Duration, statements: u64) {
    tokio::spawn(async move {
        let mut wait = limit;
        loop {
            tokio::time::sleep(wait + Duration::from_millis(1)).await;
            let slot = slot.clone();
            // The slot's lock can be held by a running statement (up to the busy timeout):
            // wait for it off the async workers.
            let again = tokio::task::spawn_blocking(move || {
                let slot = slot.upgrade()?;
                let mut s = lock(&slot);
                if s.statements != statements || s.expired {
                    return None;
                }
                match s.check_expiry(limit) {
                    Some(_) => None,
                    None => s.last_done.map(|d| limit.saturating_sub(d.elapsed())),
                }
            })
            .await
            .ok()
            .flatten();
            match again {
                Some(w) => wait = w,
                None => return,
            }
        }
    });
}

/// The data of one request's store.
pub struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: crate::server::OutboundHooks,
    pub app: Arc<AppShared>,
    pub grants: Arc<ComponentGrants>,
    open_stores: usize,
    open_connections: usize,
}

impl HostState {
    pub fn new(
        app: Arc<AppShared>,
        grants: Arc<ComponentGrants>,
        hooks: crate::server::OutboundHooks,
    ) -> Self {
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.envs(&grants.environment);
        let sink = LogSink {
            buf: app.logs.clone(),
            echo: app.echo_logs,
        };
        wasi.stdout(sink.clone());
        wasi.stderr(sink);
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks,
            app,
            grants,
            open_stores: 0,
            open_connections: 0,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Runs blocking SQLite work off the async workers, as Spin does, turning any error
/// into its message.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("internal runtime error: {e}")),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite state half-updated in Rust.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl kv::Host for HostState {}

impl kv::HostStore for HostState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvStore>, kv::Error>> {
        if !self.grants.key_value_stores.contains(&label) {
            return Ok(Err(kv::Error::AccessDenied));
        }
        if label != DEFAULT_LABEL {
            return Ok(Err(kv::Error::NoSuchStore));
        }
        if self.open_stores >= MAX_OPEN_HANDLES {
            return Ok(Err(kv::Error::StoreTableFull));
        }
        self.app.log_call(|| format!("key-value open {label}"));
        let conn = match self.app.kv_connection().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(kv::Error::Other(e))),
        };
        let handle = self.table.push(KvStore { label, conn })?;
        self.open_stores += 1;
        Ok(Ok(handle))
    }

    async fn get(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        self.app.log_call(|| format!("key-value get {key}"));
        let s = self.table.get(&store)?;
        let (conn, label) = (s.conn.clone(), s.label.clone());
        Ok(blocking(move || {
            let c = lock(&conn);
            let mut stmt =
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store=$1 AND key=$2")?;
            let mut rows = stmt.query_map([&label, &key], |row| row.get::<_, Vec<u8>>(0))?;
            rows.next().transpose()
        })
        .await
        .map_err(kv::Error::Other))
    }

    async fn set(
        &mut self,
        store: Resource<KvStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        self.app.log_call(|| format!("key-value set {key}"));
        let s = self.table.get(&store)?;
        let (conn, label) = (s.conn.clone(), s.label.clone());
        Ok(blocking(move || {
            lock(&conn)
                .prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT(store, key) DO UPDATE SET value=$3",
                )?
                .execute(rusqlite::params![label, key, value])
                .map(drop)
        })
        .await
        .map_err(kv::Error::Other))
    }

    async fn delete(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        self.app.log_call(|| format!("key-value delete {key}"));
        let s = self.table.get(&store)?;
        let (conn, label) = (s.conn.clone(), s.label.clone());
        Ok(blocking(move || {
            lock(&conn)
                .prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")?
                .execute([label, key])
                .map(drop)
        })
        .await
        .map_err(kv::Error::Other))
    }

    async fn exists(
        &mut self,
        store: Resource<KvStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        self.app.log_call(|| format!("key-value exists {key}"));
        let s = self.table.get(&store)?;
        let (conn, label) = (s.conn.clone(), s.label.clone());
        Ok(blocking(move || {
            let c = lock(&conn);
            let mut stmt =
                c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2")?;
            let found = stmt.exists([label, key])?;
            Ok(found)
        })
        .await
        .map_err(kv::Error::Other))
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvStore>,
    ) -> wasmtime::Result<Result<Vec<String>, kv::Error>> {
        self.app.log_call(|| "key-value get-keys".to_string());
        let s = self.table.get(&store)?;
        let (conn, label) = (s.conn.clone(), s.label.clone());
        Ok(blocking(move || {
            let c = lock(&conn);
            let mut stmt = c.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")?;
            let keys = stmt
                .query_map([label], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(keys)
        })
        .await
        .map_err(kv::Error::Other))
    }

    async fn drop(&mut self, store: Resource<KvStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open_stores = self.open_stores.saturating_sub(1);
        Ok(())
    }
}

impl sqlite::Host for HostState {}

impl sqlite::HostConnection for HostState {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<SqliteConnection>, sqlite::Error>> {
        if !self.grants.sqlite_databases.contains(&database) {
            return Ok(Err(sqlite::Error::AccessDenied));
        }
        if database != DEFAULT_LABEL {
            return Ok(Err(sqlite::Error::NoSuchDatabase));
        }
        if self.open_connections >= MAX_OPEN_HANDLES {
            return Ok(Err(sqlite::Error::Io("too many connections opened".into())));
        }
        self.app.log_call(|| format!("sqlite open {database}"));
        let handle = self.table.push(SqliteConnection {
            path: self.app.sqlite_path.clone(),
            slot: Arc::default(),
        })?;
        self.open_connections += 1;
        Ok(Ok(handle))
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<sqlite::Value>,
    ) -> wasmtime::Result<Result<sqlite::QueryResult, sqlite::Error>> {
        self.app.log_call(|| format!("sqlite execute {statement}"));
        let c = self.table.get(&connection)?;
        if self.app.sqlite_libsql_client && libsql_client_refuses(&statement) {
            return Ok(Err(sqlite::Error::Io(
                UNSUPPORTED_STATEMENT_MESSAGE.to_string(),
            )));
        }
        let (slot, path) = (c.slot.clone(), c.path.clone());
        let idle_timeout = self.app.sqlite_idle_timeout;
        let watched = Arc::downgrade(&slot);
        let outcome = blocking(move || {
            let mut s = lock(&slot);
            if let Some(idle) = idle_timeout.and_then(|limit| s.check_expiry(limit)) {
                return Ok(Executed::Expired(idle));
            }
            let result = match &mut s.conn {
                Some(conn) => run_statement(conn, &statement, parameters),
                empty => open_database(&path)
                    .and_then(|conn| run_statement(empty.insert(conn), &statement, parameters)),
            };
            s.statements += 1;
            s.last_done = Some(Instant::now());
            Ok(Executed::Ran(
                result.map_err(|e| e.to_string()),
                s.statements,
            ))
        })
        .await;
        Ok(match outcome {
            Ok(Executed::Ran(result, statements)) => {
                if let Some(limit) = idle_timeout {
                    watch_idle(watched, limit, statements);
                }
                result.map_err(sqlite::Error::Io)
            }
            Ok(Executed::Expired(idle)) => {
                self.app.log_call(|| {
                    format!(
                        "sqlite stream expired: the connection was idle {} ms (limit {} ms); statement refused",
                        idle.as_millis(),
                        idle_timeout.unwrap_or_default().as_millis()
                    )
                });
                Err(sqlite::Error::Io(STREAM_EXPIRED_MESSAGE.to_string()))
            }
            Err(e) => Err(sqlite::Error::Io(e)),
        })
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open_connections = self.open_connections.saturating_sub(1);
        Ok(())
    }
}

/// Opens the database file as Spin's default database does: plain
/// `rusqlite::Connection::open` (rollback journal, rusqlite's 5 s busy timeout), and
/// no `ATTACH` of other files.
fn open_database(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
        use rusqlite::hooks::{AuthAction, Authorization};
        match ctx.action {
            AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        }
    }));
    Ok(conn)
}

fn run_statement(
    conn: &rusqlite::Connection,
    statement: &str,
    parameters: Vec<sqlite::Value>,
) -> rusqlite::Result<sqlite::QueryResult> {
    use rusqlite::types::{Value as V, ValueRef};
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let params = parameters.into_iter().map(|p| match p {
        sqlite::Value::Null => V::Null,
        sqlite::Value::Integer(i) => V::Integer(i),
        sqlite::Value::Real(r) => V::Real(r),
        sqlite::Value::Text(t) => V::Text(t),
        sqlite::Value::Blob(b) => V::Blob(b),
    });
    let width = columns.len();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |row| {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => sqlite::Value::Null,
                    ValueRef::Integer(i) => sqlite::Value::Integer(i),
                    ValueRef::Real(r) => sqlite::Value::Real(r),
                    // Spin assumes UTF-8 here; stay total on bad bytes instead.
                    ValueRef::Text(t) => {
                        sqlite::Value::Text(String::from_utf8_lossy(t).into_owned())
                    }
                    ValueRef::Blob(b) => sqlite::Value::Blob(b.to_vec()),
                });
            }
            Ok(sqlite::RowResult { values })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(sqlite::QueryResult { columns, rows })
}

impl variables::Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        self.app.log_call(|| format!("variable get {name}"));
        Ok(self.grants.variables.get(&name).map_err(|e| match e {
            GetError::InvalidName(m) => variables::Error::InvalidName(m),
            GetError::Undefined(m) => variables::Error::Undefined(m),
        }))
    }
}

/// Guest stdout/stderr: kept in memory for tests, and copied to the host's stderr
/// when echo is on (as `spin up` shows component output on its console).
#[derive(Clone)]
struct LogSink {
    buf: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl wasmtime_wasi::cli::IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        lock(&self.buf).extend_from_slice(data);
        if self.echo {
            use std::io::Write;
            let _ = std::io::stderr().write_all(data);
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
