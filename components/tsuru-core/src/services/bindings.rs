//! Binding apps to service instances (API.md 3.3 bind and unbind): a bind stores the
//! service's variables on the app as private variables tagged with the instance, and
//! keeps `TSURU_SERVICES` current. The binding record is written, with every check, in
//! one transaction before the service API is called; the variables in another after it.
//! Both name the app and instance by id, so nothing lands on a namesake (API.md 8.1).

use crate::apps::env;
use crate::apps::records::{load_with, Extra};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::db::{Db, DbResult};
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::services::records::{load_instance, Instance};
use crate::upstream::service_api::{ServiceApi, Variables};
use serde_json::{json, Map, Value};

const TSURU_SERVICES: &str = "TSURU_SERVICES";

/// The app side of a bind or unbind: its address and its units' addresses, in
/// unit-number order.
struct BoundApp {
    id: i64,
    name: String,
    ip: String,
    unit_ips: Vec<String>,
}

/// Bind checks 1-3 (API.md 3.3): the instance check, then the app and app access
/// (admins pass the app check, API.md 7.1); with whether the two are bound.
fn load_binding(db: &Db, ctx: &Ctx) -> ApiResult<(Instance, BoundApp, bool)> {
    let user = ctx.user()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let admin_team = ctx.config.admin_team();
    let (app, row) = load_with(
        db,
        ctx.param("app"),
        Some(user),
        admin_team.as_deref(),
        Extra {
            columns: ", EXISTS (SELECT 1 FROM instance_apps b WHERE b.app_id = a.id \
                      AND b.instance_id = ?4)",
            params: vec![instance.id.into()],
        },
    )?;
    if !app.accessible {
        return Err(ApiError::forbidden(
            "This user does not have access to this app",
        ));
    }
    let bound = row.bool(crate::apps::records::APP_COLUMN_COUNT);
    let app = BoundApp {
        id: app.id,
        unit_ips: app.units.into_iter().map(|u| u.ip).collect(),
        name: app.name,
        ip: app.ip,
    };
    Ok((instance, app, bound))
}

fn already_bound() -> ApiError {
    ApiError::conflict("This app is already bound to this service instance.")
}

/// PUT /services/instances/:instance/:app: binds every unit and stores the variables.
pub fn bind(ctx: &mut Ctx) -> ApiResult<Response> {
    // (1) The checks and the binding record, in one transaction.
    let (instance, app, api) = ctx.db()?.transaction(|db| -> ApiResult<_> {
        let (instance, app, bound) = load_binding(db, ctx)?;
        if bound {
            return Err(already_bound());
        }
        if app.unit_ips.is_empty() {
            return Err(ApiError::precondition_failed(
                "This app does not have an IP yet.",
            ));
        }
        let api = ServiceApi::load(db, instance.service_id)?;
        match db.execute(
            "INSERT INTO instance_apps (instance_id, app_id) VALUES (?, ?)",
            params![instance.id, app.id],
        ) {
            Err(e) if e.is_unique_violation() => return Err(already_bound()),
            other => other?,
        }
        Ok((instance, app, api))
    })?;
    // (2) The service API, unit by unit; (3) the variables. A failure undoes both.
    let mut bound_units = Vec::new();
    let outcome = bind_units(ctx, &api, &instance, &app, &mut bound_units)
        .and_then(|variables| store_variables(ctx, &instance, &app, variables));
    match outcome {
        Ok(stored) => Ok(Response::json(&stored)),
        Err(e) => {
            for unit_ip in &bound_units {
                api.unbind_ignoring_failure(ctx, &instance.name, unit_ip);
            }
            let undone = ctx.db().and_then(|db| {
                Ok(db.write(
                    "DELETE FROM instance_apps WHERE instance_id = ? AND app_id = ?",
                    params![instance.id, app.id],
                )?)
            });
            if let Err(undo) = undone {
                eprintln!("bind rollback of {} on {}: {undo}", instance.name, app.name);
            }
            Err(e)
        }
    }
}

/// Binds each unit in order; the first unit's variables are the ones kept. Units bound
/// so far are pushed to `bound` so a failure can undo them.
fn bind_units(
    ctx: &Ctx,
    api: &ServiceApi,
    instance: &Instance,
    app: &BoundApp,
    bound: &mut Vec<String>,
) -> ApiResult<Variables> {
    let mut first: Option<Variables> = None;
    for unit_ip in &app.unit_ips {
        let variables = api.bind(ctx, &instance.name, &app.ip, unit_ip)?;
        bound.push(unit_ip.clone());
        first.get_or_insert(variables);
    }
    Ok(first.unwrap_or_default())
}

/// Stores the service's variables on the app (private, tagged with the instance,
/// replacing any variable of that name except the reserved ones) and recomputes
/// `TSURU_SERVICES`, in one transaction with the audit event. The binding must still
/// exist: an app or instance removed meanwhile took it along; and the app must stay
/// within its variable limits (`400` otherwise). Returns the variables.
fn store_variables(
    ctx: &Ctx,
    instance: &Instance,
    app: &BoundApp,
    variables: Variables,
) -> ApiResult<Variables> {
    let stored: Variables = variables
        .into_iter()
        .filter(|(name, _)| !env::is_reserved(name))
        .collect();
    let email = ctx.user()?.email.clone();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        if !db.exists(
            "SELECT 1 FROM instance_apps WHERE instance_id = ? AND app_id = ?",
            params![instance.id, app.id],
        )? {
            return Err(crate::apps::records::not_found(&app.name));
        }
        let pairs: Vec<(&str, &str)> = stored
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env::set_private(db, app.id, &pairs, Some(instance.id))?;
        refresh_tsuru_services(db, app.id)?;
        env::check_limits(db, app.id)?;
        let names: Vec<&String> = stored.keys().collect();
        let extra = json!({ "app": app.name, "variables": names });
        audit::record_in(db, &email, "bind-app", &instance.name, extra);
        Ok(())
    })?;
    Ok(stored)
}

