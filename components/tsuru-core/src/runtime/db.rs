//! SQLite access: one connection at a time per request, opened on first use and again
//! after an outbound call; parameterized statements only; write transactions with
//! `BEGIN IMMEDIATE`; the schema checked once per request (see `schema`).

use crate::runtime::error::ApiError;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::{Duration, Instant};

/// A SQLite value, as Spin's `sqlite` interface carries it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Real(f)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Integer(b as i64)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row; columns are read by position, in the order the query selects them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn text(&self, i: usize) -> String {
        match self.0.get(i) {
            Some(Value::Text(s)) => s.clone(),
            Some(Value::Integer(n)) => n.to_string(),
            _ => String::new(),
        }
    }
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Value::Text(s)) => Some(s.clone()),
            _ => None,
        }
    }
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Integer(n)) => *n,
            Some(Value::Real(f)) => *f as i64,
            Some(Value::Text(s)) => s.parse().unwrap_or(0),
            _ => 0,
        }
    }
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        }
    }
    pub fn real(&self, i: usize) -> f64 {
        match self.0.get(i) {
            Some(Value::Real(f)) => *f,
            Some(Value::Integer(n)) => *n as f64,
            _ => 0.0,
        }
    }
    pub fn bool(&self, i: usize) -> bool {
        self.int(i) != 0
    }
}

/// A failed statement. Converted to `500 Internal server error` unless the caller
/// looks at it first (unique violations become 409s in the routes that expect them).
#[derive(Debug, Clone)]
pub struct DbError(pub String);

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        self.0.contains("UNIQUE constraint failed") || self.0.contains("PRIMARY KEY")
    }
    /// A row refers to a parent that no longer exists (a concurrent removal).
    pub fn is_foreign_key_violation(&self) -> bool {
        self.0.contains("FOREIGN KEY constraint failed")
    }
    fn is_busy(&self) -> bool {
        self.0.contains("database is locked") || self.0.contains("database table is locked")
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sqlite: {}", self.0)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::internal(e)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// The connection behind a [`Db`]: Spin's SQLite in the components, rusqlite in unit tests.
pub trait SqlBackend {
    fn execute(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>>;
}

/// Most values one statement may bind: SQLite's default limit since 3.32 (Spin's bundled
/// SQLite and libSQL's are both newer).
pub const MAX_BOUND_VALUES: usize = 32_766;

/// How long a statement keeps retrying while another connection holds the write lock.
/// Spin gives every request its own connection, so concurrent writers really contend.
const BUSY_DEADLINE: Duration = Duration::from_secs(10);

/// Waits before trying for the write lock again, less the longer the request has
/// waited: SQLite's own busy handler does the opposite (it sleeps in growing steps up to
/// 100 ms), so under contention a request that falls behind keeps losing the lock to
/// newer ones: the write tail. Here the oldest waiters try most often and tend to win,
/// close to first come, first served, while new waiters cost little. `waited` is the
/// request's whole wait, over all its statements: a route that commits twice (reserve,
/// call a service, confirm) queues a second time with the standing its first wait
/// earned, not as a newcomer. The pause is drawn from the clock so that waiters do not
/// retry in step.
fn busy_pause(waited: Duration) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let (least, spread) = match waited.as_millis() {
        0..20 => (2_000, 2_000),
        20..50 => (1_000, 1_000),
        50..100 => (300, 300),
        _ => (100, 100),
    };
    std::thread::sleep(Duration::from_micros(least + u64::from(nanos) % spread));
}

/// Whether a statement writes (then it can take the write lock itself at the start of a
/// transaction); anything else counts as a read.
fn opens_with_write(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or_default();
    ["INSERT", "UPDATE", "DELETE", "REPLACE"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
}

/// Opens a new connection to the database.
pub type Opener = Box<dyn Fn() -> DbResult<Box<dyn SqlBackend>>>;

/// Brings an older schema up to date; it reads the version itself.
pub type Migration = Box<dyn Fn(&Db) -> DbResult<()>>;

/// How a request keeps the schema current (see [`Db::query_first`]).
pub struct SchemaCheck {
    /// The schema version the code expects (`PRAGMA user_version`).
    pub latest: i64,
    pub migrate: Migration,
}

/// A write procedure: a temporary view whose `INSTEAD OF INSERT` trigger runs `body`, so
/// that a write of many changes is one autocommit statement (`INSERT INTO <view> SELECT
/// ... WHERE <checks>`): the write lock is held for one host call instead of one per
/// change. The checks stay in the caller's SELECT; a SELECT that finds nothing fires
/// nothing, and a failure in the body undoes the whole statement.
///
/// Temporary, so that only the request that calls it parses it: every request opens a
/// new connection, which parses the whole schema on its first statement, and a trigger
/// in the schema would cost every route that parse. A database that refuses temporary
/// objects (libSQL: `sqld` and its client do) runs the same body as statements of one
/// transaction instead ([`Db::call`]).
pub struct Procedure {
    /// The view's name.
    pub name: &'static str,
    /// The view's columns: what the caller's SELECT gives, in order, and what the body
    /// and `result` read as `NEW.<column>`.
    pub columns: &'static [&'static str],
    /// The statements the procedure runs, in order.
    pub body: &'static [&'static str],
    /// An expression evaluated once the body has run: the row [`Db::call`] returns.
    pub result: &'static str,
}

