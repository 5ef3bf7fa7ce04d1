//! The service manifest (API.md 3.2): the YAML body of `POST` and `PUT /services`. It
//! comes from a tenant, so its cost is bounded before it is parsed (API.md 8.4): at most
//! 64 KiB, no anchors, aliases or tags (which let a few kilobytes expand into
//! gigabytes), and no nesting deeper than [`MAX_MANIFEST_DEPTH`] (libyaml's cost grows
//! with the square of the depth); and its endpoints are plain `http(s)` URLs on allowed
//! hosts (8.3).

use crate::params;
use crate::runtime::db::{Db, DbResult, Value};
use crate::runtime::error::{ApiError, ApiResult};
use crate::upstream::service_api;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;

/// The largest manifest accepted (API.md 8.4).
pub const MAX_MANIFEST: usize = 64 * 1024;

/// The deepest nesting of mappings and sequences accepted. A manifest needs three levels;
/// libyaml's scanner spends time on every open level for every token, so 30,000 levels
/// of `[` (60 KiB) took seconds to scan, where API.md 8.4 allows 50 ms.
pub const MAX_MANIFEST_DEPTH: usize = 64;

/// The YAML manifest of POST and PUT /services. Unknown keys are ignored.
#[derive(Debug, Deserialize)]
struct Manifest {
    id: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default, deserialize_with = "endpoint_urls")]
    endpoint: Option<BTreeMap<String, String>>,
    restricted: Option<bool>,
}

/// Endpoint values must be YAML strings: a number is refused rather than taken as a URL.
fn endpoint_urls<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let Some(endpoints) = Option::<BTreeMap<String, serde_yaml::Value>>::deserialize(deserializer)?
    else {
        return Ok(None);
    };
    let mut urls = BTreeMap::new();
    for (env, url) in endpoints {
        match url {
            serde_yaml::Value::String(url) => urls.insert(env, url),
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "the {env} endpoint must be a string"
                )))
            }
        };
    }
    Ok(Some(urls))
}

/// A manifest that passed the checks both POST and PUT make before looking anything up.
#[derive(Debug)]
pub struct ValidManifest {
    pub id: String,
    manifest: Manifest,
}

impl ValidManifest {
    /// Checks 1-2 of POST /services: at most 64 KiB (413), YAML of the right shape
    /// without anchors, aliases or tags, with an id.
    pub fn parse(body: &[u8]) -> ApiResult<ValidManifest> {
        if body.len() > MAX_MANIFEST {
            return Err(ApiError::body_too_large());
        }
        match scan(body) {
            Scanned::Plain => {}
            Scanned::Expanding => {
                return Err(ApiError::bad_request(
                    "Invalid YAML manifest: anchors, aliases and tags are not allowed",
                ))
            }
            Scanned::TooDeep => {
                return Err(ApiError::bad_request(format!(
                    "Invalid YAML manifest: nested deeper than {MAX_MANIFEST_DEPTH} levels"
                )))
            }
        }
        let manifest: Manifest = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid YAML manifest: {e}")))?;
        match manifest.id.clone().filter(|id| !id.is_empty()) {
            Some(id) => Ok(ValidManifest { id, manifest }),
            None => Err(ApiError::bad_request(
                "You must provide an id in the manifest file.",
            )),
        }
    }

    /// Check 4: a non-empty production endpoint.
    pub fn check_production_endpoint(&self) -> ApiResult<()> {
        let production = self
            .manifest
            .endpoint
            .as_ref()
            .and_then(|e| e.get("production"));
        match production {
            Some(url) if !url.trim().is_empty() => Ok(()),
            _ => Err(ApiError::bad_request(
                "You must provide a production endpoint in the manifest file.",
            )),
        }
    }

    /// Every endpoint is a URL this API may call (API.md 8.3): `400 Invalid endpoint:
    /// <reason>`. `hosts` are the `service_hosts` patterns (empty: any host).
    pub fn check_endpoints(&self, hosts: &[String]) -> ApiResult<()> {
        for url in self.manifest.endpoint.iter().flatten().map(|(_, url)| url) {
            service_api::check_endpoint(url, hosts)
                .map_err(|reason| ApiError::bad_request(format!("Invalid endpoint: {reason}")))?;
        }
        Ok(())
    }

