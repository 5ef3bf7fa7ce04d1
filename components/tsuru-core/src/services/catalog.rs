//! Services (API.md 3.2): manifests, ownership, documentation and team grants, and the
//! service checks of API.md 1.8 that service instances reuse.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::DbError;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::services::manifest::{is_service_id, ValidManifest};
use crate::services::records::{
    find, group_instances, instance_links, load_owned, load_usable, user_matches, IS_GRANTED,
    IS_OWNER, NO_ACCESS,
};
use crate::upstream::service_api::ServiceApi;
use serde::Serialize;
use serde_json::json;

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
            let (teams, apps) = instance_links(db, &name)?;
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
