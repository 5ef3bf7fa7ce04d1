//! Reading `spin.toml` (manifest version 2).
//!
//! Only what a local `spin up` of this project needs is accepted; anything the host
//! cannot honour (remote sources, file mounts, dependencies, AI models) is refused
//! with a clear error instead of being silently ignored, so a test never passes on a
//! configuration real Spin would treat differently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::variables::AppVariable;

/// The parts of a manifest the host uses.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Directory holding the manifest; component sources are relative to it.
    pub dir: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub variables: BTreeMap<String, AppVariable>,
    /// `[[trigger.http]]` entries that carry a routable `route`.
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, ManifestComponent>,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone)]
pub struct ManifestComponent {
    /// Absolute path of the wasm file.
    pub source: PathBuf,
    /// `source` exactly as written, for messages.
    pub source_text: String,
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    /// `[component.<id>.build] command`, only used to tell people how to build.
    pub build_command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default, rename = "trigger")]
    triggers: BTreeMap<String, Vec<RawTrigger>>,
    #[serde(default, rename = "component")]
    components: BTreeMap<String, RawComponent>,
}

// The raw tables list every field Spin accepts, so that `deny_unknown_fields` refuses a
// misspelt key as Spin does; fields the host has no use for are marked `dead_code`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    authors: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    targets: Option<toml::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    trigger: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    tool: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
struct RawTrigger {
    #[serde(default)]
    component: Option<toml::Value>,
    #[serde(default)]
    route: Option<toml::Value>,
    #[serde(default)]
    executor: Option<toml::Value>,
    #[serde(default)]
    static_response: Option<toml::Value>,
    #[serde(flatten)]
    #[allow(dead_code)]
    rest: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    targets: Option<toml::Value>,
    #[serde(default)]
    build: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    tool: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    dependencies: Option<toml::Table>,
    #[serde(default)]
    profile: Option<toml::Table>,
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Self::parse(&text, &dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; `dir` anchors relative component sources.
    pub fn parse(text: &str, dir: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!("only spin_manifest_version = 2 is supported");
        }

        let mut variables = BTreeMap::new();
        for (name, v) in raw.variables {
            crate::variables::validate_name(&name)
                .map_err(|e| anyhow::anyhow!("variable {name:?}: {e}"))?;
            // Spin wants exactly one of the two: a value source or a requirement.
            if v.required == v.default.is_some() {
                bail!("variable {name:?} must be `required` OR have a `default`");
            }
            variables.insert(
                name,
                AppVariable {
                    default: v.default,
                    required: v.required,
                    secret: v.secret,
                },
            );
        }

        let mut components = BTreeMap::new();
        for (id, c) in raw.components {
            components.insert(id.clone(), convert_component(&id, c, dir)?);
        }

        let mut http_triggers = Vec::new();
        for (kind, triggers) in raw.triggers {
            if kind != "http" {
                bail!("trigger type {kind:?} is not supported by the test host (only http)");
            }
            for t in triggers {
                if t.executor.is_some() {
                    bail!("http trigger `executor` is not supported by the test host");
                }
                if t.static_response.is_some() {
                    bail!("http trigger `static_response` is not supported by the test host");
                }
                let component = match t.component {
                    Some(toml::Value::String(s)) => s,
                    Some(_) => {
                        bail!("inline trigger components are not supported by the test host")
                    }
                    None => bail!("every http trigger needs a `component`"),
                };
                if !components.contains_key(&component) {
                    bail!("http trigger refers to unknown component {component:?}");
                }
                match t.route {
                    Some(toml::Value::String(route)) => {
                        http_triggers.push(HttpTrigger { route, component })
                    }
                    // `{ private = true }`: reachable only by service chaining, never routed.
                    Some(toml::Value::Table(t))
                        if t.len() == 1 && t.get("private") == Some(&toml::Value::Boolean(true)) => {}
                    _ => bail!(
                        "http trigger for {component:?} needs `route` = \"/path\" or {{ private = true }}"
                    ),
                }
            }
        }

        Ok(Self {
            dir: dir.to_path_buf(),
            name: raw.application.name,
            version: raw.application.version.filter(|v| !v.is_empty()),
            variables,
            http_triggers,
            components,
        })
    }
}

