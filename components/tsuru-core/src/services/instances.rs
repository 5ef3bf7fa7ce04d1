//! Service instances (API.md 3.3): creation and removal through the service API, and
//! binding apps to them. A bind stores the service's variables on the app as private
//! variables tagged with the instance, and keeps `TSURU_SERVICES` current.

use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::runtime::time::now_rfc3339;
use crate::runtime::time::now_unix;
use crate::services::records::{group_instances, load_for_new_instance, load_instance};
use crate::upstream::service_api::ServiceApi;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest instance name, in bytes, as for team names: the name is stored, listed to
/// every team of the instance and sent to the service API with every call.
pub const MAX_INSTANCE_NAME_BYTES: usize = 255;

/// `^[A-Za-z][-a-zA-Z0-9_]+$`, of at most [`MAX_INSTANCE_NAME_BYTES`].
fn is_instance_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=MAX_INSTANCE_NAME_BYTES).contains(&bytes.len())
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

/// A creation or removal still in progress after this long was abandoned (its request
/// died): a new creation of that name takes its place, so no name stays taken forever.
const PENDING_LEASE_SECONDS: i64 = 600;

/// POST /services/instances (API.md 3.3): reserves the name (a `pending` instance no
/// route shows), calls the service API once, then marks the instance ready, or frees
/// the name when the call failed. Concurrent creates of one name make one call.
pub fn create(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let body: NewInstance = ctx.json_object("Invalid JSON in request body.")?;
    let service = load_for_new_instance(ctx.db()?, &body.service_name, user)?;
    let name = body.name.as_str();
    if !is_instance_name(name) {
        return Err(ApiError::bad_request("Invalid service instance name"));
    }
    if user.teams.is_empty() {
        return Err(ApiError::forbidden(
            "In order to create a service instance, you should be member of at least one team",
        ));
    }
    let id = ctx.db()?.transaction(|db| -> ApiResult<i64> {
        let now = now_unix();
        db.execute(
            "DELETE FROM service_instances WHERE name = ? AND state <> 'ready' AND created_unix < ?",
            params![name, now - PENDING_LEASE_SECONDS],
        )?;
        if db.exists("SELECT 1 FROM service_instances WHERE name = ?", params![name])? {
            return Err(name_taken());
        }
        let reserved = db.query(
            "INSERT INTO service_instances (name, service_id, state, created_at, created_unix) \
             VALUES (?, ?, 'pending', ?, ?) RETURNING id",
            params![name, service.id, now_rfc3339(), now],
        );
        let id = match reserved {
            Err(e) if e.is_unique_violation() => return Err(name_taken()),
            Err(e) if e.is_foreign_key_violation() => {
                return Err(ApiError::not_found(super::records::NOT_FOUND))
            }
            other => other?.first().map_or(0, |r| r.int(0)),
        };
        // Its teams: the caller's teams as they are now (for a restricted service, those
        // it is granted to).
        let teams = db.query(
            "INSERT INTO instance_teams (instance_id, team_id) SELECT ?1, m.team_id \
             FROM team_members m WHERE m.user_id = ?2 AND (?3 = 0 OR m.team_id IN \
             (SELECT g.team_id FROM service_teams g WHERE g.service_id = ?4)) RETURNING team_id",
            params![id, user.id, service.restricted, service.id],
        )?;
        if teams.is_empty() {
            return Err(ApiError::forbidden(
                "In order to create a service instance, you should be member of at least one team",
            ));
        }
        Ok(id)
    })?;
    let created = ServiceApi::load(ctx.db()?, service.id).and_then(|api| api.create(ctx, name));
    if let Err(e) = created {
        ctx.db()?
            .write("DELETE FROM service_instances WHERE id = ?", params![id])?;
        return Err(e);
    }
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute(
            "UPDATE service_instances SET state = 'ready' WHERE id = ?",
            params![id],
        )?;
        let extra = json!({ "service": service.name });
        audit::record_in(db, &user.email, "create-service-instance", name, extra);
        Ok(())
    })?;
    Ok(Response::empty())
}

/// GET /services/instances: per usable service, the instances the caller shares a team with.
pub fn list(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let rows = ctx.db()?.query(
        "SELECT s.name, i.name FROM services s \
         LEFT JOIN service_instances i ON i.service_id = s.id AND i.state = 'ready' AND i.id IN \
           (SELECT x.instance_id FROM team_members m JOIN instance_teams x ON x.team_id = m.team_id \
            WHERE m.user_id = ?1) \
         WHERE s.restricted = 0 OR s.id IN \
           (SELECT g.service_id FROM team_members m JOIN service_teams g ON g.team_id = m.team_id \
            WHERE m.user_id = ?1) \
         ORDER BY s.name, i.name",
        params![user.id],
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
    let info = ServiceApi::load(db, instance.service_id)?.info(ctx, &instance.name);
    audit::record(ctx, "get-service-instance", &instance.name, json!({}));
    Ok(Response::json(&InstanceInfo {
        name: instance.name,
        servicename: instance.service,
        teams: instance.teams,
        apps: instance.apps,
        info,
    }))
}

fn bound_to_an_app() -> ApiError {
    ApiError::conflict(
        "This service instance is bound to at least one app. Unbind them before removing it",
    )
}

/// DELETE /services/instances/:instance: destroys an unbound instance. The instance is
/// first marked `removing` in a transaction that checks it is unbound, so no bind can
/// slip in while the service API destroys it; then its row goes.
pub fn remove(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let instance = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let instance = load_instance(db, ctx.param("instance"), user)?;
        if !instance.apps.is_empty() {
            return Err(bound_to_an_app());
        }
        db.execute(
            "UPDATE service_instances SET state = 'removing', created_unix = ? WHERE id = ?",
            params![now_unix(), instance.id],
        )?;
        Ok(instance)
    })?;
    match ServiceApi::load(ctx.db()?, instance.service_id) {
        Ok(api) => api.destroy(ctx, &instance.name),
        Err(e) => eprintln!("destroy of instance {}: {e}", instance.name),
    }
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute(
            "DELETE FROM service_instances WHERE id = ?",
            params![instance.id],
        )?;
        let extra = json!({ "service": instance.service });
        audit::record_in(
            db,
            &user.email,
            "remove-service-instance",
            &instance.name,
            extra,
        );
        Ok(())
    })?;
    Ok(Response::text("service instance successfuly removed"))
}

/// GET /services/instances/:instance/status
pub fn status(ctx: &mut Ctx) -> ApiResult<Response> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let status = ServiceApi::load(db, instance.service_id)?.status(ctx, &instance.name)?;
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
        let longest = format!("m{}", "y".repeat(MAX_INSTANCE_NAME_BYTES - 1));
        for ok in ["my-mysql", "ab", "A_1-b", &longest] {
            assert!(is_instance_name(ok), "{ok}");
        }
        let longer = format!("{longest}y");
        for bad in ["", "a", "1ab", "-ab", "my mysql", "my.sql", "mý", &longer] {
            assert!(!is_instance_name(bad), "{bad}");
        }
    }
}
