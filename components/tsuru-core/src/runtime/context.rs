//! The per-request context a route handler works with: the request, its path
//! parameters, the caller, and lazily opened stores (SQLite opened by the first
//! statement, again only after an outbound call; one schema check per request).

use crate::runtime::caller::{Caller, User};
use crate::runtime::config::{parse_platforms, Config};
use crate::runtime::db::{Db, DbError, SchemaCheck, SqlBackend};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::kv::{Kv, KvBackend};
use crate::runtime::outbound::{OpenReply, OutboundRequest, OutboundResponse};
use crate::runtime::request::Request;
use crate::runtime::schema;
use crate::runtime::time::now_rfc3339;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

/// What the runtime provides: Spin in the components, fakes in native unit tests.
pub trait Platform {
    fn open_db(&self) -> Result<Box<dyn SqlBackend>, String>;
    fn open_kv(&self) -> Result<Box<dyn KvBackend>, String>;
    fn variable(&self, name: &str) -> Option<String>;
    /// Sends an outbound request; the reply's body is read from what it returns.
    fn open(&self, request: &OutboundRequest) -> Result<OpenReply, String>;
}

pub struct Ctx {
    pub req: Request,
    pub(crate) params: Vec<(&'static str, String)>,
    pub config: Config,
    platform: &'static dyn Platform,
    db: OnceCell<Db>,
    kv: OnceCell<Kv>,
    pub(crate) caller: Option<Caller>,
}

impl Ctx {
    pub fn new(req: Request, platform: &'static dyn Platform) -> Self {
        // Each variable is read from the host at most once per request (a listing asks
        // for `git_host` once per app).
        let read: RefCell<HashMap<String, Option<String>>> = RefCell::default();
        let variable = move |name: &str| {
            read.borrow_mut()
                .entry(name.to_string())
                .or_insert_with(|| platform.variable(name))
                .clone()
        };
        Ctx {
            req,
            params: Vec::new(),
            config: Config::new(Box::new(variable)),
            platform,
            db: OnceCell::new(),
            kv: OnceCell::new(),
            caller: None,
        }
    }

    /// A `:name` path parameter, percent-decoded (always present on a matched route).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The request's database. Its connection opens with the first statement, and the
    /// schema is checked once per request (see `Db::query_first`).
    pub fn db(&self) -> ApiResult<&Db> {
        let platform = self.platform;
        Ok(self.db.get_or_init(|| {
            let seed_platforms =
                move || parse_platforms(&platform.variable("platforms").unwrap_or_default());
            Db::new(
                Box::new(move || {
                    platform
                        .open_db()
                        .map_err(|e| DbError(format!("open: {e}")))
                }),
                SchemaCheck {
                    latest: schema::LATEST_VERSION,
                    migrate: Box::new(move |db| {
                        schema::migrate(db, &seed_platforms, &now_rfc3339())
                    }),
                },
            )
        }))
    }

    /// The request's database, if the request has used it.
    pub fn opened_db(&self) -> Option<&Db> {
        self.db.get()
    }

    /// The key-value store, opened on first use.
    pub fn kv(&self) -> ApiResult<&Kv> {
        if let Some(kv) = self.kv.get() {
            return Ok(kv);
        }
        let backend = self
            .platform
            .open_kv()
            .map_err(|e| ApiError::internal(format!("key-value open: {e}")))?;
        Ok(self.kv.get_or_init(|| Kv::new(backend)))
    }

    /// Sends an outbound HTTP request; `Err` carries a short transport-failure description.
    /// The database connection is closed first: a remote database drops a connection left
    /// idle for the length of a slow call, so the next statement opens a fresh one.
    pub fn send(&self, request: &OutboundRequest) -> Result<OutboundResponse, String> {
        self.open(request)?.read_all()
    }

    /// Like [`Ctx::send`], for a reply whose body is read as it arrives (a deploy's output).
    pub fn open(&self, request: &OutboundRequest) -> Result<OpenReply, String> {
        self.release_db();
        self.platform.open(request)
    }

    /// Closes the database connection, if one is open (see [`Ctx::send`]).
    pub fn release_db(&self) {
        if let Some(db) = self.db.get() {
            db.release();
        }
    }

    /// The authenticated caller; routes with auth level `none` have none.
    pub fn caller(&self) -> ApiResult<&Caller> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("route needs a caller but has no auth level"))
    }

    /// The caller as a user (the dispatcher already refused app tokens on `user` routes).
    pub fn user(&self) -> ApiResult<&User> {
        match self.caller()? {
            Caller::User(user) => Ok(user),
            Caller::App(_) => Err(ApiError::forbidden("This action requires a user token")),
        }
    }

    /// Reads the body as JSON of type `T`, or answers `message` (400) when it is not.
    pub fn json_body<T: serde::de::DeserializeOwned>(&self, message: &str) -> ApiResult<T> {
        serde_json::from_slice(&self.req.body).map_err(|_| ApiError::bad_request(message))
    }

    /// Reads a JSON object body into the struct `T`, or answers `message` (400). Only an
    /// object is accepted: serde would otherwise fill a struct from an array, in order.
    pub fn json_object<T: serde::de::DeserializeOwned>(&self, message: &str) -> ApiResult<T> {
        match serde_json::from_slice::<serde_json::Value>(&self.req.body) {
            Ok(object @ serde_json::Value::Object(_)) => {
                serde_json::from_value(object).map_err(|_| ApiError::bad_request(message))
            }
            _ => Err(ApiError::bad_request(message)),
        }
    }
}

#[cfg(test)]
pub mod fake {
    //! A native [`Platform`]: rusqlite on a temporary file (a new connection per open,
    //! as Spin), an in-memory key-value map, fixed variables, and no network.
    use super::*;
    use crate::runtime::db::native::NativeDb;
    use crate::runtime::kv::memory::MemoryKv;
    use std::collections::HashMap;

    pub struct FakePlatform {
        pub db_path: std::path::PathBuf,
        pub kv: MemoryKv,
        pub vars: HashMap<String, String>,
    }

    impl FakePlatform {
        pub fn leaked(vars: &[(&str, &str)]) -> &'static FakePlatform {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n == 0 {
                remove_stale_databases();
            }
            let db_path =
                std::env::temp_dir().join(format!("tsuru-core-test-{}-{n}.db", std::process::id()));
            let _ = std::fs::remove_file(&db_path);
            Box::leak(Box::new(FakePlatform {
                db_path,
                kv: MemoryKv::default(),
                vars: vars
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }))
        }
    }

    /// Removes the databases of test processes that have ended: a leaked platform is never
    /// dropped, so each run would leave its files behind. Where there is no `/proc` to
    /// tell a live process from an ended one, nothing is removed.
    fn remove_stale_databases() {
        let proc = std::path::Path::new("/proc");
        if !proc.join("self").exists() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("tsuru-core-test-")
                .and_then(|rest| rest.split('-').next());
            if pid.is_some_and(|pid| !proc.join(pid).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    impl Platform for FakePlatform {
        fn open_db(&self) -> Result<Box<dyn SqlBackend>, String> {
            let conn = rusqlite::Connection::open(&self.db_path).map_err(|e| e.to_string())?;
            Ok(Box::new(NativeDb(conn)))
        }
        fn open_kv(&self) -> Result<Box<dyn KvBackend>, String> {
            Ok(Box::new(self.kv.clone()))
        }
        fn variable(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
        fn open(&self, _request: &OutboundRequest) -> Result<OpenReply, String> {
            Err("no network in unit tests".into())
        }
    }
}
