//! The layout is the architecture (lib.rs): a module imports only from its own layer or
//! lower ones, and no modules import each other, directly or in a cycle. Checked on the
//! source text: every `crate::` path names the module it reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers of lib.rs, lowest first; a module's layer is its first path segment.
const LAYERS: &[&[&str]] = &[
    &["runtime"],
    &["upstream"],
    &["identity"],
    &["apps"],
    &["services"],
    &["quotas", "platforms", "healers", "meta"],
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or_default();
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("module {module} is in no layer of lib.rs"))
}

/// Every source file as its module path (`apps/env.rs` -> `apps::env`), with its text.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path: PathBuf = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under src");
                let mut parts: Vec<String> = relative
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).expect("read module");
                out.insert(parts.join("::"), text);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out.remove("lib");
    out.remove("layering");
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a text reaches through `crate::`, groups (`crate::a::{b, c}`) expanded.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (start, _) in text.match_indices("crate::") {
        let rest = &text[start + "crate::".len()..];
        let end = rest
            .find(|c: char| !is_ident(c) && c != ':')
            .unwrap_or(rest.len());
        let prefix = rest[..end].trim_end_matches(':');
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
            for item in group.split(',') {
                let item: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                if item == "self" || item.is_empty() {
                    paths.push(prefix.to_string());
                } else {
                    paths.push(format!("{prefix}::{item}"));
                }
            }
        } else {
            paths.push(prefix.to_string());
        }
    }
    paths
}

/// The longest known module a path starts with (`apps::env::set_private` -> `apps::env`).
fn module_of<'a>(path: &str, known: &'a BTreeSet<String>) -> Option<&'a String> {
    let segments: Vec<&str> = path.split("::").collect();
    (1..=segments.len())
        .rev()
        .find_map(|n| known.get(&segments[..n].join("::")))
}

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, text)| {
            let reached = crate_paths(text)
                .iter()
                .filter_map(|path| module_of(path, &known))
                .filter(|target| *target != module)
                .cloned()
                .collect();
            (module.clone(), reached)
        })
        .collect()
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let mut wrong = Vec::new();
    for (module, targets) in imports() {
        for target in targets {
            if layer_of(&target) > layer_of(&module) {
                wrong.push(format!("{module} imports {target}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn no_import_cycle_between_modules() {
    let graph = imports();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|m| m == module) {
            let mut cycle = path[i..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn crate_paths_are_read_with_their_groups() {
    let text =
        "use crate::apps::{env, records::App};\nuse crate::runtime::db::Db;\nx(crate::params);";
    assert_eq!(
        crate_paths(text),
        vec!["apps::env", "apps::records", "runtime::db::Db", "params"]
    );
}
