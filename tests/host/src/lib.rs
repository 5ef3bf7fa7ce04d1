//! A Spin-faithful test host.
//!
//! Runs the wasm components named by the repository's `spin.toml` the way `spin up`
//! (Spin 3/4) does, on wasmtime: HTTP routing and `spin-*` headers, a fresh instance
//! per request, `fermyon:spin` key-value / SQLite / variables with the manifest's
//! permissions, and outbound HTTP limited to `allowed_outbound_hosts`.
//!
//! ```no_run
//! use spin_test_host::{HostConfig, RunningHost};
//! let host = RunningHost::start(HostConfig::new("spin.toml", ".spin")).unwrap();
//! println!("serving on {}", host.base_url());
//! ```

pub mod compile;
pub mod manifest;
pub mod outbound;
pub mod routing;
mod server;
mod state;
pub mod variables;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasmtime::component::Linker;

pub use state::{libsql_client_refuses, STREAM_EXPIRED_MESSAGE, UNSUPPORTED_STATEMENT_MESSAGE};
pub use variables::AppVariable;

use crate::manifest::Manifest;
use crate::outbound::AllowedHosts;
use crate::server::{AppRuntime, ComponentRuntime};
use crate::state::{AppShared, ComponentGrants, HostState, DEFAULT_LABEL};
use crate::variables::ComponentVariables;

/// How to start a host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The application manifest (`spin.toml`).
    pub manifest: PathBuf,
    /// Where key-value and SQLite files live (`.spin` for `spin up`).
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (see [`RunningHost::addr`]).
    pub listen: SocketAddr,
    /// Values for application variables; they win over `SPIN_VARIABLE_*`.
    pub variables: HashMap<String, String>,
    /// Test-only application variables, added to the manifest's `[variables]`.
    pub extra_variables: BTreeMap<String, AppVariable>,
    /// Test-only components, routed like manifest components.
    pub extra_components: Vec<ExtraComponent>,
    /// Whether `SPIN_VARIABLE_<NAME>` in the process environment is consulted.
    pub use_process_env: bool,
    /// Where compiled components are cached; `None` picks
    /// `$CARGO_TARGET_DIR` or `<manifest dir>/target`, plus `spin-test-host-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Copy component stdout/stderr to this process's stderr (it is always captured,
    /// see [`RunningHost::component_output`]).
    pub echo_component_output: bool,
    /// Simulates Spin's libSQL backend on a remote server (`sqld`, Turso), which keeps one
    /// server stream per opened connection and expires it after this long idle (sqld: 10 s),
    /// without Spin reconnecting: once a connection's last statement finished more than
    /// this long ago, every later `execute` on it fails with
    /// `sqlite::Error::Io(`[`STREAM_EXPIRED_MESSAGE`]`)`, and the connection is closed
    /// (an open transaction rolls back, its locks are released) when the time is up. A
    /// connection that has not run a statement yet does not expire, and a fresh `open`
    /// works. The call log lists each refused statement (`sqlite stream expired: ...`).
    /// `None` (the default): connections never expire, as with Spin's local SQLite.
    pub sqlite_idle_timeout: Option<Duration>,
    /// Refuses, as Spin's libSQL backend does, the statements its client will not send
    /// ([`libsql_client_refuses`]: temporary objects, most `PRAGMA` settings) with
    /// `sqlite::Error::Io(`[`UNSUPPORTED_STATEMENT_MESSAGE`]`)`, running nothing. `false`
    /// (the default): every statement goes to SQLite, as with Spin's local SQLite.
    pub sqlite_libsql_client: bool,
}

impl HostConfig {
    /// A configuration listening on `127.0.0.1:0` with no overrides.
    pub fn new(manifest: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            manifest: manifest.into(),
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            variables: HashMap::new(),
            extra_variables: BTreeMap::new(),
            extra_components: Vec::new(),
            use_process_env: true,
            cache_dir: None,
            echo_component_output: true,
            sqlite_idle_timeout: None,
            sqlite_libsql_client: false,
        }
    }
}

/// A component that exists only for tests, declared in code instead of `spin.toml`.
#[derive(Debug, Clone, Default)]
pub struct ExtraComponent {
    pub id: String,
    /// The `.wasm` file (a core module or a component).
    pub source: PathBuf,
    /// Routes such as `/probe/...`.
    pub routes: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables: name -> template (e.g. `"{{ admin_team }}"`).
    pub variables: BTreeMap<String, String>,
    /// Environment variables of the component's WASI context.
    pub environment: BTreeMap<String, String>,
}

impl ExtraComponent {
    pub fn new(id: impl Into<String>, source: impl Into<PathBuf>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            ..Self::default()
        }
    }

    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.routes.push(route.into());
        self
    }

    pub fn key_value_store(mut self, label: impl Into<String>) -> Self {
        self.key_value_stores.push(label.into());
        self
    }

    pub fn sqlite_database(mut self, label: impl Into<String>) -> Self {
        self.sqlite_databases.push(label.into());
        self
    }

    pub fn allowed_outbound_host(mut self, entry: impl Into<String>) -> Self {
        self.allowed_outbound_hosts.push(entry.into());
        self
    }

    pub fn variable(mut self, name: impl Into<String>, template: impl Into<String>) -> Self {
        self.variables.insert(name.into(), template.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.insert(key.into(), value.into());
        self
    }
}

