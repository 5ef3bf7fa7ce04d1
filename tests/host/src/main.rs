//! `spin up` for machines without Spin: serves the app described by `spin.toml`.
//!
//! ```text
//! cargo run -p spin-test-host -- --listen 127.0.0.1:3000 [--manifest spin.toml]
//!     [--data-dir .spin] [--variable name=value]... [--sqlite-idle-timeout-ms N]
//!     [--sqlite-libsql-client]
//! ```
//!
//! `--sqlite-idle-timeout-ms N` behaves like Spin on a remote libSQL database (sqld expires
//! a connection's stream after 10 s idle: `--sqlite-idle-timeout-ms 10000`): a connection
//! idle longer than N ms since its last statement fails every later statement with
//! `STREAM_EXPIRED` (see `HostConfig::sqlite_idle_timeout`). `--sqlite-libsql-client`
//! refuses what Spin's libSQL client refuses (see `HostConfig::sqlite_libsql_client`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use spin_test_host::{HostConfig, RunningHost};

const USAGE: &str = "usage: spin-test-host [--listen ADDR] [--manifest spin.toml] [--data-dir DIR] [--variable NAME=VALUE]... [--sqlite-idle-timeout-ms N] [--sqlite-libsql-client]";

fn main() {
    if let Err(e) = run() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut manifest = PathBuf::from("spin.toml");
    let mut data_dir: Option<PathBuf> = None;
    let mut listen = "127.0.0.1:3000".to_string();
    let mut variables = Vec::new();
    let mut sqlite_idle_timeout = None;
    let mut sqlite_libsql_client = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => listen = value("--listen")?,
            "--manifest" | "-f" => manifest = PathBuf::from(value("--manifest")?),
            "--data-dir" | "--state-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--variable" => variables.push(value("--variable")?),
            "--sqlite-idle-timeout-ms" => {
                let ms = value("--sqlite-idle-timeout-ms")?;
                let ms: u64 = ms.parse().with_context(|| {
                    format!("--sqlite-idle-timeout-ms {ms:?} is not a number of milliseconds")
                })?;
                sqlite_idle_timeout = Some(Duration::from_millis(ms));
            }
            "--sqlite-libsql-client" => sqlite_libsql_client = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    // Like `spin up`, state lives in `.spin` next to the manifest unless told otherwise.
    let data_dir = data_dir.unwrap_or_else(|| {
        manifest
            .parent()
            .map(|p| p.join(".spin"))
            .unwrap_or_else(|| PathBuf::from(".spin"))
    });
    let mut config = HostConfig::new(manifest, data_dir);
    config.sqlite_idle_timeout = sqlite_idle_timeout;
    config.sqlite_libsql_client = sqlite_libsql_client;
    config.listen = listen
        .parse()
        .with_context(|| format!("--listen {listen:?} is not an address like 127.0.0.1:3000"))?;
    for v in variables {
        let Some((name, value)) = v.split_once('=') else {
            bail!("--variable {v:?} must look like name=value");
        };
        config.variables.insert(name.to_string(), value.to_string());
    }
    let host = RunningHost::start(config)?;
    println!("Serving {}", host.base_url());
    println!("Available Routes:");
    for (route, component) in host.routes() {
        println!("  {component}: {}{route}", host.base_url());
    }
    // Serve until the process is interrupted.
    loop {
        std::thread::park();
    }
}
