//! Restart and swap (API.md 3.1): provisioner calls on a running app.

use crate::apps::records::{load_for_user, not_found};
use crate::apps::{env, logs};
use crate::params;
use crate::runtime::audit;
use crate::runtime::context::Ctx;
use crate::runtime::error::{ApiError, ApiResult};
use crate::runtime::response::Response;
use crate::upstream::provisioner;
use serde_json::json;

/// `GET` and `POST /apps/:app/restart`
pub fn restart(ctx: &mut Ctx) -> ApiResult<Response> {
    let app = load_for_user(ctx, ctx.param("app"))?;
    let db = ctx.db()?;
    let env = env::values(db, &app.name)?;
    provisioner::restart(ctx, &app.name, &env).map_err(|reason| {
        ApiError::bad_gateway(format!(
            "Failed to restart the app \"{}\": {reason}",
            app.name
        ))
    })?;
    logs::record(db, &app.name, &["Restarting app".to_string()]);
    audit::record(ctx, "restart", &app.name, json!({}));
    Ok(Response::text("\n ---> Restarting your app\n"))
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
    ctx.db()?.transaction(|db| -> ApiResult<()> {
        let address = |name: &str| -> ApiResult<(String, String)> {
            let row = db
                .query_opt("SELECT ip, cname FROM apps WHERE name = ?", params![name])?
                .ok_or_else(|| not_found(name))?;
            Ok((row.text(0), row.text(1)))
        };
        let (ip1, cname1) = address(&app1.name)?;
        let (ip2, cname2) = address(&app2.name)?;
        // Clear one cname first: the unique index must hold after every statement.
        db.execute(
            "UPDATE apps SET cname = '' WHERE name = ?",
            params![app1.name.as_str()],
        )?;
        for (name, ip, cname) in [(&app2.name, ip1, cname1), (&app1.name, ip2, cname2)] {
            db.execute(
                "UPDATE apps SET ip = ?, cname = ? WHERE name = ?",
                params![ip, cname, name.as_str()],
            )?;
        }
        Ok(())
    })?;
    audit::record(ctx, "swap", &app1.name, json!({"app2": app2.name}));
    Ok(Response::empty())
}