impl Procedure {
    /// `sql` with every `NEW.<column>` replaced by `replace(column's position)`.
    fn render(&self, sql: &str, mut replace: impl FnMut(usize) -> String) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find("NEW.") {
            let after = &rest[at + 4..];
            let length = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let standalone = !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            match self.columns.iter().position(|c| *c == &after[..length]) {
                Some(column) if standalone => {
                    out.push_str(&rest[..at]);
                    out.push_str(&replace(column));
                }
                _ => out.push_str(&rest[..at + 4 + length]),
            }
            rest = &after[length..];
        }
        out.push_str(rest);
        out
    }

    /// `sql` with its `NEW.<column>`s as numbered parameters, and their values from `row`.
    fn bind(&self, sql: &str, row: &Row) -> (String, Vec<Value>) {
        let mut used: Vec<usize> = Vec::new();
        let sql = self.render(sql, |column| {
            let number = match used.iter().position(|u| *u == column) {
                Some(i) => i + 1,
                None => {
                    used.push(column);
                    used.len()
                }
            };
            format!("?{number}")
        });
        let values = used
            .iter()
            .map(|i| row.0.get(*i).cloned().unwrap_or(Value::Null))
            .collect();
        (sql, values)
    }

    fn view(&self) -> String {
        format!(
            "CREATE TEMP VIEW IF NOT EXISTS {} ({}) AS SELECT {} WHERE 0",
            self.name,
            self.columns.join(", "),
            vec!["NULL"; self.columns.len()].join(", ")
        )
    }

    fn trigger(&self) -> String {
        format!(
            "CREATE TEMP TRIGGER IF NOT EXISTS {0}_call INSTEAD OF INSERT ON {0} BEGIN {1}; END",
            self.name,
            self.body.join("; ")
        )
    }

    /// The one statement that calls the defined procedure: `RETURNING` reads the
    /// inserted row by the view's name, once the trigger has run.
    fn insert(&self, select: &str) -> String {
        format!(
            "INSERT INTO {} ({}) {select} RETURNING {}",
            self.name,
            self.columns.join(", "),
            self.render(self.result, |column| format!(
                "{}.{}",
                self.name, self.columns[column]
            ))
        )
    }
}

/// A request's database: one connection, opened on the first statement, and opened
/// again after [`Db::release`] (a remote database drops a connection left idle during an
/// outbound call, so none is held across one). The schema is checked once per request,
/// inside the request's first statement when that statement allows it.
pub struct Db {
    open: Opener,
    connection: RefCell<Option<Box<dyn SqlBackend>>>,
    schema: SchemaCheck,
    schema_checked: Cell<bool>,
    in_transaction: Cell<bool>,
    /// Whether the current transaction has sent its `BEGIN` (see [`Db::transaction`]).
    begun: Cell<bool>,
    /// Whether this connection is set up for writing ([`Db::prepare_for_writes`]).
    busy_handler_off: Cell<bool>,
    /// The procedures defined on this connection ([`Db::call`]).
    procedures: RefCell<Vec<&'static str>>,
    /// Whether this database refused to define a procedure (it refuses temporary objects).
    procedures_refused: Cell<bool>,
    /// Whether a write of this request reached a table's next pruning point (the audit
    /// trail's, `audit::prune_if_due`), to be acted on once the request's work is done.
    prune_due: Cell<bool>,
    /// How long this request's statements have waited for the write lock, in all.
    lock_waited: Cell<Duration>,
}