    /// Replaces the endpoints of service `service_id` with the manifest's.
    pub fn store_endpoints(&self, db: &Db, service_id: i64) -> DbResult<()> {
        db.execute(
            "DELETE FROM service_endpoints WHERE service_id = ?",
            params![service_id],
        )?;
        // One statement however many endpoints the manifest names: the write lock is
        // held for a bounded number of statements.
        let endpoints: Vec<Value> = self
            .manifest
            .endpoint
            .iter()
            .flatten()
            .flat_map(|(env, url)| {
                [
                    Value::from(service_id),
                    Value::from(env),
                    Value::from(url.trim()),
                ]
            })
            .collect();
        db.insert_rows(
            "INSERT INTO service_endpoints (service_id, env, url) VALUES",
            3,
            &endpoints,
            "",
        )
    }

    pub fn username(&self) -> &str {
        self.manifest.username.as_deref().unwrap_or_default()
    }

    pub fn password(&self) -> &str {
        self.manifest.password.as_deref().unwrap_or_default()
    }

    pub fn restricted(&self) -> bool {
        self.manifest.restricted.unwrap_or(false)
    }
}

/// What libyaml's scanner finds in a manifest before anything is parsed.
#[derive(Debug)]
enum Scanned {
    /// Nothing that expands and no excessive nesting (or a text the scanner cannot read,
    /// which is left to the parser: it reports the error before expanding anything).
    Plain,
    /// An anchor, an alias or a tag.
    Expanding,
    /// More than [`MAX_MANIFEST_DEPTH`] open mappings and sequences.
    TooDeep,
}

/// Scans a YAML text with libyaml's scanner, the one the parser uses, so nothing it
/// misses can expand later. The scan expands nothing and stops at the first anchor,
/// alias or tag, or as soon as the nesting passes [`MAX_MANIFEST_DEPTH`], so its cost is
/// bounded before the depth can make it grow.
fn scan(text: &[u8]) -> Scanned {
    use unsafe_libyaml::*;
    // SAFETY: the parser is initialised before any use and deleted exactly once; `text`
    // outlives it; every token the scanner returns is deleted once, after its type is
    // read; a failed scan returns no token to delete.
    unsafe {
        let mut parser = MaybeUninit::<yaml_parser_t>::zeroed();
        if !yaml_parser_initialize(parser.as_mut_ptr()).ok {
            return Scanned::Plain;
        }
        let parser = parser.as_mut_ptr();
        yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as _);
        let mut depth = 0usize;
        let scanned = loop {
            let mut token = MaybeUninit::<yaml_token_t>::zeroed();
            if !yaml_parser_scan(parser, token.as_mut_ptr()).ok {
                break Scanned::Plain;
            }
            let kind = (*token.as_ptr()).type_;
            yaml_token_delete(token.as_mut_ptr());
            match kind {
                YAML_ANCHOR_TOKEN | YAML_ALIAS_TOKEN | YAML_TAG_TOKEN => break Scanned::Expanding,
                YAML_BLOCK_SEQUENCE_START_TOKEN
                | YAML_BLOCK_MAPPING_START_TOKEN
                | YAML_FLOW_SEQUENCE_START_TOKEN
                | YAML_FLOW_MAPPING_START_TOKEN => {
                    depth += 1;
                    if depth > MAX_MANIFEST_DEPTH {
                        break Scanned::TooDeep;
                    }
                }
                YAML_BLOCK_END_TOKEN
                | YAML_FLOW_SEQUENCE_END_TOKEN
                | YAML_FLOW_MAPPING_END_TOKEN => depth = depth.saturating_sub(1),
                YAML_STREAM_END_TOKEN | YAML_NO_TOKEN => break Scanned::Plain,
                _ => {}
            }
        };
        yaml_parser_delete(parser);
        scanned
    }
}