/// A component as the host runs it, whether from the manifest or added by a test.
struct PlannedComponent {
    id: String,
    source: PathBuf,
    build_hint: String,
    key_value_stores: Vec<String>,
    sqlite_databases: Vec<String>,
    allowed_outbound_hosts: Vec<String>,
    variables: BTreeMap<String, String>,
    environment: BTreeMap<String, String>,
}

/// The application after reading and checking everything, before compiling.
struct Plan {
    components: Vec<PlannedComponent>,
    routes: Vec<(String, String)>,
    declared: BTreeMap<String, AppVariable>,
    values: HashMap<String, String>,
    manifest_dir: PathBuf,
    app_info: String,
}

fn plan(config: &HostConfig) -> Result<Plan> {
    let manifest = Manifest::load(&config.manifest)?;
    let mut declared = manifest.variables.clone();
    for (name, v) in &config.extra_variables {
        variables::validate_name(name).map_err(|e| anyhow::anyhow!("variable {name:?}: {e}"))?;
        if declared.insert(name.clone(), v.clone()).is_some() {
            bail!("extra variable {name:?} is already declared in the manifest");
        }
    }

    let mut components = Vec::new();
    for (id, c) in &manifest.components {
        let build_hint = c.build_command.clone().unwrap_or_else(|| {
            "cargo build --target wasm32-wasip1 --release -p <package>".to_string()
        });
        components.push(PlannedComponent {
            id: id.clone(),
            source: c.source.clone(),
            build_hint,
            key_value_stores: c.key_value_stores.clone(),
            sqlite_databases: c.sqlite_databases.clone(),
            allowed_outbound_hosts: c.allowed_outbound_hosts.clone(),
            variables: c.variables.clone(),
            environment: c.environment.clone(),
        });
    }
    let mut routes: Vec<(String, String)> = manifest
        .http_triggers
        .iter()
        .map(|t| (t.route.clone(), t.component.clone()))
        .collect();
    for extra in &config.extra_components {
        if extra.id.is_empty() {
            bail!("an extra component needs an id");
        }
        if components.iter().any(|c| c.id == extra.id) {
            bail!(
                "extra component {:?} clashes with a manifest component",
                extra.id
            );
        }
        let package = extra
            .source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("<package>")
            .to_string();
        components.push(PlannedComponent {
            id: extra.id.clone(),
            source: extra.source.clone(),
            build_hint: format!("cargo build --target wasm32-wasip1 --release -p {package}"),
            key_value_stores: extra.key_value_stores.clone(),
            sqlite_databases: extra.sqlite_databases.clone(),
            allowed_outbound_hosts: extra.allowed_outbound_hosts.clone(),
            variables: extra.variables.clone(),
            environment: extra.environment.clone(),
        });
        for r in &extra.routes {
            routes.push((r.clone(), extra.id.clone()));
        }
    }

    // Spin refuses at load time labels no runtime configuration defines; without a
    // runtime-config file only "default" exists.
    let mut undefined_dbs = Vec::new();
    for c in &components {
        for label in &c.key_value_stores {
            if label != DEFAULT_LABEL {
                bail!(
                    "unknown key_value_stores label {label:?} for component {:?}",
                    c.id
                );
            }
        }
        for label in &c.sqlite_databases {
            if label != DEFAULT_LABEL {
                undefined_dbs.push(format!("- Component {} uses database '{label}'", c.id));
            }
        }
    }
    if !undefined_dbs.is_empty() {
        bail!(
            "One or more components use SQLite databases which are not defined.\n{}",
            undefined_dbs.join("\n")
        );
    }

    let defaults: HashMap<String, String> = declared
        .iter()
        .filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d)))
        .collect();
    for c in &components {
        AllowedHosts::validate(&c.allowed_outbound_hosts, &defaults).with_context(|| {
            format!(
                "component {:?}: `allowed_outbound_hosts` is malformed",
                c.id
            )
        })?;
    }

    let env = |key: &str| {
        if config.use_process_env {
            std::env::var(key).ok()
        } else {
            None
        }
    };
    let values = variables::resolve_app_variables(&declared, &config.variables, &env)?;

    // What Spin serves at `/.well-known/spin/info`.
    let mut info = serde_json::Map::new();
    info.insert("name".into(), manifest.name.clone().into());
    if let Some(v) = &manifest.version {
        info.insert("version".into(), v.clone().into());
    }
    let app_info = serde_json::to_string_pretty(&info)?;

    Ok(Plan {
        components,
        routes,
        declared,
        values,
        manifest_dir: manifest.dir,
        app_info,
    })
}

fn default_cache_dir(manifest_dir: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"));
    target.join("spin-test-host-cache")
}

/// Everything needed to serve, built synchronously before the server starts.
struct Prepared {
    router: routing::Router,
    app_info: String,
    components: HashMap<String, Arc<ComponentRuntime>>,
    shared: Arc<AppShared>,
}