impl Db {
    pub fn new(open: Opener, schema: SchemaCheck) -> Self {
        Db {
            open,
            connection: RefCell::new(None),
            schema,
            schema_checked: Cell::new(false),
            in_transaction: Cell::new(false),
            begun: Cell::new(false),
            busy_handler_off: Cell::new(false),
            procedures: RefCell::new(Vec::new()),
            procedures_refused: Cell::new(false),
            prune_due: Cell::new(false),
            lock_waited: Cell::new(Duration::ZERO),
        }
    }

    /// Notes that a pruning point was reached (see the `prune_due` field).
    pub fn set_prune_due(&self) {
        self.prune_due.set(true);
    }

    /// Whether a pruning point was reached; clears the note.
    pub fn take_prune_due(&self) -> bool {
        self.prune_due.replace(false)
    }

    /// Runs a statement on the connection, opening it first if needed, and retrying
    /// while the database is locked.
    fn run(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        if self.in_transaction.get() && !self.begun.get() {
            self.begun.set(true);
            let begin = if opens_with_write(sql) {
                "BEGIN"
            } else {
                "BEGIN IMMEDIATE"
            };
            if let Err(e) = self.run(begin, &[]) {
                self.begun.set(false);
                return Err(e);
            }
        }
        let mut connection = self.connection.borrow_mut();
        if connection.is_none() {
            *connection = Some((self.open)()?);
        }
        let Some(backend) = connection.as_ref() else {
            return Err(DbError("no connection".into()));
        };
        let started = Instant::now();
        let before = self.lock_waited.get();
        loop {
            match backend.execute(sql, params) {
                Err(e) if e.is_busy() && started.elapsed() < BUSY_DEADLINE => {
                    self.lock_waited.set(before + started.elapsed());
                    busy_pause(self.lock_waited.get());
                }
                other => return other,
            }
        }
    }

    /// Migrates an older schema, once per request.
    fn ensure_schema(&self) -> DbResult<()> {
        if self.schema_checked.get() {
            return Ok(());
        }
        // Set first: the migration runs its own statements through this Db.
        self.schema_checked.set(true);
        let migrated = (self.schema.migrate)(self);
        if migrated.is_err() {
            self.schema_checked.set(false);
        }
        migrated
    }