/// Rewrites the app's `TSURU_SERVICES` from its bindings and their tagged variables:
/// `{"<service>":[{"instance_name":"<instance>","envs":{...}}]}`; deleted when no
/// instance is bound.
fn refresh_tsuru_services(db: &Db, app_id: i64) -> DbResult<()> {
    let rows = db.query(
        "SELECT s.name, i.name, v.name, v.value FROM instance_apps b \
         JOIN service_instances i ON i.id = b.instance_id \
         JOIN services s ON s.id = i.service_id \
         LEFT JOIN env_vars v ON v.app_id = b.app_id AND v.instance_id = b.instance_id \
         WHERE b.app_id = ? ORDER BY s.name, i.name, v.name",
        params![app_id],
    )?;
    if rows.is_empty() {
        return db.execute(
            "DELETE FROM env_vars WHERE app_id = ? AND name = ?",
            params![app_id, TSURU_SERVICES],
        );
    }
    let mut services: Map<String, Value> = Map::new();
    for row in &rows {
        let instances = services
            .entry(row.text(0))
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(instances) = instances else {
            continue;
        };
        let instance_name = row.text(1);
        if instances.last().and_then(|i| i["instance_name"].as_str())
            != Some(instance_name.as_str())
        {
            instances.push(json!({ "instance_name": instance_name, "envs": {} }));
        }
        if let (Some(name), Some(value), Some(Value::Object(envs))) = (
            row.opt_text(2),
            row.opt_text(3),
            instances.last_mut().and_then(|i| i.get_mut("envs")),
        ) {
            envs.insert(name, Value::String(value));
        }
    }
    let services = Value::Object(services).to_string();
    env::set_private(db, app_id, &[(TSURU_SERVICES, &services)], None)
}

/// DELETE /services/instances/:instance/:app: unbinds every unit, then removes the
/// binding and the instance's variables.
pub fn unbind(ctx: &mut Ctx) -> ApiResult<Response> {
    let (instance, app, bound) = load_binding(ctx.db()?, ctx)?;
    if !bound {
        return Err(ApiError::precondition_failed(
            "This app is not bound to this service instance.",
        ));
    }
    let api = ServiceApi::load(ctx.db()?, instance.service_id)?;
    for (done, unit_ip) in app.unit_ips.iter().enumerate() {
        if let Err(e) = api.unbind(ctx, &instance.name, unit_ip) {
            for unbound in &app.unit_ips[..done] {
                api.bind_ignoring_failure(ctx, &instance.name, &app.ip, unbound);
            }
            return Err(e);
        }
    }
    let email = ctx.user()?.email.clone();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        db.execute(
            "DELETE FROM instance_apps WHERE instance_id = ? AND app_id = ?",
            params![instance.id, app.id],
        )?;
        db.execute(
            "DELETE FROM env_vars WHERE app_id = ? AND instance_id = ?",
            params![app.id, instance.id],
        )?;
        refresh_tsuru_services(db, app.id)?;
        let extra = json!({ "app": app.name });
        audit::record_in(db, &email, "unbind-app", &instance.name, extra);
        Ok(())
    })?;
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::schema;

    fn env(db: &Db) -> Vec<(String, String, bool, Option<i64>)> {
        db.query(
            "SELECT name, value, public, instance_id FROM env_vars WHERE app_id = 1 ORDER BY name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.text(0), r.text(1), r.bool(2), r.opt_int(3)))
        .collect()
    }

    #[test]
    fn tagged_variables_are_listed_in_tsuru_services_and_go_with_their_binding() {
        let db = schema::test_db_with_apps(&[(1, "app")]);
        for sql in [
            "INSERT INTO services (id, name, created_at) VALUES (1, 'mysql', 'now'), (2, 'redis', 'now')",
            "INSERT INTO service_instances (id, name, service_id, state, created_at) VALUES (1, 'mydb', 1, 'ready', 'now'), (2, 'cache', 2, 'ready', 'now')",
            "INSERT INTO instance_apps (instance_id, app_id) VALUES (1, 1), (2, 1)",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        env::set_private(&db, 1, &[("TSURU_APPNAME", "app")], None).unwrap();
        env::set_private(&db, 1, &[("HOST", "db")], Some(1)).unwrap();
        refresh_tsuru_services(&db, 1).unwrap();
        let all = env(&db);
        assert_eq!(all[0], ("HOST".into(), "db".into(), false, Some(1)));
        assert_eq!(all[1].0, "TSURU_APPNAME");
        let services: Value = serde_json::from_str(&all[2].1).unwrap();
        assert_eq!(
            services,
            json!({"mysql":[{"instance_name":"mydb","envs":{"HOST":"db"}}],"redis":[{"instance_name":"cache","envs":{}}]})
        );
        assert!(!all[2].2 && all[2].3.is_none());

        db.execute("DELETE FROM instance_apps WHERE app_id = 1", &[])
            .unwrap();
        refresh_tsuru_services(&db, 1).unwrap();
        assert!(env(&db).iter().all(|v| v.0 != TSURU_SERVICES));
        // The tagged variables go with their instance.
        db.execute("DELETE FROM service_instances WHERE id = 1", &[])
            .unwrap();
        assert_eq!(env(&db).len(), 1);
    }
}
