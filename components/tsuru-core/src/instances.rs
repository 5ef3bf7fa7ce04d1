//! Service instances (API.md 3.3): creation and removal through the service API, and
//! binding apps to them. A bind stores the service's variables on the app as private
//! variables tagged with the instance, and keeps `TSURU_SERVICES` current.

use crate::app_env;
use crate::apps;
use crate::audit;
use crate::auth::User;
use crate::context::Ctx;
use crate::db::{Db, DbError, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::http::Response;
use crate::params;
use crate::service_api::{ServiceApi, Variables};
use crate::services::{self, group_instances};
use crate::util::now_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const TSURU_SERVICES: &str = "TSURU_SERVICES";

/// A stored instance the caller passed the instance check for.
pub struct Instance {
    pub name: String,
    pub service: String,
}

/// Instance check (API.md 1.8): 404, or 403 for a caller in none of its teams.
fn load_for_user(db: &Db, name: &str, user: &User) -> ApiResult<Instance> {
    let row = db.query_opt(
        "SELECT service FROM service_instances WHERE name = ?",
        params![name],
    )?;
    let row = row.ok_or_else(|| ApiError::not_found("Service instance not found"))?;
    let member = db.exists(
        "SELECT 1 FROM instance_teams t JOIN team_members m ON m.team = t.team \
         WHERE t.instance = ? AND m.email = ?",
        params![name, user.email.as_str()],
    )?;
    if !member {
        return Err(ApiError::forbidden(
            "User does not have access to this service instance",
        ));
    }
    Ok(Instance {
        name: name.to_string(),
        service: row.text(0),
    })
}

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
    let service = services::load_for_new_instance(db, &body.service_name, user)?;
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

/// The teams and bound apps of an instance, both sorted.
pub fn instance_links(db: &Db, instance: &str) -> ApiResult<(Vec<String>, Vec<String>)> {
    let column = |sql: &str| -> ApiResult<Vec<String>> {
        Ok(db
            .query(sql, params![instance])?
            .iter()
            .map(|r| r.text(0))
            .collect())
    };
    Ok((
        column("SELECT team FROM instance_teams WHERE instance = ? ORDER BY team")?,
        column("SELECT app FROM instance_apps WHERE instance = ? ORDER BY app")?,
    ))
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
    let instance = load_for_user(db, ctx.param("instance"), user)?;
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
    let instance = load_for_user(db, ctx.param("instance"), user)?;
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
    let instance = load_for_user(db, ctx.param("instance"), user)?;
    let status = ServiceApi::load(db, &instance.service)?.status(ctx, &instance.name)?;
    audit::record(ctx, "service-instance-status", &instance.name, json!({}));
    Ok(Response::text(format!(
        "Service instance \"{}\" is {status}",
        instance.name
    )))
}

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
    let instance = load_for_user(db, ctx.param("instance"), user)?;
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
        .filter(|(name, _)| !app_env::is_reserved(name))
        .collect();
    db.transaction(|db| {
        for (name, value) in &stored {
            app_env::set_private(db, app, name, value, Some(&instance.name))?;
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
    app_env::set_private(
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

/// The instances bound to an app, with the API of each one's service; instances whose
/// service cannot be called are reported and skipped.
fn bound_instance_apis(ctx: &Ctx, app: &str) -> Vec<(String, ServiceApi)> {
    let rows = ctx.db().and_then(|db| {
        Ok(db.query(
            "SELECT i.name, i.service FROM instance_apps b JOIN service_instances i ON i.name = b.instance \
             WHERE b.app = ? ORDER BY i.name",
            params![app],
        )?)
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bound instances of app {app}: {e}");
            return Vec::new();
        }
    };
    let mut apis = Vec::new();
    for row in rows {
        let instance = row.text(0);
        match ctx.db().and_then(|db| ServiceApi::load(db, &row.text(1))) {
            Ok(api) => apis.push((instance, api)),
            Err(e) => eprintln!("instance {instance} bound to app {app}: {e}"),
        }
    }
    apis
}

/// The app's address and its units' `(number, ip)`, in unit-number order.
fn app_addresses(db: &Db, app: &str) -> DbResult<(String, Vec<(i64, String)>)> {
    let ip = db
        .query_opt("SELECT ip FROM apps WHERE name = ?", params![app])?
        .map(|r| r.text(0))
        .unwrap_or_default();
    let units = db
        .query(
            "SELECT number, ip FROM units WHERE app = ? ORDER BY number",
            params![app],
        )?
        .iter()
        .map(|r| (r.int(0), r.text(1)))
        .collect();
    Ok((ip, units))
}

/// Calls `each(api, instance, app ip, unit ip)` for every instance bound to the app and
/// every unit `selected` by number; for the app routes, which ignore these failures.
fn for_bound_units(
    ctx: &Ctx,
    app: &str,
    selected: impl Fn(i64) -> bool,
    each: impl Fn(&ServiceApi, &str, &str, &str),
) {
    let (app_ip, units) = match ctx.db().and_then(|db| Ok(app_addresses(db, app)?)) {
        Ok(addresses) => addresses,
        Err(e) => {
            eprintln!("units of app {app}: {e}");
            return;
        }
    };
    for (instance, api) in bound_instance_apis(ctx, app) {
        for (_, unit_ip) in units.iter().filter(|(number, _)| selected(*number)) {
            each(&api, &instance, &app_ip, unit_ip);
        }
    }
}

/// DELETE /apps/:app step 1 (API.md 3.1): the service API unbind of every unit for
/// every bound instance; failures are reported and ignored. The bindings themselves
/// are deleted with the app.
pub fn unbind_app_everywhere(ctx: &Ctx, app: &str) {
    for_bound_units(
        ctx,
        app,
        |_| true,
        |api, instance, _, unit_ip| api.unbind_ignoring_failure(ctx, instance, unit_ip),
    );
}

/// PUT /apps/:app/units step 4 (API.md 3.1): binds the new units (by number) to every
/// instance bound to the app; failures and returned variables are ignored.
pub fn bind_new_units(ctx: &Ctx, app: &str, numbers: &[i64]) {
    for_bound_units(
        ctx,
        app,
        |number| numbers.contains(&number),
        |api, instance, app_ip, unit_ip| api.bind_ignoring_failure(ctx, instance, app_ip, unit_ip),
    );
}

/// DELETE /apps/:app/units (API.md 3.1): unbinds a unit (by number), before its removal,
/// from every instance bound to the app; failures are ignored.
pub fn unbind_unit(ctx: &Ctx, app: &str, number: i64) {
    for_bound_units(
        ctx,
        app,
        |n| n == number,
        |api, instance, _, unit_ip| api.unbind_ignoring_failure(ctx, instance, unit_ip),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::native::NativeDb;
    use crate::schema;

    #[test]
    fn instance_names() {
        for ok in ["my-mysql", "ab", "A_1-b"] {
            assert!(is_instance_name(ok), "{ok}");
        }
        for bad in ["", "a", "1ab", "-ab", "my mysql", "my.sql", "mý"] {
            assert!(!is_instance_name(bad), "{bad}");
        }
    }

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