    /// Runs a statement and returns its rows.
    pub fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        self.ensure_schema()?;
        self.run(sql, params)
    }

    /// Runs a request's first statement, one that also reads the schema version: its
    /// first column is `user_version` and it returns at least one row (it selects from
    /// `pragma_user_version` and joins what the route reads). A current schema then
    /// costs no statement of its own. When the version is older, or the statement fails
    /// (an old schema may lack what it names), the schema is migrated and the statement
    /// runs again.
    pub fn query_first(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        if self.schema_checked.get() {
            return self.run(sql, params);
        }
        match self.run(sql, params) {
            Ok(rows) if rows.first().is_some_and(|r| r.int(0) >= self.schema.latest) => {
                self.schema_checked.set(true);
                Ok(rows)
            }
            _ => {
                self.ensure_schema()?;
                self.run(sql, params)
            }
        }
    }

    pub fn execute(&self, sql: &str, params: &[Value]) -> DbResult<()> {
        self.query(sql, params).map(|_| ())
    }

    pub fn query_opt(&self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub fn exists(&self, sql: &str, params: &[Value]) -> DbResult<bool> {
        Ok(self.query_opt(sql, params)?.is_some())
    }

    /// Runs `f` inside one write transaction; commits on `Ok`, rolls back on `Err`.
    /// Inside another transaction, `f` simply joins it. No outbound call may happen
    /// inside (API.md 8.9): a write lock is never held while waiting on another system.
    ///
    /// The `BEGIN` goes out with the transaction's first statement, as the statement
    /// asks: before a write, a plain `BEGIN`, and the write takes the lock itself (one
    /// host call less under the lock; a write that fails to get it leaves no snapshot
    /// behind, so trying again is safe); before a read, `BEGIN IMMEDIATE`, so that what
    /// the read checks holds until the commit and two writers never deadlock upgrading
    /// read locks. A transaction that runs no statement sends nothing.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        if self.in_transaction.get() {
            return f(self);
        }
        self.ensure_schema()?;
        self.prepare_for_writes();
        self.in_transaction.set(true);
        let outcome = f(self);
        self.in_transaction.set(false);
        if !self.begun.replace(false) {
            return outcome;
        }
        self.finish(outcome)
    }

    /// Commits on `Ok`, rolls back on `Err` (or when the commit fails).
    fn finish<T, E>(&self, outcome: Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        match outcome {
            Ok(value) => match self.run("COMMIT", &[]) {
                Ok(_) => Ok(value),
                Err(e) => {
                    let _ = self.run("ROLLBACK", &[]);
                    Err(e.into())
                }
            },
            Err(e) => {
                if let Err(rollback) = self.run("ROLLBACK", &[]) {
                    eprintln!("rollback failed: {rollback}");
                }
                Err(e)
            }
        }
    }

    /// Runs one write statement on its own (SQLite makes it its own transaction), waiting
    /// for the write lock the way transactions do.
    pub fn write(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        if !self.in_transaction.get() {
            self.ensure_schema()?;
            self.prepare_for_writes();
        }
        self.run(sql, params)
    }

    /// Inserts rows of `width` values each (`values`, row after row) with `insert`, the
    /// statement up to its `VALUES`, and `on_conflict` after the rows (or `""`): as few
    /// statements as SQLite's limit on bound values allows, one for any request this API
    /// accepts. The values are bound, never spliced in (JSON would be shorter, but
    /// libSQL's SQLite 3.44 cuts a `json_each` string at an escaped NUL).
    pub fn insert_rows(
        &self,
        insert: &str,
        width: usize,
        values: &[Value],
        on_conflict: &str,
    ) -> DbResult<()> {
        let width = width.max(1);
        let row = format!("({})", vec!["?"; width].join(", "));
        for chunk in values.chunks(MAX_BOUND_VALUES / width * width) {
            let rows = vec![row.as_str(); chunk.len() / width].join(", ");
            self.execute(&format!("{insert} {rows} {on_conflict}"), chunk)?;
        }
        Ok(())
    }

    /// Calls `procedure` with each row `select` finds (`SELECT <a value per column> ...
    /// WHERE <checks>`) and returns `result` for each: one write on its own
    /// ([`Db::write`]), the procedure defined on this connection first if needed (two
    /// statements before the write; creating temporary objects takes no lock on the
    /// database). Where it cannot be defined (a database that refuses temporary objects;
    /// inside a transaction, whose rollback would undo the definition), the SELECT, the
    /// body and the result run as statements of one transaction instead, with the same
    /// outcome.
    pub fn call(
        &self,
        procedure: &Procedure,
        select: &str,
        params: &[Value],
    ) -> DbResult<Vec<Row>> {
        let known = self.procedures.borrow().contains(&procedure.name);
        let defined = known
            || (!self.in_transaction.get()
                && !self.procedures_refused.get()
                && self.define(procedure));
        if defined {
            return self.write(&procedure.insert(select), params);
        }
        self.transaction(|db| {
            let mut results = Vec::new();
            for row in db.query(select, params)? {
                for statement in procedure.body {
                    let (sql, values) = procedure.bind(statement, &row);
                    db.execute(&sql, &values)?;
                }
                let (sql, values) = procedure.bind(&format!("SELECT {}", procedure.result), &row);
                results.extend(db.query(&sql, &values)?);
            }
            Ok(results)
        })
    }

    /// Defines `procedure` on this connection; false when the database refuses.
    fn define(&self, procedure: &Procedure) -> bool {
        let defined = self
            .execute(&procedure.view(), &[])
            .and_then(|_| self.execute(&procedure.trigger(), &[]));
        match defined {
            Ok(()) => self.procedures.borrow_mut().push(procedure.name),
            Err(_) => self.procedures_refused.set(true),
        }
        defined.is_ok()
    }

    /// [`Db::write`] for a statement that returns at most one row.
    pub fn write_opt(&self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.write(sql, params)?.into_iter().next())
    }

    /// Sets up the connection for writing, once: its own busy handler off (it would wait
    /// in steps of up to 100 ms; `run` retries as [`busy_pause`] says instead). Commits
    /// still wait for the disk (`synchronous = FULL`, Spin's default): a power cut loses
    /// no write the API acknowledged. A remote libSQL database refuses the setting (its
    /// client does, with no round trip) and keeps its own way of waiting.
    fn prepare_for_writes(&self) {
        if self.busy_handler_off.get() {
            return;
        }
        let _ = self.run("PRAGMA busy_timeout = 0", &[]);
        self.busy_handler_off.set(true);
    }

    /// Closes the connection; the next statement opens a new one. Called before every
    /// outbound call and between the polls of a long stream.
    pub fn release(&self) {
        if self.in_transaction.get() {
            eprintln!("a connection cannot be released inside a transaction");
            return;
        }
        self.connection.borrow_mut().take();
        self.busy_handler_off.set(false);
        self.procedures.borrow_mut().clear();
    }
}

