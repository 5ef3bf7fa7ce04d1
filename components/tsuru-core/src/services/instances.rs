//! Service instances (API.md 3.3): creation and removal through the service API, and
//! binding apps to them. A bind stores the service's variables on the app as private
//! variables tagged with the instance, and keeps `TSURU_SERVICES` current.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::DbError;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::services::records::{
    group_instances, instance_links, load_for_new_instance, load_instance,
};
use crate::upstream::service_api::ServiceApi;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `^[A-Za-z][-a-zA-Z0-9_]+$`
fn is_instance_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[derive(Deserialize)]
struct NewInstance {
    #[serde(default)]
    name: String,
    #[serde(default)]
    service_name: String,
}

fn name_taken() -> ApiError {
    ApiError::conflict("Instance name already exists.")
}

/// POST /services/instances: creates the instance at the service, then stores it.
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let body: NewInstance = ctx.json_object("Invalid JSON in request body.")?;
    let db = ctx.db()?;
    let service = load_for_new_instance(db, &body.service_name, user)?;
    let name = body.name.as_str();
    if !is_instance_name(name) {
        return Err(ApiError::bad_request("Invalid service instance name"));
    }
    if user.teams.is_empty() {
        return Err(ApiError::forbidden(
            "In order to create a service instance, you should be member of at least one team",
        ));
    }
    if db.exists(
        "SELECT 1 FROM service_instances WHERE name = ?",
        params![name],
    )? {
        return Err(name_taken());
    }
    let teams: Vec<String> = if service.restricted {
        db.query(
            "SELECT g.team FROM service_teams g JOIN team_members m ON m.team = g.team \
             WHERE g.service = ? AND m.email = ? ORDER BY g.team",
            params![service.id.as_str(), user.email.as_str()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect()
    } else {
        user.teams.clone()
    };
    let api = ServiceApi::load(db, &service.id)?;
    api.create(ctx, name)?;
    let stored = db.transaction(|db| {
        db.execute(
            "INSERT INTO service_instances (name, service, created_at) VALUES (?, ?, ?)",
            params![name, service.id.as_str(), now_rfc3339()],
        )?;
        for team in &teams {
            db.execute(
                "INSERT INTO instance_teams (instance, team) VALUES (?, ?)",
                params![name, team],
            )?;
        }
        Ok::<_, DbError>(())
    });
    if let Err(e) = stored {
        api.destroy(ctx, name);
        return Err(if e.is_unique_violation() {
            name_taken()
        } else {
            e.into()
        });
    }
    audit::record(
        ctx,
        "create-service-instance",
        name,
        json!({ "service": service.id }),
    );
    Ok(Response::empty())
}

/// GET /services/instances: per usable service, the instances the caller shares a team with.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let email = user.email.as_str();
    let rows = ctx.db()?.query(
        "SELECT s.id, i.name FROM services s \
         LEFT JOIN service_instances i ON i.service = s.id AND i.name IN \
           (SELECT t.instance FROM team_members m JOIN instance_teams t ON t.team = m.team WHERE m.email = ?) \
         WHERE s.restricted = 0 OR s.id IN \
           (SELECT g.service FROM team_members m JOIN service_teams g ON g.team = m.team WHERE m.email = ?) \
         ORDER BY s.id, i.name",
        params![email, email],
    )?;
    audit::record(ctx, "list-service-instances", "", json!({}));
    Ok(Response::json(&group_instances(&rows)))
}

#[derive(Serialize)]
struct InstanceInfo {
    name: String,
    servicename: String,
    teams: Vec<String>,
    apps: Vec<String>,
    info: Value,
}

/// GET /services/instances/:instance
pub fn info(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let (teams, apps) = instance_links(db, &instance.name)?;
    let info = ServiceApi::load(db, &instance.service)?.info(ctx, &instance.name);
    audit::record(ctx, "get-service-instance", &instance.name, json!({}));
    Ok(Response::json(&InstanceInfo {
        name: instance.name,
        servicename: instance.service,
        teams,
        apps,
        info,
    }))
}

/// DELETE /services/instances/:instance: destroys an unbound instance.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let name = instance.name.as_str();
    if db.exists(
        "SELECT 1 FROM instance_apps WHERE instance = ?",
        params![name],
    )? {
        return Err(ApiError::conflict(
            "This service instance is bound to at least one app. Unbind them before removing it",
        ));
    }
    ServiceApi::load(db, &instance.service)?.destroy(ctx, name);
    db.transaction(|db| {
        db.execute(
            "DELETE FROM instance_teams WHERE instance = ?",
            params![name],
        )?;
        db.execute(
            "DELETE FROM service_instances WHERE name = ?",
            params![name],
        )
    })?;
    audit::record(
        ctx,
        "remove-service-instance",
        name,
        json!({ "service": instance.service }),
    );
    Ok(Response::text("service instance successfuly removed"))
}

/// GET /services/instances/:instance/status
pub fn status(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let status = ServiceApi::load(db, &instance.service)?.status(ctx, &instance.name)?;
    audit::record(ctx, "service-instance-status", &instance.name, json!({}));
    Ok(Response::text(format!(
        "Service instance \"{}\" is {status}",
        instance.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        for ok in ["my-mysql", "ab", "A_1-b"] {
            assert!(is_instance_name(ok), "{ok}");
        }
        for bad in ["", "a", "1ab", "-ab", "my mysql", "my.sql", "mý"] {
            assert!(!is_instance_name(bad), "{bad}");
        }
    }
}
