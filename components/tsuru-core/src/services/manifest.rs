//! The service manifest (API.md 3.2): the YAML body of `POST` and `PUT /services`.

use crate::params;
use crate::runtime::db::{Db, DbResult};
use crate::runtime::error::{ApiError, ApiResult};
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// Checks 1-2 of POST /services: YAML of the right shape, with an id.
    pub fn parse(body: &[u8]) -> ApiResult<ValidManifest> {
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

    /// Replaces the service's endpoints with the manifest's.
    pub fn store_endpoints(&self, db: &Db) -> DbResult<()> {
        db.execute(
            "DELETE FROM service_endpoints WHERE service = ?",
            params![self.id.as_str()],
        )?;
        for (env, url) in self.manifest.endpoint.iter().flatten() {
            db.execute(
                "INSERT INTO service_endpoints (service, env, url) VALUES (?, ?, ?)",
                params![self.id.as_str(), env, url.trim()],
            )?;
        }
        Ok(())
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
}
