//! Services (API.md 3.2): manifests, ownership, documentation and team grants, and the
//! service checks of API.md 1.8 that service instances reuse.

use crate::audit;
use crate::auth::User;
use crate::context::Ctx;
use crate::db::{Db, DbError, DbResult, Row};
use crate::error::{ApiError, ApiResult};
use crate::http::Response;
use crate::instances;
use crate::params;
use crate::service_api::ServiceApi;
use crate::util::now_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

const NOT_FOUND: &str = "Service not found";
const NO_ACCESS: &str = "This user does not have access to this service";

/// Whether the user is a member of one of the service's owner teams.
const IS_OWNER: &str =
    "SELECT 1 FROM service_owner_teams s JOIN team_members m ON m.team = s.team \
                        WHERE s.service = ? AND m.email = ?";
/// Whether the user is a member of one of the teams the service is granted to.
const IS_GRANTED: &str = "SELECT 1 FROM service_teams s JOIN team_members m ON m.team = s.team \
                          WHERE s.service = ? AND m.email = ?";

/// A stored service, as the checks need it.
pub struct Service {
    pub id: String,
    pub restricted: bool,
}

fn find(db: &Db, id: &str) -> ApiResult<Service> {
    let row = db.query_opt("SELECT restricted FROM services WHERE id = ?", params![id])?;
    let row = row.ok_or_else(|| ApiError::not_found(NOT_FOUND))?;
    Ok(Service {
        id: id.to_string(),
        restricted: row.bool(0),
    })
}

fn user_matches(db: &Db, sql: &str, service: &str, user: &User) -> ApiResult<bool> {
    Ok(db.exists(sql, params![service, user.email.as_str()])?)
}

/// Whether `user` may use the service: unrestricted, or granted to one of the user's teams.
pub fn may_use(db: &Db, service: &Service, user: &User) -> ApiResult<bool> {
    Ok(!service.restricted || user_matches(db, IS_GRANTED, &service.id, user)?)
}

