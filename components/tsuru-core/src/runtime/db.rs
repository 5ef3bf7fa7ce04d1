//! SQLite access: one connection per request, parameterized statements only, write
//! transactions with `BEGIN IMMEDIATE`, and the versioned schema migration.

use crate::runtime::error::ApiError;
use std::fmt;

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

/// How long a statement keeps retrying while another connection holds the write lock.
/// Spin gives every request its own connection, so concurrent writers really contend.
const BUSY_RETRY_LIMIT: u32 = 500;
const BUSY_RETRY_SLEEP_MS: u64 = 10;

pub struct Db {
    backend: Box<dyn SqlBackend>,
}

impl Db {
    pub fn new(backend: Box<dyn SqlBackend>) -> Self {
        Db { backend }
    }

    /// Runs a statement and returns its rows, retrying while the database is locked.
    pub fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let mut attempt = 0;
        loop {
            match self.backend.execute(sql, params) {
                Err(e) if e.is_busy() && attempt < BUSY_RETRY_LIMIT => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(BUSY_RETRY_SLEEP_MS));
                }
                other => return other,
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

    /// Number of rows changed by the last statement on this connection.
    pub fn changes(&self) -> DbResult<i64> {
        Ok(self
            .query_opt("SELECT changes()", &[])?
            .map_or(0, |r| r.int(0)))
    }

    /// Runs `f` inside one write transaction (`BEGIN IMMEDIATE`, so two writers never
    /// deadlock upgrading read locks); commits on `Ok`, rolls back on `Err`.
    pub fn transaction<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        self.execute("BEGIN IMMEDIATE", &[])?;
        match f(self) {
            Ok(value) => match self.execute("COMMIT", &[]) {
                Ok(()) => Ok(value),
                Err(e) => {
                    let _ = self.execute("ROLLBACK", &[]);
                    Err(e.into())
                }
            },
            Err(e) => {
                if let Err(rollback) = self.execute("ROLLBACK", &[]) {
                    eprintln!("rollback failed: {rollback}");
                }
                Err(e)
            }
        }
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

    impl NativeDb {
        pub fn memory() -> Db {
            Db::new(Box::new(NativeDb(
                rusqlite::Connection::open_in_memory().expect("in-memory sqlite"),
            )))
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
    use super::native::NativeDb;

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