/// Builds a parameter list from heterogeneous values: `params![a, 1i64, None::<String>]`.
#[macro_export]
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::runtime::db::Value::from($v)),*]
    };
}

#[cfg(test)]
pub mod native {
    //! A rusqlite-backed [`SqlBackend`] so storage rules can be unit-tested natively.
    use super::*;

    pub struct NativeDb(pub rusqlite::Connection);

    /// The first column of every row `sql` returns, as text (tests read tables with it).
    pub fn texts(db: &Db, sql: &str, params: &[Value]) -> Vec<String> {
        db.query(sql, params)
            .expect("query")
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// A connection that refuses temporary objects as libSQL does (its client answers
    /// `unsupported statement`, and so does `sqld`).
    pub struct LibsqlLike(pub NativeDb);

    impl SqlBackend for LibsqlLike {
        fn execute(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
            let words: Vec<String> = sql
                .split_whitespace()
                .take(2)
                .map(str::to_ascii_uppercase)
                .collect();
            match words.as_slice() {
                [create, temp] if create == "CREATE" && temp.starts_with("TEMP") => {
                    Err(DbError("unsupported statement".into()))
                }
                _ => self.0.execute(sql, params),
            }
        }
    }

    impl NativeDb {
        /// A database of one in-memory connection, whose schema is the test's business.
        pub fn memory() -> Db {
            Self::memory_db(|c| Box::new(NativeDb(c)))
        }

        /// [`NativeDb::memory`] refusing temporary objects ([`LibsqlLike`]).
        pub fn memory_like_libsql() -> Db {
            Self::memory_db(|c| Box::new(LibsqlLike(NativeDb(c))))
        }

        fn memory_db(backend: fn(rusqlite::Connection) -> Box<dyn SqlBackend>) -> Db {
            let connection = rusqlite::Connection::open_in_memory().expect("in-memory sqlite");
            let connection = std::cell::Cell::new(Some(connection));
            Db::new(
                Box::new(move || match connection.take() {
                    Some(c) => Ok(backend(c)),
                    None => Err(DbError("the in-memory database was released".into())),
                }),
                SchemaCheck {
                    latest: 0,
                    migrate: Box::new(|_| Ok(())),
                },
            )
        }
    }

    impl SqlBackend for NativeDb {
        fn execute(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
            let err = |e: rusqlite::Error| DbError(e.to_string());
            let mut stmt = self.0.prepare(sql).map_err(err)?;
            let columns = stmt.column_count();
            let params: Vec<rusqlite::types::Value> = params
                .iter()
                .map(|v| match v {
                    Value::Null => rusqlite::types::Value::Null,
                    Value::Integer(i) => rusqlite::types::Value::Integer(*i),
                    Value::Real(f) => rusqlite::types::Value::Real(*f),
                    Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
                    Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
                })
                .collect();
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(err)? {
                let mut values = Vec::with_capacity(columns);
                for i in 0..columns {
                    values.push(match row.get_ref(i).map_err(err)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(n) => Value::Integer(n),
                        rusqlite::types::ValueRef::Real(f) => Value::Real(f),
                        rusqlite::types::ValueRef::Text(t) => {
                            Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    });
                }
                out.push(Row(values));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::native::{LibsqlLike, NativeDb};
    use super::{
        Db, DbError, DbResult, Procedure, Row, SchemaCheck, SqlBackend, Value, MAX_BOUND_VALUES,
    };
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    /// A connection to a database file that records every statement it is sent.
    struct Recorder {
        inner: Box<dyn SqlBackend>,
        sent: Rc<RefCell<Vec<String>>>,
    }

    impl SqlBackend for Recorder {
        fn execute(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
            self.sent.borrow_mut().push(sql.to_string());
            self.inner.execute(sql, params)
        }
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("tsuru-core-db-{name}-{}.db", std::process::id()));
        remove_db(&path);
        path
    }

    fn remove_db(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn recorded(path: &std::path::Path) -> (Db, Rc<RefCell<Vec<String>>>) {
        recorded_on(path, |conn| Box::new(NativeDb(conn)))
    }

    /// [`recorded`] on the backend `backend` makes of each connection.
    fn recorded_on(
        path: &std::path::Path,
        backend: fn(rusqlite::Connection) -> Box<dyn SqlBackend>,
    ) -> (Db, Rc<RefCell<Vec<String>>>) {
        let sent = Rc::new(RefCell::new(Vec::new()));
        let (path, log) = (path.to_path_buf(), sent.clone());
        let db = Db::new(
            Box::new(move || {
                let conn = rusqlite::Connection::open(&path).map_err(|e| DbError(e.to_string()))?;
                Ok(Box::new(Recorder {
                    inner: backend(conn),
                    sent: log.clone(),
                }) as Box<dyn SqlBackend>)
            }),
            SchemaCheck {
                latest: 0,
                migrate: Box::new(|_| Ok(())),
            },
        );
        (db, sent)
    }

    /// Adds a member to a team and counts the team's members, refusing a full team.
    const JOIN: Procedure = Procedure {
        name: "joins",
        columns: &["team", "member", "member_id"],
        body: &[
            "INSERT INTO members (team, member, id) VALUES (NEW.team, NEW.member, NEW.member_id)",
            "UPDATE teams SET size = size + 1 WHERE name = NEW.team",
        ],
        result: "(SELECT size FROM teams WHERE name = NEW.team)",
    };

    const JOIN_SELECT: &str =
        "SELECT ?1, ?2, ?3 WHERE (SELECT size < 2 FROM teams WHERE name = ?1)";

    fn join_tables(db: &Db) {
        for sql in [
            "CREATE TABLE teams (name TEXT PRIMARY KEY, size INTEGER NOT NULL)",
            "CREATE TABLE members (team TEXT, member TEXT, id INTEGER UNIQUE)",
            "INSERT INTO teams VALUES ('dev', 0)",
        ] {
            db.execute(sql, &[]).unwrap();
        }
    }

    fn join(db: &Db, member: &str, id: i64) -> DbResult<Vec<Row>> {
        db.call(
            &JOIN,
            JOIN_SELECT,
            &[Value::from("dev"), member.into(), id.into()],
        )
    }

    /// Holds the write lock of the database at `path` from another connection for `hold`,
    /// returning once the lock is taken.
    fn hold_write_lock(path: &std::path::Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let (taken, wait) = std::sync::mpsc::channel();
        let path = path.to_path_buf();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
            taken.send(()).expect("signal");
            std::thread::sleep(hold);
            conn.execute_batch("COMMIT").expect("unlock");
        });
        wait.recv().expect("lock taken");
        holder
    }

    #[test]
    fn a_request_keeps_its_wait_for_the_write_lock_across_statements() {
        let path = temp_db("lock-wait");
        let (db, _) = recorded(&path);
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        db.write("INSERT INTO t VALUES (0)", &[]).unwrap();
        assert_eq!(
            db.lock_waited.get(),
            Duration::ZERO,
            "no wait without a holder"
        );

        let holder = hold_write_lock(&path, Duration::from_millis(60));
        db.write("INSERT INTO t VALUES (1)", &[]).unwrap();
        holder.join().unwrap();
        let first = db.lock_waited.get();
        assert!(first >= Duration::from_millis(30), "first wait {first:?}");

        // A second transaction of the same request starts from what the first waited.
        let holder = hold_write_lock(&path, Duration::from_millis(60));
        db.transaction(|db| db.execute("INSERT INTO t VALUES (2)", &[]))
            .unwrap();
        holder.join().unwrap();
        let total = db.lock_waited.get();
        assert!(
            total >= first + Duration::from_millis(30),
            "{first:?}, then {total:?}"
        );
        let rows = db.query("SELECT COUNT(*) FROM t", &[]).unwrap();
        assert_eq!(rows[0].int(0), 3);
        remove_db(&path);
    }

    #[test]
    fn a_procedure_reads_its_columns_by_name_only() {
        let (sql, values) = JOIN.bind(
            "SELECT NEW.member_id, NEW.member, RENEW.member, NEW.member, NEW.other, NEW.team",
            &Row(vec!["dev".into(), "ann".into(), 7.into()]),
        );
        assert_eq!(sql, "SELECT ?1, ?2, RENEW.member, ?2, NEW.other, ?3");
        assert_eq!(values, [Value::from(7), "ann".into(), "dev".into()]);
    }

    #[test]
    fn a_procedure_is_one_write_where_temporary_objects_are_allowed() {
        let path = temp_db("procedure");
        let (db, sent) = recorded(&path);
        join_tables(&db);
        sent.borrow_mut().clear();
        assert_eq!(join(&db, "ann", 1).unwrap(), [Row(vec![1.into()])]);
        let first = sent.borrow().clone();
        assert_eq!(first.len(), 4, "{first:?}");
        assert_eq!(first[0], JOIN.view());
        assert_eq!(first[1], JOIN.trigger());
        assert_eq!(first[2], "PRAGMA busy_timeout = 0");
        assert_eq!(
            first[3],
            format!("INSERT INTO joins (team, member, member_id) {JOIN_SELECT} RETURNING (SELECT size FROM teams WHERE name = joins.team)")
        );
        // Defined once per connection; the checks refuse a full team; a failure in the
        // body undoes the whole call.
        sent.borrow_mut().clear();
        assert!(join(&db, "bob", 1).unwrap_err().is_unique_violation());
        assert_eq!(sent.borrow().len(), 1);
        assert_eq!(join(&db, "bob", 2).unwrap(), [Row(vec![2.into()])]);
        assert!(join(&db, "cy", 3).unwrap().is_empty());
        let size = db.query(
            "SELECT size, (SELECT COUNT(*) FROM members) FROM teams",
            &[],
        );
        assert_eq!(size.unwrap(), [Row(vec![2.into(), 2.into()])]);
        // Inside a transaction, on a new connection, it runs as statements: defining it
        // there would be undone by a rollback.
        db.release();
        db.execute("UPDATE teams SET size = 0", &[]).unwrap();
        sent.borrow_mut().clear();
        let joined = db.transaction(|db| join(db, "dee", 4)).unwrap();
        assert_eq!(joined, [Row(vec![1.into()])]);
        assert!(
            !sent.borrow().iter().any(|s| s.starts_with("CREATE")),
            "{:?}",
            sent.borrow()
        );
        remove_db(&path);
    }

    #[test]
    fn a_procedure_runs_as_one_transaction_where_temporary_objects_are_refused() {
        let path = temp_db("procedure-libsql");
        let (db, sent) = recorded_on(&path, |conn| Box::new(LibsqlLike(NativeDb(conn))));
        join_tables(&db);
        sent.borrow_mut().clear();
        assert_eq!(join(&db, "ann", 1).unwrap(), [Row(vec![1.into()])]);
        assert_eq!(
            *sent.borrow(),
            [
                "CREATE TEMP VIEW IF NOT EXISTS joins (team, member, member_id) AS SELECT NULL, NULL, NULL WHERE 0",
                "PRAGMA busy_timeout = 0",
                "BEGIN IMMEDIATE",
                JOIN_SELECT,
                "INSERT INTO members (team, member, id) VALUES (?1, ?2, ?3)",
                "UPDATE teams SET size = size + 1 WHERE name = ?1",
                "SELECT (SELECT size FROM teams WHERE name = ?1)",
                "COMMIT",
            ]
        );
        // Refused once per request; the same outcomes as the trigger's.
        sent.borrow_mut().clear();
        assert!(join(&db, "bob", 1).unwrap_err().is_unique_violation());
        assert!(!sent.borrow().iter().any(|s| s.starts_with("CREATE")));
        assert_eq!(sent.borrow().last().map(String::as_str), Some("ROLLBACK"));
        assert_eq!(join(&db, "bob", 2).unwrap(), [Row(vec![2.into()])]);
        assert!(join(&db, "cy", 3).unwrap().is_empty());
        let size = db.query(
            "SELECT size, (SELECT COUNT(*) FROM members) FROM teams",
            &[],
        );
        assert_eq!(size.unwrap(), [Row(vec![2.into(), 2.into()])]);
        remove_db(&path);
    }

    #[test]
    fn a_transaction_begins_as_its_first_statement_asks() {
        let path = temp_db("begin");
        let (db, sent) = recorded(&path);
        db.execute("CREATE TABLE t (x INTEGER)", &[]).unwrap();
        let sent_by = |f: &dyn Fn(&Db) -> DbResult<()>| {
            sent.borrow_mut().clear();
            let _ = db.transaction(|db| f(db));
            sent.borrow().clone()
        };
        // A write first takes the lock itself.
        assert_eq!(
            sent_by(&|db| db.execute("INSERT INTO t VALUES (1)", &[])),
            [
                "PRAGMA busy_timeout = 0",
                "BEGIN",
                "INSERT INTO t VALUES (1)",
                "COMMIT"
            ]
        );
        // A read first takes it before reading, so what it reads holds.
        assert_eq!(
            sent_by(&|db| {
                db.query("SELECT COUNT(*) FROM t", &[])?;
                db.execute("insert into t values (2)", &[])
            }),
            [
                "BEGIN IMMEDIATE",
                "SELECT COUNT(*) FROM t",
                "insert into t values (2)",
                "COMMIT"
            ]
        );
        // Refused before any statement: nothing to begin or end.
        assert!(sent_by(&|_| Err(DbError("refused".into()))).is_empty());
        remove_db(&path);
    }

    #[test]
    fn a_write_first_transaction_waits_for_the_lock_and_reads_the_newest_data() {
        let path = temp_db("wait");
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); \
                 BEGIN IMMEDIATE; INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            other.execute_batch("COMMIT").unwrap();
        });
        let (db, _) = recorded(&path);
        let written: DbResult<()> = db.transaction(|db| {
            db.execute("INSERT INTO t SELECT COUNT(*) + 10 FROM t", &[])?;
            db.execute("INSERT INTO t SELECT MAX(x) + 1 FROM t", &[])
        });
        written.unwrap();
        holder.join().unwrap();
        let rows = db.query("SELECT x FROM t ORDER BY x", &[]).unwrap();
        let values: Vec<i64> = rows.iter().map(|r| r.int(0)).collect();
        assert_eq!(values, [1, 11, 12]);
        remove_db(&path);
    }

    #[test]
    fn rows_are_inserted_bound_in_as_few_statements_as_the_limit_allows() {
        let path = temp_db("rows");
        let (db, sent) = recorded(&path);
        db.execute("CREATE TABLE t (n INTEGER, s TEXT)", &[])
            .unwrap();
        let rows = MAX_BOUND_VALUES / 2 + 1;
        let values: Vec<Value> = (0..rows as i64)
            .flat_map(|n| [Value::from(n), Value::from(format!("a\0b'\"{n}"))])
            .collect();
        sent.borrow_mut().clear();
        db.insert_rows("INSERT INTO t (n, s) VALUES", 2, &values, "")
            .unwrap();
        db.insert_rows("INSERT INTO t (n, s) VALUES", 2, &[], "")
            .unwrap();
        assert_eq!(
            sent.borrow().len(),
            2,
            "one full statement and one of a row"
        );
        let count = db.query("SELECT COUNT(*), MAX(n) FROM t", &[]).unwrap();
        assert_eq!(
            (count[0].int(0), count[0].int(1)),
            (rows as i64, rows as i64 - 1)
        );
        // Text goes in as bound, NUL and quotes included.
        let last = db.query("SELECT s FROM t WHERE n = 7", &[]).unwrap();
        assert_eq!(last[0].text(0), "a\0b'\"7");
        remove_db(&path);
    }

    #[test]
    fn failed_transaction_rolls_back() {
        let db = NativeDb::memory();
        db.execute("CREATE TABLE platforms (name TEXT PRIMARY KEY)", &[])
            .unwrap();
        let result: Result<(), super::DbError> = db.transaction(|db| {
            db.execute(
                "INSERT INTO platforms (name) VALUES (?)",
                crate::params!["x"],
            )?;
            db.execute(
                "INSERT INTO platforms (name) VALUES (?)",
                crate::params!["x"],
            )
        });
        let err = result.unwrap_err();
        assert!(err.is_unique_violation());
        assert!(!db.exists("SELECT 1 FROM platforms", &[]).unwrap());
    }
}
