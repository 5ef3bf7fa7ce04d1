//! Services (API.md 3.2): manifests, ownership, documentation and team grants, and the
//! service checks of API.md 1.8 that service instances reuse.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::Db;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::services::manifest::{is_service_id, ValidManifest};
use crate::services::records::{
    find, group_instances, load_owned, load_usable, Service, NO_ACCESS,
};
use crate::upstream::service_api::ServiceApi;
use serde::Serialize;
use serde_json::json;

/// GET /services: the services one of the caller's teams owns, with all their instances.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let rows = ctx.db()?.query(
        "SELECT s.name, i.name FROM services s \
         LEFT JOIN service_instances i ON i.service_id = s.id AND i.state = 'ready' \
         WHERE s.id IN (SELECT o.service_id FROM team_members m \
                        JOIN service_owner_teams o ON o.team_id = m.team_id WHERE m.user_id = ?) \
         ORDER BY s.name, i.name",
        params![user.id],
    )?;
    audit::record(ctx, "list-services", "", json!({}));
    Ok(Response::json(&group_instances(&rows)))
}

/// The most services one user may register: each stores a manifest of up to 64 KiB and
/// a document of up to 1 MiB, with no outside call to slow a flood down.
const MAX_SERVICES_PER_USER: i64 = 100;

fn duplicate_id(id: &str) -> ApiError {
    ApiError::conflict(format!("Service with name {id} already exists."))
}

/// POST /services: registers a service owned by all the caller's teams, the caller's
/// [`MAX_SERVICES_PER_USER`]th at most.
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let valid = ValidManifest::parse(&ctx.req.body)?;
    if !is_service_id(&valid.id) {
        return Err(ApiError::bad_request("Invalid service id"));
    }
    valid.check_production_endpoint()?;
    valid.check_endpoints(&ctx.config.service_hosts()?)?;
    if user.teams.is_empty() {
        return Err(ApiError::forbidden(
            "In order to create a service, you should be member of at least one team",
        ));
    }
    let name = valid.id.as_str();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        if db.exists("SELECT 1 FROM services WHERE name = ?", params![name])? {
            return Err(duplicate_id(name));
        }
        // The count is part of the insert, under the write lock.
        let Some(id) = db
            .query(
                "INSERT INTO services \
                 (name, username, password, doc, restricted, created_at, creator_id) \
                 SELECT ?1, ?2, ?3, '', ?4, ?5, ?6 \
                 WHERE (SELECT COUNT(*) FROM services WHERE creator_id = ?6) < ?7 RETURNING id",
                params![
                    name,
                    valid.username(),
                    valid.password(),
                    valid.restricted(),
                    now_rfc3339(),
                    user.id,
                    MAX_SERVICES_PER_USER
                ],
            )?
            .first()
            .map(|r| r.int(0))
        else {
            return Err(ApiError::bad_request(format!(
                "Too many services: a user may register at most {MAX_SERVICES_PER_USER} services."
            )));
        };
        valid.store_endpoints(db, id)?;
        // The owner teams: the caller's teams as they are now.
        db.execute(
            "INSERT INTO service_owner_teams (service_id, team_id) \
             SELECT ?, team_id FROM team_members WHERE user_id = ?",
            params![id, user.id],
        )?;
        audit::record_in(db, &user.email, "create-service", name, json!({}));
        Ok(())
    })?;
    Ok(Response::text("success"))
}

/// PUT /services: replaces a service's endpoints, credentials and `restricted` flag.
pub fn update(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let valid = ValidManifest::parse(&ctx.req.body)?;
    let hosts = ctx.config.service_hosts()?;
    let name = valid.id.as_str();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let service = load_owned(db, name, user)?;
        valid.check_production_endpoint()?;
        valid.check_endpoints(&hosts)?;
        db.execute(
            "UPDATE services SET username = ?, password = ?, restricted = ? WHERE id = ?",
            params![
                valid.username(),
                valid.password(),
                valid.restricted(),
                service.id
            ],
        )?;
        valid.store_endpoints(db, service.id)?;
        audit::record_in(db, &user.email, "update-service", name, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// DELETE /services/:service: removes a service that has no instances, with its
/// endpoints and team links.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let name = ctx.param("service");
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let service = load_owned(db, name, user)?;
        if db.exists(
            "SELECT 1 FROM service_instances WHERE service_id = ?",
            params![service.id],
        )? {
            return Err(ApiError::forbidden(
                "This service cannot be removed because it has instances.\nPlease remove these instances before removing the service.",
            ));
        }
        db.execute("DELETE FROM services WHERE id = ?", params![service.id])?;
        audit::record_in(db, &user.email, "delete-service", name, json!({}));
        Ok(())
    })?;
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
    let name = ctx.param("service");
    let service = load_usable(db, name, user)?;
    let rows = db.query(
        "SELECT i.name, \
         (SELECT json_group_array(t.name) FROM instance_teams x JOIN teams t ON t.id = x.team_id \
          WHERE x.instance_id = i.id), \
         (SELECT json_group_array(a.name) FROM instance_apps b JOIN apps a ON a.id = b.app_id \
          WHERE b.instance_id = i.id) \
         FROM service_instances i WHERE i.service_id = ? AND i.state = 'ready' AND EXISTS \
         (SELECT 1 FROM instance_teams x JOIN team_members m ON m.team_id = x.team_id \
          WHERE x.instance_id = i.id AND m.user_id = ?) ORDER BY i.name",
        params![service.id, user.id],
    )?;
    let mut instances = Vec::with_capacity(rows.len());
    if !rows.is_empty() {
        let api = ServiceApi::load(db, service.id)?;
        for row in &rows {
            let sorted = |column: usize| {
                let mut names: Vec<String> =
                    serde_json::from_str(&row.text(column)).unwrap_or_default();
                names.sort();
                names
            };
            let instance = row.text(0);
            let info = api.info(ctx, &instance);
            instances.push(InstanceSummary {
                teams: sorted(1),
                apps: sorted(2),
                name: instance,
                service_name: name.to_string(),
                info,
            });
        }
    }
    audit::record(ctx, "service-info", name, json!({}));
    Ok(Response::json(&instances))
}

