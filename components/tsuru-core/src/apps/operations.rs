//! Restart, swap, start and run (API.md 3.1, 9.2): provisioner calls on a running app.

use crate::apps::records::{load_for_user, load_for_with, not_found, App, Extra, APP_COLUMN_COUNT};
use crate::apps::{env, logs};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::provisioner;
use serde_json::json;
use std::collections::BTreeMap;

/// The app for a provisioner call, with its complete variable map (one statement).
pub(crate) fn load_with_env(ctx: &Ctx) -> ApiResult<(App, BTreeMap<String, String>)> {
    let admin_team = ctx.config.admin_team();
    let (app, row) = load_for_with(
        ctx.db()?,
        ctx.param("app"),
        ctx.user()?,
        admin_team.as_deref(),
        Extra {
            columns: env::VALUES_COLUMN,
            params: Vec::new(),
        },
    )?;
    Ok((app, env::values_from(&row, APP_COLUMN_COUNT)))
}

/// `GET` and `POST /apps/:app/restart`
pub fn restart(ctx: &mut Ctx) -> ApiResult<Response> {
    let retention = ctx.config.log_retention()?;
    let (app, env) = load_with_env(ctx)?;
    provisioner::restart(ctx, &app.name, &env).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to restart the app \"{}\": {reason}",
            app.name
        ))
    })?;
    let email = ctx.user()?.email.clone();
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        logs::record(db, app.id, &["Restarting app".to_string()], retention);
        audit::record_in(db, &email, "restart", &app.name, json!({}));
        Ok(())
    })?;
    Ok(Response::text("\n ---> Restarting your app\n"))
}

/// `GET /apps/:app/start` (API.md 9.2): the provisioner starts the app's units.
pub fn start(ctx: &mut Ctx) -> ApiResult<Response> {
    let (app, env) = load_with_env(ctx)?;
    let output = provisioner::start(ctx, &app.name, &env).map_err(|reason| {
        ApiError::bad_gateway(format!("Failed to start the app {}: {reason}", app.name))
    })?;
    audit::record(ctx, "start", &app.name, json!({}));
    Ok(Response::text("").body(output))
}

/// `POST /apps/:app/run?once=` (API.md 9.2): runs the body's command in every unit (or
/// one), streaming the provisioner's output. The built-in provisioner cannot run
/// anything: `501`. A provisioner that refuses answers `502`; one that breaks off midway
/// ends the output with an `ERROR: <reason>` line.
pub fn run(ctx: &mut Ctx) -> ApiResult<Response> {
    let (app, env) = load_with_env(ctx)?;
    let command = String::from_utf8_lossy(&ctx.req.body).trim().to_string();
    if command.is_empty() {
        return Err(ApiError::bad_request("You must provide the command to run"));
    }
    let once = ctx.req.query_param("once") == Some("true");
    let reply = provisioner::run(ctx, &app.name, &command, once, &env)
        .map_err(|reason| {
            ApiError::bad_gateway(format!(
                "Failed to run the command in the app {}: {reason}",
                app.name
            ))
        })?
        .ok_or_else(|| {
            ApiError::new(
                501,
                "Running commands needs a provisioner (provisioner_url is not set)",
            )
        })?;
    audit::record(ctx, "run-command", &app.name, json!({ "command": command }));
    Ok(Response::text("").streaming(Box::new(move |_ctx, write| {
        if let Err(reason) = reply.pump(write) {
            write(format!("\nERROR: {reason}\n").as_bytes());
        }
    })))
}

/// `PUT /swap?app1=&app2=`
pub fn swap(ctx: &mut Ctx) -> ApiResult<Response> {
    let name1 = ctx.req.query_param("app1").unwrap_or_default().to_string();
    let name2 = ctx.req.query_param("app2").unwrap_or_default().to_string();
    let app1 = load_for_user(ctx, &name1)?;
    let app2 = load_for_user(ctx, &name2)?;
    if app1.name == app2.name {
        return Err(ApiError::bad_request(
            "An app cannot be swapped with itself.",
        ));
    }
    provisioner::swap(ctx, &app1.name, &app2.name).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to swap the apps {} and {}: {reason}",
            app1.name, app2.name
        ))
    })?;
    let email = ctx.user()?.email.clone();
    // By id, as checked before the call: an app removed meanwhile is a 404, and its
    // namesake is never touched.
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let address = |app: &App| -> ApiResult<(String, String)> {
            let row = db
                .query_opt("SELECT ip, cname FROM apps WHERE id = ?", params![app.id])?
                .ok_or_else(|| not_found(&app.name))?;
            Ok((row.text(0), row.text(1)))
        };
        let (ip1, cname1) = address(&app1)?;
        let (ip2, cname2) = address(&app2)?;
        // Clear one cname first: the unique index must hold after every statement.
        db.execute("UPDATE apps SET cname = '' WHERE id = ?", params![app1.id])?;
        for (id, ip, cname) in [(app2.id, ip1, cname1), (app1.id, ip2, cname2)] {
            db.execute(
                "UPDATE apps SET ip = ?, cname = ? WHERE id = ?",
                params![ip, cname, id],
            )?;
        }
        audit::record_in(db, &email, "swap", &app1.name, json!({"app2": app2.name}));
        Ok(())
    })?;
    Ok(Response::empty())
}