fn prepare(config: &HostConfig) -> Result<Prepared> {
    let plan = plan(config)?;
    let router = routing::Router::build(plan.routes.iter().map(|(r, c)| (r.as_str(), c.as_str())))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let shared = Arc::new(AppShared::new(
        &config.data_dir,
        config.echo_component_output,
        config.sqlite_idle_timeout,
        config.sqlite_libsql_client,
    ));
    let cache_dir = config
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(&plan.manifest_dir));

    let engine = compile::engine();
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    state::bindings::TestHost::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(
        &mut linker,
        |s| s,
    )?;

    let routed: BTreeSet<&str> = plan.routes.iter().map(|(_, c)| c.as_str()).collect();
    let mut components = HashMap::new();
    for c in &plan.components {
        // Spin only instantiates components a trigger uses.
        if !routed.contains(c.id.as_str()) {
            continue;
        }
        if !c.source.exists() {
            bail!(
                "component {:?}: wasm file {} does not exist; build it first with `{}` \
                 (the test host never builds anything itself)",
                c.id,
                c.source.display(),
                c.build_hint
            );
        }
        let component = compile::load_component(&c.source, Some(&cache_dir))
            .with_context(|| format!("component {:?}", c.id))?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {:?} imports something this test host does not provide",
                    c.id
                )
            })?;
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {:?} does not export wasi:http/incoming-handler@0.2.0",
                    c.id
                )
            })?;
        let grants = ComponentGrants {
            key_value_stores: c.key_value_stores.iter().cloned().collect(),
            sqlite_databases: c.sqlite_databases.iter().cloned().collect(),
            variables: ComponentVariables::build(
                &c.id,
                &c.variables,
                &plan.declared,
                &plan.values,
            )?,
            allowed_hosts: Arc::new(AllowedHosts::resolve(
                &c.allowed_outbound_hosts,
                &plan.values,
            )),
            environment: c
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        if let AllowedHosts::Unusable(reason) = &*grants.allowed_hosts {
            eprintln!(
                "spin-test-host: component {:?} will have every outbound request denied: {reason}",
                c.id
            );
        }
        components.insert(
            c.id.clone(),
            Arc::new(ComponentRuntime {
                grants: Arc::new(grants),
                pre,
            }),
        );
    }
    Ok(Prepared {
        router,
        app_info: plan.app_info.clone(),
        components,
        shared,
    })
}

/// A host serving on its own tokio runtime; stops when dropped.
pub struct RunningHost {
    addr: SocketAddr,
    config: HostConfig,
    routes: Vec<(String, String)>,
    shared: Arc<AppShared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningHost {
    /// Loads, compiles (or takes from cache) and starts serving. Blocks until the
    /// listener is bound; fails like `spin up` would on a bad manifest, a missing
    /// wasm file, an import the host lacks or a required variable without a value.
    pub fn start(config: HostConfig) -> Result<Self> {
        let prepared = prepare(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("spin-test-host")
            .build()?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(config.listen))
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let routes = prepared.router.routes();
        let shared = prepared.shared.clone();
        let app = Arc::new(AppRuntime {
            router: prepared.router,
            app_info: prepared.app_info,
            components: prepared.components,
            shared: prepared.shared,
            self_addr: addr,
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(server::serve(listener, app, rx));
        Ok(Self {
            addr,
            config,
            routes,
            shared,
            shutdown: Some(tx),
            runtime: Some(runtime),
        })
    }

    /// The bound address (the real port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// `(route, component)` pairs, most specific first.
    pub fn routes(&self) -> &[(String, String)] {
        &self.routes
    }

    /// Everything components wrote to stdout and stderr so far.
    pub fn component_output(&self) -> String {
        let buf = self.shared.logs.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Starts listing the store and variable calls components make (key-value, SQLite,
    /// variables), to see what a request does; see [`RunningHost::take_call_log`].
    pub fn start_call_log(&self) {
        *self
            .shared
            .call_log
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// Stops listing and returns the calls made since [`RunningHost::start_call_log`],
    /// in order, e.g. `key-value get token:<hash>`, `sqlite execute <statement>`; with
    /// [`HostConfig::sqlite_idle_timeout`], a statement refused on an expired connection
    /// is followed by `sqlite stream expired: ...`.
    pub fn take_call_log(&self) -> Vec<String> {
        self.shared
            .call_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Stops serving and waits (up to a few seconds) for in-flight work to end.
    pub fn shutdown(mut self) {
        self.stop(true);
    }

    /// Stops this host and starts a new one with the same configuration, data
    /// directory and address, as restarting `spin up` would.
    pub fn restart(mut self) -> Result<Self> {
        self.stop(true);
        let mut config = self.config.clone();
        config.listen = self.addr;
        Self::start(config)
    }

    fn stop(&mut self, wait: bool) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            // Blocking inside another runtime would panic; then just let it wind down.
            if wait && tokio::runtime::Handle::try_current().is_err() {
                rt.shutdown_timeout(Duration::from_secs(5));
            } else {
                rt.shutdown_background();
            }
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.stop(true);
    }
}
