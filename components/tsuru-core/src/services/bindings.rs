//! Binding apps to service instances (API.md 3.3 bind and unbind): a bind stores the
//! service's variables on the app as private variables tagged with the instance, and
//! keeps `TSURU_SERVICES` current.

use crate::apps::{env, records as apps};
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
    name: String,
    ip: String,
    unit_ips: Vec<String>,
}

fn load_unit_ips(db: &Db, app: &str) -> DbResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT ip FROM units WHERE app = ? ORDER BY number",
            params![app],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// Bind checks 1-3 (API.md 3.3): the instance check, then the app and app access
/// (admins pass the app check, API.md 7.1).
fn load_binding(ctx: &Ctx) -> ApiResult<(Instance, BoundApp)> {
    let user = ctx.user()?;
    let db = ctx.db()?;
    let instance = load_instance(db, ctx.param("instance"), user)?;
    let app = apps::load(db, ctx.param("app"))?;
    if !app.accessible_by(user) {
        return Err(ApiError::forbidden(
            "This user does not have access to this app",
        ));
    }
    let app = BoundApp {
        unit_ips: load_unit_ips(db, &app.name)?,
        name: app.name,
        ip: app.ip,
    };
    Ok((instance, app))
}

fn is_bound(db: &Db, instance: &str, app: &str) -> DbResult<bool> {
    db.exists(
        "SELECT 1 FROM instance_apps WHERE instance = ? AND app = ?",
        params![instance, app],
    )
}

fn already_bound() -> ApiError {
    ApiError::conflict("This app is already bound to this service instance.")
}