/// Service owner check (API.md 1.8): 404, or 403 for a caller in no owner team.
fn load_owned(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !user_matches(db, IS_OWNER, id, user)? {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Service use check (API.md 1.8): 404, or 403 for a restricted service not granted to
/// one of the caller's teams.
fn load_usable(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !may_use(db, &service, user)? {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    Ok(service)
}

/// Instance creation's service checks (API.md 3.3 checks 2-3; 404 for both).
pub fn load_for_new_instance(db: &Db, id: &str, user: &User) -> ApiResult<Service> {
    let service = find(db, id)?;
    if !may_use(db, &service, user)? {
        return Err(ApiError::not_found(NO_ACCESS));
    }
    Ok(service)
}

/// One entry of the service lists: a service id and instance names, sorted.
#[derive(Serialize)]
pub struct ServiceInstances {
    pub service: String,
    pub instances: Vec<String>,
}

/// Groups `(service, instance or NULL)` rows, sorted by service then instance.
pub fn group_instances(rows: &[Row]) -> Vec<ServiceInstances> {
    let mut groups: Vec<ServiceInstances> = Vec::new();
    for row in rows {
        let service = row.text(0);
        if groups.last().is_none_or(|g| g.service != service) {
            groups.push(ServiceInstances {
                service,
                instances: Vec::new(),
            });
        }
        if let (Some(instance), Some(group)) = (row.opt_text(1), groups.last_mut()) {
            group.instances.push(instance);
        }
    }
    groups
}

/// GET /services: the services one of the caller's teams owns, with all their instances.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let rows = ctx.db()?.query(
        "SELECT s.id, i.name FROM services s LEFT JOIN service_instances i ON i.service = s.id \
         WHERE s.id IN (SELECT o.service FROM team_members m \
                        JOIN service_owner_teams o ON o.team = m.team WHERE m.email = ?) \
         ORDER BY s.id, i.name",
        params![user.email.as_str()],
    )?;
    audit::record(ctx, "list-services", "", json!({}));
    Ok(Response::json(&group_instances(&rows)))
}

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
struct ValidManifest {
    id: String,
    manifest: Manifest,
}

impl ValidManifest {
    /// Checks 1-2 of POST /services: YAML of the right shape, with an id.
    fn parse(body: &[u8]) -> ApiResult<ValidManifest> {
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
    fn check_production_endpoint(&self) -> ApiResult<()> {
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
    fn store_endpoints(&self, db: &Db) -> DbResult<()> {
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

    fn username(&self) -> &str {
        self.manifest.username.as_deref().unwrap_or_default()
    }

    fn password(&self) -> &str {
        self.manifest.password.as_deref().unwrap_or_default()
    }

    fn restricted(&self) -> bool {
        self.manifest.restricted.unwrap_or(false)
    }
}

/// `^[A-Za-z][A-Za-z0-9_.-]{0,62}$`, and not `instances`, which a route shadows (API.md 7.9).
fn is_service_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    id != "instances"
        && (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn duplicate_id(id: &str) -> ApiError {
    ApiError::conflict(format!("Service with name {id} already exists."))
}

/// POST /services: registers a service owned by all the caller's teams.
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let valid = ValidManifest::parse(&ctx.req.body)?;
    if !is_service_id(&valid.id) {
        return Err(ApiError::bad_request("Invalid service id"));
    }
    valid.check_production_endpoint()?;
    if user.teams.is_empty() {
        return Err(ApiError::forbidden(
            "In order to create a service, you should be member of at least one team",
        ));
    }
    let db = ctx.db()?;
    let id = valid.id.as_str();
    if db.exists("SELECT 1 FROM services WHERE id = ?", params![id])? {
        return Err(duplicate_id(id));
    }
    let stored = db.transaction(|db| {
        db.execute(
            "INSERT INTO services (id, username, password, doc, restricted, created_at) \
             VALUES (?, ?, ?, '', ?, ?)",
            params![
                id,
                valid.username(),
                valid.password(),
                valid.restricted(),
                now_rfc3339()
            ],
        )?;
        valid.store_endpoints(db)?;
        for team in &user.teams {
            db.execute(
                "INSERT INTO service_owner_teams (service, team) VALUES (?, ?)",
                params![id, team],
            )?;
        }
        Ok::<_, DbError>(())
    });
    match stored {
        Ok(()) => {}
        Err(e) if e.is_unique_violation() => return Err(duplicate_id(id)),
        Err(e) => return Err(e.into()),
    }
    audit::record(ctx, "create-service", id, json!({}));
    Ok(Response::text("success"))
}

/// PUT /services: replaces a service's endpoints, credentials and `restricted` flag.
pub fn update(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let valid = ValidManifest::parse(&ctx.req.body)?;
    let db = ctx.db()?;
    let id = valid.id.as_str();
    load_owned(db, id, user)?;
    valid.check_production_endpoint()?;
    db.transaction(|db| {
        db.execute(
            "UPDATE services SET username = ?, password = ?, restricted = ? WHERE id = ?",
            params![valid.username(), valid.password(), valid.restricted(), id],
        )?;
        valid.store_endpoints(db)
    })?;
    audit::record(ctx, "update-service", id, json!({}));
    Ok(Response::empty())
}

/// DELETE /services/:service: removes a service that has no instances.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let id = ctx.param("service");
    load_owned(db, id, user)?;
    if db.exists(
        "SELECT 1 FROM service_instances WHERE service = ?",
        params![id],
    )? {
        return Err(ApiError::forbidden(
            "This service cannot be removed because it has instances.\nPlease remove these instances before removing the service.",
        ));
    }
    db.transaction(|db| {
        for sql in [
            "DELETE FROM service_endpoints WHERE service = ?",
            "DELETE FROM service_owner_teams WHERE service = ?",
            "DELETE FROM service_teams WHERE service = ?",
            "DELETE FROM services WHERE id = ?",
        ] {
            db.execute(sql, params![id])?;
        }
        Ok::<_, DbError>(())
    })?;
    audit::record(ctx, "delete-service", id, json!({}));
    Ok(Response::no_content())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InstanceSummary {
    name: String,
    teams: Vec<String>,
    apps: Vec<String>,
    service_name: String,
    info: serde_json::Value,
}

/// GET /services/:service: the caller's instances of the service, with live info.
pub fn info(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let id = ctx.param("service");
    load_usable(db, id, user)?;
    let names = db.query(
        "SELECT i.name FROM service_instances i WHERE i.service = ? AND EXISTS \
         (SELECT 1 FROM instance_teams t JOIN team_members m ON m.team = t.team \
          WHERE t.instance = i.name AND m.email = ?) ORDER BY i.name",
        params![id, user.email.as_str()],
    )?;
    let mut instances = Vec::with_capacity(names.len());
    if !names.is_empty() {
        let api = ServiceApi::load(db, id)?;
        for row in &names {
            let name = row.text(0);
            let (teams, apps) = instances::instance_links(db, &name)?;
            let info = api.info(ctx, &name);
            instances.push(InstanceSummary {
                name,
                teams,
                apps,
                service_name: id.to_string(),
                info,
            });
        }
    }
    audit::record(ctx, "service-info", id, json!({}));
    Ok(Response::json(&instances))
}

/// GET /services/:service/doc
pub fn doc(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let id = ctx.param("service");
    load_usable(db, id, user)?;
    let doc = db
        .query_opt("SELECT doc FROM services WHERE id = ?", params![id])?
        .map(|r| r.text(0))
        .unwrap_or_default();
    audit::record(ctx, "service-doc", id, json!({}));
    Ok(Response::text(doc))
}

/// PUT /services/:service/doc: the raw body becomes the documentation.
pub fn set_doc(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let id = ctx.param("service");
    load_owned(db, id, user)?;
    let doc = std::str::from_utf8(&ctx.req.body)
        .map_err(|_| ApiError::bad_request("The documentation must be UTF-8 text"))?;
    db.execute("UPDATE services SET doc = ? WHERE id = ?", params![doc, id])?;
    audit::record(ctx, "service-add-doc", id, json!({}));
    Ok(Response::empty())
}

/// The checks grant and revoke share: service exists; caller is an admin or in one of
/// its owner or granted teams (API.md 7.2); team exists. Returns whether it is granted.
fn check_team_access_change(ctx: &Ctx) -> ApiResult<bool> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let (id, team) = (ctx.param("service"), ctx.param("team"));
    find(db, id)?;
    let allowed = user.is_admin
        || user_matches(db, IS_OWNER, id, user)?
        || user_matches(db, IS_GRANTED, id, user)?;
    if !allowed {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    if !db.exists("SELECT 1 FROM teams WHERE name = ?", params![team])? {
        return Err(ApiError::not_found("Team not found"));
    }
    Ok(db.exists(
        "SELECT 1 FROM service_teams WHERE service = ? AND team = ?",
        params![id, team],
    )?)
}

/// PUT /services/:service/:team: grants the team use of the service.
pub fn grant(ctx: &mut Ctx) -> ApiResult<Response> {
    if check_team_access_change(ctx)? {
        return Err(ApiError::conflict(
            "This team already has access to this service",
        ));
    }
    let (id, team) = (ctx.param("service"), ctx.param("team"));
    let inserted = ctx.db()?.execute(
        "INSERT INTO service_teams (service, team) VALUES (?, ?)",
        params![id, team],
    );
    match inserted {
        Ok(()) => {}
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::conflict(
                "This team already has access to this service",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(ctx, "grant-service-access", id, json!({ "team": team }));
    Ok(Response::empty())
}

/// DELETE /services/:service/:team: revokes a granted team, unless it is the last team
/// (owner or granted) with access.
pub fn revoke(ctx: &mut Ctx) -> ApiResult<Response> {
    if !check_team_access_change(ctx)? {
        return Err(ApiError::not_found(
            "This team does not have access to this service",
        ));
    }
    let (id, team) = (ctx.param("service"), ctx.param("team"));
    let db = ctx.db()?;
    db.transaction(|db| {
        let teams = db
            .query_opt(
                "SELECT (SELECT COUNT(*) FROM service_owner_teams WHERE service = ?) + \
                        (SELECT COUNT(*) FROM service_teams WHERE service = ?)",
                params![id, id],
            )?
            .map_or(0, |r| r.int(0));
        if teams <= 1 {
            return Err(ApiError::forbidden(
                "You can not revoke the access from this team, because it is the unique team with access to this service, and a service can not be orphaned",
            ));
        }
        db.execute(
            "DELETE FROM service_teams WHERE service = ? AND team = ?",
            params![id, team],
        )?;
        Ok(())
    })?;
    audit::record(ctx, "revoke-service-access", id, json!({ "team": team }));
    Ok(Response::empty())
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

    #[test]
    fn grouping_keeps_services_without_instances() {
        use crate::db::Value;
        let row = |s: &str, i: Option<&str>| Row(vec![Value::from(s), Value::from(i)]);
        let groups = group_instances(&[row("a", None), row("b", Some("b1")), row("b", Some("b2"))]);
        let json = serde_json::to_value(&groups).unwrap();
        assert_eq!(
            json,
            json!([{"service":"a","instances":[]},{"service":"b","instances":["b1","b2"]}])
        );
    }
}