/// GET /services/:service/plans (API.md 9.3): the plans the service API offers.
pub fn plans(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let name = ctx.param("service");
    let service = load_usable(db, name, user)?;
    let plans = ServiceApi::load(db, service.id)?.plans(ctx)?;
    Ok(Response::json(&plans))
}

/// GET /services/:service/doc
pub fn doc(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let name = ctx.param("service");
    let service = load_usable(ctx.db()?, name, user)?;
    let doc = ctx
        .db()?
        .query_opt("SELECT doc FROM services WHERE id = ?", params![service.id])?
        .map(|r| r.text(0))
        .unwrap_or_default();
    audit::record(ctx, "service-doc", name, json!({}));
    Ok(Response::text(doc))
}

/// PUT /services/:service/doc: the raw body becomes the documentation.
pub fn set_doc(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let name = ctx.param("service");
    let body = std::str::from_utf8(&ctx.req.body);
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let service = load_owned(db, name, user)?;
        let doc =
            body.map_err(|_| ApiError::bad_request("The documentation must be UTF-8 text"))?;
        db.execute(
            "UPDATE services SET doc = ? WHERE id = ?",
            params![doc, service.id],
        )?;
        audit::record_in(db, &user.email, "service-add-doc", name, json!({}));
        Ok(())
    })?;
    Ok(Response::empty())
}

/// The checks grant and revoke share, inside their transaction: service exists; caller
/// is an admin or in one of its owner or granted teams (API.md 7.2); team exists.
/// Returns the service, the team's id and whether the team is granted.
fn team_access_change(db: &Db, ctx: &Ctx) -> ApiResult<(Service, i64, bool)> {
    let user = ctx.user()?;
    let service = find(db, ctx.param("service"), user)?;
    if !(user.is_admin || service.owned || service.granted) {
        return Err(ApiError::forbidden(NO_ACCESS));
    }
    let team = db
        .query_opt(
            "SELECT t.id, EXISTS (SELECT 1 FROM service_teams g \
             WHERE g.service_id = ? AND g.team_id = t.id) FROM teams t WHERE t.name = ?",
            params![service.id, ctx.param("team")],
        )?
        .ok_or_else(|| ApiError::not_found("Team not found"))?;
    Ok((service, team.int(0), team.bool(1)))
}

/// PUT /services/:service/:team: grants the team use of the service.
pub fn grant(ctx: &mut Ctx) -> ApiResult<Response> {
    let email = ctx.user()?.email.clone();
    let team = ctx.param("team");
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let (service, team_id, granted) = team_access_change(db, ctx)?;
        if granted {
            return Err(ApiError::conflict(
                "This team already has access to this service",
            ));
        }
        db.execute(
            "INSERT INTO service_teams (service_id, team_id) VALUES (?, ?)",
            params![service.id, team_id],
        )?;
        let extra = json!({ "team": team });
        audit::record_in(db, &email, "grant-service-access", &service.name, extra);
        Ok(())
    })?;
    Ok(Response::empty())
}

/// DELETE /services/:service/:team: revokes a granted team, unless it is the last team
/// (owner or granted) with access.
pub fn revoke(ctx: &mut Ctx) -> ApiResult<Response> {
    let email = ctx.user()?.email.clone();
    let team = ctx.param("team");
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let (service, team_id, granted) = team_access_change(db, ctx)?;
        if !granted {
            return Err(ApiError::not_found(
                "This team does not have access to this service",
            ));
        }
        let teams = db
            .query_opt(
                "SELECT (SELECT COUNT(*) FROM service_owner_teams WHERE service_id = ?1) + \
                        (SELECT COUNT(*) FROM service_teams WHERE service_id = ?1)",
                params![service.id],
            )?
            .map_or(0, |r| r.int(0));
        if teams <= 1 {
            return Err(ApiError::forbidden(
                "You can not revoke the access from this team, because it is the unique team with access to this service, and a service can not be orphaned",
            ));
        }
        db.execute(
            "DELETE FROM service_teams WHERE service_id = ? AND team_id = ?",
            params![service.id, team_id],
        )?;
        let extra = json!({ "team": team });
        audit::record_in(db, &email, "revoke-service-access", &service.name, extra);
        Ok(())
    })?;
    Ok(Response::empty())
}