/// PUT /services/instances/:instance/:app: binds every unit and stores the variables.
pub fn bind(ctx: &mut Ctx) -> ApiResult<Response> {
    let (instance, app) = load_binding(ctx)?;
    let db = ctx.db()?;
    if is_bound(db, &instance.name, &app.name)? {
        return Err(already_bound());
    }
    if app.unit_ips.is_empty() {
        return Err(ApiError::precondition_failed(
            "This app does not have an IP yet.",
        ));
    }
    let api = ServiceApi::load(db, &instance.service)?;
    match db.execute(
        "INSERT INTO instance_apps (instance, app) VALUES (?, ?)",
        params![instance.name.as_str(), app.name.as_str()],
    ) {
        Ok(()) => {}
        Err(e) if e.is_unique_violation() => return Err(already_bound()),
        Err(e) => return Err(e.into()),
    }
    let mut bound_units = Vec::new();
    let outcome = bind_units(ctx, &api, &instance, &app, &mut bound_units)
        .and_then(|variables| store_variables(db, &instance, &app.name, variables));
    let stored = match outcome {
        Ok(stored) => stored,
        Err(e) => {
            for unit_ip in &bound_units {
                api.unbind_ignoring_failure(ctx, &instance.name, unit_ip);
            }
            if let Err(undo) = db.execute(
                "DELETE FROM instance_apps WHERE instance = ? AND app = ?",
                params![instance.name.as_str(), app.name.as_str()],
            ) {
                eprintln!("bind rollback of {} on {}: {undo}", instance.name, app.name);
            }
            return Err(e);
        }
    };
    let names: Vec<&String> = stored.keys().collect();
    audit::record(
        ctx,
        "bind-app",
        &instance.name,
        json!({ "app": app.name, "variables": names }),
    );
    Ok(Response::json(&stored))
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
/// `TSURU_SERVICES`, in one transaction. Returns the variables stored.
fn store_variables(
    db: &Db,
    instance: &Instance,
    app: &str,
    variables: Variables,
) -> ApiResult<Variables> {
    let stored: Variables = variables
        .into_iter()
        .filter(|(name, _)| !env::is_reserved(name))
        .collect();
    db.transaction(|db| {
        for (name, value) in &stored {
            env::set_private(db, app, name, value, Some(&instance.name))?;
        }
        refresh_tsuru_services(db, app)
    })?;
    Ok(stored)
}

/// Rewrites the app's `TSURU_SERVICES` from its bindings and their tagged variables:
/// `{"<service>":[{"instance_name":"<instance>","envs":{...}}]}`; deleted when no
/// instance is bound.
fn refresh_tsuru_services(db: &Db, app: &str) -> DbResult<()> {
    let rows = db.query(
        "SELECT i.service, i.name, v.name, v.value FROM instance_apps b \
         JOIN service_instances i ON i.name = b.instance \
         LEFT JOIN env_vars v ON v.app = b.app AND v.instance = b.instance \
         WHERE b.app = ? ORDER BY i.service, i.name, v.name",
        params![app],
    )?;
    if rows.is_empty() {
        return db.execute(
            "DELETE FROM env_vars WHERE app = ? AND name = ?",
            params![app, TSURU_SERVICES],
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
    env::set_private(
        db,
        app,
        TSURU_SERVICES,
        &Value::Object(services).to_string(),
        None,
    )
}

/// DELETE /services/instances/:instance/:app: unbinds every unit, then removes the
/// binding and the instance's variables.
pub fn unbind(ctx: &mut Ctx) -> ApiResult<Response> {
    let (instance, app) = load_binding(ctx)?;
    let db = ctx.db()?;
    if !is_bound(db, &instance.name, &app.name)? {
        return Err(ApiError::precondition_failed(
            "This app is not bound to this service instance.",
        ));
    }
    let api = ServiceApi::load(db, &instance.service)?;
    for (done, unit_ip) in app.unit_ips.iter().enumerate() {
        if let Err(e) = api.unbind(ctx, &instance.name, unit_ip) {
            for unbound in &app.unit_ips[..done] {
                api.bind_ignoring_failure(ctx, &instance.name, &app.ip, unbound);
            }
            return Err(e);
        }
    }
    db.transaction(|db| {
        db.execute(
            "DELETE FROM instance_apps WHERE instance = ? AND app = ?",
            params![instance.name.as_str(), app.name.as_str()],
        )?;
        db.execute(
            "DELETE FROM env_vars WHERE app = ? AND instance = ?",
            params![app.name.as_str(), instance.name.as_str()],
        )?;
        refresh_tsuru_services(db, &app.name)
    })?;
    audit::record(
        ctx,
        "unbind-app",
        &instance.name,
        json!({ "app": app.name }),
    );
    Ok(Response::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::db::native::NativeDb;
    use crate::runtime::schema;

    fn env(db: &Db, app: &str) -> Vec<(String, String, bool, Option<String>)> {
        db.query(
            "SELECT name, value, public, instance FROM env_vars WHERE app = ? ORDER BY name",
            params![app],
        )
        .unwrap()
        .iter()
        .map(|r| (r.text(0), r.text(1), r.bool(2), r.opt_text(3)))
        .collect()
    }

    #[test]
    fn stored_variables_are_private_tagged_and_listed_in_tsuru_services() {
        let db = NativeDb::memory();
        schema::migrate(&db, &[], "now").unwrap();
        for (name, service) in [("mydb", "mysql"), ("cache", "redis"), ("other", "mysql")] {
            db.execute(
                "INSERT INTO service_instances (name, service, created_at) VALUES (?, ?, 'now')",
                params![name, service],
            )
            .unwrap();
        }
        db.execute(
            "INSERT INTO env_vars (app, name, value, public, instance) VALUES ('app', 'TSURU_APPNAME', 'app', 0, NULL), ('app', 'HOST', 'mine', 1, NULL)",
            &[],
        )
        .unwrap();
        let mydb = Instance {
            name: "mydb".into(),
            service: "mysql".into(),
        };
        let cache = Instance {
            name: "cache".into(),
            service: "redis".into(),
        };
        for instance in ["mydb", "cache"] {
            db.execute(
                "INSERT INTO instance_apps (instance, app) VALUES (?, 'app')",
                params![instance],
            )
            .unwrap();
        }
        let vars = |pairs: &[(&str, &str)]| -> Variables {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let stored = store_variables(
            &db,
            &mydb,
            "app",
            vars(&[("HOST", "db"), ("TSURU_APPNAME", "evil")]),
        )
        .unwrap();
        assert_eq!(stored, vars(&[("HOST", "db")]));
        store_variables(&db, &cache, "app", Variables::new()).unwrap();
        let all = env(&db, "app");
        assert_eq!(
            all[0],
            ("HOST".into(), "db".into(), false, Some("mydb".into()))
        );
        assert_eq!(all[1].0, "TSURU_APPNAME");
        assert_eq!(all[1].1, "app");
        let services: Value = serde_json::from_str(&all[2].1).unwrap();
        assert_eq!(
            services,
            json!({"mysql":[{"instance_name":"mydb","envs":{"HOST":"db"}}],"redis":[{"instance_name":"cache","envs":{}}]})
        );
        assert!(!all[2].2 && all[2].3.is_none());

        db.execute("DELETE FROM instance_apps WHERE app = 'app'", &[])
            .unwrap();
        refresh_tsuru_services(&db, "app").unwrap();
        assert!(env(&db, "app").iter().all(|v| v.0 != TSURU_SERVICES));
    }
}