fn convert_component(id: &str, c: RawComponent, dir: &Path) -> Result<ManifestComponent> {
    let source_text = match c.source {
        toml::Value::String(s) => s,
        _ => bail!("component {id:?}: only local file `source` paths are supported"),
    };
    if !c.files.is_empty() {
        bail!("component {id:?}: `files` mounts are not supported by the test host");
    }
    if !c.allowed_http_hosts.is_empty() {
        bail!(
            "component {id:?}: use `allowed_outbound_hosts` (`allowed_http_hosts` is deprecated)"
        );
    }
    if !c.ai_models.is_empty() {
        bail!("component {id:?}: `ai_models` are not supported by the test host");
    }
    if c.dependencies.as_ref().is_some_and(|d| !d.is_empty()) {
        bail!("component {id:?}: component `dependencies` are not supported by the test host");
    }
    if c.profile.as_ref().is_some_and(|p| !p.is_empty()) {
        bail!("component {id:?}: build `profile` overrides are not supported by the test host");
    }
    for name in c.variables.keys() {
        crate::variables::validate_name(name)
            .map_err(|e| anyhow::anyhow!("component {id:?} variable {name:?}: {e}"))?;
    }
    let build_command = c
        .build
        .as_ref()
        .and_then(|b| b.get("command"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(ManifestComponent {
        source: dir.join(&source_text),
        source_text,
        variables: c.variables,
        environment: c.environment,
        allowed_outbound_hosts: c.allowed_outbound_hosts,
        key_value_stores: c.key_value_stores,
        sqlite_databases: c.sqlite_databases,
        build_command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "0.1.0"

[variables]
admin_team = { default = "admin" }
token = { required = true, secret = true }

[[trigger.http]]
route = "/apps/..."
component = "apps"

[[trigger.http]]
route = { private = true }
component = "apps"

[component.apps]
source = "target/wasm32-wasip1/release/apps.wasm"
key_value_stores = ["default"]
sqlite_databases = ["default"]
allowed_outbound_hosts = ["http://127.0.0.1:*", "{{ gandalf_url }}"]
[component.apps.variables]
admin = "{{ admin_team }}"
[component.apps.build]
command = "cargo build --target wasm32-wasip1 --release -p apps"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_a_v2_manifest() {
        let m = Manifest::parse(SAMPLE, Path::new("/repo")).unwrap();
        assert_eq!(m.name, "demo");
        assert_eq!(m.variables["admin_team"].default.as_deref(), Some("admin"));
        assert!(m.variables["token"].required && m.variables["token"].secret);
        assert_eq!(m.http_triggers.len(), 1);
        assert_eq!(m.http_triggers[0].route, "/apps/...");
        let c = &m.components["apps"];
        assert_eq!(
            c.source,
            Path::new("/repo/target/wasm32-wasip1/release/apps.wasm")
        );
        assert_eq!(c.variables["admin"], "{{ admin_team }}");
        assert_eq!(c.key_value_stores, vec!["default"]);
        assert_eq!(
            c.build_command.as_deref(),
            Some("cargo build --target wasm32-wasip1 --release -p apps")
        );
    }

    #[test]
    fn variable_needs_default_xor_required() {
        let bad = SAMPLE.replace(
            "token = { required = true, secret = true }",
            "token = { required = true, default = \"x\" }",
        );
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
        let bad = SAMPLE.replace("token = { required = true, secret = true }", "token = {}");
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
    }

    #[test]
    fn unknown_component_keys_are_refused() {
        let bad = SAMPLE.replace(
            "[component.apps.variables]",
            "colour = \"red\"\n[component.apps.variables]",
        );
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
    }

    #[test]
    fn trigger_must_name_a_known_component() {
        let bad = SAMPLE.replace(
            "component = \"apps\"\n\n[[trigger",
            "component = \"nope\"\n\n[[trigger",
        );
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
    }
}