/// `^[A-Za-z][A-Za-z0-9_.-]{0,62}$`, and not `instances`, which a route shadows (API.md 7.9).
pub fn is_service_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    id != "instances"
        && (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::schema;

    #[test]
    fn endpoints_are_stored_trimmed_and_replace_the_old_ones() {
        let db = schema::test_db_with_apps(&[]);
        db.execute(
            "INSERT INTO services (id, name, created_at) VALUES (7, 'db', 'now')",
            &[],
        )
        .unwrap();
        let stored = || -> Vec<String> {
            db.query(
                "SELECT env || '=' || url FROM service_endpoints WHERE service_id = 7 ORDER BY env",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.text(0))
            .collect()
        };
        let mut yaml = String::from("id: db\nendpoint:\n");
        for n in 0..200 {
            yaml.push_str(&format!(
                "  env-{n:03}: ' http://h{n}.example.com/\"q\" '\n"
            ));
        }
        ValidManifest::parse(yaml.as_bytes())
            .unwrap()
            .store_endpoints(&db, 7)
            .unwrap();
        let all = stored();
        assert_eq!(all.len(), 200);
        assert_eq!(all[5], "env-005=http://h5.example.com/\"q\"");
        let one = "id: db\nendpoint:\n  production: http://p.example.com\n";
        ValidManifest::parse(one.as_bytes())
            .unwrap()
            .store_endpoints(&db, 7)
            .unwrap();
        assert_eq!(stored(), ["production=http://p.example.com"]);
        ValidManifest::parse(b"id: db\n")
            .unwrap()
            .store_endpoints(&db, 7)
            .unwrap();
        assert!(stored().is_empty());
    }

    #[test]
    fn service_ids() {
        for ok in [
            "mysql",
            "a",
            "My.Service_1-x",
            &format!("a{}", "b".repeat(62)),
        ] {
            assert!(is_service_id(ok), "{ok}");
        }
        for bad in [
            "",
            "1mysql",
            "-x",
            "my sql",
            "instances",
            "my/sql",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(!is_service_id(bad), "{bad}");
        }
    }

    fn parse(yaml: &str) -> ApiResult<ValidManifest> {
        ValidManifest::parse(yaml.as_bytes())
    }

    #[test]
    fn manifests() {
        let valid = parse(
            "id: mysql\nusername: tsuru\npassword: s3cret\nrestricted: true\nendpoint:\n  production: https://m.example.com\n  test: http://localhost:8080\n",
        )
        .unwrap();
        assert_eq!(valid.id, "mysql");
        assert_eq!(
            (valid.username(), valid.password(), valid.restricted()),
            ("tsuru", "s3cret", true)
        );
        assert!(valid.check_production_endpoint().is_ok());

        let minimal = parse("id: x\nendpoint: {production: m.example.com}").unwrap();
        assert_eq!((minimal.username(), minimal.restricted()), ("", false));

        for yaml in [
            "id: x\n",
            "id: x\nendpoint: {test: http://t}",
            "id: x\nendpoint: {production: '  '}",
        ] {
            let err = parse(yaml)
                .unwrap()
                .check_production_endpoint()
                .unwrap_err();
            assert_eq!(
                err.message,
                "You must provide a production endpoint in the manifest file."
            );
        }
        for yaml in ["endpoint: {production: http://p}", "id: ''", "id:\n"] {
            assert_eq!(
                parse(yaml).unwrap_err().message,
                "You must provide an id in the manifest file.",
                "{yaml}"
            );
        }
    }

    #[test]
    fn malformed_manifests_are_400_with_the_parser_detail() {
        for yaml in [
            "id: [unclosed",
            "- a list\n- not a mapping",
            "just text",
            "id: x\nendpoint: [a, b]",
            "id: x\nrestricted: maybe",
            "id: x\nendpoint: {production: {nested: map}}",
            "id: x\nid: y",
            "id: x\nendpoint: {production: 8080}",
        ] {
            let err = parse(yaml).err().unwrap_or_else(|| panic!("{yaml} parsed"));
            assert_eq!(err.status, 400);
            assert!(
                err.message.starts_with("Invalid YAML manifest: "),
                "{yaml}: {}",
                err.message
            );
            assert!(err.message.len() > "Invalid YAML manifest: ".len());
        }
    }

    #[test]
    fn anchors_aliases_and_tags_are_refused_before_parsing() {
        let refused = "Invalid YAML manifest: anchors, aliases and tags are not allowed";
        for yaml in [
            "id: x\nendpoint: &e {production: http://p}\n",
            "id: x\nendpoint: {production: http://p}\nother: *e\n",
            "id: !!str x\nendpoint: {production: http://p}\n",
            "id: x\nendpoint: !custom {production: http://p}\n",
            "base: &b {production: http://p}\nid: x\nendpoint:\n  <<: *b\n",
            "--- !!map\nid: x\n",
        ] {
            assert_eq!(parse(yaml).unwrap_err().message, refused, "{yaml}");
        }
        // The same characters inside values are text.
        let valid = parse(
            "id: x\npassword: p&ss*w!rd\nusername: \"&user\"\nendpoint: {production: 'http://p/*!'}\n",
        )
        .unwrap();
        assert_eq!(valid.password(), "p&ss*w!rd");
        assert_eq!(valid.username(), "&user");
    }

    #[test]
    fn a_billion_laughs_is_refused_at_once_and_large_manifests_at_all() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for level in b'b'..=b'z' {
            let prev = (level - 1) as char;
            let name = level as char;
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
        }
        bomb.push_str("id: x\n");
        let started = std::time::Instant::now();
        assert_eq!(parse(&bomb).unwrap_err().status, 400);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        let large = format!("id: x\ndoc: '{}'\n", "x".repeat(MAX_MANIFEST));
        assert_eq!(parse(&large).unwrap_err().status, 413);
    }

    /// A manifest of `prefix`, then `open` and `close` each repeated `levels` times.
    fn nested(prefix: &str, open: &str, levels: usize, close: &str) -> String {
        format!("{prefix}{}x{}\n", open.repeat(levels), close.repeat(levels))
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let refused =
            format!("Invalid YAML manifest: nested deeper than {MAX_MANIFEST_DEPTH} levels");
        // The top-level mapping is the first level.
        let below = MAX_MANIFEST_DEPTH - 1;
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("[{a: ", "}]")] {
            let deepest = nested(
                "id: x\nextra: ",
                open,
                below / open.matches(['[', '{']).count(),
                close,
            );
            assert!(parse(&deepest).is_ok(), "{deepest}");
            let deeper = nested("id: x\nextra: ", open, below + 1, close);
            assert_eq!(parse(&deeper).unwrap_err().message, refused, "{deeper}");
        }
        // Block sequences and mappings count the same.
        let block = |levels: usize| nested("id: x\nextra:\n  ", "- ", levels, "");
        assert!(parse(&block(below)).is_ok());
        assert_eq!(parse(&block(below + 1)).unwrap_err().message, refused);
        let keys = |levels: usize| {
            let mut yaml = String::from("id: x\n");
            for level in 0..levels {
                yaml.push_str(&format!("{}k:\n", " ".repeat(level)));
            }
            yaml
        };
        assert!(parse(&keys(MAX_MANIFEST_DEPTH)).is_ok());
        assert_eq!(
            parse(&keys(MAX_MANIFEST_DEPTH + 1)).unwrap_err().message,
            refused
        );
        // Levels closed again do not add up.
        let many = (0..1000)
            .map(|i| format!("e{i}: [[[[[x]]]]]\n"))
            .collect::<String>();
        assert!(parse(&format!("id: x\n{many}")).is_ok());
    }

    /// API.md 8.4: a 64 KiB manifest in under 50 ms of parsing, whatever its shape. The
    /// fastest of three tries is timed, so a busy machine does not fail the test.
    #[test]
    fn the_costliest_shapes_of_64_kib_are_parsed_or_refused_at_once() {
        let filled = |prefix: &str, item: &str, last: &str| {
            let count = (MAX_MANIFEST - prefix.len() - last.len()) / item.len();
            format!("{prefix}{}{last}", item.repeat(count))
        };
        let deep = |prefix: &str, open: &str, close: &str| {
            let levels = (MAX_MANIFEST - prefix.len() - 2) / (open.len() + close.len());
            nested(prefix, open, levels, close)
        };
        let flat_keys = (0..)
            .map(|i| format!("k{i}: v\n"))
            .scan(String::from("id: x\n"), |yaml, line| {
                yaml.push_str(&line);
                Some(yaml.clone())
            })
            .take_while(|yaml| yaml.len() <= MAX_MANIFEST)
            .last()
            .unwrap();
        let shapes = [
            (deep("id: x\nextra: ", "[", "]"), false),
            (deep("id: x\nextra: ", "{a: ", "}"), false),
            (deep("id: x\nextra: ", "[", ""), false),
            (deep("id: x\nextra:\n  ", "- ", ""), false),
            (deep("id: x\nextra:\n  ", "? ", ""), false),
            (filled("id: x\nextra: [", "a, ", "a]\n"), true),
            (filled("id: x\nextra: [", "[a], ", "[a]]\n"), true),
            (filled("id: x\nextra: [", "a: b, ", "a: b]\n"), true),
            (filled("id: x\nextra: ", "a ", "a\n"), true),
            (flat_keys, true),
        ];
        for (yaml, valid) in shapes {
            assert!(yaml.len() <= MAX_MANIFEST, "{}", yaml.len());
            let fastest = (0..3)
                .map(|_| {
                    let started = std::time::Instant::now();
                    assert_eq!(parse(&yaml).is_ok(), valid, "{}", &yaml[..40]);
                    started.elapsed()
                })
                .min()
                .unwrap();
            assert!(
                fastest < std::time::Duration::from_millis(50),
                "{fastest:?}: {}",
                &yaml[..40]
            );
        }
    }
}
